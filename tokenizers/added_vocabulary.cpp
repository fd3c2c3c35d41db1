#include "tokenizers/added_vocabulary.h"

#include <algorithm>

#include <utf8proc.h>

#include "tokenizers/pipeline.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

// Rust regex's \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool is_word_char(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

size_t previous_char(std::string_view text, size_t pos) {
  size_t p = pos - 1;
  while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  return p;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  // Special tokens first, so that for identical patterns the special one wins (HF 0.22).
  std::vector<size_t> order(tokens_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tokens_[a].special > tokens_[b].special; });
  for (size_t i : order) {
    const AddedToken& token = tokens_[i];
    if (token.content.empty()) continue;
    if (token.normalized) {
      std::string text = token.content;
      if (normalizer) normalizer->apply(text);
      add_pattern(normalized_, std::move(text), i);
    } else {
      add_pattern(raw_, token.content, i);
    }
  }
}

void AddedVocabulary::add_pattern(PatternSet& set, std::string text, size_t token) {
  if (text.empty()) return;
  auto& bucket = set.by_first_byte[static_cast<unsigned char>(text[0])];
  for (const Pattern& p : bucket)
    if (p.text == text) return;  // the first one wins
  bucket.push_back({std::move(text), token});
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const Pattern& a, const Pattern& b) { return a.text.size() > b.text.size(); });
  set.empty = false;
}

void AddedVocabulary::split(std::string_view text, bool normalized_set, std::vector<Segment>& out) const {
  const PatternSet& set = normalized_set ? normalized_ : raw_;
  if (set.empty) {
    if (!text.empty()) out.push_back({text, -1, 0});
    return;
  }
  size_t start_offset = 0;  // end of the previous token
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = set.by_first_byte[static_cast<unsigned char>(text[pos])];
    const Pattern* found = nullptr;
    for (const Pattern& p : bucket)
      if (text.compare(pos, p.text.size(), p.text) == 0) {
        found = &p;
        break;
      }
    if (!found) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[found->token];
    size_t begin = pos, end = pos + found->text.size();
    pos = end;  // a discarded match is skipped whole
    if (token.single_word) {
      const bool left_ok = begin == 0 || !is_word_char(utf8_decode(text, previous_char(text, begin)));
      const bool right_ok = end == text.size() || !is_word_char(utf8_decode(text, end));
      if (!left_ok || !right_ok) continue;
    }
    if (token.lstrip) {
      while (begin > start_offset) {
        const size_t p = previous_char(text, begin);
        if (!is_unicode_whitespace(utf8_decode(text, p))) break;
        begin = p;
      }
    }
    if (token.rstrip) {
      while (end < text.size() && is_unicode_whitespace(utf8_decode(text, end)))
        end += utf8_length(static_cast<unsigned char>(text[end]));
      pos = end;
    }
    if (begin > start_offset) out.push_back({text.substr(start_offset, begin - start_offset), -1, start_offset});
    out.push_back({text.substr(begin, end - begin), token.id, begin});
    start_offset = end;
  }
  if (start_offset < text.size()) out.push_back({text.substr(start_offset), -1, start_offset});
}

}  // namespace lorakit::tokenizers
