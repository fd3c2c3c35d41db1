// The one error type lorakit's libraries throw, and helpers to build its messages.
// Only cli/main.cpp catches it: it prints the message on one line and exits non-zero.
// Messages name the thing (file, key, tensor), what was expected, what was found, and a hint.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace lorakit {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// The candidate closest to `name` by edit distance, or "" when none is close enough.
std::string closest_match(std::string_view name, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace lorakit
