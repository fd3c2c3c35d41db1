// Memory as lorakit reports it: on CUDA the caching allocator's allocated, reserved and peak bytes
// (the peak reset at each reading, so it is the peak since the previous one); on the CPU the
// resident set now and the process's peak resident set.
#pragma once

#include <cstdint>

#include <c10/core/Device.h>

namespace lorakit {

struct Memory {
  double allocated = 0, reserved = 0, peak = 0;
};

Memory memory_now(const c10::Device& device);

// Starts a new peak: the CUDA allocator's, and on Linux the process's peak resident set (VmHWM, via
// /proc/self/clear_refs), so runs in one process each get their own peak.
void reset_peak_memory(const c10::Device& device);

// Caps the CUDA caching allocator at `bytes` (its memory fraction of the device's total), so a run
// on a large GPU fails where a card of that size would. Errors when the device is smaller.
void cap_cuda_memory(const c10::Device& device, uint64_t bytes);

}  // namespace lorakit
