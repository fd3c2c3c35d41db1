// `lorakit sweep` / `report` on the train oracle's tiny model (CPU): three ranks give three report
// rows whose numbers equal each run's summary.json and metrics.h5, valid PNG plots, a second
// invocation skips the finished runs, a sweep killed in its second run finishes without repeating
// the first, and a failed run is recorded while the sweep goes on.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/cli_runner.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using lorakit::testing::run;
using lorakit::testing::run_command;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "train"; }

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_sweep_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

const std::string kPrompts = "--set 'inference.prompts=[\"### 질문: 월요일 다음 날은?\\n### 답변: \", \"### 질문: 하늘은?\\n### 답변: \"]' "
                             "--set inference.max_new_tokens=6";

std::vector<std::map<std::string, std::string>> read_csv(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  std::stringstream hs(line);
  for (std::string h; std::getline(hs, h, ',');) header.push_back(h);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::map<std::string, std::string> row;
    std::stringstream ls(line);
    size_t i = 0;
    for (std::string v; i < header.size() && std::getline(ls, v, ','); ++i) row[header[i]] = v;
    rows.push_back(row);
  }
  return rows;
}

bool is_png(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in && std::string(magic, 8) == "\x89PNG\r\n\x1a\n" && fs::file_size(path) > 1000;
}

double last_h5_loss(const fs::path& metrics) {
  const auto r = run_command(fmt::format("{} -c \"import h5py; print(float(h5py.File('{}', 'r')['loss'][-1]))\"",
                                         lorakit::testing::venv_python(), metrics.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return std::stod(r.output);
}

}  // namespace

TEST(Sweep, ThreeRanksReportPlotsAndSkipOnRerun) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "recipe.yaml")) << "train oracle output missing";
  const fs::path dir = scratch("ranks");
  const std::string command = fmt::format("sweep '{}' --grid lora.r=16,32,64 --set train.max_steps=6 {} --out '{}'",
                                          (oracle_dir() / "recipe.yaml").string(), kPrompts, dir.string());
  const auto first = run(command);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto rows = read_csv(dir / "report.csv");
  ASSERT_EQ(rows.size(), 3u);
  const std::vector<std::string> names = {"r16", "r32", "r64"};
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(rows[i].at("run"), names[i]);
    EXPECT_EQ(rows[i].at("status"), "finished");
    const auto summary = nlohmann::json::parse(std::ifstream(dir / names[i] / "summary.json"));
    EXPECT_NEAR(std::stod(rows[i].at("final_loss")), summary["final_loss"].get<double>(), 1e-6);
    EXPECT_NEAR(std::stod(rows[i].at("mean_loss")), summary["mean_loss"].get<double>(), 1e-6);
    EXPECT_NEAR(std::stod(rows[i].at("finetune_seconds")), summary["wall_seconds"].get<double>(), 1e-3);
    EXPECT_EQ(std::stoll(rows[i].at("trainable_params")), summary["trainable_params"].get<int64_t>());
    EXPECT_EQ(std::stod(rows[i].at("peak_memory_bytes")), summary["peak_memory_bytes"].get<double>());
    EXPECT_NEAR(std::stod(rows[i].at("final_loss")), last_h5_loss(dir / names[i] / "metrics.h5"), 1e-6);
    EXPECT_EQ(rows[i].at("r"), names[i].substr(1));
    const auto inference = nlohmann::json::parse(std::ifstream(dir / names[i] / "inference.json"));
    EXPECT_EQ(inference["prompts"].size(), 2u);
    EXPECT_NEAR(std::stod(rows[i].at("inference_seconds_per_prompt")), inference["seconds_per_prompt"].get<double>(), 1e-4);
  }
  EXPECT_LT(std::stoll(rows[0].at("trainable_params")), std::stoll(rows[2].at("trainable_params")));
  EXPECT_TRUE(is_png(dir / "loss_curves.png"));
  EXPECT_TRUE(is_png(dir / "time_memory_by_rank.png"));
  std::string md;
  std::getline(std::ifstream(dir / "report.md"), md, '\0');
  EXPECT_CONTAINS(md, "| r16 |");
  EXPECT_CONTAINS(md, "lora_alpha is fixed at 16 for every rank");  // the seed table's flaw, named
  EXPECT_CONTAINS(md, "## Sample generations");

  const auto stamp = fs::last_write_time(dir / "r16" / "summary.json");
  const auto second = run(command);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  for (const auto& name : names) EXPECT_CONTAINS(second.output, "skipping " + name + ": finished");
  EXPECT_EQ(fs::last_write_time(dir / "r16" / "summary.json"), stamp);
}

