// RWKV-4 (`model_type: rwkv`; KoAlpaca-KoRWKV-1.5B), mirroring transformers' models/rwkv/modeling_rwkv.py.
// Not attention: each block mixes every token with the previous one (token shift), then runs the WKV
// recurrence (time mixing, a decaying weighted average of past values with a bonus for the current
// token) and a squared-ReLU channel mix. The state (last inputs of both mixes, the WKV numerator,
// denominator and running maximum, per layer) replaces the KV cache in generation. No positions and
// no attention mask: padding must come after a row's tokens (right padding), and packed rows are
// refused. The recurrence is transformers' CPU form (float32 state, the stable max trick), a loop
// over time in ATen ops; a fused kernel would go in `wkv` below.
//
// rescale_every: transformers' eval mode divides the `attention.output` and `feed_forward.value`
// weights of block b by 2^(b // rescale_every) and halves the hidden state after every
// rescale_every-th block (fp16 headroom; LayerNorm makes it nearly invariant). lorakit does the same
// whenever it runs without gradients (evaluation, generation, merge checks), to the whole projection
// output: PEFT's unmerged eval leaves the LoRA delta unscaled, which no merged checkpoint can match.
#include <cmath>

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>

#include "core/error.h"
#include "models/model.h"

namespace lorakit {

namespace {

// config.json keys, HF's names; defaults are RwkvConfig's.
struct RwkvConfig {
  int64_t vocab_size, context_length, hidden_size, num_hidden_layers, attention_hidden_size, intermediate_size,
      rescale_every;
  double layer_norm_epsilon;
  bool tie_word_embeddings;
  std::string dtype;

  explicit RwkvConfig(const JsonReader& c) {
    vocab_size = c.integer("vocab_size", 50277);
    context_length = c.integer("context_length", 1024);
    hidden_size = c.integer("hidden_size", 4096);
    num_hidden_layers = c.integer("num_hidden_layers", 32);
    attention_hidden_size = c.integer("attention_hidden_size", hidden_size);
    intermediate_size = c.integer("intermediate_size", 4 * hidden_size);
    rescale_every = c.integer("rescale_every", 6);
    layer_norm_epsilon = c.number("layer_norm_epsilon", 1e-5);
    tie_word_embeddings = c.boolean("tie_word_embeddings", false);
    dtype = read_config_dtype(c);
    for (auto [key, value] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                              {"num_hidden_layers", num_hidden_layers}, {"attention_hidden_size", attention_hidden_size},
                              {"intermediate_size", intermediate_size}})
      check_config_size(c, key, value);
    if (rescale_every < 0) c.fail_key("rescale_every", "0 (off) or a positive integer");
  }
};

struct RwkvBlock {
  at::Tensor pre_ln_weight, pre_ln_bias;  // (C), block 0 only
  at::Tensor ln1_weight, ln1_bias, ln2_weight, ln2_bias;  // (C)
  at::Tensor time_decay, time_first;                      // (A)
  at::Tensor att_mix_key, att_mix_value, att_mix_receptance, ffn_mix_key, ffn_mix_receptance;  // (1, 1, C)
  Linear key, value, receptance, output;          // attention: C -> A, A -> C
  Linear ffn_key, ffn_receptance, ffn_value;      // feed_forward: C -> I, C -> C, I -> C
};

// x (B, T, C) shifted one token right: the previous token's input, or the state's for the first.
at::Tensor shifted(const at::Tensor& x, const at::Tensor& last) {
  const int64_t B = x.size(0), C = x.size(2);
  const at::Tensor first = last.defined() ? last.unsqueeze(1).to(x.scalar_type()) : at::zeros({B, 1, C}, x.options());
  return at::cat({first, x.slice(1, 0, x.size(1) - 1)}, 1);
}

at::Tensor mix(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& mu) { return x * mu + prev * (1 - mu); }

// The WKV recurrence, rwkv_linear_attention_cpu: k, v (B, T, A) -> (B, T, A) in k's dtype; the state
// (numerator, denominator, running max; float32 (B, A)) is updated in place when given.
at::Tensor wkv(const at::Tensor& time_decay, const at::Tensor& time_first, const at::Tensor& k, const at::Tensor& v,
               at::Tensor& num, at::Tensor& den, at::Tensor& running_max) {
  const at::Tensor w = -at::exp(time_decay);  // in the parameter's dtype, as HF
  std::vector<at::Tensor> out;
  out.reserve(k.size(1));
  for (int64_t t = 0; t < k.size(1); ++t) {
    const at::Tensor kt = k.select(1, t).to(at::kFloat), vt = v.select(1, t);
    const at::Tensor q = at::maximum(running_max, kt + time_first);
    at::Tensor e1 = at::exp(running_max - q), e2 = at::exp(kt + time_first - q);
    out.push_back(((e1 * num + e2 * vt) / (e1 * den + e2)).to(k.scalar_type()));
    const at::Tensor q2 = at::maximum(running_max + w, kt);
    e1 = at::exp(running_max + w - q2);
    e2 = at::exp(kt - q2);
    num = e1 * num + e2 * vt;
    den = e1 * den + e2;
    running_max = q2;
  }
  return at::stack(out, 1);  // (B, T, A)
}

class RwkvForCausalLM final : public CausalLM {
 public:
  explicit RwkvForCausalLM(const JsonReader& config) : cfg_(config) {
    const int64_t C = cfg_.hidden_size, A = cfg_.attention_hidden_size, I = cfg_.intermediate_size;
    for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
      RwkvBlock b;
      b.key = Linear(C, A, false);
      b.value = Linear(C, A, false);
      b.receptance = Linear(C, A, false);
      b.output = Linear(A, C, false);
      b.ffn_key = Linear(C, I, false);
      b.ffn_receptance = Linear(C, C, false);
      b.ffn_value = Linear(I, C, false);
      blocks_.push_back(std::move(b));
    }
    head_ = Linear(C, cfg_.vocab_size, false);
  }

