#include "tokenizers/byte_level.h"

#include <array>

#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

struct ByteMap {
  std::array<std::string, 256> visible;  // byte -> UTF-8 of its visible character
  std::array<int, 0x144> byte_of{};      // visible code point -> byte, -1 when not in the map

  ByteMap() {
    byte_of.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool same = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const char32_t code_point = same ? static_cast<char32_t>(b) : static_cast<char32_t>(0x100 + extra++);
      utf8_append(visible[b], code_point);
      byte_of[code_point] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

void byte_level_encode(std::string_view bytes, std::string& out) {
  const auto& map = byte_map();
  for (unsigned char b : bytes) out += map.visible[b];
}

void byte_level_decode(std::string_view token, std::string& out) {
  const auto& map = byte_map();
  size_t pos = 0;
  while (pos < token.size()) {
    const size_t n = utf8_length(static_cast<unsigned char>(token[pos]));
    const char32_t c = utf8_decode(token, pos);
    if (c < map.byte_of.size() && map.byte_of[c] >= 0)
      out.push_back(static_cast<char>(map.byte_of[c]));
    else
      out.append(token.substr(pos, n));
    pos += n;
  }
}

}  // namespace lorakit::tokenizers
