#include "inference/scores.h"

#include "core/error.h"
#include "tokenizers/unicode.h"

namespace lorakit::inference {
namespace {

double f1_of(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0; }

}  // namespace

Scores score(const std::vector<std::string>& predictions_in, const std::vector<std::string>& references_in) {
  if (predictions_in.size() != references_in.size()) fail("score: {} predictions for {} references", predictions_in.size(), references_in.size());
  std::vector<std::string> predictions, references;
  for (const auto& p : predictions_in) predictions.push_back(tokenizers::python_strip(p));
  for (const auto& r : references_in) references.push_back(tokenizers::python_strip(r));
  Scores s;
  std::map<std::string, int64_t> tp, predicted;
  int64_t correct = 0, predicted_in_labels = 0;
  for (const auto& r : references) ++s.labels[r].support;
  for (size_t i = 0; i < references.size(); ++i) {
    if (predictions[i] == references[i]) ++correct, ++tp[references[i]];
    if (s.labels.count(predictions[i])) ++predicted[predictions[i]], ++predicted_in_labels;
  }
  const auto n = static_cast<double>(references.size());
  s.exact_match = n > 0 ? static_cast<double>(correct) / n : 0;
  for (auto& [label, l] : s.labels) {
    l.precision = predicted[label] ? static_cast<double>(tp[label]) / static_cast<double>(predicted[label]) : 0;
    l.recall = static_cast<double>(tp[label]) / static_cast<double>(l.support);
    l.f1 = f1_of(l.precision, l.recall);
    s.macro_precision += l.precision;
    s.macro_recall += l.recall;
    s.macro_f1 += l.f1;
  }
  const auto labels = static_cast<double>(std::max<size_t>(s.labels.size(), 1));
  s.macro_precision /= labels;
  s.macro_recall /= labels;
  s.macro_f1 /= labels;
  s.micro_precision = predicted_in_labels ? static_cast<double>(correct) / static_cast<double>(predicted_in_labels) : 0;
  s.micro_recall = n > 0 ? static_cast<double>(correct) / n : 0;
  s.micro_f1 = f1_of(s.micro_precision, s.micro_recall);
  return s;
}

nlohmann::json Scores::to_json() const {
  nlohmann::json per_label = nlohmann::json::object();
  for (const auto& [label, l] : labels)
    per_label[label] = {{"precision", l.precision}, {"recall", l.recall}, {"f1", l.f1}, {"support", l.support}};
  return {{"exact_match", exact_match}, {"macro_precision", macro_precision}, {"macro_recall", macro_recall},
          {"macro_f1", macro_f1}, {"micro_precision", micro_precision}, {"micro_recall", micro_recall},
          {"micro_f1", micro_f1}, {"labels", per_label}};
}

}  // namespace lorakit::inference
