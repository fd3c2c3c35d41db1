#include "device/batch.h"

#include <algorithm>

#include <ATen/ops/from_blob.h>

namespace lorakit {

DeviceBatch to_device(const data::Batch& b, const c10::Device& device) {
  // To CUDA through pinned memory and a non-blocking copy: a copy from pageable memory would wait
  // for the stream, a host synchronisation per micro-batch.
  const auto to = [&](const std::vector<int32_t>& v) {
    const at::Tensor host = at::from_blob(const_cast<int32_t*>(v.data()), {b.rows, b.cols}, at::kInt).to(at::kLong);
    return device.is_cuda() ? host.pin_memory().to(device, /*non_blocking=*/true) : host;  // (B, T)
  };
  DeviceBatch out{to(b.input_ids), to(b.labels), TokenLayout(to(b.attention_mask))};
  // A packed batch is one whose rows hold more examples than rows.
  if (b.examples > b.rows && b.sequence_ids.size() == b.input_ids.size()) {
    out.layout.position_ids = to(b.position_ids);
    out.layout.sequence_ids = to(b.sequence_ids);
  }
  if (!b.class_labels.empty()) {
    const at::Tensor host = at::from_blob(const_cast<int32_t*>(b.class_labels.data()), {b.rows}, at::kInt).to(at::kLong);
    out.class_labels = device.is_cuda() ? host.pin_memory().to(device, /*non_blocking=*/true) : host;  // (B)
  }
  out.layout.padded = std::find(b.attention_mask.begin(), b.attention_mask.end(), 0) != b.attention_mask.end();
  return out;
}

}  // namespace lorakit
