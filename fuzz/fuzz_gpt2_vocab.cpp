// GPT-2's slow files: vocab.json, then merges.txt after a "\n----\n" line, then tokenizer_config.json
// after another; loaded as load_tokenizer does, then a fixed text encoded and decoded.
#include "fuzz/harness.h"
#include "fuzz/tokenize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [vocab, rest] = lorakit::fuzz::split(lorakit::fuzz::as_view(data, size), "\n----\n");
  const auto [merges, config] = lorakit::fuzz::split(rest, "\n----\n");
  const auto& dir = lorakit::fuzz::scratch_dir();
  std::filesystem::remove(dir / "tokenizer_config.json");
  lorakit::fuzz::write_file("vocab.json", vocab);
  lorakit::fuzz::write_file("merges.txt", merges);
  if (!config.empty()) lorakit::fuzz::write_file("tokenizer_config.json", config);
  lorakit::fuzz::expect_clear_error([&] { lorakit::fuzz::load_and_tokenize(dir); });
  return 0;
}
