#include "tokenizers/pipeline.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "tokenizers/byte_level.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

using nlohmann::json;

std::string type_of(const json& spec, const std::string& where) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail("{}: expected an object with a string \"type\", found {}", where, spec.dump().substr(0, 80));
  return spec["type"].get<std::string>();
}

template <typename T>
T get_or(const json& spec, const char* key, T fallback) {
  return spec.contains(key) && !spec[key].is_null() ? spec[key].get<T>() : fallback;
}

// A Rust `char` field (Metaspace's replacement, Strip's content): one UTF-8 character. An empty one
// would make the decoders loop without advancing.
std::string one_character(const json& spec, const char* key, std::string fallback, const std::string& where) {
  std::string value = get_or(spec, key, std::move(fallback));
  const auto lead = value.empty() ? 0 : static_cast<unsigned char>(value[0]);
  const size_t length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  if (value.empty() || value.size() != length)
    fail("{}.{}: expected one character, found \"{}\"", where, key, value.substr(0, 40));
  return value;
}

// A normalizer Sequence whose text grows past this (from what it was given) is an Error: a few
// Replace stages that each double the text would otherwise ask for gigabytes.
size_t max_normalized_bytes(size_t input) { return 16 * input + 65536; }

// {"String": s} or {"Regex": r} -> a compiled regex.
Regex pattern_regex(const json& pattern, const std::string& where) {
  if (pattern.contains("String")) return Regex(Regex::escape(pattern["String"].get<std::string>()), where);
  if (pattern.contains("Regex")) return Regex(pattern["Regex"].get<std::string>(), where);
  fail("{}: expected {{\"String\": ...}} or {{\"Regex\": ...}}, found {}", where, pattern.dump());
}

[[noreturn]] void unsupported(const std::string& where, const std::string& type, const char* supported) {
  fail("{}: unsupported type '{}' (lorakit supports: {}); hint: open an issue with the model name",
       where, type, supported);
}

// --- normalizers ----------------------------------------------------------------------------

struct UnicodeForm : Normalizer {
  NormalForm form;
  explicit UnicodeForm(NormalForm f) : form(f) {}
  void apply(std::string& text) const override { text = normalize(text, form); }
};

struct Lowercase : Normalizer {
  void apply(std::string& text) const override { text = to_lower(text); }
};

struct Strip : Normalizer {
  bool left, right;
  Strip(bool l, bool r) : left(l), right(r) {}
  void apply(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left)
      while (begin < end && is_unicode_whitespace(utf8_decode(text, begin)))
        begin += utf8_length(static_cast<unsigned char>(text[begin]));
    if (right)
      while (end > begin) {
        size_t last = end - 1;
        while (last > begin && (static_cast<unsigned char>(text[last]) & 0xC0) == 0x80) --last;
        if (!is_unicode_whitespace(utf8_decode(text, last))) break;
        end = last;
      }
    text = text.substr(begin, end - begin);
  }
};

struct Replace : Normalizer {
  Regex regex;
  std::string content;
  Replace(Regex r, std::string c) : regex(std::move(r)), content(std::move(c)) {}
  void apply(std::string& text) const override {
    std::string out;
    size_t last = 0;
    for (const auto& [begin, end] : regex.find_all(text)) {
      out.append(text, last, begin - last);
      out += content;
      last = end;
    }
    out.append(text, last);
    text = std::move(out);
  }
};

struct Prepend : Normalizer {
  std::string prefix;
  explicit Prepend(std::string p) : prefix(std::move(p)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix);
  }
};

// BertNormalizer (normalizers/bert.rs), its steps in HF's order. Its character classes are HF's
// (bert_tables.h), so a character Unicode assigned after version 8 is neither dropped nor stripped.
struct BertNormalizer : Normalizer {
  bool clean_text, handle_chinese_chars, strip_accents, lowercase;
  BertNormalizer(bool clean, bool chinese, bool strip, bool lower)
      : clean_text(clean), handle_chinese_chars(chinese), strip_accents(strip), lowercase(lower) {}
  void apply(std::string& text) const override {
    if (clean_text || handle_chinese_chars) {
      std::string out;
      out.reserve(text.size() + text.size() / 2);
      for (size_t pos = 0, n; pos < text.size(); pos += n) {
        n = utf8_length(static_cast<unsigned char>(text[pos]));
        const char32_t c = utf8_decode(text, pos);
        if (clean_text && is_bert_control(c)) continue;  // "\t \n \r" are not controls here
        if (clean_text && is_unicode_whitespace(c)) {
          out.push_back(' ');
        } else if (handle_chinese_chars && is_cjk_ideograph(c)) {
          out.push_back(' ');
          out.append(text, pos, n);
          out.push_back(' ');
        } else {
          out.append(text, pos, n);
        }
      }
      text = std::move(out);
    }
    if (strip_accents) {  // NFD, then drop nonspacing marks; NFD splits a Hangul syllable into its jamo
      const std::string decomposed = normalize(text, NormalForm::NFD);
      text.clear();
      for (size_t pos = 0, n; pos < decomposed.size(); pos += n) {
        n = utf8_length(static_cast<unsigned char>(decomposed[pos]));
        if (!is_bert_nonspacing_mark(utf8_decode(decomposed, pos))) text.append(decomposed, pos, n);
      }
    }
    if (lowercase) text = to_lower(text);
  }
};

