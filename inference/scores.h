// Scores of generated answers against reference labels: exact match, and per-label precision,
// recall and F1 with their macro (mean over labels) and micro (pooled counts) averages. Labels are
// the distinct references; a prediction outside them counts against precision of no label and
// against recall of its reference.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorakit::inference {

struct LabelScore {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;  // references with this label
};

struct Scores {
  double exact_match = 0;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  std::map<std::string, LabelScore> labels;
  nlohmann::json to_json() const;
};

// Both lists in the same order; compared after trimming whitespace.
Scores score(const std::vector<std::string>& predictions, const std::vector<std::string>& references);

}  // namespace lorakit::inference
