#include "inference/evaluate.h"

#include <algorithm>

#include <ATen/ops/from_blob.h>
#include <ATen/ops/ones_like.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/format.h"
#include "models/loss.h"
#include "tokenizers/unicode.h"

namespace lorakit::inference {

LossEvaluation evaluate_loss(const CausalLM& model, const data::ExampleBuilder& builder, data::RecordReader& reader) {
  c10::InferenceMode inference;
  LossEvaluation out;
  double loss_sum = 0;
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
    const auto T = static_cast<int64_t>(example->input_ids.size());
    std::vector<int64_t> ids(example->input_ids.begin(), example->input_ids.end());
    std::vector<int64_t> labels(example->labels.begin(), example->labels.end());
    const at::Tensor input = at::from_blob(ids.data(), {1, T}, at::kLong);     // (1, T)
    const at::Tensor target = at::from_blob(labels.data(), {1, T}, at::kLong);  // (1, T)
    loss_sum += lorakit::loss_sum(model, input, at::ones_like(input), target, 0).item<double>();
    out.tokens += std::count_if(labels.begin() + 1, labels.end(), [](int64_t l) { return l != data::kIgnoreIndex; });
    ++out.examples;
    out.truncated += example->truncated;
  }
  out.loss = out.tokens ? loss_sum / static_cast<double>(out.tokens) : NAN;
  return out;
}

GenerationEvaluation evaluate_generation(const CausalLM& model, const tokenizers::Tokenizer& tokenizer,
                                         const data::ExampleBuilder& builder, data::RecordReader& reader,
                                         const GenerationConfig& config, const c10::Device& device,
                                         const std::string& data_path) {
  GenerationEvaluation out;
  out.predictions_csv = "line,prompt,reference,prediction,exact_match,new_tokens,seconds\n";
  std::vector<std::string> predictions, references;
  data::Record record;
  std::string reason;
  while (reader.next(record)) {
    if (!builder.selects(record, reader.path(), reason)) continue;
    const auto [prompt, reference] = builder.prompt_and_response(record, reader.path());
    if (reference.empty()) continue;
    const auto g = generate(model, &tokenizer, tokenizer.encode(prompt, true), config, device);
    const std::string prediction = tokenizers::python_strip(g.text);
    const bool exact = prediction == tokenizers::python_strip(reference);
    predictions.push_back(prediction);
    references.push_back(reference);
    out.seconds += g.seconds;
    out.new_tokens += static_cast<int64_t>(g.new_ids.size());
    out.peak_memory_bytes = std::max(out.peak_memory_bytes, g.peak_memory_bytes);
    out.predictions_csv += fmt::format("{},{},{},{},{},{},{:.4f}\n", record.line, csv_field(prompt), csv_field(reference),
                                       csv_field(prediction), exact ? 1 : 0, g.new_ids.size(), g.seconds);
  }
  if (references.empty()) fail("{}: no rows with a reference answer to compare with", data_path);
  out.examples = static_cast<int64_t>(references.size());
  out.scores = score(predictions, references);
  return out;
}

}  // namespace lorakit::inference
