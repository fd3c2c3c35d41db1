#include "trainer/train.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "core/error.h"
#include "core/files.h"
#include "core/format.h"
#include "data/stats.h"
#include "device/batch.h"
#include "device/cuda.h"
#include "device/dtype.h"
#include "device/memory.h"
#include "models/classification_metrics.h"
#include "models/classifier.h"
#include "models/loss.h"
#include "trainer/checkpoint.h"
#include "trainer/distributed.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"

namespace lorakit::trainer {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

void validate(const TrainSection& t) {
  std::vector<std::string> problems;
  if (t.per_device_train_batch_size < 1) problems.push_back("train.per_device_train_batch_size must be >= 1");
  if (t.gradient_accumulation_steps < 1) problems.push_back("train.gradient_accumulation_steps must be >= 1");
  if (t.num_train_epochs < 1 && t.max_steps < 1) problems.push_back("train.num_train_epochs or train.max_steps must be >= 1");
  if (t.learning_rate <= 0) problems.push_back("train.learning_rate must be > 0");
  for (const auto& r : t.report_to)
    if (r != "tensorboard" && r != "none") problems.push_back(fmt::format("train.report_to '{}': expected tensorboard or none", r));
  if (t.lr_scheduler_type != "constant" && t.lr_scheduler_type != "linear" && t.lr_scheduler_type != "cosine")
    problems.push_back(fmt::format("train.lr_scheduler_type '{}': expected constant, linear or cosine", t.lr_scheduler_type));
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    fail("recipe: {}", all);
  }
}

// The run's device and dtype, checked (and the memory cap set) before anything is read or written.
std::pair<at::Device, at::ScalarType> prepare_device(const Recipe& recipe, const World& world) {
  const TrainSection& t = recipe.train;
  at::Device device = resolve_device(t.device, "train.device", "--set train.device=cpu");
  if (world.distributed() && device.is_cuda()) {
    device = world.device();  // cuda:LOCAL_RANK
    resolve_device(device.str(), "train.device (cuda:LOCAL_RANK under torchrun)", "--set train.device=cpu");
  }
  const at::ScalarType dtype = parse_dtype(recipe.model.dtype, "model.dtype");
  check_dtype_on_device(dtype, device, "model.dtype");
  if (!t.max_vram.empty()) {
    if (!device.is_cuda()) fail("train.max_vram '{}' applies to device cuda, not {}", t.max_vram, t.device);
    const uint64_t cap = parse_size(t.max_vram, "train.max_vram");
    check_memory_cap(cap, device, "train.max_vram");
    cap_cuda_memory(device, cap);
  }
  reset_peak_memory(device);
  enable_sync_debug_if_asked(device);
  return {device, dtype};
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{:.1f}s", seconds);
}

// The model a run trains: a causal LM, or (task: sequence_classification) a classifier.
struct RunModel {
  std::unique_ptr<CausalLM> lm;
  std::unique_ptr<SequenceClassifier> classifier;
  Model& model() const { return lm ? static_cast<Model&>(*lm) : *classifier; }
};

// A micro-batch's summed loss: next-token cross-entropy over its loss tokens, or the classifier's
// cross-entropy over its rows.
at::Tensor batch_loss_sum(const RunModel& run, const DeviceBatch& x, int64_t chunk_tokens) {
  if (run.classifier) return classification_loss_sum(run.classifier->logits(x.input_ids, x.layout), x.class_labels);
  return loss_sum(*run.lm, x.input_ids, x.layout, x.labels, chunk_tokens);
}

// The run's data, read once before anything is written: statistics (a file with no training
// example fails here), the batching, and how many steps the schedule spans.
struct DataPlan {
  data::BatchStream::Opener open;
  data::ExampleBuilder train_rows, valid_rows;
  std::vector<std::string> labels;  // sequence classification: the training rows' labels, in id order
  bool has_validation = false;
  data::BatchConfig batches;
  int64_t batches_per_epoch = 0, steps_per_epoch = 0, total_steps = 0, warmup = 0;
};

