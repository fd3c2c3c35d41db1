// load_tokenizer: which files a model directory has, and how each format becomes TokenizerParts,
// including the classes transformers 5 rebuilds around a file's vocabulary (LlamaTokenizer,
// BertTokenizer) instead of running its tokenizer.json as written.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "tokenizers/models.h"
#include "tokenizers/pipeline.h"

namespace lorakit::tokenizers {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class BpeModel : public Model {
 public:
  BpeModel(StringMap<int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& where)
      : bpe_(std::move(vocab), merges, std::move(options), where) {
    for (const auto& [token, id] : bpe_.vocab()) {
      if (id < 0) continue;
      // The id table is as long as the largest id: one far past the vocabulary's size would ask for gigabytes.
      if (static_cast<size_t>(id) > bpe_.vocab().size() + kMaxIdGap)
        fail("{}: token '{}' has id {}, far past the {} entries of the vocabulary (ids run from 0 to its size)", where,
             token.substr(0, 40), id, bpe_.vocab().size());
      if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(static_cast<size_t>(id) + 1);
      tokens_[static_cast<size_t>(id)] = token;
    }
  }
  void encode(std::string_view piece, bool, std::vector<int32_t>& ids) const override { bpe_.encode(piece, ids); }
  int64_t size() const override { return static_cast<int64_t>(tokens_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const auto it = bpe_.vocab().find(token);
    return it == bpe_.vocab().end() ? std::nullopt : std::optional<int32_t>(it->second);
  }
  std::string id_to_token(int32_t id) const override {
    return id >= 0 && static_cast<size_t>(id) < tokens_.size() ? tokens_[static_cast<size_t>(id)] : "";
  }

 private:
  Bpe bpe_;
  std::vector<std::string> tokens_;
};

std::vector<std::pair<std::string, std::string>> merges_from_json(const json& merges, const std::string& where) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_array() && m.size() == 2) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail("{}: merges[{}] = \"{}\": expected two tokens separated by one space", where, i, s);
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      fail("{}: merges[{}]: expected \"a b\" or [\"a\", \"b\"], found {}", where, i, m.dump());
    }
  }
  return out;
}

std::string optional_string(const json& spec, const char* key) {
  return spec.contains(key) && spec[key].is_string() ? spec[key].get<std::string>() : "";
}

// bos_token etc. in tokenizer_config.json: a string or an AddedToken object.
std::string special_token_name(const json& config, const char* key) {
  if (!config.contains(key)) return "";
  const json& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content")) return value["content"].get<std::string>();
  return "";
}

AddedToken added_token_from_json(const json& t, int32_t id) {
  AddedToken token;
  token.id = id;
  token.content = t.at("content").get<std::string>();
  token.single_word = t.value("single_word", false);
  token.lstrip = t.value("lstrip", false);
  token.rstrip = t.value("rstrip", false);
  token.normalized = t.value("normalized", !t.value("special", false));
  token.special = t.value("special", false);
  return token;
}

json read_json_if_exists(const fs::path& path) {
  return fs::exists(path) ? JsonReader::parse_file(path.string()) : json::object();
}

// tokenizer_config.json merged over special_tokens_map.json, as transformers reads them.
json read_tokenizer_config(const fs::path& dir) {
  json config = read_json_if_exists(dir / "special_tokens_map.json");
  const json tc = read_json_if_exists(dir / "tokenizer_config.json");
  for (const auto& [key, value] : tc.items()) config[key] = value;
  return config;
}

void add_config_tokens(const json& config, std::vector<AddedToken>& added) {
  if (!config.contains("added_tokens_decoder")) return;
  for (const auto& [id, t] : config["added_tokens_decoder"].items()) {
    const int32_t token_id = parse_id(id, "tokenizer_config.json: added_tokens_decoder");
    const bool known = std::any_of(added.begin(), added.end(), [&](const AddedToken& a) { return a.id == token_id; });
    if (!known) added.push_back(added_token_from_json(t, token_id));
  }
}

