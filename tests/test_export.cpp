// What lorakit exports, read by transformers and PEFT (scripts/check_exports.py): (a) an adapter
// lorakit trained loads in PeftModel.from_pretrained with no missing or unexpected keys and the same
// logits; (c) a merged directory loads in AutoModelForCausalLM with the unmerged adapter model's
// logits (tied EXAONE, untied EXAONE, GPT-NeoX; fp32 and bf16); (d) greedy generation gives
// transformers.generate's tokens with and without an adapter; an interrupted merge leaves no output.
// (b), PEFT's adapters in lorakit, is tests/test_lora.cpp.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "tests/cli_runner.h"
#include "tests/tensor_compare.h"
#include "tests/test_paths.h"
#include "inference/generate.h"
#include "inference/scores.h"

namespace fs = std::filesystem;
using namespace lorakit;
using lorakit::testing::compare;
using lorakit::testing::run;
using lorakit::testing::run_command;

namespace {

fs::path build_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path(); }
fs::path lora_case(const std::string& name) { return build_dir() / "lora" / name; }

// Every case of scripts/lora_oracle.py: each architecture, tied and untied, several LoraConfigs.
std::vector<nlohmann::json> lora_cases() {
  std::ifstream in(build_dir() / "lora" / "manifest.json");
  EXPECT_TRUE(in) << "lora oracle output missing";
  if (!in) return {};
  const nlohmann::json manifest = nlohmann::json::parse(in);
  return manifest["cases"].get<std::vector<nlohmann::json>>();
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_export_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

nlohmann::json check(const std::string& args) {
  const auto r = run_command(fmt::format("{} {}/scripts/check_exports.py {}", lorakit::testing::venv_python(),
                                         fs::path(LORAKIT_SOURCE_DIR).string(), args));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // The report is the last line (a JSON object, or a list in batch mode).
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const size_t line = out.rfind('\n');
  return nlohmann::json::parse(out.substr(line == std::string::npos ? 0 : line + 1), nullptr, false);
}

// Many checks in one Python process (transformers' import costs seconds): one report per line.
std::vector<nlohmann::json> check_batch(const std::vector<std::string>& lines) {
  const fs::path jobs = scratch("jobs.txt");
  std::ofstream(jobs) << fmt::format("{}\n", fmt::join(lines, "\n"));
  const nlohmann::json reports = check(fmt::format("batch --jobs '{}'", jobs.string()));
  EXPECT_EQ(reports.size(), lines.size());
  return reports.is_array() ? reports.get<std::vector<nlohmann::json>>() : std::vector<nlohmann::json>(lines.size());
}

// lorakit's logits for the inputs of a file, with an optional adapter.
at::Tensor lorakit_logits(const fs::path& model_dir, const fs::path& adapter, const SafetensorsFile& inputs) {
  auto model = load_hf_model(model_dir, {at::kFloat, at::kCPU});
  std::optional<lora::LoraModel> lora;
  if (!adapter.empty()) {
    lora = lora::inject_lora(*model, read_peft_adapter_config(adapter), 0);
    load_peft_adapter_weights(adapter, *lora);
    lora->set_training(false);
  }
  c10::NoGradGuard no_grad;
  return model->forward(inputs.tensor("input_ids"), inputs.tensor("attention_mask"));
}

}  // namespace

