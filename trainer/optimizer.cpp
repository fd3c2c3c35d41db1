#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <ATen/TensorOperators.h>
#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_lerp.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/clamp_max.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>

namespace lorakit::trainer {

namespace {

// The parameters that have a gradient, and the gradients.
std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> with_grads(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> ps, gs;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) ps.push_back(p), gs.push_back(p.grad());
  return {ps, gs};
}

}  // namespace

void AdamW::update(std::vector<at::Tensor>& params, double lr) {
  c10::NoGradGuard no_grad;
  if (exp_avg.empty())
    for (const at::Tensor& p : params) {
      exp_avg.push_back(at::zeros_like(p));
      exp_avg_sq.push_back(at::zeros_like(p));
    }
  ++step;
  std::vector<at::Tensor> ps, gs, ms, vs;
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].grad().defined())
      ps.push_back(params[i]), gs.push_back(params[i].grad()), ms.push_back(exp_avg[i]), vs.push_back(exp_avg_sq[i]);
  if (ps.empty()) return;
  if (fused) {
    // The kernel reads each tensor's step count (after this step's increment) from state_steps.
    std::vector<at::Tensor> steps(ps.size(), at::full({}, static_cast<double>(step), ps[0].options().dtype(at::kFloat)));
    at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
    return;
  }
  const double bias1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bias2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(step)));
  at::_foreach_mul_(ps, 1 - lr * weight_decay);
  at::_foreach_lerp_(ms, gs, 1 - beta1);
  at::_foreach_mul_(vs, beta2);
  at::_foreach_addcmul_(vs, gs, gs, 1 - beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(vs);
  at::_foreach_div_(denom, bias2_sqrt);
  at::_foreach_add_(denom, eps);
  at::_foreach_addcdiv_(ps, ms, denom, -lr / bias1);
}

double lr_lambda(const std::string& type, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (type == "constant") return 1.0;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (type == "linear") return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));  // cosine
}

at::Tensor clip_grad_norm(std::vector<at::Tensor>& params, double max_norm) {
  c10::NoGradGuard no_grad;
  auto [ps, gs] = with_grads(params);
  if (gs.empty()) return at::zeros({}, at::kFloat);
  const at::Tensor total = at::linalg_vector_norm(at::stack(at::_foreach_norm(gs, 2)), 2);  // ()
  if (max_norm > 0) at::_foreach_mul_(gs, at::clamp_max(max_norm / (total + 1e-6), 1.0));
  return total;
}

at::Tensor LossScale::unscale(std::vector<at::Tensor>& params) const {
  c10::NoGradGuard no_grad;
  auto [ps, gs] = with_grads(params);
  const auto options = gs.empty() ? at::TensorOptions(at::kFloat) : gs[0].options().dtype(at::kFloat);
  at::Tensor found_inf = at::zeros({}, options);
  if (!gs.empty()) at::_amp_foreach_non_finite_check_and_unscale_(gs, found_inf, at::full({}, 1.0 / scale, options));
  return found_inf;
}

void LossScale::update(bool found_inf) {
  if (found_inf) {
    scale /= 2;
    good_steps = 0;
  } else if (++good_steps % 2000 == 0) {
    scale *= 2;
  }
}

}  // namespace lorakit::trainer
