// Gemma-2 (`model_type: gemma2`; gemma-2-2b-it), mirroring transformers' models/gemma2/modeling_gemma2.py.
// Gemma's embeddings and (1 + weight) RMSNorm, but four norms per layer ("sandwich": input and
// post-attention around the attention, pre- and post-feed-forward around the MLP), attention scaled
// by query_pre_attn_scalar^-0.5 with its scores soft-capped (attn_logit_softcapping) before the
// mask, sliding-window attention on the even layers (0, 2, ...) unless layer_types says otherwise,
// and the logits soft-capped too (final_logit_softcapping). The MLP reads `hidden_activation`.
// The soft-capped attention cannot use SDPA (models/layers.h `attention`): it keeps the scores.
#include <tuple>

#include <ATen/TensorOperators.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/tanh.h>

#include "core/error.h"
#include "models/model.h"

namespace lorakit {

namespace {

// config.json keys, HF's names; defaults are Gemma2Config's (the 2B shape).
struct Gemma2Config {
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
      head_dim, max_position_embeddings, sliding_window;
  std::string hidden_activation;
  double rms_norm_eps, query_pre_attn_scalar, attn_logit_softcapping, final_logit_softcapping;  // 0: no cap
  bool attention_bias, tie_word_embeddings;
  RopeConfig rope;
  std::vector<bool> sliding;
  std::string dtype;

  explicit Gemma2Config(const JsonReader& c) {
    vocab_size = c.integer("vocab_size", 256000);
    hidden_size = c.integer("hidden_size", 2304);
    intermediate_size = c.integer("intermediate_size", 9216);
    num_hidden_layers = c.integer("num_hidden_layers", 26);
    num_attention_heads = c.integer("num_attention_heads", 8);
    num_key_value_heads = c.integer("num_key_value_heads", 4);
    head_dim = c.integer("head_dim", 256);
    max_position_embeddings = c.integer("max_position_embeddings", 8192);
    hidden_activation = c.string("hidden_activation", "gelu_pytorch_tanh");
    rms_norm_eps = c.number("rms_norm_eps", 1e-6);
    query_pre_attn_scalar = c.number("query_pre_attn_scalar", 256);
    const auto cap = [&](const char* key, double fallback) {
      return c.raw().contains(key) && c.raw()[key].is_null() ? 0.0 : c.number(key, fallback);
    };
    attn_logit_softcapping = cap("attn_logit_softcapping", 50.0);
    final_logit_softcapping = cap("final_logit_softcapping", 30.0);
    attention_bias = c.boolean("attention_bias", false);
    tie_word_embeddings = c.boolean("tie_word_embeddings", true);
    dtype = read_config_dtype(c);
    for (auto [key, value] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                              {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_hidden_layers},
                              {"num_attention_heads", num_attention_heads}, {"num_key_value_heads", num_key_value_heads},
                              {"head_dim", head_dim}})
      check_config_size(c, key, value);
    if (num_attention_heads % num_key_value_heads != 0)
      c.fail_key("num_key_value_heads", fmt::format("a divisor of num_attention_heads ({})", num_attention_heads));
    if (head_dim % 2 != 0) c.fail_key("head_dim", "an even integer");
    if (!is_known_activation(hidden_activation)) c.fail_key("hidden_activation", "gelu_pytorch_tanh, gelu, silu or relu");
    if (query_pre_attn_scalar <= 0) c.fail_key("query_pre_attn_scalar", "a positive number");
    if (c.boolean("use_bidirectional_attention", false))
      c.fail_key("use_bidirectional_attention", "false or absent (lorakit trains causal LMs)");
    rope = read_rope_config(c, 10000.0, 1.0, max_position_embeddings);
    const bool null_window = c.raw().contains("sliding_window") && c.raw()["sliding_window"].is_null();
    sliding_window = null_window ? 0 : c.integer("sliding_window", 4096);
    sliding.assign(num_hidden_layers, false);
    if (c.has("layer_types")) {
      const auto types = c.string_list("layer_types");
      if (static_cast<int64_t>(types.size()) != num_hidden_layers)
        c.fail_key("layer_types", fmt::format("a list of {} entries (num_hidden_layers)", num_hidden_layers));
      for (size_t i = 0; i < types.size(); ++i) {
        if (types[i] != "full_attention" && types[i] != "sliding_attention")
          c.fail_key("layer_types", "entries 'full_attention' or 'sliding_attention'");
        sliding[i] = types[i] == "sliding_attention";
      }
    } else {
      for (int64_t i = 0; i < num_hidden_layers; ++i) sliding[i] = (i + 1) % 2 != 0;  // HF: even layers slide
    }
  }
};

struct Gemma2Layer {
  at::Tensor input_layernorm, post_attention_layernorm, pre_feedforward_layernorm, post_feedforward_layernorm;  // (C)
  Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

class Gemma2ForCausalLM final : public CausalLM {
 public:
  explicit Gemma2ForCausalLM(const JsonReader& config) : cfg_(config) {
    const auto& c = cfg_;
    const int64_t C = c.hidden_size, D = c.head_dim;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      Gemma2Layer layer;
      layer.q_proj = Linear(C, c.num_attention_heads * D, c.attention_bias);
      layer.k_proj = Linear(C, c.num_key_value_heads * D, c.attention_bias);
      layer.v_proj = Linear(C, c.num_key_value_heads * D, c.attention_bias);
      layer.o_proj = Linear(c.num_attention_heads * D, C, c.attention_bias);
      layer.gate_proj = Linear(C, c.intermediate_size, false);
      layer.up_proj = Linear(C, c.intermediate_size, false);
      layer.down_proj = Linear(c.intermediate_size, C, false);
      layers_.push_back(std::move(layer));
    }
    lm_head_ = Linear(C, c.vocab_size, false);
    rotary_ = Rotary(D, c.rope, c.max_position_embeddings);
  }

