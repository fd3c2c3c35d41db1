// The memory-saving paths give the plain path's numbers: chunked cross-entropy (never the full
// logits) and activation recompute per decoder layer, alone and together, on EXAONE 4.0 and GPT-NeoX
// models with PEFT adapters (scripts/lora_oracle.py), including LoRA dropout (the recompute restores
// the RNG state, so it draws the same masks).
#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "tests/tensor_compare.h"
#include "tests/test_paths.h"
#include "models/loss.h"

namespace fs = std::filesystem;
using namespace lorakit;
using lorakit::testing::compare;

namespace {

struct Outcome {
  double loss;
  std::vector<at::Tensor> grads;
};

Outcome run_once(const fs::path& dir, bool recompute, int64_t chunk, double dropout) {
  auto model = load_hf_model(dir / "base", {at::kFloat, at::kCPU});
  model->set_activation_recompute(recompute);
  lora::LoraConfig config = read_peft_adapter_config(dir / "adapter");
  config.lora_dropout = dropout;
  auto lora = lora::inject_lora(*model, config, 0);
  load_peft_adapter_weights(dir / "adapter", lora);
  lora.set_training(true);
  const SafetensorsFile ref(dir / "reference.safetensors");
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_current_seed(1234);
  const at::Tensor labels = ref.tensor("labels");
  const double tokens = (labels.slice(1, 1) != -100).sum().item<double>();
  const at::Tensor sum =
      lorakit::loss_and_backward(*model, ref.tensor("input_ids"), ref.tensor("attention_mask"), labels, 1.0 / tokens, chunk);
  Outcome out{sum.item<double>() / tokens, {}};
  for (const auto& [name, p] : lora.named_parameters()) out.grads.push_back(p.grad().clone());
  return out;
}

}  // namespace

TEST(LossPaths, ChunkedCrossEntropyAndRecomputeEqualThePlainPath) {
  const fs::path root = fs::path(lorakit::testing::parity_dir()).parent_path() / "lora";
  // One case per kind of block: post-norm (exaone4), parallel residual (gpt_neox), pre-norm Llama,
  // soft-capped logits in the chunked head (gemma2), Conv1D (gpt2), the recurrence (rwkv).
  for (const std::string name : {"exaone4-qkvo-r4", "exaone4-untied-all-linear-rslora", "gpt_neox-default-r4",
                                 "llama-default-bias-r4", "gemma2-qkvo-r4", "gpt2-default-r4", "rwkv-default-r4"}) {
    const fs::path dir = root / name;
    ASSERT_TRUE(fs::exists(dir / "reference.safetensors")) << "lora oracle output missing";
    for (const double dropout : {0.0, 0.1}) {
      const Outcome plain = run_once(dir, false, 0, dropout);
      if (dropout == 0.0) {  // the plain path is PEFT's loss
        const double peft = SafetensorsFile(dir / "reference.safetensors").tensor("loss").item<double>();
        EXPECT_NEAR(plain.loss, peft, 1e-6 * peft) << name;
      }
      for (const auto& [recompute, chunk] : std::vector<std::pair<bool, int64_t>>{{false, 1}, {false, 5}, {false, 4096},
                                                                                 {true, 0}, {true, 3}}) {
        SCOPED_TRACE(fmt::format("{} dropout {} recompute {} chunk {}", name, dropout, recompute, chunk));
        const Outcome other = run_once(dir, recompute, chunk, dropout);
        EXPECT_NEAR(other.loss, plain.loss, 1e-6 * plain.loss);
        double worst = 0;
        for (size_t i = 0; i < plain.grads.size(); ++i) {
          const auto c = compare(other.grads[i], plain.grads[i], 1e-6);
          EXPECT_TRUE(c.ok()) << "gradient " << i << ": " << c.first_mismatch;
          worst = std::max(worst, c.max_abs);
        }
        std::printf("%s dropout %.1f recompute %d chunk %lld: loss diff %.2e, gradients max abs diff %.2e\n", name.c_str(),
                    dropout, recompute, static_cast<long long>(chunk), std::abs(other.loss - plain.loss), worst);
      }
    }
  }
}
