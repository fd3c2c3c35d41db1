// `lorakit inspect MODEL_DIR [--json]`: what a Hugging Face model directory holds and what a LoRA
// run on it would need, from config.json and the safetensors headers alone (no weights loaded).
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "checkpoints/hf_model.h"
#include "checkpoints/safetensors.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/format.h"

namespace lorakit::cli {

namespace {

int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F32" || dtype == "float32") return 4;
  if (dtype == "F64" || dtype == "float64") return 8;
  return 2;  // BF16/F16 and the usual config values bfloat16/float16
}

// PEFT's default targets for this model_type, matched on the module name's last component.
struct LoraEstimate {
  int64_t r, params, bytes;
};
// The base's Linear weights as QLoRA holds them (every Linear but the output layer in NF4, with
// double quantization), and the parameters that stay in the weights' dtype.
struct Nf4Estimate {
  int64_t quantized_params = 0, quantized_bytes = 0, other_params = 0;
};
Nf4Estimate estimate_nf4(Model& model) {
  struct Collector : ParamVisitor {
    Nf4Estimate e;
    void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>& shape) override {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      e.other_params += n;
    }
    void linear(const std::string& name, Linear& l) override {
      if (is_output_layer(name) || l.fan_in_fan_out) return ParamVisitor::linear(name, l);
      const int64_t n = l.in_features * l.out_features;
      e.quantized_params += n;
      e.quantized_bytes += quant::weight_4bit_bytes(n, /*double_quant=*/true);
      if (l.has_bias) tensor(name + ".bias", l.bias, {l.out_features});
    }
  } collector;
  model.visit(collector);
  return collector.e;
}

std::vector<LoraEstimate> estimate_lora(Model& model, const std::vector<std::string>& targets) {
  struct Collector : ParamVisitor {
    const std::vector<std::string>& targets;
    int64_t in_plus_out = 0;
    explicit Collector(const std::vector<std::string>& t) : targets(t) {}
    void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>&) override {}
    void linear(const std::string& name, Linear& l) override {
      std::string last = name.substr(name.rfind('.') + 1);
      if (std::find(targets.begin(), targets.end(), last) != targets.end()) in_plus_out += l.in_features + l.out_features;
    }
  } collector(targets);
  model.visit(collector);
  std::vector<LoraEstimate> out;
  for (int64_t r : {16, 32, 64}) {
    int64_t params = r * collector.in_plus_out;
    out.push_back({r, params, params * 16});  // fp32 weight + grad + AdamW exp_avg + exp_avg_sq
  }
  return out;
}

// Parameters of the tensors under `module` ("classifier", "score").
int64_t head_parameters(Model& model, const std::string& module) {
  struct Counter : ParamVisitor {
    std::string prefix;
    int64_t n = 0;
    void tensor(const std::string& name, at::Tensor&, const std::vector<int64_t>& shape) override {
      if (!name.starts_with(prefix)) return;
      int64_t k = 1;
      for (int64_t d : shape) k *= d;
      n += k;
    }
  } counter;
  counter.prefix = module + ".";
  model.visit(counter);
  return counter.n;
}

// A directory holds a classifier when it is an encoder (bert, electra: lorakit runs them as
// *ForSequenceClassification) or its config names a *ForSequenceClassification; its labels are
// id2label's, else num_labels, else transformers' default of 2.
std::unique_ptr<SequenceClassifier> classifier_of(const HfModelDir& hf) {
  const nlohmann::json& c = hf.config;
  const std::string model_type = c.value("model_type", "");
  const bool named = c.contains("architectures") && c["architectures"].is_array() && !c["architectures"].empty() &&
                     c["architectures"][0].is_string() &&
                     c["architectures"][0].get<std::string>().ends_with("ForSequenceClassification");
  if (!is_encoder_model_type(model_type) && !named) return nullptr;
  int64_t labels = 2;
  if (c.contains("id2label") && c["id2label"].is_object() && !c["id2label"].empty())
    labels = static_cast<int64_t>(c["id2label"].size());
  else if (c.contains("num_labels") && c["num_labels"].is_number_integer())
    labels = c["num_labels"].get<int64_t>();
  return create_classifier(JsonReader(c, hf.config_path.string()), labels);
}

