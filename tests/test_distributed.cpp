// More than one process on the CPU: `torchrun --no-python build/lorakit train` with Gloo. 2 ranks x
// batch b train like 1 process x batch 2b (per-step losses and the final adapter), 3 ranks with an
// uneven last micro-batch like batch 3b; a rank killed with SIGKILL stops the others quickly with a
// message naming it, and --resume under torchrun continues exactly; another world size is refused.
// `lorakit sweep --parallel 2` gives a serial sweep's report rows, and a crashed worker is recorded.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoints/safetensors.h"
#include "tests/cli_runner.h"
#include "tests/tensor_compare.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using lorakit::SafetensorsFile;
using lorakit::testing::run;
using lorakit::testing::run_command;

extern char** environ;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "train"; }
std::string torchrun() { return (fs::path(lorakit::testing::venv_python()).parent_path() / "torchrun").string(); }

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_distributed_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

std::vector<double> losses_of(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.csv");
  std::string line;
  std::getline(in, line);  // step,epoch,loss,...
  std::vector<double> out;
  while (std::getline(in, line)) {
    const size_t a = line.find(','), b = line.find(',', a + 1);
    out.push_back(std::stod(line.substr(b + 1, line.find(',', b + 1) - b - 1)));
  }
  return out;
}

// The recipe of scripts/train_oracle.py (dropout 0, batch 2, accumulation 2, 10 steps).
std::vector<std::string> train_args(const fs::path& run_dir, const std::vector<std::string>& sets) {
  std::vector<std::string> args = {"train", (oracle_dir() / "recipe.yaml").string(), "--set", "output.dir=" + run_dir.string(),
                                   "--set", "train.report_to=[none]"};
  for (const auto& s : sets) args.insert(args.end(), {"--set", s});
  return args;
}

std::string quoted(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += fmt::format(" '{}'", a);
  return out;
}

lorakit::testing::Result torchrun_train(int ranks, const std::vector<std::string>& args) {
  // --standalone: a free port of its own, so tests running side by side do not meet.
  return run_command(fmt::format("{} --standalone --nproc-per-node {} --no-python {}{}", torchrun(), ranks,
                                 lorakit::testing::lorakit_bin(), quoted(args)));
}

// Worst relative difference of the per-step losses, and of the final adapter's tensors (|x - y| / |y|
// in the Frobenius norm, per tensor: AdamW's first steps amplify the summation order's rounding in
// elements whose gradient is near zero, so an element-wise ratio would measure those alone).
std::pair<double, double> differences(const fs::path& a, const fs::path& b) {
  const auto la = losses_of(a), lb = losses_of(b);
  EXPECT_EQ(la.size(), lb.size());
  double loss = 0;
  for (size_t i = 0; i < std::min(la.size(), lb.size()); ++i) loss = std::max(loss, std::abs(la[i] - lb[i]) / std::abs(lb[i]));
  const SafetensorsFile wa(a / "adapter" / "adapter_model.safetensors"), wb(b / "adapter" / "adapter_model.safetensors");
  double adapter = 0;
  for (const auto& e : wb.entries()) {
    const at::Tensor x = wa.tensor(e.name), y = wb.tensor(e.name);
    adapter = std::max(adapter, ((x - y).norm() / y.norm().clamp_min(1e-12)).item<double>());
  }
  return {loss, adapter};
}

}  // namespace

TEST(Distributed, RanksTrainLikeOneProcessWithTheirBatchesTogether) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "recipe.yaml")) << "train oracle output missing";
  for (const int ranks : {2, 3}) {
    SCOPED_TRACE(fmt::format("{} ranks", ranks));
    const fs::path single = scratch(fmt::format("single-{}", ranks)), many = scratch(fmt::format("ranks-{}", ranks));
    // 40 rows in micro-batches of 2 x ranks: with 3 ranks the epoch's last micro-batch has 4 rows (1, 1, 2).
    auto r = run(quoted(train_args(single, {fmt::format("train.per_device_train_batch_size={}", 2 * ranks)})).substr(1));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = torchrun_train(ranks, train_args(many, {}));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(fmt::format("torchrun: {} ranks over gloo", ranks)), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("done: 10 steps"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("done: 10 steps"), r.output.rfind("done: 10 steps")) << "progress prints once:\n" << r.output;
    const auto [loss, adapter] = differences(many, single);
    EXPECT_LT(loss, 1e-5);
    EXPECT_LT(adapter, 1e-5);
    std::printf("%d ranks x batch 2 vs 1 process x batch %d: 10 steps, worst loss %.2e relative, adapter %.2e\n", ranks,
                2 * ranks, loss, adapter);
    std::ifstream summary(many / "summary.json");
    const auto s = nlohmann::json::parse(summary);
    EXPECT_EQ(s["world_size"], ranks);
    EXPECT_EQ(s["peak_memory_bytes_per_rank"].size(), static_cast<size_t>(ranks));
  }
}

