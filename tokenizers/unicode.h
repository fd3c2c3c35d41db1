// UTF-8 helpers the tokenizers need: validation with the offending byte offset, lossy decoding the
// way Rust's String::from_utf8_lossy does it (HF's decoders), Unicode normalization forms (utf8proc),
// Python's notion of whitespace (for templates that call str.strip()) and the character classes of
// HF's BERT normalizer and pre-tokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lorakit::tokenizers {

// Byte offset of the first byte that is not part of valid UTF-8, or npos when `text` is valid.
size_t invalid_utf8_offset(std::string_view text);

// Throws an Error naming `what` and the byte offset when `text` is not valid UTF-8.
void require_utf8(std::string_view text, std::string_view what);

// Replaces each maximal invalid subsequence with U+FFFD (Rust's from_utf8_lossy).
std::string utf8_lossy(std::string_view bytes);

// Length in bytes of the UTF-8 character starting with `lead` (1 for invalid leads).
inline size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
}

// Decodes the character at text[pos] (text must be valid UTF-8).
char32_t utf8_decode(std::string_view text, size_t pos);
void utf8_append(std::string& out, char32_t code_point);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view text, NormalForm form);
// Per code point, as Rust's char::to_lowercase: the simple mapping, except U+0130 (İ) -> "i\u0307".
std::string to_lower(std::string_view text);

bool is_python_space(char32_t c);            // str.isspace()
std::string python_strip(std::string_view text);  // str.strip()
bool is_unicode_whitespace(char32_t c);      // Rust's char::is_whitespace
bool is_alphanumeric(char32_t c);            // Rust's char::is_alphanumeric
bool is_unicode_assigned(char32_t c);        // utf8proc's tables (its Unicode version) know it

// HF tokenizers' BertNormalizer / BertPreTokenizer classes (normalizers/bert.rs, pre_tokenizers/bert.rs),
// from the Unicode 8 tables HF uses (bert_tables.h), not utf8proc's newer ones.
bool is_bert_control(char32_t c);          // clean_text drops it: NUL, U+FFFD, Cc/Cf/Co except \t \n \r
bool is_cjk_ideograph(char32_t c);         // handle_chinese_chars surrounds it with spaces
bool is_bert_nonspacing_mark(char32_t c);  // strip_accents drops it after NFD (Mn)
bool is_bert_punctuation(char32_t c);      // BertPreTokenizer isolates it: ASCII punctuation or P*

}  // namespace lorakit::tokenizers
