// `lorakit sweep RECIPE --grid lora.r=16,32,64 [--grid model.path=A,B] [--set k=v] [--out DIR]
// [--alpha-per-rank 2]` and `lorakit report SWEEP_DIR`.
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "sweep/report.h"
#include "sweep/sweep.h"

namespace lorakit::cli {
namespace {

std::string python() {
  const char* env = std::getenv("LORAKIT_PYTHON");
  return env && *env ? env : LORAKIT_VENV_PYTHON;
}

}  // namespace

void add_sweep(CLI::App& app) {
  struct Args {
    std::string recipe;
    sweep::SweepOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("sweep", "Train a recipe over a grid of values (e.g. LoRA ranks) and write a model-selection report");
  cmd->add_option("RECIPE", args->recipe, "Recipe YAML")->required();
  cmd->add_option("--grid", args->options.grids, "section.key=v1,v2,... (repeatable: the cross product runs)")->required();
  cmd->add_option("--set", args->options.sets, "Override a recipe field for every run: section.key=value");
  cmd->add_option("--out", args->options.out, "Sweep directory (default runs/sweep-<recipe name>)");
  cmd->add_option("--device", args->options.device, "Every run's train.device (and its inference): cpu, cuda or cuda:N");
  cmd->add_option("--dtype", args->options.dtype, "Every run's model.dtype: fp32, bf16 or fp16");
  cmd->add_option("--alpha-per-rank", args->options.alpha_per_rank,
                  "lora_alpha = this x r for each run (2 keeps alpha/r fixed); default: the recipe's fixed alpha");
  cmd->add_option("--parallel", args->options.parallel,
                  "Worker processes: runs at once, each in its own process (a crash or out-of-memory stays in it)")
      ->capture_default_str();
  cmd->add_option("--devices", args->options.devices,
                  "CUDA devices for the workers, e.g. 0,1,2,3: worker k sees only the k-th (CUDA_VISIBLE_DEVICES)")
      ->delimiter(',');
  cmd->add_option("--only", args->options.only, "Run only combination K (what a --parallel worker does); no report")
      ->group("");  // internal
  cmd->callback([args] {
    args->options.python = python();
    std::error_code ignored;
    args->options.self = std::filesystem::read_symlink("/proc/self/exe", ignored).string();
    if (!args->options.devices.empty() && args->options.parallel == 1)
      args->options.parallel = static_cast<int>(args->options.devices.size());  // one worker per device
    const auto result = sweep::run_sweep(args->recipe, args->options);
    if (result.failed > 0) std::exit(1);
  });
}

void add_report(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("report", "Write report.md, report.csv and plots for a sweep directory");
  cmd->add_option("SWEEP_DIR", *dir, "Directory written by lorakit sweep")->required();
  cmd->callback([dir] { sweep::write_report(*dir, python()); });
}

}  // namespace lorakit::cli
