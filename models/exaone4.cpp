// EXAONE 4.0 (`model_type: exaone4`), mirroring transformers' models/exaone4/modeling_exaone4.py.
// Differs from Llama in three ways: no pre-norm (RMSNorm is applied to each sub-layer's output
// before the residual add: "QK-Reorder-Norm"), a per-head RMSNorm on q and k right after their
// projections, and hybrid attention in the larger models (sliding-window layers with RoPE, global
// layers without it). EXAONE-4.0-1.2B has no sliding window, so every layer is global with RoPE,
// llama3 rope scaling and embeddings tied to lm_head.
#include <tuple>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>

#include "core/error.h"
#include "models/model.h"

namespace lorakit {

namespace {

// config.json keys, HF's names; defaults are Exaone4Config's where a key may be absent.
struct Exaone4Config {
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
      num_key_value_heads, head_dim, max_position_embeddings;
  std::string hidden_act;
  double rms_norm_eps;
  RopeConfig rope;
  int64_t sliding_window;  // 0 when null
  std::vector<std::string> layer_types;
  bool tie_word_embeddings;
  std::string dtype;

  explicit Exaone4Config(const JsonReader& c) {
    vocab_size = c.integer("vocab_size", 102400);
    hidden_size = c.integer("hidden_size", 4096);
    intermediate_size = c.integer("intermediate_size", 16384);
    num_hidden_layers = c.integer("num_hidden_layers", 32);
    num_attention_heads = c.integer("num_attention_heads", 32);
    num_key_value_heads = c.integer("num_key_value_heads", 32);
    max_position_embeddings = c.integer("max_position_embeddings", 2048);
    hidden_act = c.string("hidden_act", "silu");
    rms_norm_eps = c.number("rms_norm_eps", 1e-5);
    tie_word_embeddings = c.boolean("tie_word_embeddings", false);
    dtype = read_config_dtype(c);
    for (auto [key, value] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                              {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_hidden_layers},
                              {"num_attention_heads", num_attention_heads},
                              {"num_key_value_heads", num_key_value_heads}})
      check_config_size(c, key, value);
    if (num_attention_heads % num_key_value_heads != 0)
      c.fail_key("num_key_value_heads", fmt::format("a divisor of num_attention_heads ({})", num_attention_heads));
    if (!c.has("head_dim") && hidden_size % num_attention_heads != 0)
      c.fail_key("hidden_size", fmt::format("a multiple of num_attention_heads ({})", num_attention_heads));
    head_dim = c.integer("head_dim", hidden_size / num_attention_heads);
    if (head_dim <= 0 || head_dim % 2 != 0) c.fail_key("head_dim", "a positive even integer");
    if (!is_known_activation(hidden_act)) c.fail_key("hidden_act", "silu, gelu, gelu_new or relu");
    rope = read_rope_config(c, 10000.0, 1.0, max_position_embeddings);

    // Sliding window: null means every layer is global (and uses RoPE). Otherwise layer_types,
    // or HF's derivation from sliding_window_pattern, says which layers are local.
    sliding_window = c.raw().contains("sliding_window") && c.raw()["sliding_window"].is_null()
                         ? 0
                         : c.integer("sliding_window", 4096);
    if (c.has("layer_types")) {
      layer_types = c.string_list("layer_types");
      if (static_cast<int64_t>(layer_types.size()) != num_hidden_layers)
        c.fail_key("layer_types", fmt::format("a list of {} entries (num_hidden_layers)", num_hidden_layers));
      for (const auto& type : layer_types)
        if (type != "full_attention" && type != "sliding_attention")
          c.fail_key("layer_types", "entries 'full_attention' or 'sliding_attention'");
    } else {
      int64_t pattern = sliding_window == 0 ? 0 : c.integer("sliding_window_pattern", 4);
      for (int64_t i = 0; i < num_hidden_layers; ++i)
        layer_types.push_back(pattern > 0 && (i + 1) % pattern != 0 ? "sliding_attention" : "full_attention");
    }
  }
};

struct Exaone4Layer {
  Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  at::Tensor q_norm, k_norm;  // (D)
  at::Tensor post_attention_layernorm, post_feedforward_layernorm;  // (C)
  bool is_sliding = false;
};

class Exaone4ForCausalLM final : public CausalLM {
 public:
  explicit Exaone4ForCausalLM(const JsonReader& config) : cfg_(config) {
    const auto& c = cfg_;
    const int64_t C = c.hidden_size, D = c.head_dim;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      Exaone4Layer layer;
      layer.q_proj = Linear(C, c.num_attention_heads * D, false);
      layer.k_proj = Linear(C, c.num_key_value_heads * D, false);
      layer.v_proj = Linear(C, c.num_key_value_heads * D, false);
      layer.o_proj = Linear(c.num_attention_heads * D, C, false);
      layer.gate_proj = Linear(C, c.intermediate_size, false);
      layer.up_proj = Linear(C, c.intermediate_size, false);
      layer.down_proj = Linear(c.intermediate_size, C, false);
      layer.is_sliding = c.layer_types[i] == "sliding_attention";
      layers_.push_back(std::move(layer));
    }
    lm_head_ = Linear(C, c.vocab_size, false);
    rotary_ = Rotary(static_cast<int64_t>(D * c.rope.partial_rotary_factor), c.rope, c.max_position_embeddings);
  }

