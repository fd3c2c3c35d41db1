// `lorakit export gguf` and `export gguf-lora`: a model (with its adapter folded in) or an adapter
// alone as the GGUF file llama.cpp's converters write for it, so llama.cpp, llama-server and Ollama
// run it. What convert_hf_to_gguf.py (llama-cpp-python 0.3.36's vendored llama.cpp, gguf-py 0.19.0)
// writes, key for key and tensor for tensor, for the architectures both have:
//   general.*                       architecture, type, sampling.* (generation_config.json), name, size_label
//   <arch>.*                        the hyperparameters, as transformers 5.23's config classes give them
//   general.quantization_version    2
//   tokenizer.ggml.*                model "gpt2", pre (by the hash of the tokenizer's ids for a check
//                                   text), tokens, token_type, merges, special ids, add_bos/eos, and
//                                   tokenizer.chat_template
// and the tensors under llama.cpp's names, in the checkpoint's order (sorted per shard), with the
// converter's transforms (llama's q/k row permutation, llama3's rope_freqs), 1-D tensors and norms
// in F32. The weights are read, merged and converted one tensor at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace lorakit::exports {

struct GgufOptions {
  std::string type = "f16";   // f32 | f16 | bf16 | q8_0 (the converter's --outtype)
  std::string name;           // general.name; "" = the model directory's name
  std::string tokenizer_pre;  // tokenizer.ggml.pre when the tokenizer's hash is not in llama.cpp's table
  bool overwrite = false;
  bool quiet = false;
};

struct GgufReport {
  std::string arch;  // llama.cpp's architecture name
  int64_t tensors = 0;
  int64_t parameters = 0;
  uint64_t bytes = 0;      // of the file
  int64_t merged = 0;      // Linear weights the adapter changed
  std::string tokenizer_pre;
};

// The model of `model_dir`, with the PEFT adapter of `adapter_dir` folded in when it is not empty
// (W + scaling * B A in float32, rounded to the model's dtype as `lorakit merge` writes it).
GgufReport export_gguf(const std::filesystem::path& model_dir, const std::filesystem::path& adapter_dir,
                       const std::filesystem::path& out, const GgufOptions& options);

// The adapter alone, as convert_lora_to_gguf.py writes it for `llama-server --lora`: general.type
// "adapter", adapter.type "lora", adapter.lora.alpha, and <tensor>.lora_a / .lora_b per adapted weight
// (lora_b permuted like its weight's rows).
GgufReport export_gguf_lora(const std::filesystem::path& model_dir, const std::filesystem::path& adapter_dir,
                            const std::filesystem::path& out, const GgufOptions& options);

}  // namespace lorakit::exports
