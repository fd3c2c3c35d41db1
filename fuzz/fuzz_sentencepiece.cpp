// SentencePiece tokenizer.model (a protobuf ModelProto, rewritten by lorakit before libsentencepiece
// loads it), then a fixed text encoded and decoded; and the vocabulary reader GGUF export uses.
#include "fuzz/harness.h"
#include "fuzz/tokenize.h"
#include "tokenizers/sentencepiece_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lorakit::fuzz::write_file("tokenizer.model", lorakit::fuzz::as_view(data, size));
  lorakit::fuzz::expect_clear_error([&] { lorakit::fuzz::load_and_tokenize(lorakit::fuzz::scratch_dir()); });
  lorakit::fuzz::expect_clear_error([&] { (void)lorakit::tokenizers::read_sentencepiece_vocab(path.string()); });
  return 0;
}
