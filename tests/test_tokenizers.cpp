// Tokenizers against transformers' AutoTokenizer: every text of the oracle's corpus
// (scripts/tokenizer_oracle.py) must give the same ids, with and without special tokens, and the
// same decoded text, for tokenizers trained by the oracle, for the real polyglot-ko and EXAONE
// files in ../shared and the real WordPiece vocabularies setup.sh fetches (skipped when absent).
// Plus HF's BERT character classes code point by code point, EXAONE chat rendering, prompt
// templates, the tokenize/detokenize commands and the errors bad input gets.
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/cli_runner.h"
#include "tests/test_paths.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/pipeline.h"
#include "tokenizers/prompt_template.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/unicode.h"

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using namespace lorakit::tokenizers;
using lorakit::testing::expect_failure;
using lorakit::testing::run;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "tokenizers"; }

const ordered_json& manifest() {
  static const ordered_json m = [] {
    std::ifstream in(oracle_dir() / "manifest.json");
    if (!in) return ordered_json();
    return ordered_json::parse(in);
  }();
  return m;
}

const ordered_json* find_case(const std::string& name) {
  if (manifest().is_null()) return nullptr;
  for (const auto& c : manifest()["cases"])
    if (c["name"] == name) return &c;
  return nullptr;
}

std::string excerpt(const std::string& text) {
  std::string e = json(text.substr(0, 80)).dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() > 80 ? e + "..." : e;
}

std::string ids_string(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < 24; ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return ids.size() > 24 ? out + ",..." : out;
}

// Compares one oracle case text by text; reports the first few differences in full.
void check_case(const std::string& name) {
  const ordered_json* c = find_case(name);
  if (!c) {
    if (manifest().is_null()) FAIL() << "no oracle output at " << oracle_dir() << " (ctest runs tokenizer_oracle first)";
    GTEST_SKIP() << name << " is not in the oracle's output (../shared absent?)";
  }
  const Tokenizer tokenizer = load_tokenizer((*c)["dir"].get<std::string>());
  const auto& corpus = manifest()["corpus"];
  size_t checked = 0, differing = 0;
  for (size_t k = 0; k < (*c)["texts"].size(); ++k) {
    const std::string text = corpus[(*c)["texts"][k].get<size_t>()].get<std::string>();
    const auto want = (*c)["ids"][k].get<std::vector<int32_t>>();
    const auto want_plain = (*c)["ids_plain"][k].is_null() ? want : (*c)["ids_plain"][k].get<std::vector<int32_t>>();
    const std::string want_decoded = (*c)["decoded"][k].is_null() ? text : (*c)["decoded"][k].get<std::string>();
    const std::string want_skip = (*c)["decoded_skip"][k].is_null() ? text : (*c)["decoded_skip"][k].get<std::string>();
    const auto got = tokenizer.encode(text, true);
    const auto got_plain = tokenizer.encode(text, false);
    const std::string decoded = tokenizer.decode(want), decoded_skip = tokenizer.decode(want, true);
    ++checked;
    if (got == want && got_plain == want_plain && decoded == want_decoded && decoded_skip == want_skip) continue;
    if (++differing > 5) continue;
    ADD_FAILURE() << name << " text " << k << " " << excerpt(text) << "\n"
                  << "  ids        HF " << ids_string(want) << "\n             lk " << ids_string(got) << "\n"
                  << "  ids plain  HF " << ids_string(want_plain) << "\n             lk " << ids_string(got_plain) << "\n"
                  << "  decoded    HF " << excerpt(want_decoded) << "\n             lk " << excerpt(decoded) << "\n"
                  << "  skip       HF " << excerpt(want_skip) << "\n             lk " << excerpt(decoded_skip);
  }
  EXPECT_EQ(differing, 0u) << name << ": " << differing << " of " << checked << " texts differ from transformers";
  EXPECT_EQ(tokenizer.vocab_size(), (*c)["vocab_size"].get<int64_t>()) << name;
  if (!(*c)["eos_token_id"].is_null()) {
    EXPECT_EQ(tokenizer.special().eos, (*c)["eos_token_id"].get<int32_t>()) << name;
  }
  if (!(*c)["bos_token_id"].is_null()) {
    EXPECT_EQ(tokenizer.special().bos, (*c)["bos_token_id"].get<int32_t>()) << name;
  }
  if (c->contains("pad_token_id") && !(*c)["pad_token_id"].is_null()) {
    EXPECT_EQ(tokenizer.special().pad, (*c)["pad_token_id"].get<int32_t>()) << name;
  }
  if (c->contains("unk_token_id") && !(*c)["unk_token_id"].is_null()) {
    EXPECT_EQ(tokenizer.special().unk, (*c)["unk_token_id"].get<int32_t>()) << name;
  }
  std::printf("%s: %zu texts, %zu identical to transformers\n", name.c_str(), checked, checked - differing);
}

}  // namespace

