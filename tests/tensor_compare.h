// Whole-tensor comparison for tests: the largest absolute difference and the first element past
// the tolerance, with both values, so a failure says where and by how much.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace lorakit::testing {

struct Comparison {
  double max_abs = 0;
  std::string first_mismatch;  // "" when every element is within tolerance
  bool ok() const { return first_mismatch.empty(); }
};

inline Comparison compare(const at::Tensor& actual_in, const at::Tensor& expected_in, double atol) {
  Comparison c;
  at::Tensor actual = actual_in.detach().to(at::kCPU, at::kDouble).contiguous();
  at::Tensor expected = expected_in.detach().to(at::kCPU, at::kDouble).contiguous();
  if (actual.sizes() != expected.sizes()) {
    c.first_mismatch = fmt::format("shape {} vs expected {}", fmt::join(actual.sizes(), "x"), fmt::join(expected.sizes(), "x"));
    c.max_abs = INFINITY;
    return c;
  }
  at::Tensor diff = (actual - expected).abs().reshape({-1});
  if (diff.numel() == 0) return c;
  if (diff.isnan().any().item<bool>()) c.max_abs = NAN;
  else c.max_abs = diff.max().item<double>();
  at::Tensor bad = (diff > atol).logical_or(diff.isnan()).nonzero();
  if (bad.size(0) > 0) {
    int64_t flat = bad[0][0].item<int64_t>();
    std::vector<int64_t> index;
    int64_t rest = flat;
    for (int64_t d = expected.dim() - 1; d >= 0; --d) {
      index.insert(index.begin(), rest % expected.size(d));
      rest /= expected.size(d);
    }
    c.first_mismatch = fmt::format("first mismatch at [{}]: {} vs expected {} ({} elements past atol {})",
                                   fmt::join(index, ", "), actual.reshape({-1})[flat].item<double>(),
                                   expected.reshape({-1})[flat].item<double>(), bad.size(0), atol);
  }
  return c;
}

}  // namespace lorakit::testing
