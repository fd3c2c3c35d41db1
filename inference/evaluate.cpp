#include "inference/evaluate.h"

#include <algorithm>

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/format.h"
#include "data/batches.h"
#include "device/batch.h"
#include "models/loss.h"
#include "tokenizers/unicode.h"

namespace lorakit::inference {

LossEvaluation evaluate_loss(const CausalLM& model, const data::ExampleBuilder& builder, data::RecordReader& reader,
                             const c10::Device& device, int64_t batch_size) {
  if (batch_size < 1) fail("--batch-size must be at least 1, found {}", batch_size);
  c10::InferenceMode inference;
  LossEvaluation out;
  double loss_sum = 0;
  std::vector<data::Example> pending;
  const auto flush = [&] {
    if (pending.empty()) return;
    const data::Batch batch = data::pad_batch(pending, 0);  // padding is masked and never a label
    const DeviceBatch x = to_device(batch, device);
    loss_sum += lorakit::loss_sum(model, x.input_ids, x.layout, x.labels, 0).item<double>();
    out.tokens += batch.loss_tokens;
    pending.clear();
  };
  data::Record record;
  while (reader.next(record)) {
    auto example = builder.build(record, reader.path(), out.last_skip_reason);
    if (!example) {
      ++out.skipped;
      continue;
    }
    for (int32_t id : example->input_ids)
      if (id >= model.vocab_size())
        fail("{}:{}: token id {} is outside the model's vocabulary of {}; hint: does the tokenizer belong to "
             "this model?", reader.path(), record.line, id, model.vocab_size());
    ++out.examples;
    out.truncated += example->truncated;
    pending.push_back(std::move(*example));
    if (static_cast<int64_t>(pending.size()) == batch_size) flush();
  }
  flush();
  out.loss = out.tokens ? loss_sum / static_cast<double>(out.tokens) : NAN;
  return out;
}

GenerationEvaluation evaluate_generation(const CausalLM& model, const tokenizers::Tokenizer& tokenizer,
                                         const data::ExampleBuilder& builder, data::RecordReader& reader,
                                         const GenerationConfig& config, const c10::Device& device,
                                         int64_t batch_size, const std::string& data_path) {
  if (batch_size < 1) fail("--batch-size must be at least 1, found {}", batch_size);
  GenerationEvaluation out;
  out.predictions_csv = "line,prompt,reference,prediction,exact_match,new_tokens,seconds\n";
  std::vector<std::string> predictions, references;
  struct Pending {
    size_t line;
    std::string prompt, reference;
    std::vector<int32_t> ids;
  };
  std::vector<Pending> pending;
  const auto flush = [&] {
    if (pending.empty()) return;
    std::vector<std::vector<int32_t>> prompts;
    for (const Pending& p : pending) prompts.push_back(p.ids);
    const auto generations = generate_batch(model, &tokenizer, prompts, config, device);
    for (size_t i = 0; i < pending.size(); ++i) {
      const Generation& g = generations[i];
      const std::string prediction = tokenizers::python_strip(g.text);
      const bool exact = prediction == tokenizers::python_strip(pending[i].reference);
      predictions.push_back(prediction);
      references.push_back(pending[i].reference);
      out.seconds += g.seconds;
      out.new_tokens += static_cast<int64_t>(g.new_ids.size());
      out.peak_memory_bytes = std::max(out.peak_memory_bytes, g.peak_memory_bytes);
      out.predictions_csv += fmt::format("{},{},{},{},{},{},{:.4f}\n", pending[i].line, csv_field(pending[i].prompt),
                                         csv_field(pending[i].reference), csv_field(prediction), exact ? 1 : 0,
                                         g.new_ids.size(), g.seconds);
    }
    pending.clear();
  };
  data::Record record;
  std::string reason;
  while (reader.next(record)) {
    if (!builder.selects(record, reader.path(), reason)) continue;
    auto [prompt, reference] = builder.prompt_and_response(record, reader.path());
    if (reference.empty()) continue;
    std::vector<int32_t> ids = tokenizer.encode(prompt, true);
    pending.push_back({record.line, std::move(prompt), std::move(reference), std::move(ids)});
    if (static_cast<int64_t>(pending.size()) == batch_size) flush();
  }
  flush();
  if (references.empty()) fail("{}: no rows with a reference answer to compare with", data_path);
  out.examples = static_cast<int64_t>(references.size());
  out.scores = score(predictions, references);
  return out;
}

}  // namespace lorakit::inference