// The project's own tokenizers (trained by the oracle script), one per pipeline feature.
TEST(TokenizerParity, ByteLevelNfkcBosEos) { check_case("bytelevel-nfkc-bos-eos"); }
TEST(TokenizerParity, ByteLevelPrefixSpace) { check_case("bytelevel-prefix-space"); }
TEST(TokenizerParity, ByteLevelNoRegexNfcLowercase) { check_case("bytelevel-no-regex-nfc-lower"); }
TEST(TokenizerParity, SplitRemovedLikePolyglot) { check_case("split-removed-like-polyglot"); }
TEST(TokenizerParity, SplitLlama3RegexIgnoreMerges) { check_case("split-llama3-ignore-merges"); }
TEST(TokenizerParity, SplitMergedWithPrevious) { check_case("split-mergedwithprevious"); }
TEST(TokenizerParity, SplitMergedWithNext) { check_case("split-mergedwithnext"); }
TEST(TokenizerParity, SplitContiguousInverted) { check_case("split-contiguous"); }
TEST(TokenizerParity, SplitIsolated) { check_case("split-isolated"); }
TEST(TokenizerParity, NormalizerStripReplacePrepend) { check_case("normalizer-strip-replace-prepend"); }
TEST(TokenizerParity, Gpt2SlowFiles) { check_case("gpt2-files"); }
TEST(TokenizerParity, Gpt2SlowFilesPrefixSpaceBos) { check_case("gpt2-files-prefix-bos"); }
TEST(TokenizerParity, Qwen2SlowFilesNfcAndQwenRegex) { check_case("qwen2-files"); }
TEST(TokenizerParity, Llama2StyleJsonRebuiltAsLlamaTokenizerLikeEeve) { check_case("llama2-json-like-eeve"); }
TEST(TokenizerParity, Llama2StyleJsonRebuiltAsLlamaTokenizerLegacy) { check_case("llama2-json-like-eeve-legacy"); }
TEST(TokenizerParity, SentencePieceModel) { check_case("sentencepiece-bpe"); }
TEST(TokenizerParity, SentencePieceConvertedToTokenizerJson) { check_case("sentencepiece-as-tokenizer-json"); }
// WordPiece (BERT/ELECTRA). transformers 5 loads bert/electra directories as BertTokenizer, which
// keeps only tokenizer.json's vocabulary and added tokens and builds the rest from
// tokenizer_config.json: the v5 quirk (cased file lowercased; max_input_chars_per_word back to 100).
TEST(TokenizerParity, WordPieceBertUncased) { check_case("wordpiece-bert-uncased"); }
TEST(TokenizerParity, WordPieceElectraCased) { check_case("wordpiece-electra-cased"); }
TEST(TokenizerParity, WordPieceBertRebuildLowercasesCasedJson) { check_case("wordpiece-json-cased-config-lowercases"); }
TEST(TokenizerParity, WordPieceJsonAsWrittenMaxCharsPrefix) { check_case("wordpiece-json-as-written"); }
TEST(TokenizerParity, WordPieceElectraVocabTxtLikeKoElectra) { check_case("wordpiece-vocab-txt-like-koelectra"); }
TEST(TokenizerParity, WordPieceBertVocabTxtCrlfDefaultLowercase) { check_case("wordpiece-vocab-txt-crlf-default-lowercase"); }
// The real files (../shared/models, .cache/wordpiece-vocabs), over the whole corpus.
TEST(TokenizerParity, RealPolyglotKo) { check_case("polyglot-ko-1.3b"); }
TEST(TokenizerParity, RealExaone4) { check_case("EXAONE-4.0-1.2B"); }
TEST(TokenizerParity, RealBertBaseUncasedVocab) { check_case("real-bert-base-uncased-vocab"); }
TEST(TokenizerParity, RealHanBertVocab) { check_case("real-hanbert-54k-vocab"); }
TEST(TokenizerParity, RealKoElectraVocab) { check_case("koelectra-base-v3-discriminator"); }

