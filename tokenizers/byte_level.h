// GPT-2's byte <-> visible character map (HF tokenizers' ByteLevel): bytes 33-126, 161-172 and
// 174-255 map to the same code point, the other 68 bytes in order to U+0100 + n. So ' ' -> 'Ġ',
// '\n' -> 'Ċ', and a Korean syllable (3 bytes) becomes 3 visible characters.
#pragma once

#include <string>
#include <string_view>

namespace lorakit::tokenizers {

// Appends the visible characters of each byte of `bytes` to `out`.
void byte_level_encode(std::string_view bytes, std::string& out);

// Appends the bytes behind each character of `token`; characters outside the map (e.g. from added
// tokens) contribute their own UTF-8 bytes. The result may be invalid UTF-8 mid-sequence.
void byte_level_decode(std::string_view token, std::string& out);

// The GPT-2 pre-tokenizer regex, as HF tokenizers' ByteLevel uses it.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace lorakit::tokenizers