DataPlan plan_data(const Recipe& recipe, const tokenizers::Tokenizer& tokenizer, bool quiet, int world_size) {
  const TrainSection& t = recipe.train;
  DataPlan plan{[&recipe] { return data::open_records(recipe.data.path, data::reader_options(recipe.data)); },
                data::ExampleBuilder(tokenizer, recipe.data, "recipe data", data::Split::Train),
                data::ExampleBuilder(tokenizer, recipe.data, "recipe data", data::Split::Validation)};
  plan.has_validation = !recipe.data.validation_value.empty() || recipe.data.validation_fraction > 0;
  if (classifies(recipe)) {
    if (t.packing) fail("{}: train.packing does not apply to task: sequence_classification (one label per row); hint: set train.packing: false", recipe.source);
    auto reader = plan.open();
    plan.labels = data::collect_labels(*reader, plan.train_rows, recipe.data.path);
    if (plan.labels.size() < 2)
      fail("{}: column '{}' of the training rows holds one label only ('{}'); a classifier needs at least 2", recipe.data.path,
           recipe.data.label_column, plan.labels.front());
    plan.train_rows.set_labels(plan.labels);
    plan.valid_rows.set_labels(plan.labels);
    if (!quiet) fmt::print("labels ({}): {}\n", plan.labels.size(), fmt::join(plan.labels, ", "));
  }
  {
    auto reader = plan.open();
    const auto stats = data::DataStats::scan(*reader, plan.train_rows);
    if (!quiet) fmt::print("{}", stats.report());
    if (stats.kept == 0) fail("{}: no training examples; see the statistics above", recipe.data.path);
  }
  // Under torchrun a micro-batch holds every rank's rows, in one seeded order; rank r takes its slice.
  plan.batches.batch_size = t.per_device_train_batch_size * world_size;
  plan.batches.shuffle_buffer = t.shuffle_buffer;
  plan.batches.seed = t.seed;
  plan.batches.packing = t.packing;
  plan.batches.pack_length = recipe.data.max_seq_len > 0 ? recipe.data.max_seq_len : 2048;
  plan.batches.pad_id = tokenizer.special().pad.value_or(tokenizer.special().eos.value_or(0));
  // A decoder classifier finds each row's last token by config.json's pad_token_id: pad with it.
  if (classifies(recipe)) {
    const nlohmann::json& config = open_hf_model_dir(recipe.model.path).config;
    if (config.contains("pad_token_id") && config["pad_token_id"].is_number_integer())
      plan.batches.pad_id = config["pad_token_id"].get<int32_t>();
  }
  // One pass to count the batches (and, packed, the tokens packing saves against padding).
  const auto padded_tokens = [&](const data::BatchConfig& config, int64_t* batches) {
    data::BatchStream count(plan.open, plan.train_rows, config);
    int64_t tokens = 0;
    for (data::Batch b; count.next(b);) tokens += b.rows * b.cols, *batches += 1;
    return tokens;
  };
  const int64_t tokens = padded_tokens(plan.batches, &plan.batches_per_epoch);
  if (t.packing && !quiet) {
    data::BatchConfig unpacked = plan.batches;
    unpacked.packing = false;
    int64_t unpacked_batches = 0;
    const int64_t without = padded_tokens(unpacked, &unpacked_batches);
    const double change = 100.0 * (static_cast<double>(tokens) / static_cast<double>(std::max<int64_t>(without, 1)) - 1.0);
    fmt::print("packing: {} batches per epoch of {} rows x up to {} tokens: {} token slots, against {} in {} batches "
               "padded one example per row ({:.1f}% {}){}\n", plan.batches_per_epoch, t.per_device_train_batch_size,
               plan.batches.pack_length, with_commas(tokens), with_commas(without), unpacked_batches, std::abs(change),
               change <= 0 ? "fewer" : "more",
               change > 0 ? "; hint: examples this long fill the rows alone, raise data.max_seq_len or turn packing off" : "");
  }
  plan.steps_per_epoch = (plan.batches_per_epoch + t.gradient_accumulation_steps - 1) / t.gradient_accumulation_steps;
  plan.total_steps = t.max_steps > 0 ? t.max_steps : t.num_train_epochs * plan.steps_per_epoch;
  plan.warmup = t.warmup_steps > 0 ? t.warmup_steps
                                   : static_cast<int64_t>(std::ceil(t.warmup_ratio * static_cast<double>(plan.total_steps)));
  return plan;
}

