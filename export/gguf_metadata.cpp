#include "export/gguf_metadata.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/json_reader.h"

namespace lorakit::exports::gguf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<json> read_json_if(const fs::path& file) {
  if (!fs::exists(file)) return std::nullopt;
  return JsonReader::parse_file(file.string());
}

const json* find_hparam(const json& hp, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (hp.contains(k) && !hp[k].is_null()) return &hp[k];
  return nullptr;
}

// gguf-py's size_label: the parameter count in K/M/B/T with at least two significant digits.
}  // namespace

std::string size_label(int64_t parameters) {
  const double n = static_cast<double>(parameters);
  double scaled = n * 1e-3;
  const char* suffix = "K";
  if (n > 1e12) {
    scaled = n * 1e-12;
    suffix = "T";
  } else if (n > 1e9) {
    scaled = n * 1e-9;
    suffix = "B";
  } else if (n > 1e6) {
    scaled = n * 1e-6;
    suffix = "M";
  }
  std::string digits = fmt::format("{}", static_cast<int64_t>(std::nearbyint(scaled)));
  digits.erase(0, digits.find_first_not_of('0'));
  const int fix = std::max(2 - static_cast<int>(digits.size()), 0);
  return fmt::format("{:.{}f}{}", scaled, fix, suffix);
}

