#include "sweep/sweep.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <cstring>
#include <thread>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "core/error.h"
#include "core/files.h"
#include "device/cuda.h"
#include "device/dtype.h"
#include "device/memory.h"
#include "inference/classify.h"
#include "inference/generate.h"
#include "sweep/report.h"
#include "trainer/checkpoint.h"
#include "trainer/recipe.h"
#include "trainer/train.h"

namespace lorakit::sweep {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using trainer::Recipe;

struct Grid {
  std::string key;
  std::vector<std::string> values;
};

Grid parse_grid(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || text.find('.') > eq)
    fail("--grid '{}': expected section.key=value1,value2, e.g. lora.r=16,32,64", text);
  Grid g{text.substr(0, eq), {}};
  size_t start = eq + 1;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string v = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (v.empty()) fail("--grid '{}': an empty value", text);
    g.values.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return g;
}

// "lora.r", "16" -> "r16"; "model.path", "/m/polyglot-ko-1.3b" -> "path-polyglot-ko-1.3b".
std::string part_name(const std::string& key, const std::string& value) {
  const std::string last = key.substr(key.rfind('.') + 1);
  std::string v = fs::path(value).filename().string();
  if (v.empty()) v = value;
  for (char& c : v)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '-';
  const bool numeric = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
  return numeric ? last + v : last + "-" + v;
}

void write_json(const fs::path& path, const json& value) { write_text_atomically(path, value.dump(1) + "\n"); }

// A classifier run's inference: its validation rows (every row without a validation split) classified
// with the run's adapter, data.batch rows at a time: seconds per row, peak memory, accuracy, macro F1.
json measure_classification(const Recipe& recipe, const fs::path& run_dir) {
  const c10::Device device = resolve_device(recipe.train.device, "train.device", "--device cpu");
  const auto tokenizer = tokenizers::load_tokenizer(recipe.model.path);
  const ClassifierLabels labels = read_classifier_labels(run_dir / "adapter");
  const bool validation = !recipe.data.validation_value.empty() || recipe.data.validation_fraction > 0;
  data::ExampleBuilder builder(tokenizer, recipe.data, "recipe data", validation ? data::Split::Validation : data::Split::All);
  builder.set_labels(labels.labels);
  auto model = load_hf_classifier(recipe.model.path, {parse_dtype(recipe.model.dtype, "model.dtype"), device},
                                  static_cast<int64_t>(labels.labels.size()), labels.pad_token_id, 0).model;
  apply_peft_adapter(*model, run_dir / "adapter");
  auto reader = data::open_records(recipe.data.path, data::reader_options(recipe.data));
  reset_peak_memory(device);
  const auto e = inference::evaluate_classifier(*model, builder, *reader, device, recipe.train.per_device_train_batch_size,
                                                static_cast<int32_t>(labels.pad_token_id));
  return {{"prompts", json::array()}, {"rows", e.examples}, {"split", validation ? "validation" : "all"},
          {"seconds_per_prompt", e.seconds / static_cast<double>(e.examples)}, {"peak_memory_bytes", memory_now(device).peak},
          {"accuracy", e.metrics.accuracy}, {"macro_f1", e.metrics.macro.f1}, {"loss", e.loss}};
}

// Greedy generation over the recipe's prompts with the run's adapter: time, tokens/s, peak memory.
json measure_inference(const Recipe& recipe, const fs::path& run_dir) {
  if (classifies(recipe)) return measure_classification(recipe, run_dir);
  json out = {{"prompts", json::array()}};
  if (recipe.inference.prompts.empty()) return out;
  const c10::Device device = resolve_device(recipe.train.device, "train.device", "--device cpu");
  const auto tokenizer = tokenizers::load_tokenizer(recipe.model.path);
  auto model = load_hf_model(recipe.model.path, {parse_dtype(recipe.model.dtype, "model.dtype"), device,
                                                 trainer::quantize_config(recipe.model)});
  apply_peft_adapter(*model, run_dir / "adapter");
  inference::GenerationConfig config;
  config.max_new_tokens = recipe.inference.max_new_tokens;
  config.eos_token_ids = inference::model_eos_ids(recipe.model.path, &tokenizer);
  reset_peak_memory(device);
  double seconds = 0, peak = 0;
  int64_t tokens = 0;
  const auto& prompts = recipe.inference.prompts;
  const auto batch = static_cast<size_t>(std::max<int64_t>(recipe.inference.batch_size, 1));
  for (size_t start = 0; start < prompts.size(); start += batch) {
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = start; i < std::min(prompts.size(), start + batch); ++i) ids.push_back(tokenizer.encode(prompts[i], true));
    const auto generations = inference::generate_batch(*model, &tokenizer, ids, config, device);
    for (size_t i = 0; i < generations.size(); ++i) {
      const auto& g = generations[i];
      seconds += g.seconds;
      tokens += static_cast<int64_t>(g.new_ids.size());
      peak = std::max(peak, g.peak_memory_bytes);
      out["prompts"].push_back(
          {{"prompt", prompts[start + i]}, {"text", g.text}, {"new_tokens", g.new_ids.size()}, {"seconds", g.seconds}});
    }
  }
  out["batch_size"] = batch;
  out["seconds_per_prompt"] = seconds / static_cast<double>(recipe.inference.prompts.size());
  out["tokens_per_s"] = seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
  out["peak_memory_bytes"] = peak;
  return out;
}

