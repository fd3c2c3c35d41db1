// PEFT adapter directories, in and out: adapter_model.safetensors (float32, keys
// "base_model.model.<module>.lora_A.weight") and adapter_config.json, as PeftModel.save_pretrained
// writes them and PeftModel.from_pretrained reads them (architectures.md 4.9-4.11).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "lora/lora.h"
#include "models/model.h"

namespace lorakit {

// Writes `dir` atomically (a temporary sibling directory renamed into place). `base_model` goes to
// base_model_name_or_path. An existing `dir` is an error unless `overwrite`.
void save_peft_adapter(const std::filesystem::path& dir, const lora::LoraModel& lora, const std::string& base_model,
                       bool overwrite = false);

// adapter_config.json -> LoraConfig (errors name the file and key; only LoRA adapters). task_type
// and modules_to_save come along: a SEQ_CLS adapter holds its classification head whole.
lora::LoraConfig read_peft_adapter_config(const std::filesystem::path& dir);

// Copies the adapter's tensors into `lora`'s parameters. Every adapter parameter must be in the file
// and every LoRA tensor in the file must belong to an adapter; shapes must agree. One message lists
// every problem with module names and both shapes.
void load_peft_adapter_weights(const std::filesystem::path& dir, lora::LoraModel& lora);

// All of it for a model about to use an adapter: reads adapter_config.json, refuses an adapter whose
// base_model_name_or_path is a local model of another model_type, injects and loads the weights, and
// sets the adapters to inference (no dropout).
lora::LoraModel apply_peft_adapter(Model& model, const std::filesystem::path& dir);

// A classifier adapter's labels, in id order, and the pad id its batches were padded with (a decoder
// finds each row's last token by it): labels.json beside the adapter files (PEFT ignores it). merge
// writes them into config.json as transformers does (id2label, label2id, pad_token_id).
struct ClassifierLabels {
  std::vector<std::string> labels;
  int64_t pad_token_id = 0;
};
void save_classifier_labels(const std::filesystem::path& adapter_dir, const std::vector<std::string>& labels, int64_t pad_token_id);
// The labels of an adapter directory; none (a PEFT adapter trained elsewhere) is an error with a hint.
ClassifierLabels read_classifier_labels(const std::filesystem::path& adapter_dir);

}  // namespace lorakit
