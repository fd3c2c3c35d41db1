// What a dataset turns into before any training: rows read, kept and skipped (and why), token
// lengths of prompts and responses (percentiles), truncations and examples that lost every response
// token. Memory stays flat: lengths go into exact histograms, not lists.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "data/examples.h"
#include "data/records.h"

namespace lorakit::data {

class LengthHistogram {
 public:
  void add(int64_t length) { ++counts_[length]; ++total_; }
  int64_t percentile(double p) const;  // nearest rank; 0 when empty
  int64_t max() const { return counts_.empty() ? 0 : counts_.rbegin()->first; }
  int64_t count() const { return total_; }

 private:
  std::map<int64_t, int64_t> counts_;
  int64_t total_ = 0;
};

struct DataStats {
  std::string path;
  int64_t rows = 0, kept = 0, truncated = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  std::map<std::string, int64_t> skipped;  // reason -> rows
  int64_t bad_rows = 0;                     // malformed rows skipped by skip_bad_rows
  std::vector<std::string> bad_row_examples;
  LengthHistogram prompt, response, total;
  std::vector<std::string> label_names;    // a classifier's labels (data.label_column), in id order
  std::vector<int64_t> label_counts;       // kept examples per label

  // Reads every record of `reader` through `builder`.
  static DataStats scan(RecordReader& reader, const ExampleBuilder& builder);
  void add(const Example& example);

  std::string report() const;  // the table printed by `lorakit data stats` and at the start of a run
  nlohmann::json to_json() const;
};

}  // namespace lorakit::data
