// GPT-2 (`model_type: gpt2`; KoGPT-2, skt/kogpt2-base-v2), mirroring transformers'
// models/gpt2/modeling_gpt2.py: learned position embeddings added to the token embeddings, pre-LN
// blocks with LayerNorm, a fused `c_attn` projection split into contiguous q | k | v, `gelu_new`, tied
// lm_head. Its projections are Conv1D modules whose weights are stored (in, out): their Linears say so
// (fan_in_fan_out), LoRA's delta is the same, and merging adds it transposed, as PEFT does. The
// legacy buffers old checkpoints carry (`attn.bias`, `attn.masked_bias`) are ignored.
#include <ATen/TensorOperators.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>

#include "core/error.h"
#include "models/model.h"

namespace lorakit {

namespace {

// config.json keys, HF's names (GPT2Config's attribute_map: n_embd = hidden_size, ...).
struct GPT2Config {
  int64_t vocab_size, n_positions, n_embd, n_layer, n_head, n_inner;
  std::string activation_function;
  double layer_norm_epsilon;
  bool scale_attn_weights, scale_attn_by_inverse_layer_idx, tie_word_embeddings;
  std::string dtype;

  explicit GPT2Config(const JsonReader& c) {
    vocab_size = c.integer("vocab_size", 50257);
    n_positions = c.integer("n_positions", 1024);
    n_embd = c.integer("n_embd", 768);
    n_layer = c.integer("n_layer", 12);
    n_head = c.integer("n_head", 12);
    n_inner = c.integer("n_inner", 4 * n_embd);
    activation_function = c.string("activation_function", "gelu_new");
    layer_norm_epsilon = c.number("layer_norm_epsilon", 1e-5);
    scale_attn_weights = c.boolean("scale_attn_weights", true);
    scale_attn_by_inverse_layer_idx = c.boolean("scale_attn_by_inverse_layer_idx", false);
    tie_word_embeddings = c.boolean("tie_word_embeddings", true);
    dtype = read_config_dtype(c);
    for (auto [key, value] : {std::pair{"vocab_size", vocab_size}, {"n_positions", n_positions}, {"n_embd", n_embd},
                              {"n_layer", n_layer}, {"n_head", n_head}, {"n_inner", n_inner}})
      check_config_size(c, key, value);
    if (n_embd % n_head != 0) c.fail_key("n_embd", fmt::format("a multiple of n_head ({})", n_head));
    if (!is_known_activation(activation_function)) c.fail_key("activation_function", "gelu_new, gelu, silu or relu");
    if (c.boolean("add_cross_attention", false)) c.fail_key("add_cross_attention", "false (a decoder-only GPT-2)");
  }
};

struct GPT2Block {
  at::Tensor ln_1_weight, ln_1_bias, ln_2_weight, ln_2_bias;  // (C)
  Linear c_attn, attn_c_proj, c_fc, mlp_c_proj;                // Conv1D: weights (in, out)
};

Linear conv1d(int64_t in, int64_t out) {
  Linear l(in, out, true);
  l.fan_in_fan_out = true;
  return l;
}

class GPT2LMHeadModel final : public CausalLM {
 public:
  explicit GPT2LMHeadModel(const JsonReader& config) : cfg_(config) {
    const int64_t C = cfg_.n_embd;
    for (int64_t i = 0; i < cfg_.n_layer; ++i)
      blocks_.push_back({{}, {}, {}, {}, conv1d(C, 3 * C), conv1d(C, C), conv1d(C, cfg_.n_inner), conv1d(cfg_.n_inner, C)});
    lm_head_ = Linear(C, cfg_.vocab_size, false);
  }

  ArchSummary summary() const override {
    const auto& c = cfg_;
    nlohmann::ordered_json facts = {
        {"n_layer", c.n_layer},
        {"n_embd", c.n_embd},
        {"n_head", c.n_head},
        {"head_dim", c.n_embd / c.n_head},
        {"n_inner", c.n_inner},
        {"activation_function", c.activation_function},
        {"vocab_size", c.vocab_size},
        {"n_positions", c.n_positions},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"norm", "pre-LN LayerNorm; Conv1D projections (fan_in_fan_out)"},
    };
    return {"gpt2", "GPT2LMHeadModel", c.dtype, facts, {"c_attn"}};
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }

