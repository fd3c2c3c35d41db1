// A host batch (data::Batch: row-major int32 arrays) as the int64 (B, T) tensors a model takes, on
// its device. Packed batches bring their restarting positions and sequence ids, which attention
// turns into a block-diagonal mask; whether the batch has padding at all is known here, on the
// host, so the model needs no device round trip to decide whether it needs a mask.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "data/batches.h"
#include "models/layers.h"

namespace lorakit {

struct DeviceBatch {
  at::Tensor input_ids, labels;  // (B, T) int64
  TokenLayout layout;            // the attention mask, and for packed batches position and sequence ids
  at::Tensor class_labels;       // (B) int64, sequence classification; else undefined
};

DeviceBatch to_device(const data::Batch& batch, const c10::Device& device);

}  // namespace lorakit
