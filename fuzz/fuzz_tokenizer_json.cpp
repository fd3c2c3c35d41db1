// tokenizer.json (normalizers, pre-tokenizers, BPE / WordPiece / Unigram models, added tokens,
// post-processors, decoders) with the tokenizer_config.json that follows a "\n----\n" line, loaded
// as load_tokenizer does, then a fixed text encoded and the ids decoded.
#include "fuzz/harness.h"
#include "fuzz/tokenize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [tokenizer_json, tokenizer_config] = lorakit::fuzz::split(lorakit::fuzz::as_view(data, size), "\n----\n");
  std::filesystem::remove(lorakit::fuzz::scratch_dir() / "tokenizer_config.json");
  lorakit::fuzz::write_file("tokenizer.json", tokenizer_json);
  if (!tokenizer_config.empty()) lorakit::fuzz::write_file("tokenizer_config.json", tokenizer_config);
  lorakit::fuzz::expect_clear_error([&] { lorakit::fuzz::load_and_tokenize(lorakit::fuzz::scratch_dir()); });
  return 0;
}
