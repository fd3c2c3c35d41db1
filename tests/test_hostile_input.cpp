// The defects the fuzz harnesses (fuzz/, scripts/fuzz.sh) found, one test each, with the input that
// crashed a harness cut to its essence: every one must now be a lorakit::Error naming the file.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <ATen/ops/zeros.h>

#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/json_reader.h"
#include "data/records.h"
#include "lora/lora.h"
#include "models/model.h"
#include "trainer/recipe.h"
#include "tokenizers/tokenizer.h"

namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_hostile_{}", ::getpid()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A safetensors file of `header` and `data_bytes` zero bytes.
void write_safetensors(const fs::path& path, const std::string& header, size_t data_bytes) {
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write(path, file + header + std::string(data_bytes, '\0'));
}

// A tokenizer.json around a one-letter BPE vocabulary with the given extra top-level members.
std::string tokenizer_json(const std::string& extra) {
  return R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "\u2581": 2}, "merges": []})" + (extra.empty() ? "" : ", " + extra) + "}";
}

template <typename Body>
std::string error_of(Body&& body) {
  try {
    body();
  } catch (const lorakit::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no lorakit::Error";
  return "";
}

// fuzz_config, fuzz_tokenizer_json, fuzz_gpt2_vocab (crash-0ff3f6c4, crash-c788f2de, crash-1db930e8 and
// two more): a JSON number past double's range ("1e3081") made nlohmann throw out_of_range 406,
// which only parse_error was caught for, so the exception escaped as an uncaught std::exception.
TEST(HostileInput, JsonNumberPastDoublesRangeIsAnErrorNamingTheFile) {
  const fs::path dir = scratch("overflow");
  write(dir / "config.json", R"({"model_type": "llama", "rope_theta": 1e3081})");
  std::string message = error_of([&] { (void)lorakit::JsonReader::parse_file((dir / "config.json").string()); });
  EXPECT_NE(message.find((dir / "config.json").string()), std::string::npos) << message;
  EXPECT_NE(message.find("invalid JSON: number overflow parsing '1e3081'"), std::string::npos) << message;

  // The same number in a tokenizer's vocab.json, through load_tokenizer.
  const fs::path gpt2 = scratch("overflow-gpt2");
  write(gpt2 / "vocab.json", R"({"a": 11e30894, "b": 1})");
  write(gpt2 / "merges.txt", "#version: 0.2\na b\n");
  message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(gpt2.string()); });
  EXPECT_NE(message.find("vocab.json: invalid JSON: number overflow"), std::string::npos) << message;

  // In a safetensors header (parsed from the mapped file, not through JsonReader).
  const std::string header = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4e400]}})";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write(dir / "model.safetensors", file + header + std::string(4, '\0'));
  message = error_of([&] { lorakit::SafetensorsFile st(dir / "model.safetensors"); });
  EXPECT_NE(message.find("the JSON header is invalid: number overflow"), std::string::npos) << message;

  // In a JSONL row: the error names the line, and skip_bad_rows skips it like any bad row.
  write(dir / "rows.jsonl", "{\"text\": \"ok\"}\n{\"text\": 1e400}\n");
  message = error_of([&] {
    auto reader = lorakit::data::open_records((dir / "rows.jsonl").string());
    lorakit::data::Record record;
    while (reader->next(record)) {
    }
  });
  EXPECT_NE(message.find("rows.jsonl:2: invalid JSON: number overflow"), std::string::npos) << message;
  lorakit::data::ReaderOptions skip;
  skip.skip_bad_rows = true;
  auto reader = lorakit::data::open_records((dir / "rows.jsonl").string(), skip);
  lorakit::data::Record record;
  int rows = 0;
  while (reader->next(record)) ++rows;
  EXPECT_EQ(rows, 1);
  EXPECT_EQ(reader->bad_rows(), 1);
}

// fuzz_tokenizer_json (crash-ce633e3f, round 2: the polyglot-ko seed with "content" mangled): an added token without "content" made
// nlohmann's .at() throw out_of_range from deep in the tokenizer loader. Every reader of a
// downloaded file now turns nlohmann's exceptions into an Error naming the file (with_json_errors).
TEST(HostileInput, JsonOfAnUnexpectedShapeIsAnErrorNamingTheFile) {
  const fs::path dir = scratch("shape");
  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 5}]})");
  std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find((dir / "tokenizer.json").string() + ": unexpected JSON: key 'content' not found"), std::string::npos)
      << message;

  // A value of another type where a string is expected.
  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1, "content": 5}]})");
  message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find("unexpected JSON: type must be string, but is number"), std::string::npos) << message;
}

