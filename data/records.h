// Streaming readers for the files users train on: CSV (RFC 4180: quoted fields with delimiters,
// newlines and doubled quotes; CRLF or LF; a UTF-8 BOM; a header row) and JSONL (one JSON object
// per line). Memory stays flat however large the file: one record at a time through a fixed buffer.
// Every error names file:line:column, what is wrong and, for a quoted field, the line it began on.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorakit::data {

struct Record {
  size_t line = 0;         // 1-based line where the record starts
  nlohmann::json fields;   // column -> value (CSV: strings; JSONL: any JSON)
};

struct ReaderOptions {
  char delimiter = 0;                        // CSV only; 0 = by extension (.csv ',', .tsv tab)
  size_t max_field_bytes = 16u << 20;        // a longer field is an error (likely a broken quote)
  size_t max_fields = 65536;                 // CSV: a row of more fields is an error
  bool skip_bad_rows = false;  // count and skip rows with a wrong field count, bad UTF-8, NUL bytes, bad JSON
};

class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // The next record, or false at the end of the file.
  virtual bool next(Record& record) = 0;
  virtual const std::vector<std::string>& columns() const = 0;  // CSV header; JSONL: keys seen so far
  virtual const std::string& path() const = 0;
  virtual uint64_t bytes_read() const = 0;
  // Rows skipped with skip_bad_rows, and the messages of the first few.
  int64_t bad_rows() const { return bad_rows_; }
  const std::vector<std::string>& bad_row_examples() const { return bad_row_examples_; }

 protected:
  // A row-level problem: an error, or with skip_bad_rows a counted skip (true: skip the row).
  bool bad_row(const std::string& message, bool skip);

 private:
  int64_t bad_rows_ = 0;
  std::vector<std::string> bad_row_examples_;
};

// By extension: .csv / .tsv (tab) or .jsonl / .json lines. Errors name the file.
std::unique_ptr<RecordReader> open_records(const std::string& path, ReaderOptions options = {});

}  // namespace lorakit::data