// The demo recipe (recipes/demo.yaml: dropout 0, batch 8) on the demo's tiny EXAONE 4.0 model, 12 steps.
TEST(Distributed, DemoRecipeOnTwoAndThreeRanks) {
  const fs::path source = LORAKIT_SOURCE_DIR;
  const fs::path model = scratch("demo-model");
  auto r = run_command(fmt::format("{} {}/scripts/make_tiny_model.py --model-type exaone4 --out '{}' --tokenizer-corpus {}",
                                   lorakit::testing::venv_python(), source.string(), model.string(),
                                   (source / "tests/fixtures/demo_ko_qa.csv").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const int ranks : {2, 3}) {
    SCOPED_TRACE(fmt::format("{} ranks", ranks));
    const fs::path single = scratch(fmt::format("demo-single-{}", ranks)), many = scratch(fmt::format("demo-ranks-{}", ranks));
    const auto args = [&](const fs::path& dir, int batch) {
      return std::vector<std::string>{"train", (source / "recipes/demo.yaml").string(), "--set", "model.path=" + model.string(),
                                      "--set", "output.dir=" + dir.string(), "--set", "train.max_steps=12", "--set",
                                      "train.report_to=[none]", "--set", "train.save_steps=0", "--set", "train.eval_steps=6", "--set",
                                      fmt::format("train.per_device_train_batch_size={}", batch)};
    };
    r = run(quoted(args(single, 4 * ranks)).substr(1));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = torchrun_train(ranks, args(many, 4));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto [loss, adapter] = differences(many, single);
    EXPECT_LT(loss, 1e-5);
    EXPECT_LT(adapter, 1e-5);
    // Validation every 6 steps, its rows shared out over the ranks: the same mean loss.
    const auto best_eval = [](const fs::path& dir) {
      std::ifstream in(dir / "summary.json");
      return nlohmann::json::parse(in)["best_eval_loss"].get<double>();
    };
    const double eval = std::abs(best_eval(many) - best_eval(single)) / best_eval(single);
    EXPECT_LT(eval, 1e-5);
    std::printf("demo recipe, %d ranks x batch 4 vs 1 process x batch %d: 12 steps, worst loss %.2e relative, adapter %.2e, "
                "best validation loss %.2e\n", ranks, 4 * ranks, loss, adapter, eval);
  }
}

TEST(Distributed, KilledRankStopsTheOthersAndResumeContinuesExactly) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "recipe.yaml"));
  const fs::path killed = scratch("killed"), whole = scratch("whole");
  const std::vector<std::string> sets = {"train.max_steps=400", "train.save_steps=10"};
  // torchrun in the background, its output in a log.
  std::vector<std::string> args = {torchrun(), "--standalone", "--nproc-per-node", "2", "--no-python",
                                   lorakit::testing::lorakit_bin()};
  for (const auto& a : train_args(killed, sets)) args.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const fs::path log = killed.string() + ".log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t launcher = 0;
  ASSERT_EQ(posix_spawn(&launcher, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);

  // Wait for a checkpoint, then SIGKILL rank 1 (the worker whose environment says RANK=1).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(killed / "checkpoints" / "step-20") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(killed / "checkpoints" / "step-20"));
  pid_t rank1 = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string pid_text, comm, state;
    pid_t parent = 0;
    if (!(stat >> pid_text >> comm >> state >> parent) || parent != launcher) continue;
    std::ifstream env_file(entry.path() / "environ");
    std::string env((std::istreambuf_iterator<char>(env_file)), std::istreambuf_iterator<char>());
    if (env.find(std::string("\0RANK=1\0", 8)) != std::string::npos) rank1 = std::stoi(pid_text);
  }
  ASSERT_GT(rank1, 0) << "no rank 1 worker under torchrun " << launcher;
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  const auto killed_at = std::chrono::steady_clock::now();
  int status = 0;
  while (::waitpid(launcher, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(90))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_LT(seconds, 60.0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "torchrun status " << status;
  std::ifstream in(log);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(output.find("rank      : 1 (local_rank: 1)"), std::string::npos) << output.substr(output.size() > 3000 ? output.size() - 3000 : 0);
  EXPECT_NE(output.find("rank 0 of 2: step"), std::string::npos) << "rank 0 names the failed collective";
  std::printf("rank 1 SIGKILLed: every process gone %.2f s later, torchrun exit status %d\n", seconds, WEXITSTATUS(status));

  // Another world size is refused; the same resumes and equals an uninterrupted run.
  auto args3 = train_args(killed, sets);
  args3.push_back("--resume");
  auto r = torchrun_train(3, args3);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("resume with torchrun --nproc-per-node 2"), std::string::npos) << r.output;
  r = torchrun_train(2, args3);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming"), std::string::npos) << r.output;
  r = torchrun_train(2, train_args(whole, sets));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto [loss, adapter] = differences(killed, whole);
  EXPECT_EQ(loss, 0.0);
  EXPECT_EQ(adapter, 0.0);
  std::printf("resumed under torchrun vs uninterrupted, 400 steps: loss %.2e, adapter %.2e\n", loss, adapter);
}