// HF's BERT character classes (the oracle's bert_char_classes, read off HF tokenizers one code point
// at a time): lorakit's BertNormalizer and BertPreTokenizer treat each of the 1,112,064 code points
// as HF's do. HF's tables are Unicode 8's, so this is what keeps tokenizers/bert_tables.h honest.
TEST(TokenizerParity, BertCharacterClasses) {
  ASSERT_FALSE(manifest().is_null()) << "no oracle output at " << oracle_dir();
  const auto& classes = manifest()["bert_char_classes"];
  ASSERT_TRUE(classes.is_object()) << "manifest without bert_char_classes";
  const auto set_of = [&](const char* name) {
    std::vector<bool> in(0x110000);
    for (const auto& range : classes[name])
      for (uint32_t c = range[0].get<uint32_t>(); c <= range[1].get<uint32_t>(); ++c) in[c] = true;
    return in;
  };
  const auto control = set_of("control"), whitespace = set_of("whitespace"), cjk = set_of("cjk_ideograph"),
             mark = set_of("nonspacing_mark"), punctuation = set_of("punctuation"), split = set_of("split_whitespace");
  const auto bert = [](bool clean, bool chinese, bool strip, bool lower) {
    return make_normalizer({{"type", "BertNormalizer"}, {"clean_text", clean}, {"handle_chinese_chars", chinese},
                            {"strip_accents", strip}, {"lowercase", lower}},
                           "test");
  };
  const auto clean = bert(true, false, false, false), chinese = bert(false, true, false, false),
             strip = bert(false, false, true, false), lower = bert(false, false, false, true);
  const auto pre = make_pre_tokenizer({{"type", "BertPreTokenizer"}}, "test");
  // Unicode 13's one new canonical decomposition (DIVES AKURU VOWEL SIGN O), which HF's NFD tables predate.
  const std::set<char32_t> known_nfd_differences = {0x11938};
  size_t checked = 0, differing = 0, unknown_to_utf8proc = 0;
  const auto report = [&](const char* what, char32_t c, const std::string& want, const std::string& got) {
    if (++differing <= 8)
      ADD_FAILURE() << what << " of U+" << fmt::format("{:04X}", static_cast<uint32_t>(c)) << ": HF " << excerpt(want)
                    << ", lorakit " << excerpt(got);
  };
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    std::string ch;
    utf8_append(ch, c);
    ++checked;
    std::string text = "a" + ch + "a";
    clean->apply(text);
    std::string want = control[c] ? "aa" : whitespace[c] ? "a a" : "a" + ch + "a";
    if (text != want) report("clean_text", c, want, text);
    text = ch;
    chinese->apply(text);
    if (want = cjk[c] ? " " + ch + " " : ch; text != want) report("handle_chinese_chars", c, want, text);
    const std::string key = std::to_string(static_cast<uint32_t>(c));
    if (!(c >= 0xAC00 && c <= 0xD7A3) && !known_nfd_differences.count(c)) {
      text = ch;
      strip->apply(text);
      want = mark[c] ? "" : classes["strip_accents"].contains(key) ? classes["strip_accents"][key].get<std::string>() : ch;
      if (text != want) report("strip_accents", c, want, text);
    }
    want = classes["lowercase"].contains(key) ? classes["lowercase"][key].get<std::string>() : ch;
    text = ch;
    lower->apply(text);
    if (text != want) {
      if (is_unicode_assigned(c)) report("lowercase", c, want, text);
      else ++unknown_to_utf8proc;  // a letter newer than utf8proc's Unicode
    }
    std::vector<Piece> pieces{{"a" + ch + "a", true}};
    pre->apply(pieces);
    std::string got;
    for (const Piece& piece : pieces) got += "[" + piece.text + "]";
    want = punctuation[c] ? "[a][" + ch + "][a]" : split[c] ? "[a][a]" : "[a" + ch + "a]";
    if (got != want) report("BertPreTokenizer", c, want, got);
  }
  EXPECT_EQ(checked, 1112064u);
  EXPECT_EQ(differing, 0u) << differing << " differences from HF tokenizers";
  EXPECT_LT(unknown_to_utf8proc, 100u) << "lowercase mappings of letters utf8proc does not know";
  std::printf("BERT character classes: %zu code points, %zu lowercase mappings newer than utf8proc skipped\n", checked,
              unknown_to_utf8proc);
}

