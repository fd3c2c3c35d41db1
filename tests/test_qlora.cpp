// QLoRA against bitsandbytes + transformers + PEFT on the CPU (scripts/qlora_oracle.py): lorakit's
// 4-bit codes, absmax and nested statistics are bit-identical to quantize_4bit's, the dequantized
// weights identical; tiny llama, EXAONE 4.0 and GPT-NeoX models quantized at load (and read from the
// directories transformers saved in 4 bits) give bnb's logits, and PEFT's QLoRA loss and LoRA
// gradients; adapters and `lorakit quantize` / `merge` outputs load in transformers and PEFT.
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

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
#include "quant/bnb_4bit.h"
#include "tests/cli_runner.h"
#include "tests/tensor_compare.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using namespace lorakit;
using lorakit::testing::compare;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "qlora"; }

nlohmann::json manifest() {
  std::ifstream in(oracle_dir() / "manifest.json");
  return in ? nlohmann::json::parse(in) : nlohmann::json();
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_qlora_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

// Bit-identity: same shape, dtype and every byte (NaN-free inputs).
void expect_identical(const at::Tensor& actual, const at::Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type()) << what;
  const at::Tensor a = actual.to(at::kCPU).contiguous(), e = expected.to(at::kCPU).contiguous();
  const int64_t bytes = a.numel() * static_cast<int64_t>(a.element_size());
  const int64_t differing = std::memcmp(a.data_ptr(), e.data_ptr(), bytes) == 0
                                ? 0
                                : (a.to(at::kDouble) != e.to(at::kDouble)).sum().item<int64_t>();
  std::string first;
  if (differing > 0) {
    const int64_t i = (a.to(at::kDouble) != e.to(at::kDouble)).reshape({-1}).nonzero()[0][0].item<int64_t>();
    first = fmt::format(", the first at flat index {}: {} vs expected {}", i, a.reshape({-1})[i].item<double>(),
                        e.reshape({-1})[i].item<double>());
  }
  EXPECT_EQ(std::memcmp(a.data_ptr(), e.data_ptr(), bytes), 0) << what << ": " << differing << " of " << a.numel()
                                                               << " values differ" << first;
}

quant::QuantizeConfig config_of(const nlohmann::json& c) {
  quant::QuantizeConfig q;
  q.type = c["quant_type"];
  q.double_quant = c["double_quant"];
  return q;
}

std::map<std::string, const Linear*> linears_of(CausalLM& model) {
  struct Collect : ParamVisitor {
    std::map<std::string, const Linear*> out;
    void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>&) override {}
    void linear(const std::string& name, Linear& l) override { out[name] = &l; }
  } collect;
  model.visit(collect);
  return collect.out;
}

}  // namespace

TEST(Qlora, DynamicMapIsBitsandbytes) {
  const SafetensorsFile ref(oracle_dir() / "tensors.safetensors");
  expect_identical(quant::dynamic_map(), ref.tensor("dynamic_map"), "create_dynamic_map(signed=True)");
}

TEST(Qlora, QuantizeIsBitIdenticalToBitsandbytes) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  const SafetensorsFile ref(oracle_dir() / "tensors.safetensors");
  int checked = 0;
  for (const std::string shape : m["shapes"]) {
    const at::Tensor input = ref.tensor(shape + ".input");
    for (const std::string type : {"nf4", "fp4"})
      for (const bool nested : {false, true}) {
        const std::string key = fmt::format("{}.{}.{}", shape, type, nested ? "double" : "single");
        SCOPED_TRACE(key);
        const quant::Weight4bit w = quant::quantize_4bit(input, type, nested);
        expect_identical(w.packed, ref.tensor(key + ".packed"), "packed codes");
        expect_identical(w.absmax, ref.tensor(key + ".absmax"), "absmax");
        expect_identical(w.quant_map, ref.tensor(key + ".quant_map"), "quant_map");
        if (nested) {
          expect_identical(w.nested_absmax, ref.tensor(key + ".nested_absmax"), "nested_absmax");
          expect_identical(w.nested_quant_map, ref.tensor(key + ".nested_quant_map"), "nested_quant_map");
          EXPECT_EQ(w.offset, ref.tensor(key + ".offset").item<float>());
        }
        // Values, not bytes: bitsandbytes' C kernel gives FP4's code 8 as -0.0, the table +0.0.
        EXPECT_TRUE(at::equal(w.dequantize(), ref.tensor(key + ".dequantized"))) << "dequantize_4bit";
        ++checked;
      }
  }
  EXPECT_EQ(checked, 4 * static_cast<int>(m["shapes"].size()));
}

