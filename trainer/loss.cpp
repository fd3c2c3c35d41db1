#include "trainer/loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/zeros.h>

namespace lorakit::trainer {

at::Tensor loss_and_backward(const CausalLM& model, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                             const at::Tensor& labels, double scale, int64_t chunk_tokens) {
  constexpr int64_t kIgnore = -100;
  const at::Tensor hidden = model.forward_hidden(model.embed(input_ids), attention_mask, nullptr);  // (B, T, C)
  const int64_t C = hidden.size(-1);
  const at::Tensor h = hidden.slice(1, 0, -1).reshape({-1, C});  // (N, C): positions that predict a next token
  const at::Tensor y = labels.slice(1, 1).reshape({-1});         // (N)
  if (chunk_tokens <= 0) {
    const at::Tensor logits = model.lm_head(h).to(at::kFloat);  // (N, V)
    const at::Tensor sum = at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum, kIgnore);
    (sum * scale).backward();
    return sum.detach();
  }
  // Only the loss positions go through the head, chunk by chunk.
  const at::Tensor keep = (y != kIgnore).nonzero().reshape({-1});  // (M)
  const at::Tensor hk = h.index_select(0, keep);                   // (M, C)
  const at::Tensor yk = y.index_select(0, keep);                   // (M)
  const at::Tensor leaf = hk.detach().requires_grad_(true);
  at::Tensor total = at::zeros({}, hidden.options().dtype(at::kFloat));
  const int64_t M = leaf.size(0);
  for (int64_t start = 0; start < M; start += chunk_tokens) {
    const int64_t n = std::min(chunk_tokens, M - start);
    const at::Tensor logits = model.lm_head(leaf.narrow(0, start, n)).to(at::kFloat);  // (n, V)
    const at::Tensor sum = at::cross_entropy_loss(logits, yk.narrow(0, start, n), {}, at::Reduction::Sum, kIgnore);
    (sum * scale).backward();
    total = total + sum.detach();
  }
  if (M > 0 && leaf.grad().defined()) hk.backward(leaf.grad());
  return total;
}

}  // namespace lorakit::trainer