namespace {

void write_sampling(Writer& w, const fs::path& dir) {
  const fs::path file = dir / "generation_config.json";
  if (!fs::exists(file)) return;
  const json g = JsonReader::parse_file(file.string());
  auto f32 = [&](const char* key, std::initializer_list<const char*> names) {
    if (const json* v = find_hparam(g, names)) w.add_f32(std::string("general.sampling.") + key, v->get<float>());
  };
  auto i32 = [&](const char* key, const char* name) {
    if (g.contains(name) && !g[name].is_null()) w.add_i32(std::string("general.sampling.") + key, g[name].get<int32_t>());
  };
  if (g.contains("sequence") && g["sequence"].is_string()) w.add_string("general.sampling.sequence", g["sequence"].get<std::string>());
  i32("top_k", "top_k");
  f32("top_p", {"top_p"});
  f32("min_p", {"min_p"});
  f32("xtc_probability", {"xtc_probability"});
  f32("xtc_threshold", {"xtc_threshold"});
  f32("temp", {"temperature"});
  i32("penalty_last_n", "penalty_last_n");
  f32("penalty_repeat", {"penalty_repeat", "repetition_penalty"});
  i32("mirostat", "mirostat");
  f32("mirostat_tau", {"mirostat_tau"});
  f32("mirostat_eta", {"mirostat_eta"});
}

// gguf-py's Metadata heuristics (get_model_id_components, id_to_title) on a model id such as
// "org/Name-7B-Instruct-v2" or a directory name: name, organization, basename, finetune, version
// and size label, the parts the converter writes to general.*.
struct ModelId {
  std::optional<std::string> name, organization, basename, finetune, version, size_label;
};

bool is_lower(const std::string& w) {  // str.islower(): some cased character, none upper-case
  bool cased = false;
  for (unsigned char c : w) {
    if (std::isupper(c)) return false;
    if (std::islower(c)) cased = true;
  }
  return cased;
}

std::string title(const std::string& w) {  // str.title() for ASCII letters
  std::string out;
  bool previous_cased = false;
  for (unsigned char c : w) {
    const bool cased = std::isalpha(c) != 0;
    out += static_cast<char>(cased ? (previous_cased ? std::tolower(c) : std::toupper(c)) : c);
    previous_cased = cased;
  }
  return out;
}

std::string id_to_title(const std::string& id) {
  std::string s = id;
  std::replace(s.begin(), s.end(), '-', ' ');
  std::istringstream words(s);
  std::vector<std::string> out;
  static const std::regex keep(R"(^(v\d+(?:\.\d+)*|\d.*)$)");
  for (std::string w; words >> w;) out.push_back(is_lower(w) && !std::regex_match(w, keep) ? title(w) : w);
  return fmt::format("{}", fmt::join(out, " "));
}

ModelId model_id_components(const std::string& model_id, int64_t total_params) {
  ModelId id;
  if (model_id.find(' ') != std::string::npos) {
    id.name = model_id;
    return id;
  }
  std::string org, full = model_id;
  if (const auto slash = model_id.find('/'); slash != std::string::npos) {
    org = model_id.substr(0, slash);
    full = model_id.substr(slash + 1);
  }
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    const size_t e = full.find('-', b);
    const std::string part = full.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!part.empty()) parts.push_back(part);
    if (e == std::string::npos) break;
    b = e + 1;
  }
  using std::regex_constants::icase;
  static const std::regex version_re(R"((v|iter)?\d+([.]\d+)*)", icase), type_re(R"(i?q\d(_\w)*|b?fp?(16|32))", icase),
      size_re(R"((([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl))", icase),
      finetune_re(R"(chat|instruct|vision|lora)", icase);
  std::vector<std::set<std::string>> types(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    if (std::regex_match(part, version_re)) {
      types[i].insert("version");
    } else if (std::regex_match(part, type_re)) {
      types[i].insert("type");
      for (char& c : parts[i]) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else if (i > 0 && std::regex_match(part, size_re)) {
      std::replace(part.begin(), part.end(), '_', '.');
      if (std::isdigit(static_cast<unsigned char>(part.back()))) part = part.substr(0, part.size() - 2) + "." + part.back() + part[part.size() - 2];
      if (part.size() > 1 && std::isdigit(static_cast<unsigned char>(part[part.size() - 2])) && std::string("kmbt").find(part.back()) != std::string::npos)
        part.back() = static_cast<char>(std::toupper(static_cast<unsigned char>(part.back())));
      if (total_params != 0) {
        const std::string number = part.substr(0, part.size() - 1);
        char* end = nullptr;
        const double value = std::strtod(number.c_str(), &end);
        if (!number.empty() && end == number.c_str() + number.size()) {
          const auto power = static_cast<double>(std::string(" KMBT").find(part.back()));  // npos -> Python's -1
          const double label = value * std::pow(1000.0, std::string(" KMBT").find(part.back()) == std::string::npos ? -1.0 : power);
          const int64_t total = std::llabs(total_params);
          if ((total_params < 0 && label < static_cast<double>(total / 8)) ||
              (total_params > 0 && std::fabs(label - static_cast<double>(total_params)) > static_cast<double>(7 * total_params / 8))) {
            types[i].insert("finetune");
            part.back() = static_cast<char>(std::tolower(static_cast<unsigned char>(part.back())));
          }
        }
      }
      if (types[i].empty()) types[i].insert("size_label");
      parts[i] = part;
    } else if (i > 0 && std::regex_match(part, finetune_re)) {
      std::string lower = part;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      types[i].insert(total_params < 0 && lower == "lora" ? "type" : "finetune");
    }
  }
  bool numbered_size = false;
  for (size_t i = 0; i < parts.size(); ++i)
    if (types[i].count("size_label"))
      for (char c : parts[i]) numbered_size |= std::isdigit(static_cast<unsigned char>(c)) != 0;
  if (numbered_size)
    for (size_t i = 0; i < parts.size(); ++i)
      if (types[i].count("size_label") && std::all_of(parts[i].begin(), parts[i].end(), [](unsigned char c) { return std::isalpha(c); }))
        types[i].erase("size_label");
  bool at_start = true;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (at_start && ((types[i].empty() && std::isalpha(static_cast<unsigned char>(parts[i][0]))) || types[i].count("version"))) {
      types[i].insert("basename");
    } else {
      at_start = false;
      if (types[i].empty()) types[i].insert("finetune");
    }
  }
  for (size_t i = parts.size(); i-- > 0;) {
    if (types[i].count("basename") && types[i].size() > 1) types[i].erase("basename");
    else break;
  }
  auto joined = [&](const char* type, const char* exclude = nullptr) -> std::optional<std::string> {
    std::vector<std::string> chosen;
    for (size_t i = 0; i < parts.size(); ++i)
      if (types[i].count(type) && !(exclude && types[i].count(exclude)) &&
          !(std::string(type) == "size_label" && std::find(chosen.begin(), chosen.end(), parts[i]) != chosen.end()))
        chosen.push_back(parts[i]);
    if (chosen.empty()) return std::nullopt;
    return fmt::format("{}", fmt::join(chosen, "-"));
  };
  id.name = full;
  if (!org.empty() && org[0] != '.') id.organization = org;
  id.basename = joined("basename");
  id.size_label = joined("size_label");
  id.finetune = joined("finetune");
  id.version = joined("version", "basename");
  if (!id.size_label && !id.finetune && !id.version) id.basename.reset();
  return id;
}


