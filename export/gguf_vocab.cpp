#include "export/gguf_vocab.h"

#include <openssl/sha.h>

#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "models/model.h"
#include "tokenizers/sentencepiece_vocab.h"
#include "tokenizers/tokenizer.h"

namespace lorakit::exports::gguf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

enum TokenType : int32_t { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };

struct AddedTokenInfo {
  std::string content;
  bool special = false, normalized = false;
};

std::optional<json> read_json_if(const fs::path& file) {
  if (!fs::exists(file)) return std::nullopt;
  return JsonReader::parse_file(file.string());
}

bool looks_special(const std::string& t) {
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (t.starts_with("<|") && t.ends_with("|>")) return true;
  if (t.starts_with("<\xef\xbd\x9c") && t.ends_with("\xef\xbd\x9c>")) return true;  // <｜ ... ｜>
  return t.starts_with("<unused") && t.ends_with(">");
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  for (unsigned char c : digest) hex += fmt::format("{:02x}", c);
  return hex;
}

// get_vocab_base_pre: the ids of the check text, hashed as Python prints the list.
std::string tokenizer_pre(const tokenizers::Tokenizer& tokenizer, const fs::path& dir, const std::string& override_name) {
  static const unsigned char chktxt[] = {
#include "export/gguf_chktxt.inc"
  };
  const std::vector<int32_t> ids = tokenizer.encode(std::string(reinterpret_cast<const char*>(chktxt), sizeof(chktxt)));
  const std::string hash = sha256_hex(fmt::format("[{}]", fmt::join(ids, ", ")));
  std::string name;
#define LORAKIT_PRE_HASH(h, n) \
  if (hash == h) name = n;
#include "export/gguf_pre_hashes.def"
#undef LORAKIT_PRE_HASH
  if (!override_name.empty()) return override_name;
  if (name.empty())
    fail("{}: the tokenizer's pre-tokenizer is not one llama.cpp knows (sha256 {} of its ids for llama.cpp's check "
         "text is not in convert_hf_to_gguf.py's table), so llama.cpp would split text differently; hint: pass "
         "--tokenizer-pre NAME with the name of the family it was trained as (llama-bpe, qwen2, gpt-2, exaone4, ...)",
         dir.string(), hash);
  return name;
}

// get_vocab_base: AutoTokenizer's vocabulary (the model's tokens and the added ones), padded to
// vocab_size; added tokens are CONTROL when special (or looking special), else USER_DEFINED.
std::string write_gpt2_tokens(Writer& w, const fs::path& dir, int64_t config_vocab_size, const std::string& pre_override) {
  const auto tokenizer_json = read_json_if(dir / "tokenizer.json");
  const auto tokenizer_config = read_json_if(dir / "tokenizer_config.json");
  // The vocabulary as AutoTokenizer's get_vocab(): the model's tokens plus the added ones.
  std::map<int64_t, std::string> by_id;
  std::map<int64_t, AddedTokenInfo> added;
  if (tokenizer_json) {
    for (const auto& [token, id] : (*tokenizer_json).at("model").at("vocab").items()) by_id[id.get<int64_t>()] = token;
    for (const auto& t : tokenizer_json->value("added_tokens", json::array()))
      added[t.at("id").get<int64_t>()] = {t.at("content").get<std::string>(), t.value("special", false), t.value("normalized", false)};
  } else {
    const auto vocab = read_json_if(dir / "vocab.json");
    if (!vocab) fail("{}: no tokenizer.json or vocab.json; hint: GGUF needs the model's BPE vocabulary", dir.string());
    for (const auto& [token, id] : vocab->items()) by_id[id.get<int64_t>()] = token;
    if (tokenizer_config && tokenizer_config->contains("added_tokens_decoder"))
      for (const auto& [id, t] : (*tokenizer_config)["added_tokens_decoder"].items())
        added[parse_id(id, "tokenizer_config.json: added_tokens_decoder")] = {t.at("content").get<std::string>(), t.value("special", false), t.value("normalized", false)};
  }
  for (const auto& [id, t] : added) by_id[id] = t.content;
  if (config_vocab_size > kMaxDimension) fail("config.json: vocab_size {} is past {}", config_vocab_size, kMaxDimension);
  const int64_t vocab_size = config_vocab_size > 0 ? config_vocab_size : static_cast<int64_t>(by_id.size());
  if (!by_id.empty() && by_id.rbegin()->first >= vocab_size)
    fail("{}: token id {} is past config.json's vocab_size {}; hint: the tokenizer and the model do not belong together",
         dir.string(), by_id.rbegin()->first, vocab_size);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < vocab_size; ++i) {
    const auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens.push_back(fmt::format("[PAD{}]", i));
      types.push_back(UNUSED);
      continue;
    }
    std::string token = it->second;
    const auto a = added.find(i);
    if (a == added.end()) {
      types.push_back(NORMAL);
    } else if (a->second.special || looks_special(token)) {
      types.push_back(CONTROL);
    } else {
      for (size_t p; (p = token.find("\xe2\x96\x81")) != std::string::npos;) token.replace(p, 3, " ");
      types.push_back(USER_DEFINED);
    }
    tokens.push_back(std::move(token));
  }
  const tokenizers::Tokenizer tokenizer = tokenizers::load_tokenizer(dir.string());
  const std::string pre = tokenizer_pre(tokenizer, dir, pre_override);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  return pre;
}

