// Qwen3 (`model_type: qwen3`), mirroring transformers' models/qwen3/modular_qwen3.py: Qwen2's
// sliding-window keys, but `attention_bias` as a real flag (q/k/v/o, false by default), head_dim 128
// by default whatever hidden_size is, and an RMSNorm over head_dim on each head of q and of k
// (q_norm, k_norm) after the projections, before RoPE and the cache.
#include "core/error.h"
#include "models/llama.h"

namespace lorakit {

std::unique_ptr<CausalLM> create_qwen3(const JsonReader& c) {
  // Qwen3Config's defaults (configuration_qwen3.py).
  LlamaConfig cfg = read_llama_config(c, {.vocab_size = 151936, .hidden_size = 4096, .intermediate_size = 22016,
                                          .num_hidden_layers = 32, .num_attention_heads = 32,
                                          .max_position_embeddings = 32768});
  cfg.architecture = "Qwen3ForCausalLM";
  cfg.head_dim = c.integer("head_dim", 128);
  cfg.qkv_bias = cfg.o_bias = c.boolean("attention_bias", false);
  cfg.qk_norm = true;
  read_qwen_sliding_window(c, cfg);
  check_llama_config(c, cfg);
  return create_llama_model(std::move(cfg));
}

}  // namespace lorakit