  ArchSummary summary() const override {
    const auto& c = cfg_;
    nlohmann::ordered_json facts = {
        {"num_hidden_layers", c.num_hidden_layers},
        {"hidden_size", c.hidden_size},
        {"attention_hidden_size", c.attention_hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"vocab_size", c.vocab_size},
        {"context_length", c.context_length},
        {"rescale_every", c.rescale_every},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"norm", "LayerNorm; WKV recurrence (no attention, no positions)"},
    };
    return {"rwkv", "RwkvForCausalLM", c.dtype, facts, {"key", "value", "receptance", "output"}};
  }

  int64_t vocab_size() const override { return cfg_.vocab_size; }
  bool masks_padding() const override { return false; }

  void visit(ParamVisitor& v) override {
    const int64_t C = cfg_.hidden_size, A = cfg_.attention_hidden_size;
    v.tensor("rwkv.embeddings.weight", embeddings_, {cfg_.vocab_size, C});
    for (size_t i = 0; i < blocks_.size(); ++i) {
      auto& b = blocks_[i];
      const std::string p = fmt::format("rwkv.blocks.{}.", i);
      if (i == 0) {
        v.tensor(p + "pre_ln.weight", b.pre_ln_weight, {C});
        v.tensor(p + "pre_ln.bias", b.pre_ln_bias, {C});
      }
      v.tensor(p + "ln1.weight", b.ln1_weight, {C});
      v.tensor(p + "ln1.bias", b.ln1_bias, {C});
      v.tensor(p + "ln2.weight", b.ln2_weight, {C});
      v.tensor(p + "ln2.bias", b.ln2_bias, {C});
      v.tensor(p + "attention.time_decay", b.time_decay, {A});
      v.tensor(p + "attention.time_first", b.time_first, {A});
      v.tensor(p + "attention.time_mix_key", b.att_mix_key, {1, 1, C});
      v.tensor(p + "attention.time_mix_value", b.att_mix_value, {1, 1, C});
      v.tensor(p + "attention.time_mix_receptance", b.att_mix_receptance, {1, 1, C});
      v.linear(p + "attention.key", b.key);
      v.linear(p + "attention.value", b.value);
      v.linear(p + "attention.receptance", b.receptance);
      v.linear(p + "attention.output", b.output);
      v.tensor(p + "feed_forward.time_mix_key", b.ffn_mix_key, {1, 1, C});
      v.tensor(p + "feed_forward.time_mix_receptance", b.ffn_mix_receptance, {1, 1, C});
      v.linear(p + "feed_forward.key", b.ffn_key);
      v.linear(p + "feed_forward.receptance", b.ffn_receptance);
      v.linear(p + "feed_forward.value", b.ffn_value);
    }
    v.tensor("rwkv.ln_out.weight", ln_out_weight_, {C});
    v.tensor("rwkv.ln_out.bias", ln_out_bias_, {C});
    if (!cfg_.tie_word_embeddings) v.linear("head", head_);
  }

  bool ignores_checkpoint_tensor(const std::string& name) const override {
    return cfg_.tie_word_embeddings && name == "head.weight";
  }

  at::Tensor embed(const at::Tensor& input_ids) const override { return at::embedding(embeddings_, input_ids); }

  at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const override {
    if (layout.sequence_ids.defined())
      fail("rwkv: packed rows would carry one example's state into the next; hint: set train.packing: false");
    const int64_t T = embeds.size(1);
    const bool rescale = cfg_.rescale_every > 0 && !at::GradMode::is_enabled();
    if (cache && cache->state.empty()) cache->state.resize(5 * blocks_.size());
    at::Tensor h = embeds;  // (B, T, C)
    for (size_t i = 0; i < blocks_.size(); ++i) {
      if (i == 0) h = layer_norm(h, blocks_[0].pre_ln_weight, blocks_[0].pre_ln_bias, cfg_.layer_norm_epsilon);
      // Without a cache the block starts from a zero state, so it can rerun in the backward.
      if (recompute_ && !cache)
        h = recompute_in_backward([=, this](const at::Tensor& x) { return block(i, x, nullptr, rescale); }, h);
      else
        h = block(i, h, cache ? &cache->state[5 * i] : nullptr, rescale);
      if (rescale && (static_cast<int64_t>(i) + 1) % cfg_.rescale_every == 0) h = h / 2;
    }
    if (cache) cache->length += T;
    return layer_norm(h, ln_out_weight_, ln_out_bias_, 1e-5);  // (B, T, C); ln_out keeps LayerNorm's default eps
  }

  at::Tensor lm_head(const at::Tensor& h) const override {
    if (cfg_.tie_word_embeddings) return at::linear(h, embeddings_);  // (..., V)
    return head_.forward(h);
  }

 private:
  // Block i on h (B, T, C) after pre_ln. `s`: the layer's 5 state tensors [feed-forward shift,
  // attention shift, num, den, max], updated in place; null: a zero state of its own.
  at::Tensor block(size_t i, const at::Tensor& h_in, at::Tensor* s, bool rescale) const {
    const auto& b = blocks_[i];
    const int64_t B = h_in.size(0), T = h_in.size(1), A = cfg_.attention_hidden_size;
    const double eps = cfg_.layer_norm_epsilon;
    at::Tensor local[5];
    if (!s) s = local;
    if (!s[2].defined()) {  // a fresh state: transformers' -1e38 without a cache, -1e30 with one
      const auto f32 = h_in.options().dtype(at::kFloat);
      s[2] = at::zeros({B, A}, f32);
      s[3] = at::zeros({B, A}, f32);
      s[4] = at::full({B, A}, s == local ? -1e38 : -1e30, f32);
    }
    const double scale = rescale ? std::ldexp(1.0, -static_cast<int>(static_cast<int64_t>(i) / cfg_.rescale_every)) : 1.0;
    at::Tensor h = h_in;
    // Time mix on ln1(h) and its shifted copy.
    const at::Tensor x = layer_norm(h, b.ln1_weight, b.ln1_bias, eps);
    const at::Tensor xp = shifted(x, s[1]);
    const at::Tensor k = b.key.forward(mix(x, xp, b.att_mix_key));                             // (B, T, A)
    const at::Tensor v = b.value.forward(mix(x, xp, b.att_mix_value));                         // (B, T, A)
    const at::Tensor r = at::sigmoid(b.receptance.forward(mix(x, xp, b.att_mix_receptance)));  // (B, T, A)
    const at::Tensor att = b.output.forward(r * wkv(b.time_decay, b.time_first, k, v, s[2], s[3], s[4]));
    h = h + (scale == 1.0 ? att : att * scale);
    // Channel mix on ln2(h).
    const at::Tensor y = layer_norm(h, b.ln2_weight, b.ln2_bias, eps);
    const at::Tensor yp = shifted(y, s[0]);
    const at::Tensor kk = at::relu(b.ffn_key.forward(mix(y, yp, b.ffn_mix_key))).pow(2);  // (B, T, I)
    const at::Tensor ffn = at::sigmoid(b.ffn_receptance.forward(mix(y, yp, b.ffn_mix_receptance))) * b.ffn_value.forward(kk);
    s[1] = x.select(1, T - 1);  // (B, C): the last normalised inputs, for the next chunk's shift
    s[0] = y.select(1, T - 1);
    return h + (scale == 1.0 ? ffn : ffn * scale);
  }

  RwkvConfig cfg_;
  at::Tensor embeddings_;  // (V, C)
  std::vector<RwkvBlock> blocks_;
  at::Tensor ln_out_weight_, ln_out_bias_;  // (C)
  Linear head_;                              // unused when tied
};

}  // namespace

std::unique_ptr<CausalLM> create_rwkv(const JsonReader& config) {
  return std::make_unique<RwkvForCausalLM>(config);
}

}  // namespace lorakit
