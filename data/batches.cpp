#include "data/batches.h"

#include <algorithm>

#include "core/error.h"

namespace lorakit::data {
namespace {

// Shifted labels that count for the loss: label[t] for t >= 1 that is not -100.
int64_t loss_tokens_of(const std::vector<int32_t>& labels, size_t begin, size_t end) {
  int64_t n = 0;
  for (size_t t = begin + 1; t < end; ++t) n += labels[t] != kIgnoreIndex;
  return n;
}

}  // namespace

Batch pad_batch(const std::vector<Example>& examples, int32_t pad_id) {
  std::vector<std::vector<const Example*>> rows;
  for (const Example& e : examples) rows.push_back({&e});
  Batch batch = pack_batch(rows, pad_id);
  if (!examples.empty() && examples.front().class_label >= 0) {
    for (const Example& e : examples) batch.class_labels.push_back(e.class_label);
    batch.loss_tokens = batch.rows;
  }
  return batch;
}

Batch pack_batch(const std::vector<std::vector<const Example*>>& rows, int32_t pad_id) {
  Batch batch;
  batch.rows = static_cast<int64_t>(rows.size());
  for (const auto& row : rows) {
    int64_t length = 0;
    for (const Example* e : row) length += static_cast<int64_t>(e->input_ids.size());
    batch.cols = std::max(batch.cols, length);
  }
  const auto size = static_cast<size_t>(batch.rows * batch.cols);
  batch.input_ids.assign(size, pad_id);
  batch.labels.assign(size, kIgnoreIndex);
  batch.attention_mask.assign(size, 0);
  batch.position_ids.assign(size, 0);
  batch.sequence_ids.assign(size, -1);
  for (size_t r = 0; r < rows.size(); ++r) {
    size_t at = r * static_cast<size_t>(batch.cols);
    int32_t sequence = 0;
    for (const Example* e : rows[r]) {
      const size_t n = e->input_ids.size();
      std::copy(e->input_ids.begin(), e->input_ids.end(), batch.input_ids.begin() + static_cast<ptrdiff_t>(at));
      std::copy(e->labels.begin(), e->labels.end(), batch.labels.begin() + static_cast<ptrdiff_t>(at));
      // The first token of an example is never predicted from the example before it.
      batch.labels[at] = kIgnoreIndex;
      for (size_t t = 0; t < n; ++t) {
        batch.attention_mask[at + t] = 1;
        batch.position_ids[at + t] = static_cast<int32_t>(t);
        batch.sequence_ids[at + t] = sequence;
      }
      batch.loss_tokens += loss_tokens_of(batch.labels, at, at + n);
      batch.lines.push_back(e->line);
      ++batch.examples;
      ++sequence;
      at += n;
    }
  }
  return batch;
}

BatchStream::BatchStream(Opener open, const ExampleBuilder& builder, BatchConfig config, Cursor cursor)
    : open_(std::move(open)), builder_(builder), config_(config) {
  if (config_.batch_size < 1) fail("batch_size must be at least 1, found {}", config_.batch_size);
  if (config_.shuffle_buffer < 1) fail("shuffle_buffer must be at least 1, found {}", config_.shuffle_buffer);
  cursor_.epoch = cursor.epoch;
  start_epoch();
  Batch skipped;
  for (int64_t b = 0; b < cursor.batch; ++b)
    if (!next(skipped))
      fail("cannot resume at batch {} of epoch {}: the data has only {} batches per epoch; hint: did the data "
           "file or the batch settings change since the checkpoint?", cursor.batch, cursor.epoch, b);
}

void BatchStream::start_epoch() {
  reader_ = open_();
  buffer_.clear();
  carry_.clear();
  exhausted_ = false;
  cursor_.batch = 0;
  // One generator per (seed, epoch): the order of an epoch does not depend on earlier epochs.
  rng_.seed(config_.seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(cursor_.epoch + 1)));
}

void BatchStream::next_epoch() {
  ++cursor_.epoch;
  start_epoch();
}

