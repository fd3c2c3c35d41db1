// GGUF export against llama.cpp's own converters (scripts/check_gguf.py, llama-cpp-python 0.3.36's
// vendored convert_hf_to_gguf.py / convert_lora_to_gguf.py, fetched by scripts/setup.sh): for each
// tiny model of scripts/gguf_oracle.py, `lorakit export gguf --adapter` must write the same file,
// byte for byte, as the converter run on `lorakit merge`'s output, and `export gguf-lora` the same
// file as convert_lora_to_gguf.py on the adapter; the checker also compares every tensor with the
// merged HF weights after the converter's documented transforms. Plus the errors a user meets.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/cli_runner.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using lorakit::testing::run;
using lorakit::testing::run_command;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "gguf"; }
std::string converter_dir() { return lorakit::testing::path_from_env("LORAKIT_LLAMA_CPP", LORAKIT_LLAMA_CPP_DEFAULT); }

nlohmann::json find_case(const std::string& name) {
  std::ifstream in(oracle_dir() / "manifest.json");
  if (!in) return nullptr;
  const nlohmann::json manifest = nlohmann::json::parse(in);
  for (const auto& c : manifest["cases"])
    if (c["name"] == name) return c;
  return nullptr;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_gguf_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string pre_flag(const nlohmann::json& c) {
  return c["tokenizer_pre"].is_string() ? fmt::format(" --tokenizer-pre {}", c["tokenizer_pre"].get<std::string>()) : "";
}

// The cases of scripts/gguf_oracle.py, and the tensor types each is checked at here (two for llama,
// one each for the others, so that every type meets several architectures; scripts/check_gguf.py
// runs any case at any type).
const std::vector<std::pair<std::string, std::vector<std::string>>> kCases = {
    {"llama", {"f32", "q8_0"}}, {"llama_tied", {"q8_0"}}, {"mistral", {"bf16"}}, {"qwen2", {"f16"}},
    {"qwen3", {"q8_0"}}, {"gemma", {"f32"}}, {"gemma2", {"q8_0"}}, {"gpt2", {"f16"}}, {"exaone4", {"bf16"}},
    {"exaone", {"q8_0"}}, {"gpt_neox", {"f16"}}};

class GgufCase : public ::testing::TestWithParam<std::pair<std::string, std::vector<std::string>>> {};

TEST_P(GgufCase, ModelAndAdapterFilesEqualLlamaCppConverters) {
  const auto& [name, types] = GetParam();
  const nlohmann::json c = find_case(name);
  if (c.is_null()) GTEST_SKIP() << name << " is not in " << oracle_dir() << "/manifest.json (it needs ../shared's tokenizer)";
  if (!fs::exists(fs::path(converter_dir()) / "convert_hf_to_gguf.py"))
    GTEST_SKIP() << "llama.cpp's converters are not at " << converter_dir() << "; scripts/setup.sh fetches them";
  const fs::path base = oracle_dir() / name / "base", adapter = oracle_dir() / name / "adapter";
  const fs::path work = scratch(name);
  // The merged directory keeps the base's directory name: the converter derives general.name from it.
  const fs::path merged = work / base.filename();
  const auto merge = run(fmt::format("merge --model {} --adapter {} --out {}", base.string(), adapter.string(), merged.string()));
  ASSERT_EQ(merge.exit_code, 0) << merge.output;

  const bool lora_supported = name != "gpt2";  // the converter's GPT-2 LoRA file is one llama.cpp rejects
  const fs::path lora = work / "adapter.gguf";
  const auto lora_run = run(fmt::format("export gguf-lora --model {} --adapter {} --out {}", base.string(), adapter.string(), lora.string()));
  if (lora_supported) {
    ASSERT_EQ(lora_run.exit_code, 0) << lora_run.output;
  } else {
    EXPECT_NE(lora_run.exit_code, 0);
    EXPECT_CONTAINS(lora_run.output, "a LoRA GGUF for gpt2 is not written");
    EXPECT_FALSE(fs::exists(lora));
  }
  for (size_t i = 0; i < types.size(); ++i) {
    const std::string& type = types[i];
    const fs::path model = work / fmt::format("model-{}.gguf", type);
    const auto exported = run(fmt::format("export gguf --model {} --adapter {} --out {} --type {}{}", base.string(),
                                          adapter.string(), model.string(), type, pre_flag(c)));
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    EXPECT_CONTAINS(exported.output, "weights merged with");
    const std::string lora_args = i == 0 && lora_supported ? fmt::format(" --lora-gguf {}", lora.string()) : "";
    const auto check = run_command(fmt::format(
        "HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error {} {}/scripts/check_gguf.py --converter {} --case {} --merged {} "
        "--gguf {} --type {}{}", lorakit::testing::venv_python(), LORAKIT_SOURCE_DIR, converter_dir(),
        (oracle_dir() / name).string(), merged.string(), model.string(), type, lora_args));
    EXPECT_EQ(check.exit_code, 0) << name << " " << type << ":\n" << check.output;
    EXPECT_CONTAINS(check.output, "byte-identical to the converter");
    std::cout << name << " " << type << ": " << check.output.substr(0, check.output.find("\nOK")) << "\n";
  }
  fs::remove_all(work);
}

INSTANTIATE_TEST_SUITE_P(Architectures, GgufCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.first; });

