// The Llama decoder, shared by the model_types whose math is Llama's with a few switches, as
// transformers' modular files derive them: llama, mistral (a sliding window on every layer),
// qwen2 (q/k/v biases, sliding layers from layer_types), qwen3 (per-head q/k RMSNorm) and exaone
// (EXAONE 3.x: Llama under other tensor and config names) and gemma (a (1 + weight) RMSNorm and
// scaled embeddings). Each model_type's file reads its own
// config.json keys, with its class's defaults, into a LlamaConfig and builds this model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace lorakit {

// Module names, HF's, relative to the model; EXAONE 3 renames every one of them.
struct LlamaNames {
  std::string embed_tokens = "model.embed_tokens", layers = "model.layers", norm = "model.norm";
  std::string input_layernorm = "input_layernorm", post_attention_layernorm = "post_attention_layernorm";
  std::string self_attn = "self_attn", q_proj = "q_proj", k_proj = "k_proj", v_proj = "v_proj", o_proj = "o_proj";
  std::string mlp = "mlp", gate_proj = "gate_proj", up_proj = "up_proj", down_proj = "down_proj";
};

// HF LlamaConfig's keys (and their meaning in the derived configs).
struct LlamaConfig {
  std::string model_type, architecture;  // e.g. "qwen2", "Qwen2ForCausalLM"
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0,
          num_key_value_heads = 0, head_dim = 0, max_position_embeddings = 0;
  std::string hidden_act = "silu";
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;  // llama's attention_bias is q/k/v and o; qwen2's q/k/v
  bool qk_norm = false;                                     // qwen3: RMSNorm over head_dim on q and k
  bool gemma_norm = false;        // gemma: every RMSNorm multiplies by (1 + weight) in float32
  bool scale_embeddings = false;  // gemma: embeddings times sqrt(hidden_size), rounded to the model dtype
  int64_t sliding_window = 0;                               // 0: no window
  std::vector<bool> sliding;                                // per layer: attends within sliding_window
  bool tie_word_embeddings = false;
  std::string dtype;
  std::vector<std::string> default_lora_targets = {"q_proj", "v_proj"};  // PEFT's table
  LlamaNames names;
};

// The defaults of one config class where config.json leaves a key out.
struct LlamaDefaults {
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, max_position_embeddings;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
};

// Reads the keys llama, mistral, qwen2 and qwen3 share, under their HF names; each caller then
// reads what its class adds (biases, sliding window, q/k norms).
LlamaConfig read_llama_config(const JsonReader& config, const LlamaDefaults& defaults);
// `layer_types` ("full_attention" / "sliding_attention", one per layer) into config.sliding.
void read_layer_types(const JsonReader& json, LlamaConfig& config);
// Qwen2Config's window keys (use_sliding_window, sliding_window, max_window_layers, layer_types), as
// its __post_init__ applies them; qwen2 and qwen3 share them (models/qwen2.cpp).
void read_qwen_sliding_window(const JsonReader& json, LlamaConfig& config);
// Checks the shapes (positive sizes, heads dividing, even head_dim) naming the config key.
void check_llama_config(const JsonReader& json, const LlamaConfig& config);

std::unique_ptr<CausalLM> create_llama_model(LlamaConfig config);

}  // namespace lorakit