struct NormalizerSequence : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> stages;
  std::string where;
  void apply(std::string& text) const override {
    const size_t limit = max_normalized_bytes(text.size()), input = text.size();
    for (size_t i = 0; i < stages.size(); ++i) {
      stages[i]->apply(text);
      if (text.size() > limit)
        fail("{}.normalizers[{}]: the normalized text grew from {} to {} bytes (at most {}); hint: the tokenizer's "
             "normalizers expand text without bound",
             where, i, input, text.size(), limit);
    }
  }
};

// --- pre-tokenizers -------------------------------------------------------------------------

struct ByteLevelPre : PreTokenizer {
  bool add_prefix_space, use_regex;
  Regex regex;
  ByteLevelPre(bool prefix, bool use, const std::string& where)
      : add_prefix_space(prefix), use_regex(use), regex(kGpt2Pattern, where) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    std::string text;
    for (Piece& piece : pieces) {
      if (add_prefix_space && !piece.text.starts_with(' ')) piece.text.insert(0, " ");
      const auto emit = [&](std::string_view word, bool first) {
        Piece mapped{{}, first};
        mapped.text.reserve(word.size() * 2);
        byte_level_encode(word, mapped.text);
        out.push_back(std::move(mapped));
      };
      if (!use_regex) {
        if (!piece.text.empty()) emit(piece.text, piece.first);
        continue;
      }
      bool first = piece.first;
      for (const std::string& word : split_text(piece.text, regex, SplitBehavior::Isolated, false)) {
        emit(word, first);
        first = false;
      }
    }
    pieces = std::move(out);
  }
};

struct SplitPre : PreTokenizer {
  Regex regex;
  SplitBehavior behavior;
  bool invert;
  SplitPre(Regex r, SplitBehavior b, bool i) : regex(std::move(r)), behavior(b), invert(i) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& piece : pieces) {
      bool first = piece.first;
      for (std::string& text : split_text(piece.text, regex, behavior, invert)) {
        out.push_back({std::move(text), first});
        first = false;
      }
    }
    pieces = std::move(out);
  }
};

struct Metaspace : PreTokenizer {
  std::string replacement;
  std::string scheme;  // always | first | never
  bool split;
  Regex regex;
  Metaspace(std::string r, std::string s, bool sp, const std::string& where)
      : replacement(std::move(r)), scheme(std::move(s)), split(sp), regex(Regex::escape(replacement), where) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (Piece& piece : pieces) {
      std::string text;
      for (char c : piece.text) {
        if (c == ' ')
          text += replacement;
        else
          text.push_back(c);
      }
      const bool prepend = !text.starts_with(replacement) &&
                           (scheme == "always" || (scheme == "first" && piece.first));
      if (prepend) text.insert(0, replacement);
      if (!split) {
        out.push_back({std::move(text), piece.first});
        continue;
      }
      bool first = piece.first;
      for (std::string& word : split_text(text, regex, SplitBehavior::MergedWithNext, false)) {
        out.push_back({std::move(word), first});
        first = false;
      }
    }
    pieces = std::move(out);
  }
};

struct Digits : PreTokenizer {
  bool individual;
  Regex regex;
  Digits(bool ind, const std::string& where) : individual(ind), regex(R"(\p{N})", where) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& piece : pieces) {
      bool first = piece.first;
      const auto behavior = individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
      for (std::string& text : split_text(piece.text, regex, behavior, false)) {
        out.push_back({std::move(text), first});
        first = false;
      }
    }
    pieces = std::move(out);
  }
};

