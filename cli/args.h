// Argument parsing shared by subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "data/examples.h"

namespace lorakit::cli {

// "1,2,3" -> {1, 2, 3}; anything else is an error naming the bad item.
std::vector<int64_t> parse_ids(const std::string& text);

// The data options shared by `eval` and `data stats`: a recipe (with --set overrides), or the
// file, its format and the row filter as flags.
struct DataArgs {
  std::string recipe;
  std::vector<std::string> sets;
  std::string filter;  // COLUMN=VALUE
  data::DataConfig config;
  std::string model;   // --model
  bool flags_given = false;

  // The model directory and data config from the recipe or the flags.
  std::pair<std::string, data::DataConfig> resolve() const;
};
void add_data_options(CLI::App* cmd, DataArgs& args);

}  // namespace lorakit::cli