void run_inspect(const std::string& dir, bool as_json) {
  HfModelDir hf = open_hf_model_dir(dir);
  std::unique_ptr<SequenceClassifier> classifier = classifier_of(hf);
  std::unique_ptr<CausalLM> lm = classifier ? nullptr : create_model(JsonReader(hf.config, hf.config_path.string()));
  Model* model = classifier ? static_cast<Model*>(classifier.get()) : lm.get();
  ArchSummary arch = model->summary();
  const int64_t num_parameters = model->num_parameters();
  // transformers' AutoModel of a classifier: the backbone without the head (BERT's pooler included).
  const int64_t head = classifier ? head_parameters(*model, classifier->head_module()) : 0;

  nlohmann::ordered_json weights = {{"present", !hf.weight_files.empty()}};
  std::string weight_dtype = arch.config_dtype.empty() ? "bfloat16" : arch.config_dtype;
  if (!hf.weight_files.empty()) {
    WeightCheck check = check_weights(*model, hf);
    bool new_head = false;
    if (classifier) {  // a base checkpoint: the head is new when training starts (every head tensor missing)
      const std::string prefix = classifier->head_module() + ".";
      const auto in_head = [&](const std::string& name) { return name.starts_with(prefix); };
      new_head = !check.missing.empty() && std::all_of(check.missing.begin(), check.missing.end(), in_head);
      if (new_head) check.missing.clear();
    }
    if (!check.ok()) throw Error(check.problems(dir));
    if (classifier) weights["head"] = new_head ? "none: initialised when training starts" : "present";
    weights["format"] = hf.weight_format;
    weights["tensors"] = check.tensors;
    weights["ignored"] = check.ignored;
    weights["dtype"] = fmt::format("{}", fmt::join(check.dtypes, "+"));
    weight_dtype = check.dtypes.size() == 1 ? *check.dtypes.begin() : "F32";
  }
  const int64_t weight_bytes = num_parameters * dtype_bytes(weight_dtype);
  std::vector<LoraEstimate> lora = estimate_lora(*model, arch.default_lora_targets);
  const Nf4Estimate nf4 = estimate_nf4(*model);
  const std::string unquantized_dtype = weight_dtype;  // embeddings, norms and the output layer stay as stored
  const int64_t nf4_bytes = nf4.quantized_bytes + nf4.other_params * dtype_bytes(unquantized_dtype);

  nlohmann::ordered_json out = {
      {"model_dir", dir},
      {"model_type", arch.model_type},
      {"architecture", arch.architecture},
      {"config", arch.facts},
      {"num_parameters", num_parameters},
      {"backbone_parameters", num_parameters - head},
      {"config_dtype", arch.config_dtype},
      {"weights", weights},
  };
  nlohmann::ordered_json memory = {{"weights_bytes", weight_bytes}, {"weights_dtype", weight_dtype}};
  for (const auto& e : lora)
    memory["lora"].push_back({{"r", e.r}, {"target_modules", arch.default_lora_targets}, {"trainable_params", e.params},
                              {"bytes", e.bytes}});
  memory["nf4"] = {{"weights_bytes", nf4_bytes},
                   {"quantized_params", nf4.quantized_params},
                   {"quantized_bytes", nf4.quantized_bytes},
                   {"unquantized_params", nf4.other_params},
                   {"unquantized_dtype", unquantized_dtype}};
  for (const auto& e : lora)
    memory["nf4"]["with_lora"].push_back({{"r", e.r}, {"bytes", nf4_bytes + e.bytes}});
  out["memory"] = memory;

  if (as_json) {
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("model        {}\n", dir);
  fmt::print("architecture {} ({})\n", arch.architecture, arch.model_type);
  for (const auto& [key, value] : arch.facts.items())
    fmt::print("  {:<26} {}\n", key, value.is_string() ? value.get<std::string>() : value.dump());
  fmt::print("parameters   {} (tied weights counted once, as transformers counts)\n", with_commas(num_parameters));
  if (classifier)
    fmt::print("             {} without the {} head ({} labels): AutoModel's count\n", with_commas(num_parameters - head),
               classifier->head_module(), classifier->num_labels());
  if (hf.weight_files.empty()) {
    fmt::print("weights      none in the directory (config only); config dtype {}\n",
               arch.config_dtype.empty() ? "unset" : arch.config_dtype);
  } else {
    fmt::print("weights      {}: {} tensors, {}, all present with the expected shapes\n", hf.weight_format,
               weights["tensors"].get<int64_t>(), weights["dtype"].get<std::string>());
    if (weights.contains("head")) fmt::print("             head: {}\n", weights["head"].get<std::string>());
    if (!weights["ignored"].empty())
      fmt::print("             ignored on load: {}\n", fmt::join(weights["ignored"].get<std::vector<std::string>>(), ", "));
  }
  fmt::print("memory       weights in {}: {}\n", weight_dtype, human_bytes(static_cast<double>(weight_bytes)));
  for (const auto& e : lora)
    fmt::print("             LoRA r={:<3} on {}: {} trainable params ({:.3f}%), {} for fp32 weights + grads + AdamW\n", e.r,
               fmt::join(arch.default_lora_targets, ","), with_commas(e.params),
               100.0 * static_cast<double>(e.params) / static_cast<double>(num_parameters),
               human_bytes(static_cast<double>(e.bytes)));
  fmt::print("QLoRA        model.quantization: nf4 (double quantization): {} Linear weights in {} ({:.2f} bits each), "
             "{} other parameters in {}: {}\n", with_commas(nf4.quantized_params),
             human_bytes(static_cast<double>(nf4.quantized_bytes)),
             8.0 * static_cast<double>(nf4.quantized_bytes) / static_cast<double>(std::max<int64_t>(1, nf4.quantized_params)),
             with_commas(nf4.other_params), unquantized_dtype, human_bytes(static_cast<double>(nf4_bytes)));
  for (const auto& e : lora)
    fmt::print("             with LoRA r={:<3} + AdamW: {}\n", e.r, human_bytes(static_cast<double>(nf4_bytes + e.bytes)));
  fmt::print("             (activations come on top and depend on batch size and sequence length)\n");
}

}  // namespace

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Describe a Hugging Face model directory: architecture, parameter count, "
                                            "weights check and LoRA memory");
  static std::string dir;
  static bool as_json = false;
  cmd->add_option("MODEL_DIR", dir, "model directory with config.json (weights optional)")->required();
  cmd->add_flag("--json", as_json, "print one JSON object instead of text");
  cmd->callback([] { run_inspect(dir, as_json); });
}

}  // namespace lorakit::cli
