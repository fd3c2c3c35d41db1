// Llama (`model_type: llama`), mirroring transformers' models/llama/modeling_llama.py: pre-norm
// decoder layers (RMSNorm, GQA self-attention with rotate-half RoPE, RMSNorm, SwiGLU MLP), a final
// RMSNorm, lm_head or tied embeddings. The model class here also runs the model_types that
// transformers derives from Llama (models/llama.h); this file reads LlamaConfig's own keys:
// `attention_bias` (q/k/v/o), `mlp_bias`, `head_dim`, and every RoPE type HF computes.
#include "models/llama.h"

#include <tuple>

#include <ATen/TensorOperators.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scalar_tensor.h>

#include "core/error.h"

namespace lorakit {

LlamaConfig read_llama_config(const JsonReader& c, const LlamaDefaults& d) {
  LlamaConfig cfg;
  cfg.model_type = c.string("model_type");
  cfg.vocab_size = c.integer("vocab_size", d.vocab_size);
  cfg.hidden_size = c.integer("hidden_size", d.hidden_size);
  cfg.intermediate_size = c.integer("intermediate_size", d.intermediate_size);
  cfg.num_hidden_layers = c.integer("num_hidden_layers", d.num_hidden_layers);
  cfg.num_attention_heads = c.integer("num_attention_heads", d.num_attention_heads);
  cfg.num_key_value_heads = c.integer("num_key_value_heads", cfg.num_attention_heads);
  cfg.max_position_embeddings = c.integer("max_position_embeddings", d.max_position_embeddings);
  cfg.hidden_act = c.string("hidden_act", "silu");
  cfg.rms_norm_eps = c.number("rms_norm_eps", d.rms_norm_eps);
  cfg.tie_word_embeddings = c.boolean("tie_word_embeddings", d.tie_word_embeddings);
  cfg.dtype = read_config_dtype(c);
  if (cfg.num_attention_heads > 0 && !c.has("head_dim") && cfg.hidden_size % cfg.num_attention_heads != 0)
    c.fail_key("hidden_size", fmt::format("a multiple of num_attention_heads ({})", cfg.num_attention_heads));
  cfg.head_dim = cfg.num_attention_heads > 0 ? c.integer("head_dim", cfg.hidden_size / cfg.num_attention_heads) : 0;
  cfg.rope = read_rope_config(c, d.rope_theta, 1.0, cfg.max_position_embeddings);
  check_config_size(c, cfg.model_type == "exaone" ? "num_layers" : "num_hidden_layers", cfg.num_hidden_layers);
  cfg.sliding.assign(cfg.num_hidden_layers, false);
  return cfg;
}

void read_layer_types(const JsonReader& c, LlamaConfig& cfg) {
  const auto types = c.string_list("layer_types");
  if (static_cast<int64_t>(types.size()) != cfg.num_hidden_layers)
    c.fail_key("layer_types", fmt::format("a list of {} entries (num_hidden_layers)", cfg.num_hidden_layers));
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != "full_attention" && types[i] != "sliding_attention")
      c.fail_key("layer_types", "entries 'full_attention' or 'sliding_attention'");
    cfg.sliding[i] = types[i] == "sliding_attention";
  }
}

void check_llama_config(const JsonReader& c, const LlamaConfig& cfg) {
  const bool exaone = cfg.model_type == "exaone";  // EXAONE 3 names two of the keys differently
  for (auto [key, value] : {std::pair{"vocab_size", cfg.vocab_size}, {"hidden_size", cfg.hidden_size},
                            {"intermediate_size", cfg.intermediate_size},
                            {exaone ? "num_layers" : "num_hidden_layers", cfg.num_hidden_layers},
                            {"num_attention_heads", cfg.num_attention_heads},
                            {"num_key_value_heads", cfg.num_key_value_heads}})
    check_config_size(c, key, value);
  if (cfg.num_attention_heads % cfg.num_key_value_heads != 0)
    c.fail_key("num_key_value_heads", fmt::format("a divisor of num_attention_heads ({})", cfg.num_attention_heads));
  if (cfg.head_dim <= 0 || cfg.head_dim % 2 != 0) c.fail_key("head_dim", "a positive even integer");
  if (!is_known_activation(cfg.hidden_act))
    c.fail_key(exaone ? "activation_function" : "hidden_act", "silu, gelu, gelu_new or relu");
  if (cfg.sliding_window < 0) c.fail_key("sliding_window", "a positive integer or null");
}

