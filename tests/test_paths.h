// Where tests find the oracle's output, the lorakit binary and ../shared: compiled-in defaults
// (tests/CMakeLists.txt), overridable by environment variables of the same names.
#pragma once

#include <cstdlib>
#include <string>

namespace lorakit::testing {

inline std::string path_from_env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}
inline std::string parity_dir() { return path_from_env("LORAKIT_PARITY_DIR", LORAKIT_PARITY_DIR_DEFAULT); }
inline std::string lorakit_bin() { return path_from_env("LORAKIT_BIN", LORAKIT_BIN_DEFAULT); }
inline std::string venv_python() { return path_from_env("LORAKIT_PYTHON", LORAKIT_PYTHON_DEFAULT); }
inline std::string shared_dir() { return path_from_env("LORAKIT_SHARED", LORAKIT_SHARED_DEFAULT); }
// Where the device-aware tests (ctest label `gpu`, scripts/gpu_check.sh) put their tensors: "cpu"
// unless LORAKIT_TEST_DEVICE says "cuda".
inline std::string test_device() { return path_from_env("LORAKIT_TEST_DEVICE", "cpu"); }
inline bool on_cuda() { return test_device().starts_with("cuda"); }

}  // namespace lorakit::testing
