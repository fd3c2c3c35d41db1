// The data path against transformers (scripts/data_oracle.py): CSV/JSONL rows -> ids and labels
// equal to what HF's tokenizer and chat template give, `lorakit eval` losses equal to transformers'
// to 1e-5, the real Oh-LoRA CSV and SKN13 JSONL (when ../shared is present), and every kind of bad
// input named by file:line:column.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/batches.h"
#include "data/examples.h"
#include "data/records.h"
#include "tests/cli_runner.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace lorakit::data;
using lorakit::testing::expect_failure;
using lorakit::testing::run;
using namespace std::string_literals;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "data"; }

const json& expected() {
  static const json m = [] {
    std::ifstream in(oracle_dir() / "expected.json");
    return in ? json::parse(in) : json();
  }();
  return m;
}

const json& find_case(const std::string& name) {
  for (const auto& c : expected()["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no case " + name);
}

std::vector<Example> build_all(const std::string& model, const std::string& file, const DataConfig& config) {
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(model);
  const ExampleBuilder builder(tokenizer, config, "test");
  auto reader = open_records(file);
  std::vector<Example> out;
  Record record;
  std::string reason;
  while (reader->next(record))
    if (auto example = builder.build(record, file, reason)) out.push_back(std::move(*example));
  return out;
}

void expect_rows(const std::vector<Example>& got, const json& rows, size_t limit = SIZE_MAX) {
  ASSERT_GE(got.size(), std::min(rows.size(), limit));
  for (size_t i = 0; i < rows.size() && i < limit; ++i) {
    const json& row = rows[i];
    const auto ids = row.is_array() ? row[0].get<std::vector<int32_t>>() : row["ids"].get<std::vector<int32_t>>();
    const auto labels = row.is_array() ? row[1].get<std::vector<int32_t>>() : row["labels"].get<std::vector<int32_t>>();
    EXPECT_EQ(got[i].input_ids, ids) << "row " << i << " (line " << got[i].line << ")";
    EXPECT_EQ(got[i].labels, labels) << "row " << i << " (line " << got[i].line << ")";
  }
}

fs::path scratch_file(const std::string& name, const std::string& content) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_data_{}", ::getpid());
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << content;
  return dir / name;
}

}  // namespace

TEST(Examples, ThreeFormatsMatchTransformers) {
  ASSERT_FALSE(expected().is_null()) << "no oracle output at " << oracle_dir();
  const std::string model = expected()["model"], csv = expected()["csv"], jsonl = expected()["jsonl"];
  DataConfig text;
  text.text_column = "output";
  text.add_eos = false;
  expect_rows(build_all(model, csv, text), find_case("text")["rows"]);
  DataConfig prompt;
  prompt.prompt_template = "### 질문: {input}\n### 답변: ";
  prompt.response_column = "output";
  prompt.filter_column = "data_type";
  prompt.filter_value = "train";
  expect_rows(build_all(model, csv, prompt), find_case("prompt_response")["rows"]);
  DataConfig messages;
  messages.messages_column = "messages";
  expect_rows(build_all(model, jsonl, messages), find_case("messages")["rows"]);
}

TEST(Examples, RealOhLoraAndSkn13) {
  if (expected().is_null() || expected()["real"].empty()) GTEST_SKIP() << "../shared absent";
  for (const auto& r : expected()["real"]) {
    DataConfig config;
    if (r.contains("prompt")) {
      config.prompt_template = r["prompt"];
      config.response_column = r["response_column"];
      config.filter_column = r["filter"][0];
      config.filter_value = r["filter"][1];
      config.add_eos = false;  // the shared polyglot directory has no tokenizer_config.json naming an EOS
    } else {
      config.messages_column = r["messages_column"];
    }
    SCOPED_TRACE(r["name"].get<std::string>());
    expect_rows(build_all(r["model"], r["file"], config), r["rows"], r["rows"].size());
  }
}