// fuzz_tokenizer_json (crash-907ea937, round 3): a vocabulary id of 1.8e65 reached nlohmann's
// get<int32_t>(), a float-to-int conversion out of range (UndefinedBehaviorSanitizer). Token ids are
// now read by json_id: an integer in [0, 2^31) or an Error.
TEST(HostileInput, TokenIdsOutOfRangeAreAnErrorNotUndefinedBehaviour) {
  const fs::path dir = scratch("ids");
  for (const char* id : {"1.7777e65", "4294967296", "-3", "2.5"}) {
    write(dir / "tokenizer.json", fmt::format(R"({{"model": {{"type": "BPE", "vocab": {{"a": 0, "b": {}}}, "merges": []}}}})", id));
    const std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
    EXPECT_NE(message.find("expected a token id (an integer from 0 to 2147483647)"), std::string::npos) << id << ": " << message;
  }
  const fs::path gpt2 = scratch("ids-gpt2");
  write(gpt2 / "vocab.json", R"({"a": 0, "b": 1e65})");
  write(gpt2 / "merges.txt", "#version: 0.2\n");
  const std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(gpt2.string()); });
  EXPECT_NE(message.find("vocab.json: token \"b\": expected a token id"), std::string::npos) << message;
}

// fuzz_recipe (9 inputs, round 3, e.g. crash-09419b67): a section that is a scalar ("lora: 3") made
// yaml-cpp's operator[] throw; only its parse errors were caught.
TEST(HostileInput, RecipeOfAnUnexpectedShapeIsAnErrorNamingTheFile) {
  const fs::path dir = scratch("recipe");
  for (const char* yaml : {"model: {path: m}\nlora: 3\n", "model:\n  path: [1, 2]\n", "- a\n- b\n", "data: {max_seq_len: {x: 1}}\n"}) {
    write(dir / "recipe.yaml", yaml);
    const std::string message = error_of([&] { (void)lorakit::trainer::load_recipe((dir / "recipe.yaml").string()); });
    EXPECT_NE(message.find((dir / "recipe.yaml").string()), std::string::npos) << yaml << ": " << message;
  }
}

// fuzz_sentencepiece (crash-374a2427, the 10^6-execution run): a tokenizer.model whose second piece
// starts with a NUL byte made libsentencepiece's trie builder throw Darts::Details::Exception ("zero-
// length key"), which escaped its Status-returning loader.
TEST(HostileInput, SentencepiecePieceItCannotIndexIsAnError) {
  const fs::path dir = scratch("spm-nul");
  const unsigned char model[] = {0x0a, 0x0e, 0x0a, 0x05, 0x3c, 0x75, 0x6e, 0x6b, 0x3e, 0x15, 0x00, 0x00, 0x00, 0x00, 0x18,
                                 0x02, 0x0a, 0x0c, 0x0a, 0x0a, 0x00, 0xfd, 0x1d, 0x69, 0x81, 0x15, 0x0b, 0x74, 0x6c, 0x00};
  write(dir / "tokenizer.model", std::string(reinterpret_cast<const char*>(model), sizeof(model)));
  const std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find("tokenizer.model: SentencePiece could not load the model"), std::string::npos) << message;
  EXPECT_NE(message.find("zero-length key"), std::string::npos) << message;
}

// The resource-bounds audit (issue 20, item 4: every size a file claims checked before it is used)
// found the defects below by reading the parsers; each input here is the one the audit named.

// A shape whose element count times the dtype's bits wraps 2^64 (2^58 F64 elements are 0 bits) passed
// the byte-count check, and reading the tensor asked at::empty for exabytes.
TEST(HostileInput, SafetensorsShapeWhoseByteCountWrapsIsAnError) {
  const fs::path dir = scratch("wrap");
  write_safetensors(dir / "model.safetensors", R"({"w": {"dtype": "F64", "shape": [288230376151711744], "data_offsets": [0, 0]}})", 0);
  const std::string message = error_of([&] { lorakit::SafetensorsFile st(dir / "model.safetensors"); });
  EXPECT_NE(message.find("tensor 'w': shape [288230376151711744] of F64 is too large"), std::string::npos) << message;
}

// A protobuf length of 2^64 - 11 in tokenizer.model wrapped the read position back to the start: an
// endless loop. Lengths are now checked against the bytes left.
TEST(HostileInput, SentencepieceLengthPastTheFileIsAnErrorNotAnEndlessLoop) {
  const fs::path dir = scratch("protobuf");
  write(dir / "tokenizer.model", std::string("\x12\xF5\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01", 11));
  const std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find("truncated protobuf field"), std::string::npos) << message;
}

