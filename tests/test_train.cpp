// `lorakit train` against PEFT + transformers (scripts/train_oracle.py): the same 10 optimizer steps
// (AdamW, linear warmup schedule, clipping, gradient accumulation 2) give the same per-step losses
// and the same final adapter. A run killed after a checkpoint and resumed reproduces the
// uninterrupted run; metrics.h5 can be read by h5py while a run writes it; bad recipes fail before
// a run directory exists.
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
using lorakit::testing::compare;
using lorakit::testing::run;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "train"; }

std::vector<double> losses_of(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.csv");
  std::string line;
  std::getline(in, line);  // header: step,epoch,loss,...
  std::vector<double> out;
  while (std::getline(in, line)) {
    const size_t a = line.find(','), b = line.find(',', a + 1);
    out.push_back(std::stod(line.substr(b + 1, line.find(',', b + 1) - b - 1)));
  }
  return out;
}

// On the GPU machine (LORAKIT_TEST_DEVICE=cuda) the runs go to the GPU.
std::string device_set() { return fmt::format("--set train.device={}", lorakit::testing::test_device()); }

std::string train_args(const fs::path& run_dir, const std::string& extra = "") {
  return fmt::format("train '{}' --adapter '{}' --set output.dir='{}' {} {}", (oracle_dir() / "recipe.yaml").string(),
                     (oracle_dir() / "init_adapter").string(), run_dir.string(), device_set(), extra);
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_train_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

pid_t spawn(const std::vector<std::string>& args) { return lorakit::testing::spawn_lorakit(args); }

bool wait_for(const fs::path& path, pid_t pid, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(path)) return true;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return fs::exists(path);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

void expect_same_adapter(const fs::path& a, const fs::path& b, double atol) {
  const SafetensorsFile x(a / "adapter_model.safetensors"), y(b / "adapter_model.safetensors");
  ASSERT_EQ(x.entries().size(), y.entries().size());
  double worst = 0;
  for (const auto& entry : y.entries()) {
    ASSERT_TRUE(x.find(entry.name)) << entry.name;
    const auto c = compare(x.tensor(entry.name), y.tensor(entry.name), atol);
    EXPECT_TRUE(c.ok()) << entry.name << ": " << c.first_mismatch;
    worst = std::max(worst, c.max_abs);
  }
  std::printf("adapter tensors: max abs difference %.3e over %zu tensors\n", worst, y.entries().size());
}

}  // namespace

TEST(Train, MatchesPeftStepForStep) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json")) << "no oracle output at " << oracle_dir();
  const fs::path dir = scratch("parity");
  const auto r = run(train_args(dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "trainable params: ");
  const auto expected = nlohmann::json::parse(std::ifstream(oracle_dir() / "expected.json"))["losses"].get<std::vector<double>>();
  const auto got = losses_of(dir);
  ASSERT_EQ(got.size(), expected.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double rel = std::abs(got[i] - expected[i]) / std::abs(expected[i]);
    EXPECT_LE(rel, 1e-4) << "step " << i + 1 << ": lorakit " << got[i] << ", PEFT " << expected[i];
    worst = std::max(worst, rel);
  }
  std::printf("10 steps: worst relative loss difference %.3e\n", worst);
  expect_same_adapter(dir / "adapter", oracle_dir() / "final_adapter", 1e-4);
  const auto config = nlohmann::json::parse(std::ifstream(dir / "adapter" / "adapter_config.json"));
  EXPECT_EQ(config["base_model_name_or_path"], (oracle_dir() / "model").string());
  const auto summary = nlohmann::json::parse(std::ifstream(dir / "summary.json"));
  EXPECT_EQ(summary["steps"], 10);
  EXPECT_DOUBLE_EQ(summary["final_loss"].get<double>(), got.back());
  EXPECT_TRUE(fs::exists(dir / "recipe.yaml"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "step-8"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "step-4"));
  // An existing run directory is never replaced by accident.
  const auto again = run(train_args(dir));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_CONTAINS(again.output, "the run directory exists");
}