// Quantized as read from the float32 checkpoint, every 4-bit Linear's tensors equal, byte for byte,
// what transformers saved for the same model (packed codes, statistics and the quant_state JSON);
// the 4-bit directory itself loads to the same weights.
TEST(Qlora, QuantizedAtLoadEqualsTheCheckpointTransformersSaved) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null());
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    auto model = load_hf_model(dir / "base", {at::kFloat, at::kCPU, config_of(c)});
    auto prequantized = load_hf_model(dir / "q4", {at::kFloat, at::kCPU});
    const SafetensorsFile saved(dir / "q4" / "model.safetensors");
    const SafetensorsFile expected(dir / "expected.safetensors");
    const auto linears = linears_of(*model);
    const auto prequantized_linears = linears_of(*prequantized);
    std::vector<std::string> quantized;
    for (const auto& [module, linear] : linears) {
      if (!linear->weight_4bit) continue;
      quantized.push_back(module);
      for (const auto& [suffix, tensor] : quant::state_tensors(*linear->weight_4bit))
        expect_identical(tensor, saved.tensor(module + ".weight" + suffix), module + ".weight" + suffix);
      const at::Tensor dequantized = expected.tensor("dequantized." + module + ".weight");
      EXPECT_TRUE(at::equal(linear->weight_4bit->dequantize(), dequantized)) << module << " dequantized";
      ASSERT_TRUE(prequantized_linears.at(module)->weight_4bit) << module;
      EXPECT_TRUE(at::equal(prequantized_linears.at(module)->weight_4bit->dequantize(), dequantized))
          << module << " from the 4-bit directory";
    }
    EXPECT_EQ(quantized, c["quantized_modules"].get<std::vector<std::string>>());
  }
}

TEST(Qlora, LogitsLossAndLoraGradientsMatchBitsandbytesAndPeft) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null());
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    const SafetensorsFile ref(dir / "expected.safetensors");
    // On the GPU machine (LORAKIT_TEST_DEVICE=cuda) the 4-bit model runs there, against the CPU oracle.
    const c10::Device device(lorakit::testing::test_device());
    const at::Tensor ids = ref.tensor("input_ids").to(device), mask = ref.tensor("attention_mask").to(device);
    for (const char* source : {"base", "q4"}) {
      SCOPED_TRACE(source);
      auto model = load_hf_model(dir / source, {at::kFloat, device, config_of(c)});
      {
        c10::NoGradGuard no_grad;
        const auto cmp = compare(model->forward(ids, mask), ref.tensor("logits_4bit"), 1e-4);
        EXPECT_TRUE(cmp.ok()) << "4-bit logits: " << cmp.first_mismatch;
        std::printf("%s %s from %s: 4-bit logits vs bitsandbytes max %.2e\n", device.str().c_str(), name.c_str(), source,
                    cmp.max_abs);
      }
      auto lora = lora::inject_lora(*model, read_peft_adapter_config(dir / "adapter"), 0);
      load_peft_adapter_weights(dir / "adapter", lora);
      const at::Tensor loss = causal_lm_loss(model->forward(ids, mask), ref.tensor("labels").to(device));
      loss.backward();
      const auto loss_cmp = compare(loss.reshape({1}), ref.tensor("loss"), 1e-4);
      EXPECT_TRUE(loss_cmp.ok()) << "loss: " << loss_cmp.first_mismatch;
      double worst = 0;
      for (const auto& [key, parameter] : lora.named_parameters()) {
        ASSERT_TRUE(parameter.grad().defined()) << key << " has no gradient";
        const auto cmp = compare(parameter.grad(), ref.tensor("grad." + key), 1e-4);
        EXPECT_TRUE(cmp.ok()) << key << ": " << cmp.first_mismatch;
        worst = std::max(worst, cmp.max_abs);
      }
      lora.set_training(false);
      c10::NoGradGuard no_grad;
      const auto lora_cmp = compare(model->forward(ids, mask), ref.tensor("logits_lora"), 1e-4);
      EXPECT_TRUE(lora_cmp.ok()) << "QLoRA logits: " << lora_cmp.first_mismatch;
      std::printf("%s from %s: QLoRA loss %.2e, %zu LoRA gradients max %.2e, logits %.2e\n", name.c_str(), source,
                  loss_cmp.max_abs, lora.named_parameters().size(), worst, lora_cmp.max_abs);
    }
  }
}

