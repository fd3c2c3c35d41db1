// Activation recompute (gradient checkpointing) for one block: the forward keeps only the block's
// input; the backward runs the block again with gradients on and backpropagates through it, as
// torch.utils.checkpoint (reentrant) does. The CPU RNG state is restored for the rerun so dropout
// draws the same masks.
#include "models/layers.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace lorakit {
namespace {

struct Recompute : torch::autograd::Function<Recompute> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t block_address) {
    auto* block = reinterpret_cast<std::function<at::Tensor(const at::Tensor&)>*>(block_address);
    ctx->saved_data["block"] = block_address;
    ctx->saved_data["rng"] = at::detail::getDefaultCPUGenerator().get_state();
    ctx->save_for_backward({x});
    at::NoGradGuard no_grad;
    return (*block)(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_output) {
    std::unique_ptr<std::function<at::Tensor(const at::Tensor&)>> block(
        reinterpret_cast<std::function<at::Tensor(const at::Tensor&)>*>(ctx->saved_data["block"].toInt()));
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    const at::Tensor rng_after = generator.get_state();
    generator.set_state(ctx->saved_data["rng"].toTensor());
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode grad(true);
      y = (*block)(x);
    }
    generator.set_state(rng_after);
    torch::autograd::backward({y}, {grad_output[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

at::Tensor recompute_in_backward(std::function<at::Tensor(const at::Tensor&)> block, const at::Tensor& x) {
  if (!at::GradMode::is_enabled()) return block(x);
  // The block lives until the backward runs (which frees it).
  auto* owned = new std::function<at::Tensor(const at::Tensor&)>(std::move(block));
  // The block's LoRA parameters need the output in the graph even when x itself (frozen embeddings)
  // has no gradient: PEFT's enable_input_require_grads, here.
  const at::Tensor input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return Recompute::apply(input, reinterpret_cast<int64_t>(owned));
}

}  // namespace lorakit
