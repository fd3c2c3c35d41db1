// GPT-NeoX (`model_type: gpt_neox`, e.g. EleutherAI/polyglot-ko-1.3b), mirroring transformers'
// models/gpt_neox/modeling_gpt_neox.py. Differs from Llama: LayerNorm with bias instead of
// RMSNorm, biases on every projection, one fused `query_key_value` projection laid out per head
// (q, k, v of head 0, then of head 1, ...), RoPE on only the first rotary_pct of each head, exact
// GELU, a parallel residual (x + attn(ln1(x)) + mlp(ln2(x))) by default, and an untied `embed_out`.
// Checkpoints from 2022-era transformers carry buffers (attention.bias, attention.masked_bias,
// attention.rotary_emb.inv_freq) that are dropped on load.
#include <tuple>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>

#include "core/error.h"
#include "models/model.h"

namespace lorakit {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct GPTNeoXConfig {
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, head_size,
      rotary_ndims, max_position_embeddings;
  std::string hidden_act;
  double layer_norm_eps;
  RopeConfig rope;
  bool use_parallel_residual, attention_bias, tie_word_embeddings;
  std::string dtype;

  explicit GPTNeoXConfig(const JsonReader& c) {
    vocab_size = c.integer("vocab_size", 50432);
    hidden_size = c.integer("hidden_size", 6144);
    intermediate_size = c.integer("intermediate_size", 24576);
    num_hidden_layers = c.integer("num_hidden_layers", 44);
    num_attention_heads = c.integer("num_attention_heads", 64);
    max_position_embeddings = c.integer("max_position_embeddings", 2048);
    hidden_act = c.string("hidden_act", "gelu");
    layer_norm_eps = c.number("layer_norm_eps", 1e-5);
    use_parallel_residual = c.boolean("use_parallel_residual", true);
    attention_bias = c.boolean("attention_bias", true);
    tie_word_embeddings = c.boolean("tie_word_embeddings", false);
    dtype = read_config_dtype(c);
    for (auto [key, value] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                              {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_hidden_layers},
                              {"num_attention_heads", num_attention_heads}})
      check_config_size(c, key, value);
    if (hidden_size % num_attention_heads != 0)
      c.fail_key("hidden_size", fmt::format("a multiple of num_attention_heads ({})", num_attention_heads));
    if (!is_known_activation(hidden_act)) c.fail_key("hidden_act", "gelu, gelu_new, silu or relu");
    head_size = hidden_size / num_attention_heads;
    // 4.x names (rotary_emb_base, rotary_pct) are the defaults 5.x's rope_parameters override.
    rope = read_rope_config(c, c.number("rotary_emb_base", 10000.0), c.number("rotary_pct", 0.25), max_position_embeddings);
    rotary_ndims = static_cast<int64_t>(head_size * rope.partial_rotary_factor);
    if (rotary_ndims <= 0 || rotary_ndims > head_size || rotary_ndims % 2 != 0)
      c.fail_key("rotary_pct", fmt::format("a fraction of head size {} giving an even number of dims", head_size));
  }
};

struct GPTNeoXLayer {
  at::Tensor input_layernorm_weight, input_layernorm_bias;                    // (C)
  at::Tensor post_attention_layernorm_weight, post_attention_layernorm_bias;  // (C)
  Linear query_key_value, dense, dense_h_to_4h, dense_4h_to_h;
};

