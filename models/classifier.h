// Sequence classifiers, as transformers' *ForSequenceClassification: one row of label logits per
// sequence. Two kinds (architectures-more.md 10-11):
//   decoders: every causal-LM architecture's backbone (its forward_hidden) and a `score` Linear
//             (hidden -> num_labels, no bias) read at the rightmost token that is not pad_token_id;
//   encoders: bert (embeddings with token types, post-LN blocks, a tanh pooler on [CLS], `classifier`)
//             and electra (BERT's encoder at embedding_size, `classifier.dense` + gelu + `out_proj`).
// The head is trained fully (PEFT's modules_to_save) and kept in float32 whatever the backbone dtype.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/model.h"

namespace lorakit {

class SequenceClassifier : public Model {
 public:
  virtual int64_t num_labels() const = 0;
  // The head's module names, PEFT's modules_to_save entries that match it ("score", "classifier").
  virtual std::string head_module() const = 0;
  // Fills the head as transformers' _init_weights does for a checkpoint without one: weights
  // normal(0, initializer_range), biases zero, on `device`.
  virtual void init_head(uint64_t seed, const c10::Device& device) = 0;
  // input_ids (B, T) int64 and their layout (the attention mask) -> logits (B, num_labels) float32.
  virtual at::Tensor logits(const at::Tensor& input_ids, const TokenLayout& layout) const = 0;
};

// transformers' ForSequenceClassificationLoss for single-label classification: cross-entropy of
// logits (B, num_labels) against labels (B) int64, summed (the caller divides by the examples).
at::Tensor classification_loss_sum(const at::Tensor& logits, const at::Tensor& labels);

// The encoders lorakit knows (model_type bert, electra); every other model_type is a decoder.
bool is_encoder_model_type(const std::string& model_type);

// Builds the classifier config.json describes with `num_labels` labels. A decoder pools at the
// rightmost token that is not config.json's pad_token_id, or `pad_token_id` when config.json has none
// (the tokenizer's: transformers needs model.config.pad_token_id set to batch); neither: the last
// token of each row by its attention mask.
std::unique_ptr<SequenceClassifier> create_classifier(const JsonReader& config, int64_t num_labels,
                                                      std::optional<int64_t> pad_token_id = std::nullopt);

// The encoders' own builders (models/bert.cpp, models/electra.cpp).
std::unique_ptr<SequenceClassifier> create_bert_classifier(const JsonReader& config, int64_t num_labels);
std::unique_ptr<SequenceClassifier> create_electra_classifier(const JsonReader& config, int64_t num_labels);

}  // namespace lorakit
