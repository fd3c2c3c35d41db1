// `lorakit eval` on a sequence classifier: every row of a CSV/JSONL file classified (rows read and
// built exactly as training reads them, data/examples.h), the mean cross-entropy, the metrics against
// the rows' labels (classification_metrics.h) and one CSV line of prediction and probabilities per row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "data/examples.h"
#include "data/records.h"
#include "models/classification_metrics.h"
#include "models/classifier.h"

namespace lorakit::inference {

struct ClassifierEvaluation {
  ClassificationMetrics metrics;
  double loss = 0;  // mean cross-entropy over the rows
  int64_t examples = 0, skipped = 0, truncated = 0;
  std::string last_skip_reason;
  double seconds = 0;
  std::string predictions_csv;  // line,label,prediction,correct,p_<label>,... (probabilities, softmax of the logits)
};

// `batch_size` rows at a time, padded with `pad_id` (a decoder's pad_token_id: it finds the last
// token by it), in inference mode. The builder's labels name the classes.
ClassifierEvaluation evaluate_classifier(const SequenceClassifier& model, const data::ExampleBuilder& builder,
                                         data::RecordReader& reader, const c10::Device& device, int64_t batch_size,
                                         int32_t pad_id);

}  // namespace lorakit::inference