TEST(Export, LorakitAdapterLoadsInPeftWithTheSameLogits) {
  const fs::path oracle = build_dir() / "train";
  ASSERT_TRUE(fs::exists(oracle / "recipe.yaml")) << "train oracle output missing";
  const fs::path run_dir = scratch("trained");
  const auto r = run(fmt::format("train '{}' --adapter '{}' --set output.dir='{}'", (oracle / "recipe.yaml").string(),
                                 (oracle / "init_adapter").string(), run_dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Inputs: a padded batch of the tiny model's ids.
  const fs::path inputs = run_dir.parent_path() / "inputs.safetensors";
  at::Tensor ids = at::randint(3, 300, {2, 11}, at::kLong);
  at::Tensor mask = at::ones({2, 11}, at::kLong);
  mask[1].slice(0, 7).fill_(0);
  save_safetensors(inputs, {{"input_ids", ids}, {"attention_mask", mask}});
  const fs::path out = run_dir.parent_path() / "peft_logits.safetensors";
  const auto report = check(fmt::format("peft --base '{}' --adapter '{}' --inputs '{}' --out '{}'", (oracle / "model").string(),
                                        (run_dir / "adapter").string(), inputs.string(), out.string()));
  EXPECT_TRUE(report["missing"].empty()) << report.dump();
  EXPECT_TRUE(report["unexpected"].empty()) << report.dump();
  const SafetensorsFile file(inputs);
  const at::Tensor ours = lorakit_logits(oracle / "model", run_dir / "adapter", file);
  const at::Tensor theirs = SafetensorsFile(out).tensor("logits");
  // Padded positions are not compared: the two eager masks treat a fully masked row differently.
  const auto c = compare(ours.slice(1, 0, 7), theirs.slice(1, 0, 7), 1e-4);
  EXPECT_TRUE(c.ok()) << c.first_mismatch;
  EXPECT_TRUE(compare(ours[0], theirs[0], 1e-4).ok());
  std::printf("lorakit adapter in PEFT: logits max abs difference %.3e, 0 missing, 0 unexpected keys\n", c.max_abs);
}

// Per architecture: an adapter lorakit trains (2 steps on pre-tokenized rows, the model_type's
// default targets) loads in PeftModel.from_pretrained with 0 missing/unexpected keys and PEFT's logits.
TEST(Export, TrainedAdaptersOfEveryArchitectureLoadInPeft) {
  const fs::path work = scratch("trained-per-architecture");
  fs::create_directories(work);
  {
    std::ofstream rows(work / "rows.jsonl");
    at::manual_seed(11);
    for (int i = 0; i < 8; ++i) {
      const at::Tensor ids = at::randint(3, 200, {5 + 3 * i}, at::kLong);
      std::vector<int64_t> list(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
      rows << nlohmann::json({{"input_ids", list}}).dump() << "\n";
    }
  }
  const fs::path inputs = work / "inputs.safetensors";
  at::Tensor ids = at::randint(3, 200, {2, 11}, at::kLong), mask = at::ones({2, 11}, at::kLong);
  mask[1].slice(0, 7).fill_(0);
  save_safetensors(inputs, {{"input_ids", ids}, {"attention_mask", mask}});

  std::vector<std::pair<std::string, fs::path>> trained;  // case, run directory
  std::vector<std::string> jobs;
  std::set<std::string> architectures;
  for (const auto& c : lora_cases()) {
    const std::string name = c["name"];
    if (!architectures.insert(c["model_type"].get<std::string>()).second) continue;
    // The rows are token ids, so the base directories need no tokenizer (the pad id comes from config.json).
    const fs::path run_dir = work / name, recipe = work / (name + ".yaml"), base = lora_case(name) / "base";
    std::ofstream(recipe) << fmt::format(
        "model: {{path: '{}'}}\nlora: {{r: 4, lora_alpha: 8, lora_dropout: 0.0}}\n"
        "data: {{path: '{}', ids_column: input_ids}}\n"
        "train: {{max_steps: 2, per_device_train_batch_size: 2, learning_rate: 0.01, warmup_steps: 0, report_to: []}}\n"
        "output: {{dir: '{}'}}\n",
        base.string(), (work / "rows.jsonl").string(), run_dir.string());
    const auto r = run(fmt::format("train '{}'", recipe.string()));
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.output;
    trained.emplace_back(name, run_dir);
    jobs.push_back(fmt::format("peft --base '{}' --adapter '{}' --inputs '{}' --out '{}'", (lora_case(name) / "base").string(),
                               (run_dir / "adapter").string(), inputs.string(), (work / (name + "-peft.safetensors")).string()));
  }
  EXPECT_EQ(architectures.size(), lorakit::architectures().size());
  const auto reports = check_batch(jobs);
  const SafetensorsFile file(inputs);
  for (size_t i = 0; i < trained.size() && i < reports.size(); ++i) {
    const auto& [name, run_dir] = trained[i];
    SCOPED_TRACE(name);
    EXPECT_TRUE(reports[i]["missing"].empty()) << reports[i].dump();
    EXPECT_TRUE(reports[i]["unexpected"].empty()) << reports[i].dump();
    const at::Tensor ours = lorakit_logits(lora_case(name) / "base", run_dir / "adapter", file);
    const at::Tensor theirs = SafetensorsFile(work / (name + "-peft.safetensors")).tensor("logits");
    const at::Tensor base = lorakit_logits(lora_case(name) / "base", {}, file);
    const auto c = compare(ours.slice(1, 0, 7), theirs.slice(1, 0, 7), 1e-4);
    EXPECT_TRUE(c.ok()) << c.first_mismatch;
    const double moved = (ours - base).abs().max().item<double>();
    EXPECT_GT(moved, 1e-4) << "the trained adapter changes nothing";
    std::printf("%s: lorakit-trained adapter in PEFT, logits max abs difference %.3e (adapter moved them by %.3e)\n",
                name.c_str(), c.max_abs, moved);
  }
}

TEST(Export, MergedModelsLoadInTransformersWithTheUnmergedLogits) {
  struct Merged {
    nlohmann::json c;
    std::string dtype;
    double tolerance;
    fs::path out, logits;
  };
  std::vector<Merged> merged;
  std::vector<std::string> jobs;
  std::set<std::string> architectures;
  for (const auto& c : lora_cases()) {
    const std::string name = c["name"];
    const fs::path dir = lora_case(name);
    ASSERT_TRUE(fs::exists(dir / "reference.safetensors")) << "lora oracle output missing";
    architectures.insert(c["model_type"].get<std::string>());
    for (const auto& [dtype, tolerance] : std::vector<std::pair<std::string, double>>{{"fp32", 1e-4}, {"bf16", 3e-2}}) {
      const fs::path out = scratch(name + "-" + dtype);
      const auto r = run(fmt::format("merge --model '{}' --adapter '{}' --out '{}' --dtype {} --device {}", (dir / "base").string(),
                                     (dir / "adapter").string(), out.string(), dtype, lorakit::testing::test_device()));
      ASSERT_EQ(r.exit_code, 0) << name << ": " << r.output;
      EXPECT_CONTAINS(r.output, "largest weight change");
      merged.push_back({c, dtype, tolerance, out, out.parent_path() / (name + "-" + dtype + ".safetensors")});
      jobs.push_back(fmt::format("merged --model '{}' --inputs '{}' --out '{}'", out.string(),
                                 (dir / "reference.safetensors").string(), merged.back().logits.string()));
    }
  }
  EXPECT_EQ(architectures.size(), lorakit::architectures().size()) << "an architecture has no lora oracle case";
  const auto reports = check_batch(jobs);
  for (size_t i = 0; i < merged.size() && i < reports.size(); ++i) {
    const auto& [c, dtype, tolerance, out, logits] = merged[i];
    const std::string name = c["name"];
    SCOPED_TRACE(name + " " + dtype);
    const auto& report = reports[i];
    EXPECT_TRUE(report["missing"].empty()) << report.dump();
    EXPECT_TRUE(report["unexpected"].empty()) << report.dump();
    EXPECT_EQ(report["dtype"], dtype == "fp32" ? "torch.float32" : "torch.bfloat16");
    if (c.value("tied", name == "exaone4-qkvo-r4")) {
      EXPECT_TRUE(report["tied"].get<bool>()) << "the merged model lost its tied embeddings";
      EXPECT_FALSE(SafetensorsFile(out / "model.safetensors").find("lm_head.weight"));
    }
    // Compare the rows' real tokens (row 1 is padded after 5).
    const at::Tensor unmerged = SafetensorsFile(lora_case(name) / "reference.safetensors").tensor("logits");  // PEFT's, fp32
    const at::Tensor theirs = SafetensorsFile(logits).tensor("logits");
    const auto row0 = compare(theirs[0], unmerged[0], tolerance), row1 = compare(theirs[1].slice(0, 0, 5), unmerged[1].slice(0, 0, 5), tolerance);
    EXPECT_TRUE(row0.ok()) << row0.first_mismatch;
    EXPECT_TRUE(row1.ok()) << row1.first_mismatch;
    std::printf("%s merged %s: max abs logit difference to PEFT unmerged %.3e (tolerance %.0e)\n", name.c_str(),
                dtype.c_str(), std::max(row0.max_abs, row1.max_abs), tolerance);
  }
}

TEST(Export, ShardedMergeAndNoHalfWrittenOutput) {
  const fs::path dir = lora_case("exaone4-untied-all-linear-rslora");
  ASSERT_TRUE(fs::exists(dir / "adapter"));
  const fs::path out = scratch("sharded");
  const auto r = run(fmt::format("merge --model '{}' --adapter '{}' --out '{}' --max-shard-size 50KB", (dir / "base").string(),
                                 (dir / "adapter").string(), out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));
  const auto report = check(fmt::format("merged --model '{}' --inputs '{}' --out '{}'", out.string(),
                                        (dir / "reference.safetensors").string(), (out.parent_path() / "sharded.safetensors").string()));
  EXPECT_TRUE(report["missing"].empty()) << report.dump();
  // Existing output is not replaced; a mismatched adapter names module and shapes; nothing is left.
  const auto again = run(fmt::format("merge --model '{}' --adapter '{}' --out '{}'", (dir / "base").string(),
                                     (dir / "adapter").string(), out.string()));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_CONTAINS(again.output, "already exists");
  const fs::path wrong = scratch("wrong");
  const auto mismatch = run(fmt::format("merge --model '{}' --adapter '{}' --out '{}'", (lora_case("gpt_neox-default-r4") / "base").string(),
                                        (dir / "adapter").string(), wrong.string()));
  EXPECT_NE(mismatch.exit_code, 0);
  EXPECT_CONTAINS(mismatch.output, "matches no module");
  EXPECT_FALSE(fs::exists(wrong));

  // Interrupted midway: the base's generation_config.json is a FIFO, so the merge blocks (or fails)
  // while copying it, after the shards are written. Killed there, it leaves no output directory.
  const fs::path base = scratch("fifo-base");
  fs::create_directories(base);
  for (const auto& entry : fs::directory_iterator(dir / "base"))
    if (entry.path().filename() != "generation_config.json") fs::copy_file(entry.path(), base / entry.path().filename());
  ASSERT_EQ(::mkfifo((base / "generation_config.json").c_str(), 0600), 0);
  const fs::path killed = scratch("killed");
  const pid_t pid = lorakit::testing::spawn_lorakit(
      {"merge", "--model", base.string(), "--adapter", (dir / "adapter").string(), "--out", killed.string()}, /*quiet=*/true);
  int status = 0;
  bool exited = false, saw_partial = false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end && !exited && !saw_partial) {
    exited = waitpid(pid, &status, WNOHANG) == pid;
    for (const auto& entry : fs::directory_iterator(killed.parent_path()))
      if (entry.path().filename().string().starts_with(".killed.tmp-") && fs::exists(entry.path() / "model.safetensors"))
        saw_partial = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_FALSE(fs::exists(killed)) << "a half-written merge is visible under the output name";
  if (!exited) {
    EXPECT_TRUE(saw_partial) << "the merge neither blocked midway nor ended";
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else {
    EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a merge that could not copy a file succeeded";
  }
  EXPECT_FALSE(fs::exists(killed));
}

namespace {

struct GreedyCase {
  std::string label;
  fs::path base, adapter;
  at::Tensor prompt;  // (1, P)
};

// lorakit's greedy tokens (KV cache) against transformers.generate's, 16 tokens per prompt.
void expect_greedy_equal(const std::vector<GreedyCase>& cases) {
  std::vector<std::string> jobs;
  for (const auto& g : cases) {
    const fs::path inputs = scratch(g.label + "-prompt.safetensors");
    save_safetensors(inputs, {{"input_ids", g.prompt}});
    jobs.push_back(fmt::format("generate --base '{}' {} --inputs '{}' --max-new-tokens 16", g.base.string(),
                               g.adapter.empty() ? "" : "--adapter '" + g.adapter.string() + "'", inputs.string()));
  }
  const auto reports = check_batch(jobs);
  const c10::Device device(lorakit::testing::test_device());
  for (size_t i = 0; i < cases.size() && i < reports.size(); ++i) {
    const auto& g = cases[i];
    auto model = load_hf_model(g.base, {at::kFloat, device});
    std::optional<lora::LoraModel> lora;
    if (!g.adapter.empty()) {
      lora = lora::inject_lora(*model, read_peft_adapter_config(g.adapter), 0);
      load_peft_adapter_weights(g.adapter, *lora);
      lora->set_training(false);
    }
    inference::GenerationConfig config;
    config.max_new_tokens = 16;
    config.eos_token_ids = inference::model_eos_ids(g.base, nullptr);
    std::vector<int32_t> ids;
    for (int64_t j = 0; j < g.prompt.size(1); ++j) ids.push_back(static_cast<int32_t>(g.prompt[0][j].item<int64_t>()));
    const auto ours = inference::generate(*model, nullptr, ids, config, device);
    EXPECT_EQ(ours.new_ids, reports[i]["new_ids"].get<std::vector<int32_t>>()) << g.label;
    std::printf("%s: %zu greedy tokens identical to transformers.generate\n", g.label.c_str(), ours.new_ids.size());
  }
}

}  // namespace

TEST(Export, GreedyGenerationMatchesTransformers) {
  std::vector<GreedyCase> cases;
  std::set<std::string> architectures;
  for (const auto& c : lora_cases()) {
    const std::string name = c["name"];
    if (!architectures.insert(c["model_type"].get<std::string>()).second) continue;  // one case per architecture
    const fs::path dir = lora_case(name);
    ASSERT_TRUE(fs::exists(dir / "base"));
    const at::Tensor prompt = at::randint(3, 200, {1, 6}, at::kLong);
    cases.push_back({name + " base", dir / "base", {}, prompt});
    cases.push_back({name + " + adapter", dir / "base", dir / "adapter", prompt});
  }
  EXPECT_EQ(architectures.size(), lorakit::architectures().size());
  // Generation past a sliding window, and dynamic RoPE growing past max_position_embeddings (32)
  // step by step as transformers recomputes it: 24 prompt tokens + 16 new ones.
  for (const char* parity : {"llama_dynamic_past_max_positions", "mistral_window5", "qwen2_sliding_upper_layers",
                             "qwen3_bias_layer_types", "llama_yarn_4x_config"})
    cases.push_back({parity, fs::path(lorakit::testing::parity_dir()) / parity, {}, at::randint(3, 200, {1, 24}, at::kLong)});
  expect_greedy_equal(cases);
}

// A batch of prompts of different lengths (left padding, a batched KV cache) gives each prompt the
// greedy tokens it gets alone, for both architectures, with and without an adapter; the parity
// models add GQA, partial rotary and the sliding-window hybrid.
TEST(Generation, BatchedGreedyEqualsOneAtATime) {
  std::vector<fs::path> dirs = {lora_case("exaone4-qkvo-r4") / "base", lora_case("gpt_neox-default-r4") / "base",
                                lora_case("llama-default-bias-r4") / "base", lora_case("qwen3-all-linear-rslora") / "base",
                                lora_case("exaone-all-r4") / "base"};
  for (const char* parity : {"exaone4_sliding_hybrid", "exaone4_gqa1_tied_llama3", "gpt_neox_rot025_parallel",
                             "mistral_window5", "qwen2_sliding_upper_layers"})
    dirs.push_back(fs::path(lorakit::testing::parity_dir()) / parity);
  int visited = 0;
  const c10::Device device(lorakit::testing::test_device());
  for (const fs::path& dir : dirs) {
    ASSERT_TRUE(fs::exists(dir / "config.json")) << dir;
    for (const bool with_adapter : {false, true}) {
      SCOPED_TRACE(dir.string() + (with_adapter ? " + adapter" : ""));
      auto model = load_hf_model(dir, {at::kFloat, device});
      std::optional<lora::LoraModel> lora;
      if (with_adapter) {
        if (!fs::exists(dir.parent_path() / "adapter")) continue;
        lora = apply_peft_adapter(*model, dir.parent_path() / "adapter");
      }
      inference::GenerationConfig config;
      config.max_new_tokens = 12;
      config.eos_token_ids = {};  // run every row the full length, so late steps of short rows are compared too
      at::manual_seed(5);
      std::vector<std::vector<int32_t>> prompts;
      for (const int64_t length : {7, 1, 12, 4}) {
        const at::Tensor ids = at::randint(3, std::min<int64_t>(model->vocab_size(), 200), {length}, at::kLong);
        prompts.emplace_back();
        for (int64_t i = 0; i < length; ++i) prompts.back().push_back(static_cast<int32_t>(ids[i].item<int64_t>()));
      }
      const auto batched = inference::generate_batch(*model, nullptr, prompts, config, device);
      ASSERT_EQ(batched.size(), prompts.size());
      for (size_t i = 0; i < prompts.size(); ++i) {
        const auto alone = inference::generate(*model, nullptr, prompts[i], config, device);
        EXPECT_EQ(batched[i].new_ids, alone.new_ids) << "prompt " << i << " of " << prompts[i].size() << " tokens";
      }
      ++visited;
    }
  }
  EXPECT_EQ(visited, 15);  // 5 bases with and without their adapter, 5 parity models
}

// RWKV generates from its recurrent state: each step's logits equal those of a forward over the whole
// prefix, and so the greedy sequence equals the one recomputed token by token.
TEST(Generation, RecurrentStateEqualsRecomputingThePrefix) {
  for (const char* name : {"rwkv_rescale2_untied", "rwkv_attention_hidden_tied"}) {
    SCOPED_TRACE(name);
    const fs::path dir = fs::path(lorakit::testing::parity_dir()) / name;
    auto model = load_hf_model(dir, {at::kFloat, at::kCPU});
    c10::NoGradGuard no_grad;
    at::manual_seed(3);
    std::vector<int64_t> ids;
    for (int i = 0; i < 7; ++i) ids.push_back(at::randint(3, 200, {1}, at::kLong).item<int64_t>());
    const auto row = [](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).view({1, -1}); };
    KVCache state;
    at::Tensor logits = model->forward_cached(row(ids), state);  // (1, 7, V)
    double worst = 0;
    std::vector<int64_t> from_state, recomputed = ids;
    for (int step = 0; step < 16; ++step) {
      const at::Tensor full = model->forward(row(recomputed), TokenLayout());  // (1, n, V)
      worst = std::max(worst, (logits[0][-1] - full[0][-1]).abs().max().item<double>());
      recomputed.push_back(full[0][-1].argmax().item<int64_t>());
      from_state.push_back(logits[0][-1].argmax().item<int64_t>());
      logits = model->forward_cached(row({from_state.back()}), state);  // (1, 1, V)
    }
    EXPECT_EQ(from_state, std::vector<int64_t>(recomputed.begin() + 7, recomputed.end()));
    EXPECT_LT(worst, 1e-5);
    std::printf("%s: 16 tokens from the recurrent state equal recomputing the prefix (logits within %.2e)\n", name, worst);
  }
}

TEST(Scores, ExactMatchAndPerLabelF1) {
  // References: pos pos neg neg neu; predictions: pos neg neg other neu.
  const auto s = inference::score({"pos", " neg", "neg\n", "other", "neu"}, {"pos", "pos", "neg", "neg", "neu"});
  EXPECT_DOUBLE_EQ(s.exact_match, 3.0 / 5);
  EXPECT_DOUBLE_EQ(s.labels.at("pos").precision, 1.0);
  EXPECT_DOUBLE_EQ(s.labels.at("pos").recall, 0.5);
  EXPECT_DOUBLE_EQ(s.labels.at("neg").precision, 0.5);
  EXPECT_DOUBLE_EQ(s.labels.at("neg").recall, 0.5);
  EXPECT_DOUBLE_EQ(s.labels.at("neu").f1, 1.0);
  EXPECT_DOUBLE_EQ(s.macro_f1, (2.0 / 3 + 0.5 + 1.0) / 3);
  EXPECT_DOUBLE_EQ(s.micro_precision, 3.0 / 4);  // "other" is not a label
  EXPECT_DOUBLE_EQ(s.micro_recall, 3.0 / 5);
  EXPECT_EQ(s.labels.at("neg").support, 2);
}

TEST(Export, EvalGenerateWritesPredictionsAndScores) {
  const fs::path oracle = build_dir() / "train";
  ASSERT_TRUE(fs::exists(oracle / "recipe.yaml"));
  const fs::path predictions = scratch("predictions.csv");
  const auto r = run(fmt::format("eval --recipe '{}' --adapter '{}' --generate --max-new-tokens 8 --predictions '{}' --json",
                                 (oracle / "recipe.yaml").string(), (oracle / "final_adapter").string(), predictions.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string last = r.output.substr(0, r.output.find_last_not_of('\n') + 1);
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  const auto out = nlohmann::json::parse(last);
  EXPECT_EQ(out["examples"], 40);
  EXPECT_GE(out["exact_match"].get<double>(), 0.0);
  EXPECT_LE(out["exact_match"].get<double>(), 1.0);
  for (const char* key : {"macro_f1", "micro_f1", "seconds_per_prompt", "tokens_per_s", "peak_memory_bytes", "labels"})
    EXPECT_TRUE(out.contains(key)) << key;
  std::ifstream in(predictions);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header, "line,prompt,reference,prediction,exact_match,new_tokens,seconds");
}

TEST(Export, AdapterForAnotherModelTypeIsRefused) {
  const fs::path oracle = build_dir() / "train";
  ASSERT_TRUE(fs::exists(oracle / "recipe.yaml"));
  const fs::path run_dir = scratch("typed");
  ASSERT_EQ(run(fmt::format("train '{}' --set output.dir='{}' --set train.max_steps=1", (oracle / "recipe.yaml").string(),
                            run_dir.string())).exit_code, 0);
  const fs::path out = scratch("typed-merge");
  const auto r = run(fmt::format("merge --model '{}' --adapter '{}' --out '{}'", (lora_case("gpt_neox-default-r4") / "base").string(),
                                 (run_dir / "adapter").string(), out.string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_CONTAINS(r.output, "this adapter was trained on a exaone4 model");
  EXPECT_CONTAINS(r.output, "the model here is gpt_neox");
  EXPECT_FALSE(fs::exists(out));
}
