#include "cli/args.h"

#include <stdexcept>

#include "core/error.h"

namespace lorakit::cli {

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      size_t used = 0;
      const long long id = std::stoll(item, &used);
      if (used != item.size() || id < 0) throw std::invalid_argument(item);
      ids.push_back(id);
    } catch (const std::exception&) {
      fail("--ids: '{}' is not a token id (expected non-negative integers separated by commas, e.g. 1,2,3)", item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32") return c10::kFloat;
  if (name == "bf16") return c10::kBFloat16;
  if (name == "fp16") return c10::kHalf;
  fail("--dtype: '{}' is not one of fp32, bf16, fp16", name);
}

}  // namespace lorakit::cli
