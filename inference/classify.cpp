#include "inference/classify.h"

#include <chrono>

#include <ATen/TensorOperators.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/softmax.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/format.h"
#include "data/batches.h"
#include "device/batch.h"

namespace lorakit::inference {
ClassifierEvaluation evaluate_classifier(const SequenceClassifier& model, const data::ExampleBuilder& builder,
                                         data::RecordReader& reader, const c10::Device& device, int64_t batch_size,
                                         int32_t pad_id) {
  if (batch_size < 1) fail("--batch-size must be at least 1, found {}", batch_size);
  const std::vector<std::string>& names = builder.labels();
  if (static_cast<int64_t>(names.size()) != model.num_labels())
    fail("the classifier has {} labels, the data's label list {} ({}); hint: evaluate with the labels it was trained on",
         model.num_labels(), names.size(), fmt::join(names, ", "));
  const auto start = std::chrono::steady_clock::now();
  c10::InferenceMode inference;
  ClassifierEvaluation out;
  out.predictions_csv = "line,label,prediction,correct";
  for (const auto& name : names) out.predictions_csv += "," + csv_field("p_" + name);
  out.predictions_csv += "\n";
  std::vector<int64_t> labels, predictions;
  double loss_sum = 0;
  std::vector<data::Example> pending;
  const auto flush = [&] {
    if (pending.empty()) return;
    const data::Batch batch = data::pad_batch(pending, pad_id);
    const DeviceBatch x = to_device(batch, device);
    const at::Tensor logits = model.logits(x.input_ids, x.layout);  // (B, K) float32
    loss_sum += classification_loss_sum(logits, x.class_labels).item<double>();
    const at::Tensor probabilities = at::softmax(logits, -1).to(at::kCPU, at::kDouble).contiguous();  // (B, K)
    const at::Tensor predicted = at::argmax(logits, -1).to(at::kCPU).contiguous();                  // (B)
    const int64_t* guesses = predicted.data_ptr<int64_t>();
    for (int64_t r = 0; r < batch.rows; ++r) {
      const int64_t label = batch.class_labels[r], guess = guesses[r];
      labels.push_back(label);
      predictions.push_back(guess);
      out.predictions_csv += fmt::format("{},{},{},{}", batch.lines[r], csv_field(names[label]), csv_field(names[guess]),
                                         label == guess ? 1 : 0);
      const double* p = probabilities[r].data_ptr<double>();
      for (int64_t k = 0; k < model.num_labels(); ++k) out.predictions_csv += fmt::format(",{:.6f}", p[k]);
      out.predictions_csv += "\n";
    }
    pending.clear();
  };
  data::Record record;
  while (reader.next(record)) {
    auto example = builder.build(record, reader.path(), out.last_skip_reason);
    if (!example) {
      ++out.skipped;
      continue;
    }
    ++out.examples;
    out.truncated += example->truncated;
    pending.push_back(std::move(*example));
    if (static_cast<int64_t>(pending.size()) == batch_size) flush();
  }
  flush();
  if (out.examples == 0)
    fail("{}: no rows to classify ({} skipped{}{})", reader.path(), out.skipped, out.last_skip_reason.empty() ? "" : ", last: ",
         out.last_skip_reason);
  out.loss = loss_sum / static_cast<double>(out.examples);
  out.metrics = classification_metrics(labels, predictions, model.num_labels());
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace lorakit::inference