TEST(Examples, TruncationAndSkips) {
  ASSERT_FALSE(expected().is_null());
  const std::string model = expected()["model"];
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(model);
  DataConfig config;
  config.prompt_template = "{q}";
  config.response_column = "a";
  config.max_seq_len = 6;
  const ExampleBuilder builder(tokenizer, config, "test");
  std::string reason;
  Record record{7, {{"q", "아주 아주 긴 질문이 여기에 있습니다 정말로 길어요"}, {"a", "답"}}};
  EXPECT_FALSE(builder.build(record, "f.csv", reason));
  EXPECT_EQ(reason, "truncation removed every response token");
  config.truncation_side = "left";
  const ExampleBuilder left(tokenizer, config, "test");
  const auto kept = left.build(record, "f.csv", reason);
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->truncated);
  EXPECT_EQ(kept->input_ids.size(), 6u);
  EXPECT_EQ(kept->labels.back(), *tokenizer.special().eos);
  Record missing{3, {{"question", "x"}, {"a", "y"}}};
  try {
    config.prompt_template = "{qustion}";
    ExampleBuilder(tokenizer, config, "test").build(missing, "f.csv", reason);
    FAIL();
  } catch (const lorakit::Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "f.csv:3");
    EXPECT_CONTAINS(std::string(e.what()), "did you mean 'question'");
  }
}

TEST(EvalCommand, LossEqualsTransformers) {
  ASSERT_FALSE(expected().is_null());
  for (const auto& c : expected()["cases"]) {
    std::string args = fmt::format("eval --model '{}' --data '{}' --json", expected()["model"].get<std::string>(),
                                   c.contains("file") ? expected()["jsonl"].get<std::string>() : expected()["csv"].get<std::string>());
    for (const auto& a : c["args"]) args += " '" + a.get<std::string>() + "'";
    const auto r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const json got = json::parse(r.output);
    const double want = c["loss"];
    EXPECT_LE(std::abs(got["loss"].get<double>() - want) / want, 1e-5)
        << c["name"] << ": lorakit " << got["loss"] << ", transformers " << want;
    EXPECT_EQ(got["tokens"], c["tokens"]) << c["name"];
    EXPECT_EQ(got["examples"], c["examples"]) << c["name"];
    std::printf("%s: lorakit %.9f transformers %.9f (%lld tokens)\n", c["name"].get<std::string>().c_str(),
                got["loss"].get<double>(), want, static_cast<long long>(c["tokens"].get<int64_t>()));
  }
}

// Batched evaluation (rows padded to the longest of each batch) gives the loss of one row at a time.
TEST(EvalCommand, BatchedLossEqualsOneRowAtATime) {
  ASSERT_FALSE(expected().is_null());
  int visited = 0;
  for (const auto& c : expected()["cases"]) {
    std::string args = fmt::format("eval --model '{}' --data '{}' --json --device cpu", expected()["model"].get<std::string>(),
                                   c.contains("file") ? expected()["jsonl"].get<std::string>() : expected()["csv"].get<std::string>());
    for (const auto& a : c["args"]) args += " '" + a.get<std::string>() + "'";
    const auto one = run(args + " --batch-size 1"), eight = run(args + " --batch-size 8");
    ASSERT_EQ(one.exit_code, 0) << one.output;
    ASSERT_EQ(eight.exit_code, 0) << eight.output;
    const json a = json::parse(one.output), b = json::parse(eight.output);
    const double rel = std::abs(a["loss"].get<double>() - b["loss"].get<double>()) / a["loss"].get<double>();
    EXPECT_LE(rel, 1e-6) << c["name"] << ": batch 1 " << a["loss"] << ", batch 8 " << b["loss"];
    EXPECT_EQ(a["tokens"], b["tokens"]);
    EXPECT_EQ(a["examples"], b["examples"]);
    std::printf("%s: batch 1 %.9f, batch 8 %.9f (relative %.1e)\n", c["name"].get<std::string>().c_str(),
                a["loss"].get<double>(), b["loss"].get<double>(), rel);
    ++visited;
  }
  EXPECT_EQ(visited, 3);
}

TEST(Records, CsvQuotingLineEndingsAndBom) {
  const auto path = scratch_file("ok.csv",
                                 "\xEF\xBB\xBFid,text,note\r\n"
                                 "1,\"a, b\",\"line1\nline2\"\r\n"
                                 "\n"
                                 "2,\"say \"\"hi\"\"\",\r\n"
                                 "3,plain 한국어,\"\"");
  auto reader = open_records(path.string());
  EXPECT_EQ(reader->columns(), (std::vector<std::string>{"id", "text", "note"}));
  Record r;
  ASSERT_TRUE(reader->next(r));
  EXPECT_EQ(r.line, 2u);
  EXPECT_EQ(r.fields["text"], "a, b");
  EXPECT_EQ(r.fields["note"], "line1\nline2");
  ASSERT_TRUE(reader->next(r));
  EXPECT_EQ(r.line, 5u);
  EXPECT_EQ(r.fields["text"], "say \"hi\"");
  EXPECT_EQ(r.fields["note"], "");
  ASSERT_TRUE(reader->next(r));
  EXPECT_EQ(r.fields["text"], "plain 한국어");
  EXPECT_FALSE(reader->next(r));
  const auto tsv = scratch_file("ok.tsv", "a\tb\nx,y\tz\n");
  auto tab = open_records(tsv.string());
  ASSERT_TRUE(tab->next(r));
  EXPECT_EQ(r.fields["a"], "x,y");
  DataConfig semicolons;
  semicolons.delimiter = ";";
  auto custom = open_records(scratch_file("semi.csv", "a;b\n\"x;1\";y\n").string(), reader_options(semicolons));
  ASSERT_TRUE(custom->next(r));
  EXPECT_EQ(r.fields["a"], "x;1");
  semicolons.delimiter = "ab";
  EXPECT_THROW(reader_options(semicolons), lorakit::Error);
}