// The next optimizer step's micro-batches: up to gradient_accumulation_steps, fewer at the end of an
// epoch; the next epoch starts when one is left. Empty when the epochs are done (`data_done`).
std::vector<data::Batch> next_micro_batches(data::BatchStream& stream, const TrainSection& t, bool& data_done) {
  std::vector<data::Batch> micro;
  data::Batch b;
  while (static_cast<int64_t>(micro.size()) < t.gradient_accumulation_steps) {
    if (stream.next(b)) {
      micro.push_back(std::move(b));
      continue;
    }
    if (!micro.empty()) break;
    if (t.max_steps == 0 && stream.cursor().epoch + 1 >= t.num_train_epochs) {
      data_done = true;
      break;
    }
    stream.next_epoch();
  }
  return micro;
}

// Forward and backward over the step's micro-batches, the loss normalised by the step's loss tokens
// across all of them and multiplied by `scale` (fp16's loss scale). Returns the summed loss, still
// on the device. An out-of-memory error names the settings that would lower the need.
at::Tensor forward_backward(const RunModel& run, const std::vector<data::Batch>& micro, int64_t loss_tokens,
                            double scale, const TrainSection& t, int64_t step, const at::Device& device,
                            const World& world) {
  at::Tensor sum;
  try {
    for (const auto& global : micro) {
      // This rank's rows of the micro-batch (all of them in one process); none in an uneven last one.
      const data::Batch m = world.distributed() ? data::slice_rows(global, global.rows * world.rank() / world.size(),
                                                                   global.rows * (world.rank() + 1) / world.size())
                                                : global;
      if (m.rows == 0) continue;
      const DeviceBatch x = to_device(m, device);
      const double weight = scale / static_cast<double>(std::max<int64_t>(loss_tokens, 1));
      at::Tensor s;
      if (run.classifier) {
        s = batch_loss_sum(run, x, 0);
        (s * weight).backward();
        s = s.detach();
      } else {
        s = loss_and_backward(*run.lm, x.input_ids, x.layout, x.labels, weight, t.loss_chunk_tokens);
      }
      sum = sum.defined() ? sum + s : s;
    }
  } catch (const c10::OutOfMemoryError&) {
    fail("{}out of memory at step {} ({} rows x {} tokens){}; lower train.per_device_train_batch_size (raise "
         "gradient_accumulation_steps to keep the batch), data.max_seq_len or lora.r, or turn on "
         "train.gradient_checkpointing and train.loss_chunk_tokens", world.distributed() ? fmt::format("rank {}: ", world.rank()) : "",
         step, micro.front().rows / world.size(), micro.front().cols,
         t.max_vram.empty() ? "" : fmt::format(" under train.max_vram {}", t.max_vram));
  }
  if (!sum.defined()) sum = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
  return sum;
}

// Sums every rank's LoRA gradients (and the loss) in one flat bucket; a rank without rows this
// step adds zeros.
void all_reduce_gradients(std::vector<at::Tensor>& params, at::Tensor& loss_sum, const World& world, int64_t step) {
  if (!world.distributed()) return;
  std::vector<at::Tensor> flat;
  for (at::Tensor& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    flat.push_back(p.grad().reshape({-1}));
  }
  flat.push_back(loss_sum.to(params.front().scalar_type()).reshape({1}));
  at::Tensor bucket = at::cat(flat);
  world.all_reduce_sum(bucket, fmt::format("step {}", step));
  int64_t offset = 0;
  for (at::Tensor& p : params) {
    p.mutable_grad().copy_(bucket.slice(0, offset, offset + p.numel()).view_as(p));
    offset += p.numel();
  }
  loss_sum = bucket[offset].to(loss_sum.scalar_type());
}