// Decoders whose one-character fields were empty looped without advancing (Metaspace) or up to the
// 10^18 times a file asked (Strip); a normalizer Sequence of Replace stages that double the text grew
// it 2^31-fold; a post-processor template repeating $A multiplied the ids. Each is now an Error.
TEST(HostileInput, TokenizerPipelinesThatLoopOrExpandWithoutBoundAreAnError) {
  const fs::path dir = scratch("pipeline");
  for (const char* decoder : {R"({"type": "Metaspace", "replacement": ""})",
                              R"({"type": "Strip", "content": "", "start": 1000000000000000000, "stop": 0})",
                              R"({"type": "Strip", "content": "ab", "start": 1, "stop": 0})"}) {
    write(dir / "tokenizer.json", tokenizer_json(fmt::format(R"("decoder": {})", decoder)));
    const std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
    EXPECT_NE(message.find("expected one character"), std::string::npos) << decoder << ": " << message;
  }
  write(dir / "tokenizer.json", tokenizer_json(R"("pre_tokenizer": {"type": "Metaspace", "replacement": "__"})"));
  std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find("pre_tokenizer.replacement: expected one character, found \"__\""), std::string::npos) << message;

  std::string stages;
  for (int i = 0; i < 31; ++i) stages += std::string(i ? ", " : "") + R"({"type": "Replace", "pattern": {"String": "a"}, "content": "aa"})";
  write(dir / "tokenizer.json", tokenizer_json(fmt::format(R"("normalizer": {{"type": "Sequence", "normalizers": [{}]}})", stages)));
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(dir.string());
  message = error_of([&] { (void)tokenizer.encode("aaaa"); });
  EXPECT_NE(message.find("the normalized text grew from 4 to"), std::string::npos) << message;

  write(dir / "tokenizer.json", tokenizer_json(R"("post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}})"));
  message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find("the input ($A) appears more than once"), std::string::npos) << message;
}

// An id of 2^31 - 1 in a 1-entry vocabulary sized the id table at 64 GiB (bad_alloc escaped); an
// added_tokens_decoder key that is not a number made std::stoi throw invalid_argument.
TEST(HostileInput, TokenIdsFarPastTheVocabularyAreAnError) {
  const fs::path dir = scratch("far-id");
  write(dir / "vocab.json", R"({"a": 2147483647})");
  write(dir / "merges.txt", "#version: 0.2\n");
  std::string message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(dir.string()); });
  EXPECT_NE(message.find("token 'a' has id 2147483647, far past the 1 entries of the vocabulary"), std::string::npos) << message;

  const fs::path keyed = scratch("id-key");
  write(keyed / "tokenizer.json", tokenizer_json(""));
  write(keyed / "tokenizer_config.json", R"({"added_tokens_decoder": {"x7": {"content": "<s>"}}})");
  message = error_of([&] { (void)lorakit::tokenizers::load_tokenizer(keyed.string()); });
  EXPECT_NE(message.find("added_tokens_decoder: expected a token id (an integer from 0 to 2147483647), found \"x7\""),
            std::string::npos) << message;
}

// JSON nested thousands deep made lorakit's walkers and nlohmann's copy/dump recurse once per level
// (a stack overflow for a large enough file). Downloaded JSON is scanned first: more than 64 levels is
// an Error with the line and column, in every reader.
TEST(HostileInput, JsonNestedTooDeepIsAnErrorWithItsPlace) {
  const fs::path dir = scratch("deep");
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  write(dir / "config.json", "{\n\"a\": " + deep + "}");
  std::string message = error_of([&] { (void)lorakit::JsonReader::parse_file((dir / "config.json").string()); });
  EXPECT_NE(message.find((dir / "config.json").string() + ":2:69: JSON nested more than 64 levels deep"), std::string::npos) << message;
  // 64 levels are fine, and brackets inside strings do not count.
  write(dir / "config.json", std::string(64, '[') + "\"[[[{{{\"" + std::string(64, ']'));
  EXPECT_NO_THROW((void)lorakit::JsonReader::parse_file((dir / "config.json").string()));

  write(dir / "rows.jsonl", "{\"text\": \"ok\"}\n{\"text\": " + deep + "}\n");
  message = error_of([&] {
    auto reader = lorakit::data::open_records((dir / "rows.jsonl").string());
    lorakit::data::Record record;
    while (reader->next(record)) {
    }
  });
  EXPECT_NE(message.find("rows.jsonl:2:1:73: JSON nested more than 64 levels deep"), std::string::npos) << message;

  write_safetensors(dir / "model.safetensors", R"({"__metadata__": {"a": )" + deep + "}}", 0);
  message = error_of([&] { lorakit::SafetensorsFile st(dir / "model.safetensors"); });
  EXPECT_NE(message.find("the JSON header:1:86: JSON nested more than 64 levels deep"), std::string::npos) << message;
}

