// lorakit's entry point: parses the subcommand, runs it, and turns any error into one line on
// stderr and a non-zero exit. The only place that catches lorakit::Error.
#include <cstdio>

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"lorakit: LoRA fine-tuning for Hugging Face causal LMs, in C++ on LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("lorakit 0.1.0"));
  lorakit::cli::add_inspect(app);
  lorakit::cli::add_forward(app);
  lorakit::cli::add_tokenize(app);
  lorakit::cli::add_detokenize(app);
  lorakit::cli::add_eval(app);
  lorakit::cli::add_data(app);
  lorakit::cli::add_train(app);
  lorakit::cli::add_merge(app);
  lorakit::cli::add_quantize(app);
  lorakit::cli::add_export(app);
  lorakit::cli::add_generate(app);
  lorakit::cli::add_sweep(app);
  lorakit::cli::add_report(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lorakit::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
