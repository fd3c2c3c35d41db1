// The optimizer side of a training step, as transformers' Trainer and torch.optim compute it:
// AdamW (torch.optim.AdamW's single-tensor formula), the learning-rate schedules with warmup
// (transformers.optimization), gradient clipping (torch.nn.utils.clip_grad_norm_) and fp16's
// dynamic loss scale (torch.amp.GradScaler's rule: halve on overflow, double after 2000 good steps).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lorakit::trainer {

// None of these reads a value back to the host: a step's statistics stay device tensors until the
// loop reads them together, once (trainer/train.cpp).
struct AdamW {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool fused = false;  // at::_fused_adamw_ (one kernel for all tensors; the CUDA default), else _foreach_
  int64_t step = 0;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;  // one per parameter, created at the first update

  // One step over `params` (those without a gradient are left alone). The _foreach_ path is
  // torch.optim.AdamW(foreach=True), element for element the single-tensor formula.
  void update(std::vector<at::Tensor>& params, double lr);
};

// The multiplier of the peak learning rate at optimizer step `step` (0-based): linear warmup, then
// "constant", "linear" or "cosine" decay to 0 at `total`.
double lr_lambda(const std::string& type, int64_t step, int64_t warmup, int64_t total);

// torch.nn.utils.clip_grad_norm_(foreach=True): scales the gradients so their total 2-norm is at most
// `max_norm` (0: no clipping); returns the norm before clipping, a 0-dim float32 device tensor.
at::Tensor clip_grad_norm(std::vector<at::Tensor>& params, double max_norm);

// fp16's dynamic loss scale. The loss is multiplied by `scale` before the backward; unscale()
// multiplies the gradients by 1/scale and returns a 0-dim device tensor, 1 when any is inf or NaN
// (torch.amp's _amp_foreach_non_finite_check_and_unscale_). update() then moves the scale.
struct LossScale {
  double scale = 65536.0;
  int64_t good_steps = 0;

  at::Tensor unscale(std::vector<at::Tensor>& params) const;
  void update(bool found_inf);
};

}  // namespace lorakit::trainer