void finish(TokenizerParts& parts, const json& config, const fs::path& dir) {
  const auto lookup = [&](const char* key) -> std::optional<int32_t> {
    const std::string name = special_token_name(config, key);
    if (name.empty()) return std::nullopt;
    for (const AddedToken& t : parts.added_tokens)
      if (t.content == name) return t.id;
    return parts.model->token_to_id(name);
  };
  parts.special = {lookup("bos_token"), lookup("eos_token"), lookup("pad_token"), lookup("unk_token")};
  parts.clean_up_tokenization_spaces = config.value("clean_up_tokenization_spaces", false);
  if (config.contains("chat_template") && config["chat_template"].is_string()) {
    parts.chat_template = config["chat_template"].get<std::string>();
  } else if (fs::exists(dir / "chat_template.jinja")) {
    std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
    parts.chat_template.assign(std::istreambuf_iterator<char>(in), {});
  }
}

// A TemplateProcessing-equivalent for add_bos_token / add_eos_token.
json bos_eos_template(const json& config, bool default_bos, const std::vector<AddedToken>& added, const Model& model) {
  json single = json::array();
  json specials = json::object();
  const auto part = [&](const char* key) {
    const std::string name = special_token_name(config, key);
    std::optional<int32_t> id;
    for (const AddedToken& t : added)
      if (t.content == name) id = t.id;
    if (!id) id = model.token_to_id(name);
    if (name.empty() || !id) return;
    single.push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
    specials[name] = {{"id", name}, {"ids", {*id}}, {"tokens", {name}}};
  };
  if (config.value("add_bos_token", default_bos)) part("bos_token");
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (config.value("add_eos_token", false)) part("eos_token");
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
}

// Which directories transformers 5 loads as BertTokenizer (models/auto/tokenization_auto.py): a
// tokenizer_class of BertTokenizer, ElectraTokenizer or DistilBertTokenizer (aliases there, "Fast" or
// not), or, with no tokenizer_class, config.json's model_type bert, electra or distilbert. Returns
// what decided it, for messages; "" for any other directory.
std::string bert_tokenizer_reason(const fs::path& dir, const json& config) {
  std::string name = optional_string(config, "tokenizer_class");
  if (!name.empty()) {
    if (name.ends_with("Fast")) name.resize(name.size() - 4);
    return name == "BertTokenizer" || name == "ElectraTokenizer" || name == "DistilBertTokenizer" ? name : "";
  }
  if (!fs::exists(dir / "config.json")) return "";
  const std::string model_type = optional_string(JsonReader::parse_file((dir / "config.json").string()), "model_type");
  return model_type == "bert" || model_type == "electra" || model_type == "distilbert" ? "model_type " + model_type : "";
}

// BertTokenizer's special tokens and its defaults for them (models/bert/tokenization_bert.py), in
// the order transformers adds the missing ones.
constexpr std::pair<const char*, const char*> kBertSpecialTokens[] = {
    {"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"}, {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}};

// transformers 5's BertTokenizer builds its pipeline from tokenizer_config.json's kwargs, whatever
// tokenizer.json says: BertNormalizer(clean_text, handle_chinese_chars = tokenize_chinese_chars
// (true), strip_accents (null: as lowercase), lowercase = do_lower_case (true)), BertPreTokenizer,
// WordPiece with the default "##" and 100 characters a word, the WordPiece decoder. Of a
// tokenizer.json it keeps only the vocabulary and the added tokens. Fills in the special token names.
json bert_pipeline(json& config) {
  for (const auto& [key, name] : kBertSpecialTokens)
    if (special_token_name(config, key).empty()) config[key] = name;
  const auto flag = [&](const char* key, bool fallback) {
    return config.contains(key) && config[key].is_boolean() ? config[key].get<bool>() : fallback;
  };
  const bool lowercase = flag("do_lower_case", true);
  return {{"normalizer", {{"type", "BertNormalizer"}, {"clean_text", true},
                          {"handle_chinese_chars", flag("tokenize_chinese_chars", true)},
                          {"strip_accents", flag("strip_accents", lowercase)}, {"lowercase", lowercase}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}}};
}

