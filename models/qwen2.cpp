// Qwen2 (`model_type: qwen2`; Qwen1.5 and Qwen2.5 too), mirroring transformers'
// models/qwen2/modular_qwen2.py: Llama with biases on q/k/v (always; none on o_proj or the MLP)
// and, only when `use_sliding_window` is true, a sliding window on the layers `layer_types` names
// (by default those from `max_window_layers` on). Qwen2.5's configs carry a `sliding_window` value
// with use_sliding_window false: transformers then uses none, and so does lorakit.
#include "core/error.h"
#include "models/llama.h"

namespace lorakit {

// Qwen2Config.__post_init__'s window logic, shared with qwen3 (models/qwen3.cpp).
void read_qwen_sliding_window(const JsonReader& c, LlamaConfig& cfg) {
  const bool use = c.boolean("use_sliding_window", false);
  const bool null_window = c.raw().contains("sliding_window") && c.raw()["sliding_window"].is_null();
  cfg.sliding_window = use && !null_window ? c.integer("sliding_window", 4096) : 0;
  if (c.has("layer_types")) {
    read_layer_types(c, cfg);
    for (bool sliding : cfg.sliding)
      if (sliding && cfg.sliding_window == 0)
        c.fail_key("layer_types", "no 'sliding_attention' layer while use_sliding_window is false or sliding_window null");
  } else {
    const int64_t max_window_layers = c.integer("max_window_layers", 28);
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) cfg.sliding[i] = cfg.sliding_window > 0 && i >= max_window_layers;
  }
}

std::unique_ptr<CausalLM> create_qwen2(const JsonReader& c) {
  // Qwen2Config's defaults (configuration_qwen2.py).
  LlamaConfig cfg = read_llama_config(c, {.vocab_size = 151936, .hidden_size = 4096, .intermediate_size = 22016,
                                          .num_hidden_layers = 32, .num_attention_heads = 32,
                                          .max_position_embeddings = 32768});
  cfg.architecture = "Qwen2ForCausalLM";
  cfg.qkv_bias = true;
  read_qwen_sliding_window(c, cfg);
  check_llama_config(c, cfg);
  return create_llama_model(std::move(cfg));
}

}  // namespace lorakit
