// The WordPiece model of HF tokenizers (models/wordpiece/mod.rs), and BERT's vocab.txt. A word is
// cut greedily, longest vocabulary entry first, from the left; pieces after the first are looked
// up with the continuing-subword prefix ("##"). Unlike BPE there is no per-character fallback: a
// word with a position nothing matches, or longer than max_input_chars_per_word characters (not
// bytes), becomes the single unk token.
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "tokenizers/models.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

class WordPieceModel final : public Model {
 public:
  WordPieceModel(StringMap<int32_t> vocab, WordPieceOptions options, const std::string& where)
      : vocab_(std::move(vocab)), options_(std::move(options)) {
    for (const auto& [token, id] : vocab_) {
      if (static_cast<size_t>(id) > vocab_.size() + kMaxIdGap)
        fail("{}: token '{}' has id {}, far past the {} entries of the vocabulary (ids run from 0 to its size)", where,
             token.substr(0, 40), id, vocab_.size());
      if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(static_cast<size_t>(id) + 1);
      tokens_[static_cast<size_t>(id)] = token;
      longest_ = std::max(longest_, token.size());
    }
    // HF only fails when a word needs the unk token; a vocabulary without it is broken, so say so now.
    const auto unk = vocab_.find(options_.unk_token);
    if (unk == vocab_.end())
      fail("{}: WordPiece's unk_token '{}' is not in the vocab ({} entries); hint: the vocabulary must hold the "
           "unknown token its config names",
           where, options_.unk_token, vocab_.size());
    unk_id_ = unk->second;
  }

  void encode(std::string_view word, bool, std::vector<int32_t>& ids) const override {
    size_t chars = 0;
    for (size_t pos = 0; pos < word.size(); pos += utf8_length(static_cast<unsigned char>(word[pos]))) ++chars;
    if (chars > options_.max_input_chars_per_word) {
      ids.push_back(unk_id_);
      return;
    }
    const size_t first = ids.size();
    std::string candidate;
    for (size_t start = 0; start < word.size();) {
      // Longest match first. No entry is longer than `longest_` bytes, so longer candidates are skipped.
      const std::string_view prefix = start > 0 ? std::string_view(options_.continuing_subword_prefix) : "";
      const size_t budget = longest_ > prefix.size() ? longest_ - prefix.size() : 0;
      size_t end = std::min(word.size(), start + budget);
      while (end > start && end < word.size() && is_continuation_byte(word[end])) --end;
      std::optional<int32_t> match;
      for (; end > start; end = previous_char(word, start, end)) {
        candidate.assign(prefix);
        candidate.append(word.substr(start, end - start));
        if (const auto it = vocab_.find(candidate); it != vocab_.end()) {
          match = it->second;
          break;
        }
      }
      if (!match) {  // the whole word is unknown
        ids.resize(first);
        ids.push_back(unk_id_);
        return;
      }
      ids.push_back(*match);
      start = end;
    }
  }

  int64_t size() const override { return static_cast<int64_t>(tokens_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const auto it = vocab_.find(token);
    return it == vocab_.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }
  std::string id_to_token(int32_t id) const override {
    return id >= 0 && static_cast<size_t>(id) < tokens_.size() ? tokens_[static_cast<size_t>(id)] : "";
  }

 private:
  // The start of the character before byte `end` (a character boundary after `start`).
  static bool is_continuation_byte(char byte) { return (static_cast<unsigned char>(byte) & 0xC0) == 0x80; }
  static size_t previous_char(std::string_view word, size_t start, size_t end) {
    do --end;
    while (end > start && is_continuation_byte(word[end]));
    return end;
  }

  StringMap<int32_t> vocab_;
  WordPieceOptions options_;
  std::vector<std::string> tokens_;
  size_t longest_ = 0;  // bytes of the longest vocabulary entry
  int32_t unk_id_ = 0;
};

}  // namespace

std::unique_ptr<Model> make_wordpiece_model(StringMap<int32_t> vocab, WordPieceOptions options,
                                            const std::string& where) {
  return std::make_unique<WordPieceModel>(std::move(vocab), std::move(options), where);
}

std::unique_ptr<Model> make_wordpiece_model(const nlohmann::json& spec, const std::string& where) {
  const nlohmann::json& v = spec.at("vocab");
  if (!v.is_object()) fail("{}.vocab: expected an object of token -> id, found {}", where, v.type_name());
  StringMap<int32_t> vocab;
  vocab.reserve(v.size());
  for (const auto& [token, id] : v.items()) vocab.emplace(token, json_id(id, fmt::format("{}: vocab \"{}\"", where, token)));
  WordPieceOptions options;
  if (spec.contains("unk_token") && spec["unk_token"].is_string()) options.unk_token = spec["unk_token"].get<std::string>();
  if (spec.contains("continuing_subword_prefix") && spec["continuing_subword_prefix"].is_string())
    options.continuing_subword_prefix = spec["continuing_subword_prefix"].get<std::string>();
  if (spec.contains("max_input_chars_per_word") && !spec["max_input_chars_per_word"].is_null()) {
    const nlohmann::json& n = spec["max_input_chars_per_word"];
    if (!n.is_number_unsigned())
      fail("{}.max_input_chars_per_word: expected a non-negative integer, found {}", where, n.dump());
    options.max_input_chars_per_word = n.get<size_t>();
  }
  return make_wordpiece_model(std::move(vocab), std::move(options), where);
}

StringMap<int32_t> read_wordpiece_vocab(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  StringMap<int32_t> vocab;
  std::string line;
  for (size_t index = 0; std::getline(in, line); ++index) {
    const std::string where = fmt::format("{}:{}", path, index + 1);
    if (index >= static_cast<size_t>(INT32_MAX)) fail("{}: more lines than token ids (2^31)", where);
    require_utf8(line, where);
    // Rust's str::trim_end: every trailing White_Space character, "\r" of a CRLF line end included.
    while (!line.empty()) {
      size_t last = line.size() - 1;
      while (last > 0 && (static_cast<unsigned char>(line[last]) & 0xC0) == 0x80) --last;
      if (!is_unicode_whitespace(utf8_decode(line, last))) break;
      line.resize(last);
    }
    vocab.insert_or_assign(line, static_cast<int32_t>(index));
  }
  return vocab;
}

}  // namespace lorakit::tokenizers
