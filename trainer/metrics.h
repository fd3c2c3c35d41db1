// A run's metrics, written as they happen: metrics.h5 (one extendible 1-D float64 dataset per
// metric at the root, eval/step and eval/loss in a group; the file is closed after every append so
// h5py can read it while the run goes on), metrics.csv with the same columns, and on resume both
// cut back to the checkpoint's step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lorakit::trainer {

struct StepMetrics {
  double step = 0, epoch = 0, loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0;
  double mem_allocated_bytes = 0, mem_reserved_bytes = 0, mem_peak_bytes = 0;
};

class MetricsWriter {
 public:
  // Creates the files, or with `resume_step` >= 0 keeps the rows up to that step.
  MetricsWriter(const std::filesystem::path& run_dir, int64_t resume_step = -1);
  void append(const StepMetrics& m);
  void append_eval(int64_t step, double loss);

  static const std::vector<std::string>& columns();

 private:
  std::filesystem::path h5_, csv_;
};

}  // namespace lorakit::trainer
