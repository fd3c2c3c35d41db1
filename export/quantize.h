// `lorakit quantize`: a Hugging Face model directory rewritten with its Linear weights in 4 bits
// (NF4/FP4, optionally double-quantized) as transformers saves a bitsandbytes model: the packed
// codes and statistics under "<module>.weight*", and config.json's quantization_config, so
// from_pretrained loads it as a 4-bit model (the *-bnb-4bit repos' layout). Every tensor is read,
// quantized and kept one at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "quant/bnb_4bit.h"

namespace lorakit::exports {

struct QuantizeOptions {
  quant::QuantizeConfig config;            // type "nf4" by default
  std::string dtype;                       // the unquantized tensors and the 4-bit weights' dtype; "" = config's (else fp32)
  std::string device = "cpu";
  uint64_t max_shard_bytes = 2ull << 30;
  bool overwrite = false;
  bool quiet = false;
};

struct QuantizeReport {
  int64_t quantized = 0, kept = 0;  // Linear weights in 4 bits; tensors kept in dtype
  uint64_t bytes = 0;
  double mean_error = 0, largest_error = 0;  // |W - dequant(W)| / |W| over the 4-bit weights
};

QuantizeReport quantize_model(const std::filesystem::path& model_dir, const std::filesystem::path& out,
                              const QuantizeOptions& options);

}  // namespace lorakit::exports