  void visit(ParamVisitor& v) override {
    const int64_t C = cfg_.n_embd;
    v.tensor("transformer.wte.weight", wte_, {cfg_.vocab_size, C});
    v.tensor("transformer.wpe.weight", wpe_, {cfg_.n_positions, C});
    for (size_t i = 0; i < blocks_.size(); ++i) {
      auto& b = blocks_[i];
      const std::string p = fmt::format("transformer.h.{}.", i);
      v.tensor(p + "ln_1.weight", b.ln_1_weight, {C});
      v.tensor(p + "ln_1.bias", b.ln_1_bias, {C});
      v.linear(p + "attn.c_attn", b.c_attn);
      v.linear(p + "attn.c_proj", b.attn_c_proj);
      v.tensor(p + "ln_2.weight", b.ln_2_weight, {C});
      v.tensor(p + "ln_2.bias", b.ln_2_bias, {C});
      v.linear(p + "mlp.c_fc", b.c_fc);
      v.linear(p + "mlp.c_proj", b.mlp_c_proj);
    }
    v.tensor("transformer.ln_f.weight", ln_f_weight_, {C});
    v.tensor("transformer.ln_f.bias", ln_f_bias_, {C});
    if (!cfg_.tie_word_embeddings) v.linear("lm_head", lm_head_);
  }

  // The causal-mask buffers of older checkpoints, and a stored copy of the tied lm_head.
  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") ||
           (cfg_.tie_word_embeddings && name == "lm_head.weight");
  }

  at::Tensor embed(const at::Tensor& input_ids) const override { return at::embedding(wte_, input_ids); }

  at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const override {
    const int64_t B = embeds.size(0), T = embeds.size(1), H = cfg_.n_head, C = cfg_.n_embd, D = C / H;
    const int64_t past = cache ? cache->length : 0;
    if (past + T > cfg_.n_positions)
      fail("gpt2: {} positions past n_positions {} (the learned position table); hint: shorten data.max_seq_len or "
           "the generation", past + T, cfg_.n_positions);
    const at::Tensor positions = token_positions(layout, T, past, embeds.options());  // (B or 1, T)
    const AttentionMask mask = build_attention_mask(layout, T, past, 0, embeds.options());
    const double eps = cfg_.layer_norm_epsilon;

    at::Tensor h = embeds + at::embedding(wpe_, positions);  // (B, T, C)
    for (size_t i = 0; i < blocks_.size(); ++i) {
      double scale = cfg_.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(D)) : 1.0;
      if (cfg_.scale_attn_by_inverse_layer_idx) scale /= static_cast<double>(i + 1);
      // One block; captures by value so it can rerun in the backward (activation recompute).
      const auto block = [=, this](const at::Tensor& x) {
        const auto& b = blocks_[i];
        const at::Tensor qkv = b.c_attn.forward(layer_norm(x, b.ln_1_weight, b.ln_1_bias, eps));  // (B, T, 3C)
        at::Tensor q = qkv.slice(-1, 0, C).view({B, T, H, D}).transpose(1, 2);                    // (B, H, T, D)
        at::Tensor k = qkv.slice(-1, C, 2 * C).view({B, T, H, D}).transpose(1, 2);
        at::Tensor v = qkv.slice(-1, 2 * C).view({B, T, H, D}).transpose(1, 2);
        if (cache) std::tie(k, v) = append_kv(cache->keys, cache->values, i, k, v);  // (B, H, past + T, D)
        const at::Tensor y = x + b.attn_c_proj.forward(attention(q, k, v, mask, scale));
        const at::Tensor m = layer_norm(y, b.ln_2_weight, b.ln_2_bias, eps);
        return y + b.mlp_c_proj.forward(activation(cfg_.activation_function, b.c_fc.forward(m)));
      };
      h = recompute_ && !cache ? recompute_in_backward(block, h) : block(h);
    }
    if (cache) cache->length += T;
    return layer_norm(h, ln_f_weight_, ln_f_bias_, eps);  // (B, T, C)
  }

  at::Tensor lm_head(const at::Tensor& h) const override {
    if (cfg_.tie_word_embeddings) return at::linear(h, wte_);  // (..., V)
    return lm_head_.forward(h);
  }

 private:
  GPT2Config cfg_;
  at::Tensor wte_, wpe_;  // (V, C), (n_positions, C)
  std::vector<GPT2Block> blocks_;
  at::Tensor ln_f_weight_, ln_f_bias_;  // (C)
  Linear lm_head_;                      // unused when tied
};

}  // namespace

std::unique_ptr<CausalLM> create_gpt2(const JsonReader& config) {
  return std::make_unique<GPT2LMHeadModel>(config);
}

}  // namespace lorakit
