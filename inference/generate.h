// Text generation with a KV cache, one prompt or a batch: the prompts in one forward pass (left
// padded, positions counting real tokens as transformers does), then one token per row per step. transformers' order of logits processors: repetition penalty, then (sampling)
// temperature, top-k, top-p. Stops at an EOS id, a stop string or max_new_tokens.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <c10/core/Device.h>

#include "models/model.h"
#include "tokenizers/tokenizer.h"

namespace lorakit::inference {

struct GenerationConfig {
  int64_t max_new_tokens = 128;
  bool sample = false;  // false: greedy
  double temperature = 1.0;
  int64_t top_k = 0;    // 0: off
  double top_p = 1.0;   // 1: off
  double repetition_penalty = 1.0;
  std::vector<int32_t> eos_token_ids;
  std::vector<std::string> stop;  // stop strings (need a tokenizer)
  uint64_t seed = 0;
};

struct Generation {
  std::vector<int32_t> new_ids;
  std::string text;           // decoded new tokens, cut before a stop string
  std::string finish_reason;  // "eos", "stop" or "length"
  double seconds = 0;         // prompt and new tokens
  double tokens_per_s = 0;    // new tokens / seconds
  double peak_memory_bytes = 0;
};

// `tokenizer` may be null (ids only: no text, no stop strings). `stream` receives text as it
// becomes complete UTF-8.
Generation generate(const CausalLM& model, const tokenizers::Tokenizer* tokenizer, const std::vector<int32_t>& prompt_ids,
                    const GenerationConfig& config, const c10::Device& device,
                    const std::function<void(std::string_view)>& stream = {});

// A batch of prompts at once, rows finishing on their own; greedy rows give the same tokens as one
// prompt at a time. Each row's `seconds` is the batch's wall time divided by the rows; `stream` is
// used only for a batch of one.
std::vector<Generation> generate_batch(const CausalLM& model, const tokenizers::Tokenizer* tokenizer,
                                       const std::vector<std::vector<int32_t>>& prompts, const GenerationConfig& config,
                                       const c10::Device& device, const std::function<void(std::string_view)>& stream = {});

// The EOS ids transformers' generate stops at: generation_config.json's eos_token_id (an id or a
// list), else config.json's, plus the tokenizer's eos token.
std::vector<int32_t> model_eos_ids(const std::filesystem::path& model_dir, const tokenizers::Tokenizer* tokenizer);

}  // namespace lorakit::inference
