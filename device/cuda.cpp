#include "device/cuda.h"

#include <cstdlib>

#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/format.h"

namespace lorakit {
namespace {

std::string describe(const std::vector<CudaDeviceInfo>& devices) {
  std::string out;
  for (size_t i = 0; i < devices.size(); ++i)
    out += fmt::format("{}cuda:{} {} ({}, compute capability {}.{})", i ? ", " : "", i, devices[i].name,
                       human_bytes(static_cast<double>(devices[i].total_memory)), devices[i].major, devices[i].minor);
  return out;
}

const CudaDeviceInfo& info_of(const c10::Device& device) {
  static const std::vector<CudaDeviceInfo> devices = cuda_devices();
  const auto index = static_cast<size_t>(device.has_index() ? device.index() : 0);
  if (index >= devices.size()) fail("{}: no such CUDA device", device.str());
  return devices[index];
}

}  // namespace

std::vector<CudaDeviceInfo> cuda_devices() {
  std::vector<CudaDeviceInfo> out;
  if (const char* fake = std::getenv("LORAKIT_FAKE_CUDA_DEVICES")) {
    std::string spec = fake;
    size_t start = 0;
    while (start < spec.size()) {
      const size_t comma = spec.find(',', start);
      const std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      const size_t a = item.find(':'), b = item.find(':', a + 1), dot = item.find('.', b + 1);
      if (a == std::string::npos || b == std::string::npos || dot == std::string::npos)
        fail("LORAKIT_FAKE_CUDA_DEVICES '{}': expected NAME:BYTES:MAJOR.MINOR, e.g. Tesla T4:16GB:7.5", item);
      out.push_back({item.substr(0, a), parse_size(item.substr(a + 1, b - a - 1), "LORAKIT_FAKE_CUDA_DEVICES"),
                     std::stoi(item.substr(b + 1, dot - b - 1)), std::stoi(item.substr(dot + 1))});
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return out;
  }
  const int count = c10::cuda::device_count();  // 0 without a driver, without throwing
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({p.name, static_cast<uint64_t>(p.totalGlobalMem), p.major, p.minor});
  }
  return out;
}

c10::Device resolve_device(const std::string& name, const std::string& setting, const std::string& cpu_hint) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  int index = -1;
  if (name != "cuda") {
    size_t used = 0;
    try {
      if (!name.starts_with("cuda:")) throw std::invalid_argument(name);
      index = std::stoi(name.substr(5), &used);
      if (used != name.size() - 5 || index < 0) throw std::invalid_argument(name);
    } catch (const std::exception&) {
      fail("{} '{}': expected cpu, cuda or cuda:N (N counts from 0)", setting, name);
    }
  }
  const std::vector<CudaDeviceInfo> devices = cuda_devices();
  if (devices.empty()) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    fail("{} '{}': no CUDA device is visible (no NVIDIA driver or GPU found{}); hint: {}", setting, name,
         visible ? fmt::format(", CUDA_VISIBLE_DEVICES='{}'", visible) : "", cpu_hint);
  }
  if (index >= static_cast<int>(devices.size()))
    fail("{} '{}': this machine has {} CUDA device{}: {}; hint: use cuda:0{}", setting, name, devices.size(),
         devices.size() == 1 ? "" : "s", describe(devices),
         devices.size() > 1 ? fmt::format(" to cuda:{}", devices.size() - 1) : "");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index < 0 ? 0 : index));
}

void check_dtype_on_device(c10::ScalarType dtype, const c10::Device& device, const std::string& setting) {
  if (!device.is_cuda() || dtype != c10::kBFloat16) return;
  const CudaDeviceInfo& d = info_of(device);
  if (d.major < 8)
    fail("{} bf16: {} ({}) has compute capability {}.{} and no bfloat16 support (it needs 8.0, Ampere or newer); "
         "hint: use fp16 (trained with dynamic loss scaling) or fp32", setting, device.str(), d.name, d.major, d.minor);
}

void enable_sync_debug_if_asked(const c10::Device& device) {
  const char* asked = std::getenv("LORAKIT_SYNC_DEBUG");
  if (device.is_cuda() && asked && std::string(asked) == "1")
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
}

void check_memory_cap(uint64_t bytes, const c10::Device& device, const std::string& setting) {
  if (!device.is_cuda()) fail("{} applies to device cuda, not {}", setting, device.str());
  const CudaDeviceInfo& d = info_of(device);
  if (bytes > d.total_memory)
    fail("{} {}: more than {} has ({} in all, {}); hint: lower {} or leave it empty to use the whole GPU", setting,
         human_bytes(static_cast<double>(bytes)), device.str(), human_bytes(static_cast<double>(d.total_memory)), d.name,
         setting);
}

}  // namespace lorakit
