#include "trainer/train.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <numbers>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"
#include "data/batches.h"
#include "data/stats.h"
#include "trainer/loss.h"
#include "trainer/merge.h"
#include "trainer/memory.h"
#include "trainer/metrics.h"

namespace lorakit::trainer {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// --- small pieces the loop uses -------------------------------------------------------------

at::ScalarType dtype_of(const std::string& precision) {
  if (precision == "fp32") return at::kFloat;
  if (precision == "bf16") return at::kBFloat16;
  if (precision == "fp16") return at::kHalf;
  fail("train.precision '{}': expected fp32, bf16 or fp16", precision);
}

// HF's schedules (transformers.optimization): the multiplier of the peak lr at optimizer step `step`.
double lr_lambda(const std::string& type, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (type == "constant") return 1.0;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (type == "linear") return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));  // cosine
}

// AdamW exactly as torch.optim.AdamW's single-tensor path computes it.
struct AdamW {
  double beta1, beta2, eps, weight_decay;
  int64_t step = 0;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;

  void update(std::vector<at::Tensor>& params, double lr) {
    c10::NoGradGuard no_grad;
    if (exp_avg.empty())
      for (const at::Tensor& p : params) {
        exp_avg.push_back(at::zeros_like(p));
        exp_avg_sq.push_back(at::zeros_like(p));
      }
    ++step;
    const double bias1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double bias2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(step)));
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i];
      const at::Tensor grad = p.grad();
      if (!grad.defined()) continue;
      p.mul_(1 - lr * weight_decay);
      exp_avg[i].lerp_(grad, 1 - beta1);
      exp_avg_sq[i].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const at::Tensor denom = (exp_avg_sq[i].sqrt() / bias2_sqrt).add_(eps);
      p.addcdiv_(exp_avg[i], denom, -lr / bias1);
    }
  }
};

// torch.nn.utils.clip_grad_norm_: the total 2-norm before clipping.
double clip_grad_norm(std::vector<at::Tensor>& params, double max_norm) {
  c10::NoGradGuard no_grad;
  double total = 0;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) total += std::pow(p.grad().norm().item<double>(), 2);
  total = std::sqrt(total);
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (total + 1e-6));
    if (coef < 1.0)
      for (at::Tensor& p : params)
        if (p.grad().defined()) p.mutable_grad().mul_(coef);
  }
  return total;
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{:.1f}s", seconds);
}

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  fs::rename(tmp, path);
}

// A batch's (rows, cols) arrays as int64 tensors on the device: input ids, attention mask, labels.
struct BatchTensors {
  at::Tensor input_ids, attention_mask, labels;
};

BatchTensors to_tensors(const data::Batch& b, const at::Device& device) {
  const auto to = [&](const std::vector<int32_t>& v) {
    return at::from_blob(const_cast<int32_t*>(v.data()), {b.rows, b.cols}, at::kInt).to(device, at::kLong);  // (B, T)
  };
  return {to(b.input_ids), to(b.attention_mask), to(b.labels)};
}

// The checkpoint a run can resume from: adapter, optimizer moments and where the data stood.
struct TrainState {
  int64_t step = 0;
  data::Cursor cursor;
  double loss_scale = 65536.0;
  int64_t good_steps = 0;
  double best_eval = INFINITY;
  int64_t evals_without_improvement = 0;
  int64_t tokens = 0;
  double seconds = 0;
  double loss_sum = 0;  // sum of per-step losses, for the mean in the summary
  double last_loss = NAN;
  double peak_memory = 0, peak_reserved = 0;  // over all steps (CUDA: allocated / reserved; CPU: resident)
};

nlohmann::json state_json(const TrainState& s) {
  return {{"step", s.step}, {"cursor", s.cursor.to_json()}, {"loss_scale", s.loss_scale}, {"good_steps", s.good_steps},
          {"best_eval", std::isfinite(s.best_eval) ? nlohmann::json(s.best_eval) : nlohmann::json()},
          {"evals_without_improvement", s.evals_without_improvement}, {"tokens", s.tokens}, {"seconds", s.seconds},
          {"loss_sum", s.loss_sum}, {"last_loss", std::isfinite(s.last_loss) ? nlohmann::json(s.last_loss) : nlohmann::json()},
          {"peak_memory", s.peak_memory}, {"peak_reserved", s.peak_reserved}};
}

