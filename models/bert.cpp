// BERT (`model_type: bert`, e.g. klue/bert-base), mirroring transformers' models/bert/modeling_bert.py:
// the encoder (models/bert.h) and BertForSequenceClassification's head, tanh(pooler.dense(h[:, 0]))
// then `classifier` (hidden -> num_labels, with bias). Dropout is off (evaluation and LoRA training
// alike: the base is frozen and transformers' dropout would make the comparison random).
#include "models/bert.h"

#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include "core/error.h"
#include "models/classifier.h"

namespace lorakit {

BertConfig read_bert_config(const JsonReader& c, const BertConfig& d) {
  BertConfig cfg;
  auto& [model_type, vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
         max_position_embeddings, type_vocab_size, embedding_size, hidden_act, layer_norm_eps, initializer_range, dtype] = cfg;
  model_type = c.string("model_type");
  vocab_size = c.integer("vocab_size", d.vocab_size);
  hidden_size = c.integer("hidden_size", d.hidden_size);
  num_hidden_layers = c.integer("num_hidden_layers", d.num_hidden_layers);
  num_attention_heads = c.integer("num_attention_heads", d.num_attention_heads);
  intermediate_size = c.integer("intermediate_size", d.intermediate_size);
  max_position_embeddings = c.integer("max_position_embeddings", d.max_position_embeddings);
  type_vocab_size = c.integer("type_vocab_size", d.type_vocab_size);
  embedding_size = d.embedding_size > 0 ? c.integer("embedding_size", d.embedding_size) : hidden_size;
  hidden_act = c.string("hidden_act", d.hidden_act);
  layer_norm_eps = c.number("layer_norm_eps", d.layer_norm_eps);
  initializer_range = c.number("initializer_range", d.initializer_range);
  dtype = read_config_dtype(c);
  for (auto [key, value] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                            {"num_hidden_layers", num_hidden_layers}, {"num_attention_heads", num_attention_heads},
                            {"intermediate_size", intermediate_size}, {"max_position_embeddings", max_position_embeddings},
                            {"type_vocab_size", type_vocab_size}, {"embedding_size", embedding_size}})
    check_config_size(c, key, value);
  if (hidden_size % num_attention_heads != 0)
    c.fail_key("hidden_size", fmt::format("a multiple of num_attention_heads ({})", num_attention_heads));
  if (!is_known_activation(hidden_act)) c.fail_key("hidden_act", "gelu, gelu_new, silu or relu");
  // position_embedding_type is not read: transformers 5 ignores it (absolute positions only).
  return cfg;
}

BertEncoder::BertEncoder(const BertConfig& config) : cfg_(config), embedding_size_(config.embedding_size) {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size;
  if (embedding_size_ != C) embeddings_project_ = Linear(embedding_size_, C, true);
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    BertLayer l;
    l.query = Linear(C, C, true);
    l.key = Linear(C, C, true);
    l.value = Linear(C, C, true);
    l.attention_output = Linear(C, C, true);
    l.intermediate = Linear(C, I, true);
    l.output = Linear(I, C, true);
    layers_.push_back(std::move(l));
  }
}

void BertEncoder::visit(ParamVisitor& v, const std::string& prefix) {
  const int64_t E = embedding_size_, C = cfg_.hidden_size;
  const std::string e = prefix + "embeddings.";
  v.tensor(e + "word_embeddings.weight", word_embeddings_, {cfg_.vocab_size, E});
  v.tensor(e + "position_embeddings.weight", position_embeddings_, {cfg_.max_position_embeddings, E});
  v.tensor(e + "token_type_embeddings.weight", token_type_embeddings_, {cfg_.type_vocab_size, E});
  v.tensor(e + "LayerNorm.weight", embeddings_norm_weight_, {E});
  v.tensor(e + "LayerNorm.bias", embeddings_norm_bias_, {E});
  if (E != C) v.linear(prefix + "embeddings_project", embeddings_project_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    BertLayer& l = layers_[i];
    const std::string p = fmt::format("{}encoder.layer.{}.", prefix, i);
    v.linear(p + "attention.self.query", l.query);
    v.linear(p + "attention.self.key", l.key);
    v.linear(p + "attention.self.value", l.value);
    v.linear(p + "attention.output.dense", l.attention_output);
    v.tensor(p + "attention.output.LayerNorm.weight", l.attention_norm_weight, {C});
    v.tensor(p + "attention.output.LayerNorm.bias", l.attention_norm_bias, {C});
    v.linear(p + "intermediate.dense", l.intermediate);
    v.linear(p + "output.dense", l.output);
    v.tensor(p + "output.LayerNorm.weight", l.output_norm_weight, {C});
    v.tensor(p + "output.LayerNorm.bias", l.output_norm_bias, {C});
  }
}

nlohmann::ordered_json BertEncoder::facts() const {
  const auto& c = cfg_;
  nlohmann::ordered_json facts = {{"num_hidden_layers", c.num_hidden_layers},
                                  {"hidden_size", c.hidden_size},
                                  {"num_attention_heads", c.num_attention_heads},
                                  {"intermediate_size", c.intermediate_size},
                                  {"hidden_act", c.hidden_act},
                                  {"vocab_size", c.vocab_size},
                                  {"max_position_embeddings", c.max_position_embeddings},
                                  {"type_vocab_size", c.type_vocab_size}};
  if (c.model_type == "electra") facts["embedding_size"] = c.embedding_size;
  facts["norm"] = "post-LN LayerNorm, bidirectional attention";
  return facts;
}

