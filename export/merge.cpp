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

  // The base in float32 with its adapter, as PEFT computes the unmerged model.
  const c10::Device device = resolve_device(options.device, "--device", "--device cpu");
  auto model = load_hf_model(model_dir, {at::kFloat, device});
  auto lora = apply_peft_adapter(*model, adapter_dir);
  c10::NoGradGuard no_grad;
  const at::Tensor probe =
      (at::arange(16, at::kLong) * 7919 % std::min<int64_t>(model->vocab_size(), 1000)).view({1, 16}).to(device);
  const at::Tensor unmerged = model->forward(probe, at::ones_like(probe));  // (1, 16, V)

  // Fold every adapter into its Linear: W += scaling * B A, in float32.
  MergeReport report;
  struct Linears : ParamVisitor {
    std::map<std::string, Linear*> by_name;
    void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>&) override {}
    void linear(const std::string& name, Linear& l) override { by_name[name] = &l; }
  } linears;
  model->visit(linears);
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
  const at::Tensor merged = model->forward(probe, at::ones_like(probe));
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
  model->visit(collect);

  const fs::path tmp = out.parent_path() / fmt::format(".{}.tmp-{}", out.filename().string(), ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  // On any error the temporary directory goes; `out` only ever appears complete, by the rename.
  struct RemoveOnError {
    fs::path path;
    bool done = false;
    ~RemoveOnError() {
      std::error_code ignored;
      if (!done) fs::remove_all(path, ignored);
    }
  } guard{tmp};
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (auto& [name, tensor] : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    if (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().emplace_back(name, tensor);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  report.shards = static_cast<int64_t>(shards.size());
  if (shards.size() == 1) {
    save_safetensors(tmp / "model.safetensors", shards[0], {{"format", "pt"}});
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      save_safetensors(tmp / file, shards[i], {{"format", "pt"}});
      for (const auto& [name, t] : shards[i]) weight_map[name] = file;
    }
    std::ofstream(tmp / "model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}}.dump(2) << "\n";
  }
  nlohmann::json out_config = config;
  if (out_config.contains("torch_dtype")) out_config["torch_dtype"] = hf_dtype_name(dtype);
  out_config["dtype"] = hf_dtype_name(dtype);
  std::ofstream(tmp / "config.json") << out_config.dump(2) << "\n";
  for (const char* file : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja"})
    if (fs::exists(model_dir / file)) fs::copy_file(model_dir / file, tmp / file);
  if (fs::exists(out)) fs::remove_all(out);
  fs::rename(tmp, out);
  guard.done = true;
  if (!options.quiet) {
    fmt::print("merged {} LoRA modules of {} into {} ({}, {} shard{}, {})\n", lora.adapters.size(), adapter_dir.string(),
               out.string(), hf_dtype_name(dtype), report.shards, report.shards == 1 ? "" : "s", human_bytes(static_cast<double>(total_bytes)));
    fmt::print("largest weight change: {:.3e} in {}\n", report.largest_change, report.largest_change_module);
    fmt::print("logits merged vs unmerged (float32, 16 tokens): max abs difference {:.3e}\n", report.logit_difference);
  }
  return report;
}

}  // namespace lorakit::exports