// BertPreTokenizer (pre_tokenizers/bert.rs): split on whitespace (dropped), then every punctuation
// character (ASCII punctuation, symbols like $ + < = > ^ ` | ~ included, or Unicode P* as of
// Unicode 8) is a piece of its own.
struct BertPre : PreTokenizer {
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    for (const Piece& piece : pieces) {
      const std::string& text = piece.text;
      bool first = piece.first;
      const auto emit = [&](size_t begin, size_t end) {
        if (end <= begin) return;
        out.push_back({text.substr(begin, end - begin), first});
        first = false;
      };
      size_t word = 0;
      for (size_t pos = 0, n; pos < text.size(); pos += n) {
        n = utf8_length(static_cast<unsigned char>(text[pos]));
        const char32_t c = utf8_decode(text, pos);
        if (is_unicode_whitespace(c)) {
          emit(word, pos);
          word = pos + n;
        } else if (is_bert_punctuation(c)) {
          emit(word, pos);
          emit(pos, pos + n);
          word = pos + n;
        }
      }
      emit(word, text.size());
    }
    pieces = std::move(out);
  }
};

struct PreTokenizerSequence : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> stages;
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& stage : stages) stage->apply(pieces);
  }
};

SplitBehavior split_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail("{}: unknown Split behavior '{}' (expected Removed, Isolated, MergedWithPrevious, "
       "MergedWithNext or Contiguous)", where, name);
}

// --- post-processors ------------------------------------------------------------------------

struct Passthrough : PostProcessor {
  std::vector<int32_t> single(std::vector<int32_t> ids) const override { return ids; }
};

// TemplateProcessing's `single` (and Bert/Roberta as the templates "[CLS] $A [SEP]").
struct Template : PostProcessor {
  struct Part {
    bool sequence;
    std::vector<int32_t> ids;  // for a special token
  };
  std::vector<Part> parts;
  std::vector<int32_t> single(std::vector<int32_t> ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Part& part : parts) {
      const auto& src = part.sequence ? ids : part.ids;
      out.insert(out.end(), src.begin(), src.end());
    }
    return out;
  }
};

struct PostProcessorSequence : PostProcessor {
  std::vector<std::unique_ptr<PostProcessor>> stages;
  std::vector<int32_t> single(std::vector<int32_t> ids) const override {
    for (const auto& stage : stages) ids = stage->single(std::move(ids));
    return ids;
  }
};

// --- decoders -------------------------------------------------------------------------------

struct ByteLevelDecoder : Decoder {
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) byte_level_decode(token, bytes);
    return {utf8_lossy(bytes)};
  }
};

struct MetaspaceDecoder : Decoder {
  std::string replacement;
  bool strip_first;  // prepend_scheme != never
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& token = tokens[i];
      for (size_t pos = 0; pos < token.size();) {
        if (token.compare(pos, replacement.size(), replacement) == 0) {
          if (!(i == 0 && strip_first)) out.push_back(' ');
          pos += replacement.size();
        } else {
          out.push_back(token[pos++]);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }
};

struct ReplaceDecoder : Decoder {
  std::string pattern, content;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& token : tokens) {
      std::string out;
      size_t last = 0, at;
      while (!pattern.empty() && (at = token.find(pattern, last)) != std::string::npos) {
        out.append(token, last, at - last);
        out += content;
        last = at + pattern.size();
      }
      out.append(token, last);
      token = std::move(out);
    }
    return tokens;
  }
};

struct ByteFallbackDecoder : Decoder {
  static int byte_of(const std::string& token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
    int value = 0;
    for (size_t i = 3; i < 5; ++i) {
      const char c = token[i];
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) return -1;
      value = value * 16 + digit;
    }
    return value;
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    const auto flush = [&] {
      if (pending.empty()) return;
      if (invalid_utf8_offset(pending) == std::string::npos) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (auto& token : tokens) {
      const int b = byte_of(token);
      if (b >= 0) {
        pending.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    return out;
  }
};

struct FuseDecoder : Decoder {
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& token : tokens) all += token;
    return {all};
  }
};

struct StripDecoder : Decoder {
  std::string content;
  size_t start, stop;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start && token.compare(begin, content.size(), content) == 0; ++i)
        begin += content.size();
      for (size_t i = 0; i < stop && end >= begin + content.size() &&
                         token.compare(end - content.size(), content.size(), content) == 0; ++i)
        end -= content.size();
      token = token.substr(begin, end - begin);
    }
    return tokens;
  }
};

