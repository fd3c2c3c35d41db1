// BERT's encoder (transformers' models/bert/modeling_bert.py), shared by bert and electra (whose
// encoder is BERT's, models/electra.cpp): embeddings (word + token type + absolute position, then
// LayerNorm), post-LN blocks (self-attention with q/k/v biases and a padding mask, no causal mask;
// dense + LayerNorm around each residual), exact GELU. Internal to models/.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/model.h"

namespace lorakit {

// BertConfig's keys (ElectraConfig adds embedding_size); defaults are the class's.
struct BertConfig {
  std::string model_type;
  int64_t vocab_size = 30522, hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12,
          intermediate_size = 3072, max_position_embeddings = 512, type_vocab_size = 2;
  int64_t embedding_size = 0;  // electra: the embeddings' width (projected to hidden_size when different)
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12, initializer_range = 0.02;
  std::string dtype;
};
// config.json's keys over `defaults` (BertConfig's or ElectraConfig's), checked.
BertConfig read_bert_config(const JsonReader& config, const BertConfig& defaults);

struct BertLayer {
  Linear query, key, value, attention_output, intermediate, output;
  at::Tensor attention_norm_weight, attention_norm_bias, output_norm_weight, output_norm_bias;  // (C)
};

class BertEncoder {
 public:
  explicit BertEncoder(const BertConfig& config);
  // `prefix` is "bert." or "electra."; electra's embeddings_project comes after the embeddings.
  void visit(ParamVisitor& v, const std::string& prefix);
  // input_ids (B, T), the layout's attention mask -> hidden states (B, T, C). Token types are 0
  // (one segment) and positions 0..T-1, as transformers' defaults for a single sequence.
  at::Tensor forward(const at::Tensor& input_ids, const TokenLayout& layout) const;
  // The summary facts shared by both.
  nlohmann::ordered_json facts() const;
  void set_recompute(bool on) { recompute_ = on; }

 private:
  BertConfig cfg_;
  int64_t embedding_size_;
  at::Tensor word_embeddings_, position_embeddings_, token_type_embeddings_;  // (V|P|types, E)
  at::Tensor embeddings_norm_weight_, embeddings_norm_bias_;                  // (E)
  Linear embeddings_project_;                                                 // electra, E != C
  std::vector<BertLayer> layers_;
  bool recompute_ = false;
};

}  // namespace lorakit
