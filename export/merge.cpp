#include "export/merge.h"

#include <unistd.h>

#include <cmath>
#include <fstream>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones_like.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"
#include "core/json_reader.h"
#include "device/cuda.h"
#include "device/dtype.h"
#include "export/model_dir.h"

namespace lorakit::exports {
namespace {

namespace fs = std::filesystem;

// --dtype, else the base config's dtype (float32 when it names none).
at::ScalarType output_dtype(const std::string& name, const nlohmann::json& config) {
  if (!name.empty()) return parse_dtype(name, "--dtype");
  return parse_dtype(dtype_name_from_hf(config.value("dtype", config.value("torch_dtype", std::string("float32")))), "--dtype");
}

}  // namespace

MergeReport merge_adapter(const fs::path& model_dir, const fs::path& adapter_dir, const fs::path& out,
                          const MergeOptions& options) {
  if (fs::exists(out) && !options.overwrite)
    fail("{}: already exists; hint: choose another --out or pass --overwrite", out.string());
  const nlohmann::json config = JsonReader::parse_file((model_dir / "config.json").string());
  const at::ScalarType dtype = output_dtype(options.dtype, config);

  // The base in float32 with its adapter, as PEFT computes the unmerged model. A SEQ_CLS adapter
  // makes it a *ForSequenceClassification, its head (modules_to_save) read from the adapter.
  const c10::Device device = resolve_device(options.device, "--device", "--device cpu");
  const bool classifier = read_peft_adapter_config(adapter_dir).task_type == "SEQ_CLS";
  std::unique_ptr<CausalLM> lm;
  std::unique_ptr<SequenceClassifier> cls;
  ClassifierLabels labels;
  if (classifier) {
    if (fs::exists(adapter_dir / "labels.json")) {
      labels = read_classifier_labels(adapter_dir);
    } else {  // a PEFT adapter of a classifier checkpoint: its config's labels
      labels.labels = classifier_labels(open_hf_model_dir(model_dir));
      if (labels.labels.empty()) read_classifier_labels(adapter_dir);  // the error and its hint
      labels.pad_token_id = config.value("pad_token_id", nlohmann::json(0)).is_number_integer() ? config["pad_token_id"].get<int64_t>() : 0;
    }
    cls = load_hf_classifier(model_dir, {at::kFloat, device, options.quantize}, static_cast<int64_t>(labels.labels.size()),
                             labels.pad_token_id, 0).model;
  } else {
    lm = load_hf_model(model_dir, {at::kFloat, device, options.quantize});
  }
  Model& model = classifier ? static_cast<Model&>(*cls) : *lm;
  auto lora = apply_peft_adapter(model, adapter_dir);
  c10::NoGradGuard no_grad;
  const int64_t vocab = lm ? lm->vocab_size() : config.value("vocab_size", nlohmann::json(1000)).get<int64_t>();
  at::Tensor probe = (at::arange(16, at::kLong) * 7919 % std::min<int64_t>(vocab, 1000)).view({1, 16});
  // Never the pad id: a decoder classifier pools the last token that is not it.
  if (classifier) probe.masked_fill_(probe == labels.pad_token_id, (labels.pad_token_id + 1) % std::min<int64_t>(vocab, 1000));
  probe = probe.to(device);
  const auto logits = [&] { return lm ? lm->forward(probe, at::ones_like(probe)) : cls->logits(probe, at::ones_like(probe)); };
  const at::Tensor unmerged = logits();  // (1, 16, V) or (1, num_labels)

  // Fold every adapter into its Linear: W += scaling * B A, in float32. A 4-bit base (QLoRA) is
  // dequantized first, every Linear of it: the merged model is dense, the weights the adapter was
  // trained against plus its delta (PEFT's merge_and_unload on bitsandbytes, without requantizing).
  MergeReport report;
  struct Linears : ParamVisitor {
    std::map<std::string, Linear*> by_name;
    void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>&) override {}
    void linear(const std::string& name, Linear& l) override { by_name[name] = &l; }
  } linears;
  model.visit(linears);
  for (auto& [name, linear] : linears.by_name)
    if (linear->weight_4bit) {
      linear->weight = linear->weight_4bit->dequantize().to(at::kFloat);
      linear->weight_4bit.reset();
      report.dequantized += 1;
    }
  for (const auto& adapter : lora.adapters) {
    Linear& linear = *linears.by_name.at(adapter.module);
    const at::Tensor delta = at::matmul(adapter.lora->lora_B, adapter.lora->lora_A) * adapter.lora->scaling;  // (out, in)
    const double change = delta.abs().max().item<double>();
    if (change > report.largest_change) {
      report.largest_change = change;
      report.largest_change_module = adapter.module;
    }
    linear.weight = linear.weight + (linear.fan_in_fan_out ? delta.t() : delta);  // Conv1D stores (in, out)
    linear.adapter.reset();
  }
  const at::Tensor merged = logits();
  report.logit_difference = (merged - unmerged).abs().max().item<double>();

  // Every tensor under its HF name, rounded once to the output dtype, in shards.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  struct Collect : ParamVisitor {
    std::vector<std::pair<std::string, at::Tensor>>* out;
    at::ScalarType dtype;
    void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>&) override {
      out->emplace_back(name, slot.to(at::kCPU, dtype).contiguous());
    }
  } collect;
  collect.out = &tensors;
  collect.dtype = dtype;
  model.visit(collect);

  nlohmann::json out_config = config;
  out_config.erase("quantization_config");  // the merged weights are dense
  if (out_config.contains("torch_dtype")) out_config["torch_dtype"] = hf_dtype_name(dtype);
  out_config["dtype"] = hf_dtype_name(dtype);
  if (classifier) {  // what transformers writes for a classifier: its class, the labels and the pad id it pools by
    out_config["architectures"] = nlohmann::json::array({cls->summary().architecture});
    out_config["id2label"] = nlohmann::json::object();
    out_config["label2id"] = nlohmann::json::object();
    for (size_t i = 0; i < labels.labels.size(); ++i) {
      out_config["id2label"][std::to_string(i)] = labels.labels[i];
      out_config["label2id"][labels.labels[i]] = i;
    }
    if (!out_config.contains("pad_token_id") || out_config["pad_token_id"].is_null()) out_config["pad_token_id"] = labels.pad_token_id;
  }
  const WrittenModel written = write_model_dir(out, tensors, out_config, model_dir, options.max_shard_bytes);
  report.shards = written.shards;
  const uint64_t total_bytes = written.bytes;
  if (!options.quiet) {
    fmt::print("merged {} LoRA modules of {} into {} ({}, {} shard{}, {})\n", lora.adapters.size(), adapter_dir.string(),
               out.string(), hf_dtype_name(dtype), report.shards, report.shards == 1 ? "" : "s", human_bytes(static_cast<double>(total_bytes)));
    if (report.dequantized > 0)
      fmt::print("the base's {} 4-bit Linear weights were dequantized (float32) before the fold: the merged model is "
                 "what the QLoRA run trained against plus the adapter\n", report.dequantized);
    fmt::print("largest weight change: {:.3e} in {}\n", report.largest_change, report.largest_change_module);
    fmt::print("logits merged vs unmerged (float32, 16 tokens): max abs difference {:.3e}\n", report.logit_difference);
  }
  return report;
}

}  // namespace lorakit::exports
