// Building blocks shared by the architectures: the one Linear where adapters act, norms, rotary
// tables and attention (the loss is models/loss.h). Numerics mirror transformers' eager path (norm
// statistics, rotary tables, softmax and loss in float32; everything else in the model dtype).
// Shapes: B batch, T tokens, C hidden, H query heads, Hkv key/value heads, D head dim, V vocab.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "quant/bnb_4bit.h"

namespace lorakit {

// What an adapter (LoRA, in lora/) adds to a Linear's output. Models never mention LoRA.
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  virtual at::Tensor delta(const at::Tensor& x) const = 0;  // (..., in) -> (..., out)
};

// The single choke point for projections: y = x W^T + b; if (adapter) y += adapter->delta(x). A
// QLoRA base holds W in 4 bits (weight_4bit, `weight` undefined) and dequantizes it per product.
struct Linear {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool has_bias = false;
  bool fan_in_fan_out = false;  // weight stored (in, out), as GPT-2's Conv1D (PEFT's fan_in_fan_out)
  at::Tensor weight;  // (out, in), or (in, out) with fan_in_fan_out
  at::Tensor bias;    // (out) or undefined
  std::shared_ptr<const quant::Weight4bit> weight_4bit;  // the frozen (out, in) weight in NF4/FP4, or null
  std::shared_ptr<LinearAdapter> adapter;

  Linear() = default;
  Linear(int64_t in, int64_t out, bool bias) : in_features(in), out_features(out), has_bias(bias) {}
  at::Tensor forward(const at::Tensor& x) const;
  c10::Device device() const;
  // W as the product uses it: `weight`, or the 4-bit weight dequantized (out, in) in its dtype.
  at::Tensor dense_weight() const;
};

// transformers' LlamaRMSNorm family: statistics in float32, cast back, then times weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// GemmaRMSNorm: the same statistics, times (1 + weight) in float32, then cast back.
at::Tensor gemma_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// nn.LayerNorm in the model dtype.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// The activations HF names in `hidden_act` that lorakit supports.
at::Tensor activation(const std::string& name, const at::Tensor& x);
bool is_known_activation(const std::string& name);

// RoPE settings from either config shape (models/model.h reads them): the base, the rotated
// fraction, and the scaling type with its parameters, as transformers' modeling_rope_utils names them.
struct RopeScaling {
  std::string rope_type = "default";  // default, linear, dynamic, llama3 or yarn
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 0;          // llama3, yarn
  double beta_fast = 32.0, beta_slow = 1.0;               // yarn
  std::optional<double> attention_factor;                 // yarn; else from factor, mscale, mscale_all_dim
  double mscale = 0.0, mscale_all_dim = 0.0;              // yarn, 0 when absent
  bool truncate = true;                                   // yarn
};
struct RopeConfig {
  double rope_theta = 10000.0;
  double partial_rotary_factor = 1.0;
  RopeScaling scaling;
};

// RoPE inverse frequencies (dim/2,), float32, as HF computes them for rope_type; `seq_len` is what
// dynamic NTK scaling stretches to (it has no effect up to max_position_embeddings).
at::Tensor rope_inv_freq(int64_t dim, double theta, const RopeScaling& scaling, int64_t max_position_embeddings = 0,
                         int64_t seq_len = 0);
// The factor HF multiplies cos and sin by (yarn's attention factor; 1 for the other types).
double rope_attention_scaling(const RopeScaling& scaling);

// cos, sin: (B or 1, T, dim) in `dtype`, from positions (B or 1, T) and inv_freq (dim/2,).
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions, const at::Tensor& inv_freq,
                                               at::ScalarType dtype, double attention_scaling = 1.0);

// One model's rotary embedding, as transformers' *RotaryEmbedding: the inverse frequencies of its
// rope type, and for `dynamic` the recomputation when positions grow past the longest seen (and the
// reset below max_position_embeddings) that HF's dynamic_rope_update does, state included.
class Rotary {
 public:
  Rotary() = default;
  Rotary(int64_t dim, const RopeConfig& rope, int64_t max_position_embeddings);
  // positions (B or 1, T) -> cos, sin (B or 1, T, dim) in `dtype`.
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions, at::ScalarType dtype) const;

 private:
  int64_t dim_ = 0, max_position_embeddings_ = 0;
  RopeConfig rope_;
  double attention_scaling_ = 1.0;
  at::Tensor original_inv_freq_;          // (dim/2) float32
  mutable at::Tensor inv_freq_;           // dynamic: the current frequencies
  mutable int64_t max_seq_len_cached_ = 0;  // dynamic: the longest sequence seen since the last reset
};

// Rotate-half RoPE on the first cos.size(-1) dims of x: (B, H, T, D); the rest pass through.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Where each token of a (B, T) forward stands and which tokens it may attend to. The trainer and
// evaluation build it from a data::Batch, generation from its prompts; a bare attention mask
// converts to it.
struct TokenLayout {
  at::Tensor attention_mask;   // (B, past + T) 1 = token, 0 = padding; undefined: no padding
  at::Tensor position_ids;     // (B, T) int64; undefined: past, past + 1, ... in every row
  at::Tensor sequence_ids;     // (B, T) int64, packed rows: the example of each token (-1: padding);
                               // undefined: one example per row
  std::optional<bool> padded;  // whether attention_mask holds a 0, when the caller knows (no device sync)

  TokenLayout() = default;
  TokenLayout(at::Tensor mask) : attention_mask(std::move(mask)) {}  // NOLINT: implicit on purpose
};

// The rotary positions of a forward's T tokens after `past` cached ones: (B, T) from position_ids,
// else (1, T).
at::Tensor token_positions(const TokenLayout& layout, int64_t T, int64_t past, const at::TensorOptions& options);

// Which keys each of T queries (after `past` cached keys) may see: causal, padding keys hidden,
// packed examples kept apart (block-diagonal), and an optional sliding window (key j visible to
// query i iff i - window < j <= i). Built once per forward for the layers of one kind.
struct AttentionMask {
  at::Tensor additive;  // (B or 1, 1, T, past + T): 0 or the dtype's lowest; undefined: no mask tensor
  bool causal = true;   // without `additive`: causal (is_causal) or every key (one new query)
};
AttentionMask build_attention_mask(const TokenLayout& layout, int64_t T, int64_t past, int64_t sliding_window,
                                   const at::TensorOptions& options);

// Appends k, v (B, Hkv, T, D) to a layer's cache entries and returns the whole keys and values.
std::pair<at::Tensor, at::Tensor> append_kv(std::vector<at::Tensor>& keys, std::vector<at::Tensor>& values, size_t layer,
                                            const at::Tensor& k, const at::Tensor& v);

// The one attention entry point: softmax(q k^T * scale + mask) v with GQA, q (B, H, T, D), k/v
// (B, Hkv, S, D) -> (B, T, H*D), through SDPA: without a mask tensor its causal kernels (flash on
// CUDA); with one, the kernels that take a mask (memory-efficient on CUDA, the math path on the CPU).
// `softcap` > 0 (Gemma-2) caps the scores, softcap * tanh(s / softcap), before the mask: SDPA has no
// such hook, so that path materialises the (B, H, T, S) scores as transformers' eager attention does.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionMask& mask,
                     double scale, double softcap = 0.0);

// y = block(x), keeping only x for the backward, which reruns the block (activation recompute).
// `block` must capture what it uses by value. Without grad mode it is a plain call.
at::Tensor recompute_in_backward(std::function<at::Tensor(const at::Tensor&)> block, const at::Tensor& x);

}  // namespace lorakit