struct SpecialVocabOptions {
  bool load_merges = false;
  std::optional<int64_t> n_vocab;  // ids at or past it are skipped
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  std::vector<std::pair<std::string, int64_t>> fixed;  // _set_special_token calls after loading (CodeGemma's)
  bool chat_template = true;
};

// gguf-py's SpecialVocab(dir, ...).add_to_gguf(w): merges, special ids, add_*_token, chat template,
// normalizer flags, from tokenizer.json, tokenizer_config.json, chat_template.jinja and config.json.
void write_special_vocab(Writer& w, const fs::path& dir, const SpecialVocabOptions& options) {
  const auto tokenizer_json = read_json_if(dir / "tokenizer.json");
  const auto tokenizer_config = read_json_if(dir / "tokenizer_config.json");
  std::vector<std::string> merges;
  std::vector<std::pair<std::string, int64_t>> special_ids;  // in the order SpecialVocab sets them
  std::vector<std::pair<std::string, bool>> add_special;
  auto set_special = [&](const std::string& type, const json& id) {
    if (!id.is_number_integer()) return;
    const int64_t v = id.get<int64_t>();
    if (v < 0) fail("{}: invalid {} token id {}", dir.string(), type, v);
    if (options.n_vocab && v >= *options.n_vocab) return;
    for (const auto& [t, _] : special_ids)
      if (t == type) return;
    special_ids.emplace_back(type, v);
  };
  auto set_add = [&](const std::string& type, bool value, bool overwrite) {
    for (auto& [t, v] : add_special)
      if (t == type) {
        if (overwrite) v = value;
        return;
      }
    add_special.emplace_back(type, value);
  };
  std::vector<std::string> types_list = options.types;
  std::optional<bool> lowercase, strip_accents;
  json config_tc = tokenizer_config.value_or(json());
  json added_tokens = json::array();
  if (tokenizer_json) {
    const json& m = tokenizer_json->at("model");
    if (options.load_merges && m.contains("merges") && m["merges"].is_array() && !m["merges"].empty()) {
      for (const auto& merge : m["merges"]) {
        if (merge.is_string()) {
          merges.push_back(merge.get<std::string>());
        } else {
          std::vector<std::string> parts;
          for (const auto& part : merge) {
            std::string s;
            for (char c : part.get<std::string>()) s += c == ' ' ? std::string("\xc4\xa0") : std::string(1, c);  // chr(ord(' ') + 256)
            parts.push_back(s);
          }
          merges.push_back(fmt::format("{}", fmt::join(parts, " ")));
        }
      }
    }
    std::function<void(const json&)> parse_normalizer = [&](const json& n) {
      const std::string t = n.value("type", std::string());
      if (t == "Lowercase") lowercase = true;
      else if (t == "StripAccents") strip_accents = true;
      else if (t == "BertNormalizer") {
        if (n.contains("lowercase")) lowercase = n["lowercase"].get<bool>();
        if (n.contains("strip_accents") && n["strip_accents"].is_boolean()) strip_accents = n["strip_accents"].get<bool>();
      } else if (t == "Sequence") {
        for (const auto& x : n.value("normalizers", json::array())) parse_normalizer(x);
      }
    };
    if (tokenizer_json->contains("normalizer") && (*tokenizer_json)["normalizer"].is_object()) parse_normalizer((*tokenizer_json)["normalizer"]);
    added_tokens = tokenizer_json->value("added_tokens", json::array());
    // The post-processor: what it adds (ByteLevel: nothing; RobertaProcessing: bos, eos and sep;
    // TemplateProcessing: read off its single and pair templates, as crudely as gguf-py does).
    const bool has_tc = config_tc.is_object() && !config_tc.empty();
    auto token_of = [&](const char* key) -> std::string {
      if (!has_tc || !config_tc.contains(key) || !config_tc[key].is_string()) return "";
      return config_tc[key].get<std::string>();
    };
    std::string special_bos = token_of("bos_token"), special_cls = token_of("cls_token");
    std::string special_eos = token_of("eos_token"), special_sep = token_of("sep_token");
    if (special_bos.empty() && !special_cls.empty() && has_tc) config_tc["bos_token"] = special_bos = special_cls;
    if (special_eos.empty() && !special_sep.empty() && has_tc) config_tc["eos_token"] = special_eos = special_sep;
    auto special_id = [](const json& piece) -> std::string {
      return piece.contains("SpecialToken") && piece["SpecialToken"].contains("id") ? piece["SpecialToken"]["id"].get<std::string>() : "";
    };
    auto sequence_id = [](const json& piece) -> std::string {
      return piece.contains("Sequence") && piece["Sequence"].contains("id") ? piece["Sequence"]["id"].get<std::string>() : "";
    };
    const json pp = tokenizer_json->value("post_processor", json());
    if (pp.is_object()) {
      const json processors = pp.contains("processors") ? pp["processors"] : json::array({pp});
      for (const auto& p : processors) {
        const std::string t = p.value("type", std::string());
        if (t == "ByteLevel") {
          set_add("bos", false, false);
          set_add("eos", false, false);
        } else if (t == "RobertaProcessing") {
          set_add("bos", true, true);
          set_add("eos", true, true);
          set_add("sep", true, true);
          if (special_cls.empty() && has_tc) {
            special_cls = p.contains("cls") ? p["cls"][0].get<std::string>() : special_bos;
            config_tc["cls_token"] = special_cls;
          }
          if (special_sep.empty() && has_tc) {
            special_sep = p.contains("sep") ? p["sep"][0].get<std::string>() : special_eos;
            config_tc["sep_token"] = special_sep;
          }
        } else if (t == "TemplateProcessing") {
          json single = p.value("single", json::array()), pair = p.value("pair", json::array());
          std::string first, last;
          if (single.size() > 1) {
            first = special_id(single.front());
            if (!first.empty()) {
              if (!has_tc) {
                special_bos = first;
              } else if (first != special_bos && first != special_cls) {
                if (special_bos.empty()) config_tc["bos_token"] = special_bos = first;
                if (special_cls.empty()) config_tc["cls_token"] = special_cls = first;
              }
              set_add("bos", first == special_bos || first == special_cls, true);
            }
            last = special_id(single.back());
            if (!last.empty()) {
              if (!has_tc) {
                special_eos = last;
              } else if (last != special_eos) {
                // The old EOS becomes EOT (or EOM) and the template's last token the EOS.
                const bool has_eot = std::find(types_list.begin(), types_list.end(), "eot") != types_list.end();
                const bool has_eom = std::find(types_list.begin(), types_list.end(), "eom") != types_list.end();
                if (!has_eot) {
                  types_list.push_back("eot");
                  config_tc["eot_token"] = special_eos;
                } else if (!has_eom) {
                  types_list.push_back("eom");
                  config_tc["eom_token"] = special_eos;
                }
                config_tc["eos_token"] = special_eos = last;
              }
              set_add("eos", last == special_eos, true);
            }
          }
          if (!pair.empty()) {
            const size_t start = !first.empty() && special_id(pair.front()) == first ? 1 : 0;
            const size_t stop = !last.empty() && special_id(pair.back()) == last ? pair.size() - 1 : pair.size();
            std::vector<json> middle(pair.begin() + static_cast<std::ptrdiff_t>(std::min(start, pair.size())),
                                     pair.begin() + static_cast<std::ptrdiff_t>(std::max(stop, std::min(start, pair.size()))));
            if (!middle.empty() && sequence_id(middle.front()) == "A" && sequence_id(middle.back()) == "B" && middle.size() > 2) {
              middle = std::vector<json>(middle.begin() + 1, middle.end() - 1);  // A [sep] [eos] B
              bool add_sep = false;
              const std::string entry = special_id(middle[0]);
              if (!entry.empty() && (entry == special_sep || entry == special_eos) && last.empty()) add_sep = true;
              if (middle.size() == 2) {
                const std::string second = special_id(middle[1]);
                if (!second.empty() && (second == special_sep || second == special_eos)) add_sep = true;
              }
              set_add("sep", add_sep, true);
              if (add_sep && special_sep.empty() && has_tc) config_tc["sep_token"] = special_eos;
            }
          }
        }
      }
    }
  }
  if (options.load_merges && merges.empty() && fs::exists(dir / "merges.txt")) {
    std::ifstream in(dir / "merges.txt");
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      auto trim = [](std::string s) {
        const auto b = s.find_first_not_of(" \t\r\n\v\f");
        if (b == std::string::npos) return std::string();
        return s.substr(b, s.find_last_not_of(" \t\r\n\v\f") - b + 1);
      };
      const std::string t = trim(line);
      if (first && t.starts_with("#")) {
        first = false;
        continue;
      }
      first = false;
      if (t.empty()) continue;
      std::istringstream parts(t);
      std::vector<std::string> p;
      for (std::string x; parts >> x;) p.push_back(x);
      if (p.size() == 2) merges.push_back(p[0] + " " + p[1]);
    }
  }
  std::optional<std::string> chat_template;
  if (config_tc.is_object() && !config_tc.empty()) {
    std::optional<std::string> alt;
    if (fs::exists(dir / "chat_template.jinja")) {
      std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
      alt = std::string(std::istreambuf_iterator<char>(in), {});
    } else if (const auto ct = read_json_if(dir / "chat_template.json"); ct && (*ct).contains("chat_template")) {
      alt = (*ct)["chat_template"].get<std::string>();
    }
    if (config_tc.contains("chat_template") && config_tc["chat_template"].is_string()) chat_template = config_tc["chat_template"].get<std::string>();
    else if (!config_tc.contains("chat_template")) chat_template = alt;
    for (const std::string& type : types_list) {
      const std::string add_key = "add_" + type + "_token";
      if (config_tc.contains(add_key) && config_tc[add_key].is_boolean()) set_add(type, config_tc[add_key].get<bool>(), false);
      const std::string key = type + "_token";
      if (!config_tc.contains(key)) continue;
      const json& entry = config_tc[key];
      std::string content;
      if (entry.is_string()) content = entry.get<std::string>();
      else if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) content = entry["content"].get<std::string>();
      else continue;
      for (const auto& t : added_tokens)
        if (t.value("content", std::string()) == content) {
          set_special(type, t.at("id"));
          break;
        }
    }
  }
  if (const auto config = read_json_if(dir / "config.json"))
    for (const std::string& type : types_list)
      if (config->contains(type + "_token_id")) set_special(type, (*config)[type + "_token_id"]);

  for (const auto& [type, id] : options.fixed) set_special(type, id);
  if (!options.chat_template) chat_template.reset();
  if (!merges.empty()) w.add_strings("tokenizer.ggml.merges", merges);
  static const std::map<std::string, std::string> id_keys = {
      {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
      {"pad", "padding_token_id"}, {"mask", "mask_token_id"}, {"eot", "eot_token_id"}, {"eom", "eom_token_id"}};
  for (const auto& [type, id] : special_ids)
    if (const auto it = id_keys.find(type); it != id_keys.end()) w.add_u32("tokenizer.ggml." + it->second, static_cast<uint32_t>(id));
  for (const auto& [type, value] : add_special)
    if (type == "bos" || type == "eos" || type == "sep") w.add_bool("tokenizer.ggml.add_" + type + "_token", value);
  if (chat_template) w.add_string("tokenizer.chat_template", *chat_template);
  if (lowercase) w.add_bool("tokenizer.ggml.normalizer.lowercase", *lowercase);
  if (strip_accents) w.add_bool("tokenizer.ggml.normalizer.strip_accents", *strip_accents);
}

