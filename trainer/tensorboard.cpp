#include "trainer/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"

namespace lorakit::trainer {
namespace proto {

namespace {
std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string key(int field, int wire_type) { return varint((static_cast<uint64_t>(field) << 3) | wire_type); }
template <typename T>
std::string little_endian(T value) {
  std::string out(sizeof(T), '\0');
  std::memcpy(out.data(), &value, sizeof(T));  // x86-64 and aarch64 are little-endian
  return out;
}
}  // namespace

std::string varint_field(int field, uint64_t value) { return key(field, 0) + varint(value); }
std::string bytes_field(int field, const std::string& bytes) { return key(field, 2) + varint(bytes.size()) + bytes; }
std::string double_field(int field, double value) { return key(field, 1) + little_endian(value); }
std::string float_field(int field, float value) { return key(field, 5) + little_endian(value); }

}  // namespace proto

uint32_t crc32c(const std::string& bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event{ wall_time = 1, step = 2, <rest> }
std::string event(int64_t step, const std::string& rest) {
  return proto::double_field(1, now()) + proto::varint_field(2, static_cast<uint64_t>(step)) + rest;
}

}  // namespace

EventWriter::EventWriter(const std::filesystem::path& dir, int64_t resume_step, const std::string& file_name) {
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  std::filesystem::create_directories(dir);
  // A unique name even when a resume starts within the same second as the previous file.
  std::string name = file_name.empty() ? fmt::format("events.out.tfevents.{}.{}", static_cast<int64_t>(now()), host) : file_name;
  for (int k = 1; file_name.empty() && std::filesystem::exists(dir / name); ++k)
    name = fmt::format("events.out.tfevents.{}.{}.{}", static_cast<int64_t>(now()), host, k);
  path_ = dir / name;
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) fail("{}: cannot create the TensorBoard event file", path_.string());
  write_event(proto::double_field(1, now()) + proto::bytes_field(3, "brain.Event:2"));
  // SessionLog{ status = START (1) } in Event.session_log = 7.
  if (resume_step >= 0) write_event(event(resume_step + 1, proto::bytes_field(7, proto::varint_field(1, 1))));
}

void EventWriter::write_event(const std::string& data) {
  const std::string length = [&] {
    std::string out(8, '\0');
    const uint64_t n = data.size();
    std::memcpy(out.data(), &n, 8);
    return out;
  }();
  const auto fixed32 = [](uint32_t v) {
    std::string out(4, '\0');
    std::memcpy(out.data(), &v, 4);
    return out;
  };
  out_ << length << fixed32(masked_crc32c(length)) << data << fixed32(masked_crc32c(data));
  out_.flush();
  if (!out_) fail("{}: cannot append a TensorBoard record (disk full?)", path_.string());
}

void EventWriter::scalar(int64_t step, const std::string& tag, double value) {
  // Summary{ value = 1: Value{ tag = 1, simple_value = 2 } } in Event.summary = 5.
  const std::string value_msg = proto::bytes_field(1, tag) + proto::float_field(2, static_cast<float>(value));
  write_event(event(step, proto::bytes_field(5, proto::bytes_field(1, value_msg))));
}

void EventWriter::text(int64_t step, const std::string& tag, const std::string& text) {
  // Value{ tag = 1, metadata = 9: SummaryMetadata{ plugin_data = 1: { plugin_name = 1: "text" } },
  //        tensor = 8: TensorProto{ dtype = 1: DT_STRING (7), tensor_shape = 2: { dim = 2: { size = 1: 1 } },
  //                                 string_val = 8 } }
  const std::string metadata = proto::bytes_field(1, proto::bytes_field(1, "text"));
  const std::string shape = proto::bytes_field(2, proto::varint_field(1, 1));
  const std::string tensor = proto::varint_field(1, 7) + proto::bytes_field(2, shape) + proto::bytes_field(8, text);
  const std::string value_msg = proto::bytes_field(1, tag) + proto::bytes_field(8, tensor) + proto::bytes_field(9, metadata);
  write_event(event(step, proto::bytes_field(5, proto::bytes_field(1, value_msg))));
}

void EventWriter::plugin_summary(const std::string& tag, const std::string& plugin, const std::string& content) {
  // Value{ tag = 1, metadata = 9: { plugin_data = 1: { plugin_name = 1, content = 2 } }, tensor = 8: DT_FLOAT scalar 0 }
  const std::string metadata = proto::bytes_field(1, proto::bytes_field(1, plugin) + proto::bytes_field(2, content));
  const std::string tensor = proto::varint_field(1, 1) + proto::bytes_field(2, "") + proto::bytes_field(5, std::string(4, '\0'));
  const std::string value_msg = proto::bytes_field(1, tag) + proto::bytes_field(8, tensor) + proto::bytes_field(9, metadata);
  write_event(event(0, proto::bytes_field(5, proto::bytes_field(1, value_msg))));
}

}  // namespace lorakit::trainer
