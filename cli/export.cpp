// `lorakit export gguf --model DIR [--adapter DIR] --out FILE.gguf [--type f32|f16|bf16|q8_0]` and
// `lorakit export gguf-lora --model DIR --adapter DIR --out FILE.gguf`: files for llama.cpp / Ollama.
#include "cli/commands.h"
#include "export/gguf.h"

namespace lorakit::cli {

void add_export(CLI::App& app) {
  struct Args {
    std::string model, adapter, out;
    exports::GgufOptions options;
  };
  CLI::App* cmd = app.add_subcommand("export", "Write a model or an adapter for other runtimes (GGUF for llama.cpp and Ollama)");
  cmd->require_subcommand(1);
  auto common = [](CLI::App* sub, Args& args, bool adapter_required) {
    sub->add_option("--model", args.model, "Base model directory (Hugging Face)")->required();
    auto* adapter = sub->add_option("--adapter", args.adapter,
                                    adapter_required ? "PEFT LoRA adapter directory" : "PEFT LoRA adapter folded in (optional)");
    if (adapter_required) adapter->required();
    sub->add_option("--out", args.out, "Output .gguf file (written completely or not at all)")->required();
    sub->add_option("--type", args.options.type, "Tensor type of the weights: f32, f16, bf16 or q8_0 (1-D tensors and norms stay f32)")
        ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
        ->capture_default_str();
    sub->add_option("--name", args.options.name, "general.name (default: as llama.cpp's converter derives it from the model card or the directory's name)");
    sub->add_flag("--overwrite", args.options.overwrite, "Replace an existing output file");
  };
  auto gguf = std::make_shared<Args>();
  CLI::App* model = cmd->add_subcommand("gguf", "The model, with the adapter merged in (float32 fold, as `merge`), as one GGUF file");
  common(model, *gguf, false);
  model->add_option("--tokenizer-pre", gguf->options.tokenizer_pre,
                    "tokenizer.ggml.pre for a tokenizer llama.cpp's table does not know (llama-bpe, qwen2, gpt-2, ...)");
  model->callback([gguf] { exports::export_gguf(gguf->model, gguf->adapter, gguf->out, gguf->options); });
  auto lora = std::make_shared<Args>();
  lora->options.type = "f32";
  CLI::App* adapter = cmd->add_subcommand("gguf-lora", "The adapter alone as a llama.cpp LoRA GGUF (llama-server --lora)");
  common(adapter, *lora, true);
  adapter->callback([lora] { exports::export_gguf_lora(lora->model, lora->adapter, lora->out, lora->options); });
}

}  // namespace lorakit::cli
