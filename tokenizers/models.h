// The model stages behind Tokenizer (internal to tokenizers/): BPE from tokenizer.json or the
// GPT-2 slow files, WordPiece from tokenizer.json or a BERT vocab.txt, and SentencePiece through
// libsentencepiece.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "tokenizers/bpe.h"
#include "tokenizers/tokenizer.h"

namespace lorakit::tokenizers {

// How far past the vocabulary's size a token id may lie (real files have ids 0..size-1, sometimes
// with a few holes): the id -> token table is as long as the largest id.
constexpr size_t kMaxIdGap = 1 << 20;

// tokenizer.json's "model" object (type BPE).
std::unique_ptr<Model> make_bpe_model(const nlohmann::json& spec, const std::string& where);
std::unique_ptr<Model> make_bpe_model(StringMap<int32_t> vocab,
                                      const std::vector<std::pair<std::string, std::string>>& merges,
                                      BpeOptions options, const std::string& where);

// WordPiece (HF models/wordpiece): greedy longest match from the left, continuations looked up with
// the prefix; a word longer than max_input_chars_per_word characters, or with a position nothing
// matches, is the one unk token.
struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};
// tokenizer.json's "model" object (type WordPiece).
std::unique_ptr<Model> make_wordpiece_model(const nlohmann::json& spec, const std::string& where);
std::unique_ptr<Model> make_wordpiece_model(StringMap<int32_t> vocab, WordPieceOptions options,
                                            const std::string& where);
// A BERT vocab.txt as HF reads it (WordPiece::read_file): one token per line, its id the line's
// index, trailing whitespace trimmed, a repeated token keeping its last line.
StringMap<int32_t> read_wordpiece_vocab(const std::string& path);

// A SentencePiece model read the way transformers' LlamaTokenizer reads it: SentencePiece's own
// normalizer off, the dummy "▁" prefix only on the piece that starts the input.
std::unique_ptr<Model> make_sentencepiece_model(const std::string& path);

}  // namespace lorakit::tokenizers
