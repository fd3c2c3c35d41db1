// Examples -> training batches, streamed: a seeded shuffle buffer (reproducible: same seed and
// epoch, same order), epochs that re-read the file, padding to the longest row of each batch
// (never to max_seq_len), optional packing of short examples into one row with position ids that
// restart and sequence ids for block-diagonal attention, and a cursor to resume a run with the
// very next batch it would have seen.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/examples.h"
#include "data/records.h"

namespace lorakit::data {

struct BatchConfig {
  int64_t batch_size = 8;          // rows per batch
  int64_t shuffle_buffer = 10000;  // examples held for shuffling; 1 = file order
  uint64_t seed = 42;
  bool packing = false;            // pack examples into rows of up to pack_length tokens
  int64_t pack_length = 2048;
  int32_t pad_id = 0;
};

// Row-major (rows, cols) arrays; padding has input id pad_id, label -100, mask 0 and sequence id -1.
struct Batch {
  int64_t rows = 0, cols = 0;
  std::vector<int32_t> input_ids, labels, attention_mask, position_ids, sequence_ids;
  std::vector<int32_t> class_labels;  // sequence classification: one label id per row, else empty
  int64_t examples = 0;
  int64_t loss_tokens = 0;  // shifted labels that are not -100: the tokens the loss averages over
                            // (classification: the rows, one loss each)
  std::vector<size_t> lines;  // source line of each example, in order
};

// Rows [begin, end) of a batch (the same columns), its loss tokens recounted: one rank's share of a
// micro-batch under torchrun.
Batch slice_rows(const Batch& batch, int64_t begin, int64_t end);

// Where a stream stands: the epoch and how many batches of it were already handed out.
struct Cursor {
  int64_t epoch = 0;
  int64_t batch = 0;
  nlohmann::json to_json() const { return {{"epoch", epoch}, {"batch", batch}}; }
  static Cursor from_json(const nlohmann::json& j) { return {j.at("epoch").get<int64_t>(), j.at("batch").get<int64_t>()}; }
};

class BatchStream {
 public:
  using Opener = std::function<std::unique_ptr<RecordReader>()>;
  // `open` re-opens the file at each epoch. Starting at `cursor` replays the same shuffled order
  // and skips the batches already seen.
  BatchStream(Opener open, const ExampleBuilder& builder, BatchConfig config, Cursor cursor = {});

  // The next batch of the current epoch; false at its end (call next_epoch() to go on).
  bool next(Batch& batch);
  void next_epoch();
  const Cursor& cursor() const { return cursor_; }

 private:
  bool next_example(Example& example);  // shuffled order
  bool read_example(Example& example);  // file order
  void start_epoch();

  Opener open_;
  const ExampleBuilder& builder_;
  BatchConfig config_;
  Cursor cursor_;
  std::unique_ptr<RecordReader> reader_;
  std::vector<Example> buffer_;
  std::mt19937_64 rng_;
  bool exhausted_ = false;
  std::deque<Example> carry_;  // an example that did not fit the previous packed row
};

// Pads `examples` into one batch (no packing).
Batch pad_batch(const std::vector<Example>& examples, int32_t pad_id);

// Packs each row's examples one after another (positions restart, sequence ids count up, the
// first label of each example masked), rows padded to the longest.
Batch pack_batch(const std::vector<std::vector<const Example*>>& rows, int32_t pad_id);

}  // namespace lorakit::data