// Decoding gives back the text for the real tokenizers (polyglot deletes U+0CF1 by design).
TEST(TokenizerRoundTrip, RealTokenizersDecodeToTheInput) {
  size_t tested = 0;
  for (const char* name : {"polyglot-ko-1.3b", "EXAONE-4.0-1.2B"}) {
    const ordered_json* c = find_case(name);
    if (!c) continue;
    const Tokenizer tokenizer = load_tokenizer((*c)["dir"].get<std::string>());
    size_t bad = 0;
    for (const auto& text_json : manifest()["corpus"]) {
      const std::string text = text_json.get<std::string>();
      if (std::string(name) == "polyglot-ko-1.3b" && text.find("\xE0\xB3\xB1") != std::string::npos) continue;
      if (tokenizer.decode(tokenizer.encode(text, false)) != text && ++bad <= 3)
        ADD_FAILURE() << name << ": decode(encode(x)) != x for " << excerpt(text);
      ++tested;
    }
    EXPECT_EQ(bad, 0u) << name;
  }
  if (!tested) GTEST_SKIP() << "../shared/models absent";
}

TEST(ChatTemplate, Exaone4MatchesApplyChatTemplate) {
  if (manifest().is_null() || manifest()["chat"].empty()) GTEST_SKIP() << "EXAONE-4.0-1.2B (../shared) absent";
  const Tokenizer tokenizer = load_tokenizer(find_case("EXAONE-4.0-1.2B")->at("dir").get<std::string>());
  ASSERT_EQ(detect_chat_format(tokenizer.chat_template()), ChatFormat::Exaone4);
  size_t n = 0;
  for (const auto& c : manifest()["chat"]) {
    ChatOptions options;
    options.add_generation_prompt = c.value("add_generation_prompt", false);
    options.enable_thinking = c.value("enable_thinking", false);
    options.skip_think = c.value("skip_think", true);
    if (c.contains("tools")) options.tools = c["tools"];
    const auto segments = render_chat(ChatFormat::Exaone4, c["messages"], options);
    std::string text;
    for (const auto& s : segments) text += s.text;
    EXPECT_EQ(text, c["text"].get<std::string>()) << "conversation " << n;
    EXPECT_EQ(tokenizer.encode(text, false), c["ids"].get<std::vector<int32_t>>()) << "conversation " << n;
    // Every assistant content appears inside a trainable segment.
    for (const auto& m : c["messages"]) {
      if (m["role"] != "assistant" || !m["content"].is_string() || m["content"].get<std::string>().empty()) continue;
      std::string content = m["content"].get<std::string>();
      if (const size_t close = content.rfind("</think>"); close != std::string::npos)
        content = content.substr(close + 8);
      const std::string core = content.substr(content.find_first_not_of(" \n"), 8);
      const bool found = std::any_of(segments.begin(), segments.end(), [&](const ChatSegment& s) {
        return s.assistant && s.text.find(core) != std::string::npos;
      });
      EXPECT_TRUE(found) << "conversation " << n << ": assistant text " << excerpt(core) << " not in a trainable segment";
    }
    ++n;
  }
  std::printf("%zu EXAONE chat renderings identical to apply_chat_template\n", n);
}

