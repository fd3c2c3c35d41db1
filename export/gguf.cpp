#include "export/gguf.h"

#include <malloc.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <algorithm>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
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
#include "export/gguf_metadata.h"
#include "models/model.h"
#include "export/gguf_vocab.h"

namespace lorakit::exports {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using gguf::TensorType;

// ---- Architectures -------------------------------------------------------------------------------

// Which of the converter's set_gguf_parameters an architecture runs, and which set_vocab.
enum class Params { Text, Gemma, Gemma2, Gpt2, GptNeox };
using Vocab = gguf::VocabKind;

// One HF model_type as the converter handles it: llama.cpp's architecture name, the defaults
// transformers 5.23's config class fills in for the keys the converter reads (its hparams are
// AutoConfig(...).to_dict()), and its tensor names and transforms.
struct Arch {
  std::string model_type, gguf_arch;
  json defaults;
  bool raw_config = false;   // no transformers class (EXAONE 3.5 is remote code): config.json as is
  Params params = Params::Text;
  Vocab vocab = Vocab::Gpt2;
  bool permute_qk = false;   // LlamaModel.permute on q_proj/k_proj rows (llama, mistral)
  bool vocab_size = false;   // <arch>.vocab_size
  bool rope_dims = false;    // <arch>.rope.dimension_count = head_dim (x partial_rotary_factor for exaone)
  bool sliding = false;      // exaone4's <arch>.attention.sliding_window (+ _pattern)
  bool rope_freqs = false;   // llama3 rope scaling as a rope_freqs tensor
  double llama3_factor = 8;  // the converter's default factor for that
  bool norm_plus_one = false;    // gemma: every *norm.weight stored as 1 + w
  bool drop_lm_head = false;     // gemma: lm_head.weight skipped (tied)
  bool transpose_conv1d = false; // gpt2: Conv1D weights (in, out) transposed
  bool neox_qkv = false;         // gpt_neox: per-head [q k v] rows regrouped as [Q; K; V]
  std::string layers;            // the prefix before the layer index, e.g. "model.layers."
  std::map<std::string, std::string> layer_names, top_names;  // HF module -> llama.cpp, no suffix
};

std::map<std::string, std::string> llama_layer_names() {
  return {{"input_layernorm", "attn_norm"},    {"post_attention_layernorm", "ffn_norm"},
          {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
          {"self_attn.v_proj", "attn_v"},      {"self_attn.o_proj", "attn_output"},
          {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
          {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
          {"mlp.down_proj", "ffn_down"}};
}

const std::vector<Arch>& architectures() {
  static const std::vector<Arch> table = [] {
    const json rope_default = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
    const std::map<std::string, std::string> llama_top = {
        {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"}};
    std::vector<Arch> t;
    Arch llama;
    llama.model_type = llama.gguf_arch = "llama";
    llama.defaults = {{"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-6}, {"rope_parameters", rope_default}, {"vocab_size", 32000}};
    llama.vocab = Vocab::Llama;
    llama.permute_qk = llama.vocab_size = llama.rope_dims = llama.rope_freqs = true;
    llama.layers = "model.layers.";
    llama.layer_names = llama_layer_names();
    llama.top_names = llama_top;
    t.push_back(llama);

    Arch mistral = llama;  // MistralForCausalLM is the converter's LlamaModel
    mistral.model_type = "mistral";
    mistral.defaults["max_position_embeddings"] = 131072;
    t.push_back(mistral);

    Arch qwen2;
    qwen2.model_type = qwen2.gguf_arch = "qwen2";
    qwen2.defaults = {{"max_position_embeddings", 32768}, {"rms_norm_eps", 1e-6}, {"rope_parameters", rope_default}, {"vocab_size", 151936}};
    qwen2.vocab = Vocab::SentencePieceElseGpt2;
    qwen2.layers = "model.layers.";
    qwen2.layer_names = llama_layer_names();
    qwen2.top_names = llama_top;
    t.push_back(qwen2);

    Arch qwen3 = qwen2;
    qwen3.model_type = qwen3.gguf_arch = "qwen3";
    qwen3.defaults["head_dim"] = 128;
    t.push_back(qwen3);

    Arch exaone4 = qwen2;
    exaone4.model_type = exaone4.gguf_arch = "exaone4";
    exaone4.defaults = {{"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-5}, {"rope_parameters", rope_default}, {"vocab_size", 102400}};
    exaone4.vocab = Vocab::Gpt2;
    exaone4.vocab_size = exaone4.sliding = exaone4.rope_freqs = true;
    exaone4.llama3_factor = 16.0;
    exaone4.layer_names.erase("input_layernorm");
    exaone4.layer_names["post_attention_layernorm"] = "post_attention_norm";
    exaone4.layer_names["post_feedforward_layernorm"] = "post_ffw_norm";
    t.push_back(exaone4);

    Arch exaone;  // EXAONE 3.x: Llama's math under GPT-2-like names, config.json read as is
    exaone.model_type = exaone.gguf_arch = "exaone";
    exaone.raw_config = true;
    exaone.rope_dims = exaone.rope_freqs = true;
    exaone.layers = "transformer.h.";
    exaone.layer_names = {{"ln_1", "attn_norm"}, {"ln_2", "ffn_norm"}, {"attn.attention.q_proj", "attn_q"},
                          {"attn.attention.k_proj", "attn_k"}, {"attn.attention.v_proj", "attn_v"},
                          {"attn.attention.out_proj", "attn_output"}, {"mlp.c_fc_0", "ffn_gate"},
                          {"mlp.c_fc_1", "ffn_up"}, {"mlp.c_proj", "ffn_down"}};
    exaone.top_names = {{"transformer.wte", "token_embd"}, {"transformer.ln_f", "output_norm"}, {"lm_head", "output"}};
    t.push_back(exaone);

    Arch gemma;
    gemma.model_type = gemma.gguf_arch = "gemma";
    gemma.defaults = {{"max_position_embeddings", 8192}, {"rms_norm_eps", 1e-6}, {"rope_parameters", rope_default},
                      {"vocab_size", 256000}, {"head_dim", 256}};
    gemma.params = Params::Gemma;
    gemma.vocab = Vocab::Gemma;
    gemma.norm_plus_one = gemma.drop_lm_head = true;
    gemma.layers = "model.layers.";
    gemma.layer_names = llama_layer_names();
    gemma.top_names = llama_top;
    t.push_back(gemma);

    Arch gemma2 = gemma;
    gemma2.model_type = gemma2.gguf_arch = "gemma2";
    gemma2.defaults.update({{"sliding_window", 4096}, {"final_logit_softcapping", 30.0}, {"attn_logit_softcapping", 50.0}});
    gemma2.params = Params::Gemma2;
    gemma2.vocab = Vocab::Gemma2;
    gemma2.layer_names["post_attention_layernorm"] = "post_attention_norm";
    gemma2.layer_names["pre_feedforward_layernorm"] = "ffn_norm";
    gemma2.layer_names["post_feedforward_layernorm"] = "post_ffw_norm";
    t.push_back(gemma2);

    Arch gpt2;
    gpt2.model_type = gpt2.gguf_arch = "gpt2";
    gpt2.defaults = {{"layer_norm_epsilon", 1e-5}, {"n_positions", 1024}, {"vocab_size", 50257}};
    gpt2.params = Params::Gpt2;
    gpt2.transpose_conv1d = true;
    gpt2.layers = "transformer.h.";
    gpt2.layer_names = {{"ln_1", "attn_norm"}, {"ln_2", "ffn_norm"}, {"attn.c_attn", "attn_qkv"},
                        {"attn.c_proj", "attn_output"}, {"mlp.c_fc", "ffn_up"}, {"mlp.c_proj", "ffn_down"}};
    gpt2.top_names = {{"transformer.wte", "token_embd"}, {"transformer.wpe", "position_embd"},
                      {"transformer.ln_f", "output_norm"}, {"lm_head", "output"}};
    t.push_back(gpt2);

    Arch neox;
    neox.model_type = "gpt_neox";
    neox.gguf_arch = "gptneox";
    neox.defaults = {{"max_position_embeddings", 2048}, {"layer_norm_eps", 1e-5}, {"vocab_size", 50432},
                     {"use_parallel_residual", true}};
    neox.params = Params::GptNeox;
    neox.neox_qkv = true;
    neox.layers = "gpt_neox.layers.";
    neox.layer_names = {{"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"},
                        {"attention.query_key_value", "attn_qkv"}, {"attention.dense", "attn_output"},
                        {"mlp.dense_h_to_4h", "ffn_up"}, {"mlp.dense_4h_to_h", "ffn_down"}};
    neox.top_names = {{"gpt_neox.embed_in", "token_embd"}, {"embed_out", "output"}, {"gpt_neox.final_layer_norm", "output_norm"}};
    t.push_back(neox);
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
  const std::string why = model_type == "rwkv"
                              ? "llama.cpp's converter handles RWKV 6 and 7, not RWKV-4 (the rwkv model_type)"
                              : "lorakit has no GGUF mapping for it";
  fail("{}: model_type '{}' cannot be exported to GGUF: {}; hint: the GGUF export handles {}", config_path.string(),
       model_type, why, fmt::join(known, ", "));
}

// llama.cpp's tensor name for an HF tensor, "" for one the converter drops.
std::string gguf_tensor_name(const Arch& arch, const std::string& hf_name) {
  std::string hf = hf_name;
  if (arch.model_type == "gpt2" && !hf.starts_with("transformer.") && hf != "lm_head.weight") hf = "transformer." + hf;  // OpenAI's own names
  if (hf.ends_with(".rotary_emb.inv_freq") || hf.ends_with(".attn.bias") || hf.ends_with(".attn.masked_bias") ||
      hf.ends_with(".attention.bias") || hf.ends_with(".attention.masked_bias"))
    return "";
  if (arch.drop_lm_head && hf == "lm_head.weight") return "";
  const size_t dot = hf.rfind('.');
  const std::string module = hf.substr(0, dot), suffix = hf.substr(dot);  // ".weight" | ".bias"
  if (suffix == ".weight" || suffix == ".bias") {
    if (const auto it = arch.top_names.find(module); it != arch.top_names.end()) return it->second + suffix;
    if (module.starts_with(arch.layers)) {
      const std::string rest = module.substr(arch.layers.size());
      const size_t end = rest.find('.');
      const std::string index = rest.substr(0, end);
      if (end != std::string::npos && !index.empty() && std::all_of(index.begin(), index.end(), ::isdigit))
        if (const auto it = arch.layer_names.find(rest.substr(end + 1)); it != arch.layer_names.end())
          return fmt::format("blk.{}.{}{}", index, it->second, suffix);
    }
  }
  fail("GGUF: tensor {} has no llama.cpp name in the {} architecture; hint: a checkpoint with modules the "
       "architecture does not have cannot be exported", hf_name, arch.gguf_arch);
}

// ---- Hyperparameters: TextModel.set_gguf_parameters and the architectures' own ---------------------

// config.json over the class defaults, as the converter's hparams (AutoConfig(...).to_dict()).
json hyperparameters(const Arch& arch, const json& config) {
  if (arch.raw_config) {
    json hp = config;
    json rope = config.contains("rope_scaling") && config["rope_scaling"].is_object() ? config["rope_scaling"] : json::object();
    if (rope.contains("type") && !rope.contains("rope_type")) rope["rope_type"] = rope["type"];
    if (config.contains("rope_theta") && !rope.contains("rope_theta")) rope["rope_theta"] = config["rope_theta"];
    hp["rope_parameters"] = rope;
    return hp;
  }
  json hp = arch.defaults;
  for (const auto& [key, value] : config.items()) hp[key] = value;
  // transformers 5 keeps the rope settings in rope_parameters (rope_scaling + rope_theta merged).
  if (!config.contains("rope_parameters") && arch.defaults.contains("rope_parameters")) {
    json rope = arch.defaults["rope_parameters"];
    if (config.contains("rope_scaling") && config["rope_scaling"].is_object())
      for (const auto& [k, v] : config["rope_scaling"].items()) rope[k == "type" ? "rope_type" : k] = v;
    if (config.contains("rope_theta")) rope["rope_theta"] = config["rope_theta"];
    hp["rope_parameters"] = rope;
  }
  if (!hp.contains("rope_parameters")) hp["rope_parameters"] = json::object();
  hp.erase("rope_scaling");
  hp.erase("rope_theta");
  if (hp.contains("num_attention_heads") && (!hp.contains("num_key_value_heads") || hp["num_key_value_heads"].is_null()))
    hp["num_key_value_heads"] = hp["num_attention_heads"];
  if ((arch.model_type == "llama" || arch.model_type == "mistral") && (!hp.contains("head_dim") || hp["head_dim"].is_null()))
    hp["head_dim"] = hp.at("hidden_size").get<int64_t>() / hp.at("num_attention_heads").get<int64_t>();
  return hp;
}

const json* find_hparam(const json& hp, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (hp.contains(k) && !hp[k].is_null()) return &hp[k];
  return nullptr;
}

uint32_t u32(const json& hp, std::initializer_list<const char*> keys, const fs::path& config_path) {
  if (const json* v = find_hparam(hp, keys)) return v->get<uint32_t>();
  fail("{}: none of {} is set; hint: GGUF needs it", config_path.string(), fmt::join(keys, ", "));
}

uint32_t file_type_code(const std::string& type) {
  if (type == "f32") return 0;
  if (type == "f16") return 1;
  if (type == "q8_0") return 7;
  return 32;  // bf16
}

int64_t head_dim(const json& hp) {
  return hp.contains("head_dim") && !hp["head_dim"].is_null()
             ? hp["head_dim"].get<int64_t>()
             : hp.at("hidden_size").get<int64_t>() / hp.at("num_attention_heads").get<int64_t>();
}

// GPT-NeoX's rotary fraction: config.json's rotary_pct (what the converter reads), else transformers
// 5's partial_rotary_factor, else GPTNeoXConfig's 0.25.
double neox_rotary_pct(const json& hp) {
  if (const json* v = find_hparam(hp, {"rotary_pct", "partial_rotary_factor"})) return v->get<double>();
  return hp["rope_parameters"].value("partial_rotary_factor", 0.25);
}

void write_text_model_parameters(gguf::Writer& w, const Arch& arch, const json& hp, const std::string& type) {
  const std::string a = arch.gguf_arch;
  w.add_u32(a + ".block_count", *find_hparam(hp, {"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  if (const json* v = find_hparam(hp, {"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"}))
    w.add_u32(a + ".context_length", v->get<uint32_t>());
  if (const json* v = find_hparam(hp, {"hidden_size", "n_embd", "dim"})) w.add_u32(a + ".embedding_length", v->get<uint32_t>());
  if (const json* v = find_hparam(hp, {"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"}))
    w.add_u32(a + ".feed_forward_length", v->get<uint32_t>());
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
  // The architectures' additions.
  if (arch.vocab_size) w.add_u32(a + ".vocab_size", hp.at("vocab_size").get<uint32_t>());
  if (arch.rope_dims) {
    const double fraction = arch.model_type == "exaone" ? rope.value("partial_rotary_factor", 1.0) : 1.0;
    const int64_t heads_dim = arch.model_type == "exaone" ? hp.at("hidden_size").get<int64_t>() / hp.at("num_attention_heads").get<int64_t>() : head_dim(hp);
    w.add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(fraction * static_cast<double>(heads_dim)));
  }
  if (arch.sliding && hp.contains("sliding_window") && !hp["sliding_window"].is_null()) {
    w.add_u32(a + ".attention.sliding_window", hp["sliding_window"].get<uint32_t>());
    const int64_t layers = hp.at("num_hidden_layers").get<int64_t>();
    if (layers <= 0 || layers > kMaxLayers) fail("config.json: num_hidden_layers {} is not from 1 to {}", layers, kMaxLayers);
    std::vector<bool> pattern;
    if (hp.contains("layer_types") && hp["layer_types"].is_array()) {
      for (const auto& t : hp["layer_types"]) pattern.push_back(t == "sliding_attention");
      w.add_bools(a + ".attention.sliding_window_pattern", pattern);
    } else if (hp.contains("sliding_window_pattern")) {
      const json& p = hp["sliding_window_pattern"];
      for (int64_t i = 0; i < layers; ++i) {
        if (p.is_string() && !p.get<std::string>().empty())
          pattern.push_back(p.get<std::string>()[static_cast<size_t>(i) % p.get<std::string>().size()] == 'L');
        if (p.is_number_integer() && p.get<int64_t>() > 0) pattern.push_back((i + 1) % p.get<int64_t>() != 0);
      }
      if (static_cast<int64_t>(pattern.size()) == layers) w.add_bools(a + ".attention.sliding_window_pattern", pattern);
    }
  }
}

void write_hyperparameters(gguf::Writer& w, const Arch& arch, const json& hp, const std::string& type, const fs::path& config_path) {
  const std::string a = arch.gguf_arch;
  switch (arch.params) {
    case Params::Text:
      write_text_model_parameters(w, arch, hp, type);
      return;
    case Params::Gemma:
    case Params::Gemma2:
      w.add_u32(a + ".context_length", u32(hp, {"max_position_embeddings"}, config_path));
      w.add_u32(a + ".embedding_length", u32(hp, {"hidden_size"}, config_path));
      w.add_u32(a + ".block_count", u32(hp, {"num_hidden_layers"}, config_path));
      w.add_u32(a + ".feed_forward_length", u32(hp, {"intermediate_size"}, config_path));
      w.add_u32(a + ".attention.head_count", u32(hp, {"num_attention_heads"}, config_path));
      w.add_u32(a + ".attention.head_count_kv", u32(hp, {"num_key_value_heads", "num_attention_heads"}, config_path));
      w.add_f32(a + ".attention.layer_norm_rms_epsilon", hp.at("rms_norm_eps").get<float>());
      w.add_u32(a + ".attention.key_length", u32(hp, {"head_dim"}, config_path));
      w.add_u32(a + ".attention.value_length", u32(hp, {"head_dim"}, config_path));
      w.add_u32("general.file_type", file_type_code(type));
      if (arch.params == Params::Gemma2) {
        w.add_f32(a + ".attn_logit_softcapping", hp.at("attn_logit_softcapping").get<float>());
        w.add_f32(a + ".final_logit_softcapping", hp.at("final_logit_softcapping").get<float>());
        w.add_u32(a + ".attention.sliding_window", u32(hp, {"sliding_window"}, config_path));
      }
      return;
    case Params::Gpt2: {
      w.add_u32(a + ".block_count", u32(hp, {"n_layer", "num_hidden_layers"}, config_path));
      // The converter reads n_ctx, which transformers 5's GPT2Config keeps only when config.json has it.
      w.add_u32(a + ".context_length", u32(hp, {"n_ctx", "n_positions"}, config_path));
      const uint32_t n_embd = u32(hp, {"n_embd", "hidden_size"}, config_path);
      w.add_u32(a + ".embedding_length", n_embd);
      w.add_u32(a + ".feed_forward_length", 4 * n_embd);
      w.add_u32(a + ".attention.head_count", u32(hp, {"n_head", "num_attention_heads"}, config_path));
      w.add_f32(a + ".attention.layer_norm_epsilon", hp.at("layer_norm_epsilon").get<float>());
      w.add_u32("general.file_type", file_type_code(type));
      return;
    }
    case Params::GptNeox: {
      w.add_u32(a + ".context_length", u32(hp, {"max_position_embeddings"}, config_path));
      w.add_u32(a + ".embedding_length", u32(hp, {"hidden_size"}, config_path));
      w.add_u32(a + ".block_count", u32(hp, {"num_hidden_layers"}, config_path));
      w.add_u32(a + ".feed_forward_length", u32(hp, {"intermediate_size"}, config_path));
      w.add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(neox_rotary_pct(hp) * static_cast<double>(head_dim(hp))));
      w.add_u32(a + ".attention.head_count", u32(hp, {"num_attention_heads"}, config_path));
      w.add_bool(a + ".use_parallel_residual", hp.value("use_parallel_residual", true));
      w.add_f32(a + ".attention.layer_norm_epsilon", hp.at("layer_norm_eps").get<float>());
      return;
    }
  }
}

// Python's `a / t` for a Python float and a tensor: Tensor.__rtruediv__ is t.reciprocal() * a.
// (ATen's C++ `a / t` divides, which rounds differently: the converter's rope_freqs differ by an ulp.)
at::Tensor rdiv(double a, const at::Tensor& t) { return t.reciprocal() * a; }

// LlamaModel.generate_extra_tensors for llama3 rope scaling, in float32 as torch computes it.
std::optional<at::Tensor> llama3_rope_freqs(const Arch& arch, const json& hp) {
  const json& rope = hp["rope_parameters"];
  if (!arch.rope_freqs || rope.value("rope_type", std::string()) != "llama3") return std::nullopt;
  const double base = rope.value("rope_theta", 10000.0);
  const int64_t dim = head_dim(hp);
  const at::Tensor freqs = rdiv(1.0, at::pow(base, at::arange(0, dim, 2, at::kFloat) / dim));
  const double factor = rope.value("factor", arch.llama3_factor);
  const double low = rope.value("low_freq_factor", 1.0), high = rope.value("high_freq_factor", 4.0);
  const double old_context = rope.value("original_max_position_embeddings", 8192.0);
  const double low_wavelen = old_context / low, high_wavelen = old_context / high;
  std::vector<float> factors;
  for (int64_t i = 0; i < freqs.numel(); ++i) {
    const at::Tensor wavelen = rdiv(2 * M_PI, freqs[i]);  // a float32 0-d tensor, as in Python
    const float wl = wavelen.item<float>();
    if (wl < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wl > low_wavelen) {
      factors.push_back(static_cast<float>(factor));
    } else {
      const at::Tensor smooth = (rdiv(old_context, wavelen) - low) / (high - low);
      factors.push_back(rdiv(1.0, (1 - smooth) / factor + smooth).item<float>());
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

// The converter's modify_tensors for one HF tensor (float32), before the type conversion.
at::Tensor transform(const Arch& arch, const json& hp, const std::string& hf, at::Tensor value) {
  if (const auto heads = permute_heads(arch, hp, hf)) value = permute_rows(value, *heads);
  if (arch.norm_plus_one && hf.ends_with("norm.weight")) value = value + 1;
  if (arch.transpose_conv1d && value.dim() == 2 &&
      (hf.ends_with(".c_attn.weight") || hf.ends_with(".c_proj.weight") || hf.ends_with(".c_fc.weight")))
    value = value.transpose(1, 0).contiguous();
  if (arch.neox_qkv && hf.ends_with("attention.query_key_value.weight")) {
    // Rows per head [q k v] -> [Q; K; V]; the columns are the input (or, for a LoRA B, the rank).
    const int64_t heads = hp.at("num_attention_heads").get<int64_t>(), embed = hp.at("hidden_size").get<int64_t>();
    const int64_t cols = value.size(1);
    const at::Tensor qkv = value.reshape({heads, 3, embed / heads, cols});
    value = at::cat({qkv.select(1, 0).reshape({-1, cols}), qkv.select(1, 1).reshape({-1, cols}), qkv.select(1, 2).reshape({-1, cols})}, 0);
  } else if (arch.neox_qkv && hf.ends_with("attention.query_key_value.bias")) {
    const int64_t heads = hp.at("num_attention_heads").get<int64_t>(), embed = hp.at("hidden_size").get<int64_t>();
    const at::Tensor qkv = value.reshape({heads, 3, embed / heads});
    value = at::cat({qkv.select(1, 0).reshape({embed}), qkv.select(1, 1).reshape({embed}), qkv.select(1, 2).reshape({embed})}, 0);
  }
  return value;
}

// The shape after transform (only Conv1D's transposition changes one).
std::vector<int64_t> transformed_shape(const Arch& arch, const std::string& hf, std::vector<int64_t> shape) {
  if (arch.transpose_conv1d && shape.size() == 2 &&
      (hf.ends_with(".c_attn.weight") || hf.ends_with(".c_proj.weight") || hf.ends_with(".c_fc.weight")))
    std::swap(shape[0], shape[1]);
  return shape;
}

// prepare_tensors' type choice: 1-D tensors, norms, position embeddings and anything not a weight
// stay F32; q8_0 falls back to F16 when the rows are not whole blocks of 32.
TensorType tensor_type(const std::string& name, const std::vector<int64_t>& shape, const std::string& type) {
  const bool weight = name.ends_with(".weight") || name.ends_with(".lora_a") || name.ends_with(".lora_b");
  if (shape.size() <= 1 || name.ends_with("_norm.weight") || !weight || name == "position_embd.weight") return TensorType::F32;
  if (type == "f32") return TensorType::F32;
  if (type == "f16") return TensorType::F16;
  if (type == "bf16") return TensorType::BF16;
  return shape.back() % 32 == 0 ? TensorType::Q8_0 : TensorType::F16;
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

// The model directory's config.json, its Arch row and the converter's hyperparameters (both exports).
struct ModelConfig {
  fs::path path;
  json config;
  const Arch& arch;
  json hp;
};

ModelConfig read_model_config(const fs::path& model_dir) {
  const fs::path path = model_dir / "config.json";
  json config = JsonReader::parse_file(path.string());
  const Arch& arch = find_arch(config.value("model_type", std::string()), path);
  json hp = hyperparameters(arch, config);
  return {path, std::move(config), arch, std::move(hp)};
}

}  // namespace

GgufReport export_gguf(const fs::path& model_dir, const fs::path& adapter_dir, const fs::path& out, const GgufOptions& options) {
  return with_json_errors(model_dir.string(), [&]() -> GgufReport {
    checked_out(out, options.overwrite);
    const ModelConfig model = read_model_config(model_dir);
    const fs::path& config_path = model.path;
    const Arch& arch = model.arch;
    const json& hp = model.hp;
    const at::ScalarType dtype = merged_dtype(model.config);
    BaseWeights base = open_base(model_dir);
    Adapter adapter;
    if (!adapter_dir.empty()) adapter = read_adapter(adapter_dir);
    adapter.fan_in_fan_out |= arch.transpose_conv1d;  // GPT-2's Conv1D stores (in, out); PEFT's delta is (out, in)
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
      if (t.name.ends_with(".weight")) {
        const std::string module = t.name.substr(0, t.name.size() - 7);
        if (const auto it = adapter.modules.find(module); it != adapter.modules.end()) {
          std::vector<int64_t> delta = {it->second.b.size(0), it->second.a.size(1)};  // (out, in)
          if (adapter.fan_in_fan_out) std::swap(delta[0], delta[1]);
          if (t.shape != delta)
            fail("{}: {}'s LoRA pair makes a [{}] update but the model's weight is [{}]; hint: export with the base model "
                 "the adapter was trained on", adapter_dir.string(), module, fmt::join(delta, ", "), fmt::join(t.shape, ", "));
          unused.erase(module);
        }
      }
      add({name, static_cast<int64_t>(i), {}}, transformed_shape(arch, t.name, t.shape));
    }
    if (!unused.empty())
      fail("{}: the adapter has modules the model does not: {}; hint: export with the base model it was trained on",
           adapter_dir.string(), fmt::join(unused, ", "));

    // Metadata in the converter's order.
    w.add_string("general.architecture", arch.gguf_arch);
    w.add_string("general.type", "model");
    gguf::write_general(w, model_dir, options.name, parameters);
    write_hyperparameters(w, arch, hp, options.type, config_path);
    w.add_u32("general.quantization_version", 2);
    GgufReport report;
    report.tokenizer_pre = gguf::write_vocabulary(w, arch.vocab, model_dir, hp.value("vocab_size", int64_t{0}), options.tokenizer_pre);

    c10::NoGradGuard no_grad;
    const auto start = std::chrono::steady_clock::now();
    auto last_print = start;
    uint64_t written = 0;
    const uint64_t total_bytes = w.data_bytes();
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
          return transform(arch, hp, t.name, value);
        },
        [&](size_t i, uint64_t bytes) {
          // The tensor's float32 copies are freed; glibc would keep them in its heap and the resident
          // set would grow towards the whole model's. Give them back, so one tensor is in memory at a time.
          ::malloc_trim(0);
          written += bytes;
          const auto now = std::chrono::steady_clock::now();
          if (options.quiet || (now - last_print < std::chrono::seconds(2) && i + 1 < plan.size())) return;
          last_print = now;
          const double s = std::chrono::duration<double>(now - start).count();
          const double eta = written > 0 ? s * static_cast<double>(total_bytes - written) / static_cast<double>(written) : 0;
          fmt::print("  {}/{} tensors, {} of {}, {:.1f} s, ETA {:.0f} s\n", i + 1, plan.size(), human_bytes(static_cast<double>(written)),
                     human_bytes(static_cast<double>(total_bytes)), s, eta);
          std::fflush(stdout);
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
  });
}

GgufReport export_gguf_lora(const fs::path& model_dir, const fs::path& adapter_dir, const fs::path& out, const GgufOptions& options) {
  return with_json_errors(model_dir.string(), [&]() -> GgufReport {
    checked_out(out, options.overwrite);
    const ModelConfig model = read_model_config(model_dir);
    const Arch& arch = model.arch;
    const json& hp = model.hp;
    const Adapter adapter = read_adapter(adapter_dir);
    if (arch.transpose_conv1d)
      fail("{}: a LoRA GGUF for gpt2 is not written: convert_lora_to_gguf.py transposes GPT-2's Conv1D pairs into "
           "lora_a = B^T, lora_b = A^T, which llama.cpp rejects, so there is no file to match; hint: `lorakit export gguf "
           "--adapter` writes the merged model instead", adapter_dir.string());

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
      const at::Tensor b = transform(arch, hp, weight, pair.b);  // the weight's row transforms act on B's rows
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
    gguf::write_general(w, adapter_dir, options.name, -parameters);
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
  });
}

}  // namespace lorakit::exports