// README.md's YAML front matter as gguf-py's load_model_card reads it ("---" lines around it).
json model_card(const fs::path& dir) {
  const fs::path file = dir / "README.md";
  if (!fs::exists(file)) return json::object();
  std::ifstream in(file, std::ios::binary);
  std::string line;
  if (!std::getline(in, line) || line != "---") return json::object();
  std::string yaml;
  while (std::getline(in, line) && line != "---") yaml += line + "\n";
  for (size_t p; (p = yaml.find("- no\n")) != std::string::npos;) yaml.replace(p, 5, "- \"no\"\n");  // the Norway fix
  std::replace(yaml.begin(), yaml.end(), '\t', ' ');
  std::function<json(const YAML::Node&)> to_json = [&](const YAML::Node& n) -> json {
    if (n.IsMap()) {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = to_json(kv.second);
      return o;
    }
    if (n.IsSequence()) {
      json a = json::array();
      for (const auto& x : n) a.push_back(to_json(x));
      return a;
    }
    if (n.IsScalar()) return n.as<std::string>();
    return nullptr;
  };
  try {
    const json card = to_json(YAML::Load(yaml));
    return card.is_object() ? card : json::object();
  } catch (const YAML::Exception& e) {
    fail("{}: the model card's YAML front matter does not parse ({}); hint: fix or remove README.md's header", file.string(), e.what());
  }
}

struct Metadata {
  std::map<std::string, std::string> strings;  // by gguf-py's attribute name
  std::optional<std::vector<std::map<std::string, std::string>>> base_models, datasets;
  std::optional<std::vector<std::string>> tags, languages, license;

  bool has(const std::string& key) const { return strings.count(key) > 0; }
  void set_if_unset(const std::string& key, const std::optional<std::string>& value) {
    if (value && !has(key)) strings[key] = *value;
  }
};

std::vector<std::string> string_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) out.push_back(v.get<std::string>());
  if (v.is_array())
    for (const auto& x : v)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

// A base model or dataset entry from a hub id or a URL.
std::map<std::string, std::string> source_entry(const std::string& id, int64_t total_params) {
  std::map<std::string, std::string> entry;
  auto fill = [&](const std::string& hub_id, bool repo_url) {
    const ModelId c = model_id_components(hub_id, total_params);
    if (c.name) entry["name"] = id_to_title(*c.name);
    if (c.organization) entry["organization"] = id_to_title(*c.organization);
    if (c.version) entry["version"] = *c.version;
    if (repo_url && c.organization && c.name) entry["repo_url"] = fmt::format("https://huggingface.co/{}/{}", *c.organization, *c.name);
  };
  if (id.starts_with("http://") || id.starts_with("https://") || id.starts_with("ssh://")) {
    entry["repo_url"] = id;
    static const std::regex hub(R"(^https?://huggingface.co/([^/]+/[^/]+)$)");
    std::smatch m;
    if (id.find("huggingface.co") != std::string::npos && std::regex_search(id, m, hub)) fill(m[1].str(), false);
  } else {
    fill(id, true);
  }
  return entry;
}

