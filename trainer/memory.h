// Memory as lorakit reports it: on CUDA the caching allocator's allocated, reserved and peak bytes
// (the peak reset at each reading, so it is the peak since the previous one); on the CPU the
// resident set now and the process's peak resident set.
#pragma once

#include <c10/core/Device.h>

namespace lorakit::trainer {

struct Memory {
  double allocated = 0, reserved = 0, peak = 0;
};

Memory memory_now(const c10::Device& device);

// Starts a new peak: the CUDA allocator's, and on Linux the process's peak resident set (VmHWM, via
// /proc/self/clear_refs), so runs in one process each get their own peak.
void reset_peak_memory(const c10::Device& device);

}  // namespace lorakit::trainer
