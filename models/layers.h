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

namespace lorakit {

// What an adapter (LoRA, in lora/) adds to a Linear's output. Models never mention LoRA.
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  virtual at::Tensor delta(const at::Tensor& x) const = 0;  // (..., in) -> (..., out)
};

// The single choke point for projections: y = x W^T + b; if (adapter) y += adapter->delta(x).
struct Linear {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool has_bias = false;
  at::Tensor weight;  // (out, in)
  at::Tensor bias;    // (out) or undefined
  std::shared_ptr<LinearAdapter> adapter;

  Linear() = default;
  Linear(int64_t in, int64_t out, bool bias) : in_features(in), out_features(out), has_bias(bias) {}
  at::Tensor forward(const at::Tensor& x) const;
};

// transformers' LlamaRMSNorm family: statistics in float32, cast back, then times weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// nn.LayerNorm in the model dtype.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// The activations HF names in `hidden_act` that lorakit supports.
at::Tensor activation(const std::string& name, const at::Tensor& x);
bool is_known_activation(const std::string& name);

// RoPE inverse frequencies (dim/2,), float32, as HF computes them.
struct RopeScaling {
  std::string rope_type = "default";  // "default" or "llama3"
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};
at::Tensor rope_inv_freq(int64_t dim, double theta, const RopeScaling& scaling);

// cos, sin: (B or 1, T, dim) in `dtype`, from positions (B or 1, T) and inv_freq (dim/2,).
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions, const at::Tensor& inv_freq,
                                               at::ScalarType dtype);
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
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionMask& mask,
                     double scale);

// y = block(x), keeping only x for the backward, which reruns the block (activation recompute).
// `block` must capture what it uses by value. Without grad mode it is a plain call.
at::Tensor recompute_in_backward(std::function<at::Tensor(const at::Tensor&)> block, const at::Tensor& x);

}  // namespace lorakit
