// A tokenizer read from a Hugging Face model directory, giving the ids that
// transformers' AutoTokenizer.from_pretrained(dir) gives: tokenizer.json (HF tokenizers), the
// GPT-2 slow format (vocab.json + merges.txt + tokenizer_config.json), or a SentencePiece
// tokenizer.model. Pipeline: added tokens -> normalizer -> pre-tokenizer -> model -> post-processor.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizers/added_vocabulary.h"

namespace lorakit::tokenizers {

class Normalizer;
class PreTokenizer;
class PostProcessor;
class Decoder;

// The model stage: one pre-tokenized word (or, for SentencePiece, one whole piece) -> ids.
class Model {
 public:
  virtual ~Model() = default;
  // `at_start`: the piece begins at byte 0 of the input (SentencePiece's dummy prefix).
  virtual void encode(std::string_view piece, bool at_start, std::vector<int32_t>& ids) const = 0;
  virtual int64_t size() const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // "" when out of range
};

// Named special tokens from tokenizer_config.json / special_tokens_map.json, when present.
struct SpecialTokens {
  std::optional<int32_t> bos, eos, pad, unk;
};

struct TokenizerParts {
  std::string source;  // the file(s) it was read from, for messages
  std::unique_ptr<Model> model;
  std::vector<AddedToken> added_tokens;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  SpecialTokens special;
  bool clean_up_tokenization_spaces = false;
  std::string chat_template;  // Jinja source, "" when the directory has none
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerParts parts);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // `text` must be valid UTF-8 (the error names the byte offset). With add_special_tokens the
  // post-processor adds what the tokenizer's template says (e.g. BOS), as transformers does.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // transformers' decode(ids, skip_special_tokens): the decoder chain, then the tokenizer's
  // clean_up_tokenization_spaces. Unknown ids are an error naming the id and the vocab size.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // the token's own string ("Ġworld"); "" if none
  bool is_special(int32_t id) const;
  int64_t vocab_size() const;  // ids in [0, vocab_size) are valid: model vocab and added tokens

  const SpecialTokens& special() const { return parts_.special; }
  const std::string& source() const { return parts_.source; }
  const std::string& chat_template() const { return parts_.chat_template; }

 private:
  void encode_text(std::string_view text, size_t offset, std::vector<int32_t>& ids) const;

  TokenizerParts parts_;
  AddedVocabulary added_;
  std::vector<int32_t> special_ids_;  // sorted
  // Added tokens by id, as decode shows them: `normalized` ones in their normalized form (HF 0.23).
  std::unordered_map<int32_t, std::string> added_text_;
  int64_t vocab_size_ = 0;
};

// Reads the tokenizer of a model directory (see the header comment for the formats, in that order
// of preference). Errors name the directory and what it contains.
Tokenizer load_tokenizer(const std::string& model_dir);
// The same, except that a directory with config.json but no tokenizer files gives a tokenizer that
// knows only config.json's special ids (bos/eos/pad_token_id) and refuses to tokenize text: for
// pre-tokenized data (data.ids_column).
Tokenizer load_tokenizer_or_ids_only(const std::string& model_dir);

}  // namespace lorakit::tokenizers