TEST(Train, KilledAfterACheckpointResumesIdentically) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json"));
  const std::string longer = "--set train.max_steps=40 --set train.num_train_epochs=10 --set train.save_steps=3";
  const fs::path whole = scratch("whole"), killed = scratch("killed"), stopped = scratch("stopped");
  ASSERT_EQ(run(train_args(whole, longer)).exit_code, 0);
  const auto reference = losses_of(whole);
  ASSERT_EQ(reference.size(), 40u);

  // SIGKILL once a checkpoint exists: nothing is saved at the kill; --resume starts from the newest.
  std::vector<std::string> args = {"train", (oracle_dir() / "recipe.yaml").string(), "--adapter",
                                   (oracle_dir() / "init_adapter").string(), "--set", "output.dir=" + killed.string(),
                                   "--set", "train.max_steps=40", "--set", "train.num_train_epochs=10", "--set",
                                   "train.save_steps=3", "--set", "train.device=" + lorakit::testing::test_device()};
  pid_t pid = spawn(args);
  ASSERT_TRUE(wait_for(killed / "checkpoints" / "step-6", pid, 60));
  ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  const auto resumed = run(train_args(killed, longer + " --resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_CONTAINS(resumed.output, "resuming");
  EXPECT_EQ(losses_of(killed), reference) << "per-step losses differ after resume";
  expect_same_adapter(killed / "adapter", whole / "adapter", 0);

  // SIGTERM: the step finishes, a checkpoint is saved, exit 130; --resume finishes identically.
  args[5] = "output.dir=" + stopped.string();
  pid = spawn(args);
  ASSERT_TRUE(wait_for(stopped / "metrics.csv", pid, 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGTERM);
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 130) {
    EXPECT_FALSE(fs::exists(stopped / "adapter"));
  }
  ASSERT_EQ(run(train_args(stopped, longer + " --resume")).exit_code, 0);
  EXPECT_EQ(losses_of(stopped), reference);
  expect_same_adapter(stopped / "adapter", whole / "adapter", 0);
}

// Every run directory is a TensorBoard run: tensorboard's EventAccumulator reads every scalar equal
// to metrics.csv / metrics.h5 (float32), with the same steps, also after SIGKILL + --resume (the
// resumed file's SessionLog START drops what the killed run logged past its checkpoint); every
// record's masked CRCs check out; a file cut inside its last record is read up to the one before.
TEST(Train, TensorBoardEventsEqualTheMetricsAfterAKillAndResume) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json"));
  const fs::path killed = scratch("tensorboard");
  const std::string sets = "--set train.max_steps=40 --set train.num_train_epochs=10 --set train.save_steps=5 "
                           "--set train.save_total_limit=20 --set data.validation_fraction=0.25 --set train.eval_steps=4";
  const std::vector<std::string> args = {"train", (oracle_dir() / "recipe.yaml").string(), "--adapter",
                                         (oracle_dir() / "init_adapter").string(), "--set", "output.dir=" + killed.string(),
                                         "--set", "train.max_steps=40", "--set", "train.num_train_epochs=10", "--set",
                                         "train.save_steps=5", "--set", "train.save_total_limit=20", "--set",
                                         "data.validation_fraction=0.25", "--set", "train.eval_steps=4"};
  pid_t pid = spawn(args);
  ASSERT_TRUE(wait_for(killed / "checkpoints" / "step-20", pid, 60));
  ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // Resume from step 10 while the killed run's event file already holds steps past it (20 or more):
  // what TensorBoard shows must not count those steps twice.
  for (const auto& entry : fs::directory_iterator(killed / "checkpoints"))
    if (entry.path().filename().string() != "step-5" && entry.path().filename().string() != "step-10")
      fs::remove_all(entry.path());
  const auto resumed = run(train_args(killed, sets + " --resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_CONTAINS(resumed.output, "resuming");
  EXPECT_CONTAINS(resumed.output, "at step 10");
  const std::string script = (fs::path(LORAKIT_SOURCE_DIR) / "scripts" / "check_tensorboard.py").string();
  const auto check = lorakit::testing::run_command(fmt::format("{} '{}' run '{}'", lorakit::testing::venv_python(), script,
                                                               killed.string()));
  ASSERT_EQ(check.exit_code, 0) << check.output;
  const auto j = nlohmann::json::parse(check.output);
  EXPECT_EQ(j["steps"], 40);
  EXPECT_EQ(j["eval_steps"], 10);
  EXPECT_EQ(j["files"], 2) << "the resumed run writes a second event file";
  EXPECT_EQ(j["scalars_checked"], 40 * 8 + 10);
  EXPECT_EQ(j["tensor_tags"], nlohmann::json::array({"recipe"}));
  const auto cut = lorakit::testing::run_command(fmt::format("{} '{}' truncated '{}'", lorakit::testing::venv_python(),
                                                             script, killed.string()));
  ASSERT_EQ(cut.exit_code, 0) << cut.output;
  const auto c = nlohmann::json::parse(cut.output);
  EXPECT_EQ(c["scalars_truncated"].get<int>(), c["scalars_whole_file"].get<int>() - 1) << cut.output;
  std::printf("tensorboard: %s\ncut file: %s\n", check.output.c_str(), cut.output.c_str());
  // report_to none: no event file.
  const fs::path plain = scratch("no-tensorboard");
  ASSERT_EQ(run(train_args(plain, "--set 'train.report_to=[none]'")).exit_code, 0);
  for (const auto& entry : fs::directory_iterator(plain))
    EXPECT_EQ(entry.path().filename().string().find("tfevents"), std::string::npos) << entry.path();
}

TEST(Train, MetricsReadableByH5pyWhileRunning) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json"));
  const fs::path dir = scratch("live");
  pid_t pid = spawn({"train", (oracle_dir() / "recipe.yaml").string(), "--set", "output.dir=" + dir.string(), "--set",
                     "train.max_steps=4000", "--set", "train.num_train_epochs=1000", "--set", "train.save_steps=0"});
  ASSERT_TRUE(wait_for(dir / "metrics.h5", pid, 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string script = fmt::format(
      "import h5py, time\n"
      // The writer holds the file open during each append: retry for up to 10 s (a loaded machine
      // can keep it busy through a short window; a read caught mid-append may also see a dataset
      // being extended).
      "for attempt in range(1000):\n"
      "    try:\n"
      "        with h5py.File('{}', 'r') as f:\n"
      "            print(len(f['step']), len(f['loss']), float(f['loss'][-1]), sorted(f.keys()))\n"
      "        break\n"
      "    except (OSError, BlockingIOError, KeyError, ValueError, IndexError):\n"
      "        time.sleep(0.01)\n",
      (dir / "metrics.h5").string());
  const fs::path py = dir.parent_path() / "read_h5.py";
  std::ofstream(py) << script;
  int status = 0;
  const bool running_before = waitpid(pid, &status, WNOHANG) == 0;
  const auto read = lorakit::testing::run_command(fmt::format("{} {}", lorakit::testing::venv_python(), py.string()));
  const bool running_after = waitpid(pid, &status, WNOHANG) == 0;
  ::kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  EXPECT_TRUE(running_before && running_after) << "the run ended before h5py read the file";
  EXPECT_EQ(read.exit_code, 0) << read.output;
  EXPECT_CONTAINS(read.output, "'eval', 'grad_norm', 'loss', 'lr', 'mem_allocated_bytes', 'mem_peak_bytes', "
                               "'mem_reserved_bytes', 'step', 'tokens_per_s'");
  const int rows = std::atoi(read.output.c_str());
  EXPECT_GT(rows, 0) << read.output;
  EXPECT_LT(rows, 4000) << read.output;
}

TEST(Train, BadRecipesFailBeforeTheRunDirectoryExists) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json"));
  const fs::path dir = scratch("bad");
  const auto target = run(train_args(dir, "--set 'lora.target_modules=[q_prj]'"));
  EXPECT_NE(target.exit_code, 0);
  EXPECT_CONTAINS(target.output, "lora.target_modules [q_prj] matches no module");
  EXPECT_CONTAINS(target.output, "did you mean 'q_proj'");
  const auto model = run(train_args(dir, "--set model.path=/nonexistent/model"));
  EXPECT_NE(model.exit_code, 0);
  EXPECT_CONTAINS(model.output, "/nonexistent/model");
  const fs::path empty = scratch("empty-model");
  fs::create_directories(empty);
  std::ofstream(empty / "tokenizer.json") << "{}";
  const auto files = run(train_args(dir, "--set model.path=" + empty.string()));
  EXPECT_NE(files.exit_code, 0);
  EXPECT_CONTAINS(files.output, "tokenizer.json");
  const auto type = run(train_args(dir, "--set train.learning_rate=fast"));
  EXPECT_NE(type.exit_code, 0);
  EXPECT_CONTAINS(type.output, "train.learning_rate: expected a number, found 'fast'");
  const auto unknown = run(train_args(dir, "--set train.lerning_rate=0.1"));
  EXPECT_CONTAINS(unknown.output, "unknown key 'train.lerning_rate' (did you mean 'learning_rate'?)");
  const auto scheduler = run(train_args(dir, "--set train.lr_scheduler_type=step"));
  EXPECT_CONTAINS(scheduler.output, "train.lr_scheduler_type 'step'");
  const auto vram = run(train_args(dir, "--set train.max_vram=12GiB"));
  EXPECT_CONTAINS(vram.output, "train.max_vram '12GiB' applies to device cuda, not cpu");
  EXPECT_FALSE(fs::exists(dir)) << "a failed start left a run directory behind";
}

// CUDA misconfigurations, on a machine without a GPU: each is one line naming the setting, what was
// found and a hint, before the run directory exists. LORAKIT_FAKE_CUDA_DEVICES stands in for a GPU
// where a check needs one (a 16 GB Tesla T4, compute capability 7.5: no bf16).
TEST(Train, CudaMisconfigurationsFailBeforeTheRunDirectoryExists) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json"));
  const fs::path dir = scratch("cuda");
  const auto with_gpu = [&](const std::string& sets) {
    return lorakit::testing::run_command(fmt::format("LORAKIT_FAKE_CUDA_DEVICES='Tesla T4:16GB:7.5' {} {}",
                                                     lorakit::testing::lorakit_bin(), train_args(dir, sets)));
  };
  // No GPU at all (this machine; an empty fake list says the same on a machine with one).
  const auto none = lorakit::testing::run_command(fmt::format("LORAKIT_FAKE_CUDA_DEVICES= {} {}", lorakit::testing::lorakit_bin(),
                                                              train_args(dir, "--set train.device=cuda")));
  EXPECT_NE(none.exit_code, 0);
  EXPECT_CONTAINS(none.output, "error: train.device 'cuda': no CUDA device is visible (no NVIDIA driver or GPU found");
  EXPECT_CONTAINS(none.output, "hint: --set train.device=cpu");
  const auto real = run(train_args(dir, "--set train.device=cuda"));
  EXPECT_NE(real.exit_code, 0);
  if (!fs::exists("/dev/nvidia0")) EXPECT_CONTAINS(real.output, "train.device 'cuda': no CUDA device is visible");
  const auto index = with_gpu("--set train.device=cuda:3");
  EXPECT_NE(index.exit_code, 0);
  EXPECT_CONTAINS(index.output, "train.device 'cuda:3': this machine has 1 CUDA device: cuda:0 Tesla T4 (14.90 GiB, "
                                "compute capability 7.5); hint: use cuda:0");
  const auto vram = with_gpu("--set train.device=cuda --set train.max_vram=24GiB");
  EXPECT_NE(vram.exit_code, 0);
  EXPECT_CONTAINS(vram.output, "train.max_vram 24.00 GiB: more than cuda:0 has (14.90 GiB in all, Tesla T4)");
  const auto bf16 = with_gpu("--set train.device=cuda --set model.dtype=bf16");
  EXPECT_NE(bf16.exit_code, 0);
  EXPECT_CONTAINS(bf16.output, "model.dtype bf16: cuda:0 (Tesla T4) has compute capability 7.5 and no bfloat16 support");
  EXPECT_CONTAINS(bf16.output, "hint: use fp16");
  const auto typo = run(train_args(dir, "--set train.device=gpu"));
  EXPECT_CONTAINS(typo.output, "train.device 'gpu': expected cpu, cuda or cuda:N");
  for (const auto* r : {&none, &real, &index, &vram, &bf16, &typo}) {
    EXPECT_EQ(std::count(r->output.begin(), r->output.end(), '\n'), 1) << "one line: " << r->output;
  }
  EXPECT_FALSE(fs::exists(dir)) << "a failed start left a run directory behind";
}

TEST(Train, EarlyStoppingOnValidationLoss) {
  ASSERT_TRUE(fs::exists(oracle_dir() / "expected.json"));
  const fs::path dir = scratch("early");
  const auto r = run(train_args(dir, "--set data.validation_fraction=0.25 --set train.eval_steps=1 "
                                     "--set train.early_stopping_patience=1 --set train.learning_rate=1.0 "
                                     "--set train.warmup_steps=0"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "eval step 1: loss");
  EXPECT_CONTAINS(r.output, "early stopping: no better validation loss in 1 evaluations");
  const auto summary = nlohmann::json::parse(std::ifstream(dir / "summary.json"));
  EXPECT_LT(summary["steps"].get<int>(), 10);
  EXPECT_TRUE(summary["best_eval_loss"].is_number());
}
