// Gemma (`model_type: gemma`; gemma-ko-v01 has gemma-2b's shape), mirroring transformers'
// models/gemma/modeling_gemma.py: Llama's layer layout with an RMSNorm that multiplies by
// (1 + weight) in float32, embeddings scaled by sqrt(hidden_size) rounded to the model dtype (inside
// the embedding, so inputs_embeds arrive scaled), GeGLU with tanh-approximated GELU, head_dim 256 and
// tied embeddings by default. transformers 5 reads `hidden_act: "gelu"` (the official files' value)
// as gelu_pytorch_tanh; so does lorakit.
#include "core/error.h"
#include "models/llama.h"

namespace lorakit {

std::unique_ptr<CausalLM> create_gemma(const JsonReader& c) {
  // GemmaConfig's defaults (configuration_gemma.py, the 7B shape).
  LlamaConfig cfg = read_llama_config(c, {.vocab_size = 256000, .hidden_size = 3072, .intermediate_size = 24576,
                                          .num_hidden_layers = 28, .num_attention_heads = 16,
                                          .max_position_embeddings = 8192, .tie_word_embeddings = true});
  cfg.architecture = "GemmaForCausalLM";
  cfg.head_dim = c.integer("head_dim", 256);
  cfg.hidden_act = c.string("hidden_act", "gelu_pytorch_tanh");
  if (cfg.hidden_act == "gelu") cfg.hidden_act = "gelu_pytorch_tanh";
  cfg.qkv_bias = cfg.o_bias = c.boolean("attention_bias", false);
  if (c.boolean("use_bidirectional_attention", false))
    c.fail_key("use_bidirectional_attention", "false or absent (lorakit trains causal LMs)");
  cfg.gemma_norm = true;
  cfg.scale_embeddings = true;
  check_llama_config(c, cfg);
  return create_llama_model(std::move(cfg));
}

}  // namespace lorakit
