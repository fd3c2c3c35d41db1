// The optimizer's device paths: the fused AdamW kernel (CUDA's default, and ATen has it on the CPU
// too) equals the _foreach_ path that the PEFT step-parity test checks against torch.optim.AdamW;
// clipping computes torch's total norm; fp16 unscaling flags inf/NaN without leaving the device.
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/tensor_compare.h"
#include "tests/test_paths.h"
#include "trainer/optimizer.h"

using namespace lorakit;

namespace {

std::vector<at::Tensor> make_params(uint64_t seed) {
  at::manual_seed(static_cast<int64_t>(seed));
  std::vector<at::Tensor> params = {at::randn({8, 16}), at::randn({16, 8}), at::randn({3})};
  for (auto& p : params) p.requires_grad_(true);
  return params;
}

void set_grads(std::vector<at::Tensor>& params, int step) {
  at::manual_seed(100 + step);
  for (auto& p : params) p.mutable_grad() = (at::randn(p.sizes()) * (step + 1)).to(p.device());
}

}  // namespace

TEST(Optimizer, FusedAdamWEqualsForeach) {
  auto a = make_params(1), b = make_params(1);
  if (lorakit::testing::on_cuda())  // on the GPU machine: the CUDA fused kernel against _foreach_ there
    for (auto* list : {&a, &b})
      for (auto& p : *list) p = p.detach().to(at::Device(lorakit::testing::test_device())).requires_grad_(true);
  trainer::AdamW foreach{0.9, 0.95, 1e-8, 0.01, false}, fused{0.9, 0.95, 1e-8, 0.01, true};
  for (int step = 0; step < 6; ++step) {
    set_grads(a, step);
    set_grads(b, step);
    foreach.update(a, 1e-2 * (step + 1));
    fused.update(b, 1e-2 * (step + 1));
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const auto c = lorakit::testing::compare(b[i], a[i], 1e-6);
    EXPECT_TRUE(c.ok()) << "parameter " << i << ": " << c.first_mismatch;
    EXPECT_TRUE(lorakit::testing::compare(fused.exp_avg_sq[i], foreach.exp_avg_sq[i], 1e-6).ok());
  }
  EXPECT_EQ(fused.step, 6);
}

TEST(Optimizer, ClipGradNormIsTorchsTotalNorm) {
  auto params = make_params(2);
  set_grads(params, 0);
  double expected = 0;
  for (auto& p : params) expected += p.grad().pow(2).sum().item<double>();
  expected = std::sqrt(expected);
  const std::vector<at::Tensor> before = {params[0].grad().clone(), params[1].grad().clone(), params[2].grad().clone()};
  const at::Tensor norm = trainer::clip_grad_norm(params, 1.0);
  EXPECT_NEAR(norm.item<double>(), expected, 1e-5 * expected);
  double after = 0;
  for (auto& p : params) after += p.grad().pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(after), 1.0, 1e-5);
  for (size_t i = 0; i < params.size(); ++i)  // every gradient scaled by the same factor
    EXPECT_TRUE(lorakit::testing::compare(params[i].grad(), before[i] * (1.0 / (expected + 1e-6)), 1e-6).ok());
  // max_norm 0: the norm, no clipping.
  set_grads(params, 0);
  EXPECT_NEAR(trainer::clip_grad_norm(params, 0).item<double>(), expected, 1e-5 * expected);
  EXPECT_TRUE(lorakit::testing::compare(params[0].grad(), before[0], 0).ok());
}

TEST(Optimizer, LossScaleFlagsOverflowOnTheDevice) {
  auto params = make_params(3);
  set_grads(params, 0);
  trainer::LossScale scale;
  const at::Tensor g0 = params[0].grad().clone();
  EXPECT_EQ(scale.unscale(params).item<float>(), 0.0f);
  EXPECT_TRUE(lorakit::testing::compare(params[0].grad(), g0 / 65536.0, 1e-12).ok());
  params[1].mutable_grad()[0][0] = INFINITY;
  EXPECT_EQ(scale.unscale(params).item<float>(), 1.0f);
  scale.update(true);
  EXPECT_EQ(scale.scale, 32768.0);
  for (int i = 0; i < 2000; ++i) scale.update(false);
  EXPECT_EQ(scale.scale, 65536.0);
}