TEST(Qlora, SkipModulesFollowTransformers) {
  const std::string name = "model.layers.11.mlp.down_proj";
  EXPECT_TRUE(quant::is_skipped(name, {"down_proj"}));           // suffix
  EXPECT_TRUE(quant::is_skipped(name, {"model.layers.11"}));     // prefix to a boundary
  EXPECT_FALSE(quant::is_skipped(name, {"model.layers.1"}));     // not a boundary
  EXPECT_TRUE(quant::is_skipped(name, {"model.layers.*.mlp"}));  // regex prefix
  EXPECT_FALSE(quant::is_skipped(name, {"mlp"}));                // neither prefix nor suffix
  EXPECT_FALSE(quant::is_skipped(name, {"mlp.down"}));
  EXPECT_FALSE(quant::is_skipped(name, {}));
}

TEST(Qlora, BadInputIsNamed) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null());
  // A damaged quant_state names the tensor.
  const fs::path q4 = oracle_dir() / "llama-nf4" / "q4";
  const fs::path bad = scratch("bad-q4");
  fs::create_directories(bad);
  fs::copy_file(q4 / "config.json", bad / "config.json");
  const SafetensorsFile saved(q4 / "model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  const std::string victim = "model.layers.1.mlp.up_proj.weight.quant_state.bitsandbytes__nf4";
  for (const auto& e : saved.entries()) {
    at::Tensor t = saved.tensor(e.name);
    if (e.name == victim) t = t.slice(0, 0, 20).clone();  // truncated JSON
    tensors.emplace_back(e.name, t);
  }
  save_safetensors(bad / "model.safetensors", tensors);
  std::string message;
  try {
    load_hf_model(bad, {});
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("quant_state"), std::string::npos) << message;

  // A missing statistic is a missing tensor of the check.
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const auto& t) {
    return t.first == "model.layers.0.self_attn.q_proj.weight.absmax";
  }), tensors.end());
  save_safetensors(bad / "model.safetensors", tensors);
  message.clear();
  try {
    load_hf_model(bad, {});
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find("model.layers.0.self_attn.q_proj.weight.absmax"), std::string::npos) << message;

  // An unknown type is refused before anything is read.
  quant::QuantizeConfig int3;
  int3.type = "int3";
  message.clear();
  try {
    load_hf_model(oracle_dir() / "llama-nf4" / "base", {at::kFloat, at::kCPU, int3});
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("'int3'"), std::string::npos) << message;
}