  ArchSummary summary() const override {
    const auto& c = cfg_;
    int64_t sliding = std::count(c.layer_types.begin(), c.layer_types.end(), "sliding_attention");
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
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"norm", "post-sublayer RMSNorm + per-head q/k RMSNorm"},
    };
    return {"exaone4", "Exaone4ForCausalLM", c.dtype, facts, {"q_proj", "k_proj", "v_proj", "o_proj"}};
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }

  void visit(ParamVisitor& v) override {
    const int64_t C = cfg_.hidden_size, D = cfg_.head_dim;
    v.tensor("model.embed_tokens.weight", embed_tokens_, {cfg_.vocab_size, C});
    for (size_t i = 0; i < layers_.size(); ++i) {
      auto& l = layers_[i];
      std::string p = fmt::format("model.layers.{}.", i);
      v.linear(p + "self_attn.q_proj", l.q_proj);
      v.linear(p + "self_attn.k_proj", l.k_proj);
      v.linear(p + "self_attn.v_proj", l.v_proj);
      v.linear(p + "self_attn.o_proj", l.o_proj);
      v.tensor(p + "self_attn.q_norm.weight", l.q_norm, {D});
      v.tensor(p + "self_attn.k_norm.weight", l.k_norm, {D});
      v.linear(p + "mlp.gate_proj", l.gate_proj);
      v.linear(p + "mlp.up_proj", l.up_proj);
      v.linear(p + "mlp.down_proj", l.down_proj);
      v.tensor(p + "post_attention_layernorm.weight", l.post_attention_layernorm, {C});
      v.tensor(p + "post_feedforward_layernorm.weight", l.post_feedforward_layernorm, {C});
    }
    v.tensor("model.norm.weight", norm_, {C});
    if (!cfg_.tie_word_embeddings) v.linear("lm_head", lm_head_);
  }

  // A tied lm_head may still be stored; transformers ties it to the embeddings regardless.
  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return cfg_.tie_word_embeddings && name == "lm_head.weight";
  }

  at::Tensor embed(const at::Tensor& input_ids) const override { return at::embedding(embed_tokens_, input_ids); }

  at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const override {
    const int64_t B = embeds.size(0), T = embeds.size(1), D = cfg_.head_dim;
    const int64_t past = cache ? cache->length : 0;
    const at::Tensor positions = token_positions(layout, T, past, embeds.options());   // (B or 1, T)
    at::Tensor cos, sin;  // not a structured binding: the layer lambdas capture them (clang 14)
    std::tie(cos, sin) = rotary_.cos_sin(positions, embeds.scalar_type());                  // (B or 1, T, D)
    const AttentionMask full_mask = build_attention_mask(layout, T, past, 0, embeds.options());
    const AttentionMask sliding_mask =
        cfg_.sliding_window > 0 ? build_attention_mask(layout, T, past, cfg_.sliding_window, embeds.options()) : full_mask;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));

    at::Tensor h = embeds;  // (B, T, C)
    for (size_t i = 0; i < layers_.size(); ++i) {
      // One decoder layer; captures by value so it can rerun in the backward (activation recompute).
      const auto block = [=, this](const at::Tensor& x) {
        const auto& l = layers_[i];
        // Attention on the raw residual stream; RoPE after the q/k norms, skipped on global
        // layers of hybrid models (sliding_window set and the layer not sliding).
        at::Tensor q = l.q_proj.forward(x).view({B, T, -1, D}).transpose(1, 2);  // (B, H, T, D)
        at::Tensor k = l.k_proj.forward(x).view({B, T, -1, D}).transpose(1, 2);  // (B, Hkv, T, D)
        at::Tensor v = l.v_proj.forward(x).view({B, T, -1, D}).transpose(1, 2);  // (B, Hkv, T, D)
        q = rms_norm(q, l.q_norm, cfg_.rms_norm_eps);
        k = rms_norm(k, l.k_norm, cfg_.rms_norm_eps);
        if (cfg_.sliding_window == 0 || l.is_sliding) {
          q = apply_rope(q, cos, sin);
          k = apply_rope(k, cos, sin);
        }
        if (cache) std::tie(k, v) = append_kv(cache->keys, cache->values, i, k, v);  // (B, Hkv, past + T, D)
        at::Tensor a = attention(q, k, v, l.is_sliding ? sliding_mask : full_mask, scale);  // (B, T, H*D)
        at::Tensor y = x + rms_norm(l.o_proj.forward(a), l.post_attention_layernorm, cfg_.rms_norm_eps);
        at::Tensor m = l.down_proj.forward(activation(cfg_.hidden_act, l.gate_proj.forward(y)) * l.up_proj.forward(y));
        return y + rms_norm(m, l.post_feedforward_layernorm, cfg_.rms_norm_eps);
      };
      h = recompute_ && !cache ? recompute_in_backward(block, h) : block(h);
    }
    if (cache) cache->length += T;
    return rms_norm(h, norm_, cfg_.rms_norm_eps);  // (B, T, C)
  }

  at::Tensor lm_head(const at::Tensor& h) const override {
    if (cfg_.tie_word_embeddings) return at::linear(h, embed_tokens_);  // (..., V)
    return lm_head_.forward(h);
  }

 private:
  Exaone4Config cfg_;
  at::Tensor embed_tokens_;  // (V, C)
  std::vector<Exaone4Layer> layers_;
  at::Tensor norm_;  // (C)
  Linear lm_head_;   // unused when tied
  Rotary rotary_;
};

}  // namespace

std::unique_ptr<CausalLM> create_exaone4(const JsonReader& config) {
  return std::make_unique<Exaone4ForCausalLM>(config);
}

}  // namespace lorakit
