// Each subcommand registers itself on the app; cli/main.cpp catches errors and sets exit codes.
#pragma once

#include <CLI/CLI.hpp>

namespace lorakit::cli {

void add_inspect(CLI::App& app);
void add_forward(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_detokenize(CLI::App& app);
void add_eval(CLI::App& app);
void add_data(CLI::App& app);
void add_train(CLI::App& app);
void add_merge(CLI::App& app);
void add_quantize(CLI::App& app);
void add_export(CLI::App& app);
void add_generate(CLI::App& app);
void add_sweep(CLI::App& app);
void add_report(CLI::App& app);

}  // namespace lorakit::cli
