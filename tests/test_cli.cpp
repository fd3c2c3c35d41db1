// The lorakit binary as a user runs it: inspect on real and tiny model directories, --json, --help,
// and broken inputs (config.json, damaged safetensors, weights that do not fit) that must exit
// non-zero with one clear message naming the file, key or tensor.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/cli_runner.h"
#include "tests/test_paths.h"
#include <nlohmann/json.hpp>

#include "checkpoints/safetensors.h"

namespace fs = std::filesystem;

namespace {

using lorakit::testing::expect_failure;
using lorakit::testing::Result;
using lorakit::testing::run;

fs::path parity(const std::string& name) { return fs::path(lorakit::testing::parity_dir()) / name; }

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_cli_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path copy_model(const std::string& from, const std::string& name) {
  fs::path dir = scratch(name);
  for (const char* file : {"config.json", "model.safetensors"}) fs::copy_file(parity(from) / file, dir / file);
  return dir;
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(Cli, InspectRealExaoneConfigCountsParametersAsTransformers) {
  fs::path dir = fs::path(lorakit::testing::shared_dir()) / "models/EXAONE-4.0-1.2B";
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "../shared/models/EXAONE-4.0-1.2B is not here";
  Result text = run("inspect " + dir.string());
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_CONTAINS(text.output, "1,279,391,488");
  EXPECT_CONTAINS(text.output, "none in the directory");
  Result json = run("inspect --json " + dir.string());
  ASSERT_EQ(json.exit_code, 0) << json.output;
  auto parsed = nlohmann::json::parse(json.output);
  EXPECT_EQ(parsed["num_parameters"].get<int64_t>(), 1279391488);
  EXPECT_EQ(parsed["model_type"], "exaone4");
  EXPECT_EQ(parsed["memory"]["lora"].size(), 3u);
  // PEFT's count for r=8 on q,k,v,o,gate,up,down in the SKN13 run was 7,618,560; r=16 on q,k,v,o
  // is 16 * 30 layers * ((2048+2048) + (2048+512) * 2 + (2048+2048)).
  EXPECT_EQ(parsed["memory"]["lora"][0]["trainable_params"].get<int64_t>(), 16 * 30 * (4096 + 2560 * 2 + 4096));
}

// `lorakit inspect --json` on each real config (../shared/models, copied verbatim by scripts/parity.py)
// and the published shapes: transformers' num_parameters() exactly.
TEST(Cli, InspectCountsEveryRealConfigAsTransformers) {
  std::ifstream in(fs::path(lorakit::testing::parity_dir()) / "manifest.json");
  ASSERT_TRUE(in) << "parity oracle output missing";
  const nlohmann::json manifest = nlohmann::json::parse(in);
  int visited = 0;
  for (const auto& c : manifest["config_only"]) {
    const std::string name = c["name"];
    Result r = run("inspect --json " + parity(name).string());
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.output;
    const auto parsed = nlohmann::json::parse(r.output);
    EXPECT_EQ(parsed["num_parameters"].get<int64_t>(), c["num_parameters"].get<int64_t>()) << name;
    EXPECT_EQ(parsed["model_type"], c["model_type"]) << name;
    std::printf("%-36s %-9s %lld parameters, as transformers counts\n", name.c_str(),
                c["model_type"].get<std::string>().c_str(), static_cast<long long>(parsed["num_parameters"].get<int64_t>()));
    ++visited;
  }
  EXPECT_GE(visited, 1);
  if (visited < 11) GTEST_SKIP() << "../shared/models absent: only polyglot-ko-1.3b's shape checked";
}

TEST(Cli, InspectPolyglotShapedConfigBothTransformersVersions) {
  Result v5 = run("inspect " + parity("polyglot-ko-1.3b-config").string());  // written by transformers 5.x
  EXPECT_EQ(v5.exit_code, 0) << v5.output;
  EXPECT_CONTAINS(v5.output, "1,331,810,304");
  fs::path dir = scratch("polyglot_v4");  // 4.x keys, defaults for absent ones, as the hub file
  write(dir / "config.json", R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
    "hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 16, "num_hidden_layers": 24,
    "vocab_size": 30080, "rotary_pct": 0.5, "rotary_emb_base": 10000, "max_position_embeddings": 2048,
    "layer_norm_eps": 1e-05, "hidden_act": "gelu", "tie_word_embeddings": false, "torch_dtype": "float16",
    "bos_token_id": 0, "eos_token_id": 0, "use_cache": true})");
  Result v4 = run("inspect --json " + dir.string());
  ASSERT_EQ(v4.exit_code, 0) << v4.output;
  auto parsed = nlohmann::json::parse(v4.output);
  EXPECT_EQ(parsed["num_parameters"].get<int64_t>(), 1331810304);
  EXPECT_EQ(parsed["config"]["rotary_ndims"].get<int64_t>(), 64);
  EXPECT_EQ(parsed["config"]["use_parallel_residual"].get<bool>(), true);
}

TEST(Cli, InspectChecksWeightsFromHeaders) {
  Result r = run("inspect " + parity("exaone4_gqa1_tied_llama3").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "all present with the expected shapes");
  EXPECT_CONTAINS(r.output, "F32");
}

TEST(Cli, HelpOnEverySubcommand) {
  for (const char* sub : {"", "inspect ", "forward ", "tokenize ", "detokenize "}) {
    Result r = run(std::string(sub) + "--help");
    EXPECT_EQ(r.exit_code, 0) << sub << r.output;
    EXPECT_CONTAINS(r.output, "Usage");
  }
  Result none = run("");
  EXPECT_NE(none.exit_code, 0);
}

TEST(Cli, BrokenConfigJson) {
  fs::path dir = scratch("broken_syntax");
  write(dir / "config.json", "{\n  \"model_type\": \"exaone4\",\n  \"hidden_size\": 64,,\n}\n");
  expect_failure(run("inspect " + dir.string()), {(dir / "config.json").string() + ":3:", "invalid JSON"});

  write(dir / "config.json", R"({"hidden_size": 64})");
  expect_failure(run("inspect " + dir.string()), {"config.json", "missing required key 'model_type'"});

  write(dir / "config.json", R"({"model_type": "mistrall"})");
  expect_failure(run("inspect " + dir.string()), {"unsupported model_type 'mistrall'", "did you mean 'mistral'", "gpt_neox"});

  write(dir / "config.json", R"({"model_type": "exaone4", "hidden_size": "2k"})");
  expect_failure(run("inspect " + dir.string()), {"key 'hidden_size'", "expected an integer", "\"2k\""});

  write(dir / "config.json", R"({"model_type": "gpt_neox", "hidden_size": 64, "num_attention_heads": 5})");
  expect_failure(run("inspect " + dir.string()), {"key 'hidden_size'", "multiple of num_attention_heads (5)"});

  write(dir / "config.json", R"({"model_type": "exaone4", "rope_scaling": {"rope_type": "llama3", "factor": 8}})");
  expect_failure(run("inspect " + dir.string()), {"rope_scaling", "missing required key 'low_freq_factor'"});

  write(dir / "config.json", "[1, 2]");
  expect_failure(run("inspect " + dir.string()), {"expected a JSON object"});

  fs::remove(dir / "config.json");
  expect_failure(run("inspect " + dir.string()), {"no config.json"});
  expect_failure(run("inspect " + (dir / "nowhere").string()), {"no such directory"});
}

TEST(Cli, DamagedSafetensorsNameFileAndTensor) {
  fs::path dir = copy_model("gpt_neox_rot05_sequential", "truncated");
  fs::path weights = dir / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) - 100);
  for (const char* cmd : {"inspect ", "forward --ids 1,2 "})
    expect_failure(run(cmd + dir.string()), {weights.string(), "run past the data section"});

  fs::resize_file(weights, 4);
  expect_failure(run("inspect " + dir.string()), {weights.string(), "too short"});
}