// The WordPiece decoder (decoders/wordpiece.rs): a token after the first loses its prefix, or gets
// a space in front; `cleanup` then tidies each token on its own (so "don ' t" keeps its spaces).
struct WordPieceDecoder : Decoder {
  std::string prefix;
  bool cleanup;
  static void replace_all(std::string& text, std::string_view from, std::string_view to) {
    std::string out;
    size_t last = 0, at;
    while ((at = text.find(from, last)) != std::string::npos) {
      out.append(text, last, at - last);
      out += to;
      last = at + from.size();
    }
    if (last == 0) return;
    out.append(text, last);
    text = std::move(out);
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    static const std::pair<std::string_view, std::string_view> kCleanup[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& token = tokens[i];
      if (i != 0) {
        if (token.starts_with(prefix))
          token.erase(0, prefix.size());
        else
          token.insert(0, " ");
      }
      if (cleanup)
        for (const auto& [from, to] : kCleanup) replace_all(token, from, to);
    }
    return tokens;
  }
};

struct DecoderSequence : Decoder {
  std::vector<std::unique_ptr<Decoder>> stages;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& stage : stages) tokens = stage->decode_chain(std::move(tokens));
    return tokens;
  }
};

std::string metaspace_scheme(const json& spec) {
  if (spec.contains("add_prefix_space") && spec["add_prefix_space"].is_boolean() &&
      !spec["add_prefix_space"].get<bool>())
    return "never";
  std::string scheme = get_or<std::string>(spec, "prepend_scheme", "always");
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme;
}

}  // namespace

std::vector<std::string> split_text(const std::string& text, const Regex& regex, SplitBehavior behavior,
                                    bool invert) {
  // (begin, end, is_match) spans covering the text, as HF's Pattern::find_matches.
  struct Span {
    size_t begin, end;
    bool match;
  };
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [begin, end] : regex.find_all(text)) {
    if (begin > last) spans.push_back({last, begin, invert});
    spans.push_back({begin, end, !invert});
    last = end;
  }
  if (last < text.size()) spans.push_back({last, text.size(), invert});

  std::vector<Span> kept;  // .match now means "remove"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      kept = spans;
      break;
    case SplitBehavior::Isolated:
      for (const Span& s : spans) kept.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::Contiguous:
      for (const Span& s : spans) {
        if (s.match == previous_match && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.match && !previous_match && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous_match && !kept.empty())
          kept.back().begin = it->begin;
        else
          kept.push_back({it->begin, it->end, false});
        previous_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  std::vector<std::string> out;
  out.reserve(kept.size());
  for (const Span& s : kept)
    if (!s.match && s.end > s.begin) out.emplace_back(text, s.begin, s.end - s.begin);
  return out;
}

std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where);
  if (type == "NFC") return std::make_unique<UnicodeForm>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip")
    return std::make_unique<Strip>(get_or(spec, "strip_left", true), get_or(spec, "strip_right", true));
  if (type == "Replace")
    return std::make_unique<Replace>(pattern_regex(spec.at("pattern"), where + ".pattern"),
                                     spec.at("content").get<std::string>());
  if (type == "Prepend") return std::make_unique<Prepend>(spec.at("prepend").get<std::string>());
  if (type == "BertNormalizer") {
    const bool lowercase = get_or(spec, "lowercase", true);
    // strip_accents null follows lowercase, as in BERT's original tokenizer.
    return std::make_unique<BertNormalizer>(get_or(spec, "clean_text", true), get_or(spec, "handle_chinese_chars", true),
                                            get_or(spec, "strip_accents", lowercase), lowercase);
  }
  if (type == "Sequence") {
    auto sequence = std::make_unique<NormalizerSequence>();
    sequence->where = where;
    const json& list = spec.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i)
      if (auto stage = make_normalizer(list[i], fmt::format("{}.normalizers[{}]", where, i)))
        sequence->stages.push_back(std::move(stage));
    return sequence;
  }
  unsupported(where, type, "NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, BertNormalizer, Sequence");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPre>(get_or(spec, "add_prefix_space", true), get_or(spec, "use_regex", true),
                                          where);
  if (type == "Split") {
    return std::make_unique<SplitPre>(pattern_regex(spec.at("pattern"), where + ".pattern"),
                                      split_behavior(spec.at("behavior").get<std::string>(), where + ".behavior"),
                                      get_or(spec, "invert", false));
  }
  if (type == "Metaspace")
    return std::make_unique<Metaspace>(one_character(spec, "replacement", "\xE2\x96\x81", where),
                                       metaspace_scheme(spec), get_or(spec, "split", true), where);
  if (type == "Digits") return std::make_unique<Digits>(get_or(spec, "individual_digits", false), where);
  if (type == "BertPreTokenizer") return std::make_unique<BertPre>();
  if (type == "Sequence") {
    auto sequence = std::make_unique<PreTokenizerSequence>();
    const json& list = spec.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i)
      if (auto stage = make_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i)))
        sequence->stages.push_back(std::move(stage));
    return sequence;
  }
  unsupported(where, type, "ByteLevel, Split, Metaspace, Digits, BertPreTokenizer, Sequence");
}

