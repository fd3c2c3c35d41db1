// safetensors files: a validating mmap reader and an atomic writer. Format: 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the data. The reader checks everything before any tensor is touched (offsets inside the
// data, no holes or overlaps, bytes = shape x dtype size, known dtypes, no duplicate names), so a
// damaged file is an Error naming the file and the tensor, never a crash or an out-of-bounds read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace lorakit {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as in the file: "BF16", "F32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data section
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);  // maps and validates
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in file order of offsets
  const SafetensorsEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A copy of the tensor's bytes as a CPU tensor of its own dtype.
  at::Tensor tensor(const std::string& name) const;
  // The tensor converted straight from the mapping to `dtype` on `device` (no intermediate copy in
  // the file's dtype); the mapped pages are released afterwards.
  at::Tensor read(const std::string& name, at::ScalarType dtype, const c10::Device& device) const;

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;  // mmap of the whole file
  size_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;

  at::ScalarType torch_type(const SafetensorsEntry& e, const std::string& name) const;
};

// safetensors dtype string <-> LibTorch; bits per element (F6/F4 are sub-byte).
int safetensors_dtype_bits(const std::string& dtype);  // 0 when unknown
bool safetensors_dtype_to_torch(const std::string& dtype, at::ScalarType* out);
std::string torch_to_safetensors_dtype(at::ScalarType type);

// Writes tensors (moved to CPU, made contiguous) with __metadata__ {"format": "pt"} plus `metadata`.
// Atomic: a temporary file in the same folder is renamed over `path` only when complete.
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace lorakit
