// `lorakit eval`'s two measurements of a model over a CSV/JSONL file: the mean token cross-entropy
// over the file's loss tokens (every next-token prediction whose label is not -100) and perplexity;
// or, with generation, each row's prompt answered greedily and scored against its response column.
// Rows are read and built exactly as training reads them (data/examples.h).
#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>

#include "data/examples.h"
#include "data/records.h"
#include "inference/generate.h"
#include "inference/scores.h"
#include "models/model.h"

namespace lorakit::inference {

struct LossEvaluation {
  double loss = 0;  // mean over loss tokens
  int64_t tokens = 0, examples = 0, skipped = 0, truncated = 0;
  std::string last_skip_reason;
};

// `batch_size` rows at a time (padded to the longest, in file order) on `device`, in inference mode;
// the summed loss over the same tokens as one row at a time. A token id past the model's
// vocabulary is an error naming the file and line.
LossEvaluation evaluate_loss(const CausalLM& model, const data::ExampleBuilder& builder, data::RecordReader& reader,
                             const c10::Device& device, int64_t batch_size);

struct GenerationEvaluation {
  Scores scores;
  int64_t examples = 0;
  double seconds = 0;  // all prompts
  int64_t new_tokens = 0;
  double peak_memory_bytes = 0;
  std::string predictions_csv;  // line,prompt,reference,prediction,exact_match,new_tokens,seconds
};

// Prompts generated `batch_size` at a time (generate_batch); rows without a reference answer are
// passed over; none at all is an error naming `data_path`.
GenerationEvaluation evaluate_generation(const CausalLM& model, const tokenizers::Tokenizer& tokenizer,
                                         const data::ExampleBuilder& builder, data::RecordReader& reader,
                                         const GenerationConfig& config, const c10::Device& device,
                                         int64_t batch_size, const std::string& data_path);

}  // namespace lorakit::inference