std::unique_ptr<PostProcessor> make_post_processor(const json& spec, const std::string& where) {
  if (spec.is_null()) return std::make_unique<Passthrough>();
  const std::string type = type_of(spec, where);
  if (type == "ByteLevel") return std::make_unique<Passthrough>();
  if (type == "TemplateProcessing") {
    auto processor = std::make_unique<Template>();
    const json& specials = spec.contains("special_tokens") ? spec["special_tokens"] : json::object();
    int sequences = 0;
    for (const json& part : spec.at("single")) {
      if (part.contains("Sequence")) {
        // HF's single template holds $A once; more would repeat the input (a hostile file's 1000 copies, nested).
        if (++sequences > 1) fail("{}.single: the input ($A) appears more than once", where);
        processor->parts.push_back({true, {}});
      } else if (part.contains("SpecialToken")) {
        const std::string name = part["SpecialToken"].at("id").get<std::string>();
        if (!specials.contains(name))
          fail("{}: special token '{}' of the template is missing from special_tokens", where, name);
        std::vector<int32_t> ids;
        for (const json& id : specials[name].at("ids")) ids.push_back(json_id(id, where + ".special_tokens." + name));
        processor->parts.push_back({false, std::move(ids)});
      } else {
        fail("{}.single: expected Sequence or SpecialToken parts, found {}", where, part.dump());
      }
    }
    return processor;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto processor = std::make_unique<Template>();
    processor->parts.push_back({false, {json_id(spec.at("cls").at(1), where + ".cls")}});
    processor->parts.push_back({true, {}});
    processor->parts.push_back({false, {json_id(spec.at("sep").at(1), where + ".sep")}});
    return processor;
  }
  if (type == "Sequence") {
    auto sequence = std::make_unique<PostProcessorSequence>();
    const json& list = spec.at("processors");
    for (size_t i = 0; i < list.size(); ++i)
      sequence->stages.push_back(make_post_processor(list[i], fmt::format("{}.processors[{}]", where, i)));
    return sequence;
  }
  unsupported(where, type, "ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence");
}

std::unique_ptr<Decoder> make_decoder(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    auto decoder = std::make_unique<MetaspaceDecoder>();
    decoder->replacement = one_character(spec, "replacement", "\xE2\x96\x81", where);
    decoder->strip_first = metaspace_scheme(spec) != "never";
    return decoder;
  }
  if (type == "Replace") {
    auto decoder = std::make_unique<ReplaceDecoder>();
    const json& pattern = spec.at("pattern");
    if (!pattern.contains("String")) fail("{}: only String patterns are supported in a Replace decoder", where);
    decoder->pattern = pattern["String"].get<std::string>();
    decoder->content = spec.at("content").get<std::string>();
    return decoder;
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "WordPiece") {
    auto decoder = std::make_unique<WordPieceDecoder>();
    decoder->prefix = get_or<std::string>(spec, "prefix", "##");
    decoder->cleanup = get_or(spec, "cleanup", true);
    return decoder;
  }
  if (type == "Strip") {
    auto decoder = std::make_unique<StripDecoder>();
    decoder->content = one_character(spec, "content", "", where);
    decoder->start = spec.at("start").get<size_t>();
    decoder->stop = spec.at("stop").get<size_t>();
    return decoder;
  }
  if (type == "Sequence") {
    auto sequence = std::make_unique<DecoderSequence>();
    const json& list = spec.at("decoders");
    for (size_t i = 0; i < list.size(); ++i)
      if (auto stage = make_decoder(list[i], fmt::format("{}.decoders[{}]", where, i)))
        sequence->stages.push_back(std::move(stage));
    return sequence;
  }
  unsupported(where, type, "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, WordPiece, Sequence");
}

}  // namespace lorakit::tokenizers
