// `lorakit train`: one recipe -> one run directory with a PEFT adapter, metrics and a summary.
// The loop (train.cpp, train()) reads top to bottom: data -> model + adapters -> run directory ->
// for each step: micro-batches -> forward and loss over the step's loss tokens -> backward -> clip
// -> AdamW (optimizer.h) -> log (metrics.h) -> evaluate -> checkpoint (checkpoint.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "trainer/recipe.h"

namespace lorakit::trainer {

struct TrainOptions {
  bool resume = false;     // continue from the newest checkpoint in the run directory
  bool overwrite = false;  // replace an existing run directory
  std::string adapter;     // start from this PEFT adapter instead of a fresh initialisation
  bool quiet = false;      // no progress output (tests)
};

struct TrainResult {
  std::filesystem::path run_dir, adapter_dir;
  int64_t steps = 0;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving a checkpoint
};

TrainResult train(const Recipe& recipe, const TrainOptions& options);

}  // namespace lorakit::trainer
