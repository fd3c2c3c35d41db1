// The tokenizer harnesses' common step: load the directory's tokenizer as the CLI does, encode a
// fixed text (Korean, mixed scripts, special-looking tokens, whitespace runs) and decode the ids.
#pragma once

#include <filesystem>

#include "tokenizers/tokenizer.h"

namespace lorakit::fuzz {

inline void load_and_tokenize(const std::filesystem::path& dir) {
  const tokenizers::Tokenizer tokenizer = tokenizers::load_tokenizer(dir.string());
  for (const char* text : {"안녕하세요, 오늘 날씨는 hello world 123!", " \n\t  <s></s><|endoftext|> é naïve 😀 ",
                           "x"}) {
    const auto ids = tokenizer.encode(text);
    (void)tokenizer.decode(ids, false);
    (void)tokenizer.decode(ids, true);
  }
  (void)tokenizer.id_to_token(0);
  (void)tokenizer.token_to_id("hello");
}

}  // namespace lorakit::fuzz
