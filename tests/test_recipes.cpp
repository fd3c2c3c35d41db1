// Recipes: each field declared once (visit_fields) is read from YAML with type checks, overridden by
// --set, written back whole; unknown keys and wrong types are reported together with file:line:column
// and a "did you mean". And `data stats` / `eval` give the same answers from a recipe as from flags.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/cli_runner.h"
#include "tests/test_paths.h"
#include "trainer/recipe.h"

namespace fs = std::filesystem;
using lorakit::testing::run;
using lorakit::trainer::load_recipe;
using lorakit::trainer::recipe_yaml;

namespace {

fs::path scratch(const std::string& name, const std::string& content) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_recipes_{}", ::getpid());
  fs::create_directories(dir);
  std::ofstream(dir / name) << content;
  return dir / name;
}

std::string error_of(const std::string& path, const std::vector<std::string>& sets = {}) {
  try {
    load_recipe(path, sets);
  } catch (const lorakit::Error& e) {
    return e.what();
  }
  return "no error";
}

fs::path data_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "data"; }

}  // namespace

// Every recipe shipped in recipes/ parses, with its fields' types and known keys.
TEST(Recipes, EveryShippedRecipeLoads) {
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(LORAKIT_SOURCE_DIR) / "recipes")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(lorakit::trainer::load_recipe(entry.path().string()));
    ++loaded;
  }
  EXPECT_GE(loaded, 6);
}

TEST(Recipes, ReadOverrideAndWriteBack) {
  const auto path = scratch("r.yaml",
                            "model:\n  path: models/tiny\ndata:\n  path: rows.csv\n  prompt_template: \"Q: {q}\\nA: \"\n"
                            "  response_column: a\n  max_seq_len: 256\n  validation_fraction: 0.25\n");
  auto recipe = load_recipe(path.string(), {"data.max_seq_len=64", "model.dtype=bf16"});
  EXPECT_EQ(recipe.model.path, (path.parent_path() / "models/tiny").string());
  EXPECT_EQ(recipe.data.path, (path.parent_path() / "rows.csv").string());
  EXPECT_EQ(recipe.data.prompt_template, "Q: {q}\nA: ");
  EXPECT_EQ(recipe.data.max_seq_len, 64);
  EXPECT_EQ(recipe.model.dtype, "bf16");
  EXPECT_DOUBLE_EQ(recipe.data.validation_fraction, 0.25);
  EXPECT_TRUE(recipe.data.add_eos);  // the default
  // The resolved recipe names every field and reads back to the same values.
  const std::string yaml = recipe_yaml(recipe);
  EXPECT_NE(yaml.find("truncation_side: right"), std::string::npos) << yaml;
  const auto again = load_recipe(scratch("resolved.yaml", yaml).string());
  EXPECT_EQ(recipe_yaml(again), yaml);
}

// model.dtype is the one dtype (frozen base and computation); an old recipe's train.precision is an
// error that says where the setting lives now, never a silent change.
TEST(Recipes, OldPrecisionKeyAndBadDtypeAreErrors) {
  const auto path = scratch("old.yaml", "model:\n  path: m\n  dtype: fp8\ndata:\n  path: d.csv\ntrain:\n  precision: bf16\n");
  const std::string e = error_of(path.string());
  EXPECT_NE(e.find("2 problems in the recipe"), std::string::npos) << e;
  EXPECT_NE(e.find(path.string() + ":7:3: train.precision is gone: model.dtype is the dtype of the frozen base weights"),
            std::string::npos) << e;
  EXPECT_NE(e.find("hint: delete it and set model.dtype"), std::string::npos) << e;
  EXPECT_NE(e.find(path.string() + ":3:10: model.dtype 'fp8': expected fp32, bf16 or fp16"), std::string::npos) << e;
  EXPECT_NE(error_of(scratch("set.yaml", "model:\n  path: m\ndata:\n  path: d.csv\n").string(), {"train.precision=fp16"})
                .find("train.precision is gone"), std::string::npos);
}

TEST(Recipes, EveryProblemReportedWithLineAndHint) {
  const auto path = scratch("bad.yaml",
                            "model:\n  path: m\n  dtyp: bf16\ndata:\n  path: d.csv\n  max_seq_len: lots\n"
                            "  add_eos: maybe\nlroa:\n  r: 16\n");
  const std::string e = error_of(path.string());
  EXPECT_CONTAINS(e, "4 problems in the recipe");  // all of them at once
  EXPECT_CONTAINS(e, "bad.yaml:3:3: unknown key 'model.dtyp' (did you mean 'dtype'?)");
  EXPECT_CONTAINS(e, "bad.yaml:6:16: data.max_seq_len: expected an integer, found 'lots'");
  EXPECT_CONTAINS(e, "bad.yaml:7:12: data.add_eos: expected true or false, found 'maybe'");
  EXPECT_CONTAINS(e, "bad.yaml:8:1: unknown section 'lroa' (did you mean 'lora'?)");
  EXPECT_CONTAINS(error_of(scratch("syntax.yaml", "model: [unclosed\n").string()), "syntax.yaml:");
  EXPECT_CONTAINS(error_of(scratch("nomodel.yaml", "data:\n  path: x.csv\n").string()), "model.path is missing");
  EXPECT_CONTAINS(error_of(scratch("ok.yaml", "model:\n  path: m\ndata:\n  path: d\n").string(), {"data.max_seq_len"}),
                  "expected section.key=value");
  EXPECT_CONTAINS(error_of(scratch("missing.yaml", "").string() + ".nope"), "no such recipe file");
}

TEST(Recipes, DataStatsAndEvalFromARecipeEqualTheFlags) {
  const fs::path expected_path = data_dir() / "expected.json";
  ASSERT_TRUE(fs::exists(expected_path)) << "data oracle output missing";
  const auto expected = nlohmann::json::parse(std::ifstream(expected_path));
  const std::string model = expected["model"], csv = expected["csv"];
  const auto recipe = scratch("eval.yaml", fmt::format("model:\n  path: {}\ndata:\n  path: {}\n  prompt_template: \"### 질문: "
                                                       "{{input}}\\n### 답변: \"\n  response_column: output\n"
                                                       "  filter_column: data_type\n  filter_value: train\n",
                                                       model, csv));
  const auto from_recipe = run(fmt::format("eval --recipe '{}' --json", recipe.string()));
  const auto from_flags = run(fmt::format("eval --model '{}' --data '{}' --prompt-template '### 질문: {{input}}\n### 답변: ' "
                                          "--response-column output --filter data_type=train --json", model, csv));
  ASSERT_EQ(from_recipe.exit_code, 0) << from_recipe.output;
  EXPECT_EQ(from_recipe.output, from_flags.output);
  const auto stats_recipe = run(fmt::format("data stats '{}' --json", recipe.string()));
  const auto stats_flags = run(fmt::format("data stats --model '{}' --data '{}' --prompt-template '### 질문: {{input}}\n### 답변: ' "
                                           "--response-column output --filter data_type=train --json", model, csv));
  ASSERT_EQ(stats_recipe.exit_code, 0) << stats_recipe.output;
  auto a = nlohmann::json::parse(stats_recipe.output), b = nlohmann::json::parse(stats_flags.output);
  a.erase("seconds");
  b.erase("seconds");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a["kept"], 4);
  EXPECT_EQ(a["rows"], 6);
  const auto both = run(fmt::format("data stats '{}' --data x.csv", recipe.string()));
  EXPECT_NE(both.exit_code, 0);
  EXPECT_CONTAINS(both.output, "not both");
}