// BertTokenizer's special tokens (bos/eos too when the config names them) become special added
// tokens unless they already are; one missing from the vocabulary gets the next free id, as HF's
// AddedVocabulary gives it. Then the template "[CLS] $A [SEP]".
void add_bert_special_tokens(TokenizerParts& parts, const json& config, const std::string& where) {
  int64_t next = parts.model->size();
  for (const AddedToken& t : parts.added_tokens) next = std::max<int64_t>(next, t.id + 1);
  const auto add = [&](const char* key) -> std::optional<int32_t> {
    const std::string name = special_token_name(config, key);
    if (name.empty()) return std::nullopt;
    for (const AddedToken& t : parts.added_tokens)
      if (t.content == name) return t.id;
    const auto id = parts.model->token_to_id(name);
    const int32_t token_id = id ? *id : static_cast<int32_t>(next++);
    parts.added_tokens.push_back({token_id, name, false, false, false, false, true});
    return token_id;
  };
  add("bos_token");
  add("eos_token");
  std::optional<int32_t> cls, sep;
  for (const auto& [key, name] : kBertSpecialTokens) {
    const auto id = add(key);
    if (std::string_view(key) == "cls_token") cls = id;
    if (std::string_view(key) == "sep_token") sep = id;
  }
  // HF falls back to ids 2 and 3 when the names have none.
  parts.post_processor = make_post_processor(
      {{"type", "BertProcessing"}, {"cls", {special_token_name(config, "cls_token"), cls.value_or(2)}},
       {"sep", {special_token_name(config, "sep_token"), sep.value_or(3)}}},
      where);
}

