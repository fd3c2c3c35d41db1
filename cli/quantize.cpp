// `lorakit quantize MODEL --out DIR [--type nf4|fp4] [--no-double-quant] [--dtype] [--compute-dtype]`.
#include "cli/commands.h"
#include "core/format.h"
#include "device/dtype.h"
#include "export/quantize.h"

namespace lorakit::cli {

void add_quantize(CLI::App& app) {
  struct Args {
    std::string model, out, type = "nf4", dtype, compute_dtype, shard = "2GB", device = "cpu";
    std::vector<std::string> skip;
    bool no_double_quant = false, overwrite = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write a model with its Linear weights in 4 bits (bitsandbytes NF4/FP4), loadable by transformers");
  cmd->add_option("model", args->model, "Model directory (16- or 32-bit safetensors)")->required();
  cmd->add_option("--out", args->out, "Output directory (written completely or not at all)")->required();
  cmd->add_option("--type", args->type, "nf4 or fp4")->capture_default_str()->check(CLI::IsMember({"nf4", "fp4"}));
  cmd->add_flag("--no-double-quant", args->no_double_quant, "Keep the absmax statistics in float32");
  cmd->add_option("--dtype", args->dtype, "fp32, bf16 or fp16: the unquantized tensors (default: the config's dtype)");
  cmd->add_option("--compute-dtype", args->compute_dtype, "bnb_4bit_compute_dtype written to the config (default: --dtype)");
  cmd->add_option("--skip-modules", args->skip, "Linear modules kept unquantized: a suffix (down_proj) or a regex from the start of the name (model.layers.*.mlp)");
  cmd->add_option("--device", args->device, "Where weights are quantized: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--max-shard-size", args->shard, "Largest safetensors shard, e.g. 2GB or 500MB")->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "Replace an existing output directory");
  cmd->callback([args] {
    exports::QuantizeOptions options;
    options.config.type = args->type;
    options.config.double_quant = !args->no_double_quant;
    options.config.skip_modules = args->skip;
    if (!args->compute_dtype.empty()) options.config.compute_dtype = parse_dtype(args->compute_dtype, "--compute-dtype");
    options.dtype = args->dtype;
    options.device = args->device;
    options.max_shard_bytes = parse_size(args->shard, "--max-shard-size");
    options.overwrite = args->overwrite;
    exports::quantize_model(args->model, args->out, options);
  });
}

}  // namespace lorakit::cli