namespace {

// The most negative value of `dtype`: what transformers adds to the scores of padded keys.
double lowest_value(at::ScalarType dtype) {
  if (dtype == at::kHalf) return -65504.0;
  if (dtype == at::kBFloat16) return -3.3895313892515355e38;
  return std::numeric_limits<float>::lowest();
}

}  // namespace

at::Tensor BertEncoder::forward(const at::Tensor& input_ids, const TokenLayout& layout) const {
  const int64_t B = input_ids.size(0), T = input_ids.size(1), H = cfg_.num_attention_heads;
  const int64_t D = cfg_.hidden_size / H;
  const double eps = cfg_.layer_norm_eps;
  if (T > cfg_.max_position_embeddings)
    fail("a sequence of {} tokens is longer than this {} model's max_position_embeddings ({}); hint: set "
         "data.max_seq_len to at most {}", T, cfg_.model_type, cfg_.max_position_embeddings, cfg_.max_position_embeddings);
  const at::Tensor positions = at::arange(T, input_ids.options());  // (T)
  at::Tensor h = at::embedding(word_embeddings_, input_ids) + token_type_embeddings_[0] +
                 at::embedding(position_embeddings_, positions);  // (B, T, E)
  h = layer_norm(h, embeddings_norm_weight_, embeddings_norm_bias_, eps);
  if (embedding_size_ != cfg_.hidden_size) h = embeddings_project_.forward(h);  // (B, T, C)

  // Padded keys hidden from every query (no causal mask): (B, 1, 1, T) additive, else none.
  AttentionMask mask{at::Tensor(), false};
  const at::Tensor& keys = layout.attention_mask;
  if (keys.defined() && (layout.padded ? *layout.padded : !keys.all().item<bool>()))
    mask.additive = at::zeros({B, 1, 1, T}, h.options())
                        .masked_fill(keys.to(h.device()).view({B, 1, 1, T}).logical_not(), lowest_value(h.scalar_type()));
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto block = [=, this](const at::Tensor& x) {
      const BertLayer& l = layers_[i];
      const at::Tensor q = l.query.forward(x).view({B, T, H, D}).transpose(1, 2);  // (B, H, T, D)
      const at::Tensor k = l.key.forward(x).view({B, T, H, D}).transpose(1, 2);
      const at::Tensor v = l.value.forward(x).view({B, T, H, D}).transpose(1, 2);
      const at::Tensor a = attention(q, k, v, mask, scale);  // (B, T, C)
      const at::Tensor y = layer_norm(l.attention_output.forward(a) + x, l.attention_norm_weight, l.attention_norm_bias, eps);
      const at::Tensor m = l.output.forward(activation(cfg_.hidden_act, l.intermediate.forward(y)));
      return layer_norm(m + y, l.output_norm_weight, l.output_norm_bias, eps);  // (B, T, C)
    };
    h = recompute_ ? recompute_in_backward(block, h) : block(h);
  }
  return h;
}

namespace {

class BertForSequenceClassification final : public SequenceClassifier {
 public:
  BertForSequenceClassification(const BertConfig& config, int64_t num_labels)
      : cfg_(config), encoder_(config), num_labels_(num_labels) {
    pooler_ = Linear(cfg_.hidden_size, cfg_.hidden_size, true);
  }

  ArchSummary summary() const override {
    nlohmann::ordered_json facts = encoder_.facts();
    facts["num_labels"] = num_labels_;
    facts["pooling"] = "tanh(pooler.dense) of [CLS]";
    return {"bert", "BertForSequenceClassification", cfg_.dtype, facts, {"query", "value"}};
  }
  int64_t num_labels() const override { return num_labels_; }
  std::string head_module() const override { return "classifier"; }

  void visit(ParamVisitor& v) override {
    encoder_.visit(v, "bert.");
    v.linear("bert.pooler.dense", pooler_);
    v.tensor("classifier.weight", classifier_weight_, {num_labels_, cfg_.hidden_size});
    v.tensor("classifier.bias", classifier_bias_, {num_labels_});
  }
  // Pre-training heads (BertForPreTraining's cls.*) and the legacy position_ids buffer.
  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return name.starts_with("cls.") || name.ends_with("embeddings.position_ids");
  }
  void set_activation_recompute(bool on) override { encoder_.set_recompute(on); }

  void init_head(uint64_t seed, const c10::Device& device) override {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    classifier_weight_ =
        at::empty({num_labels_, cfg_.hidden_size}, at::kFloat).normal_(0.0, cfg_.initializer_range, generator).to(device);
    classifier_bias_ = at::zeros({num_labels_}, at::TensorOptions().dtype(at::kFloat).device(device));
  }

  at::Tensor logits(const at::Tensor& input_ids, const TokenLayout& layout) const override {
    const at::Tensor h = encoder_.forward(input_ids, layout);         // (B, T, C)
    const at::Tensor pooled = at::tanh(pooler_.forward(h.select(1, 0)));  // (B, C): [CLS]
    return at::linear(pooled.to(classifier_weight_.scalar_type()), classifier_weight_, classifier_bias_).to(at::kFloat);
  }

 private:
  BertConfig cfg_;
  BertEncoder encoder_;
  int64_t num_labels_;
  Linear pooler_;
  at::Tensor classifier_weight_, classifier_bias_;  // float32
};

}  // namespace

std::unique_ptr<SequenceClassifier> create_bert_classifier(const JsonReader& config, int64_t num_labels) {
  return std::make_unique<BertForSequenceClassification>(read_bert_config(config, BertConfig{}), num_labels);
}

}  // namespace lorakit