// transformers 5 does not run a LlamaTokenizer's tokenizer.json as written: the class rebuilds the
// pipeline around the file's BPE vocabulary and merges (models/llama/tokenization_llama.py): no
// normalizer, Metaspace with prepend_scheme "first" ("always" for legacy: true, "never" for
// add_prefix_space: false), byte fallback, and the Replace/ByteFallback/Fuse(/Strip) decoder. Llama-2
// style files such as EEVE's (Prepend + Replace normalizers, no pre-tokenizer) then split differently
// from their JSON; lorakit does what transformers does.
void rebuild_as_llama_tokenizer(json& spec, const json& config) {
  const bool prefix = !(config.contains("add_prefix_space") && config["add_prefix_space"].is_boolean() &&
                        !config["add_prefix_space"].get<bool>());
  const bool legacy = config.contains("legacy") && config["legacy"].is_boolean() && config["legacy"].get<bool>();
  spec["model"]["byte_fallback"] = true;
  spec["model"]["fuse_unk"] = true;
  spec["model"]["ignore_merges"] = false;
  spec["normalizer"] = nullptr;
  spec["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"},
                           {"prepend_scheme", prefix ? (legacy ? "always" : "first") : "never"}, {"split", false}};
  json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                               {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
  if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  spec["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
}

Tokenizer from_tokenizer_json(const fs::path& dir) {
  const std::string where = (dir / "tokenizer.json").string();
  json spec = JsonReader::parse_file(where);
  if (!spec.contains("model")) fail("{}: no \"model\" object; is this a Hugging Face tokenizer.json?", where);
  json config = read_tokenizer_config(dir);
  const std::string tokenizer_class = config.contains("tokenizer_class") && config["tokenizer_class"].is_string()
                                          ? config["tokenizer_class"].get<std::string>()
                                          : "";
  const std::string model_type = spec["model"].is_object() ? spec["model"].value("type", "") : "";
  TokenizerParts parts;
  parts.source = where;
  if ((tokenizer_class == "LlamaTokenizer" || tokenizer_class == "LlamaTokenizerFast") && model_type == "BPE") {
    rebuild_as_llama_tokenizer(spec, config);
    parts.source += " (as transformers rebuilds a LlamaTokenizer)";
  }
  const std::string bert = model_type == "WordPiece" ? bert_tokenizer_reason(dir, config) : "";
  if (!bert.empty()) {  // BertTokenizer: the file's vocabulary and added tokens, the rest from the config
    json pipeline = bert_pipeline(config);
    spec["model"] = {{"type", "WordPiece"}, {"vocab", std::move(spec["model"]["vocab"])},
                     {"unk_token", special_token_name(config, "unk_token")}};
    for (const char* stage : {"normalizer", "pre_tokenizer", "decoder"}) spec[stage] = std::move(pipeline[stage]);
    parts.source += " (as transformers rebuilds a BertTokenizer: " + bert + ")";
  }
  parts.model = model_type == "WordPiece" ? make_wordpiece_model(spec["model"], where + ": model")
                                          : make_bpe_model(spec["model"], where + ": model");
  if (spec.contains("added_tokens"))
    for (const json& t : spec["added_tokens"])
      parts.added_tokens.push_back(added_token_from_json(t, json_id(t.at("id"), where + ": added_tokens")));
  add_config_tokens(config, parts.added_tokens);
  parts.normalizer = make_normalizer(spec.value("normalizer", json()), where + ": normalizer");
  parts.pre_tokenizer = make_pre_tokenizer(spec.value("pre_tokenizer", json()), where + ": pre_tokenizer");
  if (bert.empty())
    parts.post_processor = make_post_processor(spec.value("post_processor", json()), where + ": post_processor");
  else
    add_bert_special_tokens(parts, config, where);
  parts.decoder = make_decoder(spec.value("decoder", json()), where + ": decoder");
  finish(parts, config, dir);
  return Tokenizer(std::move(parts));
}

// vocab.txt alone (KoELECTRA, bert-base-* before tokenizer.json): transformers 5 builds a
// BertTokenizer from it and tokenizer_config.json, and refuses the directory when neither
// tokenizer_class nor model_type names a BERT-style tokenizer.
Tokenizer from_wordpiece_vocab(const fs::path& dir) {
  const std::string path = (dir / "vocab.txt").string();
  json config = read_tokenizer_config(dir);
  const std::string bert = bert_tokenizer_reason(dir, config);
  if (bert.empty())
    fail("{}: lorakit reads vocab.txt as transformers' BertTokenizer does, for tokenizer_class BertTokenizer, "
         "ElectraTokenizer or DistilBertTokenizer in tokenizer_config.json or, without one, model_type bert, electra or "
         "distilbert in config.json; found tokenizer_class '{}'; hint: if this is a BERT WordPiece vocabulary, set "
         "\"tokenizer_class\": \"BertTokenizer\" in tokenizer_config.json",
         path, optional_string(config, "tokenizer_class"));
  const json pipeline = bert_pipeline(config);
  TokenizerParts parts;
  parts.source = path + " (BertTokenizer: " + bert + ")";
  parts.model = make_wordpiece_model(read_wordpiece_vocab(path), {special_token_name(config, "unk_token")}, path);
  add_config_tokens(config, parts.added_tokens);
  parts.normalizer = make_normalizer(pipeline["normalizer"], path);
  parts.pre_tokenizer = make_pre_tokenizer(pipeline["pre_tokenizer"], path);
  parts.decoder = make_decoder(pipeline["decoder"], path);
  add_bert_special_tokens(parts, config, path);
  finish(parts, config, dir);
  return Tokenizer(std::move(parts));
}

// Qwen2Tokenizer's pre-tokenizer regex (transformers models/qwen2/tokenization_qwen2.py).
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// vocab.json + merges.txt, as transformers 5 builds a tokenizer from them for the class
// tokenizer_config.json names: GPT2Tokenizer (EXAONE 3.5 and 4.0: byte-level BPE with the GPT-2
// regex) or Qwen2Tokenizer (Qwen1.5/2/2.5 and FinguAI: NFC, then its own regex split before the
// byte-level mapping); add_prefix_space from the config, added tokens from added_tokens_decoder.
Tokenizer from_gpt2_files(const fs::path& dir) {
  const std::string vocab_path = (dir / "vocab.json").string(), merges_path = (dir / "merges.txt").string();
  const json vocab_json = JsonReader::parse_file(vocab_path);
  if (!vocab_json.is_object()) fail("{}: expected an object of token -> id", vocab_path);
  StringMap<int32_t> vocab;
  vocab.reserve(vocab_json.size());
  for (const auto& [token, id] : vocab_json.items()) {
    vocab.emplace(token, json_id(id, fmt::format("{}: token \"{}\"", vocab_path, token)));
  }
  std::ifstream in(merges_path, std::ios::binary);
  if (!in) fail("{}: cannot open", merges_path);
  std::vector<std::pair<std::string, std::string>> merges;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || line.find(' ', space + 1) != std::string::npos)
      fail("{}:{}: expected two tokens separated by one space, found \"{}\"", merges_path, number, line);
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  const json config = read_tokenizer_config(dir);
  TokenizerParts parts;
  parts.source = vocab_path + " + merges.txt";
  parts.model = make_bpe_model(std::move(vocab), merges, BpeOptions{}, merges_path);
  add_config_tokens(config, parts.added_tokens);
  const bool prefix = config.contains("add_prefix_space") && config["add_prefix_space"].is_boolean() &&
                      config["add_prefix_space"].get<bool>();
  const std::string tokenizer_class = config.contains("tokenizer_class") && config["tokenizer_class"].is_string()
                                          ? config["tokenizer_class"].get<std::string>()
                                          : "";
  if (tokenizer_class.starts_with("Qwen2Tokenizer")) {
    parts.source += " (Qwen2Tokenizer)";
    parts.normalizer = make_normalizer({{"type", "NFC"}}, "Qwen2 files");
    parts.pre_tokenizer = make_pre_tokenizer(
        {{"type", "Sequence"},
         {"pretokenizers",
          {{{"type", "Split"}, {"pattern", {{"Regex", kQwen2Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
           {{"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"trim_offsets", true}, {"use_regex", false}}}}},
        "Qwen2 files");
  } else if (tokenizer_class.empty() || tokenizer_class.starts_with("GPT2Tokenizer")) {
    parts.pre_tokenizer = make_pre_tokenizer(
        {{"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"trim_offsets", true}, {"use_regex", true}}, "GPT-2 files");
  } else {
    fail("{}: tokenizer_class '{}' with vocab.json + merges.txt: lorakit builds GPT2Tokenizer and Qwen2Tokenizer "
         "from these files; hint: save the tokenizer with transformers so that the directory has a tokenizer.json",
         (dir / "tokenizer_config.json").string(), tokenizer_class);
  }
  parts.post_processor = make_post_processor(bos_eos_template(config, false, parts.added_tokens, *parts.model), "GPT-2 files");
  parts.decoder = make_decoder({{"type", "ByteLevel"}}, "GPT-2 files");
  finish(parts, config, dir);
  return Tokenizer(std::move(parts));
}

// tokenizer.model: the Llama conversion of transformers (added tokens from the config or the
// <unk>/<s>/</s> control pieces, BOS by default, the Metaspace-style decoder chain).
Tokenizer from_sentencepiece(const fs::path& dir) {
  const std::string path = (dir / "tokenizer.model").string();
  json config = read_tokenizer_config(dir);
  TokenizerParts parts;
  parts.source = path;
  parts.model = make_sentencepiece_model(path);
  add_config_tokens(config, parts.added_tokens);
  for (const char* key : {"unk_token", "bos_token", "eos_token"}) {
    const std::string name = special_token_name(config, key);
    const auto id = name.empty() ? std::nullopt : parts.model->token_to_id(name);
    const bool known = std::any_of(parts.added_tokens.begin(), parts.added_tokens.end(),
                                   [&](const AddedToken& a) { return a.content == name; });
    if (id && !known) parts.added_tokens.push_back({*id, name, false, false, false, false, true});
  }
  parts.post_processor = make_post_processor(bos_eos_template(config, true, parts.added_tokens, *parts.model), path);
  parts.decoder = make_decoder(json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
      {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})"), path);
  finish(parts, config, dir);
  return Tokenizer(std::move(parts));
}

}  // namespace

std::unique_ptr<Model> make_bpe_model(StringMap<int32_t> vocab,
                                      const std::vector<std::pair<std::string, std::string>>& merges,
                                      BpeOptions options, const std::string& where) {
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(options), where);
}

std::unique_ptr<Model> make_bpe_model(const json& spec, const std::string& where) {
  const std::string type = spec.value("type", "BPE");
  if (type != "BPE")
    fail("{}: model type '{}' is not supported yet (lorakit reads BPE and WordPiece tokenizer.json files; "
         "Unigram/WordLevel are not implemented)", where, type);
  if (spec.contains("dropout") && spec["dropout"].is_number() && spec["dropout"].get<double>() > 0)
    fail("{}: BPE dropout {} makes tokenization random; lorakit needs dropout null or 0", where,
         spec["dropout"].get<double>());
  StringMap<int32_t> vocab;
  const json& v = spec.at("vocab");
  vocab.reserve(v.size());
  for (const auto& [token, id] : v.items()) vocab.emplace(token, json_id(id, fmt::format("{}: vocab \"{}\"", where, token)));
  BpeOptions options;
  if (spec.contains("unk_token") && spec["unk_token"].is_string()) options.unk_token = spec["unk_token"].get<std::string>();
  options.continuing_subword_prefix = optional_string(spec, "continuing_subword_prefix");
  options.end_of_word_suffix = optional_string(spec, "end_of_word_suffix");
  options.fuse_unk = spec.value("fuse_unk", false);
  options.byte_fallback = spec.value("byte_fallback", false);
  options.ignore_merges = spec.value("ignore_merges", false);
  return make_bpe_model(std::move(vocab), merges_from_json(spec.at("merges"), where), std::move(options), where);
}

namespace {

// A directory without tokenizer files, for pre-tokenized data: no text can be encoded.
class NoVocabulary final : public Model {
 public:
  NoVocabulary(std::string dir, int64_t size) : dir_(std::move(dir)), size_(size) {}
  void encode(std::string_view, bool, std::vector<int32_t>&) const override {
    fail("{}: no tokenizer files, so no text can be tokenized; hint: use pre-tokenized rows (data.ids_column) "
         "or add the model's tokenizer files", dir_);
  }
  int64_t size() const override { return size_; }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::string id_to_token(int32_t) const override { return ""; }

 private:
  std::string dir_;
  int64_t size_;
};

bool has_tokenizer_files(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") || (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) ||
         fs::exists(dir / "tokenizer.model") || fs::exists(dir / "vocab.txt");
}

}  // namespace

Tokenizer load_tokenizer_or_ids_only(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (!fs::is_directory(dir) || has_tokenizer_files(dir) || !fs::exists(dir / "config.json")) return load_tokenizer(model_dir);
  // The special ids config.json gives (pad, else eos, is what batches are padded with).
  const json config = JsonReader::parse_file((dir / "config.json").string());
  const auto id = [&](const char* key) -> std::optional<int32_t> {
    if (!config.contains(key)) return std::nullopt;
    const json& v = config[key];
    if (v.is_number_integer()) return v.get<int32_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int32_t>();
    return std::nullopt;
  };
  TokenizerParts parts;
  parts.source = (dir / "config.json").string() + " (no tokenizer files: token ids only)";
  parts.model = std::make_unique<NoVocabulary>(model_dir, config.value("vocab_size", int64_t{0}));
  parts.special = {id("bos_token_id"), id("eos_token_id"), id("pad_token_id"), std::nullopt};
  return Tokenizer(std::move(parts));
}

Tokenizer load_tokenizer(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (!fs::is_directory(dir)) fail("{}: not a directory; hint: pass a Hugging Face model directory", model_dir);
  if (fs::exists(dir / "tokenizer.json"))
    return with_json_errors((dir / "tokenizer.json").string(), [&] { return from_tokenizer_json(dir); });
  if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))
    return with_json_errors((dir / "vocab.json").string(), [&] { return from_gpt2_files(dir); });
  if (fs::exists(dir / "tokenizer.model"))
    return with_json_errors((dir / "tokenizer_config.json").string(), [&] { return from_sentencepiece(dir); });
  if (fs::exists(dir / "vocab.txt"))
    return with_json_errors((dir / "tokenizer_config.json").string(), [&] { return from_wordpiece_vocab(dir); });
  std::string files;
  for (const auto& entry : fs::directory_iterator(dir)) files += (files.empty() ? "" : ", ") + entry.path().filename().string();
  fail("{}: no tokenizer files (expected tokenizer.json, vocab.json + merges.txt, tokenizer.model, or vocab.txt); "
       "found: {}", model_dir, files.empty() ? "nothing" : files);
}

}  // namespace lorakit::tokenizers
