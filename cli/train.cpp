// `lorakit train RECIPE [--set section.key=value ...] [--resume] [--overwrite] [--adapter DIR]`.
#include <fmt/format.h>

#include "cli/commands.h"
#include "trainer/train.h"

namespace lorakit::cli {

void add_train(CLI::App& app) {
  struct Args {
    std::string recipe, adapter;
    std::vector<std::string> sets;
    bool resume = false, overwrite = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("train", "Train LoRA adapters from a recipe; writes a run directory with a PEFT adapter");
  cmd->add_option("RECIPE", args->recipe, "Recipe YAML (sections model, lora, data, train, output)")->required();
  cmd->add_option("--set", args->sets, "Override a recipe field: section.key=value (repeatable)");
  auto* resume = cmd->add_flag("--resume", args->resume, "Continue the run directory from its newest checkpoint");
  cmd->add_flag("--overwrite", args->overwrite, "Replace an existing run directory")->excludes(resume);
  cmd->add_option("--adapter", args->adapter, "Start from this PEFT adapter directory instead of a fresh initialisation");
  cmd->callback([args] {
    const trainer::Recipe recipe = trainer::load_recipe(args->recipe, args->sets);
    const auto result = trainer::train(recipe, {args->resume, args->overwrite, args->adapter, false});
    if (result.interrupted) std::exit(130);
  });
}

}  // namespace lorakit::cli
