// Small formatting and parsing helpers shared by the CLI, recipes and reports: 1,234,567, 1.23 GiB,
// "2GB" -> bytes, CSV fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lorakit {

std::string with_commas(int64_t n);        // 1279391488 -> "1,279,391,488"
std::string human_bytes(double bytes);     // 2558782976 -> "2.38 GiB"
std::string shape_string(const std::vector<int64_t>& shape);  // {2, 3} -> "[2, 3]"

// "2GB", "500MB", "1.5GiB", "123" (bytes) -> bytes; anything else is an error naming `setting`.
uint64_t parse_size(const std::string& text, const std::string& setting = "size");

// A CSV field as RFC 4180 writes it: quoted (with "" for ") when it holds a comma, quote or newline.
std::string csv_field(const std::string& text);

}  // namespace lorakit
