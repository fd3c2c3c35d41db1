// A causal LM's next-token cross-entropy (transformers' ForCausalLMLoss, summed instead of averaged),
// for training (with its backward) and for evaluation; models/ holds it because trainer/ and
// inference/ both need it and neither links the other. The plain path materialises (B, T, V)
// logits; the chunked path never holds the logits of more than `chunk_tokens` positions: the final hidden states of the
// loss positions are detached, the head and the cross-entropy run chunk by chunk with each chunk's
// backward freeing its logits, and the accumulated gradient of the hidden states flows back through
// the model once. Both give the same loss and gradients (tests/test_loss.cpp).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "models/model.h"

namespace lorakit {

// input_ids and labels (B, T) int64 on the model's device, `layout` their padding, positions and
// packed examples. The summed next-token
// cross-entropy over labels != -100, as a 0-dim float32 tensor (no host synchronisation), without a
// backward (evaluation). chunk_tokens = 0: the plain path.
at::Tensor loss_sum(const CausalLM& model, const at::Tensor& input_ids, const TokenLayout& layout,
                    const at::Tensor& labels, int64_t chunk_tokens);

// The same sum, after backpropagating `scale` * sum (training); returns the unscaled sum.
at::Tensor loss_and_backward(const CausalLM& model, const at::Tensor& input_ids, const TokenLayout& layout,
                             const at::Tensor& labels, double scale, int64_t chunk_tokens);

// transformers' ForCausalLMLoss: position t predicts token t+1, labels -100 ignored, mean over
// the rest, logits upcast to float32. logits (B, T, V), labels (B, T) int64.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace lorakit
