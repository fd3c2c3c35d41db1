// `lorakit generate --model DIR [--adapter DIR] (--prompt TEXT | --prompts FILE) [--chat] [sampling]`:
// streams each completion to the terminal, or with --json prints one object per prompt.
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "device/cuda.h"
#include "device/dtype.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/unicode.h"
#include "inference/generate.h"

namespace lorakit::cli {
namespace {

struct GenerateArgs {
  std::string model, adapter, prompt, prompts, dtype = "fp32", device = "cpu", quantization;
  int64_t batch_size = 1;
  bool chat = false, json = false, greedy = false;
  std::vector<std::string> stop;
  inference::GenerationConfig config;
};

std::vector<std::string> read_prompts(const GenerateArgs& args) {
  if (!args.prompt.empty()) return {args.prompt};
  std::ifstream in(args.prompts);
  if (!in) fail("{}: cannot open the prompts file", args.prompts);
  std::vector<std::string> out;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    tokenizers::require_utf8(line, fmt::format("{}:{}", args.prompts, number));
    out.push_back(line);
  }
  if (out.empty()) fail("{}: no prompts (one per line)", args.prompts);
  return out;
}

void run_generate(GenerateArgs args, bool sampling_flag) {
  const auto tokenizer = tokenizers::load_tokenizer(args.model);
  const auto prompts = read_prompts(args);
  const c10::Device device = resolve_device(args.device, "--device", "--device cpu");
  const at::ScalarType dtype = parse_dtype(args.dtype, "--dtype");
  check_dtype_on_device(dtype, device, "--dtype");
  auto model = load_hf_model(args.model, {dtype, device, quantization_of(args.quantization)});
  if (!args.adapter.empty()) {
    apply_peft_adapter(*model, args.adapter);
  }
  args.config.sample = sampling_flag && !args.greedy;
  args.config.stop = args.stop;
  args.config.eos_token_ids = inference::model_eos_ids(args.model, &tokenizer);
  const auto format = tokenizers::detect_chat_format(tokenizer.chat_template());
  const auto encode = [&](const std::string& prompt) {
    if (!args.chat) return tokenizer.encode(prompt, true);
    tokenizers::ChatOptions options;
    options.add_generation_prompt = true;
    if (tokenizer.special().bos) options.bos_token = tokenizer.decode(std::vector<int32_t>{*tokenizer.special().bos}, false);
    const nlohmann::ordered_json messages = {{{"role", "user"}, {"content", prompt}}};
    return tokenizer.encode(tokenizers::render_chat_text(format, messages, options), false);
  };
  const auto print = [&](const std::string& prompt, const inference::Generation& g, bool streamed) {
    if (args.json) {
      fmt::print("{}\n", nlohmann::json{{"prompt", prompt}, {"text", g.text}, {"new_ids", g.new_ids},
                                        {"finish_reason", g.finish_reason}, {"seconds", g.seconds},
                                        {"tokens_per_s", g.tokens_per_s}, {"peak_memory_bytes", g.peak_memory_bytes}}
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      return;
    }
    if (!streamed) fmt::print("{}{}", prompt, g.text);
    fmt::print("\n[{} tokens, {:.2f} s, {:.1f} tokens/s, {}]\n", g.new_ids.size(), g.seconds, g.tokens_per_s, g.finish_reason);
  };
  if (args.batch_size < 1) fail("--batch-size must be at least 1, found {}", args.batch_size);
  if (args.batch_size == 1) {
    // One prompt at a time, streamed to the terminal as it is generated.
    for (const std::string& prompt : prompts) {
      const auto stream = [&](std::string_view text) {
        if (args.json) return;
        fmt::print("{}", text);
        std::fflush(stdout);
      };
      if (!args.json) fmt::print("{}", prompt), std::fflush(stdout);
      print(prompt, inference::generate(*model, &tokenizer, encode(prompt), args.config, device, stream), true);
    }
    return;
  }
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(args.batch_size)) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(args.batch_size));
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = start; i < end; ++i) ids.push_back(encode(prompts[i]));
    const auto generations = inference::generate_batch(*model, &tokenizer, ids, args.config, device);
    for (size_t i = start; i < end; ++i) print(prompts[i], generations[i - start], false);
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text with a model (and a PEFT adapter), KV-cached");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  cmd->add_option("--adapter", args->adapter, "PEFT adapter directory");
  auto* prompt = cmd->add_option("--prompt", args->prompt, "Prompt text");
  auto* prompts = cmd->add_option("--prompts", args->prompts, "File with one prompt per line");
  prompt->excludes(prompts);
  cmd->add_flag("--chat", args->chat, "Wrap each prompt as a user turn in the model's chat template");
  cmd->add_flag("--greedy", args->greedy, "Greedy decoding (the default unless a sampling option is given)");
  auto* temperature = cmd->add_option("--temperature", args->config.temperature, "Sampling temperature");
  auto* top_k = cmd->add_option("--top-k", args->config.top_k, "Sample from the k most likely tokens");
  auto* top_p = cmd->add_option("--top-p", args->config.top_p, "Sample from the smallest set with this probability");
  cmd->add_option("--repetition-penalty", args->config.repetition_penalty, "transformers' repetition penalty (1: off)");
  cmd->add_option("--max-new-tokens", args->config.max_new_tokens, "Most tokens to generate")->capture_default_str();
  cmd->add_option("--stop", args->stop, "Stop when the text contains this string (repeatable)");
  cmd->add_option("--seed", args->config.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--quantization", args->quantization,
                  "nf4 or fp4: quantize the base to 4 bits as a QLoRA run did (model.quantization; double quantization)")
      ->check(CLI::IsMember({"nf4", "fp4"}));
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size,
                  "Prompts of --prompts generated together (left padded); 1 streams each answer as it comes")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "One JSON object per prompt: prompt, text, new_ids, seconds, tokens_per_s, peak_memory_bytes");
  cmd->callback([args, prompt, prompts, temperature, top_k, top_p] {
    if (!*prompt && !*prompts) fail("generate: give --prompt TEXT or --prompts FILE");
    run_generate(*args, *temperature || *top_k || *top_p);
  });
}

}  // namespace lorakit::cli