namespace {

struct LlamaLayer {
  at::Tensor input_layernorm, post_attention_layernorm;  // (C)
  Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  at::Tensor q_norm, k_norm;  // (D), qwen3 only
};

class LlamaForCausalLM final : public CausalLM {
 public:
  explicit LlamaForCausalLM(LlamaConfig config) : cfg_(std::move(config)) {
    const auto& c = cfg_;
    const int64_t C = c.hidden_size, D = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      LlamaLayer layer;
      layer.q_proj = Linear(C, H * D, c.qkv_bias);
      layer.k_proj = Linear(C, Hkv * D, c.qkv_bias);
      layer.v_proj = Linear(C, Hkv * D, c.qkv_bias);
      layer.o_proj = Linear(H * D, C, c.o_bias);
      layer.gate_proj = Linear(C, c.intermediate_size, c.mlp_bias);
      layer.up_proj = Linear(C, c.intermediate_size, c.mlp_bias);
      layer.down_proj = Linear(c.intermediate_size, C, c.mlp_bias);
      layers_.push_back(std::move(layer));
    }
    lm_head_ = Linear(C, c.vocab_size, false);
    // The default rope rotates the whole head; the scaled types honour partial_rotary_factor.
    const double fraction = c.rope.scaling.rope_type == "default" ? 1.0 : c.rope.partial_rotary_factor;
    rotary_ = Rotary(static_cast<int64_t>(D * fraction), c.rope, c.max_position_embeddings);
  }

  ArchSummary summary() const override {
    const auto& c = cfg_;
    const int64_t sliding = std::count(c.sliding.begin(), c.sliding.end(), true);
    nlohmann::ordered_json facts = {
        {"num_hidden_layers", c.num_hidden_layers},
        {"hidden_size", c.hidden_size},
        {"num_attention_heads", c.num_attention_heads},
        {"num_key_value_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim},
        {"intermediate_size", c.intermediate_size},
        {"hidden_act", c.hidden_act},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rope_theta", c.rope.rope_theta},
        {"rope_type", c.rope.scaling.rope_type},
        {"sliding_window", c.sliding_window == 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(c.sliding_window)},
        {"sliding_layers", sliding},
        {"biases", c.qkv_bias ? (c.o_bias ? "q/k/v/o" : "q/k/v") : (c.o_bias ? "o" : "none")},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"norm", c.qk_norm ? "pre-norm RMSNorm + per-head q/k RMSNorm" : "pre-norm RMSNorm"},
    };
    return {c.model_type, c.architecture, c.dtype, facts, c.default_lora_targets};
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }

  void visit(ParamVisitor& v) override {
    const auto& n = cfg_.names;
    const int64_t C = cfg_.hidden_size;
    v.tensor(n.embed_tokens + ".weight", embed_tokens_, {cfg_.vocab_size, C});
    for (size_t i = 0; i < layers_.size(); ++i) {
      auto& l = layers_[i];
      const std::string p = fmt::format("{}.{}.", n.layers, i), attn = p + n.self_attn + ".", mlp = p + n.mlp + ".";
      v.tensor(p + n.input_layernorm + ".weight", l.input_layernorm, {C});
      v.linear(attn + n.q_proj, l.q_proj);
      v.linear(attn + n.k_proj, l.k_proj);
      v.linear(attn + n.v_proj, l.v_proj);
      v.linear(attn + n.o_proj, l.o_proj);
      if (cfg_.qk_norm) {
        v.tensor(attn + "q_norm.weight", l.q_norm, {cfg_.head_dim});
        v.tensor(attn + "k_norm.weight", l.k_norm, {cfg_.head_dim});
      }
      v.tensor(p + n.post_attention_layernorm + ".weight", l.post_attention_layernorm, {C});
      v.linear(mlp + n.gate_proj, l.gate_proj);
      v.linear(mlp + n.up_proj, l.up_proj);
      v.linear(mlp + n.down_proj, l.down_proj);
    }
    v.tensor(n.norm + ".weight", norm_, {C});
    if (!cfg_.tie_word_embeddings) v.linear("lm_head", lm_head_);
  }