// Llama 3, Llama 3.1/3.2, Qwen1.5, Qwen3, EXAONE 3.5 and Gemma: their real templates (../shared;
// EXAONE 3.5's and Gemma-2's as LG and Google publish them) on tokenizers with their special tokens, 60 generated conversations
// each (system or not, 1-4 turns, padded whitespace, generation prompts, thinking on/off/unset,
// reasoning, tools): text and ids equal apply_chat_template's.
TEST(ChatTemplate, FamiliesMatchApplyChatTemplate) {
  ASSERT_FALSE(manifest().is_null());
  std::map<std::string, Tokenizer> tokenizers;
  std::map<std::string, int> rendered;
  for (const auto& c : manifest()["chat_families"]) {
    const std::string family = c["family"], dir = c["dir"];
    if (!tokenizers.count(dir)) tokenizers.emplace(dir, load_tokenizer(dir));
    const Tokenizer& tokenizer = tokenizers.at(dir);
    const ChatFormat format = detect_chat_format(tokenizer.chat_template());
    ASSERT_EQ(std::string(chat_format_name(format)), family) << dir;
    ChatOptions options;
    options.add_generation_prompt = c.value("add_generation_prompt", false);
    if (c.contains("enable_thinking")) options.enable_thinking = c["enable_thinking"].get<bool>();
    if (c.contains("tools")) options.tools = c["tools"];
    if (c.contains("date_string")) options.date_string = c["date_string"];
    if (tokenizer.special().bos) options.bos_token = tokenizer.decode(std::vector<int32_t>{*tokenizer.special().bos}, false);
    const int n = rendered[family]++;
    const auto segments = render_chat(format, c["messages"], options);
    std::string text;
    for (const auto& s : segments) text += s.text;
    EXPECT_EQ(text, c["text"].get<std::string>()) << family << " conversation " << n;
    EXPECT_EQ(tokenizer.encode(text, false), c["ids"].get<std::vector<int32_t>>()) << family << " conversation " << n;
    // Every assistant reply is inside a trainable segment.
    for (const auto& m : c["messages"]) {
      if (!m["content"].is_string()) continue;
      std::string content = python_strip(m["content"].get<std::string>());
      if (const size_t close = content.rfind("</think>"); close != std::string::npos) content = python_strip(content.substr(close + 8));
      if (content.empty() || content.size() < 4) continue;
      const bool trained = std::any_of(segments.begin(), segments.end(), [&](const ChatSegment& s) {
        return s.assistant && s.text.find(content) != std::string::npos;
      });
      if (m["role"] == "assistant") {
        EXPECT_TRUE(trained) << family << " conversation " << n << ": " << excerpt(content) << " not trainable";
      }
    }
  }
  for (const auto& [family, count] : rendered) std::printf("%s: %d conversations identical to apply_chat_template\n", family.c_str(), count);
  EXPECT_GE(rendered["exaone3"], 50);
  EXPECT_GE(rendered["gemma"], 50);
  EXPECT_GE(rendered["qwen2"], 50);
  // Gemma's template refuses a system turn and turns out of order, as apply_chat_template raises.
  const ordered_json system = ordered_json::parse(R"([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])");
  EXPECT_THROW(render_chat(ChatFormat::Gemma, system), lorakit::Error);
  const ordered_json twice = ordered_json::parse(R"([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])");
  EXPECT_THROW(render_chat(ChatFormat::Gemma, twice), lorakit::Error);
  if (rendered.size() < 7) GTEST_SKIP() << "../shared/models absent: only EXAONE 3.5's, Gemma's and Qwen2's templates checked";
  for (const auto& [family, count] : rendered) EXPECT_GE(count, 50) << family;
}

