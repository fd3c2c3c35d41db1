#include "data/records.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/json_reader.h"
#include "tokenizers/unicode.h"

namespace lorakit::data {
namespace {

using nlohmann::json;

// A file read through a fixed buffer, tracking line and character column of the next byte.
class ByteStream {
 public:
  explicit ByteStream(const std::string& path) : path_(path), buffer_(1u << 20) {
    if (std::filesystem::is_directory(path)) fail("{}: is a directory, expected a CSV or JSONL file", path);
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) fail("{}: cannot open ({})", path, std::strerror(errno));
  }
  ~ByteStream() {
    if (file_) std::fclose(file_);
  }
  int peek() {
    if (pos_ == len_ && !fill()) return -1;
    return static_cast<unsigned char>(buffer_[pos_]);
  }
  int get() {
    const int c = peek();
    if (c < 0) return c;
    ++pos_;
    ++bytes_;
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++column_;
    }
    return c;
  }
  size_t line() const { return line_; }
  size_t column() const { return column_; }
  uint64_t bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  bool fill() {
    len_ = std::fread(buffer_.data(), 1, buffer_.size(), file_);
    pos_ = 0;
    return len_ > 0;
  }
  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
  size_t pos_ = 0, len_ = 0, line_ = 1, column_ = 1;
  uint64_t bytes_ = 0;
};

// Where in the file the byte at `offset` of a field lies, given where the field started.
std::pair<size_t, size_t> position_in(const std::string& field, size_t offset, size_t line, size_t column) {
  for (size_t i = 0; i < offset; ++i) {
    const auto c = static_cast<unsigned char>(field[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++column;
    }
  }
  return {line, column};
}

// "" when `field` is valid UTF-8, else the message naming where it is not.
std::string utf8_problem(const std::string& path, const std::string& field, size_t line, size_t column) {
  const size_t bad = tokenizers::invalid_utf8_offset(field);
  if (bad == std::string::npos) return "";
  const auto [l, c] = position_in(field, bad, line, column);
  return fmt::format("{}:{}:{}: invalid UTF-8 (byte 0x{:02X}); hint: save the file as UTF-8 (e.g. iconv -f CP949 "
                     "-t UTF-8), or pass --skip-bad-rows", path, l, c, static_cast<unsigned char>(field[bad]));
}

class CsvReader : public RecordReader {
 public:
  CsvReader(const std::string& path, ReaderOptions options) : in_(path), options_(options) {
    // A UTF-8 byte order mark before the header is skipped.
    if (in_.peek() == 0xEF) {
      std::string bom;
      for (int i = 0; i < 3 && in_.peek() >= 0; ++i) bom.push_back(static_cast<char>(in_.get()));
      if (bom != "\xEF\xBB\xBF") pending_ = bom;
    }
    std::vector<std::string> header;
    size_t line = 0;
    if (!read_row(header, line))
      fail("{}: the file is empty; expected a header row naming the columns", path);
    if (!row_error_.empty()) throw Error(row_error_);
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i].empty()) header[i] = fmt::format("column_{}", i + 1);  // e.g. pandas' index column
      if (const auto [it, added] = seen.emplace(header[i], i); !added)
        fail("{}:1: column name '{}' appears twice (columns {} and {})", path, header[i], it->second + 1, i + 1);
    }
    columns_ = std::move(header);
  }

  bool next(Record& record) override {
    std::vector<std::string>& fields = fields_;
    size_t line = 0;
    for (;;) {
      row_error_.clear();
      if (!read_row(fields, line)) return false;
      if (row_error_.empty() && fields.size() != columns_.size())
        row_error_ = fmt::format("{}:{}: this row has {} field{}, the header has {} columns; hint: quote fields that "
                                 "contain '{}' or line breaks, or pass --skip-bad-rows",
                                 in_.path(), line, fields.size(), fields.size() == 1 ? "" : "s", columns_.size(),
                                 options_.delimiter == '\t' ? "\\t" : std::string(1, options_.delimiter));
      if (row_error_.empty() || !bad_row(row_error_, options_.skip_bad_rows)) break;
    }
    record.line = line;
    record.fields = json::object();
    for (size_t i = 0; i < fields.size(); ++i) record.fields[columns_[i]] = std::move(fields[i]);
    return true;
  }

  const std::vector<std::string>& columns() const override { return columns_; }
  const std::string& path() const override { return in_.path(); }
  uint64_t bytes_read() const override { return in_.bytes(); }

 private:
  int peek() { return pending_.empty() ? in_.peek() : static_cast<unsigned char>(pending_[0]); }
  int get() {
    if (pending_.empty()) return in_.get();
    const int c = static_cast<unsigned char>(pending_[0]);
    pending_.erase(0, 1);
    return c;
  }

  void append(std::string& field, int c, size_t line) {
    if (c == 0) {
      if (row_error_.empty())
        row_error_ = fmt::format("{}:{}:{}: NUL byte; this is not a text file (hint: is it UTF-16 or a spreadsheet?)",
                                 in_.path(), in_.line(), in_.column() - 1);
      return;
    }
    if (field.size() >= options_.max_field_bytes)
      fail("{}:{}:{}: a field longer than {} MiB (started at line {}); hint: an unbalanced quote makes the "
           "rest of the file one field", in_.path(), in_.line(), in_.column(), options_.max_field_bytes >> 20, line);
    field.push_back(static_cast<char>(c));
  }

  // Reads one row into `fields`; false at the end of the file. Blank lines are skipped.
  bool read_row(std::vector<std::string>& fields, size_t& row_line) {
    fields.clear();
    while (peek() == '\n' || peek() == '\r') get();
    if (peek() < 0) return false;
    row_line = in_.line();
    const char delimiter = options_.delimiter;
    for (;;) {
      std::string field;
      const size_t line = in_.line(), column = in_.column();
      int c = peek();
      const bool quoted = c == '"';
      if (quoted) {
        get();
        for (;;) {
          c = get();
          if (c < 0)
            fail("{}:{}:{}: unterminated quoted field (started at line {}, column {}); hint: double a quote "
                 "inside a quoted field (\"\")", in_.path(), in_.line(), in_.column(), line, column);
          if (c == '"') {
            if (peek() == '"') {
              get();
              append(field, '"', line);
              continue;
            }
            break;
          }
          append(field, c, line);
        }
        c = peek();
        if (c >= 0 && c != delimiter && c != '\n' && c != '\r') {
          if (row_error_.empty())
            row_error_ = fmt::format("{}:{}:{}: unexpected '{}' after the closing quote of a field (started at line "
                                     "{}); hint: a quote inside a quoted field must be doubled (\"\")", in_.path(),
                                     in_.line(), in_.column(), static_cast<char>(c), line);
          while ((c = peek()) >= 0 && c != delimiter && c != '\n' && c != '\r') append(field, get(), line);
        }
      } else {
        while ((c = peek()) >= 0 && c != delimiter && c != '\n' && c != '\r') append(field, get(), line);
      }
      if (row_error_.empty()) row_error_ = utf8_problem(in_.path(), field, line, quoted ? column + 1 : column);
      fields.push_back(std::move(field));
      if (fields.size() > options_.max_fields)
        fail("{}:{}: a row of more than {} fields; hint: is the delimiter right?", in_.path(), row_line,
             options_.max_fields);
      c = get();
      if (c == delimiter) continue;
      if (c == '\r' && peek() == '\n') get();
      return true;  // end of line or of file
    }
  }

  ByteStream in_;
  ReaderOptions options_;
  std::string pending_;
  std::vector<std::string> columns_;
  std::vector<std::string> fields_;
  std::string row_error_;  // the first problem of the row being read
};

