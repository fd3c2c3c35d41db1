#include "models/layers.h"

#include <cmath>
#include <limits>
#include <numbers>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/repeat_interleave.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/tril.h>
#include <ATen/ops/triu.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include "core/error.h"

namespace lorakit {

at::Tensor Linear::forward(const at::Tensor& x) const {
  at::Tensor y = weight_4bit ? quant::linear_4bit(x, *weight_4bit, bias)
                             : at::linear(x, fan_in_fan_out ? weight.t() : weight, bias);  // (..., out)
  if (adapter) y = y + adapter->delta(x);
  return y;
}

c10::Device Linear::device() const { return weight_4bit ? weight_4bit->packed.device() : weight.device(); }

at::Tensor Linear::dense_weight() const { return weight_4bit ? weight_4bit->dequantize() : weight; }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

at::Tensor gemma_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (h * (1.0 + weight.to(at::kFloat))).to(x.scalar_type());
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

bool is_known_activation(const std::string& name) {
  return name == "silu" || name == "swish" || name == "gelu" || name == "gelu_new" || name == "gelu_pytorch_tanh" ||
         name == "relu";
}

at::Tensor activation(const std::string& name, const at::Tensor& x) {
  if (name == "silu" || name == "swish") return at::silu(x);
  if (name == "gelu") return at::gelu(x);  // exact erf GELU, as HF's "gelu"
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (name == "relu") return at::relu(x);
  fail("unknown activation '{}' (known: silu, gelu, gelu_new, gelu_pytorch_tanh, relu)", name);
}

at::Tensor rope_inv_freq(int64_t dim, double theta, const RopeScaling& scaling, int64_t max_position_embeddings,
                         int64_t seq_len) {
  // HF: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
  const at::Tensor exponent = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  const std::string& type = scaling.rope_type;
  const double factor = scaling.factor;
  if (type == "default") return 1.0 / at::pow(theta, exponent);
  if (type == "linear") return 1.0 / at::pow(theta, exponent) / factor;
  if (type == "dynamic") {
    // _compute_dynamic_ntk_parameters: the base grows with the sequence past max_position_embeddings
    // (float32 arithmetic, as HF does it on a tensor seq_len).
    const double max_pos = static_cast<double>(max_position_embeddings);
    at::Tensor len = at::scalar_tensor(static_cast<double>(std::max(seq_len, max_position_embeddings)), at::kFloat);
    at::Tensor base = theta * at::pow(factor * len / max_pos - (factor - 1), static_cast<double>(dim) / (dim - 2));
    return 1.0 / at::pow(base, exponent);
  }
  if (type == "yarn") {
    // _compute_yarn_parameters: interpolate the low frequencies, extrapolate the high ones, with a
    // linear ramp between the correction dims of beta_fast and beta_slow rotations.
    const double old_context = static_cast<double>(scaling.original_max_position_embeddings);
    const auto correction_dim = [&](double rotations) {
      return (dim * std::log(old_context / (rotations * 2 * std::numbers::pi))) / (2 * std::log(theta));
    };
    double low = correction_dim(scaling.beta_fast), high = correction_dim(scaling.beta_slow);
    if (scaling.truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;  // HF: prevent singularity
    const at::Tensor pos_freqs = at::pow(theta, exponent);
    const at::Tensor extrapolation = 1.0 / pos_freqs, interpolation = 1.0 / (factor * pos_freqs);
    const at::Tensor ramp = ((at::arange(dim / 2, at::kFloat) - low) / (high - low)).clamp(0, 1);
    const at::Tensor extrapolation_factor = 1 - ramp;
    return interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  if (type != "llama3")
    fail("unsupported rope_type '{}' (supported: default, linear, dynamic, llama3, yarn)", type);
  // transformers modeling_rope_utils._compute_llama3_parameters.
  const at::Tensor inv_freq = 1.0 / at::pow(theta, exponent);
  const double lo = scaling.low_freq_factor, hi = scaling.high_freq_factor;
  const double old_context = static_cast<double>(scaling.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / lo, high_freq_wavelen = old_context / hi;
  at::Tensor wavelen = 2 * std::numbers::pi / inv_freq;
  at::Tensor llama = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
  at::Tensor smooth = (old_context / wavelen - lo) / (hi - lo);
  at::Tensor smoothed = (1 - smooth) * llama / factor + smooth * llama;
  at::Tensor is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(is_medium, smoothed, llama);
}

double rope_attention_scaling(const RopeScaling& scaling) {
  if (scaling.rope_type != "yarn") return 1.0;
  if (scaling.attention_factor) return *scaling.attention_factor;
  const auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
  if (scaling.mscale != 0 && scaling.mscale_all_dim != 0)
    return mscale(scaling.factor, scaling.mscale) / mscale(scaling.factor, scaling.mscale_all_dim);
  return mscale(scaling.factor, 1.0);
}

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions, const at::Tensor& inv_freq,
                                               at::ScalarType dtype, double attention_scaling) {
  at::Tensor freqs = positions.unsqueeze(-1).to(at::kFloat) * inv_freq.to(positions.device());  // (B, T, dim/2)
  at::Tensor emb = at::cat({freqs, freqs}, -1);                                                // (B, T, dim)
  if (attention_scaling == 1.0) return {emb.cos().to(dtype), emb.sin().to(dtype)};
  return {(emb.cos() * attention_scaling).to(dtype), (emb.sin() * attention_scaling).to(dtype)};
}

Rotary::Rotary(int64_t dim, const RopeConfig& rope, int64_t max_position_embeddings)
    : dim_(dim), max_position_embeddings_(max_position_embeddings), rope_(rope),
      attention_scaling_(rope_attention_scaling(rope.scaling)),
      original_inv_freq_(rope_inv_freq(dim, rope.rope_theta, rope.scaling, max_position_embeddings)),
      inv_freq_(original_inv_freq_), max_seq_len_cached_(max_position_embeddings) {}

std::pair<at::Tensor, at::Tensor> Rotary::cos_sin(const at::Tensor& positions, at::ScalarType dtype) const {
  if (rope_.scaling.rope_type == "dynamic") {
    // dynamic_rope_update: grow past the longest sequence seen; back to the original frequencies once
    // a sequence fits max_position_embeddings again. One host read per forward (dynamic only).
    const int64_t seq_len = positions.max().item<int64_t>() + 1;
    const int64_t cached = max_seq_len_cached_;
    if (seq_len > cached) {
      inv_freq_ = rope_inv_freq(dim_, rope_.rope_theta, rope_.scaling, max_position_embeddings_, seq_len);
      max_seq_len_cached_ = seq_len;
    }
    if (seq_len < max_position_embeddings_ && cached > max_position_embeddings_) {
      inv_freq_ = original_inv_freq_;
      max_seq_len_cached_ = max_position_embeddings_;
    }
  }
  return rope_cos_sin(positions, inv_freq_, dtype, attention_scaling_);
}

namespace {

at::Tensor rotate_half(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

}  // namespace

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // (B, 1, T, dim)
  int64_t rotary_dim = cos.size(-1);
  if (rotary_dim == x.size(-1)) return x * c + rotate_half(x) * s;
  at::Tensor rot = x.slice(-1, 0, rotary_dim), pass = x.slice(-1, rotary_dim);
  return at::cat({rot * c + rotate_half(rot) * s, pass}, -1);
}

namespace {
double lowest_of(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? -3.3895313892515355e38    // torch.finfo(bfloat16).min
         : dtype == at::kHalf   ? -65504.0                  // torch.finfo(float16).min
         : dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                                : std::numeric_limits<float>::lowest();
}
}  // namespace

at::Tensor token_positions(const TokenLayout& layout, int64_t T, int64_t past, const at::TensorOptions& options) {
  if (layout.position_ids.defined()) return layout.position_ids.to(options.device(), at::kLong);  // (B, T)
  return at::arange(past, past + T, options.dtype(at::kLong)).unsqueeze(0);                      // (1, T)
}

AttentionMask build_attention_mask(const TokenLayout& layout, int64_t T, int64_t past, int64_t sliding_window,
                                   const at::TensorOptions& options) {
  const at::Tensor& keys = layout.attention_mask;
  const bool padded = keys.defined() && (layout.padded ? *layout.padded : !keys.all().item<bool>());
  const bool packed = layout.sequence_ids.defined();
  if (!padded && !packed && sliding_window <= 0) {
    if (past == 0) return {};                 // plain causal: SDPA's is_causal, no mask tensor
    if (T == 1) return {at::Tensor(), false};  // one new query sees every cached key
  }
  const int64_t S = past + T;
  const auto bools = options.dtype(at::kBool);
  // Query i (absolute position past + i) sees key j iff j <= past + i (and past + i - j < window).
  at::Tensor allowed = at::ones({T, S}, bools).tril(past);
  if (sliding_window > 0) allowed = allowed.logical_and(at::ones({T, S}, bools).triu(past - (sliding_window - 1)));
  at::Tensor mask = allowed.view({1, 1, T, S});
  if (packed) {
    // Block-diagonal: a token sees only tokens of its own packed example (training: past == 0).
    const at::Tensor seq = layout.sequence_ids.to(options.device());           // (B, T)
    mask = mask.logical_and(seq.unsqueeze(2).eq(seq.unsqueeze(1)).unsqueeze(1));  // (B, 1, T, T)
  }
  if (padded) mask = mask.logical_and(keys.to(options.device()).to(at::kBool).view({keys.size(0), 1, 1, S}));
  // Additive, with the dtype's lowest value, as transformers' eager mask: a query that may see no
  // key at all (a padding row inside a sliding window) then averages all keys instead of giving NaN.
  return {at::zeros(mask.sizes(), options).masked_fill(mask.logical_not(), lowest_of(options.dtype().toScalarType()))};
}

std::pair<at::Tensor, at::Tensor> append_kv(std::vector<at::Tensor>& keys, std::vector<at::Tensor>& values, size_t layer,
                                            const at::Tensor& k, const at::Tensor& v) {
  if (keys.size() <= layer) {
    keys.resize(layer + 1);
    values.resize(layer + 1);
  }
  keys[layer] = keys[layer].defined() ? at::cat({keys[layer], k}, 2) : k;      // (B, Hkv, S, D)
  values[layer] = values[layer].defined() ? at::cat({values[layer], v}, 2) : v;
  return {keys[layer], values[layer]};
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionMask& mask,
                     double scale, double softcap) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  bool gqa = k.size(1) != H;
  if (softcap > 0) {
    // transformers' eager order: scores in the model dtype, capped, masked, softmax in float32.
    const int64_t group = H / k.size(1), S = k.size(2);
    const at::Tensor keys = gqa ? k.repeat_interleave(group, 1) : k, values = gqa ? v.repeat_interleave(group, 1) : v;
    at::Tensor s = at::matmul(q, keys.transpose(-1, -2)) * scale;  // (B, H, T, S)
    s = at::tanh(s / softcap) * softcap;
    if (mask.additive.defined())
      s = s + mask.additive;
    else if (mask.causal && T > 1)
      s = s.masked_fill(at::ones({T, S}, q.options().dtype(at::kBool)).triu(S - T + 1), lowest_of(q.scalar_type()));
    const at::Tensor p = at::softmax(s, -1, at::kFloat).to(q.scalar_type());
    return at::matmul(p, values).transpose(1, 2).reshape({B, T, H * D});  // (B, T, H*D)
  }
  at::Tensor out = mask.additive.defined()
                       ? at::scaled_dot_product_attention(q, k, v, mask.additive, 0.0, false, scale, gqa)
                       : at::scaled_dot_product_attention(q, k, v, {}, 0.0, mask.causal, scale, gqa);
  return out.transpose(1, 2).reshape({B, T, H * D});  // (B, T, H*D)
}

}  // namespace lorakit
