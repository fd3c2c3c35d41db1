#include "export/gguf_file.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <c10/util/Half.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/files.h"

namespace lorakit::exports::gguf {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kAlignment = 32;  // general.alignment's default; the converters never change it

uint64_t pad_to_alignment(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_type(std::string& out, ValueType type) { put<uint32_t>(out, static_cast<uint32_t>(type)); }

}  // namespace

const char* tensor_type_name(TensorType type) {
  switch (type) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::Q8_0: return "Q8_0";
    case TensorType::BF16: return "BF16";
  }
  return "?";
}

uint64_t tensor_bytes(TensorType type, int64_t elements) {
  const auto n = static_cast<uint64_t>(elements);
  switch (type) {
    case TensorType::F32: return n * 4;
    case TensorType::F16:
    case TensorType::BF16: return n * 2;
    case TensorType::Q8_0: return n / 32 * 34;
  }
  return 0;
}

std::vector<uint8_t> quantize_q8_0(const at::Tensor& values) {
  const at::Tensor x = values.to(at::kCPU, at::kFloat).contiguous();
  const int64_t n = x.numel();
  if (n % 32 != 0) fail("q8_0: {} values are not whole blocks of 32", n);
  const float* src = x.const_data_ptr<float>();
  std::vector<uint8_t> out(static_cast<size_t>(n / 32 * 34));
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* block = src + b * 32;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(block[i]));
    // One float32 rounding per operation, as numpy does it (gguf-py's np_roundf).
    const float d = amax / 127.0f;
    const float id = d == 0 ? 0.0f : 1.0f / d;
    uint8_t* dst = out.data() + b * 34;
    const uint16_t d16 = c10::Half(d).x;
    std::memcpy(dst, &d16, 2);
    for (int i = 0; i < 32; ++i) {
      const float v = block[i] * id;
      const float a = std::fabs(v);
      const float floored = std::floor(a);
      const float rounded = floored + std::floor(2.0f * (a - floored));
      const float q = v > 0 ? rounded : (v < 0 ? -rounded : 0.0f);
      dst[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
  return out;
}

void Writer::set(const std::string& key, std::string bytes) {
  for (auto& entry : entries_)
    if (entry.key == key) {
      entry.bytes = std::move(bytes);
      return;
    }
  entries_.push_back({key, std::move(bytes)});
}

bool Writer::has(const std::string& key) const {
  for (const auto& entry : entries_)
    if (entry.key == key) return true;
  return false;
}

void Writer::add_string(const std::string& key, const std::string& value) {
  std::string b;
  put_type(b, ValueType::STRING);
  put_string(b, value);
  set(key, std::move(b));
}

void Writer::add_u32(const std::string& key, uint32_t value) {
  std::string b;
  put_type(b, ValueType::UINT32);
  put(b, value);
  set(key, std::move(b));
}

void Writer::add_i32(const std::string& key, int32_t value) {
  std::string b;
  put_type(b, ValueType::INT32);
  put(b, value);
  set(key, std::move(b));
}

void Writer::add_f32(const std::string& key, float value) {
  std::string b;
  put_type(b, ValueType::FLOAT32);
  put(b, value);
  set(key, std::move(b));
}

void Writer::add_bool(const std::string& key, bool value) {
  std::string b;
  put_type(b, ValueType::BOOL);
  put<uint8_t>(b, value ? 1 : 0);
  set(key, std::move(b));
}

void Writer::add_strings(const std::string& key, const std::vector<std::string>& values) {
  std::string b;
  put_type(b, ValueType::ARRAY);
  put_type(b, ValueType::STRING);
  put<uint64_t>(b, values.size());
  for (const auto& v : values) put_string(b, v);
  set(key, std::move(b));
}

void Writer::add_i32s(const std::string& key, const std::vector<int32_t>& values) {
  std::string b;
  put_type(b, ValueType::ARRAY);
  put_type(b, ValueType::INT32);
  put<uint64_t>(b, values.size());
  for (int32_t v : values) put(b, v);
  set(key, std::move(b));
}

void Writer::add_f32s(const std::string& key, const std::vector<float>& values) {
  std::string b;
  put_type(b, ValueType::ARRAY);
  put_type(b, ValueType::FLOAT32);
  put<uint64_t>(b, values.size());
  for (float v : values) put(b, v);
  set(key, std::move(b));
}

void Writer::add_bools(const std::string& key, const std::vector<bool>& values) {
  std::string b;
  put_type(b, ValueType::ARRAY);
  put_type(b, ValueType::BOOL);
  put<uint64_t>(b, values.size());
  for (bool v : values) put<uint8_t>(b, v ? 1 : 0);
  set(key, std::move(b));
}

void Writer::add_tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type) {
  for (const auto& t : tensors_) if (t.name == name) fail("GGUF: tensor {} declared twice", name);
  tensors_.push_back({name, shape, type});
}

uint64_t Writer::data_bytes() const {
  uint64_t total = 0;
  for (const auto& t : tensors_) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    total += tensor_bytes(t.type, numel);
  }
  return total;
}

void Writer::write(const fs::path& path, const std::function<at::Tensor(size_t)>& values,
                   const std::function<void(size_t, uint64_t)>& progress) const {
  std::string head;
  put<uint32_t>(head, 0x46554747u);  // "GGUF"
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, entries_.size());
  for (const auto& entry : entries_) {
    put_string(head, entry.key);
    head += entry.bytes;
  }
  std::vector<int64_t> numels;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    int64_t numel = 1;
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) {
      put<uint64_t>(head, static_cast<uint64_t>(*it));
      numel *= *it;
    }
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += pad_to_alignment(tensor_bytes(t.type, numel));
    numels.push_back(numel);
  }
  head.resize(pad_to_alignment(head.size()), '\0');

  const fs::path tmp = path.parent_path() / fmt::format(".{}.tmp-{}", path.filename().string(), ::getpid());
  RemoveUnlessKept guard(tmp);  // on any error the temporary goes; the target only appears complete, by the rename
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out.good()) fail("{}: cannot be written; hint: check the folder exists and is writable", path.string());
  out.write(head.data(), static_cast<std::streamsize>(head.size()));
  const char zeros[kAlignment] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorInfo& t = tensors_[i];
    const at::Tensor v = values(i);
    if (v.numel() != numels[i]) fail("GGUF: tensor {} has {} values, declared {}", t.name, v.numel(), numels[i]);
    uint64_t bytes = 0;
    if (t.type == TensorType::Q8_0) {
      const std::vector<uint8_t> q = quantize_q8_0(v);
      out.write(reinterpret_cast<const char*>(q.data()), static_cast<std::streamsize>(q.size()));
      bytes = q.size();
    } else {
      const at::ScalarType dtype = t.type == TensorType::F32 ? at::kFloat : t.type == TensorType::F16 ? at::kHalf : at::kBFloat16;
      const at::Tensor c = v.to(at::kCPU, at::kFloat).to(dtype).contiguous();
      bytes = static_cast<uint64_t>(c.numel()) * c.element_size();
      out.write(static_cast<const char*>(c.const_data_ptr()), static_cast<std::streamsize>(bytes));
    }
    out.write(zeros, static_cast<std::streamsize>(pad_to_alignment(bytes) - bytes));
    if (!out.good()) fail("{}: writing tensor {} failed (disk full?)", tmp.string(), t.name);
    if (progress) progress(i, bytes);
  }
  out.close();
  if (!out.good()) fail("{}: writing failed (disk full?)", tmp.string());
  fs::rename(tmp, path);
  guard.keep();
}

}  // namespace lorakit::exports::gguf