class JsonlReader : public RecordReader {
 public:
  JsonlReader(const std::string& path, ReaderOptions options) : in_(path), options_(options) {}

  bool next(Record& record) override {
    std::string text;
    for (;;) {
      const size_t line = in_.line();
      if (in_.peek() < 0) return false;
      text.clear();
      std::string problem;
      int c;
      while ((c = in_.get()) >= 0 && c != '\n') {
        if (c == 0 && problem.empty())
          problem = fmt::format("{}:{}:{}: NUL byte; this is not a JSONL text file", in_.path(), line, in_.column() - 1);
        if (text.size() >= options_.max_field_bytes)
          fail("{}:{}: a line longer than {} MiB", in_.path(), line, options_.max_field_bytes >> 20);
        text.push_back(static_cast<char>(c));
      }
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (line == 1 && text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);
      if (text.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
      if (problem.empty()) problem = utf8_problem(in_.path(), text, line, 1);
      if (problem.empty()) {
        try {
          check_json_depth(text, fmt::format("{}:{}", in_.path(), line));
        } catch (const Error& e) {
          problem = e.what();
        }
      }
      if (problem.empty()) {
        try {
          record.fields = json::parse(text);
          if (!record.fields.is_object())
            problem = fmt::format("{}:{}: expected a JSON object ({{\"column\": value, ...}}), found {}", in_.path(),
                                  line, record.fields.type_name());
        } catch (const json::parse_error& e) {
          const std::string what = e.what();
          problem = fmt::format("{}:{}:{}: invalid JSON: {}; hint: JSONL needs one complete JSON object per line",
                                in_.path(), line, e.byte, what.substr(what.find("parse error")));
        } catch (const json::exception& e) {  // a number past double's range, ...
          problem = fmt::format("{}:{}: invalid JSON: {}", in_.path(), line, json_error_message(e));
        }
      }
      if (!problem.empty()) {
        if (bad_row(problem, options_.skip_bad_rows)) continue;
      }
      for (const auto& [key, value] : record.fields.items())
        if (std::find(columns_.begin(), columns_.end(), key) == columns_.end()) columns_.push_back(key);
      record.line = line;
      return true;
    }
  }

  const std::vector<std::string>& columns() const override { return columns_; }
  const std::string& path() const override { return in_.path(); }
  uint64_t bytes_read() const override { return in_.bytes(); }

 private:
  ByteStream in_;
  ReaderOptions options_;
  std::vector<std::string> columns_;
};

}  // namespace

bool RecordReader::bad_row(const std::string& message, bool skip) {
  if (!skip) throw Error(message);
  ++bad_rows_;
  if (bad_row_examples_.size() < 5) bad_row_examples_.push_back(message);
  return true;
}

std::unique_ptr<RecordReader> open_records(const std::string& path, ReaderOptions options) {
  std::string extension = std::filesystem::path(path).extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!std::filesystem::exists(path)) fail("{}: no such file", path);
  if (extension == ".csv" || extension == ".tsv" || (options.delimiter && extension == ".txt")) {
    if (!options.delimiter) options.delimiter = extension == ".tsv" ? '\t' : ',';
    return std::make_unique<CsvReader>(path, options);
  }
  if (extension == ".jsonl" || extension == ".json" || extension == ".ndjson")
    return std::make_unique<JsonlReader>(path, options);
  fail("{}: unknown data format '{}'; expected .csv, .tsv or .jsonl", path, extension);
}

}  // namespace lorakit::data