  ArchSummary summary() const override {
    const auto& c = cfg_;
    nlohmann::ordered_json facts = {
        {"num_hidden_layers", c.num_hidden_layers},
        {"hidden_size", c.hidden_size},
        {"num_attention_heads", c.num_attention_heads},
        {"num_key_value_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim},
        {"intermediate_size", c.intermediate_size},
        {"hidden_activation", c.hidden_activation},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rope_theta", c.rope.rope_theta},
        {"query_pre_attn_scalar", c.query_pre_attn_scalar},
        {"attn_logit_softcapping", c.attn_logit_softcapping},
        {"final_logit_softcapping", c.final_logit_softcapping},
        {"sliding_window", c.sliding_window == 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(c.sliding_window)},
        {"sliding_layers", std::count(c.sliding.begin(), c.sliding.end(), true)},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"norm", "sandwich (1 + weight) RMSNorm, four per layer"},
    };
    return {"gemma2", "Gemma2ForCausalLM", c.dtype, facts, {"q_proj", "v_proj"}};
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }

  void visit(ParamVisitor& v) override {
    const int64_t C = cfg_.hidden_size;
    v.tensor("model.embed_tokens.weight", embed_tokens_, {cfg_.vocab_size, C});
    for (size_t i = 0; i < layers_.size(); ++i) {
      auto& l = layers_[i];
      const std::string p = fmt::format("model.layers.{}.", i);
      v.tensor(p + "input_layernorm.weight", l.input_layernorm, {C});
      v.linear(p + "self_attn.q_proj", l.q_proj);
      v.linear(p + "self_attn.k_proj", l.k_proj);
      v.linear(p + "self_attn.v_proj", l.v_proj);
      v.linear(p + "self_attn.o_proj", l.o_proj);
      v.tensor(p + "post_attention_layernorm.weight", l.post_attention_layernorm, {C});
      v.tensor(p + "pre_feedforward_layernorm.weight", l.pre_feedforward_layernorm, {C});
      v.linear(p + "mlp.gate_proj", l.gate_proj);
      v.linear(p + "mlp.up_proj", l.up_proj);
      v.linear(p + "mlp.down_proj", l.down_proj);
      v.tensor(p + "post_feedforward_layernorm.weight", l.post_feedforward_layernorm, {C});
    }
    v.tensor("model.norm.weight", norm_, {C});
    if (!cfg_.tie_word_embeddings) v.linear("lm_head", lm_head_);
  }

  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return cfg_.tie_word_embeddings && name == "lm_head.weight";
  }

