// The stages of an HF tokenizers pipeline around the model, built from tokenizer.json objects:
// normalizer (text -> text), pre-tokenizer (pieces -> words), post-processor (adds special
// tokens) and decoder (tokens -> text). Each class supports the `type`s that the model families
// lorakit serves use, and names the unsupported ones in its error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizers/regex.h"

namespace lorakit::tokenizers {

// `where` in the constructors below names the JSON location for errors
// ("tokenizer.json: normalizer.normalizers[1]").

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
};
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& where);

// A pre-tokenized piece: text and whether it is the first piece of the input (for Metaspace's
// prepend_scheme "first").
struct Piece {
  std::string text;
  bool first = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, const std::string& where);

// How a Split pre-tokenizer treats the matched delimiters.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
// Splits `text` around the matches of `regex` (inverted: around the non-matches). Empty pieces
// are dropped.
std::vector<std::string> split_text(const std::string& text, const Regex& regex, SplitBehavior behavior,
                                    bool invert);

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Wraps the ids of one sequence (HF's `single` template); called with add_special_tokens.
  virtual std::vector<int32_t> single(std::vector<int32_t> ids) const = 0;
};
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec, const std::string& where);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& where);

}  // namespace lorakit::tokenizers
