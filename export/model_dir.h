// Writing a Hugging Face model directory, shared by `merge` and `quantize`: the tensors as
// model.safetensors (or shards plus model.safetensors.index.json), config.json, and the tokenizer
// and generation files of the source directory, into a temporary sibling renamed over `out` only
// when complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace lorakit::exports {

struct WrittenModel {
  int64_t shards = 0;
  uint64_t bytes = 0;  // of tensor data
};

WrittenModel write_model_dir(const std::filesystem::path& out, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                             const nlohmann::json& config, const std::filesystem::path& source, uint64_t max_shard_bytes);

}  // namespace lorakit::exports
