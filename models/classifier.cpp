// The decoder classifier (transformers' GenericForSequenceClassification, GPT-2's and GPT-NeoX's
// own classes), the classification loss and the registry of classifiers.
#include "models/classifier.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>

#include "core/error.h"

namespace lorakit {
namespace {

// "LlamaForCausalLM" -> "LlamaForSequenceClassification", "GPT2LMHeadModel" -> "GPT2ForSequenceClassification".
std::string classification_architecture(std::string causal) {
  for (const char* suffix : {"ForCausalLM", "LMHeadModel"})
    if (causal.ends_with(suffix)) return causal.substr(0, causal.size() - std::string_view(suffix).size()) + "ForSequenceClassification";
  return causal + "ForSequenceClassification";
}

class DecoderClassifier final : public SequenceClassifier {
 public:
  DecoderClassifier(std::unique_ptr<CausalLM> backbone, int64_t hidden_size, int64_t num_labels,
                    std::optional<int64_t> pad_token_id, double initializer_range)
      : backbone_(std::move(backbone)), hidden_size_(hidden_size), num_labels_(num_labels), pad_token_id_(pad_token_id),
        initializer_range_(initializer_range) {}

  ArchSummary summary() const override {
    ArchSummary s = backbone_->summary();
    s.architecture = classification_architecture(s.architecture);
    s.facts["num_labels"] = num_labels_;
    s.facts["pooling"] = pad_token_id_ ? fmt::format("last token != pad_token_id {}", *pad_token_id_) : "last token";
    return s;
  }
  int64_t num_labels() const override { return num_labels_; }
  std::string head_module() const override { return "score"; }

  // The backbone's tensors without its output layer (lm_head / embed_out), then `score`.
  void visit(ParamVisitor& v) override {
    struct WithoutOutputLayer : ParamVisitor {
      ParamVisitor& inner;
      explicit WithoutOutputLayer(ParamVisitor& i) : inner(i) {}
      void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>& shape) override {
        inner.tensor(name, slot, shape);
      }
      void linear(const std::string& name, Linear& linear) override {
        if (!is_output_layer(name)) inner.linear(name, linear);
      }
    } without(v);
    backbone_->visit(without);
    v.tensor("score.weight", score_, {num_labels_, hidden_size_});
  }
  // A causal-LM checkpoint's output layer is not part of the classifier (transformers drops it too).
  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return backbone_->ignores_checkpoint_tensor(name) || name == "lm_head.weight" || name == "embed_out.weight";
  }
  void set_activation_recompute(bool on) override { backbone_->set_activation_recompute(on); }

  void init_head(uint64_t seed, const c10::Device& device) override {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    score_ = at::empty({num_labels_, hidden_size_}, at::kFloat).normal_(0.0, initializer_range_, generator).to(device);
  }

  at::Tensor logits(const at::Tensor& input_ids, const TokenLayout& layout) const override {
    const at::Tensor hidden = backbone_->forward_hidden(backbone_->embed(input_ids), layout, nullptr);  // (B, T, C)
    const int64_t B = input_ids.size(0), T = input_ids.size(1);
    // HF: the rightmost position whose token is not pad_token_id (left or right padding alike).
    const at::Tensor positions = at::arange(T, input_ids.options());  // (T)
    at::Tensor last;                                                  // (B)
    if (pad_token_id_)
      last = at::argmax(positions * (input_ids != *pad_token_id_).to(at::kLong), -1);
    else if (layout.attention_mask.defined())
      last = at::argmax(positions * layout.attention_mask.slice(1, -T).to(at::kLong), -1);
    else
      last = at::full({B}, T - 1, input_ids.options());
    const at::Tensor rows = at::arange(B, input_ids.options()) * T + last;                 // (B) into (B*T)
    const at::Tensor pooled = hidden.reshape({B * T, -1}).index_select(0, rows);           // (B, C)
    return at::linear(pooled.to(score_.scalar_type()), score_).to(at::kFloat);  // (B, num_labels)
  }

 private:
  std::unique_ptr<CausalLM> backbone_;
  int64_t hidden_size_, num_labels_;
  std::optional<int64_t> pad_token_id_;
  double initializer_range_;
  at::Tensor score_;  // (num_labels, C) float32
};

}  // namespace

at::Tensor classification_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  return at::cross_entropy_loss(logits.to(at::kFloat), labels, {}, at::Reduction::Sum);
}

bool is_encoder_model_type(const std::string& model_type) { return model_type == "bert" || model_type == "electra"; }

std::unique_ptr<SequenceClassifier> create_classifier(const JsonReader& config, int64_t num_labels,
                                                      std::optional<int64_t> pad_token_id) {
  if (num_labels < 1 || num_labels > kMaxDimension)
    fail("{}: {} labels; a classifier needs 1 to {}", config.where(), num_labels, kMaxDimension);
  const std::string model_type = config.string("model_type");
  if (model_type == "bert") return with_json_errors(config.where(), [&] { return create_bert_classifier(config, num_labels); });
  if (model_type == "electra")
    return with_json_errors(config.where(), [&] { return create_electra_classifier(config, num_labels); });
  std::unique_ptr<CausalLM> backbone = create_model(config);
  if (backbone->summary().model_type == "rwkv")
    fail("{}: transformers has no RwkvForSequenceClassification, so lorakit has no rwkv classifier; hint: pick another "
         "model for task: sequence_classification", config.where());
  // The hidden size under each family's key.
  int64_t hidden = 0;
  for (const char* key : {"hidden_size", "n_embd", "d_model"})
    if (config.has(key)) {
      hidden = config.integer(key);
      break;
    }
  if (hidden <= 0) fail("{}: no hidden_size (or n_embd) to size the score head", config.where());
  const nlohmann::json& raw = config.raw();
  std::optional<int64_t> pad = pad_token_id;
  if (raw.contains("pad_token_id") && raw["pad_token_id"].is_number_integer()) pad = raw["pad_token_id"].get<int64_t>();
  return std::make_unique<DecoderClassifier>(std::move(backbone), hidden, num_labels, pad,
                                             config.number("initializer_range", 0.02));
}

}  // namespace lorakit
