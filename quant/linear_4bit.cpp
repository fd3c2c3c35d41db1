// The 4-bit Linear's product (bitsandbytes' MatMul4Bit): the forward dequantizes W for one product
// and keeps nothing of it; the backward dequantizes it again for x's gradient. So a layer's 16-bit
// weight lives only while its own product runs, in the forward and in the backward.
#include "quant/bnb_4bit.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <torch/csrc/autograd/custom_function.h>

namespace lorakit::quant {
namespace {

struct Matmul4bit : torch::autograd::Function<Matmul4bit> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t weight_address) {
    const auto* w = reinterpret_cast<const Weight4bit*>(weight_address);
    ctx->saved_data["weight"] = weight_address;
    at::NoGradGuard no_grad;
    return at::linear(x, w->dequantize().to(x.scalar_type()));  // (..., out)
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_output) {
    const auto* w = reinterpret_cast<const Weight4bit*>(ctx->saved_data["weight"].toInt());
    const at::Tensor& grad = grad_output[0];  // (..., out)
    at::Tensor grad_x = at::matmul(grad, w->dequantize().to(grad.scalar_type()));  // (..., in)
    return {grad_x, at::Tensor()};
  }
};

}  // namespace

at::Tensor linear_4bit(const at::Tensor& x, const Weight4bit& w, const at::Tensor& bias) {
  const at::ScalarType input_dtype = x.scalar_type();
  at::Tensor xc = x.to(w.compute_dtype);
  at::Tensor b = bias.defined() ? bias.to(w.compute_dtype) : bias;
  if (!xc.requires_grad()) return at::linear(xc, w.dequantize().to(w.compute_dtype), b).to(input_dtype);
  at::Tensor y = Matmul4bit::apply(xc, reinterpret_cast<int64_t>(&w));  // the frozen bias needs no gradient
  if (b.defined()) y = y + b;
  return y.to(input_dtype);
}

}  // namespace lorakit::quant
