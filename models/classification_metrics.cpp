#include "models/classification_metrics.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace lorakit {
namespace {

// sklearn's _prf_divide with zero_division=0: 0 where the denominator is 0.
double ratio(double numerator, double denominator) { return denominator == 0 ? 0.0 : numerator / denominator; }

LabelScores scores(double true_positives, double predicted, double actual) {
  LabelScores s;
  s.precision = ratio(true_positives, predicted);
  s.recall = ratio(true_positives, actual);
  // sklearn computes F1 as 2 tp / (2 tp + fp + fn), 0 when that denominator is 0.
  s.f1 = ratio(2 * true_positives, predicted + actual);
  return s;
}

}  // namespace

ClassificationMetrics classification_metrics(const std::vector<int64_t>& labels, const std::vector<int64_t>& predictions,
                                             int64_t num_labels) {
  if (labels.size() != predictions.size())
    fail("classification metrics: {} labels but {} predictions", labels.size(), predictions.size());
  ClassificationMetrics m;
  m.examples = static_cast<int64_t>(labels.size());
  m.confusion.assign(num_labels, std::vector<int64_t>(num_labels, 0));
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_labels || predictions[i] < 0 || predictions[i] >= num_labels)
      fail("classification metrics: label {} or prediction {} outside 0..{}", labels[i], predictions[i], num_labels - 1);
    m.confusion[labels[i]][predictions[i]] += 1;
    correct += labels[i] == predictions[i];
  }
  m.accuracy = ratio(static_cast<double>(correct), static_cast<double>(m.examples));
  double tp_sum = 0, predicted_sum = 0, actual_sum = 0;
  for (int64_t k = 0; k < num_labels; ++k) {
    double predicted = 0, actual = 0;
    for (int64_t j = 0; j < num_labels; ++j) predicted += static_cast<double>(m.confusion[j][k]), actual += static_cast<double>(m.confusion[k][j]);
    const double tp = static_cast<double>(m.confusion[k][k]);
    LabelScores s = scores(tp, predicted, actual);
    s.support = static_cast<int64_t>(actual);
    m.per_label.push_back(s);
    tp_sum += tp, predicted_sum += predicted, actual_sum += actual;
    m.macro.precision += s.precision / static_cast<double>(num_labels);
    m.macro.recall += s.recall / static_cast<double>(num_labels);
    m.macro.f1 += s.f1 / static_cast<double>(num_labels);
    const double weight = ratio(actual, static_cast<double>(m.examples));
    m.weighted.precision += s.precision * weight;
    m.weighted.recall += s.recall * weight;
    m.weighted.f1 += s.f1 * weight;
  }
  m.micro = scores(tp_sum, predicted_sum, actual_sum);
  m.macro.support = m.micro.support = m.weighted.support = m.examples;
  return m;
}

std::string metrics_report(const ClassificationMetrics& m, const std::vector<std::string>& names) {
  size_t width = 12;
  for (const auto& n : names) width = std::max(width, n.size());
  std::string out = fmt::format("accuracy {:.4f} ({} examples)\n", m.accuracy, m.examples);
  out += fmt::format("{:<{}}  precision  recall      f1  support\n", "label", width);
  const auto row = [&](const std::string& name, const LabelScores& s) {
    return fmt::format("{:<{}}  {:9.4f}  {:6.4f}  {:6.4f}  {:7}\n", name, width, s.precision, s.recall, s.f1, s.support);
  };
  for (size_t k = 0; k < m.per_label.size(); ++k) out += row(names.at(k), m.per_label[k]);
  out += row("macro avg", m.macro) + row("micro avg", m.micro) + row("weighted avg", m.weighted);
  out += fmt::format("confusion matrix (rows: true label, columns: predicted)\n{:<{}}", "", width);
  for (const auto& n : names) out += fmt::format("  {:>8}", n);
  out += "\n";
  for (size_t k = 0; k < m.confusion.size(); ++k) {
    out += fmt::format("{:<{}}", names.at(k), width);
    for (int64_t v : m.confusion[k]) out += fmt::format("  {:>8}", v);
    out += "\n";
  }
  return out;
}

}  // namespace lorakit
