// Activation recompute (gradient checkpointing) for one block: the forward keeps only the block's
// input; the backward runs the block again with gradients on and backpropagates through it, as
// torch.utils.checkpoint (reentrant) does. The RNG state (the CPU generator, and the CUDA
// generator of the block's device, from which dropout on CUDA tensors draws) is restored for the
// rerun so dropout draws the same masks.
#include "models/layers.h"

#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace lorakit {
namespace {

at::Generator device_generator(const c10::Device& device) { return at::globalContext().defaultGenerator(device); }

struct Recompute : torch::autograd::Function<Recompute> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t block_address) {
    auto* block = reinterpret_cast<std::function<at::Tensor(const at::Tensor&)>*>(block_address);
    ctx->saved_data["block"] = block_address;
    ctx->saved_data["rng"] = at::detail::getDefaultCPUGenerator().get_state();
    if (x.is_cuda()) ctx->saved_data["cuda_rng"] = device_generator(x.device()).get_state();
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
    std::optional<at::Generator> cuda;
    at::Tensor cuda_after;
    if (x.is_cuda()) {
      cuda = device_generator(x.device());
      cuda_after = cuda->get_state();
      cuda->set_state(ctx->saved_data["cuda_rng"].toTensor());
    }
    at::Tensor y;
    {
      at::AutoGradMode grad(true);
      y = (*block)(x);
    }
    generator.set_state(rng_after);
    if (cuda) cuda->set_state(cuda_after);
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
