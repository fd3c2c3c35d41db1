// Packed batches train what the same examples train unpacked: for every parity model (every
// architecture in the registry, with GQA, tied/untied, partial rotary, sliding-window hybrids),
// LoRA on all linear layers with non-zero lora_B, the summed loss and every LoRA gradient of a
// packed batch equal those of the examples padded one per row (fp32, 1e-5 relative). The same
// packed batch without its sequence ids (no block-diagonal mask) must differ: the test fails if
// attention stops keeping the packed examples apart.
#include <filesystem>
#include <random>
#include <set>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "checkpoints/hf_model.h"
#include "core/json_reader.h"
#include "data/batches.h"
#include "device/batch.h"
#include "lora/lora.h"
#include "models/loss.h"
#include "tests/tensor_compare.h"
#include "core/error.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using namespace lorakit;

namespace {

struct Outcome {
  double loss_sum;
  int64_t loss_tokens;
  std::vector<at::Tensor> grads;
};

// Examples of the given lengths: random ids, a prompt of ~1/3 masked out of the loss.
std::vector<data::Example> make_examples(const std::vector<int64_t>& lengths, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<data::Example> out;
  for (size_t i = 0; i < lengths.size(); ++i) {
    data::Example e;
    e.line = i + 2;
    for (int64_t t = 0; t < lengths[i]; ++t) {
      const auto id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
      e.input_ids.push_back(id);
      e.labels.push_back(t < lengths[i] / 3 ? data::kIgnoreIndex : id);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Outcome run_batch(CausalLM& model, lora::LoraModel& lora, const data::Batch& batch, bool drop_sequence_ids,
                  const c10::Device& device) {
  for (auto& [name, p] : lora.named_parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
  DeviceBatch x = to_device(batch, device);
  if (drop_sequence_ids) x.layout.sequence_ids = at::Tensor();
  const at::Tensor sum = loss_and_backward(model, x.input_ids, x.layout, x.labels, 1.0, 0);
  Outcome out{sum.item<double>(), batch.loss_tokens, {}};
  for (const auto& [name, p] : lora.named_parameters()) out.grads.push_back(p.grad().clone());
  return out;
}

}  // namespace

TEST(Packing, PackedBatchesEqualUnpackedForEveryArchitecture) {
  const fs::path parity = lorakit::testing::parity_dir();
  ASSERT_TRUE(fs::exists(parity / "manifest.json")) << "scripts/parity.py output missing (ctest runs it)";
  const nlohmann::json manifest = JsonReader::parse_file((parity / "manifest.json").string());
  std::set<std::string> covered;
  int visited = 0;
  for (const auto& c : manifest["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const c10::Device device(lorakit::testing::test_device());
    auto model = load_hf_model(parity / name, {at::kFloat, device});
    if (!model->masks_padding()) {  // rwkv: a recurrence cannot keep packed examples apart, and refuses them
      TokenLayout packed_layout;
      packed_layout.sequence_ids = at::tensor(std::vector<int64_t>{0, 0, 1, 1}, at::kLong).view({1, 4});
      EXPECT_THROW(model->forward(at::ones({1, 4}, at::kLong), packed_layout), lorakit::Error);
      covered.insert(c["model_type"].get<std::string>());
      ++visited;
      continue;
    }
    lora::LoraConfig config;
    config.r = 4;
    config.lora_alpha = 8;
    config.target_modules.names = {"all-linear"};
    auto lora = lora::inject_lora(*model, config, 7);
    at::manual_seed(11);
    for (auto& a : lora.adapters) a.lora->lora_B.detach().normal_(0, 0.05);  // PEFT starts B at 0: give it gradients' reach
    lora.set_training(true);

    // 8 examples of different lengths: three packed rows (3 + 3 + 2 examples) against one row each.
    const auto examples = make_examples({9, 4, 13, 6, 1, 11, 7, 5}, model->vocab_size(), 3);
    std::vector<std::vector<const data::Example*>> rows = {{&examples[0], &examples[1], &examples[2]},
                                                           {&examples[3], &examples[4], &examples[5]},
                                                           {&examples[6], &examples[7]}};
    const data::Batch packed = data::pack_batch(rows, 0);
    const data::Batch unpacked = data::pad_batch(examples, 0);
    ASSERT_EQ(packed.rows, 3);
    ASSERT_EQ(unpacked.rows, 8);

    const Outcome a = run_batch(*model, lora, unpacked, false, device);
    const Outcome b = run_batch(*model, lora, packed, false, device);
    EXPECT_EQ(a.loss_tokens, b.loss_tokens);
    EXPECT_NEAR(b.loss_sum, a.loss_sum, 1e-5 * std::abs(a.loss_sum));
    double worst = 0;
    for (size_t i = 0; i < a.grads.size(); ++i) {
      const double scale = std::max(a.grads[i].abs().max().item<double>(), 1e-12);
      const auto cmp = lorakit::testing::compare(b.grads[i], a.grads[i], 1e-5 * scale);
      EXPECT_TRUE(cmp.ok()) << lora.named_parameters()[i].first << ": " << cmp.first_mismatch;
      worst = std::max(worst, cmp.max_abs / scale);
    }
    // Without the block-diagonal mask, later examples of a row attend to earlier ones: other gradients.
    const Outcome leaky = run_batch(*model, lora, packed, true, device);
    double leak = 0;
    for (size_t i = 0; i < a.grads.size(); ++i)
      leak = std::max(leak, (leaky.grads[i] - a.grads[i]).abs().max().item<double>() /
                                std::max(a.grads[i].abs().max().item<double>(), 1e-12));
    EXPECT_GT(leak, 1e-2) << "the block mask made no difference";
    std::printf("%-28s packed vs unpacked: loss %.9g vs %.9g (rel %.1e), worst gradient rel %.1e over %zu tensors; "
                "without the block mask: gradients off by %.2g\n", name.c_str(), b.loss_sum, a.loss_sum,
                std::abs(b.loss_sum - a.loss_sum) / a.loss_sum, worst, a.grads.size(), leak);
    covered.insert(c["model_type"].get<std::string>());
    ++visited;
  }
  EXPECT_EQ(visited, static_cast<int>(manifest["cases"].size()));
  for (const auto& arch : architectures()) EXPECT_TRUE(covered.count(arch.model_type)) << arch.model_type << " not packed";
}
