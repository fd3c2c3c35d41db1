// Where a run may put its tensors, checked before anything is written: "cpu", "cuda" or "cuda:N"
// must name a device this machine has, its dtype must be one the GPU computes in, and a memory
// cap must fit the GPU. Each failure is one line naming the setting, what was found and a hint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace lorakit {

struct CudaDeviceInfo {
  std::string name;
  uint64_t total_memory = 0;
  int major = 0, minor = 0;  // compute capability
};

// The visible CUDA devices; none without a driver or a GPU. The environment variable
// LORAKIT_FAKE_CUDA_DEVICES ("NAME:BYTES:MAJOR.MINOR,...", or "" for none) stands in for the real
// ones, so the checks below are tested on machines without a GPU.
std::vector<CudaDeviceInfo> cuda_devices();

// `name` ("cpu", "cuda", "cuda:N") as a device, after checking that it exists. `setting` names
// where the value came from ("train.device", "--device"); `cpu_hint` is how to choose the CPU
// instead ("--set train.device=cpu").
c10::Device resolve_device(const std::string& name, const std::string& setting, const std::string& cpu_hint);

// bf16 needs compute capability 8.0 (Ampere) or newer; fp16 and fp32 run everywhere.
void check_dtype_on_device(c10::ScalarType dtype, const c10::Device& device, const std::string& setting);

// With LORAKIT_SYNC_DEBUG=1 in the environment, every synchronising CUDA call warns (the CUDA sync
// debug mode), so a run's log counts its host synchronisations (scripts/gpu_check.sh).
void enable_sync_debug_if_asked(const c10::Device& device);

// A memory cap (train.max_vram) must fit the device.
void check_memory_cap(uint64_t bytes, const c10::Device& device, const std::string& setting);

}  // namespace lorakit
