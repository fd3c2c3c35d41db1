// The data files users train on: the first byte picks the format and the example format (CSV text,
// TSV prompt/response, JSONL chat messages through the tokenizer's chat template, JSONL text or
// pre-tokenized ids), the rest is the file. Every record goes through open_records and
// ExampleBuilder as `lorakit train` and `lorakit data` read it. The tokenizer is the directory in
// $LORAKIT_FUZZ_TOKENIZER (scripts/fuzz.sh sets it; it needs a chat template).
#include <cstdlib>

#include "data/examples.h"
#include "data/records.h"
#include "fuzz/harness.h"

namespace {

const lorakit::tokenizers::Tokenizer& tokenizer() {
  static const lorakit::tokenizers::Tokenizer t = [] {
    const char* dir = std::getenv("LORAKIT_FUZZ_TOKENIZER");
    if (!dir) {
      std::fprintf(stderr, "fuzz_records: set LORAKIT_FUZZ_TOKENIZER to a model directory with a chat template\n");
      std::abort();
    }
    return lorakit::tokenizers::load_tokenizer(dir);
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 5;
  static const char* names[] = {"rows.csv", "rows.tsv", "chat.jsonl", "text.jsonl", "ids.jsonl"};
  const auto path = lorakit::fuzz::write_file(names[mode], lorakit::fuzz::as_view(data + 1, size - 1));
  lorakit::data::DataConfig config;
  config.path = path.string();
  config.max_seq_len = 64;
  switch (mode) {
    case 0: config.text_column = "text"; break;
    case 1: config.prompt_template = "### 질문: {input}\n### 답변: "; config.response_column = "output"; break;
    case 2: config.messages_column = "messages"; break;
    case 3: config.text_column = "text"; config.validation_fraction = 0.5; break;
    case 4: config.ids_column = "input_ids"; break;
  }
  lorakit::fuzz::expect_clear_error([&] {
    const lorakit::data::ExampleBuilder builder(tokenizer(), config, "fuzz");
    auto reader = lorakit::data::open_records(config.path, lorakit::data::reader_options(config));
    lorakit::data::Record record;
    std::string skip_reason;
    while (reader->next(record)) (void)builder.build(record, config.path, skip_reason);
  });
  return 0;
}
