#include "sweep/sweep.h"

#include <algorithm>
#include <set>

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

// Greedy generation over the recipe's prompts with the run's adapter: time, tokens/s, peak memory.
json measure_inference(const Recipe& recipe, const fs::path& run_dir) {
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
  std::set<std::string> used_names;
  for (size_t i = 0; i < combinations.size(); ++i) {
    const auto& combination = combinations[i];
    std::string name;
    std::vector<std::string> sets = common;
    json grid = json::object();
    int64_t rank = base.lora.r;
    for (const auto& [key, value] : combination) {
      name += (name.empty() ? "" : "_") + part_name(key, value);
      sets.push_back(key + "=" + value);
      grid[key] = value;
      if (key == "lora.r") rank = std::stoll(value);
    }
    // Two values with the same file name (A/model, B/model) still get their own run directories.
    const std::string base_name = name;
    for (int k = 2; used_names.count(name); ++k) name = fmt::format("{}-{}", base_name, k);
    used_names.insert(name);
    if (options.alpha_per_rank > 0) sets.push_back(fmt::format("lora.lora_alpha={}", options.alpha_per_rank * static_cast<double>(rank)));
    const fs::path run_dir = result.dir / name;
    sets.push_back("output.dir=" + run_dir.string());
    say(fmt::format("== sweep run {}/{}: {}\n", i + 1, combinations.size(), name));
    if (fs::exists(run_dir / "summary.json") && fs::exists(run_dir / "inference.json")) {
      say(fmt::format("skipping {}: finished\n", name));
      ++result.skipped;
      continue;
    }
    try {
      const Recipe recipe = trainer::load_recipe(recipe_path, sets);
      if (!fs::exists(run_dir / "summary.json")) {
        const bool resume = !trainer::newest_checkpoint(run_dir).empty();
        if (resume) say(fmt::format("resuming {} from its newest checkpoint\n", name));
        const trainer::TrainResult trained = trainer::train(recipe, {resume, !resume && fs::exists(run_dir), "", options.quiet});
        if (trained.interrupted) {
          say("sweep interrupted; run the same command again to continue\n");
          break;
        }
      }
      write_json(run_dir / "sweep.json", {{"index", i}, {"grid", grid}, {"alpha_per_rank", options.alpha_per_rank}});
      write_json(run_dir / "inference.json", measure_inference(recipe, run_dir));
      fs::remove(run_dir / "failed.json");
      ++result.finished;
    } catch (const std::exception& e) {
      const std::string message = dynamic_cast<const c10::Error*>(&e) ? static_cast<const c10::Error&>(e).what_without_backtrace() : e.what();
      fs::create_directories(run_dir);
      write_json(run_dir / "sweep.json", {{"index", i}, {"grid", grid}, {"alpha_per_rank", options.alpha_per_rank}});
      write_json(run_dir / "failed.json", {{"error", message}});
      say(fmt::format("run {} failed: {}\n", name, message));
      ++result.failed;
    }
  }
  write_report(result.dir, options.python, options.quiet);
  say(fmt::format("sweep {}: {} run{} trained, {} skipped, {} failed; report: {}\n", result.dir.string(), result.finished,
                  result.finished == 1 ? "" : "s", result.skipped, result.failed, (result.dir / "report.md").string()));
  return result;
}

}  // namespace lorakit::sweep
