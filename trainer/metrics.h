// A run's metrics, written as they happen: metrics.h5 (one extendible 1-D float64 dataset per
// metric at the root, eval/step and eval/loss in a group; the file is closed after every append so
// h5py can read it while the run goes on), metrics.csv with the same columns, and on resume both
// cut back to the checkpoint's step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "trainer/tensorboard.h"

namespace lorakit::trainer {

struct StepMetrics {
  double step = 0, epoch = 0, loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0;
  double mem_allocated_bytes = 0, mem_reserved_bytes = 0, mem_peak_bytes = 0;
  double loss_scale = 0;  // fp16's dynamic loss scale (TensorBoard only; 0: not fp16)
};

class MetricsWriter {
 public:
  // Creates the files, or with `resume_step` >= 0 keeps the rows up to that step. `tensorboard`:
  // also a TensorBoard event file (trainer/tensorboard.h) with the same scalars under train/ and eval/.
  MetricsWriter(const std::filesystem::path& run_dir, int64_t resume_step = -1, bool tensorboard = false);
  void append(const StepMetrics& m);
  void append_eval(int64_t step, double loss);
  // The resolved recipe as a TensorBoard text summary (nothing without TensorBoard).
  void recipe_text(const std::string& yaml);

  static const std::vector<std::string>& columns();

 private:
  std::filesystem::path h5_, csv_;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace lorakit::trainer