// _create_vocab_sentencepiece: tokenizer.model's pieces, scores and types, padded to vocab_size,
// then added_tokens.json and tokenizer_config.json's added_tokens_decoder over them.
void write_sentencepiece_tokens(Writer& w, const fs::path& dir, int64_t config_vocab_size) {
  const std::vector<tokenizers::SentencePiece> pieces = tokenizers::read_sentencepiece_vocab((dir / "tokenizer.model").string());
  if (config_vocab_size > kMaxDimension) fail("config.json: vocab_size {} is past {}", config_vocab_size, kMaxDimension);
  const int64_t vocab_size = config_vocab_size > 0 ? config_vocab_size : static_cast<int64_t>(pieces.size());
  std::vector<std::string> tokens;
  std::vector<float> scores(static_cast<size_t>(vocab_size), -10000.0f);
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), UNUSED);
  for (int64_t i = 0; i < vocab_size; ++i) tokens.push_back(fmt::format("[PAD{}]", i));
  for (size_t id = 0; id < pieces.size() && static_cast<int64_t>(id) < vocab_size; ++id) {
    tokens[id] = pieces[id].piece;
    scores[id] = pieces[id].score;
    types[id] = pieces[id].type;
  }
  if (const auto added = read_json_if(dir / "added_tokens.json"))
    for (const auto& [token, id_json] : added->items()) {
      const int64_t id = id_json.get<int64_t>();
      if (id < 0 || id >= vocab_size) continue;
      tokens[static_cast<size_t>(id)] = token;
      scores[static_cast<size_t>(id)] = -1000.0f;
      types[static_cast<size_t>(id)] = USER_DEFINED;
    }
  if (const auto config = read_json_if(dir / "tokenizer_config.json"); config && config->contains("added_tokens_decoder"))
    for (const auto& [id_text, t] : (*config)["added_tokens_decoder"].items()) {
      const int64_t id = parse_id(id_text, "tokenizer_config.json: added_tokens_decoder");
      if (id < 0 || id >= vocab_size) continue;
      std::string token = t.at("content").get<std::string>();
      if (t.value("special", false) || looks_special(token)) {
        types[static_cast<size_t>(id)] = CONTROL;
      } else {
        for (size_t p; (p = token.find("\xe2\x96\x81")) != std::string::npos;) token.replace(p, 3, " ");
        types[static_cast<size_t>(id)] = USER_DEFINED;
      }
      scores[static_cast<size_t>(id)] = -1000.0f;
      tokens[static_cast<size_t>(id)] = token;
    }
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string("tokenizer.ggml.pre", "default");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_f32s("tokenizer.ggml.scores", scores);
  w.add_i32s("tokenizer.ggml.token_type", types);
  SpecialVocabOptions options;
  options.n_vocab = static_cast<int64_t>(tokens.size());
  write_special_vocab(w, dir, options);
}

