// A SentencePiece tokenizer.model's pieces as SentencePieceProcessor reports them (piece, score,
// type), for writers that copy the vocabulary itself (GGUF's tokenizer.ggml.tokens/scores/token_type).
#pragma once

#include <string>
#include <vector>

namespace lorakit::tokenizers {

struct SentencePiece {
  enum Type { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };  // llama.cpp's numbering
  std::string piece;
  float score = 0;
  Type type = NORMAL;
};

// Errors name the file. The type is the first of IsUnknown, IsControl, IsUnused, IsByte that holds.
std::vector<SentencePiece> read_sentencepiece_vocab(const std::string& path);

}  // namespace lorakit::tokenizers