namespace {

// scripts/check_exports.py in one process for all `lines`; one JSON report per line.
std::vector<nlohmann::json> check_batch(const std::vector<std::string>& lines) {
  const fs::path jobs = scratch("jobs.txt");
  std::ofstream(jobs) << fmt::format("{}\n", fmt::join(lines, "\n"));
  const auto r = lorakit::testing::run_command(fmt::format("{} {}/scripts/check_exports.py batch --jobs '{}'",
                                                           lorakit::testing::venv_python(),
                                                           fs::path(LORAKIT_SOURCE_DIR).string(), jobs.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const size_t line = out.rfind('\n');
  const nlohmann::json reports = nlohmann::json::parse(out.substr(line == std::string::npos ? 0 : line + 1), nullptr, false);
  EXPECT_TRUE(reports.is_array() && reports.size() == lines.size()) << r.output;
  return reports.is_array() ? reports.get<std::vector<nlohmann::json>>() : std::vector<nlohmann::json>(lines.size());
}

at::Tensor qlora_logits(const fs::path& model_dir, const quant::QuantizeConfig& q, const fs::path& adapter,
                        const at::Tensor& ids, const at::Tensor& mask) {
  auto model = load_hf_model(model_dir, {at::kFloat, at::kCPU, q});
  std::optional<lora::LoraModel> lora;
  if (!adapter.empty()) {
    lora = lora::inject_lora(*model, read_peft_adapter_config(adapter), 0);
    load_peft_adapter_weights(adapter, *lora);
    lora->set_training(false);
  }
  c10::NoGradGuard no_grad;
  return model->forward(ids, mask);
}

}  // namespace

// `lorakit quantize` writes what transformers writes (byte for byte) and transformers loads it with
// bitsandbytes' logits; a PEFT QLoRA adapter on lorakit's 4-bit directory; `merge` of a 4-bit base
// loads in AutoModelForCausalLM with the QLoRA model's logits.
TEST(Qlora, QuantizeAndMergeOutputsLoadInTransformers) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null());
  std::vector<std::string> jobs;
  struct Expect {
    std::string what;
    at::Tensor logits;
    fs::path out;
  };
  std::vector<Expect> expects;
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    if (!c["double_quant"].get<bool>()) continue;
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    const fs::path q4 = scratch(name + "-q4"), merged = scratch(name + "-merged");
    auto r = lorakit::testing::run(fmt::format("quantize '{}' --out '{}'", (dir / "base").string(), q4.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("quantized"), std::string::npos) << r.output;
    // The tensors transformers saved for this model, byte for byte (JSON included), and no others.
    const SafetensorsFile ours(q4 / "model.safetensors"), theirs(dir / "q4" / "model.safetensors");
    std::set<std::string> our_names, their_names;
    for (const auto& e : ours.entries()) our_names.insert(e.name);
    for (const auto& e : theirs.entries()) their_names.insert(e.name);
    EXPECT_EQ(our_names, their_names);
    for (const auto& e : theirs.entries())
      if (ours.find(e.name)) expect_identical(ours.tensor(e.name), theirs.tensor(e.name), e.name);
    r = lorakit::testing::run(
        fmt::format("merge --model '{}' --adapter '{}' --out '{}'", q4.string(), (dir / "adapter").string(), merged.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("dequantized"), std::string::npos) << r.output;

    const fs::path inputs = dir / "expected.safetensors";
    const SafetensorsFile ref(inputs);
    const at::Tensor ids = ref.tensor("input_ids"), mask = ref.tensor("attention_mask");
    jobs.push_back(fmt::format("merged --model '{}' --inputs '{}' --out '{}'", q4.string(), inputs.string(),
                               (q4.string() + ".logits")));
    expects.push_back({name + " lorakit quantize in transformers", ref.tensor("logits_4bit"), q4.string() + ".logits"});
    jobs.push_back(fmt::format("peft --base '{}' --adapter '{}' --inputs '{}' --out '{}'", q4.string(),
                               (dir / "adapter").string(), inputs.string(), q4.string() + ".peft"));
    expects.push_back({name + " PEFT adapter on lorakit's 4-bit directory", ref.tensor("logits_lora"), q4.string() + ".peft"});
    jobs.push_back(fmt::format("merged --model '{}' --inputs '{}' --out '{}'", merged.string(), inputs.string(),
                               merged.string() + ".logits"));
    expects.push_back({name + " merged QLoRA in transformers",
                       qlora_logits(q4, {}, dir / "adapter", ids, mask), merged.string() + ".logits"});
  }
  {
    // Modules kept dense (model.skip_modules / --skip-modules): transformers keeps them so too, from
    // the config's llm_int8_skip_modules.
    const fs::path dir = oracle_dir() / "llama-nf4", q4 = scratch("llama-nf4-skip-mlp");
    const auto r = lorakit::testing::run(
        fmt::format("quantize '{}' --out '{}' --skip-modules 'model.layers.*.mlp'", (dir / "base").string(), q4.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto model = load_hf_model(q4, {});
    int dense = 0, four_bit = 0;
    for (const auto& [name, linear] : linears_of(*model)) (linear->weight_4bit ? four_bit : dense) += 1;
    EXPECT_EQ(four_bit, 8);  // q, k, v, o of 2 layers
    EXPECT_EQ(dense, 7);     // gate, up, down of 2 layers and lm_head
    const SafetensorsFile ref(dir / "expected.safetensors");
    c10::NoGradGuard no_grad;
    const fs::path inputs = dir / "expected.safetensors";
    jobs.push_back(fmt::format("merged --model '{}' --inputs '{}' --out '{}'", q4.string(), inputs.string(),
                               q4.string() + ".logits"));
    expects.push_back({"llama-nf4 with mlp unquantized in transformers",
                       model->forward(ref.tensor("input_ids"), ref.tensor("attention_mask")), q4.string() + ".logits"});
  }
  ASSERT_FALSE(jobs.empty());
  const auto reports = check_batch(jobs);
  for (size_t i = 0; i < expects.size(); ++i) {
    SCOPED_TRACE(expects[i].what);
    if (reports[i].contains("missing")) {
      EXPECT_TRUE(reports[i]["missing"].empty()) << reports[i].dump();
      EXPECT_TRUE(reports[i]["unexpected"].empty()) << reports[i].dump();
    }
    const auto cmp = compare(SafetensorsFile(expects[i].out).tensor("logits"), expects[i].logits, 1e-4);
    EXPECT_TRUE(cmp.ok()) << cmp.first_mismatch;
    std::printf("%s: logits max %.2e\n", expects[i].what.c_str(), cmp.max_abs);
  }
}

// A QLoRA run (`model.quantization: nf4` in the recipe): its adapter loads in PEFT on the
// bitsandbytes model with lorakit's logits, and `merge --quantization nf4` folds it into the same
// dequantized weights.
TEST(Qlora, TrainedQloraAdapterLoadsInPeftOnBitsandbytes) {
  const fs::path oracle = oracle_dir().parent_path() / "train";
  ASSERT_TRUE(fs::exists(oracle / "recipe.yaml")) << "train oracle output missing";
  const fs::path run_dir = scratch("qlora-run"), merged = scratch("qlora-run-merged");
  auto r = lorakit::testing::run(fmt::format("train '{}' --set model.quantization=nf4 --set train.max_steps=3 "
                                             "--set train.save_steps=0 --set output.dir='{}'",
                                             (oracle / "recipe.yaml").string(), run_dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path adapter = run_dir / "adapter";
  r = lorakit::testing::run(fmt::format("merge --model '{}' --adapter '{}' --quantization nf4 --out '{}'",
                                        (oracle / "model").string(), adapter.string(), merged.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  at::Tensor ids = at::randint(3, 300, {2, 11}, at::kLong);
  at::Tensor mask = at::ones({2, 11}, at::kLong);
  mask[1].slice(0, 7).fill_(0);
  const fs::path inputs = run_dir.parent_path() / "qlora_inputs.safetensors";
  save_safetensors(inputs, {{"input_ids", ids}, {"attention_mask", mask}});
  quant::QuantizeConfig nf4;
  nf4.type = "nf4";
  const at::Tensor ours = qlora_logits(oracle / "model", nf4, adapter, ids, mask);
  const auto reports = check_batch(
      {fmt::format("peft --base '{}' --quantize nf4 --adapter '{}' --inputs '{}' --out '{}'", (oracle / "model").string(),
                   adapter.string(), inputs.string(), (run_dir.string() + ".peft")),
       fmt::format("merged --model '{}' --inputs '{}' --out '{}'", merged.string(), inputs.string(),
                   merged.string() + ".logits")});
  EXPECT_TRUE(reports[0]["missing"].empty() && reports[0]["unexpected"].empty()) << reports[0].dump();
  const auto peft_cmp = compare(SafetensorsFile(run_dir.string() + ".peft").tensor("logits"), ours, 1e-4);
  EXPECT_TRUE(peft_cmp.ok()) << "PEFT on bitsandbytes: " << peft_cmp.first_mismatch;
  const auto merged_cmp = compare(SafetensorsFile(merged.string() + ".logits").tensor("logits"), ours, 1e-4);
  EXPECT_TRUE(merged_cmp.ok()) << "merged: " << merged_cmp.first_mismatch;
  std::printf("lorakit QLoRA adapter: PEFT on bitsandbytes logits max %.2e; merged (dense) in transformers %.2e\n",
              peft_cmp.max_abs, merged_cmp.max_abs);
}

// `inspect`'s NF4 estimate is what loading with model.quantization: nf4 allocates.
TEST(Qlora, InspectEstimatesTheBytesLoadingAllocates) {
  const fs::path dir = oracle_dir() / "llama-nf4" / "base";
  const auto r = lorakit::testing::run(fmt::format("inspect '{}' --json", dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json report = nlohmann::json::parse(r.output);
  quant::QuantizeConfig nf4;
  nf4.type = "nf4";
  auto model = load_hf_model(dir, {at::kFloat, at::kCPU, nf4});
  int64_t quantized_bytes = 0, quantized_params = 0;
  for (const auto& [name, linear] : linears_of(*model))
    if (linear->weight_4bit) {
      quantized_bytes += linear->weight_4bit->bytes();
      quantized_params += linear->weight_4bit->numel();
    }
  const nlohmann::json& estimate = report["memory"]["nf4"];
  EXPECT_EQ(estimate["quantized_bytes"].get<int64_t>(), quantized_bytes);
  EXPECT_EQ(estimate["quantized_params"].get<int64_t>(), quantized_params);
  EXPECT_EQ(estimate["unquantized_params"].get<int64_t>() + quantized_params, model->num_parameters());
  EXPECT_EQ(estimate["weights_bytes"].get<int64_t>(),
            quantized_bytes + 4 * estimate["unquantized_params"].get<int64_t>());  // float32 checkpoint
}
