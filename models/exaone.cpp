// EXAONE 3.0 / 3.5 (`model_type: exaone`, ExaoneForCausalLM). transformers has no class for it (the
// hub repos ship remote code); vLLM, TRT-LLM and llama.cpp implement it as Llama, which it is under
// other names: config keys `num_layers`, `layer_norm_epsilon`, `activation_function`, and tensors
// `transformer.wte`, `transformer.h.N.{ln_1, attn.attention.{q,k,v,out}_proj, ln_2,
// mlp.{c_fc_0, c_fc_1, c_proj}}`, `transformer.ln_f`. No biases; embeddings tied unless the config
// says otherwise (the PretrainedConfig default). The tests' oracle is transformers' LlamaForCausalLM
// with the same weights renamed. PEFT has no default targets for exaone; lorakit's are q_proj, v_proj.
#include "core/error.h"
#include "models/llama.h"

namespace lorakit {

std::unique_ptr<CausalLM> create_exaone(const JsonReader& c) {
  // ExaoneConfig's defaults (the hub's configuration_exaone.py).
  LlamaConfig cfg;
  cfg.model_type = "exaone";
  cfg.architecture = "ExaoneForCausalLM";
  cfg.vocab_size = c.integer("vocab_size", 102400);
  cfg.hidden_size = c.integer("hidden_size", 2048);
  cfg.intermediate_size = c.integer("intermediate_size", 4 * cfg.hidden_size);
  cfg.num_hidden_layers = c.integer("num_layers", 32);
  cfg.num_attention_heads = c.integer("num_attention_heads", 32);
  cfg.num_key_value_heads = c.integer("num_key_value_heads", cfg.num_attention_heads);
  cfg.max_position_embeddings = c.integer("max_position_embeddings", 2048);
  cfg.hidden_act = c.string("activation_function", "silu");
  cfg.rms_norm_eps = c.number("layer_norm_epsilon", 1e-5);
  cfg.tie_word_embeddings = c.boolean("tie_word_embeddings", true);
  cfg.dtype = read_config_dtype(c);
  if (cfg.num_attention_heads > 0 && !c.has("head_dim") && cfg.hidden_size % cfg.num_attention_heads != 0)
    c.fail_key("hidden_size", fmt::format("a multiple of num_attention_heads ({})", cfg.num_attention_heads));
  cfg.head_dim = cfg.num_attention_heads > 0 ? c.integer("head_dim", cfg.hidden_size / cfg.num_attention_heads) : 0;
  cfg.rope = read_rope_config(c, 10000.0, 1.0, cfg.max_position_embeddings);
  if (c.has("rotary_pct") && c.number("rotary_pct") != 1.0)
    c.fail_key("rotary_pct", "1.0 (EXAONE 3 rotates the whole head; a partial rotary is not implemented)");
  cfg.sliding.assign(std::max<int64_t>(cfg.num_hidden_layers, 0), false);
  cfg.names = {.embed_tokens = "transformer.wte", .layers = "transformer.h", .norm = "transformer.ln_f",
               .input_layernorm = "ln_1", .post_attention_layernorm = "ln_2", .self_attn = "attn.attention",
               .q_proj = "q_proj", .k_proj = "k_proj", .v_proj = "v_proj", .o_proj = "out_proj",
               .mlp = "mlp", .gate_proj = "c_fc_0", .up_proj = "c_fc_1", .down_proj = "c_proj"};
  check_llama_config(c, cfg);
  return create_llama_model(std::move(cfg));
}

}  // namespace lorakit
