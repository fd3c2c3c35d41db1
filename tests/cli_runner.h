// Running the lorakit binary from a test as a user would, and asserting on its one-line errors.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/test_paths.h"

extern char** environ;

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

// Starts lorakit with `args` in the background (stdout to /dev/null; stderr too when `quiet`).
inline pid_t spawn_lorakit(const std::vector<std::string>& args, bool quiet = false) {
  std::vector<std::string> strings = {lorakit_bin()};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  if (quiet) posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "expected '" << (needle) << "' in:\n" << (haystack)

inline void expect_failure(const Result& r, std::initializer_list<std::string> pieces) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "error: ");
  for (const auto& piece : pieces) EXPECT_CONTAINS(r.output, piece);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "expected one line:\n" << r.output;
}

}  // namespace lorakit::testing
