#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <ATen/TensorOperators.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>

namespace lorakit::trainer {

void AdamW::update(std::vector<at::Tensor>& params, double lr) {
  c10::NoGradGuard no_grad;
  if (exp_avg.empty())
    for (const at::Tensor& p : params) {
      exp_avg.push_back(at::zeros_like(p));
      exp_avg_sq.push_back(at::zeros_like(p));
    }
  ++step;
  const double bias1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bias2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(step)));
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor& p = params[i];
    const at::Tensor grad = p.grad();
    if (!grad.defined()) continue;
    p.mul_(1 - lr * weight_decay);
    exp_avg[i].lerp_(grad, 1 - beta1);
    exp_avg_sq[i].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    const at::Tensor denom = (exp_avg_sq[i].sqrt() / bias2_sqrt).add_(eps);
    p.addcdiv_(exp_avg[i], denom, -lr / bias1);
  }
}

double lr_lambda(const std::string& type, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (type == "constant") return 1.0;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (type == "linear") return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));  // cosine
}

double clip_grad_norm(std::vector<at::Tensor>& params, double max_norm) {
  c10::NoGradGuard no_grad;
  double total = 0;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) total += std::pow(p.grad().norm().item<double>(), 2);
  total = std::sqrt(total);
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (total + 1e-6));
    if (coef < 1.0)
      for (at::Tensor& p : params)
        if (p.grad().defined()) p.mutable_grad().mul_(coef);
  }
  return total;
}

bool LossScale::unscale(std::vector<at::Tensor>& params) {
  c10::NoGradGuard no_grad;
  bool finite = true;
  for (at::Tensor& p : params)
    if (p.grad().defined()) {
      p.mutable_grad().div_(scale);
      finite = finite && at::isfinite(p.grad()).all().item<bool>();
    }
  if (!finite) {
    scale /= 2;
    good_steps = 0;
  } else if (++good_steps % 2000 == 0) {
    scale *= 2;
  }
  return finite;
}

}  // namespace lorakit::trainer