void apply_model_card(Metadata& meta, const json& card, int64_t total_params) {
  auto use = [&](const std::string& key, const char* card_key) {
    if (card.contains(card_key) && !meta.has(key) && !card[card_key].is_null())
      meta.strings[key] = card[card_key].is_string() ? card[card_key].get<std::string>() : card[card_key].dump();
  };
  for (const char* prefix : {"", "model_"})
    for (const auto& [key, card_key] : std::vector<std::pair<std::string, std::string>>{
             {"name", "name"}, {"author", "author"}, {"version", "version"}, {"organization", "organization"},
             {"description", "description"}, {"finetune", "finetune"}, {"basename", "basename"},
             {"size_label", "size_label"}, {"source_url", "url"}, {"source_doi", "doi"}, {"source_uuid", "uuid"},
             {"source_repo_url", "repo_url"}})
      use(key, (std::string(prefix) + card_key).c_str());
  use("name", "model_name");
  use("author", "model_creator");
  use("basename", "model_type");
  auto sources = [&](std::initializer_list<const char*> keys, std::optional<std::vector<std::map<std::string, std::string>>>& out) {
    for (const char* k : keys)
      if (card.contains(k)) {
        if (!out) out.emplace();
        for (const std::string& id : string_list(card[k])) out->push_back(source_entry(id, total_params));
        return;
      }
  };
  sources({"base_model", "base_models", "base_model_sources"}, meta.base_models);
  sources({"datasets", "dataset", "dataset_sources"}, meta.datasets);
  if (card.contains("license")) meta.license = string_list(card["license"]);
  use("license_name", "license_name");
  use("license_link", "license_link");
  auto append = [&](std::optional<std::vector<std::string>>& out, const char* key) {
    if (!card.contains(key) || card[key].is_null()) return;
    if (!out) out.emplace();
    for (const std::string& v : string_list(card[key])) out->push_back(v);
  };
  append(meta.tags, "tags");
  append(meta.tags, "pipeline_tag");
  append(meta.languages, "languages");
  append(meta.languages, "language");
}

void apply_model_id(Metadata& meta, const std::string& model_id, int64_t total_params) {
  const ModelId id = model_id_components(model_id, total_params);
  if (id.name) meta.set_if_unset("name", id_to_title(*id.name));
  if (id.organization) meta.set_if_unset("organization", id_to_title(*id.organization));
  meta.set_if_unset("basename", id.basename);
  meta.set_if_unset("finetune", id.finetune);
  meta.set_if_unset("version", id.version);
  meta.set_if_unset("size_label", id.size_label);
}

}  // namespace

void write_general(Writer& w, const fs::path& dir, const std::string& name, int64_t total_params) {
  Metadata meta;
  apply_model_card(meta, model_card(dir), total_params);
  if (const auto config = read_json_if(dir / "config.json"); config && config->contains("_name_or_path") && (*config)["_name_or_path"].is_string()) {
    const std::string id = (*config)["_name_or_path"].get<std::string>();
    if (std::count(id.begin(), id.end(), '/') <= 1) apply_model_id(meta, id, total_params);
  }
  apply_model_id(meta, fs::absolute(dir).lexically_normal().filename().string(), total_params);
  if (!name.empty()) meta.strings["name"] = name;
  if (!meta.has("size_label") && total_params > 0) meta.strings["size_label"] = size_label(total_params);

  write_sampling(w, dir);
  auto put = [&](const char* attribute, const std::string& key) {
    if (const auto it = meta.strings.find(attribute); it != meta.strings.end()) w.add_string(key, it->second);
  };
  put("name", "general.name");
  put("author", "general.author");
  put("version", "general.version");
  put("organization", "general.organization");
  put("finetune", "general.finetune");
  put("basename", "general.basename");
  put("description", "general.description");
  put("quantized_by", "general.quantized_by");
  put("size_label", "general.size_label");
  if (meta.license) w.add_string("general.license", fmt::format("{}", fmt::join(*meta.license, ",")));
  put("license_name", "general.license.name");
  put("license_link", "general.license.link");
  put("url", "general.url");
  put("doi", "general.doi");
  put("uuid", "general.uuid");
  put("repo_url", "general.repo_url");
  put("source_url", "general.source.url");
  put("source_doi", "general.source.doi");
  put("source_uuid", "general.source.uuid");
  put("source_repo_url", "general.source.repo_url");
  auto entries = [&](const char* kind, const std::optional<std::vector<std::map<std::string, std::string>>>& list) {
    if (!list) return;
    w.add_u32(fmt::format("general.{}.count", kind), static_cast<uint32_t>(list->size()));
    for (size_t i = 0; i < list->size(); ++i)
      for (const char* field : {"name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url"})
        if (const auto it = (*list)[i].find(field); it != (*list)[i].end())
          w.add_string(fmt::format("general.{}.{}.{}", kind, i, field), it->second);
  };
  entries("base_model", meta.base_models);
  entries("dataset", meta.datasets);
  if (meta.tags) w.add_strings("general.tags", *meta.tags);
  if (meta.languages) w.add_strings("general.languages", *meta.languages);
}

}  // namespace lorakit::exports::gguf
