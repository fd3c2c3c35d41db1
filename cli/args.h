// Argument parsing shared by subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "data/examples.h"
#include "quant/bnb_4bit.h"

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
  // The recipe's model.quantization ("" without a recipe or for "none").
  std::string recipe_quantization() const;
};
void add_data_options(CLI::App* cmd, DataArgs& args);

// --quantization nf4|fp4 as the loader takes it (double quantization, as model.double_quant's
// default); "" loads the weights as stored.
quant::QuantizeConfig quantization_of(const std::string& type);

}  // namespace lorakit::cli
