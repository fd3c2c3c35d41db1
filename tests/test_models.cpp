// Model-level checks that need no fixture: the llama3 RoPE table against the values in
// architectures.md section 1.4 (computed there in float64, independently of lorakit), both
// config.json shapes (transformers 4.x and 5.x) giving the same model, and the loader's errors.
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/test_paths.h"
#include "checkpoints/hf_model.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const lorakit::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::unique_ptr<lorakit::CausalLM> model_from(const std::string& json_text) {
  nlohmann::json config = nlohmann::json::parse(json_text);
  return lorakit::create_model(lorakit::JsonReader(config, "config.json"));
}

}  // namespace

TEST(Rope, Llama3InverseFrequenciesOfExaone12B) {
  lorakit::RopeScaling scaling;
  scaling.rope_type = "llama3";
  scaling.factor = 16.0;
  scaling.original_max_position_embeddings = 8192;
  at::Tensor inv_freq = lorakit::rope_inv_freq(64, 1e6, scaling);
  ASSERT_EQ(inv_freq.size(0), 32);
  // i -> value after the llama3 adjustment (architectures.md 1.4).
  std::vector<std::pair<int, double>> expected = {{0, 1.0},           {13, 3.651741e-03}, {14, 1.698341e-03},
                                                  {15, 5.812029e-04}, {16, 1.574367e-04}, {17, 4.058635e-05},
                                                  {31, 9.624541e-08}};
  for (auto [i, value] : expected)
    EXPECT_NEAR(inv_freq[i].item<double>(), value, value * 2e-6) << "inv_freq[" << i << "]";
}

TEST(Rope, DefaultInverseFrequenciesOverRotaryDims) {
  at::Tensor inv_freq = lorakit::rope_inv_freq(64, 10000.0, {});  // polyglot: 64 of 128 dims rotated
  ASSERT_EQ(inv_freq.size(0), 32);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(inv_freq[i].item<double>(), std::pow(10000.0, -2.0 * i / 64), 1e-6 * std::pow(10000.0, -2.0 * i / 64));
}

TEST(Config, RopeScalingAndRopeParametersFormsAgree) {
  const std::string base = R"("model_type": "exaone4", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
      "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": null,)";
  auto v4 = model_from("{" + base + R"("rope_theta": 1e6, "rope_scaling": {"type": "llama3", "factor": 16.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  auto v5 = model_from("{" + base + R"("rope_parameters": {"rope_type": "llama3", "rope_theta": 1e6, "factor": 16.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  EXPECT_EQ(v4->summary().facts.dump(), v5->summary().facts.dump());
  EXPECT_EQ(v4->summary().facts["rope_type"], "llama3");
}

TEST(Config, ExaoneLayerTypesFromSlidingWindowPattern) {
  const std::string base = R"("model_type": "exaone4", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
      "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2)";
  EXPECT_EQ(model_from("{" + base + R"(, "sliding_window": 16, "sliding_window_pattern": 4})")->summary().facts["sliding_layers"], 6);
  EXPECT_EQ(model_from("{" + base + R"(, "sliding_window": null})")->summary().facts["sliding_layers"], 0);
  std::string message = error_of([&] { model_from("{" + base + R"(, "layer_types": ["full_attention"]})"); });
  EXPECT_NE(message.find("layer_types"), std::string::npos) << message;
  EXPECT_NE(message.find("8 entries"), std::string::npos) << message;
}

TEST(Config, UnsupportedRopeTypeIsAnError) {
  std::string message = error_of([] {
    model_from(R"({"model_type": "gpt_neox", "hidden_size": 32, "num_attention_heads": 4,
                   "rope_scaling": {"rope_type": "longrope", "factor": 2}})");
  });
  EXPECT_NE(message.find("rope_type"), std::string::npos) << message;
  EXPECT_NE(message.find("yarn"), std::string::npos) << message;
  // A scaled type without its factor names the key.
  message = error_of([] {
    model_from(R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "rope_scaling": {"type": "linear"}})");
  });
  EXPECT_NE(message.find("factor"), std::string::npos) << message;
  // qwen2: a sliding layer without a window is refused rather than run as a full one.
  message = error_of([] {
    model_from(R"({"model_type": "qwen2", "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2,
                   "layer_types": ["sliding_attention", "full_attention"]})");
  });
  EXPECT_NE(message.find("use_sliding_window"), std::string::npos) << message;
  // gemma2: an unknown layer type is named, not run as full attention.
  message = error_of([] {
    model_from(R"({"model_type": "gemma2", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 8, "num_hidden_layers": 2, "layer_types": ["local", "full_attention"]})");
  });
  EXPECT_NE(message.find("layer_types"), std::string::npos) << message;
}

TEST(Loader, DamagedWeightsAndNoWeights) {
  fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_models_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path source = fs::path(lorakit::testing::parity_dir()) / "exaone4_gqa2_untied";
  fs::copy_file(source / "config.json", dir / "config.json");
  std::string message = error_of([&] { lorakit::load_hf_model(dir, {}); });
  EXPECT_NE(message.find("no weights"), std::string::npos) << message;

  fs::copy_file(source / "model.safetensors", dir / "model.safetensors");
  {  // flip the header length to point past the end
    std::fstream f(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5);
    f.put('\x7f');
  }
  message = error_of([&] { lorakit::load_hf_model(dir, {}); });
  EXPECT_NE(message.find((dir / "model.safetensors").string()), std::string::npos) << message;
  EXPECT_NE(message.find("header length"), std::string::npos) << message;

  fs::remove(dir / "model.safetensors");
  std::ofstream(dir / "pytorch_model.bin") << "x";
  message = error_of([&] { lorakit::load_hf_model(dir, {}); });
  EXPECT_NE(message.find("pytorch_model.bin"), std::string::npos) << message;
  EXPECT_NE(message.find("safe_serialization"), std::string::npos) << message;
}
