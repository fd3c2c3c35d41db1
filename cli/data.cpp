// `lorakit data stats --model DIR --data FILE (format options)`: what the file becomes before any
// training: rows kept and skipped (and why), token-length percentiles, truncation.
#include <fmt/format.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "data/stats.h"

namespace lorakit::cli {

void add_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Inspect datasets");
  data->require_subcommand(1);
  struct Args {
    std::string model;
    DataArgs data;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* stats = data->add_subcommand("stats", "Rows kept and skipped, token lengths and truncation of a CSV/JSONL file");
  stats->add_option("--model", args->model, "Hugging Face model directory (its tokenizer and chat template)")->required();
  add_data_options(stats, args->data);
  stats->add_flag("--json", args->json, "Print the statistics as JSON");
  stats->callback([args] {
    const auto tokenizer = tokenizers::load_tokenizer(args->model);
    const data::ExampleBuilder builder(tokenizer, args->data.resolved(), "data stats");
    auto reader = data::open_records(args->data.path);
    const auto result = data::DataStats::scan(*reader, builder);
    if (args->json)
      fmt::print("{}\n", result.to_json().dump());
    else
      fmt::print("{}", result.report());
  });
}

}  // namespace lorakit::cli
