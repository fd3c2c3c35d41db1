// `lorakit merge --model DIR --adapter DIR --out DIR [--dtype bf16|fp16|fp32] [--max-shard-size 2GB]`.
#include "cli/commands.h"
#include "core/format.h"
#include "export/merge.h"

namespace lorakit::cli {

void add_merge(CLI::App& app) {
  struct Args {
    std::string model, adapter, out, dtype, shard = "2GB", device = "cpu";
    bool overwrite = false;
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
  cmd->callback([args] {
    exports::merge_adapter(args->model, args->adapter, args->out,
                           {args->dtype, args->device, parse_size(args->shard, "--max-shard-size"), args->overwrite, false});
  });
}

}  // namespace lorakit::cli
