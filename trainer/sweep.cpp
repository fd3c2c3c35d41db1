#include "trainer/sweep.h"

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "core/error.h"
#include "core/format.h"
#include "trainer/generate.h"
#include "trainer/memory.h"
#include "trainer/recipe.h"
#include "trainer/train.h"

namespace lorakit::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

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

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return in ? json::parse(in, nullptr, false) : json();
}

void write_json(const fs::path& path, const json& value) {
  const fs::path tmp = path.string() + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << value.dump(1) << "\n";
  fs::rename(tmp, path);
}

bool has_checkpoint(const fs::path& run_dir) {
  if (!fs::exists(run_dir / "checkpoints")) return false;
  for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints"))
    if (entry.path().filename().string().starts_with("step-") && fs::exists(entry.path() / "state.json")) return true;
  return false;
}

// Greedy generation over the recipe's prompts with the run's adapter: time, tokens/s, peak memory.
json measure_inference(const Recipe& recipe, const fs::path& run_dir) {
  json out = {{"prompts", json::array()}};
  if (recipe.inference.prompts.empty()) return out;
  const c10::Device device(recipe.train.device);
  const auto tokenizer = tokenizers::load_tokenizer(recipe.model.path);
  const at::ScalarType dtype = recipe.train.precision == "bf16" ? at::kBFloat16 : recipe.train.precision == "fp16" ? at::kHalf : at::kFloat;
  auto model = load_hf_model(recipe.model.path, {dtype, device});
  apply_peft_adapter(*model, run_dir / "adapter");
  GenerationConfig config;
  config.max_new_tokens = recipe.inference.max_new_tokens;
  config.eos_token_ids = model_eos_ids(recipe.model.path, &tokenizer);
  reset_peak_memory(device);
  double seconds = 0, peak = 0;
  int64_t tokens = 0;
  for (const std::string& prompt : recipe.inference.prompts) {
    const auto g = generate(*model, &tokenizer, tokenizer.encode(prompt, true), config, device);
    seconds += g.seconds;
    tokens += static_cast<int64_t>(g.new_ids.size());
    peak = std::max(peak, g.peak_memory_bytes);
    out["prompts"].push_back({{"prompt", prompt}, {"text", g.text}, {"new_tokens", g.new_ids.size()}, {"seconds", g.seconds}});
  }
  out["seconds_per_prompt"] = seconds / static_cast<double>(recipe.inference.prompts.size());
  out["tokens_per_s"] = seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
  out["peak_memory_bytes"] = peak;
  return out;
}

std::string cell(const json& j, const char* key, int precision = 4) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  if (j[key].is_number_float()) return fmt::format("{:.{}f}", j[key].get<double>(), precision);
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

