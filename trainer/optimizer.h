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

struct AdamW {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t step = 0;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;  // one per parameter, created at the first update

  // One step over `params` (those without a gradient are left alone).
  void update(std::vector<at::Tensor>& params, double lr);
};

// The multiplier of the peak learning rate at optimizer step `step` (0-based): linear warmup, then
// "constant", "linear" or "cosine" decay to 0 at `total`.
double lr_lambda(const std::string& type, int64_t step, int64_t warmup, int64_t total);

// Scales the gradients down so their total 2-norm is at most `max_norm` (0: no clipping); returns
// the norm before clipping.
double clip_grad_norm(std::vector<at::Tensor>& params, double max_norm);

// fp16's dynamic loss scale. The loss is multiplied by `scale` before the backward; unscale() divides
// the gradients back and says whether they are all finite (false: skip this step's update).
struct LossScale {
  double scale = 65536.0;
  int64_t good_steps = 0;

  bool unscale(std::vector<at::Tensor>& params);
};

}  // namespace lorakit::trainer