TrainState state_from_json(const nlohmann::json& j) {
  TrainState s;
  s.step = j.at("step");
  s.cursor = data::Cursor::from_json(j.at("cursor"));
  s.loss_scale = j.at("loss_scale");
  s.good_steps = j.at("good_steps");
  s.best_eval = j.at("best_eval").is_null() ? INFINITY : j.at("best_eval").get<double>();
  s.evals_without_improvement = j.at("evals_without_improvement");
  s.tokens = j.at("tokens");
  s.seconds = j.at("seconds");
  s.loss_sum = j.at("loss_sum");
  s.last_loss = j.at("last_loss").is_null() ? NAN : j.at("last_loss").get<double>();
  s.peak_memory = j.value("peak_memory", 0.0);
  s.peak_reserved = j.value("peak_reserved", 0.0);
  return s;
}

void save_checkpoint(const fs::path& run_dir, const lora::LoraModel& lora, const AdamW& adam, const TrainState& state,
                     const std::string& base_model, int64_t keep) {
  const fs::path dir = run_dir / "checkpoints" / fmt::format("step-{}", state.step);
  const fs::path tmp = run_dir / "checkpoints" / fmt::format(".step-{}.tmp", state.step);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_peft_adapter(tmp / "adapter", lora, base_model);
  std::vector<std::pair<std::string, at::Tensor>> moments;
  const auto names = lora.named_parameters();
  for (size_t i = 0; i < adam.exp_avg.size(); ++i) {
    moments.emplace_back("exp_avg." + names[i].first, adam.exp_avg[i].to(at::kCPU));
    moments.emplace_back("exp_avg_sq." + names[i].first, adam.exp_avg_sq[i].to(at::kCPU));
  }
  moments.emplace_back("rng_state", at::detail::getDefaultCPUGenerator().get_state());
  save_safetensors(tmp / "optimizer.safetensors", moments, {{"format", "pt"}, {"adam_step", std::to_string(adam.step)}});
  std::ofstream(tmp / "state.json") << state_json(state).dump(1) << "\n";
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  // Keep the newest `keep` checkpoints.
  std::vector<std::pair<int64_t, fs::path>> all;
  for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints")) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("step-")) all.emplace_back(std::stoll(name.substr(5)), entry.path());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_all(all[i].second);
}

fs::path newest_checkpoint(const fs::path& run_dir) {
  fs::path best;
  int64_t best_step = -1;
  if (fs::exists(run_dir / "checkpoints"))
    for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints")) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with("step-") || !fs::exists(entry.path() / "state.json")) continue;
      const int64_t step = std::stoll(name.substr(5));
      if (step > best_step) best_step = step, best = entry.path();
    }
  return best;
}