TEST(ChatTemplate, SegmentsMaskEverythingButAssistantTurns) {
  const ordered_json messages = ordered_json::parse(R"([
      {"role": "system", "content": "S"}, {"role": "user", "content": "U"},
      {"role": "assistant", "content": "A"}])");
  const auto segments = render_chat(ChatFormat::Exaone4, messages);
  std::string trained, masked;
  for (const auto& s : segments) (s.assistant ? trained : masked) += s.text;
  EXPECT_EQ(trained, "A[|endofturn|]");
  EXPECT_EQ(masked, "[|system|]\nS[|endofturn|]\n[|user|]\nU[|endofturn|]\n[|assistant|]\n<think>\n\n</think>\n\n\n");
  EXPECT_THROW(render_chat(ChatFormat::Exaone4, ordered_json::parse(R"([{"role": "bot", "content": "x"}])")),
               lorakit::Error);
  EXPECT_THROW(render_chat(ChatFormat::None, messages), lorakit::Error);
  EXPECT_EQ(python_json(ordered_json::parse(R"({"b": [1, 2.5, "한"], "a": {"x": null, "y": true}})")),
            R"({"b": [1, 2.5, "한"], "a": {"x": null, "y": true}})");
}

TEST(PromptTemplate, NamedFieldsAndErrors) {
  const PromptTemplate t("### 질문: {input}\n### 답변: {{literal}} {output}", "recipe.yaml: data.prompt");
  EXPECT_EQ(t.fields(), (std::vector<std::string>{"input", "output"}));
  const auto value = [](const std::string& name) -> std::optional<std::string> {
    if (name == "input") return "너는 누구야?";
    if (name == "output") return "난 오로라야!";
    return std::nullopt;
  };
  EXPECT_EQ(t.render(value), "### 질문: 너는 누구야?\n### 답변: {literal} 난 오로라야!");
  const PromptTemplate missing("{inptu}", "recipe.yaml: data.prompt");
  try {
    missing.render(value, {"input", "output"});
    FAIL() << "expected an error";
  } catch (const lorakit::Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "recipe.yaml: data.prompt: field '{inptu}' has no value");
    EXPECT_CONTAINS(std::string(e.what()), "did you mean 'input'");
  }
  EXPECT_THROW(PromptTemplate("{unclosed", "t"), lorakit::Error);
  EXPECT_THROW(PromptTemplate("stray }", "t"), lorakit::Error);
  EXPECT_THROW(PromptTemplate("{}", "t"), lorakit::Error);
}

