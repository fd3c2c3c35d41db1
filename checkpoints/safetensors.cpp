#include "checkpoints/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "core/format.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define LORAKIT_ASAN 1
#endif
#endif

namespace lorakit {

namespace {

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the reference reader's limit

// The file, mapped read-only. In the AddressSanitizer build (fuzz/) the mapping is followed by an
// inaccessible guard page and the bytes from the file's end to its page's are poisoned: a read past
// the file is then a report, where a plain mapping reads zeros or a neighbouring mapping unseen.
#ifdef LORAKIT_ASAN
size_t whole_pages(size_t size) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (size + page - 1) / page * page;
}
size_t guarded_size(size_t size) { return whole_pages(size) + static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }
#endif

const uint8_t* map_file(int fd, size_t size) {
#ifdef LORAKIT_ASAN
  void* reserved = ::mmap(nullptr, guarded_size(size), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (reserved == MAP_FAILED) return nullptr;
  if (::mmap(reserved, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
    ::munmap(reserved, guarded_size(size));
    return nullptr;
  }
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(reserved) + size, whole_pages(size) - size);
  return static_cast<const uint8_t*>(reserved);
#else
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  return mapped == MAP_FAILED ? nullptr : static_cast<const uint8_t*>(mapped);
#endif
}

void unmap_file(const uint8_t* data, size_t size) {
#ifdef LORAKIT_ASAN
  ASAN_UNPOISON_MEMORY_REGION(const_cast<uint8_t*>(data), guarded_size(size));
  ::munmap(const_cast<uint8_t*>(data), guarded_size(size));
#else
  ::munmap(const_cast<uint8_t*>(data), size);
#endif
}

struct DtypeInfo {
  const char* name;
  int bits;
  at::ScalarType type;  // Undefined where LibTorch has no matching type
};

const std::vector<DtypeInfo>& dtype_table() {
  static const std::vector<DtypeInfo> table = {
      {"BOOL", 8, at::kBool},
      {"U8", 8, at::kByte},
      {"I8", 8, at::kChar},
      {"I16", 16, at::kShort},
      {"U16", 16, at::kUInt16},
      {"F16", 16, at::kHalf},
      {"BF16", 16, at::kBFloat16},
      {"I32", 32, at::kInt},
      {"U32", 32, at::kUInt32},
      {"F32", 32, at::kFloat},
      {"F64", 64, at::kDouble},
      {"I64", 64, at::kLong},
      {"U64", 64, at::kUInt64},
      {"C64", 64, at::kComplexFloat},
      {"F8_E4M3", 8, at::kFloat8_e4m3fn},
      {"F8_E5M2", 8, at::kFloat8_e5m2},
      {"F8_E8M0", 8, at::kFloat8_e8m0fnu},
      {"F8_E4M3FNUZ", 8, at::kFloat8_e4m3fnuz},
      {"F8_E5M2FNUZ", 8, at::kFloat8_e5m2fnuz},
      {"F6_E2M3", 6, at::ScalarType::Undefined},
      {"F6_E3M2", 6, at::ScalarType::Undefined},
      {"F4", 4, at::ScalarType::Undefined},
  };
  return table;
}

std::vector<std::string> dtype_names() {
  std::vector<std::string> names;
  for (const auto& d : dtype_table()) names.push_back(d.name);
  return names;
}

const char* kHint = "hint: the file may be truncated or corrupted; re-download or re-save it";

}  // namespace

int safetensors_dtype_bits(const std::string& dtype) {
  for (const auto& d : dtype_table())
    if (dtype == d.name) return d.bits;
  return 0;
}

bool safetensors_dtype_to_torch(const std::string& dtype, at::ScalarType* out) {
  for (const auto& d : dtype_table())
    if (dtype == d.name && d.type != at::ScalarType::Undefined) {
      *out = d.type;
      return true;
    }
  return false;
}

std::string torch_to_safetensors_dtype(at::ScalarType type) {
  for (const auto& d : dtype_table())
    if (d.type == type) return d.name;
  fail("dtype {} has no safetensors name", c10::toString(type));
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string file = path.string();
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open ({})", file, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", file);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail("{}: {} bytes is too short for a safetensors file (the 8-byte header length is missing; {})", file, size_,
         kHint);
  }
  data_ = map_file(fd, size_);
  const int map_errno = errno;
  ::close(fd);
  if (!data_) fail("{}: mmap failed ({})", file, std::strerror(map_errno));

  try {
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | data_[i];  // little-endian
    if (header_size > kMaxHeaderSize)
      fail("{}: header length {} exceeds the format's limit of {} bytes (this is not a safetensors file, or it is "
           "corrupted)",
           file, header_size, kMaxHeaderSize);
    if (8 + header_size > size_)
      fail("{}: header length {} runs past the end of the {}-byte file ({})", file, header_size, size_, kHint);
    data_start_ = 8 + header_size;
    const char* header = reinterpret_cast<const char*>(data_ + 8);
    if (header_size == 0 || header[0] != '{')
      fail("{}: the header does not start with '{{' (this is not a safetensors file)", file);

    // Parse, noticing duplicate top-level names (a plain parse keeps the last silently).
    std::set<std::string> seen;
    std::string duplicate;
    nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                     nlohmann::json& parsed) {
      if (event == nlohmann::json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    };
    check_json_depth(std::string_view(header, header_size), file + ": the JSON header");
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(header, header + header_size, on_event);
    } catch (const nlohmann::json::parse_error& e) {
      fail("{}: the JSON header is invalid at byte {} ({})", file, e.byte, kHint);
    } catch (const nlohmann::json::exception& e) {  // a number past double's range, ...
      fail("{}: the JSON header is invalid: {} ({})", file, json_error_message(e), kHint);
    }
    if (!root.is_object()) fail("{}: the JSON header is not an object", file);
    if (!duplicate.empty()) fail("{}: tensor '{}' appears twice in the header", file, duplicate);

    const uint64_t data_size = size_ - data_start_;
    for (auto& [name, value] : root.items()) {
      if (name == "__metadata__") {
        if (!value.is_object()) fail("{}: __metadata__ must be an object of strings", file);
        for (auto& [key, v] : value.items()) {
          if (!v.is_string()) fail("{}: __metadata__ key '{}' must be a string, found {}", file, key, v.type_name());
          metadata_[key] = v.get<std::string>();
        }
        continue;
      }
      SafetensorsEntry e;
      e.name = name;
      if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets"))
        fail("{}: tensor '{}': expected an object with dtype, shape and data_offsets", file, name);
      if (!value["dtype"].is_string()) fail("{}: tensor '{}': dtype must be a string", file, name);
      e.dtype = value["dtype"].get<std::string>();
      int bits = safetensors_dtype_bits(e.dtype);
      if (bits == 0)
        fail("{}: tensor '{}': unknown dtype '{}'{} (known: {})", file, name, e.dtype, did_you_mean(e.dtype, dtype_names()),
             fmt::join(dtype_names(), ", "));
      const auto& shape = value["shape"];
      if (!shape.is_array()) fail("{}: tensor '{}': shape must be a list of integers", file, name);
      uint64_t numel = 1;
      for (const auto& d : shape) {
        if (!d.is_number_unsigned()) fail("{}: tensor '{}': shape {} must hold non-negative integers", file, name, shape.dump());
        uint64_t dim = d.get<uint64_t>();
        if (dim != 0 && numel > UINT64_MAX / 8 / dim) fail("{}: tensor '{}': shape {} is too large", file, name, shape.dump());
        numel *= dim;
        e.shape.push_back(static_cast<int64_t>(dim));
      }
      const auto& offsets = value["data_offsets"];
      if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
        fail("{}: tensor '{}': data_offsets must be [begin, end] with non-negative integers", file, name);
      e.begin = offsets[0].get<uint64_t>();
      e.end = offsets[1].get<uint64_t>();
      if (e.begin > e.end) fail("{}: tensor '{}': data_offsets [{}, {}] end before they begin", file, name, e.begin, e.end);
      if (e.end > data_size)
        fail("{}: tensor '{}': data_offsets [{}, {}] run past the data section, which holds {} bytes ({})", file, name,
             e.begin, e.end, data_size, kHint);
      uint64_t bit_count = 0;
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(bits), &bit_count))
        fail("{}: tensor '{}': shape {} of {} is too large", file, name, shape_string(e.shape), e.dtype);
      if (bit_count % 8 != 0)
        fail("{}: tensor '{}': shape {} of {} is not a whole number of bytes", file, name, shape_string(e.shape), e.dtype);
      if (e.end - e.begin != bit_count / 8)
        fail("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", file, name, e.begin, e.end,
             e.end - e.begin, shape_string(e.shape), e.dtype, bit_count / 8);
      entries_.push_back(std::move(e));
    }

    // The tensors must tile the data section: no holes, no overlaps, nothing after the last.
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const auto& a, const auto& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    uint64_t cursor = 0;
    const SafetensorsEntry* previous = nullptr;
    for (const auto& e : entries_) {
      if (e.begin < cursor)
        fail("{}: tensor '{}' (bytes {}..{}) overlaps tensor '{}' (bytes {}..{})", file, e.name, e.begin, e.end,
             previous->name, previous->begin, previous->end);
      if (e.begin > cursor)
        fail("{}: {} unused bytes before tensor '{}' (data_offsets begin at {}, previous tensor ends at {}; {})", file,
             e.begin - cursor, e.name, e.begin, cursor, kHint);
      cursor = e.end;
      if (e.end > e.begin) previous = &e;
    }
    if (cursor != data_size)
      fail("{}: the data section holds {} bytes but the tensors cover {} ({} trailing bytes; {})", file, data_size, cursor,
           data_size - cursor, kHint);
    for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
  } catch (...) {
    unmap_file(data_, size_);
    data_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (data_) unmap_file(data_, size_);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

namespace {

// Lets the kernel drop the mapped pages of [begin, begin + bytes): the copy made from them is ours.
// The mapping is private and read-only, so a later read faults the same bytes back in from the file;
// a checkpoint converted tensor by tensor (bf16 -> fp32) then never holds the file's pages and the
// converted model at once.
void release_pages(const uint8_t* begin, uint64_t bytes) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(begin) & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(first), reinterpret_cast<uintptr_t>(begin) + bytes - first, MADV_DONTNEED);
}

}  // namespace

