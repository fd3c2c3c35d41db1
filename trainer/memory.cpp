#include "trainer/memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include <c10/cuda/CUDACachingAllocator.h>

namespace lorakit::trainer {

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
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  m.peak = static_cast<double>(usage.ru_maxrss) * 1024.0;
  return m;
}

}  // namespace lorakit::trainer