// The command line of a worker that runs combination `index` alone (the same recipe and options).
std::vector<std::string> worker_args(const std::string& recipe_path, const SweepOptions& o, const fs::path& dir,
                                     size_t index) {
  std::vector<std::string> args = {o.self, "sweep", recipe_path, "--out", dir.string(), "--only", std::to_string(index)};
  for (const auto& g : o.grids) args.insert(args.end(), {"--grid", g});
  for (const auto& s : o.sets) args.insert(args.end(), {"--set", s});
  if (!o.device.empty()) args.insert(args.end(), {"--device", o.device});
  if (!o.dtype.empty()) args.insert(args.end(), {"--dtype", o.dtype});
  if (o.alpha_per_rank > 0) args.insert(args.end(), {"--alpha-per-rank", fmt::format("{}", o.alpha_per_rank)});
  return args;
}

extern "C" char** environ;

// Starts a worker with its output in `log` and, on CUDA, one visible device.
// CPU workers share the cores: each gets its part as OMP_NUM_THREADS unless that is set already.
pid_t spawn_worker(const std::vector<std::string>& args, const fs::path& log, const std::string& device, int workers) {
  std::vector<std::string> env_strings;
  bool threads_set = false;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    threads_set = threads_set || entry.starts_with("OMP_NUM_THREADS=");
    if (!entry.starts_with("CUDA_VISIBLE_DEVICES=")) env_strings.push_back(entry);
  }
  if (!device.empty()) env_strings.push_back("CUDA_VISIBLE_DEVICES=" + device);
  if (device.empty() && !threads_set)
    env_strings.push_back(fmt::format("OMP_NUM_THREADS={}", std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(workers))));
  std::vector<char*> argv, envp;
  std::vector<std::string> arg_strings = args;
  for (auto& a : arg_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) fail("sweep --parallel: cannot start {} ({})", args[0], std::strerror(rc));
  return pid;
}

}  // namespace

