// A classifier's scores over labelled predictions, as scikit-learn computes them
// (precision_recall_fscore_support with zero_division=0, accuracy_score, confusion_matrix): per
// label, and their macro (unweighted mean), micro (from the summed counts) and weighted (by support)
// averages. Pure arithmetic: labels are ids 0..num_labels-1. models/ holds it, as it holds the loss,
// because trainer/ (validation) and inference/ (`lorakit eval`) both need it and neither links the other.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lorakit {

struct LabelScores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;  // examples whose true label it is
};

struct ClassificationMetrics {
  int64_t examples = 0;
  double accuracy = 0;
  std::vector<LabelScores> per_label;
  LabelScores macro, micro, weighted;         // support: all examples
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
};

ClassificationMetrics classification_metrics(const std::vector<int64_t>& labels, const std::vector<int64_t>& predictions,
                                             int64_t num_labels);

// The report `lorakit eval` prints: accuracy, a per-label table with the averages, the confusion
// matrix with label names.
std::string metrics_report(const ClassificationMetrics& metrics, const std::vector<std::string>& label_names);

}  // namespace lorakit
