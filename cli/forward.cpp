// `lorakit forward MODEL_DIR --ids 1,2,3`: loads the weights, runs one forward pass over the ids
// and prints the next-token loss over them and the most likely next tokens. A smoke test of a
// model directory until tokenizers and generation land.
#include <chrono>

#include <ATen/ops/from_blob.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/topk.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include "checkpoints/hf_model.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "device/dtype.h"
#include "models/loss.h"

namespace lorakit::cli {

namespace {

void run_forward(const std::string& dir, const std::string& ids_text, const std::string& dtype_name, int top_k) {
  std::vector<int64_t> ids = parse_ids(ids_text);
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<CausalLM> model = load_hf_model(dir, {parse_dtype(dtype_name, "--dtype"), at::kCPU});
  auto t1 = std::chrono::steady_clock::now();

  for (int64_t id : ids)
    if (id >= model->vocab_size())
      fail("--ids: token id {} is out of range for this model's vocabulary of {}", id, model->vocab_size());

  c10::InferenceMode inference;
  const int64_t T = static_cast<int64_t>(ids.size());
  at::Tensor input = at::from_blob(ids.data(), {1, T}, at::kLong).clone();  // (1, T)
  at::Tensor logits = model->forward(input, at::ones_like(input));  // (1, T, V)
  auto t2 = std::chrono::steady_clock::now();
  const int64_t V = logits.size(-1);

  fmt::print("loaded {} in {:.2f} s ({}); forward over {} tokens in {:.3f} s\n", dir,
             std::chrono::duration<double>(t1 - t0).count(), dtype_name, T, std::chrono::duration<double>(t2 - t1).count());
  fmt::print("logits shape [1, {}, {}]\n", T, V);
  if (T > 1) fmt::print("next-token loss over the ids: {:.4f}\n", causal_lm_loss(logits, input).item<double>());
  at::Tensor last = at::log_softmax(logits[0][T - 1].to(at::kFloat), -1);
  auto [values, indices] = at::topk(last, std::min<int64_t>(top_k, V));
  fmt::print("most likely next tokens after id {}:\n", ids.back());
  for (int64_t i = 0; i < values.size(0); ++i)
    fmt::print("  id {:>7}  log p {:8.4f}\n", indices[i].item<int64_t>(), values[i].item<double>());
}

}  // namespace

void add_forward(CLI::App& app) {
  auto* cmd = app.add_subcommand("forward", "Run one forward pass over token ids and print the loss and top next tokens");
  static std::string dir, ids, dtype = "fp32";
  static int top_k = 5;
  cmd->add_option("MODEL_DIR", dir, "model directory with config.json and safetensors weights")->required();
  cmd->add_option("--ids", ids, "comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_option("--dtype", dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--top-k", top_k, "how many next tokens to show")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([] { run_forward(dir, ids, dtype, top_k); });
}

}  // namespace lorakit::cli
