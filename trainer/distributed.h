// More than one process: the ranks torchrun starts (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT in the environment) joined in one c10d process group, Gloo on the CPU and NCCL on
// CUDA, over the store torchrun's agent hosts. Without WORLD_SIZE (or with 1) it is one process and
// every collective is a no-op. The trainer gives each rank its share of every step's rows and sums
// the LoRA gradients in one flat bucket; rank 0 alone writes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace lorakit::trainer {

class World {
 public:
  // `backend`: "" (gloo on the CPU, nccl on CUDA), "gloo" or "nccl" (train.distributed_backend).
  // `device` is the recipe's; on CUDA each rank takes cuda:LOCAL_RANK (see device()).
  World(const std::string& backend, const c10::Device& device);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Launched by torchrun (WORLD_SIZE set), one rank included: the process group exists and every
  // collective runs (a 1-rank NCCL group on a one-GPU machine checks that path).
  bool distributed() const { return impl_ != nullptr; }
  bool main() const { return rank_ == 0; }
  const c10::Device& device() const { return device_; }
  const std::string& backend() const { return backend_; }

  // In place, over all ranks. `what` names the step in the error when a rank is gone.
  void all_reduce_sum(at::Tensor& tensor, const std::string& what) const;
  void barrier(const std::string& what) const;
  // Each rank's value, in rank order (the same on every rank).
  std::vector<double> gather(double value, const std::string& what) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  c10::Device device_ = c10::kCPU;
  std::string backend_ = "none";
};

}  // namespace lorakit::trainer
