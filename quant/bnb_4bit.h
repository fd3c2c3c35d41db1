// 4-bit base weights as bitsandbytes stores them (QLoRA): NF4 or FP4 codes, two per byte (high
// nibble first), one absmax per block of 64 values of the flattened weight; with double
// quantization the absmax values themselves are 8-bit blockwise codes (bitsandbytes' signed dynamic
// map, blocks of 256) around their mean. Bit-identical to bitsandbytes 0.50's quantize_4bit on the
// CPU, whose 4-bit step is pure torch (bucketize against the code's midpoints) and whose nested step
// is its C kernel (a 65536-bin lookup table of nearest code points). No file I/O here:
// checkpoints/ reads and writes the tensors under the names transformers gives them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lorakit::quant {

// How a model's Linear weights are quantized at load (the recipe's model.quantization & co.,
// transformers' BitsAndBytesConfig).
struct QuantizeConfig {
  std::string type;           // "" (none), "nf4" or "fp4"   (bnb_4bit_quant_type)
  bool double_quant = true;   // quantize the absmax too       (bnb_4bit_use_double_quant)
  at::ScalarType compute_dtype = at::ScalarType::Undefined;  // Undefined: the model dtype (bnb_4bit_compute_dtype)
  std::vector<std::string> skip_modules;  // kept in 16/32 bits besides the output layer (llm_int8_skip_modules)
  bool enabled() const { return !type.empty(); }
};

// transformers 5's should_convert_module, negated: a module is skipped when a pattern matches its
// name from the start up to a module boundary (as a regex: "model.layers.1" or "model.layers.*.mlp",
// not "model.layers.11"), or is a suffix of it ("down_proj").
bool is_skipped(const std::string& module_name, const std::vector<std::string>& patterns);

// bitsandbytes' QuantState of one weight.
struct Weight4bit {
  std::string quant_type = "nf4";      // nf4 | fp4
  int64_t blocksize = 64;
  std::vector<int64_t> shape;          // the weight's (out, in)
  at::ScalarType dtype = at::kFloat;   // the dtype it was quantized from; dequantize() returns it
  at::ScalarType compute_dtype = at::kFloat;  // what the Linear computes in
  at::Tensor packed;     // (numel / 2, 1) uint8 (numel rounded up to even)
  at::Tensor absmax;     // (blocks) float32, or uint8 codes when nested
  at::Tensor quant_map;  // (16) float32: the 4-bit code
  // Double quantization (nested): absmax = nested_quant_map[absmax] * nested_absmax[block] + offset.
  bool nested = false;
  int64_t nested_blocksize = 256;
  at::Tensor nested_absmax;     // (ceil(blocks / 256)) float32
  at::Tensor nested_quant_map;  // (256) float32
  float offset = 0;

  int64_t numel() const;
  // The bytes it holds (packed codes and statistics), for memory reports.
  int64_t bytes() const;
  // The per-block absmax as float32 (undoing the double quantization).
  at::Tensor absmax_float() const;
  // The weight (shape) in `dtype`, as bitsandbytes' dequantize_4bit: code * absmax in float32.
  at::Tensor dequantize() const;
  Weight4bit to(const c10::Device& device) const;
};

// What a 4-bit weight of `numel` values holds (Weight4bit::bytes() of it), without quantizing:
// for memory estimates (`inspect`).
int64_t weight_4bit_bytes(int64_t numel, bool double_quant, int64_t blocksize = 64);

// The 16-value codes (bitsandbytes' get_4bit_type), the signed 8-bit dynamic map of the nested
// statistics (create_dynamic_map(signed=True)).
at::Tensor code_4bit(const std::string& quant_type);
at::Tensor dynamic_map();

// bitsandbytes.functional.quantize_4bit(w, blocksize, compress_statistics=double_quant, quant_type).
Weight4bit quantize_4bit(const at::Tensor& weight, const std::string& quant_type, bool double_quant,
                         int64_t blocksize = 64);

// bitsandbytes' 8-bit blockwise quantization on the CPU (its C kernel): per block of `blocksize`
// the absmax and, per value, the code point its lookup-table bin is nearest to.
std::pair<at::Tensor, at::Tensor> quantize_blockwise(const at::Tensor& a, const at::Tensor& code, int64_t blocksize);
at::Tensor dequantize_blockwise(const at::Tensor& q, const at::Tensor& absmax, const at::Tensor& code,
                                int64_t blocksize);

// The suffixes transformers saves next to "<module>.weight" for a 4-bit weight, in its order:
// "" (packed), ".absmax", ".nested_absmax", ".nested_quant_map", ".quant_map",
// ".quant_state.bitsandbytes__<type>" (the JSON, as uint8 bytes).
std::vector<std::pair<std::string, at::Tensor>> state_tensors(const Weight4bit& w);
// The quant_state JSON's key (".quant_state.bitsandbytes__nf4" or "__fp4") that marks a 4-bit weight.
std::string quant_state_suffix(const std::string& quant_type);
// Back from those tensors (`get(suffix)` returns undefined when absent); `where` names the weight
// in errors; `shape` is what the architecture expects.
Weight4bit weight_from_state(const std::string& where, const std::function<at::Tensor(const std::string&)>& get,
                             const std::vector<int64_t>& shape);

// y = x W^T + b with W dequantized for this product only (and again in the backward, which gives
// x its gradient; W and b are frozen): bitsandbytes' matmul_4bit inside Linear4bit, x cast to the
// compute dtype and the result back to x's dtype.
at::Tensor linear_4bit(const at::Tensor& x, const Weight4bit& w, const at::Tensor& bias);

}  // namespace lorakit::quant
