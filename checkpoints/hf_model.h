// Hugging Face model directories in: config.json, and weights as model.safetensors or shards
// listed in model.safetensors.index.json. Checks a checkpoint against the architecture from the
// safetensors headers alone (every tensor present, none unexpected, shapes, dtypes) and loads it.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "models/classifier.h"
#include "models/model.h"
#include "quant/bnb_4bit.h"

namespace lorakit {

struct HfModelDir {
  std::filesystem::path dir;
  std::filesystem::path config_path;
  nlohmann::json config;
  std::vector<std::filesystem::path> weight_files;  // empty when the directory has no weights
  std::string weight_format;                        // "model.safetensors", "sharded (N files)" or ""
};

// Reads config.json and finds the weight files; errors name the file and what is wrong.
HfModelDir open_hf_model_dir(const std::filesystem::path& dir);

struct WeightCheck {
  int64_t tensors = 0;                    // tensors in the files
  std::vector<std::string> missing;       // expected by the architecture, not in the files
  std::vector<std::string> unexpected;    // in the files, unknown to the architecture
  std::vector<std::string> mismatched;    // "name: file [a, b] vs expected [c, d]"
  std::vector<std::string> ignored;       // known checkpoint quirks dropped on load
  std::set<std::string> dtypes;           // of the expected tensors, as safetensors names them
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string problems(const std::string& where) const;  // all of them, in one message
};

// Compares the files' headers with the architecture without reading tensor data. A 4-bit Linear
// weight counts as its packed tensor and statistics (their shapes are checked on load).
WeightCheck check_weights(Model& model, const HfModelDir& hf);

// config.json's quantization_config, as transformers writes it for a bitsandbytes 4-bit model;
// `skip_modules` empty means transformers' default (the output layer only).
nlohmann::json bnb_4bit_quantization_config(const quant::QuantizeConfig& config, at::ScalarType compute_dtype,
                                            const std::string& output_layer);

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  quant::QuantizeConfig quantize;  // 4-bit Linear weights (QLoRA), quantized tensor by tensor as read

  LoadOptions(at::ScalarType dtype = at::kFloat, at::Device device = at::kCPU, quant::QuantizeConfig quantize = {})
      : dtype(dtype), device(device), quantize(std::move(quantize)) {}
};

// Builds the model config.json describes and fills it from the safetensors files. Linear weights
// stored in 4 bits (a directory transformers saved with load_in_4bit, like the *-bnb-4bit repos)
// load as such; with options.quantize every other Linear but the output layer is quantized as it is
// read, so the 16-bit model never sits in memory whole.

std::unique_ptr<CausalLM> load_hf_model(const std::filesystem::path& dir, const LoadOptions& options);

// A classifier's labels, in id order: config.json's id2label when the directory holds a trained
// classifier (architectures *ForSequenceClassification), else empty.
std::vector<std::string> classifier_labels(const HfModelDir& hf);
// An id2label object ({"0": "approve", "1": "reject"}) as names in id order; `where` names the file.
std::vector<std::string> labels_from_id2label(const nlohmann::json& id2label, const std::string& where);

struct LoadedClassifier {
  std::unique_ptr<SequenceClassifier> model;
  bool head_initialized = false;  // the checkpoint had no head (a base model): it was initialised from the seed
};

// The *ForSequenceClassification of the directory's model with `num_labels` labels: the backbone
// from the checkpoint (its output layer or pre-training heads dropped, as transformers drops them),
// the head from it too when it has one of that shape, else initialised as transformers does.
LoadedClassifier load_hf_classifier(const std::filesystem::path& dir, const LoadOptions& options, int64_t num_labels,
                                    std::optional<int64_t> pad_token_id, uint64_t seed);

}  // namespace lorakit
