// `lorakit report`: a sweep directory's model-selection table, the seed projects' table with the
// same columns (fine-tune time, tokens/s, true peak memory, inference time and memory, losses) as
// report.md and report.csv, and its plots (loss_curves.png, time_memory_by_rank.png, drawn by
// scripts/plot_sweep.py with matplotlib from each run's metrics.h5). Reads only what the runs wrote.
#pragma once

#include <filesystem>
#include <string>

namespace lorakit::sweep {

// Rows in grid order; a run with failed.json is "failed" with its error, one without summary.json
// and inference.json "incomplete". `python` runs the plot script ("" or a failure: no plots, said
// in report.md).
void write_report(const std::filesystem::path& sweep_dir, const std::string& python, bool quiet = false);

}  // namespace lorakit::sweep
