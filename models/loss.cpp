#include "models/loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/zeros.h>

namespace lorakit {
namespace {

constexpr int64_t kIgnore = -100;

// The final hidden states of the positions that predict a next token, and their labels:
// h (N, C), y (N) with N = B * (T - 1).
std::pair<at::Tensor, at::Tensor> shifted(const CausalLM& model, const at::Tensor& input_ids,
                                          const TokenLayout& layout, const at::Tensor& labels) {
  const at::Tensor hidden = model.forward_hidden(model.embed(input_ids), layout, nullptr);  // (B, T, C)
  return {hidden.slice(1, 0, -1).reshape({-1, hidden.size(-1)}), labels.slice(1, 1).reshape({-1})};
}

// Summed cross-entropy of hidden states h (n, C) against labels y (n), logits in float32.
at::Tensor cross_entropy_sum(const CausalLM& model, const at::Tensor& h, const at::Tensor& y) {
  return at::cross_entropy_loss(model.lm_head(h).to(at::kFloat), y, {}, at::Reduction::Sum, kIgnore);
}

// Only the loss positions: h (M, C), y (M).
std::pair<at::Tensor, at::Tensor> loss_positions(const at::Tensor& h, const at::Tensor& y) {
  const at::Tensor keep = (y != kIgnore).nonzero().reshape({-1});
  return {h.index_select(0, keep), y.index_select(0, keep)};
}

}  // namespace

at::Tensor loss_sum(const CausalLM& model, const at::Tensor& input_ids, const TokenLayout& layout,
                    const at::Tensor& labels, int64_t chunk_tokens) {
  const auto [h, y] = shifted(model, input_ids, layout, labels);
  if (chunk_tokens <= 0) return cross_entropy_sum(model, h, y);
  const auto [hk, yk] = loss_positions(h, y);
  at::Tensor total = at::zeros({}, h.options().dtype(at::kFloat));
  for (int64_t start = 0; start < hk.size(0); start += chunk_tokens) {
    const int64_t n = std::min(chunk_tokens, hk.size(0) - start);
    total = total + cross_entropy_sum(model, hk.narrow(0, start, n), yk.narrow(0, start, n));
  }
  return total;
}

at::Tensor loss_and_backward(const CausalLM& model, const at::Tensor& input_ids, const TokenLayout& layout,
                             const at::Tensor& labels, double scale, int64_t chunk_tokens) {
  const auto [h, y] = shifted(model, input_ids, layout, labels);
  if (chunk_tokens <= 0) {
    const at::Tensor sum = cross_entropy_sum(model, h, y);
    (sum * scale).backward();
    return sum.detach();
  }
  // The head and the loss chunk by chunk on detached hidden states; each chunk's backward frees its
  // logits, and the gathered gradient then flows back through the model once.
  const auto [hk, yk] = loss_positions(h, y);
  const at::Tensor leaf = hk.detach().requires_grad_(true);
  at::Tensor total = at::zeros({}, h.options().dtype(at::kFloat));
  for (int64_t start = 0; start < leaf.size(0); start += chunk_tokens) {
    const int64_t n = std::min(chunk_tokens, leaf.size(0) - start);
    const at::Tensor sum = cross_entropy_sum(model, leaf.narrow(0, start, n), yk.narrow(0, start, n));
    (sum * scale).backward();
    total = total + sum.detach();
  }
  if (leaf.size(0) > 0 && leaf.grad().defined()) hk.backward(leaf.grad());
  return total;
}

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t V = logits.size(-1);
  at::Tensor shift_logits = logits.slice(1, 0, -1).to(at::kFloat).reshape({-1, V});
  at::Tensor shift_labels = labels.slice(1, 1).reshape({-1}).to(logits.device());
  return at::cross_entropy_loss(shift_logits, shift_labels, {}, at::Reduction::Mean, /*ignore_index=*/-100);
}

}  // namespace lorakit
