// `lorakit sweep`: a recipe trained over the cross product of --grid values, one run directory each
// under the sweep directory, measured the same way (fine-tune time and tokens/s, true peak memory,
// losses, then inference time and memory over the recipe's prompts with the adapter), then the
// model-selection report (sweep/report.h). Scheduling only: training is trainer/, generation
// inference/.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lorakit::sweep {

struct SweepOptions {
  std::vector<std::string> grids;  // "lora.r=16,32,64", "model.path=A,B"
  std::vector<std::string> sets;   // "train.max_steps=100"
  std::string out;                 // the sweep directory (default: runs/sweep-<recipe name>)
  std::string device, dtype;       // non-empty: train.device / model.dtype of every run
  double alpha_per_rank = 0;       // > 0: lora.lora_alpha = alpha_per_rank * r
  std::string python;              // for the plots
  bool quiet = false;
  // --parallel N: the runs spread over N worker processes (this executable, `self`), one run each at
  // a time; on CUDA worker k sees only devices[k] (CUDA_VISIBLE_DEVICES). A crash or an
  // out-of-memory stays in its process and is recorded in the run's failed.json.
  int parallel = 1;
  std::vector<std::string> devices;
  std::string self;                // the lorakit executable the workers run
  int only = -1;                   // a worker: run only this combination, write no report
};

struct SweepResult {
  std::filesystem::path dir;
  int finished = 0, skipped = 0, failed = 0;
};

// Runs every combination, one after another or --parallel N at a time. A finished run (summary.json and inference.json) is
// skipped; an interrupted one resumes from its newest checkpoint; a failed one is recorded in
// failed.json and the sweep goes on. Ends with write_report().
SweepResult run_sweep(const std::string& recipe_path, const SweepOptions& options);

}  // namespace lorakit::sweep
