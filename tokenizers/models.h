// The model stages behind Tokenizer (internal to tokenizers/): BPE from tokenizer.json or the
// GPT-2 slow files, and SentencePiece through libsentencepiece.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "tokenizers/bpe.h"
#include "tokenizers/tokenizer.h"

namespace lorakit::tokenizers {

// tokenizer.json's "model" object (type BPE).
std::unique_ptr<Model> make_bpe_model(const nlohmann::json& spec, const std::string& where);
std::unique_ptr<Model> make_bpe_model(StringMap<int32_t> vocab,
                                      const std::vector<std::pair<std::string, std::string>>& merges,
                                      BpeOptions options, const std::string& where);

// A SentencePiece model read the way transformers' LlamaTokenizer reads it: SentencePiece's own
// normalizer off, the dummy "▁" prefix only on the piece that starts the input.
std::unique_ptr<Model> make_sentencepiece_model(const std::string& path);

}  // namespace lorakit::tokenizers