void validate(const TrainSection& t) {
  std::vector<std::string> problems;
  if (t.per_device_train_batch_size < 1) problems.push_back("train.per_device_train_batch_size must be >= 1");
  if (t.gradient_accumulation_steps < 1) problems.push_back("train.gradient_accumulation_steps must be >= 1");
  if (t.num_train_epochs < 1 && t.max_steps < 1) problems.push_back("train.num_train_epochs or train.max_steps must be >= 1");
  if (t.learning_rate <= 0) problems.push_back("train.learning_rate must be > 0");
  if (t.lr_scheduler_type != "constant" && t.lr_scheduler_type != "linear" && t.lr_scheduler_type != "cosine")
    problems.push_back(fmt::format("train.lr_scheduler_type '{}': expected constant, linear or cosine", t.lr_scheduler_type));
  if (t.device != "cpu" && !t.device.starts_with("cuda"))
    problems.push_back(fmt::format("train.device '{}': expected cpu or cuda", t.device));
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    fail("recipe: {}", all);
  }
  dtype_of(t.precision);
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
  const at::Device device(t.device);
  if (!t.max_vram.empty()) {
    if (!device.is_cuda()) fail("train.max_vram '{}' applies to device cuda, not {}", t.max_vram, t.device);
    cap_cuda_memory(device, parse_size(t.max_vram));
  }
  reset_peak_memory(device);
  const fs::path run_dir = recipe.output.dir;
  if (fs::exists(run_dir) && !options.resume && !options.overwrite)
    fail("{}: the run directory exists; hint: --resume to continue it, --overwrite to replace it, or set output.dir",
         run_dir.string());
  const auto say = [&](const std::string& text) {
    if (!options.quiet) fmt::print("{}", text);
  };

  // Data: statistics first, so bad input fails before anything is written.
  const auto tokenizer = tokenizers::load_tokenizer(recipe.model.path);
  const data::ExampleBuilder train_rows(tokenizer, recipe.data, "recipe data", data::Split::Train);
  const data::ExampleBuilder valid_rows(tokenizer, recipe.data, "recipe data", data::Split::Validation);
  const bool has_validation = !recipe.data.validation_value.empty() || recipe.data.validation_fraction > 0;
  const auto open = [&] { return data::open_records(recipe.data.path, data::reader_options(recipe.data)); };
  {
    auto reader = open();
    const auto stats = data::DataStats::scan(*reader, train_rows);
    say(stats.report());
    if (stats.kept == 0) fail("{}: no training examples; see the statistics above", recipe.data.path);
  }
  data::BatchConfig batches;
  batches.batch_size = t.per_device_train_batch_size;
  batches.shuffle_buffer = t.shuffle_buffer;
  batches.seed = t.seed;
  batches.packing = t.packing;
  batches.pack_length = recipe.data.max_seq_len > 0 ? recipe.data.max_seq_len : 2048;
  batches.pad_id = tokenizer.special().pad.value_or(tokenizer.special().eos.value_or(0));
  int64_t batches_per_epoch = 0;
  {
    data::BatchStream count(open, train_rows, batches);
    data::Batch b;
    while (count.next(b)) ++batches_per_epoch;
  }
  const int64_t steps_per_epoch = (batches_per_epoch + t.gradient_accumulation_steps - 1) / t.gradient_accumulation_steps;
  const int64_t total_steps = t.max_steps > 0 ? t.max_steps : t.num_train_epochs * steps_per_epoch;
  const int64_t warmup = t.warmup_steps > 0 ? t.warmup_steps
                                            : static_cast<int64_t>(std::ceil(t.warmup_ratio * static_cast<double>(total_steps)));

  // Model and adapters.
  auto model = load_hf_model(recipe.model.path, {dtype_of(t.precision), device});
  model->set_activation_recompute(t.gradient_checkpointing);
  auto lora = lora::inject_lora(*model, recipe.lora, t.seed);
  if (!options.adapter.empty()) load_peft_adapter_weights(options.adapter, lora);
  say(lora.trainable_line() + "\n");
  {
    // The matched modules, grouped by their last name: "q_proj x4, k_proj x4 (model.layers.0-3)".
    std::vector<std::pair<std::string, int>> groups;
    for (const auto& a : lora.adapters) {
      const std::string last = a.module.substr(a.module.rfind('.') + 1);
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == last; });
      if (it == groups.end()) groups.emplace_back(last, 1); else ++it->second;
    }
    std::string list;
    for (const auto& [name, count] : groups) list += fmt::format("{}{} x{}", list.empty() ? "" : ", ", name, count);
    say(fmt::format("LoRA on {} modules (r={}, lora_alpha={}, scaling {:.4g}): {}; first {}, last {}\n",
                    lora.adapters.size(), lora.config.r, lora.config.lora_alpha, lora.config.scaling(), list,
                    lora.adapters.front().module, lora.adapters.back().module));
  }
  std::vector<at::Tensor> params;
  for (auto& [name, p] : lora.named_parameters()) params.push_back(p);
  AdamW adam{t.adam_beta1, t.adam_beta2, t.adam_epsilon, t.weight_decay, 0, {}, {}};
  at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();
  cpu_generator.set_current_seed(t.seed);

  // The run directory: fresh, replaced, or resumed from its newest checkpoint.
  TrainState state;
  if (options.resume && fs::exists(run_dir)) {
    const fs::path checkpoint = newest_checkpoint(run_dir);
    if (checkpoint.empty()) fail("{}: no checkpoint to resume from; hint: start over with --overwrite", run_dir.string());
    load_peft_adapter_weights(checkpoint / "adapter", lora);
    const SafetensorsFile moments(checkpoint / "optimizer.safetensors");
    const auto names = lora.named_parameters();
    for (const auto& [name, p] : names) {
      adam.exp_avg.push_back(moments.tensor("exp_avg." + name).to(device));
      adam.exp_avg_sq.push_back(moments.tensor("exp_avg_sq." + name).to(device));
    }
    adam.step = std::stoll(moments.metadata().at("adam_step"));
    cpu_generator.set_state(moments.tensor("rng_state"));
    state = state_from_json(nlohmann::json::parse(std::ifstream(checkpoint / "state.json")));
    say(fmt::format("resuming {} at step {} (epoch {}, batch {})\n", run_dir.string(), state.step, state.cursor.epoch,
                    state.cursor.batch));
  } else {
    if (options.overwrite) fs::remove_all(run_dir);
    fs::create_directories(run_dir);
  }
  Recipe resolved = recipe;
  write_atomically(run_dir / "recipe.yaml", recipe_yaml(resolved));
  MetricsWriter metrics(run_dir, options.resume ? state.step : -1);


  // Evaluation: the mean token loss over the validation rows.
  const auto evaluate = [&]() -> double {
    c10::NoGradGuard no_grad;
    lora.set_training(false);
    data::BatchConfig in_order = batches;
    in_order.shuffle_buffer = 1;
    in_order.packing = false;
    data::BatchStream stream(open, valid_rows, in_order);
    data::Batch b;
    double sum = 0;
    int64_t tokens = 0;
    while (stream.next(b)) {
      const BatchTensors x = to_tensors(b, device);
      sum += loss_sum(*model, x.input_ids, x.attention_mask, x.labels, t.loss_chunk_tokens).item<double>();
      tokens += b.loss_tokens;
    }
    lora.set_training(true);
    return tokens ? sum / static_cast<double>(tokens) : NAN;
  };

  // The loop.
  const bool fp16 = t.precision == "fp16";
  const bool tty = ::isatty(STDOUT_FILENO) && !options.quiet;
  data::BatchStream stream(open, train_rows, batches, state.cursor);
  const auto run_start = Clock::now();
  const double seconds_before = state.seconds;
  bool stop_early = false, data_done = false;
  while (state.step < total_steps && !stop_early && !data_done) {
    const auto step_start = Clock::now();
    // 1. The step's micro-batches (fewer at the end of an epoch).
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
    if (micro.empty()) break;
    int64_t loss_tokens = 0, tokens = 0;
    for (const auto& m : micro) {
      loss_tokens += m.loss_tokens;
      for (int32_t v : m.attention_mask) tokens += v;
    }
    // 2. Forward and backward; the loss is normalised by the step's loss tokens across micro-batches.
    for (at::Tensor& p : params)
      if (p.grad().defined()) p.mutable_grad().zero_();
    const double scale = fp16 ? state.loss_scale : 1.0;
    at::Tensor loss_sum_tensor;
    try {
    for (const auto& m : micro) {
      const BatchTensors x = to_tensors(m, device);
      const at::Tensor sum = loss_and_backward(*model, x.input_ids, x.attention_mask, x.labels,
                                               scale / static_cast<double>(std::max<int64_t>(loss_tokens, 1)),
                                               t.loss_chunk_tokens);
      loss_sum_tensor = loss_sum_tensor.defined() ? loss_sum_tensor + sum : sum;
    }
    } catch (const c10::OutOfMemoryError& e) {
      fail("out of memory at step {} ({} rows x {} tokens){}; lower train.per_device_train_batch_size (raise "
           "gradient_accumulation_steps to keep the batch), data.max_seq_len or lora.r, or turn on "
           "train.gradient_checkpointing and train.loss_chunk_tokens", state.step + 1, micro.front().rows,
           micro.front().cols, t.max_vram.empty() ? "" : fmt::format(" under train.max_vram {}", t.max_vram));
    }
    const double loss_sum = loss_sum_tensor.item<double>();  // the step's one host synchronisation for the loss
    // 3. fp16: unscale, and skip the step on inf/nan with a smaller scale.
    bool finite = true;
    if (fp16) {
      c10::NoGradGuard no_grad;
      for (at::Tensor& p : params)
        if (p.grad().defined()) {
          p.mutable_grad().div_(scale);
          finite = finite && at::isfinite(p.grad()).all().item<bool>();
        }
      if (!finite) {
        state.loss_scale /= 2;
        state.good_steps = 0;
      } else if (++state.good_steps % 2000 == 0) {
        state.loss_scale *= 2;
      }
    }
    // 4. Clip and step.
    const double grad_norm = clip_grad_norm(params, t.max_grad_norm);
    const double lr = t.learning_rate * lr_lambda(t.lr_scheduler_type, state.step, warmup, total_steps);
    if (finite) adam.update(params, lr);
    ++state.step;
    state.cursor = stream.cursor();
    const double loss = loss_sum / static_cast<double>(std::max<int64_t>(loss_tokens, 1));
    state.loss_sum += loss;
    state.last_loss = loss;
    state.tokens += tokens;
    const double step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    state.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - run_start).count();
    // 5. Log.
    const Memory mem = memory_now(device);
    state.peak_memory = std::max(state.peak_memory, mem.peak);
    state.peak_reserved = std::max(state.peak_reserved, mem.reserved);
    const double epoch = static_cast<double>(state.cursor.epoch) +
                         static_cast<double>(state.cursor.batch) / static_cast<double>(std::max<int64_t>(batches_per_epoch, 1));
    metrics.append({static_cast<double>(state.step), epoch, loss, lr, grad_norm, tokens / step_seconds, mem.allocated,
                    mem.reserved, mem.peak});
    const double eta = state.seconds / static_cast<double>(state.step) * static_cast<double>(total_steps - state.step);
    const std::string line = fmt::format(
        "step {}/{} ({:.0f}%) epoch {:.2f} loss {:.4f} lr {:.3g} grad_norm {:.3f} tok/s {} mem {} peak {} elapsed {} ETA {}",
        state.step, total_steps, 100.0 * static_cast<double>(state.step) / static_cast<double>(total_steps), epoch, loss, lr,
        grad_norm, with_commas(static_cast<int64_t>(tokens / step_seconds)), human_bytes(mem.allocated),
        human_bytes(mem.peak), duration(state.seconds), duration(eta));
    if (tty)
      fmt::print("\r{}\x1b[K", line), std::fflush(stdout);
    else if (!options.quiet && (state.step % std::max<int64_t>(t.logging_steps, 1) == 0 || state.step == total_steps))
      fmt::print("{}\n", line);
    // 6. Evaluate every eval_steps (or at the end of each epoch), with early stopping.
    const bool epoch_end = state.step % std::max<int64_t>(steps_per_epoch, 1) == 0;
    if (has_validation && ((t.eval_steps > 0 && state.step % t.eval_steps == 0) || (t.eval_steps == 0 && epoch_end))) {
      const double eval_loss = evaluate();
      metrics.append_eval(state.step, eval_loss);
      if (tty) fmt::print("\n");
      say(fmt::format("eval step {}: loss {:.4f} perplexity {:.3f}\n", state.step, eval_loss, std::exp(eval_loss)));
      if (eval_loss < state.best_eval) {
        state.best_eval = eval_loss;
        state.evals_without_improvement = 0;
      } else if (t.early_stopping_patience > 0 && ++state.evals_without_improvement >= t.early_stopping_patience) {
        say(fmt::format("early stopping: no better validation loss in {} evaluations\n", t.early_stopping_patience));
        stop_early = true;
      }
    }
    // 7. Checkpoint every save_steps, and when interrupted.
    if ((t.save_steps > 0 && state.step % t.save_steps == 0) || g_stop)
      save_checkpoint(run_dir, lora, adam, state, recipe.model.path, t.save_total_limit);
    if (g_stop) {
      if (tty) fmt::print("\n");
      say(fmt::format("interrupted: saved {}/checkpoints/step-{}; continue with --resume\n", run_dir.string(), state.step));
      return {run_dir, {}, state.step, true};
    }
  }
  if (tty) fmt::print("\n");

  // The adapter and the summary.
  const fs::path adapter_dir = run_dir / "adapter";
  save_peft_adapter(adapter_dir, lora, recipe.model.path, /*overwrite=*/true);
  const Memory mem = memory_now(device);
  state.peak_memory = std::max(state.peak_memory, mem.peak);
  nlohmann::json summary = {
      {"model", recipe.model.path}, {"steps", state.step}, {"tokens", state.tokens}, {"wall_seconds", state.seconds},
      {"tokens_per_s", state.seconds > 0 ? static_cast<double>(state.tokens) / state.seconds : 0.0},
      {"final_loss", state.last_loss}, {"mean_loss", state.step ? state.loss_sum / static_cast<double>(state.step) : NAN},
      {"best_eval_loss", std::isfinite(state.best_eval) ? nlohmann::json(state.best_eval) : nlohmann::json()},
      {"trainable_params", lora.trainable_parameters}, {"all_params", lora.all_parameters},
      {"peak_memory_bytes", state.peak_memory}, {"peak_reserved_bytes", state.peak_reserved},
      {"device", t.device}, {"precision", t.precision}, {"lora_target_modules", lora.adapters.size()},
      {"r", lora.config.r}, {"lora_alpha", lora.config.lora_alpha}};
  write_atomically(run_dir / "summary.json", summary.dump(1) + "\n");
  say(fmt::format("done: {} steps in {}, final loss {:.4f}; adapter: {}\n", state.step, duration(state.seconds),
                  state.last_loss, adapter_dir.string()));
  return {run_dir, adapter_dir, state.step, false};
}

}  // namespace lorakit::trainer
