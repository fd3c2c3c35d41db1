// LoRA against PEFT (scripts/lora_oracle.py): the same base model and adapter (saved by PEFT, loaded
// by lorakit) give the same logits, loss and gradients of every lora_A / lora_B, and the same
// trainable-parameter counts; target matching follows PEFT's rules; adapters written by lorakit read
// back; mismatched adapters are refused with the module and both shapes.
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "lora/lora.h"
#include "models/loss.h"
#include "tests/cli_runner.h"
#include "tests/tensor_compare.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using namespace lorakit;
using lorakit::testing::compare;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "lora"; }

nlohmann::json manifest() {
  std::ifstream in(oracle_dir() / "manifest.json");
  return in ? nlohmann::json::parse(in) : nlohmann::json();
}

}  // namespace

TEST(Lora, ForwardAndGradientsMatchPeft) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    const c10::Device device(lorakit::testing::test_device());
    auto model = load_hf_model(dir / "base", {at::kFloat, device});
    auto lora = lora::inject_lora(*model, read_peft_adapter_config(dir / "adapter"), 0);
    load_peft_adapter_weights(dir / "adapter", lora);
    EXPECT_EQ(lora.trainable_parameters, c["trainable"].get<int64_t>());
    EXPECT_EQ(lora.all_parameters, c["all"].get<int64_t>());

    const SafetensorsFile ref(dir / "reference.safetensors");
    const at::Tensor logits = model->forward(ref.tensor("input_ids").to(device), ref.tensor("attention_mask").to(device));
    const at::Tensor loss = causal_lm_loss(logits, ref.tensor("labels").to(device));
    loss.backward();
    const auto logits_cmp = compare(logits, ref.tensor("logits"), 1e-5);
    EXPECT_TRUE(logits_cmp.ok()) << "logits: " << logits_cmp.first_mismatch;
    const auto loss_cmp = compare(loss.reshape({1}), ref.tensor("loss"), 1e-6);
    EXPECT_TRUE(loss_cmp.ok()) << "loss: " << loss_cmp.first_mismatch;
    double worst = 0;
    size_t grads = 0;
    for (const auto& [key, parameter] : lora.named_parameters()) {
      ASSERT_TRUE(ref.find("grad/" + key)) << key;
      ASSERT_TRUE(parameter.grad().defined()) << key << " has no gradient";
      const auto grad_cmp = compare(parameter.grad(), ref.tensor("grad/" + key), 1e-6);
      EXPECT_TRUE(grad_cmp.ok()) << key << ": " << grad_cmp.first_mismatch;
      worst = std::max(worst, grad_cmp.max_abs);
      ++grads;
    }
    std::printf("%s %s: logits %.2e, loss %.2e, %zu LoRA gradients max %.2e; %s\n", device.str().c_str(), name.c_str(), logits_cmp.max_abs,
                loss_cmp.max_abs, grads, worst, lora.trainable_line().c_str());
  }
}

TEST(Lora, TargetMatchingFollowsPeft) {
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.o_proj",
                                          "model.layers.0.mlp.up_proj", "model.layers.10.self_attn.q_proj", "lm_head"};
  lora::TargetModules list;
  list.names = {"q_proj", "up_proj"};
  EXPECT_EQ(lora::match_targets(list, names),
            (std::vector<std::string>{names[0], names[2], names[3]}));
  list.names = {"self_attn.q_proj"};  // suffix after a dot
  EXPECT_EQ(lora::match_targets(list, names).size(), 2u);
  list.names = {"proj"};  // no partial names
  EXPECT_TRUE(lora::match_targets(list, names).empty());
  lora::TargetModules regex;
  regex.regex = R"(model\.layers\.1\d*\..*q_proj)";  // fullmatch
  EXPECT_EQ(lora::match_targets(regex, names), (std::vector<std::string>{names[3]}));
  lora::TargetModules all;
  all.names = {"all-linear"};
  EXPECT_EQ(lora::match_targets(all, names).size(), 4u);  // not lm_head
}