TEST(Cli, WeightsThatDoNotFitAreListedInOneMessage) {
  fs::path dir = copy_model("gpt_neox_rot05_sequential", "mismatch");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  {
    lorakit::SafetensorsFile file(dir / "model.safetensors");
    for (const auto& e : file.entries()) {
      if (e.name == "gpt_neox.layers.1.mlp.dense_4h_to_h.bias") continue;  // missing
      at::Tensor t = file.tensor(e.name);
      if (e.name == "gpt_neox.layers.0.attention.dense.weight") t = t.slice(0, 0, 32);  // mis-shaped
      tensors.emplace_back(e.name, t);
    }
  }
  tensors.emplace_back("gpt_neox.layers.0.attention.surprise", at::zeros({2}));            // unexpected
  tensors.emplace_back("gpt_neox.layers.0.attention.masked_bias", at::scalar_tensor(-1e9));  // legacy: ignored
  lorakit::save_safetensors(dir / "model.safetensors", tensors);
  for (const char* cmd : {"inspect ", "forward --ids 1,2 "})
    expect_failure(run(cmd + dir.string()),
                   {"1 missing tensor(s): gpt_neox.layers.1.mlp.dense_4h_to_h.bias",
                    "1 unexpected tensor(s): gpt_neox.layers.0.attention.surprise",
                    "gpt_neox.layers.0.attention.dense.weight: file [32, 64] vs expected [64, 64]"});
}

TEST(Cli, ShardedCheckpointAndLegacyBuffers) {
  fs::path dir = copy_model("gpt_neox_rot025_parallel", "sharded");
  std::vector<std::pair<std::string, at::Tensor>> first, second;
  nlohmann::json weight_map;
  {
    lorakit::SafetensorsFile file(dir / "model.safetensors");
    for (const auto& e : file.entries()) {
      bool in_first = e.name.find("layers.1") == std::string::npos;
      (in_first ? first : second).emplace_back(e.name, file.tensor(e.name));
      weight_map[e.name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
  }
  second.emplace_back("gpt_neox.layers.1.attention.bias", at::ones({1, 1, 4, 4}, at::kBool));  // 2022-era buffer
  weight_map["gpt_neox.layers.1.attention.bias"] = "model-00002-of-00002.safetensors";
  lorakit::save_safetensors(dir / "model-00001-of-00002.safetensors", first);
  lorakit::save_safetensors(dir / "model-00002-of-00002.safetensors", second);
  fs::remove(dir / "model.safetensors");
  write(dir / "model.safetensors.index.json", nlohmann::json({{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}).dump());

  Result r = run("inspect " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "sharded (2 files)");
  EXPECT_CONTAINS(r.output, "ignored on load: gpt_neox.layers.1.attention.bias");
  Result forward = run("forward --ids 5,6,7 " + dir.string());
  EXPECT_EQ(forward.exit_code, 0) << forward.output;
  EXPECT_CONTAINS(forward.output, "next-token loss");

  fs::remove(dir / "model-00002-of-00002.safetensors");
  expect_failure(run("inspect " + dir.string()), {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "missing"});
}

TEST(Cli, ForwardRejectsBadIds) {
  fs::path dir = parity("gpt_neox_rot1_tied");
  expect_failure(run("forward --ids 1,x,3 " + dir.string()), {"--ids", "'x'"});
  expect_failure(run("forward --ids 1,99999 " + dir.string()), {"99999", "out of range"});
  expect_failure(run("forward --ids 1 --dtype fp8 " + dir.string()), {"--dtype", "fp8"});
}
