// `lorakit data stats --model DIR --data FILE (format options)`: what the file becomes before any
// training: rows kept and skipped (and why), token-length percentiles, truncation.
#include <optional>

#include <fmt/format.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "data/stats.h"

namespace lorakit::cli {

void add_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Inspect datasets");
  data->require_subcommand(1);
  struct Args {
    DataArgs data;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* stats = data->add_subcommand("stats", "Rows kept and skipped, token lengths and truncation of a CSV/JSONL file");
  stats->add_option("RECIPE", args->data.recipe, "Recipe YAML (model and data sections)");
  add_data_options(stats, args->data);
  stats->add_flag("--json", args->json, "Print the statistics as JSON");
  stats->callback([args] {
    const auto [model_dir, config] = args->data.resolve();
    const auto tokenizer = tokenizers::load_tokenizer(model_dir);
    data::ExampleBuilder builder(tokenizer, config, "data stats", data::Split::Train);
    // A classifier's rows: their labels first (as training reads them), then the statistics.
    std::vector<std::string> labels;
    if (builder.classifies()) {
      auto scan = data::open_records(config.path, data::reader_options(config));
      labels = data::collect_labels(*scan, builder, config.path);
      builder.set_labels(labels);
      if (!args->json) fmt::print("labels ({}): {}\n", labels.size(), fmt::join(labels, ", "));
    }
    auto reader = data::open_records(config.path, data::reader_options(config));
    const auto result = data::DataStats::scan(*reader, builder);
    const bool has_validation = !config.validation_value.empty() || config.validation_fraction > 0;
    std::optional<data::DataStats> validation;
    if (has_validation) {
      data::ExampleBuilder valid(tokenizer, config, "data stats", data::Split::Validation);
      valid.set_labels(labels);
      auto again = data::open_records(config.path, data::reader_options(config));
      validation = data::DataStats::scan(*again, valid);
    }
    if (args->json) {
      nlohmann::json out = result.to_json();
      if (validation) out["validation"] = validation->to_json();
      fmt::print("{}\n", out.dump());
      return;
    }
    fmt::print("training split\n{}", result.report());
    if (validation) fmt::print("validation split\n{}", validation->report());
  });
}

}  // namespace lorakit::cli
