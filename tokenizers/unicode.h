// UTF-8 helpers the tokenizers need: validation with the offending byte offset, lossy decoding the
// way Rust's String::from_utf8_lossy does it (HF's decoders), Unicode normalization forms (utf8proc)
// and Python's notion of whitespace (for templates that call str.strip()).
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
std::string to_lower(std::string_view text);  // per code point, Unicode simple lowercase

bool is_python_space(char32_t c);            // str.isspace()
std::string python_strip(std::string_view text);  // str.strip()
bool is_unicode_whitespace(char32_t c);      // Rust's char::is_whitespace
bool is_alphanumeric(char32_t c);            // Rust's char::is_alphanumeric

}  // namespace lorakit::tokenizers
