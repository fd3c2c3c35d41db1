#include "inference/generate.h"

#include <algorithm>
#include <chrono>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/argmax.h>
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

}  // namespace

Generation generate(const CausalLM& model, const tokenizers::Tokenizer* tokenizer, const std::vector<int32_t>& prompt_ids,
                    const GenerationConfig& config, const c10::Device& device,
                    const std::function<void(std::string_view)>& stream) {
  if (prompt_ids.empty()) fail("generate: the prompt has no tokens");
  if (!config.stop.empty() && !tokenizer) fail("generate: stop strings need a tokenizer");
  if (config.sample && config.temperature <= 0) fail("--temperature must be > 0 when sampling");
  c10::InferenceMode inference;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  memory_now(device);  // resets the CUDA peak
  const auto start = Clock::now();
  KVCache cache;
  std::vector<int64_t> prompt(prompt_ids.begin(), prompt_ids.end());
  at::Tensor logits = model.forward_cached(at::tensor(prompt, at::kLong).view({1, -1}).to(device), cache);  // (1, T, V)
  std::vector<int32_t> seen = prompt_ids;
  Generation out;
  out.finish_reason = "length";
  size_t streamed = 0;
  for (int64_t n = 0; n < config.max_new_tokens; ++n) {
    const int32_t id = next_token(logits[0][-1].to(at::kFloat).to(at::kCPU), seen, config, generator);
    out.new_ids.push_back(id);
    seen.push_back(id);
    if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), id) != config.eos_token_ids.end()) {
      out.finish_reason = "eos";
      break;
    }
    if (tokenizer) {
      out.text = tokenizer->decode(out.new_ids, /*skip_special_tokens=*/true);
      bool stopped = false;
      for (const std::string& s : config.stop)
        if (const size_t at = out.text.find(s); at != std::string::npos) {
          out.text.resize(at);
          stopped = true;
        }
      // Stream what is complete: hold back a trailing partial character (U+FFFD) and a possible
      // beginning of a stop string.
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
      if (stream && ready > streamed) {
        stream(std::string_view(out.text).substr(streamed, ready - streamed));
        streamed = ready;
      }
      if (stopped) {
        out.finish_reason = "stop";
        break;
      }
    }
    if (n + 1 < config.max_new_tokens)
      logits = model.forward_cached(at::tensor(std::vector<int64_t>{id}, at::kLong).view({1, 1}).to(device), cache);
  }
  if (tokenizer) {
    if (out.finish_reason != "stop") out.text = tokenizer->decode(out.new_ids, true);
    if (stream && out.text.size() > streamed) stream(std::string_view(out.text).substr(streamed));
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  out.tokens_per_s = out.seconds > 0 ? static_cast<double>(out.new_ids.size()) / out.seconds : 0;
  out.peak_memory_bytes = memory_now(device).peak;
  return out;
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
