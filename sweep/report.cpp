#include "sweep/report.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/format.h"
#include "trainer/recipe.h"
#include "trainer/tensorboard.h"

namespace lorakit::sweep {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using trainer::Recipe;
using trainer::load_recipe;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return in ? json::parse(in, nullptr, false) : json();
}

std::string cell(const json& j, const char* key, int precision = 4) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  if (j[key].is_number_float()) return fmt::format("{:.{}f}", j[key].get<double>(), precision);
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

// TensorBoard's HParams dashboard over the sweep (tensorboard/plugins/hparams/plugin_data.proto and
// api.proto, the few fields it reads): the sweep directory gets the experiment (each hyperparameter and
// metric), each finished run a session (its hyperparameters, metric scalars under hparams/, and an
// end with status success). The files have fixed names and are rewritten whole with every report.
const std::vector<std::pair<const char*, const char*>> kHparamMetrics = {
    {"final_loss", "summary"}, {"best_eval_loss", "summary"}, {"peak_memory_bytes", "summary"},
    {"wall_seconds", "summary"}, {"seconds_per_prompt", "inference"}, {"eval_accuracy", "summary"},
    {"eval_macro_f1", "summary"}};
constexpr const char* kHparamsFile = "events.out.tfevents.hparams.lorakit";

std::string hparams_data(int field, const std::string& message) {
  using namespace trainer::proto;
  return varint_field(1, 0) + bytes_field(field, message);  // HParamsPluginData{ version = 1: 0, <field> }
}

// google.protobuf.Value: number_value = 2 when the text is a number, else string_value = 3.
std::string proto_value(const std::string& text) {
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  if (!text.empty() && end && *end == '\0') return trainer::proto::double_field(2, number);
  return trainer::proto::bytes_field(3, text);
}

