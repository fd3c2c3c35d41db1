// Small formatting helpers shared by the CLI and reports: 1,234,567 and 1.23 GiB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lorakit {

std::string with_commas(int64_t n);        // 1279391488 -> "1,279,391,488"
std::string human_bytes(double bytes);     // 2558782976 -> "2.38 GiB"
std::string shape_string(const std::vector<int64_t>& shape);  // {2, 3} -> "[2, 3]"

}  // namespace lorakit
