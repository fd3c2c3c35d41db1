// Mistral (`model_type: mistral`), mirroring transformers' models/mistral/modular_mistral.py: Llama
// without any bias and with `sliding_window` on every layer when it is not null (MistralConfig's
// default is 4096, so a config that leaves the key out has one; later Mistral configs set null).
#include "core/error.h"
#include "models/llama.h"

namespace lorakit {

std::unique_ptr<CausalLM> create_mistral(const JsonReader& c) {
  // MistralConfig's defaults (configuration_mistral.py, the 7B shape).
  LlamaConfig cfg = read_llama_config(c, {.vocab_size = 32000, .hidden_size = 4096, .intermediate_size = 14336,
                                          .num_hidden_layers = 32, .num_attention_heads = 32,
                                          .max_position_embeddings = 4096 * 32});
  cfg.architecture = "MistralForCausalLM";
  if (!c.raw().contains("num_key_value_heads")) cfg.num_key_value_heads = 8;
  const bool null_window = c.raw().contains("sliding_window") && c.raw()["sliding_window"].is_null();
  cfg.sliding_window = null_window ? 0 : c.integer("sliding_window", 4096);
  cfg.sliding.assign(cfg.num_hidden_layers, cfg.sliding_window > 0);
  check_llama_config(c, cfg);
  return create_llama_model(std::move(cfg));
}

}  // namespace lorakit