SweepResult run_sweep(const std::string& recipe_path, const SweepOptions& options) {
  std::vector<Grid> grids;
  for (const auto& g : options.grids) grids.push_back(parse_grid(g));
  if (grids.empty()) fail("sweep: give at least one --grid section.key=value1,value2");
  SweepResult result;
  result.dir = options.out.empty() ? fs::path("runs") / ("sweep-" + fs::path(recipe_path).stem().string()) : fs::path(options.out);
  std::vector<std::string> common = options.sets;
  if (!options.device.empty()) common.push_back("train.device=" + options.device);
  if (!options.dtype.empty()) common.push_back("model.dtype=" + options.dtype);
  const Recipe base = trainer::load_recipe(recipe_path, common);  // a broken recipe stops here, before any run
  fs::create_directories(result.dir);

  // The cross product, first grid outermost.
  std::vector<std::vector<std::pair<std::string, std::string>>> combinations = {{}};
  for (const Grid& g : grids) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& partial : combinations)
      for (const auto& v : g.values) {
        auto c = partial;
        c.emplace_back(g.key, v);
        next.push_back(std::move(c));
      }
    combinations = std::move(next);
  }
  const auto say = [&](const std::string& text) {
    if (!options.quiet) fmt::print("{}", text);
  };
  // Every run's name, settings and directory, fixed before anything runs (workers recompute the same).
  struct Planned {
    size_t index;
    std::string name;
    std::vector<std::string> sets;
    json grid;
    fs::path run_dir;
  };
  std::vector<Planned> planned;
  std::set<std::string> used_names;
  for (size_t i = 0; i < combinations.size(); ++i) {
    Planned run{i, "", common, json::object(), {}};
    int64_t rank = base.lora.r;
    for (const auto& [key, value] : combinations[i]) {
      run.name += (run.name.empty() ? "" : "_") + part_name(key, value);
      run.sets.push_back(key + "=" + value);
      run.grid[key] = value;
      if (key == "lora.r") rank = std::stoll(value);
    }
    // Two values with the same file name (A/model, B/model) still get their own run directories.
    const std::string base_name = run.name;
    for (int k = 2; used_names.count(run.name); ++k) run.name = fmt::format("{}-{}", base_name, k);
    used_names.insert(run.name);
    if (options.alpha_per_rank > 0)
      run.sets.push_back(fmt::format("lora.lora_alpha={}", options.alpha_per_rank * static_cast<double>(rank)));
    run.run_dir = result.dir / run.name;
    run.sets.push_back("output.dir=" + run.run_dir.string());
    planned.push_back(std::move(run));
  }
  if (options.only >= static_cast<int>(planned.size()))
    fail("sweep --only {}: the grid has {} combinations", options.only, planned.size());
  if (options.parallel < 1) fail("sweep --parallel {}: expected 1 or more worker processes", options.parallel);
  const auto finished = [](const Planned& run) {
    return fs::exists(run.run_dir / "summary.json") && fs::exists(run.run_dir / "inference.json");
  };
  const auto record_failure = [&](const Planned& run, const std::string& message) {
    fs::create_directories(run.run_dir);
    write_json(run.run_dir / "sweep.json", {{"index", run.index}, {"grid", run.grid}, {"alpha_per_rank", options.alpha_per_rank}});
    write_json(run.run_dir / "failed.json", {{"error", message}});
    say(fmt::format("run {} failed: {}\n", run.name, message));
    ++result.failed;
  };

  if (options.parallel > 1 && options.only < 0) {
    // Workers: this executable with --only K, at most `parallel` at once, each log in logs/<run>.log.
    if (options.self.empty()) fail("sweep --parallel: the lorakit executable is unknown");
    fs::create_directories(result.dir / "logs");
    std::map<pid_t, std::pair<const Planned*, size_t>> running;  // pid -> run, worker slot
    std::vector<bool> slot_busy(static_cast<size_t>(options.parallel), false);
    size_t next = 0;
    while (next < planned.size() || !running.empty()) {
      while (next < planned.size() && running.size() < static_cast<size_t>(options.parallel)) {
        const Planned& run = planned[next++];
        if (finished(run)) {
          say(fmt::format("skipping {}: finished\n", run.name));
          ++result.skipped;
          continue;
        }
        const size_t slot = static_cast<size_t>(std::find(slot_busy.begin(), slot_busy.end(), false) - slot_busy.begin());
        slot_busy[slot] = true;
        const std::string device = options.devices.empty() ? "" : options.devices[slot % options.devices.size()];
        fs::remove(run.run_dir / "failed.json");
        const pid_t pid = spawn_worker(worker_args(recipe_path, options, result.dir, run.index),
                                       result.dir / "logs" / (run.name + ".log"), device, options.parallel);
        running[pid] = {&run, slot};
        say(fmt::format("== sweep run {}/{}: {} (worker {}{}, pid {}, log {})\n", run.index + 1, planned.size(), run.name,
                        slot, device.empty() ? "" : ", CUDA device " + device, pid,
                        (result.dir / "logs" / (run.name + ".log")).string()));
      }
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, 0);
      if (pid < 0) break;
      const auto it = running.find(pid);
      if (it == running.end()) continue;
      const Planned& run = *it->second.first;
      slot_busy[it->second.second] = false;
      running.erase(it);
      if (finished(run)) {
        say(fmt::format("run {} done\n", run.name));
        ++result.finished;
      } else if (fs::exists(run.run_dir / "failed.json")) {
        ++result.failed;  // the worker recorded its own error
        say(fmt::format("run {} failed (see {})\n", run.name, (run.run_dir / "failed.json").string()));
      } else {
        record_failure(run, WIFSIGNALED(status) ? fmt::format("the worker process died of signal {} ({})", WTERMSIG(status),
                                                              strsignal(WTERMSIG(status)))
                                                : fmt::format("the worker process exited with status {}", WEXITSTATUS(status)));
      }
    }
  } else {
    for (const Planned& run : planned) {
      if (options.only >= 0 && static_cast<int>(run.index) != options.only) continue;
      say(fmt::format("== sweep run {}/{}: {}\n", run.index + 1, planned.size(), run.name));
      if (finished(run)) {
        say(fmt::format("skipping {}: finished\n", run.name));
        ++result.skipped;
        continue;
      }
      try {
        const Recipe recipe = trainer::load_recipe(recipe_path, run.sets);
        if (!fs::exists(run.run_dir / "summary.json")) {
          const bool resume = !trainer::newest_checkpoint(run.run_dir).empty();
          if (resume) say(fmt::format("resuming {} from its newest checkpoint\n", run.name));
          const trainer::TrainResult trained =
              trainer::train(recipe, {resume, !resume && fs::exists(run.run_dir), "", options.quiet});
          if (trained.interrupted) {
            say("sweep interrupted; run the same command again to continue\n");
            break;
          }
        }
        write_json(run.run_dir / "sweep.json", {{"index", run.index}, {"grid", run.grid}, {"alpha_per_rank", options.alpha_per_rank}});
        write_json(run.run_dir / "inference.json", measure_inference(recipe, run.run_dir));
        fs::remove(run.run_dir / "failed.json");
        ++result.finished;
      } catch (const std::exception& e) {
        record_failure(run, dynamic_cast<const c10::Error*>(&e) ? static_cast<const c10::Error&>(e).what_without_backtrace()
                                                                : e.what());
      }
    }
  }
  if (options.only >= 0) return result;
  write_report(result.dir, options.python, options.quiet);
  say(fmt::format("sweep {}: {} run{} trained, {} skipped, {} failed; report: {}\n", result.dir.string(), result.finished,
                  result.finished == 1 ? "" : "s", result.skipped, result.failed, (result.dir / "report.md").string()));
  return result;
}

}  // namespace lorakit::sweep