TEST(Gguf, ErrorsNameTheProblemAndWriteNothing) {
  const nlohmann::json c = find_case("llama");
  if (c.is_null()) GTEST_SKIP() << "no gguf oracle output at " << oracle_dir();
  const fs::path base = oracle_dir() / "llama" / "base", work = scratch("errors");
  const fs::path out = work / "model.gguf";

  // A tokenizer whose pre-tokenizer llama.cpp's table does not know (the oracle's own BPE).
  auto r = run(fmt::format("export gguf --model {} --out {}", base.string(), out.string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_CONTAINS(r.output, "pre-tokenizer is not one llama.cpp knows");
  EXPECT_CONTAINS(r.output, "--tokenizer-pre");
  EXPECT_FALSE(fs::exists(out));

  // An architecture llama.cpp's converter does not handle.
  const fs::path rwkv = work / "rwkv";
  fs::create_directories(rwkv);
  std::ofstream(rwkv / "config.json") << R"({"model_type": "rwkv", "architectures": ["RwkvForCausalLM"]})";
  r = run(fmt::format("export gguf --model {} --out {}", rwkv.string(), out.string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_CONTAINS(r.output, "RWKV-4");
  EXPECT_CONTAINS(r.output, "the GGUF export handles llama, mistral");

  // An adapter trained on another model.
  r = run(fmt::format("export gguf --model {} --adapter {} --out {}{}", base.string(),
                      (oracle_dir() / "qwen3" / "adapter").string(), out.string(), pre_flag(c)));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_CONTAINS(r.output, "export with the base model the adapter was trained on");
  EXPECT_FALSE(fs::exists(out));

  // An existing file is kept unless --overwrite.
  std::ofstream(out) << "keep me";
  r = run(fmt::format("export gguf --model {} --out {}{}", base.string(), out.string(), pre_flag(c)));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_CONTAINS(r.output, "already exists");
  std::ifstream in(out);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "keep me");
  r = run(fmt::format("export gguf --model {} --out {} --overwrite --type q8_0{}", base.string(), out.string(), pre_flag(c)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(fs::file_size(out), 1000u);
  for (const auto& e : fs::directory_iterator(work)) EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
  fs::remove_all(work);
}

// llama.cpp itself, where llama-cpp-python is installed (LORAKIT_LLAMA_CPP_PYTHON, a Python that
// can import llama_cpp): lorakit's f32 GGUF of each merged model generates transformers' 16 greedy
// tokens (EXAONE 3.5 has no transformers class to generate with).
TEST(Gguf, LlamaCppGeneratesTransformersGreedyTokens) {
  const std::string python = lorakit::testing::path_from_env("LORAKIT_LLAMA_CPP_PYTHON", "");
  if (python.empty())
    GTEST_SKIP() << "LORAKIT_LLAMA_CPP_PYTHON is not set: llama-cpp-python is not part of the project's .venv (its build "
                    "takes longer than CI allows); scripts/gguf_generate_check.py runs where it is installed";
  for (const char* name : {"llama", "llama_tied", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gpt2", "exaone4", "gpt_neox"}) {
    const nlohmann::json c = find_case(name);
    if (c.is_null()) continue;
    const fs::path base = oracle_dir() / name / "base", adapter = oracle_dir() / name / "adapter";
    const fs::path work = scratch(std::string("generate-") + name), merged = work / "base", model = work / "model.gguf";
    ASSERT_EQ(run(fmt::format("merge --model {} --adapter {} --out {}", base.string(), adapter.string(), merged.string())).exit_code, 0);
    const auto exported = run(fmt::format("export gguf --model {} --adapter {} --out {} --type f32{}", base.string(),
                                          adapter.string(), model.string(), pre_flag(c)));
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    const auto check = run_command(fmt::format("TRANSFORMERS_VERBOSITY=error {} {}/scripts/gguf_generate_check.py --gguf {} --merged {} --tokens 16",
                                               python, LORAKIT_SOURCE_DIR, model.string(), merged.string()));
    EXPECT_EQ(check.exit_code, 0) << name << ":\n" << check.output;
    std::cout << name << ":\n" << check.output;
    fs::remove_all(work);
  }
}

}  // namespace
