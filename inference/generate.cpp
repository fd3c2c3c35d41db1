#include "inference/generate.h"

#include <algorithm>
#include <chrono>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/where.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "device/memory.h"

namespace lorakit::inference {
namespace {

using Clock = std::chrono::steady_clock;

// logits (V) float32 -> the next token id.
int32_t next_token(at::Tensor logits, const std::vector<int32_t>& seen, const GenerationConfig& config,
                   at::Generator& generator) {
  if (config.repetition_penalty != 1.0) {
    std::vector<int64_t> ids(seen.begin(), seen.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    const at::Tensor index = at::tensor(ids, at::kLong).to(logits.device());
    const at::Tensor picked = logits.index_select(0, index);
    logits.index_copy_(0, index, at::where(picked > 0, picked / config.repetition_penalty,
                                           picked * config.repetition_penalty));
  }
  if (!config.sample) return static_cast<int32_t>(logits.argmax().item<int64_t>());
  logits = logits / config.temperature;
  const double lowest = -std::numeric_limits<float>::infinity();
  if (config.top_k > 0 && config.top_k < logits.size(0)) {
    const at::Tensor kth = std::get<0>(at::topk(logits, config.top_k)).min();
    logits = logits.masked_fill(logits < kth, lowest);
  }
  if (config.top_p < 1.0) {
    // transformers' TopPLogitsWarper: drop the smallest tokens whose cumulative probability <= 1 - top_p.
    auto [sorted, order] = at::sort(logits, 0, /*descending=*/false);
    const at::Tensor cumulative = at::softmax(sorted, 0).cumsum(0);
    at::Tensor remove = cumulative <= (1 - config.top_p);
    remove[-1].fill_(false);  // keep at least one
    logits = logits.masked_fill(remove.scatter(0, order, remove), lowest);
  }
  const at::Tensor probs = at::softmax(logits, 0);
  return static_cast<int32_t>(at::multinomial(probs, 1, false, generator).item<int64_t>());
}

// One row's progress: its ids so far, its text, and whether it has finished.
struct Row {
  std::vector<int32_t> seen;
  Generation out;
  bool done = false;
  size_t streamed = 0;
};

// After a new token: the text, cut at a stop string (which finishes the row); streams what is
// complete, holding back a trailing partial character (U+FFFD) and a possible start of a stop string.
void update_text(Row& row, const tokenizers::Tokenizer& tokenizer, const GenerationConfig& config,
                 const std::function<void(std::string_view)>& stream) {
  Generation& out = row.out;
  out.text = tokenizer.decode(out.new_ids, /*skip_special_tokens=*/true);
  bool stopped = false;
  for (const std::string& s : config.stop)
    if (const size_t at = out.text.find(s); at != std::string::npos) {
      out.text.resize(at);
      stopped = true;
    }
  size_t ready = out.text.size();
  if (!stopped) {
    if (out.text.ends_with("\xEF\xBF\xBD")) ready -= 3;
    for (const std::string& s : config.stop)
      for (size_t k = std::min(s.size() - 1, ready); k > 0; --k)
        if (out.text.compare(ready - k, k, s, 0, k) == 0) {
          ready -= k;
          break;
        }
  }
  if (stream && ready > row.streamed) {
    stream(std::string_view(out.text).substr(row.streamed, ready - row.streamed));
    row.streamed = ready;
  }
  if (stopped) {
    out.finish_reason = "stop";
    row.done = true;
  }
}

}  // namespace

std::vector<Generation> generate_batch(const CausalLM& model, const tokenizers::Tokenizer* tokenizer,
                                       const std::vector<std::vector<int32_t>>& prompts, const GenerationConfig& config,
                                       const c10::Device& device, const std::function<void(std::string_view)>& stream) {
  if (prompts.empty()) return {};
  for (const auto& p : prompts)
    if (p.empty()) fail("generate: a prompt has no tokens");
  if (!config.stop.empty() && !tokenizer) fail("generate: stop strings need a tokenizer");
  if (config.sample && config.temperature <= 0) fail("--temperature must be > 0 when sampling");
  c10::InferenceMode inference;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  memory_now(device);  // resets the CUDA peak
  const auto start = Clock::now();
  const auto B = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const auto L = static_cast<int64_t>(longest);

  // Left padding: every row's last prompt token in the last column; positions count real tokens
  // only (transformers: attention_mask.cumsum(-1) - 1, padding at 1).
  std::vector<int64_t> ids(static_cast<size_t>(B * L), 0), mask(static_cast<size_t>(B * L), 0);
  std::vector<int64_t> positions(static_cast<size_t>(B * L), 1), next_position(static_cast<size_t>(B), 0);
  std::vector<Row> rows(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) {
    const auto& p = prompts[static_cast<size_t>(r)];
    const auto offset = static_cast<size_t>(r * L + L - static_cast<int64_t>(p.size()));
    for (size_t t = 0; t < p.size(); ++t) {
      ids[offset + t] = p[t];
      mask[offset + t] = 1;
      positions[offset + t] = static_cast<int64_t>(t);
    }
    next_position[static_cast<size_t>(r)] = static_cast<int64_t>(p.size());
    rows[static_cast<size_t>(r)].seen = p;
    rows[static_cast<size_t>(r)].out.finish_reason = "length";
  }
  const bool padded = std::any_of(prompts.begin(), prompts.end(), [&](const auto& p) { return p.size() != longest; });
  if (padded && !model.masks_padding()) {
    // A recurrent model would read the left padding into its state: one prompt at a time.
    std::vector<Generation> out;
    for (const auto& p : prompts) out.push_back(generate_batch(model, tokenizer, {p}, config, device, stream).front());
    return out;
  }
  const auto long_tensor = [&](const std::vector<int64_t>& v, int64_t cols) {
    return at::tensor(v, at::kLong).view({B, cols}).to(device);
  };
  at::Tensor key_mask = padded ? long_tensor(mask, L) : at::Tensor();  // (B, S): grows by one column per step
  const auto padded_layout = [&](const std::vector<int64_t>& pos, int64_t cols) {
    TokenLayout l(key_mask);
    l.position_ids = long_tensor(pos, cols);
    l.padded = true;
    return l;
  };
  TokenLayout layout = padded ? padded_layout(positions, L) : TokenLayout();
  KVCache cache;
  at::Tensor logits = model.forward_cached(long_tensor(ids, L), cache, layout);  // (B, L, V)

  for (int64_t n = 0; n < config.max_new_tokens; ++n) {
    const at::Tensor last = logits.select(1, -1).to(at::kFloat).to(at::kCPU);  // (B, V)
    std::vector<int64_t> step_ids(static_cast<size_t>(B), 0);
    for (int64_t r = 0; r < B; ++r) {
      Row& row = rows[static_cast<size_t>(r)];
      if (row.done) continue;  // a finished row is fed padding; its outputs are not read
      const int32_t id = next_token(last[r].clone(), row.seen, config, generator);
      step_ids[static_cast<size_t>(r)] = id;
      row.out.new_ids.push_back(id);
      row.seen.push_back(id);
      if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), id) != config.eos_token_ids.end()) {
        row.out.finish_reason = "eos";
        row.done = true;
        continue;
      }
      if (tokenizer) update_text(row, *tokenizer, config, B == 1 ? stream : std::function<void(std::string_view)>());
    }
    if (n + 1 >= config.max_new_tokens || std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.done; })) break;
    if (padded) {
      key_mask = at::cat({key_mask, at::ones({B, 1}, key_mask.options())}, 1);  // (B, S + 1)
      std::vector<int64_t> step_positions(next_position);
      for (auto& p : next_position) ++p;
      layout = padded_layout(step_positions, 1);
    }
    logits = model.forward_cached(long_tensor(step_ids, 1), cache, layout);  // (B, 1, V)
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double peak = memory_now(device).peak;
  std::vector<Generation> out;
  for (Row& row : rows) {
    if (tokenizer) {
      if (row.out.finish_reason != "stop") row.out.text = tokenizer->decode(row.out.new_ids, true);
      if (B == 1 && stream && row.out.text.size() > row.streamed) stream(std::string_view(row.out.text).substr(row.streamed));
    }
    row.out.seconds = seconds / static_cast<double>(B);
    row.out.tokens_per_s = row.out.seconds > 0 ? static_cast<double>(row.out.new_ids.size()) / row.out.seconds : 0;
    row.out.peak_memory_bytes = peak;
    out.push_back(std::move(row.out));
  }
  return out;
}

