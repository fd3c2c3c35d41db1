#include "tokenizers/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizers/pipeline.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

// transformers' clean_up_tokenization: no space before punctuation and common contractions.
std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kReplacements[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kReplacements) {
    std::string out;
    const std::string_view f(from);
    size_t last = 0, at;
    while ((at = text.find(f, last)) != std::string::npos) {
      out.append(text, last, at - last);
      out += to;
      last = at + f.size();
    }
    out.append(text, last);
    text = std::move(out);
  }
  return text;
}

}  // namespace

Tokenizer::Tokenizer(TokenizerParts parts)
    : parts_(std::move(parts)), added_(parts_.added_tokens, parts_.normalizer.get()) {
  vocab_size_ = parts_.model->size();
  for (const AddedToken& token : parts_.added_tokens) {
    vocab_size_ = std::max<int64_t>(vocab_size_, token.id + 1);
    if (token.special) special_ids_.push_back(token.id);
    std::string text = token.content;
    if (token.normalized && parts_.normalizer) parts_.normalizer->apply(text);
    added_text_.emplace(token.id, std::move(text));
  }
  std::sort(special_ids_.begin(), special_ids_.end());
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  require_utf8(text, "text to tokenize");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2 + 4);
  std::vector<Segment> segments;
  added_.split(text, /*normalized_set=*/false, segments);
  for (const Segment& segment : segments) {
    if (segment.id >= 0)
      ids.push_back(segment.id);
    else
      encode_text(segment.text, segment.offset, ids);
  }
  if (add_special_tokens) ids = parts_.post_processor->single(std::move(ids));
  return ids;
}

void Tokenizer::encode_text(std::string_view raw, size_t offset, std::vector<int32_t>& ids) const {
  std::string text(raw);
  if (parts_.normalizer) parts_.normalizer->apply(text);
  std::vector<Segment> segments;
  added_.split(text, /*normalized_set=*/true, segments);
  std::vector<Piece> pieces;
  for (const Segment& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    pieces.clear();
    pieces.push_back({std::string(segment.text), offset == 0 && segment.offset == 0});
    if (parts_.pre_tokenizer) parts_.pre_tokenizer->apply(pieces);
    for (const Piece& piece : pieces)
      if (!piece.text.empty()) parts_.model->encode(piece.text, piece.first, ids);
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_)
      fail("cannot decode id {}: the tokenizer ({}) has ids 0..{}", id, parts_.source, vocab_size_ - 1);
    if (skip_special_tokens && is_special(id)) continue;
    tokens.push_back(id_to_token(id));
  }
  std::string text;
  if (parts_.decoder) {
    for (const std::string& piece : parts_.decoder->decode_chain(std::move(tokens))) text += piece;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return parts_.clean_up_tokenization_spaces ? clean_up_tokenization(std::move(text)) : text;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& added : parts_.added_tokens)
    if (added.content == token) return added.id;
  return parts_.model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const auto it = added_text_.find(id); it != added_text_.end()) return it->second;
  return parts_.model->id_to_token(id);
}

bool Tokenizer::is_special(int32_t id) const {
  return std::binary_search(special_ids_.begin(), special_ids_.end(), id);
}

int64_t Tokenizer::vocab_size() const { return vocab_size_; }

}  // namespace lorakit::tokenizers
