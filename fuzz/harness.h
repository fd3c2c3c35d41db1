// What every fuzz harness shares: a scratch directory of its own (in /dev/shm when there is one),
// files written there from the fuzzer's bytes, and the rule the harnesses check. A parser given
// hostile bytes must either succeed or throw lorakit::Error (the one-line message the CLI prints);
// any other exception escaping (std::out_of_range, nlohmann's, c10's, std::bad_alloc), a crash, a
// sanitizer report, a leak, a hang or an allocation of a claimed size is a defect. libFuzzer
// reports an escaping exception as a crash (abort).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"

namespace lorakit::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path root = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::filesystem::path d = root / ("lorakit-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_file(const std::string& name, std::string_view bytes) {
  const std::filesystem::path path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string_view as_view(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

// Splits the input at the first occurrence of `separator` (the seed files join parts with it).
inline std::pair<std::string_view, std::string_view> split(std::string_view bytes, std::string_view separator) {
  const size_t at = bytes.find(separator);
  if (at == std::string_view::npos) return {bytes, {}};
  return {bytes.substr(0, at), bytes.substr(at + separator.size())};
}

// Runs `body`; lorakit::Error is the expected outcome for bad input, everything else escapes.
template <typename Body>
void expect_clear_error(Body&& body) {
  try {
    body();
  } catch (const lorakit::Error&) {
  }
}

}  // namespace lorakit::fuzz