TEST(Lora, SavedAdapterReadsBackAndMismatchesAreNamed) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null());
  const fs::path dir = oracle_dir() / "exaone4-qkvo-r4";
  auto model = load_hf_model(dir / "base", {at::kFloat, at::kCPU});
  auto lora = lora::inject_lora(*model, read_peft_adapter_config(dir / "adapter"), 0);
  load_peft_adapter_weights(dir / "adapter", lora);
  const fs::path out = fs::temp_directory_path() / fmt::format("lorakit_test_lora_{}", ::getpid()) / "adapter";
  fs::remove_all(out.parent_path());
  fs::create_directories(out.parent_path());
  save_peft_adapter(out, lora, (dir / "base").string());
  EXPECT_THROW(save_peft_adapter(out, lora, "x"), Error);  // never overwritten by accident
  const auto config = nlohmann::json::parse(std::ifstream(out / "adapter_config.json"));
  EXPECT_EQ(config["base_model_name_or_path"], (dir / "base").string());
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["peft_type"], "LORA");
  // The written tensors equal PEFT's.
  const SafetensorsFile ours(out / "adapter_model.safetensors"), peft(dir / "adapter" / "adapter_model.safetensors");
  ASSERT_EQ(ours.entries().size(), peft.entries().size());
  for (const auto& entry : peft.entries())
    EXPECT_TRUE(compare(ours.tensor(entry.name), peft.tensor(entry.name), 0).ok()) << entry.name;
  EXPECT_EQ(ours.metadata().at("format"), "pt");

  // An adapter of another rank or for another model does not load silently.
  auto other = load_hf_model(oracle_dir() / "gpt_neox-default-r4" / "base", {at::kFloat, at::kCPU});
  auto other_lora = lora::inject_lora(*other, read_peft_adapter_config(oracle_dir() / "gpt_neox-default-r4" / "adapter"), 0);
  try {
    load_peft_adapter_weights(out, other_lora);
    FAIL() << "loaded an EXAONE adapter into GPT-NeoX";
  } catch (const Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "missing base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight");
    EXPECT_CONTAINS(std::string(e.what()), "unexpected base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  }
  lora::LoraConfig rank8 = read_peft_adapter_config(dir / "adapter");
  rank8.r = 8;
  auto model8 = load_hf_model(dir / "base", {at::kFloat, at::kCPU});
  auto lora8 = lora::inject_lora(*model8, rank8, 0);
  try {
    load_peft_adapter_weights(out, lora8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "q_proj.lora_A.weight: the adapter has [4, 64], this model needs [8, 64]");
  }
  lora::LoraConfig bad;
  bad.target_modules.names = {"q_prj"};
  try {
    lora::inject_lora(*model8, bad, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "matches no module");
    EXPECT_CONTAINS(std::string(e.what()), "did you mean 'q_proj'");
    EXPECT_CONTAINS(std::string(e.what()), "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  }
}

TEST(Lora, InitialisationIsPeftsAndANoOp) {
  const fs::path dir = oracle_dir() / "exaone4-qkvo-r4";
  ASSERT_TRUE(fs::exists(dir)) << "oracle output missing";
  auto model = load_hf_model(dir / "base", {at::kFloat, at::kCPU});
  const at::Tensor ids = at::randint(3, 200, {1, 12}, at::kLong);
  at::Tensor before;
  {
    c10::NoGradGuard no_grad;
    before = model->forward(ids, at::ones_like(ids));
  }
  lora::LoraConfig config;
  config.r = 16;
  config.target_modules.names = {"q_proj", "v_proj"};
  auto lora = lora::inject_lora(*model, config, 1234);
  c10::NoGradGuard no_grad;
  const at::Tensor after = model->forward(ids, at::ones_like(ids));
  EXPECT_TRUE(compare(after, before, 0).ok()) << "B = 0 must leave the outputs unchanged";
  const at::Tensor& a = lora.adapters[0].lora->lora_A;  // (16, 64): U(-1/8, 1/8)
  EXPECT_LE(a.abs().max().item<double>(), 0.125);
  EXPECT_GT(a.abs().max().item<double>(), 0.1);
  EXPECT_NEAR(a.std().item<double>(), 0.125 / std::sqrt(3.0), 0.01);
  EXPECT_EQ(lora.adapters.size(), 4u);  // 2 layers x (q, v)
}
