#include "export/gguf.h"

#include <openssl/sha.h>

#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <algorithm>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/tensor.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"
#include "core/json_reader.h"
#include "device/dtype.h"
#include "export/gguf_file.h"
#include "tokenizers/tokenizer.h"

namespace lorakit::exports {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using gguf::TensorType;

// ---- Architectures -------------------------------------------------------------------------------

// One HF model_type as the converter handles it: llama.cpp's architecture name and the defaults
// transformers 5.23's config class fills in for the keys the converter reads (AutoConfig.to_dict()).
struct Arch {
  std::string model_type, gguf_arch;
  json defaults;
  bool permute_qk = false;   // LlamaModel.permute on q_proj/k_proj rows (llama, mistral)
  bool vocab_size = false;   // <arch>.vocab_size
  bool rope_dims = false;    // <arch>.rope.dimension_count
  bool sliding = false;      // <arch>.attention.sliding_window (+ _pattern)
  bool rope_freqs = false;   // llama3 rope scaling as a rope_freqs tensor
  double llama3_factor = 8;  // the converter's default factor for that
  // HF layer-module name -> llama.cpp's, per architecture where it differs from llama's.
  std::map<std::string, std::string> layer_names;
};

const std::map<std::string, std::string>& llama_layer_names() {
  static const std::map<std::string, std::string> names = {
      {"input_layernorm", "attn_norm"},   {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},     {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},     {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
      {"mlp.gate_proj", "ffn_gate"},      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  return names;
}

const std::vector<Arch>& architectures() {
  static const std::vector<Arch> table = [] {
    const json rope_default = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
    std::vector<Arch> t;
    Arch llama{"llama", "llama",
               {{"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-6}, {"rope_parameters", rope_default}, {"vocab_size", 32000}},
               true, true, true, false, true, 8.0, llama_layer_names()};
    t.push_back(llama);
    Arch mistral = llama;
    mistral.model_type = "mistral";
    mistral.defaults["max_position_embeddings"] = 131072;
    t.push_back(mistral);
    Arch qwen2{"qwen2", "qwen2",
               {{"max_position_embeddings", 32768}, {"rms_norm_eps", 1e-6}, {"rope_parameters", rope_default}, {"vocab_size", 151936}},
               false, false, false, false, false, 8.0, llama_layer_names()};
    t.push_back(qwen2);
    Arch qwen3 = qwen2;
    qwen3.model_type = qwen3.gguf_arch = "qwen3";
    qwen3.defaults["head_dim"] = 128;
    t.push_back(qwen3);
    Arch exaone4{"exaone4", "exaone4",
                 {{"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-5}, {"rope_parameters", rope_default}, {"vocab_size", 102400}},
                 false, true, false, true, true, 16.0, llama_layer_names()};
    exaone4.layer_names.erase("input_layernorm");
    exaone4.layer_names["post_attention_layernorm"] = "post_attention_norm";
    exaone4.layer_names["post_feedforward_layernorm"] = "post_ffw_norm";
    t.push_back(exaone4);
    return t;
  }();
  return table;
}

const Arch& find_arch(const std::string& model_type, const fs::path& config_path) {
  std::vector<std::string> known;
  for (const Arch& a : architectures()) {
    if (a.model_type == model_type) return a;
    known.push_back(a.model_type);
  }
  static const std::map<std::string, std::string> why = {
      {"rwkv", "llama.cpp's converter handles RWKV 6 and 7, not RWKV-4 (the rwkv model_type)"},
      {"gemma", "lorakit does not yet write SentencePiece vocabularies (tokenizer.ggml.model llama)"},
      {"gemma2", "lorakit does not yet write SentencePiece vocabularies (tokenizer.ggml.model llama)"},
      {"gpt2", "not yet written by lorakit"},
      {"gpt_neox", "not yet written by lorakit"},
      {"exaone", "not yet written by lorakit"}};
  const auto it = why.find(model_type);
  fail("{}: model_type '{}' cannot be exported to GGUF: {}; hint: the GGUF export handles {}", config_path.string(),
       model_type, it != why.end() ? it->second : "llama.cpp's converter has no such architecture", fmt::join(known, ", "));
}

// llama.cpp's tensor name for an HF tensor, "" for one the converter drops.
std::string gguf_tensor_name(const Arch& arch, const std::string& hf) {
  static const std::regex layer(R"(^model\.layers\.(\d+)\.(.+)\.(weight|bias)$)");
  std::smatch m;
  if (std::regex_match(hf, m, layer)) {
    const auto it = arch.layer_names.find(m[2].str());
    if (it == arch.layer_names.end()) {
      if (m[2].str().ends_with("rotary_emb")) return "";
      fail("GGUF: tensor {} has no llama.cpp name for {}; hint: a checkpoint with extra modules cannot be exported",
           hf, arch.gguf_arch);
    }
    return fmt::format("blk.{}.{}.{}", m[1].str(), it->second, m[3].str());
  }
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  if (hf.ends_with(".rotary_emb.inv_freq")) return "";
  fail("GGUF: tensor {} has no llama.cpp name for {}", hf, arch.gguf_arch);
}

// ---- Hyperparameters: TextModel.set_gguf_parameters and the architectures' additions ------------

// config.json over the class defaults, as the converter's hparams (AutoConfig(...).to_dict()).
json hyperparameters(const Arch& arch, const json& config) {
  json hp = arch.defaults;
  for (const auto& [key, value] : config.items()) hp[key] = value;
  // transformers 5 keeps the rope settings in rope_parameters (rope_scaling + rope_theta merged).
  if (!config.contains("rope_parameters")) {
    json rope = arch.defaults.value("rope_parameters", json::object());
    if (config.contains("rope_scaling") && config["rope_scaling"].is_object()) {
      for (const auto& [k, v] : config["rope_scaling"].items()) rope[k == "type" ? "rope_type" : k] = v;
    }
    if (config.contains("rope_theta")) rope["rope_theta"] = config["rope_theta"];
    hp["rope_parameters"] = rope;
  }
  hp.erase("rope_scaling");
  hp.erase("rope_theta");
  const int64_t heads = hp.at("num_attention_heads").get<int64_t>();
  if (!hp.contains("num_key_value_heads") || hp["num_key_value_heads"].is_null()) hp["num_key_value_heads"] = heads;
  if (arch.model_type == "llama" || arch.model_type == "mistral") {
    if (!hp.contains("head_dim") || hp["head_dim"].is_null()) hp["head_dim"] = hp.at("hidden_size").get<int64_t>() / heads;
  }
  return hp;
}

const json* find_hparam(const json& hp, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (hp.contains(k) && !hp[k].is_null()) return &hp[k];
  return nullptr;
}

uint32_t file_type_code(const std::string& type) {
  if (type == "f32") return 0;
  if (type == "f16") return 1;
  if (type == "q8_0") return 7;
  return 32;  // bf16
}

void write_hyperparameters(gguf::Writer& w, const Arch& arch, const json& hp, const std::string& type) {
  const std::string a = arch.gguf_arch;
  w.add_u32(a + ".block_count", hp.at("num_hidden_layers").get<uint32_t>());
  if (const json* v = find_hparam(hp, {"max_position_embeddings", "n_ctx", "n_positions", "max_length"})) w.add_u32(a + ".context_length", v->get<uint32_t>());
  if (const json* v = find_hparam(hp, {"hidden_size", "n_embd", "dim"})) w.add_u32(a + ".embedding_length", v->get<uint32_t>());
  if (const json* v = find_hparam(hp, {"intermediate_size", "n_inner", "hidden_dim"})) w.add_u32(a + ".feed_forward_length", v->get<uint32_t>());
  if (const json* v = find_hparam(hp, {"num_attention_heads", "n_head", "n_heads"})) w.add_u32(a + ".attention.head_count", v->get<uint32_t>());
  if (const json* v = find_hparam(hp, {"num_key_value_heads", "n_kv_heads"})) w.add_u32(a + ".attention.head_count_kv", v->get<uint32_t>());
  const json& rope = hp["rope_parameters"];
  const std::string rope_type = rope.value("rope_type", std::string());
  if (rope_type == "linear" && rope.contains("factor")) {
    w.add_string(a + ".rope.scaling.type", "linear");
    w.add_f32(a + ".rope.scaling.factor", rope["factor"].get<float>());
  } else if (rope_type == "yarn" && rope.contains("factor")) {
    w.add_string(a + ".rope.scaling.type", "yarn");
    w.add_f32(a + ".rope.scaling.factor", rope["factor"].get<float>());
    w.add_u32(a + ".rope.scaling.original_context_length", rope.at("original_max_position_embeddings").get<uint32_t>());
    if (rope.contains("extrapolation_factor")) w.add_f32(a + ".rope.scaling.yarn_ext_factor", rope["extrapolation_factor"].get<float>());
    if (const json* f = find_hparam(rope, {"attention_factor", "attn_factor"})) w.add_f32(a + ".rope.scaling.yarn_attn_factor", f->get<float>());
    if (rope.contains("beta_fast")) w.add_f32(a + ".rope.scaling.yarn_beta_fast", rope["beta_fast"].get<float>());
    if (rope.contains("beta_slow")) w.add_f32(a + ".rope.scaling.yarn_beta_slow", rope["beta_slow"].get<float>());
  } else if (rope_type == "longrope" || rope_type == "su") {
    w.add_string(a + ".rope.scaling.type", "longrope");
  }
  if (rope.contains("rope_theta")) w.add_f32(a + ".rope.freq_base", rope["rope_theta"].get<float>());
  if (const json* v = find_hparam(hp, {"rms_norm_eps", "norm_eps"})) w.add_f32(a + ".attention.layer_norm_rms_epsilon", v->get<float>());
  if (const json* v = find_hparam(hp, {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"})) w.add_f32(a + ".attention.layer_norm_epsilon", v->get<float>());
  if (hp.contains("head_dim") && !hp["head_dim"].is_null()) {
    w.add_u32(a + ".attention.key_length", hp["head_dim"].get<uint32_t>());
    w.add_u32(a + ".attention.value_length", hp["head_dim"].get<uint32_t>());
  }
  w.add_u32("general.file_type", file_type_code(type));
  if (arch.vocab_size) w.add_u32(a + ".vocab_size", hp.at("vocab_size").get<uint32_t>());
  if (arch.rope_dims) {
    const int64_t dim = hp.contains("head_dim") && !hp["head_dim"].is_null()
                            ? hp["head_dim"].get<int64_t>()
                            : hp.at("hidden_size").get<int64_t>() / hp.at("num_attention_heads").get<int64_t>();
    w.add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(dim));
  }
  if (arch.sliding && hp.contains("sliding_window") && !hp["sliding_window"].is_null()) {
    w.add_u32(a + ".attention.sliding_window", hp["sliding_window"].get<uint32_t>());
    const int64_t layers = hp.at("num_hidden_layers").get<int64_t>();
    std::vector<bool> pattern;
    if (hp.contains("layer_types") && hp["layer_types"].is_array()) {
      for (const auto& t : hp["layer_types"]) pattern.push_back(t == "sliding_attention");
      w.add_bools(a + ".attention.sliding_window_pattern", pattern);
    } else if (hp.contains("sliding_window_pattern")) {
      const json& p = hp["sliding_window_pattern"];
      for (int64_t i = 0; i < layers; ++i) {
        if (p.is_string()) pattern.push_back(p.get<std::string>()[i % p.get<std::string>().size()] == 'L');
        if (p.is_number_integer()) pattern.push_back((i + 1) % p.get<int64_t>() != 0);
      }
      if (static_cast<int64_t>(pattern.size()) == layers) w.add_bools(a + ".attention.sliding_window_pattern", pattern);
    }
  }
}

// LlamaModel.generate_extra_tensors for llama3 rope scaling, in float32 as torch computes it.
std::optional<at::Tensor> llama3_rope_freqs(const Arch& arch, const json& hp) {
  const json& rope = hp["rope_parameters"];
  if (!arch.rope_freqs || rope.value("rope_type", std::string()) != "llama3") return std::nullopt;
  const double base = rope.value("rope_theta", 10000.0);
  const int64_t dim = hp.contains("head_dim") && !hp["head_dim"].is_null()
                          ? hp["head_dim"].get<int64_t>()
                          : hp.at("hidden_size").get<int64_t>() / hp.at("num_attention_heads").get<int64_t>();
  const at::Tensor freqs = 1.0 / at::pow(base, at::arange(0, dim, 2, at::kFloat) / dim);
  const double factor = rope.value("factor", arch.llama3_factor);
  const double low = rope.value("low_freq_factor", 1.0), high = rope.value("high_freq_factor", 4.0);
  const double old_context = rope.value("original_max_position_embeddings", 8192.0);
  const double low_wavelen = old_context / low, high_wavelen = old_context / high;
  std::vector<float> factors;
  for (int64_t i = 0; i < freqs.numel(); ++i) {
    const at::Tensor wavelen = 2 * M_PI / freqs[i];  // a float32 0-d tensor, as in Python
    const float wl = wavelen.item<float>();
    if (wl < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wl > low_wavelen) {
      factors.push_back(static_cast<float>(factor));
    } else {
      const at::Tensor smooth = (old_context / wavelen - low) / (high - low);
      factors.push_back((1 / ((1 - smooth) / factor + smooth)).item<float>());
    }
  }
  return at::tensor(factors, at::kFloat);
}

// LlamaModel.permute: rows regrouped per head from HF's rotate-half order to llama.cpp's interleave.
at::Tensor permute_rows(const at::Tensor& w, int64_t heads) {
  std::vector<int64_t> shape = {heads, 2, w.size(0) / heads / 2};
  for (int64_t d = 1; d < w.dim(); ++d) shape.push_back(w.size(d));
  return w.reshape(shape).swapaxes(1, 2).reshape(w.sizes());
}

std::optional<int64_t> permute_heads(const Arch& arch, const json& hp, const std::string& hf) {
  if (!arch.permute_qk) return std::nullopt;
  const int64_t heads = hp.at("num_attention_heads").get<int64_t>();
  if (hf.ends_with("q_proj.weight") || hf.ends_with("q_proj.bias")) return heads;
  if (hf.ends_with("k_proj.weight") || hf.ends_with("k_proj.bias")) return hp.at("num_key_value_heads").get<int64_t>();
  return std::nullopt;
}

// prepare_tensors' type choice: 1-D tensors, norms and anything not a weight stay F32; q8_0 falls
// back to F16 when the rows are not whole blocks of 32.
TensorType tensor_type(const std::string& name, const std::vector<int64_t>& shape, const std::string& type) {
  const bool weight = name.ends_with(".weight") || name.ends_with(".lora_a") || name.ends_with(".lora_b");
  if (shape.size() <= 1 || name.ends_with("_norm.weight") || !weight) return TensorType::F32;
  if (type == "f32") return TensorType::F32;
  if (type == "f16") return TensorType::F16;
  if (type == "bf16") return TensorType::BF16;
  return shape.back() % 32 == 0 ? TensorType::Q8_0 : TensorType::F16;
}

// ---- General metadata ------------------------------------------------------------------------------

// gguf-py's size_label: the parameter count in K/M/B/T with at least two significant digits.
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

void write_sampling(gguf::Writer& w, const fs::path& dir) {
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

// ---- Tokenizer: _set_vocab_gpt2 (get_vocab_base) and gguf-py's SpecialVocab ------------------------

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

void write_gpt2_vocab(gguf::Writer& w, const fs::path& dir, const json& hp, const std::string& pre_override, std::string* pre_out) {
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
        added[std::stoll(id)] = {t.at("content").get<std::string>(), t.value("special", false), t.value("normalized", false)};
  }
  for (const auto& [id, t] : added) by_id[id] = t.content;
  const int64_t vocab_size = hp.contains("vocab_size") ? hp["vocab_size"].get<int64_t>() : static_cast<int64_t>(by_id.size());
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
  *pre_out = tokenizer_pre(tokenizer, dir, pre_override);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", *pre_out);
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);

  // SpecialVocab(dir, load_merges=True): merges, special ids, add_*_token, chat template, normalizer.
  std::vector<std::string> merges;
  std::vector<std::pair<std::string, int64_t>> special_ids;  // in the order SpecialVocab sets them
  std::vector<std::pair<std::string, bool>> add_special;
  auto set_special = [&](const std::string& type, const json& id) {
    if (!id.is_number_integer()) return;
    const int64_t v = id.get<int64_t>();
    if (v < 0) fail("{}: invalid {} token id {}", dir.string(), type, v);
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
  std::vector<std::string> types_list = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  std::optional<bool> lowercase, strip_accents;
  json config_tc = tokenizer_config.value_or(json());
  json added_tokens = json::array();
  if (tokenizer_json) {
    const json& m = tokenizer_json->at("model");
    if (m.contains("merges") && m["merges"].is_array() && !m["merges"].empty()) {
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
    // The post-processor's BOS/EOS (ByteLevel: not added; TemplateProcessing: what the template adds).
    const json tc = config_tc.is_object() ? config_tc : json::object();
    auto token_of = [&](const char* key) -> std::string {
      if (!tc.contains(key)) return "";
      const json& v = tc[key];
      return v.is_string() ? v.get<std::string>() : "";
    };
    std::string special_bos = token_of("bos_token"), special_eos = token_of("eos_token"), special_cls = token_of("cls_token");
    if (special_bos.empty() && !special_cls.empty() && config_tc.is_object()) config_tc["bos_token"] = special_bos = special_cls;
    const json pp = tokenizer_json->value("post_processor", json());
    if (pp.is_object()) {
      const json processors = pp.contains("processors") ? pp["processors"] : json::array({pp});
      for (const auto& p : processors) {
        const std::string t = p.value("type", std::string());
        if (t == "ByteLevel") {
          set_add("bos", false, false);
          set_add("eos", false, false);
        } else if (t == "TemplateProcessing") {
          const json single = p.value("single", json::array());
          if (single.size() > 1) {
            const std::string first = single.front().contains("SpecialToken") ? single.front()["SpecialToken"].value("id", "") : "";
            if (!first.empty()) {
              if (!config_tc.is_object()) special_bos = first;
              set_add("bos", first == special_bos || first == special_cls, true);
            }
            const std::string last = single.back().contains("SpecialToken") ? single.back()["SpecialToken"].value("id", "") : "";
            if (!last.empty()) {
              if (!config_tc.is_object()) special_eos = last;
              set_add("eos", last == special_eos, true);
            }
          }
        }
      }
    }
  }
  if (merges.empty() && fs::exists(dir / "merges.txt")) {
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
  if (config_tc.is_object()) {
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

  if (!merges.empty()) w.add_strings("tokenizer.ggml.merges", merges);
  static const std::map<std::string, std::string> id_keys = {
      {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
      {"pad", "padding_token_id"}, {"mask", "mask_token_id"}};
  for (const auto& [type, id] : special_ids)
    if (const auto it = id_keys.find(type); it != id_keys.end()) w.add_u32("tokenizer.ggml." + it->second, static_cast<uint32_t>(id));
  for (const auto& [type, value] : add_special)
    if (type == "bos" || type == "eos" || type == "sep") w.add_bool("tokenizer.ggml.add_" + type + "_token", value);
  if (chat_template) w.add_string("tokenizer.chat_template", *chat_template);
  if (lowercase) w.add_bool("tokenizer.ggml.normalizer.lowercase", *lowercase);
  if (strip_accents) w.add_bool("tokenizer.ggml.normalizer.strip_accents", *strip_accents);
}

// ---- The weights, merged one tensor at a time ------------------------------------------------------

struct AdapterPair {
  at::Tensor a, b;  // lora_A (r, in), lora_B (out, r), float32
};

struct Adapter {
  std::map<std::string, AdapterPair> modules;  // by HF module name, sorted
  double scaling = 0, alpha = 0;
  bool fan_in_fan_out = false;
};

Adapter read_adapter(const fs::path& dir) {
  Adapter adapter;
  const lora::LoraConfig config = read_peft_adapter_config(dir);
  adapter.scaling = config.scaling();
  adapter.alpha = config.lora_alpha;
  adapter.fan_in_fan_out = JsonReader::parse_file((dir / "adapter_config.json").string()).value("fan_in_fan_out", false);
  const SafetensorsFile file(dir / "adapter_model.safetensors");
  static const std::regex key(R"(^base_model\.model\.(.+)\.lora_([AB])\.weight$)");
  for (const auto& e : file.entries()) {
    std::smatch m;
    if (!std::regex_match(e.name, m, key))
      fail("{}: tensor {} is not a LoRA A/B weight; hint: only plain LoRA adapters (no modules_to_save, DoRA or "
           "embeddings) can be exported", file.path().string(), e.name);
    AdapterPair& pair = adapter.modules[m[1].str()];
    (m[2].str() == "A" ? pair.a : pair.b) = file.read(e.name, at::kFloat, at::kCPU);
  }
  for (const auto& [module, pair] : adapter.modules)
    if (!pair.a.defined() || !pair.b.defined())
      fail("{}: module {} has only one of lora_A and lora_B", file.path().string(), module);
  return adapter;
}

// The base's tensors in the converter's order: shard files sorted by name, tensors sorted per file.
struct BaseTensor {
  size_t file;
  std::string name;
  std::vector<int64_t> shape;
};

struct BaseWeights {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::vector<BaseTensor> tensors;
};

BaseWeights open_base(const fs::path& model_dir) {
  const HfModelDir hf = open_hf_model_dir(model_dir);
  if (hf.weight_files.empty()) fail("{}: no safetensors weights; hint: GGUF export needs the model's weights", model_dir.string());
  std::vector<fs::path> paths = hf.weight_files;
  std::sort(paths.begin(), paths.end());
  BaseWeights base;
  for (const fs::path& p : paths) {
    base.files.push_back(std::make_unique<SafetensorsFile>(p));
    std::vector<BaseTensor> in_file;
    for (const auto& e : base.files.back()->entries()) in_file.push_back({base.files.size() - 1, e.name, e.shape});
    std::sort(in_file.begin(), in_file.end(), [](const BaseTensor& x, const BaseTensor& y) { return x.name < y.name; });
    base.tensors.insert(base.tensors.end(), in_file.begin(), in_file.end());
  }
  if (hf.config.contains("quantization_config"))
    fail("{}: a quantized checkpoint (quantization_config in config.json); hint: `lorakit merge` it to a dense "
         "directory first (merge --quantization for a QLoRA run), then export that", model_dir.string());
  return base;
}

// What `lorakit merge` writes for the model_type's dtype: stored dtype, else float32.
at::ScalarType merged_dtype(const json& config) {
  return parse_dtype(dtype_name_from_hf(config.value("dtype", config.value("torch_dtype", std::string("float32")))), "dtype");
}

fs::path checked_out(const fs::path& out, bool overwrite) {
  if (fs::exists(out) && !overwrite) fail("{}: already exists; hint: choose another --out or pass --overwrite", out.string());
  if (!out.parent_path().empty() && !fs::exists(out.parent_path()))
    fail("{}: the folder {} does not exist", out.string(), out.parent_path().string());
  return out;
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

// Metadata.load + set_gguf_meta_model for a directory without a model card: config.json's
// _name_or_path (when it is a hub id), then the directory's name; --name wins; the size label from
// the parameter count when neither names one (not for adapters, whose count is negative).
void write_general(gguf::Writer& w, const fs::path& dir, const GgufOptions& options, int64_t total_params) {
  ModelId meta;
  auto apply = [&](const std::string& model_id) {
    const ModelId id = model_id_components(model_id, total_params);
    if (!meta.name && id.name) meta.name = id_to_title(*id.name);
    if (!meta.organization && id.organization) meta.organization = id_to_title(*id.organization);
    if (!meta.basename) meta.basename = id.basename;
    if (!meta.finetune) meta.finetune = id.finetune;
    if (!meta.version) meta.version = id.version;
    if (!meta.size_label) meta.size_label = id.size_label;
  };
  if (const auto config = read_json_if(dir / "config.json"); config && config->contains("_name_or_path") && (*config)["_name_or_path"].is_string()) {
    const std::string id = (*config)["_name_or_path"].get<std::string>();
    if (std::count(id.begin(), id.end(), '/') <= 1) apply(id);
  }
  apply(fs::absolute(dir).lexically_normal().filename().string());
  if (!options.name.empty()) meta.name = options.name;
  if (!meta.size_label && total_params > 0) meta.size_label = size_label(total_params);
  write_sampling(w, dir);
  w.add_string("general.name", *meta.name);
  if (meta.version) w.add_string("general.version", *meta.version);
  if (meta.organization) w.add_string("general.organization", *meta.organization);
  if (meta.finetune) w.add_string("general.finetune", *meta.finetune);
  if (meta.basename) w.add_string("general.basename", *meta.basename);
  if (meta.size_label) w.add_string("general.size_label", *meta.size_label);
}

}  // namespace

GgufReport export_gguf(const fs::path& model_dir, const fs::path& adapter_dir, const fs::path& out, const GgufOptions& options) {
  checked_out(out, options.overwrite);
  const fs::path config_path = model_dir / "config.json";
  const json config = JsonReader::parse_file(config_path.string());
  const Arch& arch = find_arch(config.value("model_type", std::string()), config_path);
  const json hp = hyperparameters(arch, config);
  const at::ScalarType dtype = merged_dtype(config);
  BaseWeights base = open_base(model_dir);
  Adapter adapter;
  if (!adapter_dir.empty()) adapter = read_adapter(adapter_dir);
  std::set<std::string> unused;
  for (const auto& [module, _] : adapter.modules) unused.insert(module);

  // The tensor list: generated ones first, then the checkpoint's under llama.cpp's names.
  struct Planned {
    std::string name;
    int64_t base = -1;  // index into base.tensors; -1: generated
    at::Tensor generated;
  };
  std::vector<Planned> plan;
  gguf::Writer w;
  int64_t parameters = 0;
  auto add = [&](Planned p, const std::vector<int64_t>& shape) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    parameters += numel;
    w.add_tensor(p.name, shape, tensor_type(p.name, shape, options.type));
    plan.push_back(std::move(p));
  };
  if (auto freqs = llama3_rope_freqs(arch, hp)) add({"rope_freqs.weight", -1, *freqs}, {freqs->size(0)});
  for (size_t i = 0; i < base.tensors.size(); ++i) {
    const BaseTensor& t = base.tensors[i];
    if (t.name.ends_with(".attention.masked_bias") || t.name.ends_with(".attention.bias") || t.name.ends_with(".rotary_emb.inv_freq")) continue;
    const std::string name = gguf_tensor_name(arch, t.name);
    if (name.empty()) continue;
    if (t.name.ends_with(".weight")) unused.erase(t.name.substr(0, t.name.size() - 7));
    add({name, static_cast<int64_t>(i), {}}, t.shape);
  }
  if (!unused.empty())
    fail("{}: the adapter has modules the model does not: {}; hint: export with the base model it was trained on",
         adapter_dir.string(), fmt::join(unused, ", "));

  // Metadata in the converter's order.
  w.add_string("general.architecture", arch.gguf_arch);
  w.add_string("general.type", "model");
  write_general(w, model_dir, options, parameters);
  write_hyperparameters(w, arch, hp, options.type);
  w.add_u32("general.quantization_version", 2);
  GgufReport report;
  write_gpt2_vocab(w, model_dir, hp, options.tokenizer_pre, &report.tokenizer_pre);

  c10::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  w.write(
      out,
      [&](size_t i) -> at::Tensor {
        const Planned& p = plan[i];
        if (p.base < 0) return p.generated;
        const BaseTensor& t = base.tensors[static_cast<size_t>(p.base)];
        at::Tensor value = base.files[t.file]->read(t.name, at::kFloat, at::kCPU);
        const std::string module = t.name.ends_with(".weight") ? t.name.substr(0, t.name.size() - 7) : "";
        if (const auto it = adapter.modules.find(module); it != adapter.modules.end()) {
          const at::Tensor delta = at::matmul(it->second.b, it->second.a) * adapter.scaling;  // (out, in)
          value = value + (adapter.fan_in_fan_out ? delta.t() : delta);
          report.merged += 1;
        }
        if (dtype != at::kFloat) value = value.to(dtype).to(at::kFloat);  // as merge stores it, as the converter reads it
        if (const auto heads = permute_heads(arch, hp, t.name)) value = permute_rows(value, *heads);
        return value;
      },
      [&](size_t i, uint64_t) {
        if (options.quiet || (i + 1) % 50 != 0) return;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        fmt::print("  {}/{} tensors, {:.1f} s\n", i + 1, plan.size(), s);
      });
  report.arch = arch.gguf_arch;
  report.tensors = static_cast<int64_t>(plan.size());
  report.parameters = parameters;
  report.bytes = fs::file_size(out);
  if (!options.quiet)
    fmt::print("wrote {} ({}, {} tensors, {} parameters, {}, tokenizer.ggml.pre {}){}\n", out.string(), arch.gguf_arch,
               report.tensors, report.parameters, human_bytes(static_cast<double>(report.bytes)), report.tokenizer_pre,
               adapter_dir.empty() ? "" : fmt::format("; {} weights merged with {}", report.merged, adapter_dir.string()));
  return report;
}

GgufReport export_gguf_lora(const fs::path& model_dir, const fs::path& adapter_dir, const fs::path& out, const GgufOptions& options) {
  checked_out(out, options.overwrite);
  const fs::path config_path = model_dir / "config.json";
  const json config = JsonReader::parse_file(config_path.string());
  const Arch& arch = find_arch(config.value("model_type", std::string()), config_path);
  const json hp = hyperparameters(arch, config);
  const Adapter adapter = read_adapter(adapter_dir);

  struct Planned {
    std::string name;
    at::Tensor value;
  };
  std::vector<Planned> plan;
  gguf::Writer w;
  for (const auto& [module, pair] : adapter.modules) {
    const std::string weight = module + ".weight";
    const std::string name = gguf_tensor_name(arch, weight);
    if (name.empty()) fail("{}: module {} has no llama.cpp tensor", adapter_dir.string(), module);
    at::Tensor b = pair.b;
    if (const auto heads = permute_heads(arch, hp, weight)) b = permute_rows(b, *heads);
    for (auto& [suffix, value] : {std::pair{".lora_a", pair.a}, std::pair{".lora_b", b}}) {
      const std::vector<int64_t> shape(value.sizes().begin(), value.sizes().end());
      w.add_tensor(name + suffix, shape, tensor_type(name + suffix, shape, options.type));
      plan.push_back({name + suffix, value});
    }
  }
  w.add_string("general.architecture", arch.gguf_arch);
  w.add_string("general.type", "adapter");
  w.add_string("adapter.type", "lora");
  int64_t parameters = 0;  // gguf-py's count for an adapter: the adapted weights' sizes, negated
  for (const auto& [module, pair] : adapter.modules) parameters += pair.b.size(0) * pair.a.size(1);
  write_general(w, adapter_dir, options, -parameters);
  w.add_f32("adapter.lora.alpha", static_cast<float>(adapter.alpha));
  w.add_u32("general.quantization_version", 2);
  w.write(out, [&](size_t i) { return plan[i].value; });

  GgufReport report;
  report.arch = arch.gguf_arch;
  report.tensors = static_cast<int64_t>(plan.size());
  report.bytes = fs::file_size(out);
  if (!options.quiet)
    fmt::print("wrote {} ({} LoRA adapter, {} modules, lora_alpha {}, {})\n", out.string(), arch.gguf_arch,
               adapter.modules.size(), adapter.alpha, human_bytes(static_cast<double>(report.bytes)));
  return report;
}

}  // namespace lorakit::exports