// A model directory without tokenizer files still serves pre-tokenized data: config.json's special ids,
// and a clear error for any text.
TEST(TokenizerErrors, IdsOnlyDirectoryKnowsSpecialIdsAndRefusesText) {
  const std::string dir = lorakit::testing::parity_dir() + "/llama_gqa1_bias_untied";
  const Tokenizer ids_only = load_tokenizer_or_ids_only(dir);
  EXPECT_EQ(ids_only.special().pad, std::optional<int32_t>(0));
  EXPECT_EQ(ids_only.vocab_size(), 256);
  try {
    ids_only.encode("안녕", false);
    ADD_FAILURE() << "encoded text without a vocabulary";
  } catch (const lorakit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.ids_column"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_tokenizer(dir), lorakit::Error);  // the plain loader still wants the files
}

TEST(TokenizerErrors, InvalidUtf8NamesTheByteOffset) {
  const ordered_json* c = find_case("bytelevel-nfkc-bos-eos");
  ASSERT_TRUE(c) << "oracle output missing";
  const Tokenizer tokenizer = load_tokenizer((*c)["dir"].get<std::string>());
  for (const auto& [text, offset] : std::vector<std::pair<std::string, int>>{
           {"abc\xFF", 3}, {"\xEC\x95", 0}, {"가\xED\xA0\x80", 3}, {"ok\xC0\xAF", 2}}) {
    try {
      tokenizer.encode(text);
      ADD_FAILURE() << "no error for " << offset;
    } catch (const lorakit::Error& e) {
      EXPECT_CONTAINS(std::string(e.what()), fmt::format("invalid UTF-8 at byte offset {}", offset));
    }
  }
  EXPECT_THROW(tokenizer.decode(std::vector<int32_t>{static_cast<int32_t>(tokenizer.vocab_size())}), lorakit::Error);
}

TEST(TokenizerErrors, BrokenFilesNameTheFile) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_tok_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto expect_error = [&](const std::vector<std::string>& pieces) {
    try {
      load_tokenizer(dir.string());
      ADD_FAILURE() << "no error; expected " << pieces[0];
    } catch (const lorakit::Error& e) {
      for (const auto& piece : pieces) EXPECT_CONTAINS(std::string(e.what()), piece);
    }
  };
  std::ofstream(dir / "config.json") << "{}";
  expect_error({"no tokenizer files", "config.json"});
  std::ofstream(dir / "vocab.json") << R"({"a": 0, "b": 1, "ab": 2})";
  std::ofstream(dir / "merges.txt") << "#version: 0.2\na b\nb  c\n";
  expect_error({"merges.txt:3", "two tokens"});
  std::ofstream(dir / "merges.txt") << "#version: 0.2\na c\n";
  expect_error({"merge 0 'a c'", "missing from the vocab"});
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  expect_error({"tokenizer.json: model", "'Unigram' is not supported"});
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})";
  expect_error({"tokenizer.json: model", "WordPiece's unk_token '[UNK]' is not in the vocab (1 entries)"});
  std::ofstream(dir / "tokenizer.json")
      << R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "max_input_chars_per_word": -1}})";
  expect_error({"tokenizer.json: model.max_input_chars_per_word", "non-negative integer"});
  std::ofstream(dir / "tokenizer.json")
      << R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "normalizer": {"type": "BertNormalizer", "lowercase": 1}})";
  expect_error({"tokenizer.json"});
  std::ofstream(dir / "tokenizer.json")
      << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}})";
  expect_error({"tokenizer.json: pre_tokenizer", "unsupported type 'Whitespace'"});
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, )";
  expect_error({"tokenizer.json:1"});
  fs::remove_all(dir);
}

// vocab.txt: read as BertTokenizer only where transformers does, with its line numbers in errors.
TEST(TokenizerErrors, WordPieceVocabTxt) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_vocab_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto expect_error = [&](const std::vector<std::string>& pieces) {
    try {
      load_tokenizer(dir.string());
      ADD_FAILURE() << "no error; expected " << pieces[0];
    } catch (const lorakit::Error& e) {
      for (const auto& piece : pieces) EXPECT_CONTAINS(std::string(e.what()), piece);
    }
  };
  std::ofstream(dir / "vocab.txt", std::ios::binary) << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\n";
  expect_error({"vocab.txt", "BertTokenizer", "found tokenizer_class ''", "hint:"});  // transformers refuses it too
  std::ofstream(dir / "config.json") << R"({"model_type": "llama"})";
  expect_error({"vocab.txt", "model_type bert, electra or distilbert"});
  std::ofstream(dir / "config.json") << R"({"model_type": "electra"})";
  const Tokenizer tokenizer = load_tokenizer(dir.string());
  EXPECT_EQ(tokenizer.encode("Hellos HELLO x", true), (std::vector<int32_t>{2, 5, 6, 5, 1, 3}));
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{2, 5, 6, 5, 3}, true), "hellos hello");
  EXPECT_EQ(tokenizer.special().pad, std::optional<int32_t>(0));
  EXPECT_EQ(tokenizer.special().unk, std::optional<int32_t>(1));
  EXPECT_CONTAINS(tokenizer.source(), "BertTokenizer: model_type electra");
  std::ofstream(dir / "vocab.txt", std::ios::binary) << "[PAD]\n[UNK]\nok\n\xFF" "bad\n";
  expect_error({"vocab.txt:4", "invalid UTF-8"});
  std::ofstream(dir / "vocab.txt", std::ios::binary) << "[PAD]\nhello\n";
  expect_error({"vocab.txt", "unk_token '[UNK]' is not in the vocab"});
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{}";
  expect_error({"no tokenizer files", "vocab.txt"});
  fs::remove_all(dir);
}

