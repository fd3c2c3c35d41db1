// `lorakit merge --model DIR --adapter DIR --out DIR [--dtype bf16|fp16|fp32] [--max-shard-size 2GB]
//  [--quantization nf4|fp4 [--no-double-quant] | --base-weights DIR]`.
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/format.h"
#include "export/merge.h"

namespace lorakit::cli {

void add_merge(CLI::App& app) {
  struct Args {
    std::string model, adapter, out, dtype, shard = "2GB", device = "cpu", quantization, base_weights;
    bool overwrite = false, no_double_quant = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("merge", "Fold a PEFT adapter into its base model; writes a Hugging Face model directory");
  cmd->add_option("--model", args->model, "Base model directory")->required();
  cmd->add_option("--adapter", args->adapter, "PEFT adapter directory (lorakit's or PEFT's)")->required();
  cmd->add_option("--out", args->out, "Output directory (written completely or not at all)")->required();
  cmd->add_option("--dtype", args->dtype, "fp32, bf16 or fp16 (default: the base config's dtype)");
  cmd->add_option("--device", args->device, "Where the float32 fold runs: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--max-shard-size", args->shard, "Largest safetensors shard, e.g. 2GB or 500MB")->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "Replace an existing output directory");
  auto* quantization = cmd->add_option("--quantization", args->quantization,
                                       "A QLoRA adapter trained on --model quantized at load (model.quantization): nf4 or "
                                       "fp4; the fold goes into the same dequantized weights")
                           ->check(CLI::IsMember({"nf4", "fp4"}));
  cmd->add_flag("--no-double-quant", args->no_double_quant, "With --quantization: the run's model.double_quant was false");
  cmd->add_option("--base-weights", args->base_weights,
                  "A QLoRA adapter folded into these original 16/32-bit weights instead of the 4-bit ones it was "
                  "trained against (sharper weights; the merged model is not exactly the QLoRA model)")
      ->excludes(quantization);
  cmd->callback([args] {
    exports::MergeOptions options{args->dtype, args->device, parse_size(args->shard, "--max-shard-size"), args->overwrite, false};
    options.quantize.type = args->quantization;
    options.quantize.double_quant = !args->no_double_quant;
    if (!args->base_weights.empty())
      fmt::print("merging into {} (the original weights), not into {}'s 4-bit weights the adapter was trained against: "
                 "the merged model differs from the QLoRA model by the quantization error\n", args->base_weights, args->model);
    exports::merge_adapter(args->base_weights.empty() ? args->model : args->base_weights, args->adapter, args->out, options);
  });
}

}  // namespace lorakit::cli