void write_gpt2_vocab(Writer& w, const fs::path& dir, int64_t vocab_size, const std::string& pre_override, std::string* pre) {
  *pre = write_gpt2_tokens(w, dir, vocab_size, pre_override);
  SpecialVocabOptions options;
  options.load_merges = true;
  write_special_vocab(w, dir, options);
}

}  // namespace

std::string write_vocabulary(Writer& w, VocabKind kind, const fs::path& dir, int64_t vocab_size, const std::string& pre_override) {
  const bool spm = fs::exists(dir / "tokenizer.model");
  std::string pre = "default";
  switch (kind) {
    case VocabKind::Gpt2:
      write_gpt2_vocab(w, dir, vocab_size, pre_override, &pre);
      break;
    case VocabKind::SentencePieceElseGpt2:
      if (spm) write_sentencepiece_tokens(w, dir, vocab_size);
      else write_gpt2_vocab(w, dir, vocab_size, pre_override, &pre);
      break;
    case VocabKind::Llama: {
      if (const auto config = read_json_if(dir / "tokenizer_config.json"); config && config->contains("add_prefix_space") &&
                                                                           (*config)["add_prefix_space"].is_boolean())
        w.add_bool("tokenizer.ggml.add_space_prefix", (*config)["add_prefix_space"].get<bool>());
      if (spm) {
        write_sentencepiece_tokens(w, dir, vocab_size);
        break;
      }
      if (const auto tj = read_json_if(dir / "tokenizer.json")) {
        const json& m = tj->at("model");
        const bool llama3 = m.value("type", "") == "BPE" && m.value("ignore_merges", false) && !m.value("byte_fallback", true);
        if (!llama3 && m.value("type", "") == "BPE" && m.value("byte_fallback", false) && tj->contains("decoder") &&
            (*tj)["decoder"].value("type", "") == "Sequence")
          fail("{}: a SentencePiece-style BPE tokenizer.json without tokenizer.model (llama.cpp's LlamaHfVocab) is not "
               "written by lorakit yet; hint: put the model's tokenizer.model next to it", dir.string());
      }
      write_gpt2_vocab(w, dir, vocab_size, pre_override, &pre);
      break;
    }
    case VocabKind::Gemma:
    case VocabKind::Gemma2:
      if (!spm) fail("{}: no tokenizer.model; hint: Gemma's GGUF vocabulary comes from its SentencePiece model", dir.string());
      write_sentencepiece_tokens(w, dir, vocab_size);
      if (kind == VocabKind::Gemma) {  // CodeGemma's fill-in-the-middle ids, written for every Gemma
        SpecialVocabOptions codegemma;
        codegemma.types = {"prefix", "suffix", "middle", "fsep", "eot"};
        codegemma.fixed = {{"prefix", 67}, {"suffix", 69}, {"middle", 68}, {"fsep", 70}, {"eot", 107}};
        codegemma.chat_template = false;
        write_special_vocab(w, dir, codegemma);
      }
      w.add_bool("tokenizer.ggml.add_space_prefix", false);
      break;
  }
  return pre;
}

}  // namespace lorakit::exports::gguf
