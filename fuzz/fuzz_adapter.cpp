// A PEFT adapter directory against a tiny llama: adapter_config.json (its length in the first four
// bytes, little-endian), then adapter_model.safetensors; read, injected and loaded as
// apply_peft_adapter does for `--adapter`.
#include <cstring>

#include "checkpoints/peft_adapter.h"
#include "core/json_reader.h"
#include "fuzz/harness.h"
#include "models/model.h"

namespace {

std::unique_ptr<lorakit::CausalLM> tiny_llama() {
  const nlohmann::json config = {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 64},
                                 {"hidden_size", 16}, {"intermediate_size", 32}, {"num_hidden_layers", 2},
                                 {"num_attention_heads", 2}, {"num_key_value_heads", 1}};
  return lorakit::create_model(lorakit::JsonReader(config, "tiny llama"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t config_bytes = 0;
  std::memcpy(&config_bytes, data, 4);
  const auto bytes = lorakit::fuzz::as_view(data + 4, size - 4);
  const size_t split = std::min<size_t>(config_bytes, bytes.size());
  lorakit::fuzz::write_file("adapter_config.json", bytes.substr(0, split));
  lorakit::fuzz::write_file("adapter_model.safetensors", bytes.substr(split));
  lorakit::fuzz::expect_clear_error([&] {
    auto model = tiny_llama();
    (void)lorakit::apply_peft_adapter(*model, lorakit::fuzz::scratch_dir());
  });
  return 0;
}