TEST(TokenizeCommand, JsonlFileMatchesTransformers) {
  const ordered_json* c = find_case("EXAONE-4.0-1.2B");
  if (!c) c = find_case("gpt2-files");
  ASSERT_TRUE(c) << "oracle output missing";
  const fs::path file = fs::temp_directory_path() / fmt::format("lorakit_tok_{}.txt", ::getpid());
  std::ofstream out(file, std::ios::binary);
  std::vector<std::string> want;
  for (size_t k = 0; k < 200; ++k) {
    const std::string text = manifest()["corpus"][(*c)["texts"][k].get<size_t>()].get<std::string>();
    if (text.find_first_of("\r\n") != std::string::npos) continue;  // one text per line
    out << text << "\n";
    want.push_back(json((*c)["ids"][k]).dump());
  }
  out.close();
  const auto r = run(fmt::format("tokenize --model '{}' --file '{}' --jsonl", (*c)["dir"].get<std::string>(), file.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string expected;
  for (const auto& line : want) expected += line + "\n";
  EXPECT_EQ(r.output, expected);

  std::ofstream(file, std::ios::binary) << "좋아\n나쁜 \xFF바이트\n";
  // Lines stream out as they are read, so the first line's ids come before the error.
  const auto bad = run(fmt::format("tokenize --model '{}' --file '{}' --jsonl", (*c)["dir"].get<std::string>(), file.string()));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_CONTAINS(bad.output, "error: " + file.string() + ":2: invalid UTF-8 at byte offset 7 (byte 0xFF)");
  fs::remove(file);
}

TEST(TokenizeCommand, TableAndDetokenize) {
  const ordered_json* c = find_case("bytelevel-nfkc-bos-eos");
  ASSERT_TRUE(c) << "oracle output missing";
  const std::string dir = (*c)["dir"].get<std::string>();
  const auto table = run(fmt::format("tokenize --model '{}' --text '안녕 world'", dir));
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_CONTAINS(table.output, "\"<s>\"");
  EXPECT_CONTAINS(table.output, " tokens\n");
  const Tokenizer tokenizer = load_tokenizer(dir);
  const auto ids = tokenizer.encode("안녕 world", false);
  std::string list;
  for (int32_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  const auto back = run(fmt::format("detokenize --model '{}' --ids {}", dir, list));
  EXPECT_EQ(back.exit_code, 0);
  EXPECT_EQ(back.output, "안녕 world\n");
  expect_failure(run(fmt::format("detokenize --model '{}' --ids 1,x", dir)), {"--ids", "'x'"});
  expect_failure(run(fmt::format("detokenize --model '{}' --ids 99999999", dir)), {"cannot decode id 99999999"});
  expect_failure(run("tokenize --model /nonexistent --text x"), {"/nonexistent", "not a directory"});
  expect_failure(run(fmt::format("tokenize --model '{}'", dir)), {"--text", "--file"});
}