// config.json sizes were only checked to be positive: num_hidden_layers 10^12 sized a vector and a
// loop of layers (bad_alloc), mistral's -1 reached std::vector::assign (length_error), a
// partial_rotary_factor of 1e30 was an undefined float-to-int cast, and so was an integer key of 1e300.
TEST(HostileInput, ConfigSizesPastTheStatedLimitsAreAnError) {
  const auto message_for = [](const std::string& text) {
    const nlohmann::json json = nlohmann::json::parse(text);
    return error_of([&] { (void)lorakit::create_model(lorakit::JsonReader(json, "config.json")); });
  };
  const std::string llama = R"("model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2)";
  std::string message = message_for("{" + llama + R"(, "num_hidden_layers": 1000000000000})");
  EXPECT_NE(message.find("config.json: key 'num_hidden_layers': expected a positive integer up to 1024, found number 1000000000000"),
            std::string::npos) << message;
  message = message_for(R"({"model_type": "mistral", "num_hidden_layers": -1})");
  EXPECT_NE(message.find("key 'num_hidden_layers': expected a positive integer up to 1024"), std::string::npos) << message;
  message = message_for("{" + llama + R"(, "num_hidden_layers": 2, "vocab_size": 1e12})");
  EXPECT_NE(message.find("key 'vocab_size': expected a positive integer up to 4194304"), std::string::npos) << message;
  message = message_for("{" + llama + R"(, "num_hidden_layers": 2, "head_dim": 1e300})");
  EXPECT_NE(message.find("key 'head_dim': expected an integer"), std::string::npos) << message;
  message = message_for(R"({"model_type": "gpt_neox", "rotary_pct": 0.25, "partial_rotary_factor": 1e30})");
  EXPECT_NE(message.find("key 'partial_rotary_factor': expected a number in (0, 1]"), std::string::npos) << message;
}

// adapter_config.json's r sized every LoRA module (r x in_features) before a weight was read: r of
// 2^40 asked for terabytes. r must now match the weights' lora_A rows, and be at most kMaxRank.
TEST(HostileInput, AdapterRankThatIsNotTheWeightsIsAnError) {
  const nlohmann::json config = nlohmann::json::parse(
      R"({"model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1})");
  auto model = lorakit::create_model(lorakit::JsonReader(config, "config.json"));
  const fs::path dir = scratch("rank");
  write(dir / "adapter_config.json", R"({"peft_type": "LORA", "r": 1099511627776, "lora_alpha": 16, "target_modules": ["q_proj"]})");
  lorakit::save_safetensors(dir / "adapter_model.safetensors",
                            {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", at::zeros({8, 16})},
                             {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", at::zeros({16, 8})}});
  std::string message = error_of([&] { (void)lorakit::apply_peft_adapter(*model, dir); });
  EXPECT_NE(message.find("r is 1099511627776 in adapter_config.json, but base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"),
            std::string::npos) << message;
  lorakit::lora::LoraConfig lora;
  lora.r = lorakit::lora::kMaxRank + 1;
  message = error_of([&] { (void)lorakit::lora::inject_lora(*model, lora, 0); });
  EXPECT_NE(message.find("lora.r must be an integer from 1 to 65536, found 65537"), std::string::npos) << message;
}

// CSV: doubled quotes ("") were appended past the field-length check, and a row could hold any number
// of fields (a line of commas: one string each); the header's duplicate check was quadratic.
TEST(HostileInput, CsvFieldsAndRowsPastTheirLimitsAreAnError) {
  const fs::path dir = scratch("csv");
  lorakit::data::ReaderOptions options;
  options.max_field_bytes = 1 << 20;
  write(dir / "quotes.csv", "text\n\"" + std::string(3 << 20, '"') + "\"\n");
  std::string message = error_of([&] {
    auto reader = lorakit::data::open_records((dir / "quotes.csv").string(), options);
    lorakit::data::Record record;
    while (reader->next(record)) {
    }
  });
  EXPECT_NE(message.find("a field longer than 1 MiB"), std::string::npos) << message;
  options.max_fields = 100;
  write(dir / "wide.csv", "a,b\n" + std::string(200, ',') + "\n");
  message = error_of([&] {
    auto reader = lorakit::data::open_records((dir / "wide.csv").string(), options);
    lorakit::data::Record record;
    while (reader->next(record)) {
    }
  });
  EXPECT_NE(message.find("wide.csv:2: a row of more than 100 fields"), std::string::npos) << message;
}

}  // namespace
