// `lorakit merge`: a PEFT adapter folded into its base model, written as a Hugging Face model
// directory that AutoModelForCausalLM.from_pretrained loads. W' = W + scaling * B A computed in
// float32 from the base's own weights and rounded once to the output dtype. A 4-bit base (a QLoRA
// run's: a directory saved in 4 bits, or `quantize`) is dequantized and written dense. Only Linear weights
// change: tied embeddings stay tied (a tied lm_head is never a LoRA target), so the output keeps
// tie_word_embeddings and stores the shared matrix once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "quant/bnb_4bit.h"

namespace lorakit::exports {

struct MergeOptions {
  std::string dtype;                       // "fp32" | "bf16" | "fp16"; "" = the config's dtype (else fp32)
  std::string device = "cpu";              // where the float32 fold runs: cpu, cuda or cuda:N
  uint64_t max_shard_bytes = 2ull << 30;   // 2 GB shards, index file when more than one
  bool overwrite = false;
  bool quiet = false;
  quant::QuantizeConfig quantize;          // quantize the base as the QLoRA run did, then fold into its dequantized weights
};

struct MergeReport {
  std::string largest_change_module;
  double largest_change = 0;    // max |scaling * B A| over all merged weights
  double logit_difference = 0;  // max |merged - unmerged| logits on a few tokens, float32
  int64_t shards = 0;
  int64_t dequantized = 0;      // 4-bit Linears (QLoRA base) written dense
};

// Writes `out` complete or not at all (a temporary sibling directory renamed at the end).
MergeReport merge_adapter(const std::filesystem::path& model_dir, const std::filesystem::path& adapter_dir,
                          const std::filesystem::path& out, const MergeOptions& options);

}  // namespace lorakit::exports
