#include "export/quantize.h"

#include <malloc.h>

#include <ATen/TensorOperators.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"
#include "core/json_reader.h"
#include "device/cuda.h"
#include "device/dtype.h"
#include "export/model_dir.h"

namespace lorakit::exports {

namespace fs = std::filesystem;

QuantizeReport quantize_model(const fs::path& model_dir, const fs::path& out, const QuantizeOptions& options) {
  if (fs::exists(out) && !options.overwrite)
    fail("{}: already exists; hint: choose another --out or pass --overwrite", out.string());
  const nlohmann::json config = JsonReader::parse_file((model_dir / "config.json").string());
  if (config.contains("quantization_config"))
    fail("{}: already quantized (config.json has a quantization_config); hint: quantize the 16/32-bit original",
         model_dir.string());
  const std::string dtype_name =
      !options.dtype.empty() ? options.dtype : dtype_name_from_hf(config.value("dtype", config.value("torch_dtype", std::string("float32"))));
  const at::ScalarType dtype = parse_dtype(dtype_name, "--dtype");
  quant::QuantizeConfig q = options.config;
  if (q.type.empty()) q.type = "nf4";
  const at::ScalarType compute = q.compute_dtype == at::ScalarType::Undefined ? dtype : q.compute_dtype;
  const c10::Device device = resolve_device(options.device, "--device", "--device cpu");

  c10::NoGradGuard no_grad;
  QuantizeReport report;
  std::unique_ptr<CausalLM> model = load_hf_model(model_dir, {dtype, device, q});

  struct Collect : ParamVisitor {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    QuantizeReport* report;
    void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>&) override {
      tensors.emplace_back(name, slot.to(at::kCPU).contiguous());
      report->kept += 1;
    }
    void linear(const std::string& name, Linear& l) override {
      if (!l.weight_4bit) return ParamVisitor::linear(name, l);
      for (auto& [suffix, t] : quant::state_tensors(l.weight_4bit->to(at::kCPU)))
        tensors.emplace_back(name + ".weight" + suffix, t.contiguous());
      report->quantized += 1;
      if (l.has_bias) tensor(name + ".bias", l.bias, {l.out_features});
    }
  } collect;
  collect.report = &report;
  model->visit(collect);

  // How far 4 bits move each weight, |W - dequant(W)| / |W| (Frobenius), the original re-read one
  // tensor at a time from the checkpoint.
  {
    const HfModelDir hf = open_hf_model_dir(model_dir);
    std::vector<std::unique_ptr<SafetensorsFile>> files;
    for (const auto& path : hf.weight_files) files.push_back(std::make_unique<SafetensorsFile>(path));
    struct Errors : ParamVisitor {
      const std::vector<std::unique_ptr<SafetensorsFile>>* files;
      QuantizeReport* report;
      double sum = 0;
      void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>&) override {}
      void linear(const std::string& name, Linear& l) override {
        if (!l.weight_4bit) return;
        for (const auto& f : *files)
          if (f->find(name + ".weight")) {
            const at::Tensor original = f->read(name + ".weight", at::kFloat, at::kCPU);
            const double e = ((l.weight_4bit->dequantize().to(at::kCPU, at::kFloat) - original).norm() /
                              original.norm().clamp_min(1e-30)).item<double>();
            report->largest_error = std::max(report->largest_error, e);
            sum += e;
            ::malloc_trim(0);  // the float32 copies just freed (see load_hf_model)
          }
      }
    } errors;
    errors.files = &files;
    errors.report = &report;
    model->visit(errors);
    report.mean_error = report.quantized > 0 ? errors.sum / static_cast<double>(report.quantized) : 0.0;
  }

  nlohmann::json out_config = config;
  if (out_config.contains("torch_dtype")) out_config["torch_dtype"] = hf_dtype_name(dtype);
  out_config["dtype"] = hf_dtype_name(dtype);
  const std::string output_layer = model->summary().model_type == "gpt_neox" ? "embed_out" : "lm_head";
  out_config["quantization_config"] = bnb_4bit_quantization_config(q, compute, output_layer);
  const WrittenModel written = write_model_dir(out, collect.tensors, out_config, model_dir, options.max_shard_bytes);
  report.bytes = written.bytes;
  if (!options.quiet) {
    fmt::print("quantized {} Linear weights of {} to {}{} ({} tensors kept in {}) into {}: {} in {} shard{}\n",
               report.quantized, model_dir.string(), q.type, q.double_quant ? " with double quantization" : "", report.kept,
               hf_dtype_name(dtype), out.string(), human_bytes(static_cast<double>(written.bytes)), written.shards,
               written.shards == 1 ? "" : "s");
    fmt::print("4-bit vs original weights, |W - dequant(W)| / |W|: mean {:.4f}, largest {:.4f}\n", report.mean_error,
               report.largest_error);
  }
  return report;
}

}  // namespace lorakit::exports