void write_hparams(const fs::path& sweep_dir, const std::vector<std::pair<fs::path, std::map<std::string, std::string>>>& sessions) {
  using namespace trainer::proto;
  std::set<std::string> names;
  for (const auto& [run, hparams] : sessions)
    for (const auto& [name, value] : hparams) names.insert(name);
  std::string experiment;
  for (const std::string& name : names) experiment += bytes_field(4, bytes_field(1, name));  // HParamInfo{ name = 1 }
  // The classifier's metrics are the experiment's only when a run has them (a language-model sweep lists five).
  const auto listed = [&](const std::string& metric) {
    if (!metric.starts_with("eval_")) return true;
    return std::any_of(sessions.begin(), sessions.end(), [&](const auto& session) {
      const json summary = read_json(session.first / "summary.json");
      return summary.is_object() && summary.contains(metric) && summary[metric].is_number();
    });
  };
  for (const auto& [metric, source] : kHparamMetrics)                                        // MetricInfo{ name = 1: { tag = 2 } }
    if (listed(metric)) experiment += bytes_field(5, bytes_field(1, bytes_field(2, std::string("hparams/") + metric)));
  trainer::EventWriter(sweep_dir, -1, kHparamsFile).plugin_summary("_hparams_/experiment", "hparams", hparams_data(2, experiment));
  for (const auto& [run, hparams] : sessions) {
    trainer::EventWriter events(run, -1, kHparamsFile);
    std::string start;
    for (const auto& [name, value] : hparams)  // map<string, Value> hparams = 1
      start += bytes_field(1, bytes_field(1, name) + bytes_field(2, proto_value(value)));
    events.plugin_summary("_hparams_/session_start_info", "hparams", hparams_data(3, start));
    const json summary = read_json(run / "summary.json"), inference = read_json(run / "inference.json");
    const int64_t step = summary.value("steps", 0);
    for (const auto& [metric, source] : kHparamMetrics) {
      const json& j = std::string(source) == "summary" ? summary : inference;
      if (j.contains(metric) && j[metric].is_number()) events.scalar(step, std::string("hparams/") + metric, j[metric].get<double>());
    }
    events.plugin_summary("_hparams_/session_end_info", "hparams", hparams_data(4, varint_field(1, 1)));  // STATUS_SUCCESS
  }
}

}  // namespace

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
      "final_loss", "mean_loss", "best_eval_loss", "eval_accuracy", "eval_macro_f1", "error"};
  std::string csv;
  for (size_t i = 0; i < columns.size(); ++i) csv += (i ? "," : "") + columns[i];
  csv += "\n";
  std::string md = fmt::format("# Sweep report: {}\n\n", sweep_dir.filename().string());
  md += "| run | model | params | r | alpha | trainable | fine-tune time | tokens/s | peak memory | inference s/prompt | "
        "inference memory | final loss | mean loss | best val loss | val accuracy | val macro F1 | status |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::map<std::string, std::vector<std::pair<int64_t, double>>> alphas_by_model;  // model -> (r, alpha)
  std::vector<std::pair<fs::path, std::map<std::string, std::string>>> sessions;   // finished runs' hyperparameters
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
    if (status == "finished") {
      std::map<std::string, std::string> hparams = {{"model", model}, {"lora.r", r}, {"lora.lora_alpha", alpha}};
      const json grid = read_json(run / "sweep.json").value("grid", json::object());
      for (const auto& [key, value] : grid.items())
        hparams[key] = key == "model.path" ? fs::path(value.get<std::string>()).filename().string() : value.get<std::string>();
      sessions.emplace_back(run, hparams);
    }
    const std::string error = failed.is_object() ? failed.value("error", "") : "";
    // A classifier's scores: the last validation during training, else its inference pass over the rows.
    json scores = json::object();
    for (const auto& [key, fallback] : {std::pair{"eval_accuracy", "accuracy"}, {"eval_macro_f1", "macro_f1"}})
      if (summary.is_object() && summary.contains(key) && summary[key].is_number()) scores[key] = summary[key];
      else if (inference.is_object() && inference.contains(fallback) && inference[fallback].is_number()) scores[key] = inference[fallback];
    const std::vector<std::string> values = {
        run.filename().string(), status, model, cell(summary, "all_params"), r, alpha, scale,
        cell(summary, "trainable_params"), cell(summary, "wall_seconds", 3), cell(summary, "tokens_per_s", 1),
        cell(summary, "peak_memory_bytes", 0), cell(inference, "seconds_per_prompt", 4),
        cell(inference, "peak_memory_bytes", 0), cell(summary, "final_loss", 6), cell(summary, "mean_loss", 6),
        cell(summary, "best_eval_loss", 6), cell(scores, "eval_accuracy", 4), cell(scores, "eval_macro_f1", 4), error};
    for (size_t i = 0; i < values.size(); ++i) csv += (i ? "," : "") + csv_field(values[i]);
    csv += "\n";
    const auto bytes = [&](const json& j, const char* key) {
      return j.is_object() && j.contains(key) && j[key].is_number() ? human_bytes(j[key].get<double>()) : std::string();
    };
    const auto number = [&](const json& j, const char* key, const char* format) {
      return j.is_object() && j.contains(key) && j[key].is_number() ? fmt::format(fmt::runtime(format), j[key].get<double>()) : std::string();
    };
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", run.filename().string(),
                      model, summary.is_object() && summary.contains("all_params") ? with_commas(summary["all_params"].get<int64_t>()) : "",
                      r, alpha, summary.is_object() && summary.contains("trainable_params") ? with_commas(summary["trainable_params"].get<int64_t>()) : "",
                      number(summary, "wall_seconds", "{:.1f} s"), summary.is_object() && summary.contains("tokens_per_s") ? with_commas(static_cast<int64_t>(summary["tokens_per_s"].get<double>())) : std::string(),
                      bytes(summary, "peak_memory_bytes"), number(inference, "seconds_per_prompt", "{:.3f} s"),
                      bytes(inference, "peak_memory_bytes"), number(summary, "final_loss", "{:.4f}"),
                      number(summary, "mean_loss", "{:.4f}"), number(summary, "best_eval_loss", "{:.4f}"),
                      number(scores, "eval_accuracy", "{:.4f}"), number(scores, "eval_macro_f1", "{:.4f}"),
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
        "generation over the recipe's `inference.prompts` with the adapter, `inference.batch_size` prompts at a time "
        "(seconds per prompt: a batch's time divided by its prompts). For classifiers (task: sequence_classification), "
        "inference is the validation rows classified (seconds per row), and val accuracy / macro F1 are the last "
        "validation's.\n";
  if (!notes.empty()) md += "\n" + notes;
  write_text_atomically(sweep_dir / "report.csv", csv);
  write_hparams(sweep_dir, sessions);
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
  write_text_atomically(sweep_dir / "report.md", md);
  if (!quiet) fmt::print("report: {} ({} runs){}\n", (sweep_dir / "report.md").string(), runs.size(), plotted ? ", plots made" : ", no plots");
}

}  // namespace lorakit::sweep
