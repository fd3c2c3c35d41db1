// GGUF v3 files, written the way gguf-py's GGUFWriter writes them (llama.cpp's converters): magic
// "GGUF", u32 version 3, u64 tensor count, u64 key-value count; the key-value pairs in insertion
// order (u64-length strings, u32 value types, arrays as u32 element type + u64 count); one info per
// tensor (name, u32 n_dims, the dims innermost first, u32 ggml type, u64 offset into the data);
// zero padding to 32 bytes; then each tensor's data, padded to 32 bytes. Little-endian throughout.
//
// The tensors are declared first (name, torch shape, type), so the infos and offsets are known
// before any data exists; `write` then asks for each tensor's float32 values one at a time and
// converts them, so a model is never in memory whole. The file is written to a temporary sibling
// and renamed over the target when complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lorakit::exports::gguf {

enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// ggml_type values of the types lorakit writes.
enum class TensorType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

const char* tensor_type_name(TensorType type);  // "F32", "F16", "Q8_0", "BF16"
// Bytes of `elements` values in `type` (Q8_0: 34-byte blocks of 32; `elements` a multiple of 32).
uint64_t tensor_bytes(TensorType type, int64_t elements);

// Q8_0 blocks of 32 consecutive values, bit for bit as ggml's quantize_row_q8_0_ref (and gguf-py's
// Q8_0.quantize_blocks): d = max|x| / 127 (float32), q = round-half-away(x * (1/d)) as int8, d
// stored as fp16. `values` is float32, contiguous, with numel a multiple of 32.
std::vector<uint8_t> quantize_q8_0(const at::Tensor& values);

class Writer {
 public:
  // Key-value pairs; setting a key again replaces its value in place (GGUFWriter's dict).
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_i32(const std::string& key, int32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);
  void add_bools(const std::string& key, const std::vector<bool>& values);
  bool has(const std::string& key) const;

  // A tensor: `shape` in torch order (outermost first), as the converter's numpy arrays have it.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type);
  size_t tensor_count() const { return tensors_.size(); }
  const std::string& tensor_name(size_t i) const { return tensors_[i].name; }
  uint64_t data_bytes() const;  // of all tensors' data, unpadded (what `progress` adds up to)

  // Writes the file; `values(i)` gives tensor i's values (float32, CPU, any layout, the declared
  // numel), converted here to the declared type. `progress(i)` runs after each tensor.
  void write(const std::filesystem::path& path, const std::function<at::Tensor(size_t)>& values,
             const std::function<void(size_t, uint64_t)>& progress = {}) const;

 private:
  struct Entry {
    std::string key;
    std::string bytes;  // the value type and the value, serialized
  };
  struct TensorInfo {
    std::string name;
    std::vector<int64_t> shape;
    TensorType type;
  };
  void set(const std::string& key, std::string bytes);
  std::vector<Entry> entries_;
  std::vector<TensorInfo> tensors_;
};

}  // namespace lorakit::exports::gguf
