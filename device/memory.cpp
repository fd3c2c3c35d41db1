#include "device/memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime_api.h>

#include "core/error.h"
#include "core/format.h"

namespace lorakit {

Memory memory_now(const c10::Device& device) {
  Memory m;
  if (device.is_cuda()) {
    const int index = device.index() < 0 ? 0 : device.index();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    constexpr size_t all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    m.allocated = static_cast<double>(stats.allocated_bytes[all].current);
    m.reserved = static_cast<double>(stats.reserved_bytes[all].current);
    m.peak = static_cast<double>(stats.allocated_bytes[all].peak);
    c10::cuda::CUDACachingAllocator::resetPeakStats(index);
    return m;
  }
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  m.allocated = m.reserved = static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  // VmHWM: the peak resident set since the process started or since reset_peak_memory().
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmHWM:")) m.peak = std::stod(line.substr(6)) * 1024.0;
  if (m.peak == 0) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    m.peak = static_cast<double>(usage.ru_maxrss) * 1024.0;
  }
  return m;
}

void cap_cuda_memory(const c10::Device& device, uint64_t bytes) {
  const int index = device.index() < 0 ? 0 : device.index();
  cudaDeviceProp p{};
  C10_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  const auto total = static_cast<uint64_t>(p.totalGlobalMem);
  if (bytes > total)
    fail("train.max_vram {}: the GPU has only {}", human_bytes(static_cast<double>(bytes)), human_bytes(static_cast<double>(total)));
  c10::cuda::CUDACachingAllocator::setMemoryFraction(static_cast<double>(bytes) / static_cast<double>(total), index);
}

void reset_peak_memory(const c10::Device& device) {
  if (device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
    return;
  }
  std::ofstream("/proc/self/clear_refs") << "5";
}

}  // namespace lorakit
