// The causal-LM interface every architecture implements, the visitor that lists its tensors by
// their Hugging Face names, and the registry of architectures keyed by config.json's model_type.
// Models do no file I/O: checkpoints/ reads config.json and safetensors and fills the tensors.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "core/json_reader.h"
#include "models/layers.h"

namespace lorakit {

// Walks a model's parameters in HF order. `shape` is what the architecture expects; `slot` is the
// tensor to fill (undefined until a checkpoint is loaded). Tied weights are visited once.
class ParamVisitor {
 public:
  virtual ~ParamVisitor() = default;
  virtual void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>& shape) = 0;
  // A projection, by module name (e.g. "model.layers.0.self_attn.q_proj"); LoRA matches these.
  virtual void linear(const std::string& name, Linear& linear);
};

// Facts `inspect` prints, in HF's words.
struct ArchSummary {
  std::string model_type;
  std::string architecture;  // e.g. "Exaone4ForCausalLM"
  std::string config_dtype;  // config's dtype / torch_dtype, "" when absent
  nlohmann::ordered_json facts;  // key -> value in print order: layers, heads, head_dim, ...
  std::vector<std::string> default_lora_targets;  // PEFT's defaults for this model_type
};

// Keys and values of every attention layer, for generation. Rows of a batch share one length:
// shorter prompts are left-padded and their padding hidden by the layout's attention mask.
struct KVCache {
  std::vector<at::Tensor> keys, values;  // per layer: (B, Hkv, S, D)
  std::vector<at::Tensor> state;         // recurrent models (rwkv): their per-layer state instead
  int64_t length = 0;                    // tokens already in the cache
};

// What every model is, whatever its head: its HF facts, its tensors by HF name, the checkpoint
// tensors it drops, and activation recompute. CausalLM (next-token logits) and SequenceClassifier
// (models/classifier.h: one row of label logits per sequence) build on it; LoRA and the checkpoint
// loader see only this.
class Model {
 public:
  virtual ~Model() = default;

  virtual ArchSummary summary() const = 0;
  virtual void visit(ParamVisitor& visitor) = 0;
  // Checkpoint tensors this architecture knows and drops (legacy buffers, a tied lm_head copy).
  virtual bool ignores_checkpoint_tensor(const std::string& name) const { return false; }

  // Activation recompute per decoder layer: less memory for a second forward of each layer.
  virtual void set_activation_recompute(bool on) { recompute_ = on; }
  bool activation_recompute() const { return recompute_; }

  // Exact parameter count from the architecture (tied weights once), without loading anything.
  int64_t num_parameters();

 protected:
  bool recompute_ = false;
};

class CausalLM : public Model {
 public:
  virtual int64_t vocab_size() const = 0;
  // Whether the layout's attention mask hides padding. A recurrent model (rwkv) reads every token in
  // order: right padding is harmless, left padding and packed rows are not.
  virtual bool masks_padding() const { return true; }

  // input_ids (B, T) int64 -> embeddings (B, T, C)
  virtual at::Tensor embed(const at::Tensor& input_ids) const = 0;
  // embeddings (B, T, C) and their layout (padding, positions, packed examples) -> the final hidden
  // states (B, T, C), after the last norm. With a cache: the new tokens come after cache->length
  // (the layout's attention mask, if any, covers all past + T keys) and their keys/values are appended.
  virtual at::Tensor forward_hidden(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const = 0;
  // hidden (..., C) -> logits (..., V): lm_head, or the tied embeddings.
  virtual at::Tensor lm_head(const at::Tensor& hidden) const = 0;

  // embeddings (B, T, C) -> logits (B, T, V).
  at::Tensor forward_embeds(const at::Tensor& embeds, const TokenLayout& layout, KVCache* cache) const {
    return lm_head(forward_hidden(embeds, layout, cache));
  }
  at::Tensor forward_embeds(const at::Tensor& embeds, const TokenLayout& layout) const {
    return forward_embeds(embeds, layout, nullptr);
  }
  at::Tensor forward(const at::Tensor& input_ids, const TokenLayout& layout) const {
    return forward_embeds(embed(input_ids), layout, nullptr);
  }
  // input_ids (B, T) after the cached tokens -> logits (B, T, V); the cache grows by T.
  at::Tensor forward_cached(const at::Tensor& input_ids, KVCache& cache, const TokenLayout& layout = {}) const {
    return forward_embeds(embed(input_ids), layout, &cache);
  }
};

// RoPE settings from either config shape: transformers 4.x (`rope_theta` + `rope_scaling`, whose
// type key may be `type`) or 5.x (one `rope_parameters` object). llama3 and yarn default their
// original_max_position_embeddings to `max_position_embeddings`, as HF's standardize_rope_params.
// A size from config.json, checked before anything is sized by it: a positive integer, at most
// kMaxLayers for a layer count (num_hidden_layers, num_layers, n_layer) and kMaxDimension for any
// other size (far above every released model; a hostile 10^12 would size vectors and loops).
constexpr int64_t kMaxLayers = 1024, kMaxDimension = int64_t{1} << 22;
void check_config_size(const JsonReader& config, const char* key, int64_t value);

RopeConfig read_rope_config(const JsonReader& config, double default_theta, double default_partial_rotary_factor,
                            int64_t max_position_embeddings);
// `dtype` (5.x) or `torch_dtype` (4.x), "" when neither is there.
std::string read_config_dtype(const JsonReader& config);

// Whether a Linear module is the output layer (lm_head, GPT-NeoX's embed_out): LoRA's all-linear
// and 4-bit quantization leave it out, as PEFT and transformers do.
bool is_output_layer(const std::string& module_name);

struct Architecture {
  std::string model_type;
  std::function<std::unique_ptr<CausalLM>(const JsonReader& config)> create;
};

const std::vector<Architecture>& architectures();
std::vector<std::string> known_model_types();
// Builds the model a config.json describes; an unknown model_type lists the known ones.
std::unique_ptr<CausalLM> create_model(const JsonReader& config);

}  // namespace lorakit
