// LoRA with PEFT's names and semantics (architectures.md section 4): y = W x + scaling * B A dropout(x),
// A (r, in) Kaiming-uniform and B (out, r) zero at start, scaling = lora_alpha / r (or / sqrt(r) with
// use_rslora). inject_lora() matches target_modules against the model's Linear names the way PEFT
// does, freezes the base and attaches adapters through the Linear choke point. No file I/O here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/model.h"

namespace lorakit::lora {

// PEFT's target_modules: a list of names (a module matches if its name equals one or ends with
// "." + one), one regex string (re.fullmatch on the full name), or "all-linear".
struct TargetModules {
  std::vector<std::string> names;
  std::string regex;
  bool empty() const { return names.empty() && regex.empty(); }
};

// The largest rank lorakit accepts (PEFT sets none; released adapters use 8 to 256): a rank is
// allocated as r x in_features per module before any weight is read.
constexpr int64_t kMaxRank = 1 << 16;

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0;
  TargetModules target_modules;  // empty: the architecture's default
  bool use_rslora = false;
  std::string init_lora_weights = "true";  // "true" (Kaiming A, zero B) | "gaussian" | "false"
  std::string bias = "none";
  // PEFT's task_type ("CAUSAL_LM" or "SEQ_CLS") and modules_to_save: modules trained fully and saved
  // whole next to the LoRA pairs. SEQ_CLS sets ["classifier", "score"], the classification heads.
  // Not recipe fields: the recipe's `task` decides them.
  std::string task_type = "CAUSAL_LM";
  std::vector<std::string> modules_to_save;
  double scaling() const;
};

// The recipe's `lora` section, PEFT key names, each declared once.
template <typename Visitor>
void visit_fields(LoraConfig& c, Visitor&& v) {
  v("r", c.r, "LoRA rank (16, 32, 64, ...)");
  v("lora_alpha", c.lora_alpha, "scaling numerator: scaling = lora_alpha / r (alpha = 2r keeps the scale fixed)");
  v("lora_dropout", c.lora_dropout, "dropout on the LoRA branch input");
  v("target_modules", c.target_modules, "module names (list), a regex (string) or \"all-linear\"; default per architecture");
  v("use_rslora", c.use_rslora, "scaling = lora_alpha / sqrt(r)");
  v("init_lora_weights", c.init_lora_weights, "true (PEFT default), gaussian, or false");
  v("bias", c.bias, "only \"none\" is supported");
}

// One LoRA pair on one Linear. Parameters are float32 (PEFT's autocast_adapter_dtype).
class LoraLinear : public LinearAdapter {
 public:
  LoraLinear(int64_t in, int64_t out, const LoraConfig& config);
  at::Tensor delta(const at::Tensor& x) const override;  // (..., in) -> (..., out)

  at::Tensor lora_A;  // (r, in)
  at::Tensor lora_B;  // (out, r)
  double scaling;
  double dropout;
  bool training = true;
};

struct Adapter {
  std::string module;  // HF module name, e.g. "model.layers.0.self_attn.q_proj"
  std::shared_ptr<LoraLinear> lora;
};

// The adapters of one model, in the model's module order.
struct LoraModel {
  LoraConfig config;
  std::vector<Adapter> adapters;
  // The modules_to_save tensors, trained fully: (HF tensor name "score.weight", the model's tensor).
  std::vector<std::pair<std::string, at::Tensor>> saved_modules;
  int64_t trainable_parameters = 0;
  int64_t all_parameters = 0;  // base + LoRA, as PEFT counts
  bool fan_in_fan_out = false;  // the adapted modules store (in, out) weights (GPT-2's Conv1D)

  // PEFT's print_trainable_parameters() line.
  std::string trainable_line() const;
  // The matched modules grouped by their last name: "LoRA on 8 modules (r=8, lora_alpha=16, scaling 2):
  // q_proj x4, v_proj x4; first model.layers.0.self_attn.q_proj, last model.layers.3.self_attn.v_proj".
  std::string modules_line() const;
  // PEFT's state-dict keys: "base_model.model.<module>.lora_A.weight" -> tensor, then the
  // modules_to_save tensors as "base_model.model.score.weight".
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  void set_training(bool training);
};

// Matches, freezes the base, attaches adapters (initialised from `generator_seed`). A target that
// matches nothing is an error listing the model's Linear names. The tensors of modules_to_save stay
// trainable (float32) and are never LoRA targets, as in PEFT; an entry matching nothing is an error.
LoraModel inject_lora(Model& model, LoraConfig config, uint64_t seed);

// Whether the module that holds tensor `name` ("classifier.dense.weight"), or one of its parents, is
// one of `modules` (a name equal to an entry or ending with "." + entry, PEFT's match).
bool in_modules(const std::string& name, const std::vector<std::string>& modules);

// The module names `targets` selects among `linears` (PEFT's rules); "all-linear" skips the output
// layer (lm_head / embed_out).
std::vector<std::string> match_targets(const TargetModules& targets, const std::vector<std::string>& linears);

}  // namespace lorakit::lora