// The mean token loss over the validation rows (a classifier's: the mean loss per row, and its
// metrics in `metrics`), in file order, unpacked, without dropout.
double evaluate(const RunModel& run, lora::LoraModel& lora, const DataPlan& plan, const TrainSection& t,
                const at::Device& device, const World& world, std::optional<ClassificationMetrics>* metrics) {
  c10::NoGradGuard no_grad;
  lora.set_training(false);
  data::BatchConfig in_order = plan.batches;
  in_order.shuffle_buffer = 1;
  in_order.packing = false;
  data::BatchStream stream(plan.open, plan.valid_rows, in_order);
  double sum = 0;
  int64_t tokens = 0;
  std::vector<int64_t> labels, predictions;
  for (data::Batch global; stream.next(global);) {
    // Under torchrun each rank scores its rows of the batch; the sums are added up below.
    const data::Batch b = world.distributed() ? data::slice_rows(global, global.rows * world.rank() / world.size(),
                                                                 global.rows * (world.rank() + 1) / world.size())
                                              : global;
    if (b.rows == 0) continue;
    const DeviceBatch x = to_device(b, device);
    if (run.classifier) {
      const at::Tensor logits = run.classifier->logits(x.input_ids, x.layout);  // (B, K)
      sum += classification_loss_sum(logits, x.class_labels).item<double>();
      const at::Tensor predicted = at::argmax(logits, -1).to(at::kCPU).contiguous();  // (B): one copy per batch
      labels.insert(labels.end(), b.class_labels.begin(), b.class_labels.end());
      predictions.insert(predictions.end(), predicted.data_ptr<int64_t>(), predicted.data_ptr<int64_t>() + b.rows);
    } else {
      sum += batch_loss_sum(run, x, t.loss_chunk_tokens).item<double>();
    }
    tokens += b.loss_tokens;
  }
  lora.set_training(true);
  // Under torchrun the metrics are rank 0's rows' (the loss below is every rank's).
  if (run.classifier && metrics && !labels.empty())
    *metrics = classification_metrics(labels, predictions, run.classifier->num_labels());
  if (world.distributed()) {
    at::Tensor totals = at::tensor({sum, static_cast<double>(tokens)}, at::TensorOptions().dtype(at::kDouble)).to(world.device());
    world.all_reduce_sum(totals, "the evaluation");
    totals = totals.to(at::kCPU);
    sum = totals[0].item<double>();
    tokens = static_cast<int64_t>(totals[1].item<double>());
  }
  return tokens ? sum / static_cast<double>(tokens) : NAN;
}

void write_summary(const fs::path& run_dir, const Recipe& recipe, const lora::LoraModel& lora, const TrainState& s,
                   const std::vector<double>& peaks_per_rank, const std::optional<ClassificationMetrics>& metrics) {
  nlohmann::json summary = {
      {"model", recipe.model.path}, {"steps", s.step}, {"tokens", s.tokens}, {"wall_seconds", s.seconds},
      {"tokens_per_s", s.seconds > 0 ? static_cast<double>(s.tokens) / s.seconds : 0.0},
      {"final_loss", s.last_loss}, {"mean_loss", s.step ? s.loss_sum / static_cast<double>(s.step) : NAN},
      {"best_eval_loss", std::isfinite(s.best_eval) ? nlohmann::json(s.best_eval) : nlohmann::json()},
      {"trainable_params", lora.trainable_parameters}, {"all_params", lora.all_parameters},
      {"peak_memory_bytes", s.peak_memory}, {"peak_reserved_bytes", s.peak_reserved},
      {"device", recipe.train.device}, {"dtype", recipe.model.dtype}, {"lora_target_modules", lora.adapters.size()},
      {"r", lora.config.r}, {"lora_alpha", lora.config.lora_alpha}, {"world_size", s.world_size}};
  if (peaks_per_rank.size() > 1) summary["peak_memory_bytes_per_rank"] = peaks_per_rank;
  summary["task"] = recipe.task;
  if (metrics) {  // the last validation of a classifier
    summary["eval_accuracy"] = metrics->accuracy;
    summary["eval_macro_f1"] = metrics->macro.f1;
    summary["eval_micro_f1"] = metrics->micro.f1;
    summary["eval_macro_precision"] = metrics->macro.precision;
    summary["eval_macro_recall"] = metrics->macro.recall;
    summary["eval_examples"] = metrics->examples;
  }
  write_text_atomically(run_dir / "summary.json", summary.dump(1) + "\n");
}

}  // namespace

