#include "core/json_reader.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace lorakit {

namespace {

std::string describe(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return fmt::format("{} {}", value.type_name(), text);
}

// Line and column of a byte offset, for parse errors.
std::pair<size_t, size_t> line_column(std::string_view text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

JsonReader::JsonReader(const nlohmann::json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object_.is_object()) fail("{}: expected a JSON object, found {}", where_, describe(object_));
}

nlohmann::json JsonReader::parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open file (hint: check the path and its permissions)", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  check_json_depth(text, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    auto [line, column] = line_column(text, e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    auto colon = what.rfind(": ");
    fail("{}:{}:{}: invalid JSON: {}", path, line, column,
         colon == std::string::npos ? what : what.substr(colon + 2));
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range 406: a number past double's range
    fail("{}: invalid JSON: {}", path, json_error_message(e));
  }
}

bool JsonReader::has(const std::string& key) const {
  auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

const nlohmann::json& JsonReader::at(const std::string& key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) {
    std::vector<std::string> keys;
    for (const auto& item : object_.items()) keys.push_back(item.key());
    fail("{}: missing required key '{}'{}", where_, key, did_you_mean(key, keys));
  }
  return *it;
}

void JsonReader::fail_key(const std::string& key, const std::string& expected) const {
  auto it = object_.find(key);
  std::string found = it == object_.end() ? "nothing" : describe(*it);
  fail("{}: key '{}': expected {}, found {}", where_, key, expected, found);
}

JsonReader JsonReader::child(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_object()) fail_key(key, "an object");
  return JsonReader(value, where_ + ": " + key);
}

int64_t JsonReader::integer(const std::string& key) const {
  const auto& value = at(key);
  if (value.is_number_integer()) return value.get<int64_t>();
  // HF writes some integers as floats (e.g. 8192.0 in rope_scaling); accept exact ones (within int64's
  // range: casting 1e300 would be undefined behaviour).
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (d > -9.2e18 && d < 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  fail_key(key, "an integer");
}

int64_t JsonReader::integer(const std::string& key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

double JsonReader::number(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_number()) fail_key(key, "a number");
  return value.get<double>();
}

double JsonReader::number(const std::string& key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

bool JsonReader::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& value = at(key);
  if (!value.is_boolean()) fail_key(key, "true or false");
  return value.get<bool>();
}

std::string JsonReader::string(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_string()) fail_key(key, "a string");
  return value.get<std::string>();
}

std::string JsonReader::string(const std::string& key, const std::string& fallback) const {
  return has(key) ? string(key) : fallback;
}

std::optional<int64_t> JsonReader::optional_integer(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return integer(key);
}

std::vector<std::string> JsonReader::string_list(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_array()) fail_key(key, "a list of strings");
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) fail_key(key, "a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

int32_t json_id(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_integer() || (value.is_number_unsigned() ? value.get<uint64_t>() > 0x7fffffffu
                                                                 : (value.get<int64_t>() < 0 || value.get<int64_t>() > 0x7fffffff)))
    fail("{}: expected a token id (an integer from 0 to 2147483647), found {}", where, value.dump());
  return static_cast<int32_t>(value.get<int64_t>());
}

void check_json_depth(std::string_view text, const std::string& where) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        const auto [line, column] = line_column(text, i);
        fail("{}:{}:{}: JSON nested more than {} levels deep; hint: this is not a file Hugging Face's tools write",
             where, line, column, kMaxJsonDepth);
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

int32_t parse_id(const std::string& text, const std::string& where) {
  int32_t id = -1;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (error != std::errc() || end != text.data() + text.size() || id < 0)
    fail("{}: expected a token id (an integer from 0 to 2147483647), found \"{}\"", where, text.substr(0, 40));
  return id;
}

std::string json_error_message(const nlohmann::json::exception& e) {
  const std::string what = e.what();
  const size_t end = what.starts_with("[json.exception.") ? what.find("] ") : std::string::npos;
  return end == std::string::npos ? what : what.substr(end + 2);
}

}  // namespace lorakit
