// `lorakit eval --model DIR --data FILE (--text-column C | --prompt-template T --response-column C |
// --messages-column C) [--adapter DIR] [--generate]`: flags in, inference/evaluate.h's measurement,
// printed as text or JSON. With --label-column (a classifier) inference/classify.h instead.
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "device/cuda.h"
#include "device/dtype.h"
#include "core/files.h"
#include "core/format.h"
#include "inference/classify.h"
#include "inference/evaluate.h"

namespace lorakit::cli {
namespace {

struct EvalArgs {
  std::string dtype = "fp32", device = "cpu", adapter, predictions, quantization;
  int64_t batch_size = 8;
  DataArgs data;
  bool json = false, generate = false;
  int64_t max_new_tokens = 32;
  std::vector<std::string> stop;
};

void print_generation_eval(const EvalArgs& args, const std::string& data_path, const inference::GenerationEvaluation& e) {
  if (!args.predictions.empty()) write_text_atomically(args.predictions, e.predictions_csv);
  const auto n = static_cast<double>(e.examples);
  const double tokens_per_s = e.seconds > 0 ? static_cast<double>(e.new_tokens) / e.seconds : 0.0;
  const inference::Scores& s = e.scores;
  if (args.json) {
    nlohmann::json out = s.to_json();
    out["examples"] = e.examples;
    out["seconds_per_prompt"] = e.seconds / n;
    out["tokens_per_s"] = tokens_per_s;
    out["peak_memory_bytes"] = e.peak_memory_bytes;
    fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  fmt::print("{}: {} prompts, exact match {:.4f}; macro P/R/F1 {:.4f}/{:.4f}/{:.4f}; micro P/R/F1 {:.4f}/{:.4f}/{:.4f}\n",
             data_path, e.examples, s.exact_match, s.macro_precision, s.macro_recall, s.macro_f1, s.micro_precision,
             s.micro_recall, s.micro_f1);
  fmt::print("{:.3f} s per prompt, {:.1f} tokens/s, peak memory {}\n", e.seconds / n, tokens_per_s,
             human_bytes(e.peak_memory_bytes));
  if (s.labels.size() <= 20)
    for (const auto& [label, l] : s.labels)
      fmt::print("  {:<24} P {:.3f} R {:.3f} F1 {:.3f} support {}\n", label, l.precision, l.recall, l.f1, l.support);
  if (!args.predictions.empty()) fmt::print("predictions: {}\n", args.predictions);
}

// A classifier (a --label-column, or a recipe's task: sequence_classification): its labels from the
// adapter's labels.json, or from the model directory's id2label (a merged classifier).
void run_classifier_eval(const EvalArgs& args, const std::string& model_dir, const data::DataConfig& config) {
  ClassifierLabels labels;
  if (!args.adapter.empty()) {
    labels = read_classifier_labels(args.adapter);
  } else {
    const HfModelDir hf = open_hf_model_dir(model_dir);
    labels.labels = classifier_labels(hf);
    if (labels.labels.empty())
      fail("{}: not a trained classifier (config.json has no *ForSequenceClassification with id2label); hint: pass the "
           "run's --adapter, or the directory `lorakit merge` wrote", model_dir);
    labels.pad_token_id = hf.config.value("pad_token_id", nlohmann::json(0)).is_number_integer() ? hf.config["pad_token_id"].get<int64_t>() : 0;
  }
  const auto tokenizer = tokenizers::load_tokenizer(model_dir);
  data::ExampleBuilder builder(tokenizer, config, "eval");
  builder.set_labels(labels.labels);
  auto reader = data::open_records(config.path, data::reader_options(config));
  const c10::Device device = resolve_device(args.device, "--device", "--device cpu");
  const at::ScalarType dtype = parse_dtype(args.dtype, "--dtype");
  check_dtype_on_device(dtype, device, "--dtype");
  LoadedClassifier loaded = load_hf_classifier(model_dir, {dtype, device}, static_cast<int64_t>(labels.labels.size()),
                                               labels.pad_token_id, 0);
  if (args.adapter.empty() && loaded.head_initialized)
    fail("{}: the checkpoint has no classification head; hint: pass the run's --adapter", model_dir);
  if (!args.adapter.empty()) apply_peft_adapter(*loaded.model, args.adapter);
  const auto e = inference::evaluate_classifier(*loaded.model, builder, *reader, device, args.batch_size,
                                                static_cast<int32_t>(labels.pad_token_id));
  if (!args.predictions.empty()) write_text_atomically(args.predictions, e.predictions_csv);
  const ClassificationMetrics& m = e.metrics;
  if (args.json) {
    nlohmann::json out = {{"loss", e.loss}, {"accuracy", m.accuracy}, {"examples", e.examples}, {"skipped", e.skipped},
                          {"truncated", e.truncated}, {"labels", labels.labels}, {"confusion_matrix", m.confusion}};
    for (const auto& [name, s] : {std::pair{"macro", m.macro}, {"micro", m.micro}, {"weighted", m.weighted}})
      out[name] = {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}};
    for (size_t k = 0; k < labels.labels.size(); ++k)
      out["per_label"].push_back({{"label", labels.labels[k]}, {"precision", m.per_label[k].precision},
                                  {"recall", m.per_label[k].recall}, {"f1", m.per_label[k].f1}, {"support", m.per_label[k].support}});
    fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  fmt::print("{}: {} rows ({} skipped, {} truncated), loss {:.6f}, {:.1f} s\n", config.path, e.examples, e.skipped,
             e.truncated, e.loss, e.seconds);
  fmt::print("{}", metrics_report(m, labels.labels));
  if (!args.predictions.empty()) fmt::print("predictions: {}\n", args.predictions);
}

void run_eval(const EvalArgs& args) {
  auto [model_dir, config] = args.data.resolve();
  if (!config.label_column.empty()) return run_classifier_eval(args, model_dir, config);
  // A plain text row is scored as transformers scores model(ids, labels=ids): no EOS appended.
  if (!config.text_column.empty()) config.add_eos = false;
  const auto tokenizer = tokenizers::load_tokenizer(model_dir);
  const data::ExampleBuilder builder(tokenizer, config, "eval");
  auto reader = data::open_records(config.path, data::reader_options(config));  // the header is checked before the model loads

  const c10::Device device = resolve_device(args.device, "--device", "--device cpu");
  const at::ScalarType dtype = parse_dtype(args.dtype, "--dtype");
  check_dtype_on_device(dtype, device, "--dtype");
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<CausalLM> model = load_hf_model(model_dir, {dtype, device, quantization_of(args.quantization.empty() ? args.data.recipe_quantization() : args.quantization)});
  if (!args.adapter.empty()) apply_peft_adapter(*model, args.adapter);
  if (args.generate) {
    inference::GenerationConfig generation;
    generation.max_new_tokens = args.max_new_tokens;
    generation.stop = args.stop;
    generation.eos_token_ids = inference::model_eos_ids(model_dir, &tokenizer);
    print_generation_eval(args, config.path,
                          inference::evaluate_generation(*model, tokenizer, builder, *reader, generation, device, args.batch_size,
                                                         config.path));
    return;
  }
  const auto e = inference::evaluate_loss(*model, builder, *reader, device, args.batch_size);
  if (e.examples == 0)
    fail("{}: no examples to evaluate ({} rows skipped{})", config.path, e.skipped,
         e.skipped ? ", the last because: " + e.last_skip_reason : "");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.json) {
    fmt::print("{}\n", nlohmann::json{{"loss", e.loss}, {"perplexity", std::exp(e.loss)}, {"tokens", e.tokens},
                                      {"examples", e.examples}, {"skipped", e.skipped}, {"truncated", e.truncated},
                                      {"bad_rows", reader->bad_rows()}}
                           .dump());
    return;
  }
  fmt::print("{}: {} examples ({} skipped, {} truncated), {} loss tokens, {:.1f} s\n", config.path, e.examples, e.skipped,
             e.truncated, e.tokens, seconds);
  fmt::print("loss {:.6f}  perplexity {:.4f}\n", e.loss, std::exp(e.loss));
}

}  // namespace

void add_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Mean token loss and perplexity of a model over a CSV/JSONL file; for a "
                                              "classifier (--label-column): accuracy, per-label P/R/F1, confusion matrix");
  add_data_options(cmd, args->data);
  cmd->add_option("--dtype", args->dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--quantization", args->quantization,
                  "nf4 or fp4: quantize the base to 4 bits as a QLoRA run did (model.quantization; double quantization)")
      ->check(CLI::IsMember({"nf4", "fp4"}));
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "Rows (or, with --generate, prompts) per forward pass")->capture_default_str();
  cmd->add_option("--adapter", args->adapter, "PEFT adapter directory (lorakit's or PeftModel.save_pretrained's) applied to the model");
  cmd->add_flag("--generate", args->generate,
                "Answer each prompt greedily and score it against the response column: exact match, per-label P/R/F1");
  cmd->add_option("--predictions", args->predictions,
                  "With --generate: write line, prompt, reference, prediction, ... to this CSV; for a classifier (--label-column): "
                  "line, label, prediction, correct and each label's probability");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "With --generate: most tokens per answer")->capture_default_str();
  cmd->add_option("--stop", args->stop, "With --generate: stop an answer at this string (repeatable)");
  cmd->add_flag("--json", args->json, "Print {\"loss\", \"perplexity\", \"tokens\", \"examples\", ...} as JSON");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace lorakit::cli
