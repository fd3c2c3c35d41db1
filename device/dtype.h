// The dtype names lorakit's flags and recipes take (fp32, bf16, fp16) and Hugging Face's names for
// them in config.json (float32, bfloat16, float16).
#pragma once

#include <string>

#include <c10/core/ScalarType.h>

namespace lorakit {

// "fp32" | "bf16" | "fp16" -> the dtype; anything else is an error naming `setting` ("--dtype",
// "model.dtype").
c10::ScalarType parse_dtype(const std::string& name, const std::string& setting);

// config.json's "dtype" (transformers 5) or "torch_dtype" (4.x) value -> "fp32" | "bf16" | "fp16";
// float32 when absent or unknown.
std::string dtype_name_from_hf(const std::string& hf_name);

// kFloat -> "float32", kBFloat16 -> "bfloat16", kHalf -> "float16".
const char* hf_dtype_name(c10::ScalarType dtype);

}  // namespace lorakit
