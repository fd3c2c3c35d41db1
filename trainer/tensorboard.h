// TensorBoard event files written by hand, so a run directory is a TensorBoard run while it trains:
// events.out.tfevents.<unix time>.<host> holds TFRecord frames (uint64 length, masked CRC-32C of
// the length, the bytes, masked CRC-32C of the bytes) of Event protos (the few fields of
// tensorboard's event.proto / summary.proto that scalars and text need), flushed after every
// record, so a killed writer leaves a file readable up to its last whole record. No protobuf
// library: it would risk symbol clashes with LibTorch's (../shared/docs/libtorch.md section 4).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace lorakit::trainer {

// CRC-32C (Castagnoli) and TFRecord's mask of it.
uint32_t crc32c(const std::string& bytes);
uint32_t masked_crc32c(const std::string& bytes);

class EventWriter {
 public:
  // A new event file in `dir`. `resume_step` >= 0: the run continues after that step, and a
  // SessionLog START at resume_step + 1 tells TensorBoard to drop what an earlier file logged
  // past the checkpoint, so the curves have neither duplicate nor lost steps.
  // `file_name` non-empty: that file, started afresh (a summary rewritten whole, e.g. a sweep's HParams).
  EventWriter(const std::filesystem::path& dir, int64_t resume_step = -1, const std::string& file_name = "");
  void scalar(int64_t step, const std::string& tag, double value);
  // A text summary (TensorBoard's text plugin), e.g. the resolved recipe.
  void text(int64_t step, const std::string& tag, const std::string& text);
  // A summary whose value carries plugin data (the HParams plugin's protos), at step 0.
  void plugin_summary(const std::string& tag, const std::string& plugin, const std::string& content);
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_event(const std::string& event);
  std::filesystem::path path_;
  std::ofstream out_;  // open for the writer's life, flushed after every record
};

// The protobuf wire format, for the few messages lorakit writes.
namespace proto {
std::string varint_field(int field, uint64_t value);
std::string bytes_field(int field, const std::string& bytes);  // strings and sub-messages
std::string double_field(int field, double value);
std::string float_field(int field, float value);
}  // namespace proto

}  // namespace lorakit::trainer