bool BatchStream::read_example(Example& example) {
  Record record;
  std::string reason;
  while (reader_->next(record))
    if (auto built = builder_.build(record, reader_->path(), reason)) {
      example = std::move(*built);
      return true;
    }
  return false;
}

// A shuffle buffer: keep up to shuffle_buffer examples, hand out a random one and put the next
// example of the file in its place; at the end of the file, drain the buffer in random order.
bool BatchStream::next_example(Example& example) {
  while (!exhausted_ && buffer_.size() < static_cast<size_t>(config_.shuffle_buffer)) {
    Example e;
    if (!read_example(e)) {
      exhausted_ = true;
      break;
    }
    buffer_.push_back(std::move(e));
  }
  if (buffer_.empty()) return false;
  const size_t pick = static_cast<size_t>(rng_() % buffer_.size());
  example = std::move(buffer_[pick]);
  Example incoming;
  if (!exhausted_ && read_example(incoming)) {
    buffer_[pick] = std::move(incoming);
  } else {
    exhausted_ = true;
    buffer_[pick] = std::move(buffer_.back());
    buffer_.pop_back();
  }
  return true;
}

bool BatchStream::next(Batch& batch) {
  std::vector<Example> examples;
  std::vector<std::vector<const Example*>> rows;
  if (!config_.packing) {
    Example e;
    while (static_cast<int64_t>(examples.size()) < config_.batch_size && next_example(e)) examples.push_back(std::move(e));
    if (examples.empty()) return false;
    batch = pad_batch(examples, config_.pad_id);
  } else {
    // Greedy first-fit in stream order: a row takes examples until the next would pass pack_length.
    std::vector<std::vector<size_t>> row_members;
    int64_t row_length = 0;
    Example e;
    examples.reserve(static_cast<size_t>(config_.batch_size) * 8);
    for (;;) {
      if (!carry_.empty()) {
        e = std::move(carry_.front());
        carry_.pop_front();
      } else if (!next_example(e)) {
        break;
      }
      const auto n = static_cast<int64_t>(e.input_ids.size());
      if (n > config_.pack_length)
        fail("an example of {} tokens (line {}) is longer than pack_length {}; hint: set max_seq_len <= pack_length",
             n, e.line, config_.pack_length);
      if (row_members.empty() || row_length + n > config_.pack_length) {
        if (static_cast<int64_t>(row_members.size()) == config_.batch_size) {
          carry_.push_back(std::move(e));
          break;
        }
        row_members.emplace_back();
        row_length = 0;
      }
      row_members.back().push_back(examples.size());
      examples.push_back(std::move(e));
      row_length += n;
    }
    if (examples.empty()) return false;
    for (const auto& members : row_members) {
      rows.emplace_back();
      for (size_t i : members) rows.back().push_back(&examples[i]);
    }
    batch = pack_batch(rows, config_.pad_id);
  }
  ++cursor_.batch;
  return true;
}

Batch slice_rows(const Batch& batch, int64_t begin, int64_t end) {
  Batch out;
  out.rows = end - begin;
  out.cols = batch.cols;
  const auto rows = [&](const std::vector<int32_t>& v) {
    if (v.empty()) return std::vector<int32_t>();
    return std::vector<int32_t>(v.begin() + begin * batch.cols, v.begin() + end * batch.cols);
  };
  out.input_ids = rows(batch.input_ids);
  out.labels = rows(batch.labels);
  out.attention_mask = rows(batch.attention_mask);
  out.position_ids = rows(batch.position_ids);
  out.sequence_ids = rows(batch.sequence_ids);
  if (!batch.class_labels.empty()) {
    out.class_labels.assign(batch.class_labels.begin() + begin, batch.class_labels.begin() + end);
    out.loss_tokens = out.rows;
    out.examples = out.rows;
    return out;
  }
  for (int64_t r = 0; r < out.rows; ++r)
    for (int64_t c = 1; c < out.cols; ++c) out.loss_tokens += out.labels[r * out.cols + c] != kIgnoreIndex;  // as loss_tokens_of, row by row
  out.examples = batch.rows > 0 ? batch.examples * out.rows / batch.rows : 0;  // exact unless packed
  return out;
}

}  // namespace lorakit::data