class GPTNeoXForCausalLM final : public CausalLM {
 public:
  explicit GPTNeoXForCausalLM(const JsonReader& config) : cfg_(config) {
    const auto& c = cfg_;
    const int64_t C = c.hidden_size;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      GPTNeoXLayer layer;
      layer.query_key_value = Linear(C, 3 * C, c.attention_bias);
      layer.dense = Linear(C, C, c.attention_bias);
      layer.dense_h_to_4h = Linear(C, c.intermediate_size, true);
      layer.dense_4h_to_h = Linear(c.intermediate_size, C, true);
      layers_.push_back(std::move(layer));
    }
    embed_out_ = Linear(C, c.vocab_size, false);
    rotary_ = Rotary(c.rotary_ndims, c.rope, c.max_position_embeddings);
  }

  ArchSummary summary() const override {
    const auto& c = cfg_;
    nlohmann::ordered_json facts = {
        {"num_hidden_layers", c.num_hidden_layers},
        {"hidden_size", c.hidden_size},
        {"num_attention_heads", c.num_attention_heads},
        {"head_size", c.head_size},
        {"rotary_ndims", c.rotary_ndims},
        {"intermediate_size", c.intermediate_size},
        {"hidden_act", c.hidden_act},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rope_theta", c.rope.rope_theta},
        {"use_parallel_residual", c.use_parallel_residual},
        {"attention_bias", c.attention_bias},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"norm", "pre-norm LayerNorm"},
    };
    return {"gpt_neox", "GPTNeoXForCausalLM", c.dtype, facts, {"query_key_value"}};
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }

  void visit(ParamVisitor& v) override {
    const int64_t C = cfg_.hidden_size;
    v.tensor("gpt_neox.embed_in.weight", embed_in_, {cfg_.vocab_size, C});
    for (size_t i = 0; i < layers_.size(); ++i) {
      auto& l = layers_[i];
      std::string p = fmt::format("gpt_neox.layers.{}.", i);
      v.tensor(p + "input_layernorm.weight", l.input_layernorm_weight, {C});
      v.tensor(p + "input_layernorm.bias", l.input_layernorm_bias, {C});
      v.tensor(p + "post_attention_layernorm.weight", l.post_attention_layernorm_weight, {C});
      v.tensor(p + "post_attention_layernorm.bias", l.post_attention_layernorm_bias, {C});
      v.linear(p + "attention.query_key_value", l.query_key_value);
      v.linear(p + "attention.dense", l.dense);
      v.linear(p + "mlp.dense_h_to_4h", l.dense_h_to_4h);
      v.linear(p + "mlp.dense_4h_to_h", l.dense_4h_to_h);
    }
    v.tensor("gpt_neox.final_layer_norm.weight", final_layer_norm_weight_, {C});
    v.tensor("gpt_neox.final_layer_norm.bias", final_layer_norm_bias_, {C});
    if (!cfg_.tie_word_embeddings) v.linear("embed_out", embed_out_);
  }

  bool ignores_checkpoint_tensor(const std::string& name) const override {
    if (cfg_.tie_word_embeddings && name == "embed_out.weight") return true;
    return name.starts_with("gpt_neox.layers.") &&
           (ends_with(name, ".attention.bias") || ends_with(name, ".attention.masked_bias") ||
            ends_with(name, ".attention.rotary_emb.inv_freq"));
  }

  at::Tensor embed(const at::Tensor& input_ids) const override { return at::embedding(embed_in_, input_ids); }

  at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const override {
    const int64_t B = embeds.size(0), T = embeds.size(1), D = cfg_.head_size;
    const int64_t past = cache ? cache->length : 0;
    const at::Tensor positions = token_positions(layout, T, past, embeds.options());  // (B or 1, T)
    at::Tensor cos, sin;  // not a structured binding: the layer lambdas capture them (clang 14)
    std::tie(cos, sin) = rotary_.cos_sin(positions, embeds.scalar_type());         // (B or 1, T, rotary_ndims)
    const AttentionMask mask = build_attention_mask(layout, T, past, 0, embeds.options());
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));  // full head size, not rotary_ndims

    at::Tensor h = embeds;  // (B, T, C)
    for (size_t i = 0; i < layers_.size(); ++i) {
      // One decoder layer; captures by value so it can rerun in the backward (activation recompute).
      const auto block = [=, this](const at::Tensor& h) {
        const auto& l = layers_[i];
        at::Tensor x = layer_norm(h, l.input_layernorm_weight, l.input_layernorm_bias, cfg_.layer_norm_eps);
        // Fused projection, per head [q | k | v]: (B, T, 3C) -> (B, H, T, 3D) -> 3 x (B, H, T, D).
        at::Tensor qkv = l.query_key_value.forward(x).view({B, T, -1, 3 * D}).transpose(1, 2);
        at::Tensor q = apply_rope(qkv.slice(-1, 0, D), cos, sin);
        at::Tensor k = apply_rope(qkv.slice(-1, D, 2 * D), cos, sin);
        at::Tensor v = qkv.slice(-1, 2 * D);
        if (cache) std::tie(k, v) = append_kv(cache->keys, cache->values, i, k, v);  // (B, H, past + T, D)
        at::Tensor attn = l.dense.forward(attention(q, k, v, mask, scale));  // (B, T, C)
        if (cfg_.use_parallel_residual) {
          at::Tensor y = layer_norm(h, l.post_attention_layernorm_weight, l.post_attention_layernorm_bias, cfg_.layer_norm_eps);
          at::Tensor mlp = l.dense_4h_to_h.forward(activation(cfg_.hidden_act, l.dense_h_to_4h.forward(y)));
          return mlp + attn + h;  // HF's operand order
        }
        at::Tensor r = attn + h;
        at::Tensor y = layer_norm(r, l.post_attention_layernorm_weight, l.post_attention_layernorm_bias, cfg_.layer_norm_eps);
        return l.dense_4h_to_h.forward(activation(cfg_.hidden_act, l.dense_h_to_4h.forward(y))) + r;
      };
      h = recompute_ && !cache ? recompute_in_backward(block, h) : block(h);
    }
    if (cache) cache->length += T;
    return layer_norm(h, final_layer_norm_weight_, final_layer_norm_bias_, cfg_.layer_norm_eps);  // (B, T, C)
  }

  at::Tensor lm_head(const at::Tensor& h) const override {
    if (cfg_.tie_word_embeddings) return at::linear(h, embed_in_);  // (..., V)
    return embed_out_.forward(h);
  }

 private:
  GPTNeoXConfig cfg_;
  at::Tensor embed_in_;  // (V, C)
  std::vector<GPTNeoXLayer> layers_;
  at::Tensor final_layer_norm_weight_, final_layer_norm_bias_;  // (C)
  Linear embed_out_;
  Rotary rotary_;
};

}  // namespace

std::unique_ptr<CausalLM> create_gpt_neox(const JsonReader& config) {
  return std::make_unique<GPTNeoXForCausalLM>(config);
}

}  // namespace lorakit
