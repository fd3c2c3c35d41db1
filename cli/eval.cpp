// `lorakit eval --model DIR --data FILE (--text-column C | --prompt-template T --response-column C |
// --messages-column C)`: text -> tokens -> model -> loss. Prints the mean token cross-entropy over
// the file's loss tokens (every next-token prediction whose label is not -100) and perplexity.
#include <chrono>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <cmath>

#include <ATen/ops/from_blob.h>
#include <ATen/ops/ones_like.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/format.h"
#include "data/examples.h"
#include "tokenizers/unicode.h"
#include "trainer/generate.h"
#include "trainer/loss.h"
#include "trainer/scores.h"

namespace lorakit::cli {
namespace {

struct EvalArgs {
  std::string dtype = "fp32", adapter, predictions;
  DataArgs data;
  bool json = false, generate = false;
  int64_t max_new_tokens = 32;
  std::vector<std::string> stop;
};

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Generation metrics: each row's prompt is answered greedily and compared with its response column.
void run_generation_eval(const EvalArgs& args, const data::DataConfig& config, const tokenizers::Tokenizer& tokenizer,
                         const data::ExampleBuilder& builder, data::RecordReader& reader, const CausalLM& model,
                         const std::string& model_dir) {
  trainer::GenerationConfig generation;
  generation.max_new_tokens = args.max_new_tokens;
  generation.stop = args.stop;
  generation.eos_token_ids = trainer::model_eos_ids(model_dir, &tokenizer);
  std::vector<std::string> predictions, references;
  std::string rows = "line,prompt,reference,prediction,exact_match,new_tokens,seconds\n";
  double seconds = 0, peak = 0;
  int64_t new_tokens = 0;
  data::Record record;
  std::string reason;
  while (reader.next(record)) {
    if (!builder.selects(record, reader.path(), reason)) continue;
    const auto [prompt, reference] = builder.prompt_and_response(record, reader.path());
    if (reference.empty()) continue;
    const auto g = trainer::generate(model, &tokenizer, tokenizer.encode(prompt, true), generation, at::kCPU);
    const std::string prediction = tokenizers::python_strip(g.text);
    const bool exact = prediction == tokenizers::python_strip(reference);
    predictions.push_back(prediction);
    references.push_back(reference);
    seconds += g.seconds;
    new_tokens += static_cast<int64_t>(g.new_ids.size());
    peak = std::max(peak, g.peak_memory_bytes);
    rows += fmt::format("{},{},{},{},{},{},{:.4f}\n", record.line, csv_field(prompt), csv_field(reference),
                        csv_field(prediction), exact ? 1 : 0, g.new_ids.size(), g.seconds);
  }
  if (references.empty()) fail("{}: no rows with a reference answer to compare with", config.path);
  if (!args.predictions.empty()) {
    const std::string tmp = args.predictions + ".tmp";
    std::ofstream(tmp, std::ios::trunc) << rows;
    std::filesystem::rename(tmp, args.predictions);
  }
  const auto scores = trainer::score(predictions, references);
  nlohmann::json out = scores.to_json();
  out["examples"] = references.size();
  out["seconds_per_prompt"] = seconds / static_cast<double>(references.size());
  out["tokens_per_s"] = seconds > 0 ? static_cast<double>(new_tokens) / seconds : 0.0;
  out["peak_memory_bytes"] = peak;
  if (args.json) {
    fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  fmt::print("{}: {} prompts, exact match {:.4f}; macro P/R/F1 {:.4f}/{:.4f}/{:.4f}; micro P/R/F1 {:.4f}/{:.4f}/{:.4f}\n",
             config.path, references.size(), scores.exact_match, scores.macro_precision, scores.macro_recall,
             scores.macro_f1, scores.micro_precision, scores.micro_recall, scores.micro_f1);
  fmt::print("{:.3f} s per prompt, {:.1f} tokens/s, peak memory {}\n", seconds / static_cast<double>(references.size()),
             out["tokens_per_s"].get<double>(), human_bytes(peak));
  if (scores.labels.size() <= 20)
    for (const auto& [label, l] : scores.labels)
      fmt::print("  {:<24} P {:.3f} R {:.3f} F1 {:.3f} support {}\n", label, l.precision, l.recall, l.f1, l.support);
  if (!args.predictions.empty()) fmt::print("predictions: {}\n", args.predictions);
}

void run_eval(const EvalArgs& args) {
  auto [model_dir, config] = args.data.resolve();
  // A plain text row is scored as transformers scores model(ids, labels=ids): no EOS appended.
  if (!config.text_column.empty()) config.add_eos = false;
  const auto tokenizer = tokenizers::load_tokenizer(model_dir);
  const data::ExampleBuilder builder(tokenizer, config, "eval");
  auto reader = data::open_records(config.path, data::reader_options(config));  // the header is checked before the model loads

  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<CausalLM> model = load_hf_model(model_dir, {parse_dtype(args.dtype), at::kCPU});
  if (!args.adapter.empty()) {
    apply_peft_adapter(*model, args.adapter);
  }
  if (args.generate) {
    run_generation_eval(args, config, tokenizer, builder, *reader, *model, model_dir);
    return;
  }
  c10::InferenceMode inference;
  double loss_sum = 0;
  int64_t tokens = 0, examples = 0, skipped = 0, truncated = 0;
  data::Record record;
  std::string reason;
  while (reader->next(record)) {
    auto example = builder.build(record, reader->path(), reason);
    if (!example) {
      ++skipped;
      continue;
    }
    for (int32_t id : example->input_ids)
      if (id >= model->vocab_size())
        fail("{}:{}: token id {} is outside the model's vocabulary of {}; hint: does the tokenizer belong to "
             "this model?", reader->path(), record.line, id, model->vocab_size());
    const auto T = static_cast<int64_t>(example->input_ids.size());
    std::vector<int64_t> ids(example->input_ids.begin(), example->input_ids.end());
    std::vector<int64_t> labels(example->labels.begin(), example->labels.end());
    const at::Tensor input = at::from_blob(ids.data(), {1, T}, at::kLong);     // (1, T)
    const at::Tensor target = at::from_blob(labels.data(), {1, T}, at::kLong);  // (1, T)
    loss_sum += trainer::loss_sum(*model, input, at::ones_like(input), target, 0).item<double>();
    tokens += std::count_if(labels.begin() + 1, labels.end(), [](int64_t l) { return l != data::kIgnoreIndex; });
    ++examples;
    truncated += example->truncated;
  }
  if (examples == 0)
    fail("{}: no examples to evaluate ({} rows skipped{})", config.path, skipped,
         skipped ? ", the last because: " + reason : "");
  const double loss = loss_sum / static_cast<double>(tokens);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.json) {
    fmt::print("{}\n", nlohmann::json{{"loss", loss}, {"perplexity", std::exp(loss)}, {"tokens", tokens},
                                      {"examples", examples}, {"skipped", skipped}, {"truncated", truncated},
                                      {"bad_rows", reader->bad_rows()}}
                           .dump());
    return;
  }
  fmt::print("{}: {} examples ({} skipped, {} truncated), {} loss tokens, {:.1f} s\n", config.path, examples, skipped,
             truncated, tokens, seconds);
  fmt::print("loss {:.6f}  perplexity {:.4f}\n", loss, std::exp(loss));
}

}  // namespace

void add_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Mean token loss and perplexity of a model over a CSV/JSONL file");
  add_data_options(cmd, args->data);
  cmd->add_option("--dtype", args->dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--adapter", args->adapter, "PEFT adapter directory (lorakit's or PeftModel.save_pretrained's) applied to the model");
  cmd->add_flag("--generate", args->generate,
                "Answer each prompt greedily and score it against the response column: exact match, per-label P/R/F1");
  cmd->add_option("--predictions", args->predictions, "With --generate: write line, prompt, reference, prediction, ... to this CSV");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "With --generate: most tokens per answer")->capture_default_str();
  cmd->add_option("--stop", args->stop, "With --generate: stop an answer at this string (repeatable)");
  cmd->add_flag("--json", args->json, "Print {\"loss\", \"perplexity\", \"tokens\", \"examples\", ...} as JSON");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace lorakit::cli