TrainResult train(const Recipe& recipe, const TrainOptions& options) {
  const TrainSection& t = recipe.train;
  validate(t);
  // From here on Ctrl-C / SIGTERM finish the current step and save a checkpoint instead of killing
  // the process (before any step: a clean exit with nothing to save).
  g_stop = false;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Under torchrun: this rank's place in the process group (one process otherwise).
  const World world(t.distributed_backend, t.device.starts_with("cuda") ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU));
  const auto [device, dtype] = prepare_device(recipe, world);
  const fs::path run_dir = recipe.output.dir;
  if (fs::exists(run_dir) && !options.resume && !options.overwrite)
    fail("{}: the run directory exists; hint: --resume to continue it, --overwrite to replace it, or set output.dir",
         run_dir.string());
  // Rank 0 alone prints and writes; the others train their share in step.
  const bool quiet = options.quiet || !world.main();
  const auto say = [&](const std::string& text) {
    if (!quiet) fmt::print("{}", text);
  };
  if (world.distributed())
    say(fmt::format("torchrun: {} rank{} over {} ({}), {} rows of each micro-batch per rank\n", world.size(),
                    world.size() == 1 ? "" : "s", world.backend(), device.is_cuda() ? "one GPU each" : "CPU", t.per_device_train_batch_size));

  // 1. Data (statistics first, so bad input fails before anything is written), model and adapters.
  // Pre-tokenized rows need no tokenizer files; the pad id then comes from config.json.
  const auto tokenizer = recipe.data.ids_column.empty() ? tokenizers::load_tokenizer(recipe.model.path)
                                                        : tokenizers::load_tokenizer_or_ids_only(recipe.model.path);
  const DataPlan plan = plan_data(recipe, tokenizer, quiet, world.size());
  RunModel run;
  lora::LoraConfig lora_config = recipe.lora;
  if (classifies(recipe)) {
    // A base model's head is new (initialised from the seed); a classifier checkpoint's is read.
    auto loaded = load_hf_classifier(recipe.model.path, {dtype, device, quantize_config(recipe.model)},
                                     static_cast<int64_t>(plan.labels.size()), plan.batches.pad_id, t.seed);
    run.classifier = std::move(loaded.model);
    say(fmt::format("{} with {} labels ({})\n", run.classifier->summary().architecture, plan.labels.size(),
                    loaded.head_initialized ? fmt::format("a new {} head", run.classifier->head_module())
                                            : fmt::format("the checkpoint's {} head", run.classifier->head_module())));
    // PEFT's SEQ_CLS: the heads trained whole and saved with the adapter.
    lora_config.task_type = "SEQ_CLS";
    for (const char* head : {"classifier", "score"})
      if (std::find(lora_config.modules_to_save.begin(), lora_config.modules_to_save.end(), head) == lora_config.modules_to_save.end())
        lora_config.modules_to_save.push_back(head);
  } else {
    run.lm = load_hf_model(recipe.model.path, {dtype, device, quantize_config(recipe.model)});
    if (t.packing && !run.lm->masks_padding())
      fail("{}: train.packing keeps packed examples apart through the attention mask, and {} (a recurrent model) has "
           "none; hint: set train.packing: false", recipe.model.path, run.lm->summary().model_type);
  }
  Model& model = run.model();
  model.set_activation_recompute(t.gradient_checkpointing);
  auto lora = lora::inject_lora(model, lora_config, t.seed);
  if (!options.adapter.empty()) load_peft_adapter_weights(options.adapter, lora);
  say(lora.trainable_line() + "\n" + lora.modules_line() + "\n");
  std::vector<at::Tensor> params;
  for (auto& [name, p] : lora.named_parameters()) params.push_back(p);
  AdamW adam{t.adam_beta1, t.adam_beta2, t.adam_epsilon, t.weight_decay, /*fused=*/device.is_cuda()};
  at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();
  cpu_generator.set_current_seed(t.seed);
  if (device.is_cuda()) at::Generator(at::globalContext().defaultGenerator(device)).set_current_seed(t.seed);

  // 2. The run directory: fresh, replaced, or resumed from its newest checkpoint.
  TrainState state;
  state.world_size = world.size();
  world.barrier("start");  // every rank has looked at the run directory before rank 0 changes it
  if (options.resume && fs::exists(run_dir)) {
    const fs::path checkpoint = newest_checkpoint(run_dir);
    if (checkpoint.empty()) fail("{}: no checkpoint to resume from; hint: start over with --overwrite", run_dir.string());
    state = load_checkpoint(checkpoint, lora, adam, cpu_generator, device);
    if (state.world_size != world.size())
      fail("{}: written by {} rank{} and resumed with {}: each step's micro-batches are split over the ranks, so the "
           "batch and the data cursor depend on their number; hint: resume with torchrun --nproc-per-node {}{}",
           checkpoint.string(), state.world_size, state.world_size == 1 ? "" : "s", world.size(), state.world_size,
           state.world_size == 1 ? " (or without torchrun)" : "");
    say(fmt::format("resuming {} at step {} (epoch {}, batch {})\n", run_dir.string(), state.step, state.cursor.epoch,
                    state.cursor.batch));
  } else if (world.main()) {
    if (options.overwrite) fs::remove_all(run_dir);
    fs::create_directories(run_dir);
  }
  std::optional<MetricsWriter> metrics;
  if (world.main()) {
    write_text_atomically(run_dir / "recipe.yaml", recipe_yaml(recipe));
    const bool tensorboard = std::find(t.report_to.begin(), t.report_to.end(), "tensorboard") != t.report_to.end();
    metrics.emplace(run_dir, options.resume ? state.step : -1, tensorboard);
    if (!options.resume) metrics->recipe_text(recipe_yaml(recipe));
  }

  // 3. The loop: one optimizer step per iteration.
  const bool fp16 = recipe.model.dtype == "fp16";
  const bool tty = ::isatty(STDOUT_FILENO) && !quiet;
  data::BatchStream stream(plan.open, plan.train_rows, plan.batches, state.cursor);
  const auto run_start = Clock::now();
  const double seconds_before = state.seconds;
  bool stop_early = false, data_done = false;
  std::optional<ClassificationMetrics> class_metrics;  // a classifier's last validation
  while (state.step < plan.total_steps && !stop_early && !data_done) {
    const auto step_start = Clock::now();
    const std::vector<data::Batch> micro = next_micro_batches(stream, t, data_done);
    if (micro.empty()) break;
    int64_t loss_tokens = 0, tokens = 0;
    for (const auto& m : micro) {
      loss_tokens += m.loss_tokens;
      for (int32_t v : m.attention_mask) tokens += v;
    }
    // Forward, backward, (fp16: unscale; an overflow skips the update), clip, AdamW.
    for (at::Tensor& p : params)
      if (p.grad().defined()) p.mutable_grad().zero_();
    at::Tensor sum = forward_backward(run, micro, loss_tokens, fp16 ? state.loss_scale.scale : 1.0, t,
                                      state.step + 1, device, world);
    all_reduce_gradients(params, sum, world, state.step + 1);
    const at::Tensor found_inf = fp16 ? state.loss_scale.unscale(params) : at::zeros_like(sum);
    const at::Tensor grad_norm_tensor = clip_grad_norm(params, t.max_grad_norm);
    // The step's one host synchronisation: loss, gradient norm and overflow flag read together.
    const at::Tensor read = at::stack({sum, grad_norm_tensor.to(sum.device(), at::kFloat), found_inf}).to(at::kCPU, at::kDouble);
    const double loss_sum = read[0].item<double>(), grad_norm = read[1].item<double>();
    const bool finite = read[2].item<double>() == 0;
    if (fp16) state.loss_scale.update(!finite);
    const double lr = t.learning_rate * lr_lambda(t.lr_scheduler_type, state.step, plan.warmup, plan.total_steps);
    if (finite) adam.update(params, lr);
    ++state.step;
    state.cursor = stream.cursor();
    const double loss = loss_sum / static_cast<double>(std::max<int64_t>(loss_tokens, 1));
    state.loss_sum += loss;
    state.last_loss = loss;
    state.tokens += tokens;
    const double step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    state.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - run_start).count();

    // Log: metrics.h5/csv every step, a progress line (in place on a terminal, else every logging_steps).
    const Memory mem = memory_now(device);
    state.peak_memory = std::max(state.peak_memory, mem.peak);
    state.peak_reserved = std::max(state.peak_reserved, mem.reserved);
    const double epoch = static_cast<double>(state.cursor.epoch) + static_cast<double>(state.cursor.batch) /
                                                                       static_cast<double>(std::max<int64_t>(plan.batches_per_epoch, 1));
    if (metrics) metrics->append({static_cast<double>(state.step), epoch, loss, lr, grad_norm, tokens / step_seconds, mem.allocated,
                    mem.reserved, mem.peak, fp16 ? state.loss_scale.scale : 0.0});
    const double eta = state.seconds / static_cast<double>(state.step) * static_cast<double>(plan.total_steps - state.step);
    const std::string line = fmt::format(
        "step {}/{} ({:.0f}%) epoch {:.2f} loss {:.4f} lr {:.3g} grad_norm {:.3f} tok/s {} mem {} peak {} elapsed {} ETA {}",
        state.step, plan.total_steps, 100.0 * static_cast<double>(state.step) / static_cast<double>(plan.total_steps),
        epoch, loss, lr, grad_norm, with_commas(static_cast<int64_t>(tokens / step_seconds)), human_bytes(mem.allocated),
        human_bytes(mem.peak), duration(state.seconds), duration(eta));
    if (tty)
      fmt::print("\r{}\x1b[K", line), std::fflush(stdout);
    else if (!quiet && (state.step % std::max<int64_t>(t.logging_steps, 1) == 0 || state.step == plan.total_steps))
      fmt::print("{}\n", line);

    // Evaluate every eval_steps (or at the end of each epoch), with early stopping.
    const bool epoch_end = state.step % std::max<int64_t>(plan.steps_per_epoch, 1) == 0;
    if (plan.has_validation && ((t.eval_steps > 0 && state.step % t.eval_steps == 0) || (t.eval_steps == 0 && epoch_end))) {
      const double eval_loss = evaluate(run, lora, plan, t, device, world, &class_metrics);
      if (metrics) metrics->append_eval(state.step, eval_loss);
      if (tty) fmt::print("\n");
      if (class_metrics)
        say(fmt::format("eval step {}: loss {:.4f} accuracy {:.4f} macro F1 {:.4f} ({} rows)\n", state.step, eval_loss,
                        class_metrics->accuracy, class_metrics->macro.f1, class_metrics->examples));
      else
        say(fmt::format("eval step {}: loss {:.4f} perplexity {:.3f}\n", state.step, eval_loss, std::exp(eval_loss)));
      if (eval_loss < state.best_eval) {
        state.best_eval = eval_loss;
        state.evals_without_improvement = 0;
      } else if (t.early_stopping_patience > 0 && ++state.evals_without_improvement >= t.early_stopping_patience) {
        say(fmt::format("early stopping: no better validation loss in {} evaluations\n", t.early_stopping_patience));
        stop_early = true;
      }
    }
    // Checkpoint every save_steps, and when interrupted.
    if (((t.save_steps > 0 && state.step % t.save_steps == 0) || g_stop) && world.main())
      save_checkpoint(run_dir, lora, adam, state, recipe.model.path, t.save_total_limit, device);
    if (g_stop) {
      if (tty) fmt::print("\n");
      say(fmt::format("interrupted: saved {}/checkpoints/step-{}; continue with --resume\n", run_dir.string(), state.step));
      return {run_dir, {}, state.step, true};
    }
  }
  if (tty) fmt::print("\n");

  // 4. The adapter and the summary.
  const fs::path adapter_dir = run_dir / "adapter";
  state.peak_memory = std::max(state.peak_memory, memory_now(device).peak);
  // Every rank's peak, and the largest as the run's.
  const std::vector<double> peaks = world.gather(state.peak_memory, "the memory report");
  state.peak_memory = *std::max_element(peaks.begin(), peaks.end());
  if (!world.main()) return {run_dir, adapter_dir, state.step, false};
  save_peft_adapter(adapter_dir, lora, recipe.model.path, /*overwrite=*/true);
  if (run.classifier) save_classifier_labels(adapter_dir, plan.labels, plan.batches.pad_id);
  write_summary(run_dir, recipe, lora, state, peaks, class_metrics);
  say(fmt::format("done: {} steps in {}, final loss {:.4f}; adapter: {}\n", state.step, duration(state.seconds),
                  state.last_loss, adapter_dir.string()));
  return {run_dir, adapter_dir, state.step, false};
}

}  // namespace lorakit::trainer