  // Scaled inside the embedding, as transformers 5's Gemma2TextScaledWordEmbedding.
  at::Tensor embed(const at::Tensor& input_ids) const override {
    const at::Tensor e = at::embedding(embed_tokens_, input_ids);  // (B, T, C)
    return e * at::scalar_tensor(std::sqrt(static_cast<double>(cfg_.hidden_size)), e.options());
  }

  at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const override {
    const int64_t B = embeds.size(0), T = embeds.size(1), D = cfg_.head_dim;
    const int64_t past = cache ? cache->length : 0;
    const double eps = cfg_.rms_norm_eps;
    const at::Tensor positions = token_positions(layout, T, past, embeds.options());  // (B or 1, T)
    at::Tensor cos, sin;  // not a structured binding: the layer lambdas capture them (clang 14)
    std::tie(cos, sin) = rotary_.cos_sin(positions, embeds.scalar_type());                 // (B or 1, T, D)
    const AttentionMask full_mask = build_attention_mask(layout, T, past, 0, embeds.options());
    const AttentionMask sliding_mask =
        cfg_.sliding_window > 0 ? build_attention_mask(layout, T, past, cfg_.sliding_window, embeds.options()) : full_mask;
    const double scale = 1.0 / std::sqrt(cfg_.query_pre_attn_scalar);

    at::Tensor h = embeds;  // (B, T, C)
    for (size_t i = 0; i < layers_.size(); ++i) {
      // One decoder layer; captures by value so it can rerun in the backward (activation recompute).
      const auto block = [=, this](const at::Tensor& x) {
        const auto& l = layers_[i];
        const at::Tensor n = gemma_rms_norm(x, l.input_layernorm, eps);
        at::Tensor q = apply_rope(l.q_proj.forward(n).view({B, T, -1, D}).transpose(1, 2), cos, sin);  // (B, H, T, D)
        at::Tensor k = apply_rope(l.k_proj.forward(n).view({B, T, -1, D}).transpose(1, 2), cos, sin);  // (B, Hkv, T, D)
        at::Tensor v = l.v_proj.forward(n).view({B, T, -1, D}).transpose(1, 2);                        // (B, Hkv, T, D)
        if (cache) std::tie(k, v) = append_kv(cache->keys, cache->values, i, k, v);  // (B, Hkv, past + T, D)
        const at::Tensor a = attention(q, k, v, cfg_.sliding[i] ? sliding_mask : full_mask, scale,
                                       cfg_.attn_logit_softcapping);  // (B, T, H*D)
        const at::Tensor y = x + gemma_rms_norm(l.o_proj.forward(a), l.post_attention_layernorm, eps);
        const at::Tensor m = gemma_rms_norm(y, l.pre_feedforward_layernorm, eps);
        const at::Tensor f =
            l.down_proj.forward(activation(cfg_.hidden_activation, l.gate_proj.forward(m)) * l.up_proj.forward(m));
        return y + gemma_rms_norm(f, l.post_feedforward_layernorm, eps);
      };
      h = recompute_ && !cache ? recompute_in_backward(block, h) : block(h);
    }
    if (cache) cache->length += T;
    return gemma_rms_norm(h, norm_, eps);  // (B, T, C)
  }

  // Soft-capped in the logits' dtype, before any loss upcast.
  at::Tensor lm_head(const at::Tensor& h) const override {
    at::Tensor logits = cfg_.tie_word_embeddings ? at::linear(h, embed_tokens_) : lm_head_.forward(h);  // (..., V)
    if (cfg_.final_logit_softcapping <= 0) return logits;
    return at::tanh(logits / cfg_.final_logit_softcapping) * cfg_.final_logit_softcapping;
  }

 private:
  Gemma2Config cfg_;
  at::Tensor embed_tokens_;  // (V, C)
  std::vector<Gemma2Layer> layers_;
  at::Tensor norm_;  // (C)
  Linear lm_head_;   // unused when tied
  Rotary rotary_;
};

}  // namespace

std::unique_ptr<CausalLM> create_gemma2(const JsonReader& config) {
  return std::make_unique<Gemma2ForCausalLM>(config);
}

}  // namespace lorakit
