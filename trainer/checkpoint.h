// A run's resumable state: checkpoints/step-N/ holds the adapter (adapter/, PEFT format), the AdamW
// moments and step with the CPU RNG state and, on CUDA, the device's generator state, from which
// LoRA dropout on CUDA tensors draws (optimizer.safetensors) and the loop's counters with the
// data cursor (state.json). A checkpoint is written into a hidden sibling and renamed, so a kill
// leaves the previous one intact; only the newest save_total_limit are kept. Resuming from one
// replays the same batches, dropout masks and updates as the uninterrupted run.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include "data/batches.h"
#include "lora/lora.h"
#include "trainer/optimizer.h"

namespace lorakit::trainer {

// What the loop carries from step to step, besides the adapter and the optimizer.
struct TrainState {
  int64_t step = 0;
  data::Cursor cursor;
  LossScale loss_scale;
  double best_eval = INFINITY;
  int64_t evals_without_improvement = 0;
  int64_t tokens = 0;
  double seconds = 0;
  double loss_sum = 0;  // sum of per-step losses, for the mean in the summary
  double last_loss = NAN;
  double peak_memory = 0, peak_reserved = 0;  // over all steps (CUDA: allocated / reserved; CPU: resident)
  int64_t world_size = 1;  // ranks that trained it (torchrun): each step's rows were split over them
};

// Writes run_dir/checkpoints/step-<state.step> and prunes to the newest `keep`.
void save_checkpoint(const std::filesystem::path& run_dir, const lora::LoraModel& lora, const AdamW& adam,
                     const TrainState& state, const std::string& base_model, int64_t keep, const c10::Device& device);

// The newest complete checkpoint of a run directory, or an empty path.
std::filesystem::path newest_checkpoint(const std::filesystem::path& run_dir);

// Restores the adapter weights, AdamW (moments on `device`), the CPU generator (`generator`), the
// CUDA generator of `device` when the checkpoint has its state, and the loop state.
TrainState load_checkpoint(const std::filesystem::path& checkpoint, lora::LoraModel& lora, AdamW& adam,
                           at::Generator& generator, const c10::Device& device);

}  // namespace lorakit::trainer
