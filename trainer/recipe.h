// Recipes: the YAML files `lorakit train`, `eval` and `data stats` run. Sections are HF/PEFT-named
// structs whose fields are declared once, in their visit_fields() lists (data/examples.h for
// `data`); reading, `--set section.key=value` overrides and writing the resolved recipe all walk
// those lists. Unknown keys and wrong types are errors with a "did you mean", reported together.
#pragma once

#include <string>
#include <vector>

#include "data/examples.h"
#include "lora/lora.h"
#include "quant/bnb_4bit.h"

namespace lorakit::trainer {

struct ModelSection {
  std::string path;           // Hugging Face model directory
  std::string dtype = "fp32"; // fp32 | bf16 | fp16: the frozen base weights and the computation
  std::string quantization = "none";      // none | nf4 | fp4 (QLoRA: 4-bit Linear weights)
  bool double_quant = true;               // quantize the 4-bit absmax too
  std::string compute_dtype;              // "" = dtype
  std::vector<std::string> skip_modules;  // Linear modules kept in dtype besides the output layer
};

template <typename Visitor>
void visit_fields(ModelSection& c, Visitor&& v) {
  v("path", c.path, "Hugging Face model directory (config.json, safetensors, tokenizer)");
  v("dtype", c.dtype,
    "fp32, bf16 or fp16: the dtype the frozen base weights are loaded in and the model computes in (as "
    "from_pretrained(dtype=...)); LoRA weights stay fp32; fp16 trains with dynamic loss scaling");
  v("quantization", c.quantization,
    "none, nf4 or fp4: QLoRA, every Linear but the output layer quantized to 4 bits as it is read, as "
    "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=...); a directory saved in 4 bits loads as such");
  v("double_quant", c.double_quant, "quantize the 4-bit absmax statistics too (bnb_4bit_use_double_quant), ~0.4 bit/weight less");
  v("compute_dtype", c.compute_dtype, "fp32, bf16 or fp16: what 4-bit Linears compute in (bnb_4bit_compute_dtype); empty: dtype");
  v("skip_modules", c.skip_modules, "Linear modules kept unquantized (llm_int8_skip_modules, transformers 5's rule: a regex matching the name from the start to a module boundary, or a suffix such as down_proj)");
}

// model.quantization & co. as the loader takes them (disabled for "none").
quant::QuantizeConfig quantize_config(const ModelSection& model);

// The `train` section: HF TrainingArguments' names where one exists.
struct TrainSection {
  int64_t num_train_epochs = 1;
  int64_t max_steps = 0;                    // > 0: stop after this many optimizer steps
  int64_t per_device_train_batch_size = 4;  // rows per micro-batch
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 2e-4;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  std::string lr_scheduler_type = "linear";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  double max_grad_norm = 1.0;               // 0: no clipping
  uint64_t seed = 42;
  int64_t eval_steps = 0;                   // 0: evaluate at the end of each epoch (when there is validation data)
  int64_t early_stopping_patience = 0;      // evaluations without improvement before stopping; 0: off
  std::string device = "cpu";               // cpu | cuda
  int64_t shuffle_buffer = 10000;
  bool packing = false;
  int64_t loss_chunk_tokens = 0;            // > 0: cross-entropy in chunks, never the full logits
  bool gradient_checkpointing = false;      // recompute each decoder layer's activations in the backward
  std::string max_vram;                     // e.g. "12GiB": cap the CUDA allocator (a 12 GB card on a bigger GPU)
  int64_t logging_steps = 1;
  int64_t save_steps = 0;                   // 0: only the final adapter
  int64_t save_total_limit = 2;             // checkpoints kept
  std::vector<std::string> report_to = {"tensorboard"};  // tensorboard | none
  std::string distributed_backend;          // under torchrun: "" (nccl on CUDA, gloo on the CPU), gloo or nccl
};

template <typename Visitor>
void visit_fields(TrainSection& c, Visitor&& v) {
  v("num_train_epochs", c.num_train_epochs, "passes over the training data");
  v("max_steps", c.max_steps, "stop after this many optimizer steps (0: run the epochs)");
  v("per_device_train_batch_size", c.per_device_train_batch_size, "rows per micro-batch");
  v("gradient_accumulation_steps", c.gradient_accumulation_steps, "micro-batches per optimizer step");
  v("learning_rate", c.learning_rate, "peak learning rate of AdamW");
  v("weight_decay", c.weight_decay, "AdamW weight decay");
  v("adam_beta1", c.adam_beta1, "AdamW beta1");
  v("adam_beta2", c.adam_beta2, "AdamW beta2");
  v("adam_epsilon", c.adam_epsilon, "AdamW epsilon");
  v("lr_scheduler_type", c.lr_scheduler_type, "constant, linear or cosine (after warmup)");
  v("warmup_steps", c.warmup_steps, "linear warmup steps");
  v("warmup_ratio", c.warmup_ratio, "warmup as a fraction of all steps (when warmup_steps is 0)");
  v("max_grad_norm", c.max_grad_norm, "clip the gradient norm to this (0: no clipping)");
  v("seed", c.seed, "seed of LoRA initialisation, shuffling and dropout");
  v("eval_steps", c.eval_steps, "evaluate every N optimizer steps (0: at the end of each epoch)");
  v("early_stopping_patience", c.early_stopping_patience, "stop after N evaluations without a better validation loss (0: off)");
  v("device", c.device, "cpu or cuda");
  v("shuffle_buffer", c.shuffle_buffer, "examples held for shuffling (1: file order)");
  v("packing", c.packing, "pack short examples into rows of max_seq_len tokens");
  v("gradient_checkpointing", c.gradient_checkpointing, "recompute each decoder layer in the backward (less memory, ~1/3 more compute)");
  v("max_vram", c.max_vram, "CUDA memory cap, e.g. 12GiB (the allocator's memory fraction); empty: the whole GPU");
  v("loss_chunk_tokens", c.loss_chunk_tokens, "compute the loss over at most this many tokens' logits at a time (0: all at once)");
  v("logging_steps", c.logging_steps, "print a progress line every N steps when not on a terminal");
  v("save_steps", c.save_steps, "save a resumable checkpoint every N steps (0: only at the end)");
  v("save_total_limit", c.save_total_limit, "checkpoints kept (the newest)");
  v("report_to", c.report_to, "where metrics go besides metrics.h5/csv: [tensorboard] (event files in the run directory) or none");
  v("distributed_backend", c.distributed_backend,
    "under torchrun: gloo or nccl (empty: nccl on CUDA, gloo on the CPU); each rank takes per_device_train_batch_size "
    "rows of every micro-batch");
}

struct OutputSection {
  std::string dir = "runs/run";  // the run directory
};

template <typename Visitor>
void visit_fields(OutputSection& c, Visitor&& v) {
  v("dir", c.dir, "run directory: adapter/, checkpoints/, metrics.h5, metrics.csv, summary.json, recipe.yaml");
}

// Prompts a run is measured with after training (inference time, memory, sample generations).
struct InferenceSection {
  std::vector<std::string> prompts;
  int64_t max_new_tokens = 32;
  int64_t batch_size = 8;  // prompts generated together (left padded)
};

template <typename Visitor>
void visit_fields(InferenceSection& c, Visitor&& v) {
  v("prompts", c.prompts, "prompts generated with the trained adapter (greedy) to measure inference time and memory");
  v("max_new_tokens", c.max_new_tokens, "tokens generated per prompt");
  v("batch_size", c.batch_size, "prompts generated together; seconds per prompt is the batch's time / its prompts (1: one at a time)");
}

// The recipe's one top-level scalar, `task`: what the model learns.
inline constexpr const char* kTaskHelp =
    "causal_lm (default: next-token loss on the data's trained tokens) or sequence_classification (a "
    "*ForSequenceClassification head on the model, trained fully, with data.label_column; PEFT's task_type SEQ_CLS)";

struct Recipe {
  std::string source;  // the file it was read from ("" when built from flags)
  std::string task = "causal_lm";  // causal_lm | sequence_classification (kTaskHelp)
  ModelSection model;
  lora::LoraConfig lora;
  data::DataConfig data;
  TrainSection train;
  OutputSection output;
  InferenceSection inference;
};

inline bool classifies(const Recipe& recipe) { return recipe.task == "sequence_classification"; }

// Reads `path`, then applies `overrides` ("data.max_seq_len=512", "task=sequence_classification"). Relative model and data paths
// are resolved against the recipe's directory.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// The resolved recipe as YAML, every field written (what a run directory keeps).
std::string recipe_yaml(Recipe recipe);

}  // namespace lorakit::trainer