Generation generate(const CausalLM& model, const tokenizers::Tokenizer* tokenizer, const std::vector<int32_t>& prompt_ids,
                    const GenerationConfig& config, const c10::Device& device,
                    const std::function<void(std::string_view)>& stream) {
  if (prompt_ids.empty()) fail("generate: the prompt has no tokens");
  return generate_batch(model, tokenizer, {prompt_ids}, config, device, stream).front();
}

std::vector<int32_t> model_eos_ids(const std::filesystem::path& model_dir, const tokenizers::Tokenizer* tokenizer) {
  std::vector<int32_t> ids;
  for (const char* file : {"generation_config.json", "config.json"}) {
    const auto path = model_dir / file;
    if (!std::filesystem::exists(path)) continue;
    const nlohmann::json config = JsonReader::parse_file(path.string());
    if (!config.contains("eos_token_id") || config["eos_token_id"].is_null()) continue;
    const auto& eos = config["eos_token_id"];
    if (eos.is_array())
      for (const auto& id : eos) ids.push_back(id.get<int32_t>());
    else
      ids.push_back(eos.get<int32_t>());
    break;
  }
  if (tokenizer && tokenizer->special().eos && std::find(ids.begin(), ids.end(), *tokenizer->special().eos) == ids.end())
    ids.push_back(*tokenizer->special().eos);
  return ids;
}

}  // namespace lorakit::inference
