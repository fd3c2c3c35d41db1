// A sharded checkpoint: model.safetensors.index.json, then its two shards (parts joined by
// "\n----\n"), loaded into a tiny llama as `lorakit train` loads a model directory: the index's
// weight_map and shard names (open_hf_model_dir), every shard's header, the weights checked against
// the architecture and read (load_hf_model).
#include "checkpoints/hf_model.h"
#include "fuzz/harness.h"

namespace {

constexpr const char* kShards[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool config_written = [] {
    lorakit::fuzz::write_file("config.json", R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
      "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 2, "num_key_value_heads": 1})");
    return true;
  }();
  (void)config_written;
  auto [index, rest] = lorakit::fuzz::split(lorakit::fuzz::as_view(data, size), "\n----\n");
  const auto [first, second] = lorakit::fuzz::split(rest, "\n----\n");
  lorakit::fuzz::write_file("model.safetensors.index.json", index);
  lorakit::fuzz::write_file(kShards[0], first);
  lorakit::fuzz::write_file(kShards[1], second);
  lorakit::fuzz::expect_clear_error([&] { (void)lorakit::load_hf_model(lorakit::fuzz::scratch_dir(), {}); });
  return 0;
}
