#include "checkpoints/peft_adapter.h"

#include <fstream>
#include <unistd.h>

#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"
#include "core/files.h"
#include "core/json_reader.h"
#include "models/classifier.h"

namespace lorakit {
namespace {

namespace fs = std::filesystem;

nlohmann::json target_modules_json(const lora::TargetModules& targets) {
  if (!targets.regex.empty()) return targets.regex;
  if (targets.names.size() == 1 && targets.names[0] == "all-linear") return "all-linear";
  return targets.names;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

void save_peft_adapter(const fs::path& dir, const lora::LoraModel& lora, const std::string& base_model, bool overwrite) {
  if (fs::exists(dir) && !overwrite)
    fail("{}: already exists; hint: choose another output directory or pass --overwrite", dir.string());
  const fs::path tmp = dir.parent_path() / fmt::format(".{}.tmp-{}", dir.filename().string(), ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : lora.named_parameters())
    tensors.emplace_back(name, tensor.detach().to(at::kCPU, at::kFloat).contiguous());
  save_safetensors(tmp / "adapter_model.safetensors", tensors, {{"format", "pt"}});
  // Only keys that exist since PEFT 0.10, so every PEFT version loads it (architectures.md 4.10).
  nlohmann::json config = {
      {"peft_type", "LORA"}, {"task_type", lora.config.task_type}, {"base_model_name_or_path", base_model},
      {"revision", nullptr}, {"inference_mode", true}, {"r", lora.config.r}, {"lora_alpha", lora.config.lora_alpha},
      {"lora_dropout", lora.config.lora_dropout}, {"target_modules", target_modules_json(lora.config.target_modules)},
      {"bias", "none"}, {"fan_in_fan_out", lora.fan_in_fan_out}, {"use_rslora", lora.config.use_rslora}, {"use_dora", false},
      {"init_lora_weights", true},
      {"modules_to_save", lora.config.modules_to_save.empty() ? nlohmann::json() : nlohmann::json(lora.config.modules_to_save)}, {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr}, {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()}, {"megatron_config", nullptr}, {"megatron_core", "megatron.core"},
      {"loftq_config", nlohmann::json::object()}, {"layer_replication", nullptr}};
  std::ofstream(tmp / "adapter_config.json") << config.dump(2) << "\n";  // nlohmann sorts keys, as PEFT does
  if (fs::exists(dir)) fs::remove_all(dir);
  fs::rename(tmp, dir);
}

lora::LoraConfig read_peft_adapter_config(const fs::path& dir) {
  return with_json_errors((dir / "adapter_config.json").string(), [&]() -> lora::LoraConfig {
    const fs::path path = dir / "adapter_config.json";
    if (!fs::exists(path))
      fail("{}: no adapter_config.json; hint: pass the directory PeftModel.save_pretrained or lorakit wrote", dir.string());
    const nlohmann::json json = JsonReader::parse_file(path.string());
    const JsonReader config(json, path.string());
    const std::string type = config.string("peft_type", "LORA");
    if (type != "LORA") fail("{}: peft_type '{}' is not supported (lorakit reads LoRA adapters)", path.string(), type);
    if (config.boolean("use_dora", false)) fail("{}: DoRA adapters (use_dora: true) are not supported", path.string());
    // fan_in_fan_out is not read: like PEFT (which corrects it with a warning), lorakit takes it from the
    // module (GPT-2's Conv1D stores (in, out)); lora_A / lora_B have the same shapes either way.
    lora::LoraConfig out;
    out.r = config.integer("r", 8);
    out.lora_alpha = config.number("lora_alpha", 8);
    out.lora_dropout = config.number("lora_dropout", 0);
    out.use_rslora = config.boolean("use_rslora", false);
    out.task_type = json.contains("task_type") && json["task_type"].is_string() ? json["task_type"].get<std::string>() : "";
    if (!out.task_type.empty() && out.task_type != "CAUSAL_LM" && out.task_type != "SEQ_CLS")
      fail("{}: task_type '{}' is not supported (lorakit reads CAUSAL_LM and SEQ_CLS adapters)", path.string(), out.task_type);
    if (json.contains("modules_to_save") && json["modules_to_save"].is_array())
      out.modules_to_save = config.string_list("modules_to_save");
    const auto& targets = json.contains("target_modules") ? json["target_modules"] : nlohmann::json();
    if (targets.is_string())
      out.target_modules.regex = targets.get<std::string>();
    else if (targets.is_array())
      out.target_modules.names = targets.get<std::vector<std::string>>();
    for (const char* key : {"rank_pattern", "alpha_pattern"})
      if (json.contains(key) && json[key].is_object() && !json[key].empty())
        fail("{}: {} is not supported yet (per-module ranks or alphas)", path.string(), key);
    return out;
  });
}

void load_peft_adapter_weights(const fs::path& dir, lora::LoraModel& lora) {
  const fs::path path = dir / "adapter_model.safetensors";
  if (!fs::exists(path))
    fail("{}: no adapter_model.safetensors{}", dir.string(),
         fs::exists(dir / "adapter_model.bin") ? " (only adapter_model.bin: save with safe_serialization=True)" : "");
  const SafetensorsFile file(path);
  std::vector<std::string> problems;
  std::vector<std::string> used;
  c10::NoGradGuard no_grad;
  for (auto& [name, parameter] : lora.named_parameters()) {
    const SafetensorsEntry* entry = file.find(name);
    if (!entry) {
      problems.push_back(fmt::format("missing {}", name));
      continue;
    }
    used.push_back(name);
    const std::vector<int64_t> want(parameter.sizes().begin(), parameter.sizes().end());
    if (entry->shape != want) {
      problems.push_back(fmt::format("{}: the adapter has {}, this model needs {}", name, shape_text(entry->shape),
                                     shape_text(want)));
      continue;
    }
    at::Tensor target = parameter;
    target.copy_(file.tensor(name));
  }
  for (const auto& entry : file.entries())
    if (std::find(used.begin(), used.end(), entry.name) == used.end())
      problems.push_back(fmt::format("unexpected {} (no such LoRA module in this model)", entry.name));
  if (!problems.empty()) {
    std::string list;
    for (size_t i = 0; i < problems.size() && i < 12; ++i) list += (i ? "; " : "") + problems[i];
    if (problems.size() > 12) list += fmt::format("; and {} more", problems.size() - 12);
    fail("{}: the adapter does not fit this model ({} problems): {}; hint: was it trained on another base model "
         "or with other target_modules?", path.string(), problems.size(), list);
  }
}

}  // namespace lorakit

namespace lorakit {

namespace {

// The rank adapter_config.json claims must be the weights' own: inject_lora allocates r x in_features
// for every module before a weight is read, so a hostile r of 10^12 is caught here.
void check_adapter_rank(const fs::path& dir, int64_t r) {
  const fs::path path = dir / "adapter_model.safetensors";
  if (!fs::exists(path)) return;  // load_peft_adapter_weights says what is missing
  const SafetensorsFile file(path);
  for (const auto& entry : file.entries())
    if (entry.name.find(".lora_A.") != std::string::npos && (entry.shape.size() != 2 || entry.shape[0] != r))
      fail("{}: r is {} in adapter_config.json, but {} in adapter_model.safetensors has shape {}; hint: the two files "
           "come from different adapters", dir.string(), r, entry.name, shape_text(entry.shape));
}

}  // namespace

lora::LoraModel apply_peft_adapter(Model& model, const std::filesystem::path& dir) {
  return with_json_errors(dir.string(), [&]() -> lora::LoraModel {
    lora::LoraConfig config = read_peft_adapter_config(dir);
    const nlohmann::json adapter_config = JsonReader::parse_file((dir / "adapter_config.json").string());
    const std::string base = adapter_config.value("base_model_name_or_path", nlohmann::json()).is_string()
                                 ? adapter_config["base_model_name_or_path"].get<std::string>() : "";
    const std::string model_type = model.summary().model_type;
    if (!base.empty() && std::filesystem::exists(std::filesystem::path(base) / "config.json")) {
      const nlohmann::json base_config = JsonReader::parse_file((std::filesystem::path(base) / "config.json").string());
      const std::string base_type = base_config.value("model_type", "");
      if (!base_type.empty() && base_type != model_type)
        fail("{}: this adapter was trained on a {} model ({}), but the model here is {}; hint: pass the base model the "
             "adapter was trained on", dir.string(), base_type, base, model_type);
    }
    const bool classifier = dynamic_cast<SequenceClassifier*>(&model) != nullptr;
    if (config.task_type == "SEQ_CLS" && !classifier)
      fail("{}: a SEQ_CLS adapter (a sequence classifier with its head), applied to a causal LM; hint: use it through a "
           "classifier: task: sequence_classification in the recipe, or `lorakit eval` with the classifier's labels",
           dir.string());
    if (config.task_type == "CAUSAL_LM" && classifier)
      fail("{}: a CAUSAL_LM adapter, applied to a sequence classifier; hint: pass a SEQ_CLS adapter (trained with "
           "task: sequence_classification)", dir.string());
    check_adapter_rank(dir, config.r);
    lora::LoraModel lora = lora::inject_lora(model, config, 0);
    load_peft_adapter_weights(dir, lora);
    lora.set_training(false);
    return lora;
  });
}

}  // namespace lorakit

namespace lorakit {

void save_classifier_labels(const std::filesystem::path& dir, const std::vector<std::string>& labels, int64_t pad_token_id) {
  nlohmann::json j = {{"id2label", nlohmann::json::object()}, {"label2id", nlohmann::json::object()}, {"pad_token_id", pad_token_id}};
  for (size_t i = 0; i < labels.size(); ++i) {
    j["id2label"][std::to_string(i)] = labels[i];
    j["label2id"][labels[i]] = i;
  }
  write_text_atomically(dir / "labels.json", j.dump(2) + "\n");
}

ClassifierLabels read_classifier_labels(const std::filesystem::path& dir) {
  const fs::path path = dir / "labels.json";
  if (!fs::exists(path))
    fail("{}: no labels.json (the classifier's label names); hint: an adapter trained elsewhere needs one: "
         "{{\"id2label\": {{\"0\": \"approve\", \"1\": \"reject\"}}, \"pad_token_id\": 0}}", dir.string());
  return with_json_errors(path.string(), [&] {
    const nlohmann::json j = JsonReader::parse_file(path.string());
    ClassifierLabels out;
    out.labels = labels_from_id2label(j.at("id2label"), path.string());
    out.pad_token_id = j.value("pad_token_id", 0);
    return out;
  });
}

}  // namespace lorakit