  // Old checkpoints store the rotary tables (a non-persistent buffer now); a tied lm_head may be stored.
  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return (cfg_.tie_word_embeddings && name == "lm_head.weight") || name.ends_with(".rotary_emb.inv_freq");
  }

  at::Tensor embed(const at::Tensor& input_ids) const override {
    const at::Tensor e = at::embedding(embed_tokens_, input_ids);  // (B, T, C)
    if (!cfg_.scale_embeddings) return e;
    return e * at::scalar_tensor(std::sqrt(static_cast<double>(cfg_.hidden_size)), e.options());
  }

  at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const override {
    const int64_t B = embeds.size(0), T = embeds.size(1), D = cfg_.head_dim;
    const int64_t past = cache ? cache->length : 0;
    const double eps = cfg_.rms_norm_eps;
    const auto norm = [gemma = cfg_.gemma_norm](const at::Tensor& x, const at::Tensor& w, double e) {
      return gemma ? gemma_rms_norm(x, w, e) : rms_norm(x, w, e);
    };
    const at::Tensor positions = token_positions(layout, T, past, embeds.options());  // (B or 1, T)
    at::Tensor cos, sin;  // not a structured binding: the layer lambdas capture them (clang 14)
    std::tie(cos, sin) = rotary_.cos_sin(positions, embeds.scalar_type());                 // (B or 1, T, D)
    const AttentionMask full_mask = build_attention_mask(layout, T, past, 0, embeds.options());
    const AttentionMask sliding_mask =
        cfg_.sliding_window > 0 ? build_attention_mask(layout, T, past, cfg_.sliding_window, embeds.options()) : full_mask;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));

    at::Tensor h = embeds;  // (B, T, C)
    for (size_t i = 0; i < layers_.size(); ++i) {
      // One decoder layer; captures by value so it can rerun in the backward (activation recompute).
      const auto block = [=, this](const at::Tensor& x) {
        const auto& l = layers_[i];
        const at::Tensor n = norm(x, l.input_layernorm, eps);
        at::Tensor q = l.q_proj.forward(n).view({B, T, -1, D});  // (B, T, H, D)
        at::Tensor k = l.k_proj.forward(n).view({B, T, -1, D});  // (B, T, Hkv, D)
        at::Tensor v = l.v_proj.forward(n).view({B, T, -1, D}).transpose(1, 2);  // (B, Hkv, T, D)
        if (cfg_.qk_norm) {
          q = rms_norm(q, l.q_norm, eps);
          k = rms_norm(k, l.k_norm, eps);
        }
        q = apply_rope(q.transpose(1, 2), cos, sin);  // (B, H, T, D)
        k = apply_rope(k.transpose(1, 2), cos, sin);  // (B, Hkv, T, D)
        if (cache) std::tie(k, v) = append_kv(cache->keys, cache->values, i, k, v);  // (B, Hkv, past + T, D)
        const at::Tensor a = attention(q, k, v, cfg_.sliding[i] ? sliding_mask : full_mask, scale);  // (B, T, H*D)
        const at::Tensor y = x + l.o_proj.forward(a);
        const at::Tensor m = norm(y, l.post_attention_layernorm, eps);
        return y + l.down_proj.forward(activation(cfg_.hidden_act, l.gate_proj.forward(m)) * l.up_proj.forward(m));
      };
      h = recompute_ && !cache ? recompute_in_backward(block, h) : block(h);
    }
    if (cache) cache->length += T;
    return norm(h, norm_, eps);  // (B, T, C)
  }

  at::Tensor lm_head(const at::Tensor& h) const override {
    if (cfg_.tie_word_embeddings) return at::linear(h, embed_tokens_);  // (..., V)
    return lm_head_.forward(h);
  }

 private:
  LlamaConfig cfg_;
  at::Tensor embed_tokens_;  // (V, C)
  std::vector<LlamaLayer> layers_;
  at::Tensor norm_;  // (C)
  Linear lm_head_;   // unused when tied
  Rotary rotary_;
};

}  // namespace

std::unique_ptr<CausalLM> create_llama_model(LlamaConfig config) {
  return std::make_unique<LlamaForCausalLM>(std::move(config));
}

// LlamaConfig's defaults (configuration_llama.py, the 7B shape).
std::unique_ptr<CausalLM> create_llama(const JsonReader& c) {
  LlamaConfig cfg = read_llama_config(c, {.vocab_size = 32000, .hidden_size = 4096, .intermediate_size = 11008,
                                          .num_hidden_layers = 32, .num_attention_heads = 32,
                                          .max_position_embeddings = 2048});
  cfg.architecture = "LlamaForCausalLM";
  cfg.qkv_bias = cfg.o_bias = c.boolean("attention_bias", false);
  cfg.mlp_bias = c.boolean("mlp_bias", false);
  check_llama_config(c, cfg);
  return create_llama_model(std::move(cfg));
}

}  // namespace lorakit