TEST(Records, BadInputNamesFileLineColumn) {
  const auto error_of = [](const std::string& name, const std::string& content) -> std::string {
    const auto path = scratch_file(name, content);
    try {
      auto reader = open_records(path.string());
      Record r;
      while (reader->next(r)) {
      }
    } catch (const lorakit::Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_CONTAINS(error_of("unterminated.csv", "a,b\n1,\"open\n2,3\n"),
                  "unterminated.csv:4:1: unterminated quoted field (started at line 2, column 3)");
  EXPECT_CONTAINS(error_of("empty.csv", ""), "empty.csv: the file is empty");
  EXPECT_CONTAINS(error_of("ragged.csv", "a,b\n1,2\n1,2,3\n"), "ragged.csv:3: this row has 3 fields, the header has 2");
  EXPECT_CONTAINS(error_of("utf8.csv", "a,b\n1,\"x\xFFy\"\n"), "utf8.csv:2:5: invalid UTF-8 (byte 0xFF)");
  EXPECT_CONTAINS(error_of("nul.csv", "a,b\n1,x\0y\n"s), "nul.csv:2:4: NUL byte");
  EXPECT_CONTAINS(error_of("quote.csv", "a,b\n1,\"x\"y\n"), "quote.csv:2:6: unexpected 'y' after the closing quote");
  EXPECT_CONTAINS(error_of("dup.csv", "a,a\n"), "column name 'a' appears twice");
  // pandas writes its index as a column with an empty name: it is read as column_1.
  const auto pandas = scratch_file("pandas.csv", ",text\n0,x\n");
  auto reader = open_records(pandas.string());
  EXPECT_EQ(reader->columns(), (std::vector<std::string>{"column_1", "text"}));
  EXPECT_CONTAINS(error_of("bad.jsonl", "{\"a\": 1}\n{\"a\": }\n"), "bad.jsonl:2:");
  EXPECT_CONTAINS(error_of("array.jsonl", "[1, 2]\n"), "array.jsonl:1: expected a JSON object");
  EXPECT_CONTAINS(error_of("x.parquet", "x"), "unknown data format '.parquet'");
  ReaderOptions small;
  small.max_field_bytes = 1024;
  const auto big = scratch_file("big.csv", "a\n\"" + std::string(5000, 'x') + "\"\n");
  try {
    auto reader = open_records(big.string(), small);
    Record r;
    reader->next(r);
    FAIL();
  } catch (const lorakit::Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "big.csv:2:");
    EXPECT_CONTAINS(std::string(e.what()), "longer than");
  }
}

TEST(EvalCommand, BadInputFailsBeforeLoadingAndNamesTheFile) {
  ASSERT_FALSE(expected().is_null());
  const std::string model = expected()["model"];
  const auto header_only = scratch_file("header.csv", "input,output\n");
  expect_failure(run(fmt::format("eval --model '{}' --data '{}' --text-column output", model, header_only.string())),
                 {"header.csv: no examples"});
  const auto ragged = scratch_file("ragged.csv", "input,output\n1,2,3\n");
  expect_failure(run(fmt::format("eval --model '{}' --data '{}' --text-column output", model, ragged.string())),
                 {"ragged.csv:2: this row has 3 fields"});
  expect_failure(run(fmt::format("eval --model '{}' --data '{}' --text-column outptu", model, expected()["csv"].get<std::string>())),
                 {"no column 'outptu'", "did you mean 'output'"});
  expect_failure(run(fmt::format("eval --model '{}' --data '{}'", model, expected()["csv"].get<std::string>())),
                 {"choose exactly one data format"});
}

namespace {

// 120 rows of varied lengths, every 4th one a validation row.
fs::path many_rows_csv() {
  std::string csv = "id,data_type,q,a\n";
  for (int i = 0; i < 120; ++i) {
    std::string answer;
    for (int k = 0; k <= i % 9; ++k) answer += fmt::format("답변 {} 조각 {} ", i, k);
    csv += fmt::format("{},{},질문 {},{}\n", i, i % 4 == 3 ? "valid" : "train", i, answer);
  }
  return scratch_file("many.csv", csv);
}

DataConfig many_rows_config() {
  DataConfig config;
  config.prompt_template = "Q: {q}\nA: ";
  config.response_column = "a";
  config.filter_column = "data_type";
  config.filter_value = "train";
  config.validation_value = "valid";
  return config;
}

std::vector<std::vector<size_t>> epoch_lines(BatchStream& stream) {
  std::vector<std::vector<size_t>> out;
  Batch batch;
  while (stream.next(batch)) out.push_back(batch.lines);
  return out;
}

}  // namespace

TEST(Batches, SeededShuffleIsReproducibleAndCoversEveryExampleOnce) {
  ASSERT_FALSE(expected().is_null());
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(expected()["model"]);
  const auto path = many_rows_csv();
  const ExampleBuilder train(tokenizer, many_rows_config(), "test", Split::Train);
  const auto open = [&] { return open_records(path.string()); };
  BatchConfig config;
  config.batch_size = 4;
  config.shuffle_buffer = 16;
  BatchStream a(open, train, config), b(open, train, config);
  const auto first = epoch_lines(a);
  EXPECT_EQ(first, epoch_lines(b));
  std::vector<size_t> seen;
  for (const auto& lines : first) seen.insert(seen.end(), lines.begin(), lines.end());
  std::vector<size_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(sorted.size(), 90u);  // 120 rows, 30 of them validation
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "an example came twice";
  EXPECT_NE(seen, sorted) << "not shuffled";
  a.next_epoch();
  EXPECT_NE(epoch_lines(a), first) << "epoch 1 repeats epoch 0's order";
  config.seed = 7;
  BatchStream c(open, train, config);
  EXPECT_NE(epoch_lines(c), first);
  config.shuffle_buffer = 1;
  BatchStream ordered(open, train, config);
  std::vector<size_t> in_order;
  for (const auto& lines : epoch_lines(ordered)) in_order.insert(in_order.end(), lines.begin(), lines.end());
  EXPECT_EQ(in_order, sorted);
  // The validation split holds exactly the other rows.
  const ExampleBuilder valid(tokenizer, many_rows_config(), "test", Split::Validation);
  BatchStream v(open, valid, config);
  size_t validation = 0;
  for (const auto& lines : epoch_lines(v)) validation += lines.size();
  EXPECT_EQ(validation, 30u);
}

TEST(Batches, PaddingToTheLongestRowAndResume) {
  ASSERT_FALSE(expected().is_null());
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(expected()["model"]);
  const auto path = many_rows_csv();
  const ExampleBuilder train(tokenizer, many_rows_config(), "test", Split::Train);
  const auto open = [&] { return open_records(path.string()); };
  BatchConfig config;
  config.batch_size = 5;
  config.shuffle_buffer = 32;
  config.pad_id = 0;
  BatchStream stream(open, train, config);
  std::vector<Batch> batches;
  Batch batch;
  while (stream.next(batch)) batches.push_back(batch);
  for (const Batch& b : batches) {
    int64_t longest = 0;
    for (int64_t r = 0; r < b.rows; ++r) {
      int64_t length = 0;
      for (int64_t t = 0; t < b.cols; ++t) {
        const size_t i = static_cast<size_t>(r * b.cols + t);
        length += b.attention_mask[i];
        if (!b.attention_mask[i]) {
          EXPECT_EQ(b.labels[i], kIgnoreIndex);
          EXPECT_EQ(b.input_ids[i], 0);
        }
      }
      longest = std::max(longest, length);
    }
    EXPECT_EQ(b.cols, longest) << "padded past the longest row";
  }
  // A stream resumed at batch 7 continues with batch 7 of the uninterrupted run.
  BatchStream resumed(open, train, config, Cursor{0, 7});
  for (size_t k = 7; k < batches.size(); ++k) {
    ASSERT_TRUE(resumed.next(batch));
    EXPECT_EQ(batch.lines, batches[k].lines) << "batch " << k;
    EXPECT_EQ(batch.input_ids, batches[k].input_ids) << "batch " << k;
  }
  EXPECT_FALSE(resumed.next(batch));
  EXPECT_THROW(BatchStream(open, train, config, Cursor{0, 1000}), lorakit::Error);
}

TEST(Batches, PackingKeepsExamplesApart) {
  ASSERT_FALSE(expected().is_null());
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(expected()["model"]);
  const auto path = many_rows_csv();
  DataConfig text = many_rows_config();  // every token trained: boundaries must be masked by packing
  text.prompt_template.clear();
  text.text_column = "a";
  for (const DataConfig& data_config : {many_rows_config(), text}) {
    const ExampleBuilder train(tokenizer, data_config, "test", Split::Train);
    const auto open = [&] { return open_records(path.string()); };
    // Expected loss tokens: each example's own trained labels after its first position.
    int64_t want_tokens = 0, want_examples = 0;
    {
      auto reader = open();
      Record record;
      std::string reason;
      while (reader->next(record))
        if (auto e = train.build(record, path.string(), reason)) {
          for (size_t t = 1; t < e->labels.size(); ++t) want_tokens += e->labels[t] != kIgnoreIndex;
          ++want_examples;
        }
    }
    BatchConfig config;
    config.batch_size = 3;
    config.packing = true;
    config.pack_length = 256;
    BatchStream stream(open, train, config);
    Batch b;
    int64_t tokens = 0, examples = 0;
    while (stream.next(b)) {
      EXPECT_LE(b.cols, 256);
      tokens += b.loss_tokens;
      examples += b.examples;
      for (int64_t r = 0; r < b.rows; ++r)
        for (int64_t t = 0; t < b.cols; ++t) {
          const size_t i = static_cast<size_t>(r * b.cols + t);
          if (b.sequence_ids[i] < 0) continue;
          const bool starts = t == 0 || b.sequence_ids[i - 1] != b.sequence_ids[i];
          EXPECT_EQ(b.position_ids[i] == 0, starts);
          if (starts) {
            EXPECT_EQ(b.labels[i], kIgnoreIndex) << "a label crosses an example boundary";
          }
        }
    }
    EXPECT_EQ(examples, want_examples);
    EXPECT_EQ(tokens, want_tokens);
  }
}

TEST(Records, SkipBadRowsCountsAndGoesOn) {
  ReaderOptions skip;
  skip.skip_bad_rows = true;
  const auto csv = scratch_file("mixed.csv", "a,b\n1,ok\n2,x,extra\n3,\"bad\xFF\"\n4,nul\0byte\n5,\"q\"z\n6,fine\n"s);
  auto reader = open_records(csv.string(), skip);
  Record r;
  std::vector<std::string> kept;
  while (reader->next(r)) kept.push_back(r.fields["a"]);
  EXPECT_EQ(kept, (std::vector<std::string>{"1", "6"}));
  EXPECT_EQ(reader->bad_rows(), 4);
  ASSERT_EQ(reader->bad_row_examples().size(), 4u);
  EXPECT_CONTAINS(reader->bad_row_examples()[0], "mixed.csv:3: this row has 3 fields");
  EXPECT_CONTAINS(reader->bad_row_examples()[1], "mixed.csv:4:");
  EXPECT_CONTAINS(reader->bad_row_examples()[2], "NUL byte");
  EXPECT_CONTAINS(reader->bad_row_examples()[3], "after the closing quote");
  const auto jsonl = scratch_file("mixed.jsonl", "{\"a\": 1}\n{\"a\": \n[1]\n{\"a\": 2}\n");
  auto lines = open_records(jsonl.string(), skip);
  int n = 0;
  while (lines->next(r)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_EQ(lines->bad_rows(), 2);
  // Without the option the first bad row stops the read.
  auto strict = open_records(csv.string());
  EXPECT_TRUE(strict->next(r));
  EXPECT_THROW(strict->next(r), lorakit::Error);
}

TEST(DataStatsCommand, ReportsSkipsTruncationAndBadRows) {
  ASSERT_FALSE(expected().is_null());
  const std::string model = expected()["model"];
  const auto csv = scratch_file("stats.csv", "q,a\n질문,짧은 답\n긴 질문 " + std::string(300, 'x') + ",답\n,\nx,y,z\n");
  const auto r = run(fmt::format("data stats --model '{}' --data '{}' --prompt-template 'Q: {{q}}' --response-column a "
                                 "--max-seq-len 24 --skip-bad-rows", model, csv.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "3 rows read");
  EXPECT_CONTAINS(r.output, "1 kept");
  EXPECT_CONTAINS(r.output, "truncation removed every response token");
  EXPECT_CONTAINS(r.output, "empty response");
  EXPECT_CONTAINS(r.output, "1  malformed rows");
  EXPECT_CONTAINS(r.output, "warning: raise max_seq_len");
}