namespace {

// report.csv's rows without the columns that time things (those differ run to run).
std::vector<std::string> report_rows(const fs::path& sweep) {
  std::ifstream in(sweep / "report.csv");
  std::string header, line;
  std::getline(in, header);
  std::vector<std::string> names;
  for (size_t a = 0, b; a <= header.size(); a = b + 1) {
    b = header.find(',', a);
    if (b == std::string::npos) b = header.size();
    names.push_back(header.substr(a, b - a));
  }
  std::vector<std::string> rows;
  while (std::getline(in, line)) {
    std::string kept;
    size_t column = 0;
    for (size_t a = 0, b; a <= line.size(); a = b + 1, ++column) {
      b = line.find(',', a);
      if (b == std::string::npos) b = line.size();
      const std::string& name = column < names.size() ? names[column] : "";
      if (name.find("seconds") != std::string::npos || name.find("per_s") != std::string::npos ||
          name.find("memory") != std::string::npos)
        continue;
      kept += name + "=" + line.substr(a, b - a) + ";";
    }
    rows.push_back(kept);
  }
  return rows;
}

}  // namespace

TEST(Distributed, ParallelSweepGivesTheSerialReport) {
  const fs::path serial = scratch("sweep-serial"), parallel = scratch("sweep-parallel");
  const std::string recipe = (oracle_dir() / "recipe.yaml").string();
  const std::string grid = "--grid lora.r=4,8 --grid train.learning_rate=0.001,0.002 --set train.report_to=[none]";
  auto start = std::chrono::steady_clock::now();
  auto r = run(fmt::format("sweep '{}' {} --out '{}'", recipe, grid, serial.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double serial_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  start = std::chrono::steady_clock::now();
  r = run(fmt::format("sweep '{}' {} --out '{}' --parallel 2", recipe, grid, parallel.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double parallel_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.output.find("worker 1"), std::string::npos) << r.output;
  const auto a = report_rows(serial), b = report_rows(parallel);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a, b);
  std::printf("sweep of 4 runs: serial %.1f s, --parallel 2 %.1f s (this machine's cores: %u)\n", serial_seconds,
              parallel_seconds, std::thread::hardware_concurrency());
}

TEST(Distributed, ParallelSweepRecordsACrashedWorker) {
  const fs::path sweep = scratch("sweep-crash");
  const std::string recipe = (oracle_dir() / "recipe.yaml").string();
  std::vector<std::string> args = {lorakit::testing::lorakit_bin(), "sweep", recipe, "--grid", "train.max_steps=5,100000",
                                   "--set", "train.report_to=[none]", "--out", sweep.string(), "--parallel", "2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = sweep.string() + ".log";
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t parent = 0;
  ASSERT_EQ(posix_spawn(&parent, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  // The long run's worker: kill it once it is training (its metrics exist).
  const fs::path long_run = sweep / "max_steps100000";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(long_run / "metrics.csv") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(long_run / "metrics.csv")) << "no run directory " << long_run;
  pid_t worker = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream cmdline_file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)), std::istreambuf_iterator<char>());
    std::ifstream stat(entry.path() / "stat");
    std::string pid_text, comm, state;
    pid_t ppid = 0;
    if (stat >> pid_text >> comm >> state >> ppid && ppid == parent && cmdline.find(std::string("--only\0001", 9)) != std::string::npos)
      worker = std::stoi(pid_text);
  }
  ASSERT_GT(worker, 0);
  ::kill(worker, SIGKILL);
  int status = 0;
  ::waitpid(parent, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "a sweep with a failed run exits 1";
  std::ifstream failed(long_run / "failed.json");
  ASSERT_TRUE(failed) << "the crash is recorded";
  const auto f = nlohmann::json::parse(failed);
  EXPECT_NE(f["error"].get<std::string>().find("signal 9"), std::string::npos) << f.dump();
  EXPECT_TRUE(fs::exists(sweep / "max_steps5" / "summary.json")) << "the other run finished";
  std::ifstream report(sweep / "report.csv");
  const std::string text((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("signal 9"), std::string::npos) << text;
}
