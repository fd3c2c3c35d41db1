#include "trainer/metrics.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <hdf5.h>

#include "core/error.h"

namespace lorakit::trainer {
namespace {

namespace fs = std::filesystem;

// One open HDF5 file for the duration of an append.
struct H5File {
  hid_t id;
  explicit H5File(const fs::path& path) {
    id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (id < 0) fail("{}: cannot open for appending (is another program holding it open for writing?)", path.string());
  }
  ~H5File() { H5Fclose(id); }
};

void create_dataset(hid_t parent, const std::string& name) {
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 256;
  const hid_t space = H5Screate_simple(1, &zero, &unlimited);
  const hid_t props = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(props, 1, &chunk);
  const hid_t dataset = H5Dcreate2(parent, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, props, H5P_DEFAULT);
  if (dataset < 0) fail("metrics.h5: cannot create dataset '{}'", name);
  H5Dclose(dataset);
  H5Pclose(props);
  H5Sclose(space);
}

hsize_t length(hid_t dataset) {
  const hid_t space = H5Dget_space(dataset);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  H5Sclose(space);
  return n;
}

void append_value(hid_t file, const std::string& name, double value) {
  const hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (dataset < 0) fail("metrics.h5: no dataset '{}'", name);
  const hsize_t n = length(dataset), grown = n + 1, one = 1;
  H5Dset_extent(dataset, &grown);
  const hid_t space = H5Dget_space(dataset);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &n, nullptr, &one, nullptr);
  const hid_t memory = H5Screate_simple(1, &one, nullptr);
  H5Dwrite(dataset, H5T_NATIVE_DOUBLE, memory, space, H5P_DEFAULT, &value);
  H5Sclose(memory);
  H5Sclose(space);
  H5Dclose(dataset);
}

// Keeps the first rows whose `step` <= max_step of every dataset named in `names` (same length).
void truncate(hid_t file, const std::string& step_name, const std::vector<std::string>& names, double max_step) {
  const hid_t steps = H5Dopen2(file, step_name.c_str(), H5P_DEFAULT);
  const hsize_t n = length(steps);
  std::vector<double> values(n);
  if (n) H5Dread(steps, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(steps);
  hsize_t keep = 0;
  while (keep < n && values[keep] <= max_step) ++keep;
  for (const auto& name : names) {
    const hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
    H5Dset_extent(dataset, &keep);
    H5Dclose(dataset);
  }
}

}  // namespace

const std::vector<std::string>& MetricsWriter::columns() {
  static const std::vector<std::string> names = {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s",
                                                 "mem_allocated_bytes", "mem_reserved_bytes", "mem_peak_bytes"};
  return names;
}

MetricsWriter::MetricsWriter(const fs::path& run_dir, int64_t resume_step, bool tensorboard)
    : h5_(run_dir / "metrics.h5"), csv_(run_dir / "metrics.csv") {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by lorakit, not printed by HDF5
  if (tensorboard) events_ = std::make_unique<EventWriter>(run_dir, resume_step >= 0 && fs::exists(h5_) ? resume_step : -1);
  if (resume_step >= 0 && fs::exists(h5_)) {
    H5File file(h5_);
    truncate(file.id, "step", columns(), static_cast<double>(resume_step));
    truncate(file.id, "eval/step", {"eval/step", "eval/loss"}, static_cast<double>(resume_step));
    // metrics.csv: keep the header and the rows up to the step.
    std::ifstream in(csv_);
    std::string line, kept;
    for (bool header = true; std::getline(in, line); header = false) {
      if (!header && std::stod(line.substr(0, line.find(','))) > static_cast<double>(resume_step)) break;
      kept += line + "\n";
    }
    std::ofstream(csv_, std::ios::trunc) << kept;
    return;
  }
  const hid_t file = H5Fcreate(h5_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) fail("{}: cannot create", h5_.string());
  for (const auto& name : columns()) create_dataset(file, name);
  const hid_t group = H5Gcreate2(file, "eval", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  create_dataset(group, "step");
  create_dataset(group, "loss");
  H5Gclose(group);
  H5Fclose(file);
  std::string header;
  for (const auto& name : columns()) header += (header.empty() ? "" : ",") + name;
  std::ofstream(csv_, std::ios::trunc) << header << "\n";
}

void MetricsWriter::append(const StepMetrics& m) {
  const double values[] = {m.step, m.epoch, m.loss, m.lr, m.grad_norm, m.tokens_per_s,
                           m.mem_allocated_bytes, m.mem_reserved_bytes, m.mem_peak_bytes};
  {
    H5File file(h5_);
    for (size_t i = 0; i < columns().size(); ++i) append_value(file.id, columns()[i], values[i]);
    H5Fflush(file.id, H5F_SCOPE_GLOBAL);
  }
  std::string row;
  for (size_t i = 0; i < columns().size(); ++i) row += (i ? "," : "") + fmt::format("{}", values[i]);
  std::ofstream(csv_, std::ios::app) << row << "\n";
  if (events_) {
    const auto step = static_cast<int64_t>(m.step);
    const char* tags[] = {"train/epoch", "train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_s",
                          "train/mem_allocated_bytes", "train/mem_reserved_bytes", "train/mem_peak_bytes"};
    for (size_t i = 1; i < columns().size(); ++i) events_->scalar(step, tags[i - 1], values[i]);
    if (m.loss_scale > 0) events_->scalar(step, "train/loss_scale", m.loss_scale);
  }
}

void MetricsWriter::recipe_text(const std::string& yaml) {
  if (events_) events_->text(0, "recipe", "```yaml\n" + yaml + "```");
}

void MetricsWriter::append_eval(int64_t step, double loss) {
  H5File file(h5_);
  append_value(file.id, "eval/step", static_cast<double>(step));
  append_value(file.id, "eval/loss", loss);
  if (events_) {
    events_->scalar(step, "eval/loss", loss);
    events_->scalar(step, "eval/perplexity", std::exp(loss));
  }
}

}  // namespace lorakit::trainer