// The sweep directory is a TensorBoard logdir: tensorboard's HParams plugin data (read with its own
// protos through EventAccumulator) lists every run's hyperparameters and metrics equal to report.csv.
TEST(Sweep, TensorBoardHParamsEqualTheReport) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "recipe.yaml"));
  const fs::path dir = scratch("hparams");
  const auto r = run(fmt::format("sweep '{}' --grid lora.r=16,32 --alpha-per-rank 2 --set train.max_steps=3 "
                                 "--set data.validation_fraction=0.25 --set train.eval_steps=3 {} --out '{}'",
                                 (oracle_dir() / "recipe.yaml").string(), kPrompts, dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto check = lorakit::testing::run_command(fmt::format("{} '{}' sweep '{}'", lorakit::testing::venv_python(),
                                                               (fs::path(LORAKIT_SOURCE_DIR) / "scripts" / "check_tensorboard.py").string(),
                                                               dir.string()));
  ASSERT_EQ(check.exit_code, 0) << check.output;
  const auto j = nlohmann::json::parse(check.output);
  EXPECT_EQ(j["sessions"].size(), 2u) << check.output;
  EXPECT_EQ(j["sessions"]["r32"]["hparams"]["lora.r"], 32.0);
  EXPECT_EQ(j["sessions"]["r32"]["hparams"]["lora.lora_alpha"], 64.0);
  EXPECT_EQ(j["metrics"].size(), 5u);
  std::printf("HParams: %s\n", check.output.c_str());
}

TEST(Sweep, KilledInTheSecondRunFinishesWithoutRepeatingTheFirst) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "recipe.yaml"));
  const fs::path dir = scratch("killed");
  const pid_t pid = lorakit::testing::spawn_lorakit({"sweep", (oracle_dir() / "recipe.yaml").string(), "--grid",
                                                      "lora.r=16,32,64", "--set", "train.max_steps=60", "--set",
                                                      "train.num_train_epochs=10", "--set", "train.save_steps=2", "--out",
                                                      dir.string()});
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < end && !fs::exists(dir / "r32" / "checkpoints" / "step-4"))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(fs::exists(dir / "r16" / "summary.json")) << "the first run did not finish before the kill";
  EXPECT_FALSE(fs::exists(dir / "r32" / "summary.json")) << "the second run finished before the kill";
  const auto stamp = fs::last_write_time(dir / "r16" / "summary.json");
  const auto again = run(fmt::format("sweep '{}' --grid lora.r=16,32,64 --set train.max_steps=60 --set train.num_train_epochs=10 "
                                     "--set train.save_steps=2 --out '{}'", (oracle_dir() / "recipe.yaml").string(), dir.string()));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_CONTAINS(again.output, "skipping r16: finished");
  EXPECT_CONTAINS(again.output, "resuming r32 from its newest checkpoint");
  EXPECT_EQ(fs::last_write_time(dir / "r16" / "summary.json"), stamp) << "the first run was repeated";
  const auto rows = read_csv(dir / "report.csv");
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& row : rows) EXPECT_EQ(row.at("status"), "finished") << row.at("run");
  for (const char* name : {"r16", "r32", "r64"}) {
    const auto summary = nlohmann::json::parse(std::ifstream(dir / name / "summary.json"));
    EXPECT_EQ(summary["steps"], 60) << name;
  }
}

// One sweep across architectures (the train oracle's tiny exaone4, llama and qwen2, one tokenizer):
// one report, a row per model.
TEST(Sweep, AcrossArchitecturesOneReportRowPerModel) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "model-llama" / "config.json"));
  const fs::path dir = scratch("architectures");
  const auto r = run(fmt::format("sweep '{}' --grid 'model.path={},{},{}' --set train.max_steps=2 --out '{}'",
                                 (oracle_dir() / "recipe.yaml").string(), (oracle_dir() / "model-llama").string(),
                                 (oracle_dir() / "model-qwen2").string(), (oracle_dir() / "model").string(), dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = read_csv(dir / "report.csv");
  ASSERT_EQ(rows.size(), 3u);
  std::set<std::string> models;
  for (const auto& row : rows) {
    EXPECT_EQ(row.at("status"), "finished");
    models.insert(row.at("model"));
  }
  EXPECT_EQ(models, (std::set<std::string>{"model-llama", "model-qwen2", "model"}));
}

// The Oh-LoRA model selection rebuilt on tiny random versions of its eight candidates (six
// architectures, one tokenizer): ranks 16/32/64 on each model_type's default LoRA targets, one report
// with a row per model and rank.
TEST(Sweep, OhLoraEightCandidatesThreeRanks) {
  const fs::path models = oracle_dir() / "ohlora";
  ASSERT_TRUE(fs::exists(models / "llama1B" / "config.json"));
  std::vector<std::string> paths;
  for (const char* name : {"gemma-2-2b-it", "koquality-polyglot-1.3b", "polyglot-ko-1.3b", "gemma-ko-v01", "llama1B",
                           "TinyKo", "KoAlpaca-KoRWKV-1.5B", "FinguAI-Chat-v1"})
    paths.push_back((models / name).string());
  const fs::path dir = scratch("ohlora");
  const auto r = run(fmt::format("sweep '{}' --grid 'model.path={}' --grid lora.r=16,32,64 --alpha-per-rank 2 "
                                 "--set 'lora.target_modules=[]' --set train.max_steps=4 --set train.warmup_steps=0 {} --out '{}'",
                                 (oracle_dir() / "recipe.yaml").string(), fmt::join(paths, ","), kPrompts, dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = read_csv(dir / "report.csv");
  ASSERT_EQ(rows.size(), 24u);
  std::set<std::pair<std::string, std::string>> cells;
  for (const auto& row : rows) {
    EXPECT_EQ(row.at("status"), "finished") << row.at("run") << ": " << row.at("error");
    EXPECT_FALSE(row.at("inference_seconds_per_prompt").empty()) << row.at("run");
    cells.insert({row.at("model"), row.at("r")});
  }
  EXPECT_EQ(cells.size(), 24u);
  std::ifstream md(dir / "report.md");
  std::printf("%s\n", std::string(std::istreambuf_iterator<char>(md), {}).c_str());
}

TEST(Sweep, AFailedRunIsRecordedAndTheSweepGoesOn) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "recipe.yaml"));
  const fs::path dir = scratch("failed");
  const auto r = run(fmt::format("sweep '{}' --grid 'model.path={},/nonexistent/other-model' --set train.max_steps=2 --out '{}'",
                                 (oracle_dir() / "recipe.yaml").string(), (oracle_dir() / "model").string(), dir.string()));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_CONTAINS(r.output, "run path-other-model failed");
  const auto rows = read_csv(dir / "report.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("status"), "finished");
  EXPECT_EQ(rows[1].at("status"), "failed");
  EXPECT_CONTAINS(rows[1].at("error"), "/nonexistent/other-model");
}