at::ScalarType SafetensorsFile::torch_type(const SafetensorsEntry& e, const std::string& name) const {
  at::ScalarType type;
  if (!safetensors_dtype_to_torch(e.dtype, &type))
    fail("{}: tensor '{}': dtype {} has no LibTorch equivalent", path_.string(), name, e.dtype);
  return type;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail("{}: no tensor named '{}'", path_.string(), name);
  at::Tensor out = at::empty(e->shape, at::TensorOptions().dtype(torch_type(*e, name)));
  if (e->end > e->begin) {
    const uint8_t* begin = data_ + data_start_ + e->begin;
    std::memcpy(out.data_ptr(), begin, e->end - e->begin);
    release_pages(begin, e->end - e->begin);
  }
  return out;
}

at::Tensor SafetensorsFile::read(const std::string& name, at::ScalarType dtype, const c10::Device& device) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail("{}: no tensor named '{}'", path_.string(), name);
  const at::ScalarType type = torch_type(*e, name);
  if (e->end == e->begin) return at::empty(e->shape, at::TensorOptions().dtype(dtype).device(device));
  const uint8_t* begin = data_ + data_start_ + e->begin;
  const at::Tensor mapped = at::from_blob(const_cast<uint8_t*>(begin), e->shape, at::TensorOptions().dtype(type));
  at::Tensor out = mapped.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  release_pages(begin, e->end - e->begin);
  return out;
}

void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Order as the reference writer does: by dtype alignment (largest first), then by name.
  std::vector<std::pair<std::string, at::Tensor>> ordered;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second) fail("{}: tensor name '{}' is used twice or reserved", path.string(), name);
    ordered.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  }
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    size_t sa = a.second.element_size(), sb = b.second.element_size();
    return sa != sb ? sa > sb : a.first < b.first;
  });

  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = {{"format", "pt"}};
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const auto& [name, t] : ordered) {
    uint64_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", torch_to_safetensors_dtype(t.scalar_type())}, {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // 8-byte aligned data section

  std::filesystem::path tmp = path;
  tmp += fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot write ({})", tmp.string(), std::strerror(errno));
    uint64_t n = text.size();
    char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(length, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, t] : ordered)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp);
      fail("{}: write failed (disk full?)", path.string());
    }
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace lorakit
