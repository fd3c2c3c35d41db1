#include "device/dtype.h"

#include "core/error.h"

namespace lorakit {

c10::ScalarType parse_dtype(const std::string& name, const std::string& setting) {
  if (name == "fp32") return c10::kFloat;
  if (name == "bf16") return c10::kBFloat16;
  if (name == "fp16") return c10::kHalf;
  fail("{} '{}': expected fp32, bf16 or fp16", setting, name);
}

std::string dtype_name_from_hf(const std::string& hf_name) {
  return hf_name == "bfloat16" ? "bf16" : hf_name == "float16" ? "fp16" : "fp32";
}

const char* hf_dtype_name(c10::ScalarType dtype) {
  return dtype == c10::kBFloat16 ? "bfloat16" : dtype == c10::kHalf ? "float16" : "float32";
}

}  // namespace lorakit
