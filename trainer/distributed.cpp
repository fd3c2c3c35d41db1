#include "trainer/distributed.h"

#include <chrono>
#include <cstdlib>

#include <ATen/ops/zeros.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/error.h"

namespace lorakit::trainer {

namespace {

// A rank that waits this long in a collective for the others gives up (a rank died or hangs).
constexpr std::chrono::seconds kCollectiveTimeout{45};

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (*end != '\0' || v < 0) fail("environment variable {}='{}' is not a non-negative integer", name, value);
  return static_cast<int>(v);
}

std::string env_string(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

struct World::Impl {
  c10::intrusive_ptr<c10d::Backend> group;
};

World::World(const std::string& backend, const c10::Device& device) : device_(device) {
  if (env_string("WORLD_SIZE").empty()) return;  // one process, no group
  size_ = env_int("WORLD_SIZE", 1);
  if (size_ < 1) fail("WORLD_SIZE {} must be at least 1", size_);
  rank_ = env_int("RANK", 0);
  const int local_rank = env_int("LOCAL_RANK", rank_);
  if (rank_ >= size_) fail("RANK {} is not below WORLD_SIZE {}", rank_, size_);
  const std::string addr = env_string("MASTER_ADDR"), port = env_string("MASTER_PORT");
  if (addr.empty() || port.empty())
    fail("WORLD_SIZE is {} but MASTER_ADDR/MASTER_PORT are not set; hint: launch with torchrun --nproc-per-node N "
         "--no-python build/lorakit train RECIPE", size_);
  backend_ = backend.empty() ? (device.is_cuda() ? "nccl" : "gloo") : backend;
  if (backend_ != "gloo" && backend_ != "nccl")
    fail("train.distributed_backend '{}': expected gloo or nccl (or empty: nccl on CUDA, gloo on the CPU)", backend_);
  if (device.is_cuda()) device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));

  // torchrun's agent hosts the store on MASTER_PORT: every rank joins it as a client, as Python's
  // env:// does. Launched otherwise (WORLD_SIZE set by hand), rank 0 hosts it.
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(env_int("MASTER_PORT", 29500));
  options.isServer = rank_ == 0 && env_string("TORCHELASTIC_USE_AGENT_STORE") != "True";
  options.numWorkers = size_;
  options.waitWorkers = false;
  options.timeout = std::chrono::milliseconds(std::chrono::seconds(120));
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, options);
    auto store = c10::make_intrusive<c10d::PrefixStore>("lorakit", tcp);
    if (backend_ == "gloo") {
      auto gloo = c10d::ProcessGroupGloo::Options::create(kCollectiveTimeout);
      // This node's interface: GLOO_SOCKET_IFNAME as in Python, loopback for a one-node launch on
      // localhost, else the address this host's name resolves to (several nodes).
      const std::string interface = env_string("GLOO_SOCKET_IFNAME");
      const bool local = addr == "localhost" || addr.starts_with("127.");
      gloo->devices.push_back(!interface.empty() ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                              : local            ? c10d::ProcessGroupGloo::createDeviceForHostname(addr)
                                                 : c10d::ProcessGroupGloo::createDefaultDevice());
      impl_ = std::make_unique<Impl>();
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, size_, gloo);
    } else {
#ifdef USE_C10D_NCCL
      if (!device.is_cuda()) fail("train.distributed_backend nccl needs train.device cuda");
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = kCollectiveTimeout;
      impl_ = std::make_unique<Impl>();
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank_, size_, nccl);
#else
      fail("train.distributed_backend nccl: this build has no NCCL (hint: build with the CUDA toolkit's nccl.h, or "
           "use gloo)");
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank {} of {}: cannot join the process group at {}:{} ({}): {}", rank_, size_, addr, port, backend_,
         std::string(e.what()).substr(0, 300));
  }
}

World::~World() = default;

void World::all_reduce_sum(at::Tensor& tensor, const std::string& what) const {
  if (!distributed()) return;
  std::vector<at::Tensor> tensors{tensor};
  try {
    impl_->group->allreduce(tensors)->wait();
  } catch (const std::exception& e) {
    fail("rank {} of {}: {}: the all-reduce failed, another rank stopped or died ({}); hint: torchrun's summary names "
         "the rank that failed first; --resume continues from the last checkpoint",
         rank_, size_, what, std::string(e.what()).substr(0, 200));
  }
}

void World::barrier(const std::string& what) const {
  if (!distributed()) return;
  // A one-element all-reduce: a barrier that also works on NCCL without a device choice.
  at::Tensor token = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(device_));
  all_reduce_sum(token, what);
}

std::vector<double> World::gather(double value, const std::string& what) const {
  if (!distributed()) return {value};
  at::Tensor slots = at::zeros({size_}, at::TensorOptions().dtype(at::kDouble).device(device_));
  slots[rank_].fill_(value);
  all_reduce_sum(slots, what);
  at::Tensor cpu = slots.to(at::kCPU).contiguous();
  return std::vector<double>(cpu.data_ptr<double>(), cpu.data_ptr<double>() + size_);
}

}  // namespace lorakit::trainer
