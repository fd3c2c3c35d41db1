// Running the lorakit binary from a test as a user would, and asserting on its one-line errors.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/test_paths.h"

namespace lorakit::testing {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// Runs a shell command; stdout and stderr together.
inline Result run_command(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

inline Result run(const std::string& args) { return run_command(fmt::format("{} {}", lorakit_bin(), args)); }

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "expected '" << (needle) << "' in:\n" << (haystack)

inline void expect_failure(const Result& r, std::initializer_list<std::string> pieces) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "error: ");
  for (const auto& piece : pieces) EXPECT_CONTAINS(r.output, piece);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "expected one line:\n" << r.output;
}

}  // namespace lorakit::testing
