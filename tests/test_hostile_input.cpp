// The defects the fuzz harnesses (fuzz/, scripts/fuzz.sh) found, one test each, with the input that
// crashed a harness cut to its essence: every one must now be a lorakit::Error naming the file.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/json_reader.h"
#include "data/records.h"
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

}  // namespace
