// Added tokens (HF tokenizers' AddedVocabulary): cut out of the text before the normalizer and the
// model, leftmost-longest, with the single_word / lstrip / rstrip flags. Tokens marked
// `normalized: false` (all special tokens) match the raw text; `normalized: true` ones match the
// normalized text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lorakit::tokenizers {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A piece of the input: text for the model (id < 0) or one added token.
struct Segment {
  std::string_view text;
  int32_t id = -1;
  size_t offset = 0;  // byte offset of text in the string that was split
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `normalizer` (may be null) is applied to the content of `normalized: true` tokens.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` with the raw (normalized == false) or the normalized token set.
  void split(std::string_view text, bool normalized_set, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Pattern {
    std::string text;
    size_t token;  // index into tokens_
  };
  struct PatternSet {
    std::array<std::vector<Pattern>, 256> by_first_byte;  // longest first
    bool empty = true;
  };
  void add_pattern(PatternSet& set, std::string text, size_t token);

  std::vector<AddedToken> tokens_;
  PatternSet raw_, normalized_;
};

}  // namespace lorakit::tokenizers
