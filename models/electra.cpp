// ELECTRA (`model_type: electra`, e.g. monologg/koelectra-base-v3-discriminator), mirroring
// transformers' models/electra/modeling_electra.py: BERT's encoder (models/bert.h) at width
// embedding_size, projected to hidden_size by `embeddings_project` when the two differ, no pooler,
// and ElectraClassificationHead: h[:, 0] -> dense (C -> C) -> gelu -> out_proj (C -> num_labels).
// Dropout is off, as in models/bert.cpp.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/zeros.h>

#include "core/error.h"
#include "models/bert.h"
#include "models/classifier.h"

namespace lorakit {
namespace {

class ElectraForSequenceClassification final : public SequenceClassifier {
 public:
  ElectraForSequenceClassification(const BertConfig& config, int64_t num_labels)
      : cfg_(config), encoder_(config), num_labels_(num_labels) {}

  ArchSummary summary() const override {
    nlohmann::ordered_json facts = encoder_.facts();
    facts["num_labels"] = num_labels_;
    facts["pooling"] = "classifier.dense + gelu of [CLS]";
    return {"electra", "ElectraForSequenceClassification", cfg_.dtype, facts, {"query", "value"}};
  }
  int64_t num_labels() const override { return num_labels_; }
  std::string head_module() const override { return "classifier"; }

  void visit(ParamVisitor& v) override {
    encoder_.visit(v, "electra.");
    const int64_t C = cfg_.hidden_size;
    v.tensor("classifier.dense.weight", dense_weight_, {C, C});
    v.tensor("classifier.dense.bias", dense_bias_, {C});
    v.tensor("classifier.out_proj.weight", out_proj_weight_, {num_labels_, C});
    v.tensor("classifier.out_proj.bias", out_proj_bias_, {num_labels_});
  }
  // The discriminator's and generator's pre-training heads, and the legacy position_ids buffer.
  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return name.starts_with("discriminator_predictions.") || name.starts_with("generator_") ||
           name.ends_with("embeddings.position_ids");
  }
  void set_activation_recompute(bool on) override { encoder_.set_recompute(on); }

  void init_head(uint64_t seed, const c10::Device& device) override {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t C = cfg_.hidden_size;
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    dense_weight_ = at::empty({C, C}, f32).normal_(0.0, cfg_.initializer_range, generator).to(device);
    dense_bias_ = at::zeros({C}, f32.device(device));
    out_proj_weight_ = at::empty({num_labels_, C}, f32).normal_(0.0, cfg_.initializer_range, generator).to(device);
    out_proj_bias_ = at::zeros({num_labels_}, f32.device(device));
  }

  at::Tensor logits(const at::Tensor& input_ids, const TokenLayout& layout) const override {
    const at::Tensor cls = encoder_.forward(input_ids, layout).select(1, 0).to(dense_weight_.scalar_type());  // (B, C): [CLS]
    const at::Tensor x = activation("gelu", at::linear(cls, dense_weight_, dense_bias_));     // (B, C)
    return at::linear(x, out_proj_weight_, out_proj_bias_).to(at::kFloat);                   // (B, num_labels)
  }

 private:
  BertConfig cfg_;
  BertEncoder encoder_;
  int64_t num_labels_;
  at::Tensor dense_weight_, dense_bias_, out_proj_weight_, out_proj_bias_;  // float32
};

}  // namespace

// ElectraConfig's defaults: the small discriminator.
std::unique_ptr<SequenceClassifier> create_electra_classifier(const JsonReader& config, int64_t num_labels) {
  BertConfig defaults;
  defaults.embedding_size = 128;
  defaults.hidden_size = 256;
  defaults.num_attention_heads = 4;
  defaults.intermediate_size = 1024;
  return std::make_unique<ElectraForSequenceClassification>(read_bert_config(config, defaults), num_labels);
}

}  // namespace lorakit
