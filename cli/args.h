// Argument parsing shared by subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lorakit::cli {

// "1,2,3" -> {1, 2, 3}; anything else is an error naming the bad item.
std::vector<int64_t> parse_ids(const std::string& text);

}  // namespace lorakit::cli
