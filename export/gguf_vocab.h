// The tokenizer.* keys of a GGUF file, as llama.cpp's convert_hf_to_gguf.py writes them from a
// Hugging Face model directory: its set_vocab variants (_set_vocab_gpt2 for byte-level BPE,
// _set_vocab_sentencepiece for tokenizer.model) and gguf-py's SpecialVocab (merges, special token
// ids, add_bos/eos, the chat template, normalizer flags), read from the same files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "export/gguf_file.h"

namespace lorakit::exports::gguf {

enum class VocabKind {
  Gpt2,                   // TextModel.set_vocab: byte-level BPE (tokenizer.json or vocab.json + merges.txt)
  SentencePieceElseGpt2,  // Qwen2Model: tokenizer.model if there is one
  Llama,                  // LlamaModel: add_space_prefix, then tokenizer.model, else byte-level BPE
  Gemma,                  // GemmaModel: tokenizer.model, CodeGemma's fixed ids, add_space_prefix false
  Gemma2,                 // Gemma2Model: tokenizer.model, add_space_prefix false
};

// Writes the keys; `vocab_size` is config.json's (the token list is padded to it). Returns
// tokenizer.ggml.pre. `pre_override` names the pre-tokenizer when llama.cpp's hash table does not
// know the tokenizer (otherwise that is an error saying so).
std::string write_vocabulary(Writer& w, VocabKind kind, const std::filesystem::path& dir, int64_t vocab_size,
                             const std::string& pre_override);

}  // namespace lorakit::exports::gguf