std::string csv_escape(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

SweepResult sweep(const std::string& recipe_path, const SweepOptions& options) {
  std::vector<Grid> grids;
  for (const auto& g : options.grids) grids.push_back(parse_grid(g));
  if (grids.empty()) fail("sweep: give at least one --grid section.key=value1,value2");
  SweepResult result;
  result.dir = options.out.empty() ? fs::path("runs") / ("sweep-" + fs::path(recipe_path).stem().string()) : fs::path(options.out);
  const Recipe base = load_recipe(recipe_path, options.sets);  // a broken recipe stops here, before any run
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
    std::vector<std::string> sets = options.sets;
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
      const Recipe recipe = load_recipe(recipe_path, sets);
      if (!fs::exists(run_dir / "summary.json")) {
        const bool resume = has_checkpoint(run_dir);
        if (resume) say(fmt::format("resuming {} from its newest checkpoint\n", name));
        const TrainResult trained = train(recipe, {resume, !resume && fs::exists(run_dir), "", options.quiet});
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

void write_report(const fs::path& sweep_dir, const std::string& python, bool quiet) {
  if (!fs::is_directory(sweep_dir)) fail("{}: not a sweep directory", sweep_dir.string());
  std::vector<fs::path> runs;
  for (const auto& entry : fs::directory_iterator(sweep_dir))
    if (entry.is_directory() && fs::exists(entry.path() / "sweep.json")) runs.push_back(entry.path());
  // In the sweep's own order (grid order), not by name.
  std::sort(runs.begin(), runs.end(), [](const fs::path& a, const fs::path& b) {
    const json x = read_json(a / "sweep.json"), y = read_json(b / "sweep.json");
    return std::make_pair(x.value("index", 0), a.string()) < std::make_pair(y.value("index", 0), b.string());
  });
  if (runs.empty()) fail("{}: no sweep runs (directories with sweep.json)", sweep_dir.string());

  const std::vector<std::string> columns = {
      "run", "status", "model", "params", "r", "lora_alpha", "scale", "trainable_params", "finetune_seconds",
      "tokens_per_s", "peak_memory_bytes", "inference_seconds_per_prompt", "inference_peak_memory_bytes",
      "final_loss", "mean_loss", "best_eval_loss", "error"};
  std::string csv;
  for (size_t i = 0; i < columns.size(); ++i) csv += (i ? "," : "") + columns[i];
  csv += "\n";
  std::string md = fmt::format("# Sweep report: {}\n\n", sweep_dir.filename().string());
  md += "| run | model | params | r | alpha | trainable | fine-tune time | tokens/s | peak memory | inference s/prompt | "
        "inference memory | final loss | mean loss | best val loss | status |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::map<std::string, std::vector<std::pair<int64_t, double>>> alphas_by_model;  // model -> (r, alpha)
  std::string samples;
  for (const fs::path& run : runs) {
    const json summary = read_json(run / "summary.json"), inference = read_json(run / "inference.json");
    const json failed = read_json(run / "failed.json");
    std::string model, r, alpha, scale;
    if (fs::exists(run / "recipe.yaml")) {
      try {
        const Recipe recipe = load_recipe((run / "recipe.yaml").string());
        model = fs::path(recipe.model.path).filename().string();
        r = std::to_string(recipe.lora.r);
        alpha = fmt::format("{:g}", recipe.lora.lora_alpha);
        scale = fmt::format("{:.4g}", recipe.lora.scaling());
        alphas_by_model[model].emplace_back(recipe.lora.r, recipe.lora.lora_alpha);
      } catch (const Error&) {
      }
    }
    const std::string status = failed.is_object() ? "failed" : summary.is_object() && inference.is_object() ? "finished" : "incomplete";
    const std::string error = failed.is_object() ? failed.value("error", "") : "";
    const std::vector<std::string> values = {
        run.filename().string(), status, model, cell(summary, "all_params"), r, alpha, scale,
        cell(summary, "trainable_params"), cell(summary, "wall_seconds", 3), cell(summary, "tokens_per_s", 1),
        cell(summary, "peak_memory_bytes", 0), cell(inference, "seconds_per_prompt", 4),
        cell(inference, "peak_memory_bytes", 0), cell(summary, "final_loss", 6), cell(summary, "mean_loss", 6),
        cell(summary, "best_eval_loss", 6), error};
    for (size_t i = 0; i < values.size(); ++i) csv += (i ? "," : "") + csv_escape(values[i]);
    csv += "\n";
    const auto bytes = [&](const json& j, const char* key) {
      return j.is_object() && j.contains(key) && j[key].is_number() ? human_bytes(j[key].get<double>()) : std::string();
    };
    const auto number = [&](const json& j, const char* key, const char* format) {
      return j.is_object() && j.contains(key) && j[key].is_number() ? fmt::format(fmt::runtime(format), j[key].get<double>()) : std::string();
    };
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", run.filename().string(),
                      model, summary.is_object() && summary.contains("all_params") ? with_commas(summary["all_params"].get<int64_t>()) : "",
                      r, alpha, summary.is_object() && summary.contains("trainable_params") ? with_commas(summary["trainable_params"].get<int64_t>()) : "",
                      number(summary, "wall_seconds", "{:.1f} s"), summary.is_object() && summary.contains("tokens_per_s") ? with_commas(static_cast<int64_t>(summary["tokens_per_s"].get<double>())) : std::string(),
                      bytes(summary, "peak_memory_bytes"), number(inference, "seconds_per_prompt", "{:.3f} s"),
                      bytes(inference, "peak_memory_bytes"), number(summary, "final_loss", "{:.4f}"),
                      number(summary, "mean_loss", "{:.4f}"), number(summary, "best_eval_loss", "{:.4f}"),
                      status == "failed" ? "failed: " + error : status);
    if (inference.is_object() && inference.contains("prompts") && !inference["prompts"].empty()) {
      samples += fmt::format("\n### {}\n\n", run.filename().string());
      for (const auto& p : inference["prompts"])
        samples += fmt::format("- `{}` → `{}`\n", json(p.value("prompt", "")).dump(-1, ' ', false, json::error_handler_t::replace),
                               json(p.value("text", "")).dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
  // The seed table's flaw: one lora_alpha for every rank changes the effective scale alpha / r.
  std::string notes;
  for (const auto& [model, pairs] : alphas_by_model) {
    std::set<int64_t> ranks;
    std::set<double> alphas;
    for (const auto& [r, a] : pairs) ranks.insert(r), alphas.insert(a);
    if (ranks.size() > 1 && alphas.size() == 1)
      notes += fmt::format("- **{}: lora_alpha is fixed at {:g} for every rank**, so the effective scale alpha/r falls from "
                           "{:.4g} (r={}) to {:.4g} (r={}); loss differences mix rank and scale. Use `--alpha-per-rank 2` "
                           "to keep alpha/r fixed.\n", model, *alphas.begin(), *alphas.begin() / static_cast<double>(*ranks.begin()),
                           *ranks.begin(), *alphas.begin() / static_cast<double>(*ranks.rbegin()), *ranks.rbegin());
  }
  md += "\nFine-tune time is wall time of the training steps; peak memory is the true peak during training (CUDA: the "
        "caching allocator's peak allocated bytes; CPU: the peak resident set of the run); inference is greedy "
        "generation over the recipe's `inference.prompts` with the adapter.\n";
  if (!notes.empty()) md += "\n" + notes;
  std::ofstream(sweep_dir / "report.csv.tmp", std::ios::trunc) << csv;
  fs::rename(sweep_dir / "report.csv.tmp", sweep_dir / "report.csv");
  // Plots from metrics.h5 and report.csv through matplotlib.
  const std::string command = fmt::format("'{}' '{}' '{}' > '{}' 2>&1", python,
                                          (fs::path(LORAKIT_SOURCE_DIR) / "scripts" / "plot_sweep.py").string(),
                                          sweep_dir.string(), (sweep_dir / "plot.log").string());
  const bool plotted = !python.empty() && std::system(command.c_str()) == 0;
  if (plotted)
    md += "\n![loss curves](loss_curves.png)\n\n![time and memory by rank](time_memory_by_rank.png)\n";
  else
    md += fmt::format("\n(plots not made: see {})\n", (sweep_dir / "plot.log").string());
  if (!samples.empty()) md += "\n## Sample generations\n" + samples;
  std::ofstream(sweep_dir / "report.md.tmp", std::ios::trunc) << md;
  fs::rename(sweep_dir / "report.md.tmp", sweep_dir / "report.md");
  if (!quiet) fmt::print("report: {} ({} runs){}\n", (sweep_dir / "report.md").string(), runs.size(), plotted ? ", plots made" : ", no plots");
}

}  // namespace lorakit::trainer
