// Typed access to a JSON object (config.json, adapter_config.json) with errors that name the file
// and the key: "config.json: key 'hidden_size': expected an integer, found \"2k\"".
// It is not a schema: each model file asks for the keys it knows, with HF's names and defaults.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lorakit {

class JsonReader {
 public:
  JsonReader(const nlohmann::json& object, std::string where);

  static nlohmann::json parse_file(const std::string& path);  // errors name the file, line, column

  bool has(const std::string& key) const;  // present and not null
  const nlohmann::json& raw() const { return object_; }
  const std::string& where() const { return where_; }
  JsonReader child(const std::string& key) const;  // a nested object

  int64_t integer(const std::string& key) const;
  int64_t integer(const std::string& key, int64_t fallback) const;
  double number(const std::string& key) const;
  double number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  std::optional<int64_t> optional_integer(const std::string& key) const;
  std::vector<std::string> string_list(const std::string& key) const;

  [[noreturn]] void fail_key(const std::string& key, const std::string& expected) const;

 private:
  const nlohmann::json& at(const std::string& key) const;

  const nlohmann::json& object_;
  std::string where_;
};

// JSON nested deeper than this is an Error (check_json_depth): Hugging Face's files nest under 10
// levels, and lorakit's walkers and nlohmann's copy and dump recurse once per level.
constexpr int kMaxJsonDepth = 64;
// Fails naming `where`, the line and the column when `text` nests arrays and objects deeper than
// kMaxJsonDepth; a linear scan, run before nlohmann parses downloaded JSON.
void check_json_depth(std::string_view text, const std::string& where);

// nlohmann's message without its "[json.exception.<kind>.<id>] " prefix: "number overflow parsing '1e400'".
std::string json_error_message(const nlohmann::json::exception& e);

// A token id from untrusted JSON: an integer in [0, 2^31), else an Error naming `where` (nlohmann's
// get<int32_t>() of 1e65 is undefined behaviour, of 2^40 a silent wrap).
int32_t json_id(const nlohmann::json& value, const std::string& where);
// The same for an id written as an object key ("added_tokens_decoder": {"32000": ...}); std::stoi
// would throw invalid_argument or out_of_range past the readers' error handling.
int32_t parse_id(const std::string& text, const std::string& where);

// Runs `body`, turning what nlohmann throws on JSON of an unexpected shape (a key missing, a value of
// another type, a number out of range) into an Error naming `where`. The readers of files users
// download wrap themselves in it, so that a hostile file's message names the file, never an
// uncaught nlohmann exception.
template <typename Body>
auto with_json_errors(const std::string& where, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unexpected JSON: {}; hint: the file does not have the structure Hugging Face's tools write", where,
         json_error_message(e));
  }
}

}  // namespace lorakit
