// Row -> training example: token ids and labels (-100 where no loss is taken), in one of three
// formats chosen by the data config:
//   text:             ids = tokenizer(text) [+ eos];                 every token is trained
//   prompt/response:  ids = tokenizer(prompt) + tokenizer(response, no specials) [+ eos];
//                     prompt tokens are -100 unless train_on_prompt
//   messages:         the model's chat template, each segment tokenized without specials;
//                     only assistant turns (content + end of turn) are trained
// The tokenization of each part is exactly what transformers' tokenizer gives for that part.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/records.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/prompt_template.h"
#include "tokenizers/tokenizer.h"

namespace lorakit::data {

struct DataConfig {
  std::string path;             // CSV, TSV or JSONL file
  std::string text_column;      // plain text
  std::string prompt_template;  // "### 질문: {input}\n### 답변: ", with response_column
  std::string response_column;
  std::string messages_column;  // [{"role", "content"}, ...] rendered with the chat template
  std::string ids_column;       // JSONL: pre-tokenized rows, a list of token ids; every token is trained
  std::string label_column;     // sequence classification: the label of each row's text
  bool train_on_prompt = false;
  bool add_eos = true;            // text and prompt/response formats
  std::string eos_token;          // overrides the tokenizer's eos_token (e.g. "<|endoftext|>")
  int64_t max_seq_len = 0;        // 0: no limit
  std::string truncation_side = "right";  // or "left"
  std::string filter_column;      // keep rows whose filter_column equals filter_value
  std::string filter_value;
  // Validation rows: those whose filter_column equals validation_value (Oh-LoRA's data_type ==
  // valid), or else a fraction chosen by a hash of the row's line number (stable across runs).
  std::string validation_value;
  double validation_fraction = 0;
  uint64_t seed = 42;
  bool skip_bad_rows = false;  // count and skip malformed rows instead of stopping
  std::string delimiter;       // CSV field delimiter; "" = by extension (.csv ',', .tsv tab)
};

ReaderOptions reader_options(const DataConfig& config);

// Every field of the recipe's `data` section, declared once: YAML key, value and help text. The
// recipe reader, `--set data.key=value` and the resolved recipe all go through this list.
template <typename Visitor>
void visit_fields(DataConfig& c, Visitor&& v) {
  v("path", c.path, "CSV, TSV or JSONL file (relative paths are relative to the recipe)");
  v("text_column", c.text_column, "column of plain text; every token is trained");
  v("prompt_template", c.prompt_template, "prompt with {column} fields, e.g. \"### 질문: {input}\\n### 답변: \"");
  v("response_column", c.response_column, "column the model learns to write after the prompt");
  v("messages_column", c.messages_column, "column of chat messages, rendered with the model's chat template");
  v("ids_column", c.ids_column, "JSONL column of token ids (pre-tokenized rows); every token is trained, nothing appended");
  v("label_column", c.label_column,
    "task: sequence_classification: the column of each row's label (text or integer); the labels are those of the "
    "training rows, sorted (numerically when all are integers)");
  v("train_on_prompt", c.train_on_prompt, "take the loss on prompt (non-assistant) tokens too");
  v("add_eos", c.add_eos, "append the EOS token to each response");
  v("eos_token", c.eos_token, "EOS token to append (default: the tokenizer's eos_token)");
  v("max_seq_len", c.max_seq_len, "truncate longer examples (0: no limit)");
  v("truncation_side", c.truncation_side, "right or left");
  v("filter_column", c.filter_column, "keep rows whose filter_column equals filter_value");
  v("filter_value", c.filter_value, "the value of filter_column for training rows");
  v("validation_value", c.validation_value, "the value of filter_column for validation rows");
  v("validation_fraction", c.validation_fraction, "else: this fraction of rows (by line) is validation");
  v("seed", c.seed, "seed of the validation fraction");
  v("delimiter", c.delimiter, "CSV field delimiter, one character (default: ',' for .csv, tab for .tsv)");
  v("skip_bad_rows", c.skip_bad_rows, "count and skip malformed rows (wrong field count, bad UTF-8, bad JSON) instead of stopping");
}

// Which rows a builder keeps: the training rows, the validation rows, or every row (eval, stats).
enum class Split { Train, Validation, All };

struct Example {
  size_t line = 0;
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;   // same length; -100 = no loss
  int64_t prompt_tokens = 0;     // untrained tokens before truncation
  int64_t response_tokens = 0;   // trained tokens before truncation
  bool truncated = false;
  int32_t class_label = -1;      // sequence classification: the label's id (labels all -100)
};

inline constexpr int32_t kIgnoreIndex = -100;

class ExampleBuilder {
 public:
  // `where` names the config's origin in errors ("--prompt-template", "recipe.yaml: data").
  ExampleBuilder(const tokenizers::Tokenizer& tokenizer, DataConfig config, std::string where,
                 Split split = Split::All);

  // The example of one record, or nullopt with `skip_reason` set ("filtered", "empty text",
  // "truncation removed every response token", ...). Missing columns and wrong types are errors.
  std::optional<Example> build(const Record& record, const std::string& path, std::string& skip_reason) const;

  // The prompt text and the reference response of a prompt/response record (for generation).
  std::pair<std::string, std::string> prompt_and_response(const Record& record, const std::string& path) const;

  // Sequence classification (data.label_column): the label names, in id order, that rows' labels map
  // to; a row with another label is an error naming it. Set before build().
  void set_labels(std::vector<std::string> labels) { labels_ = std::move(labels); }
  const std::vector<std::string>& labels() const { return labels_; }
  bool classifies() const { return !config_.label_column.empty(); }
  // A record's label as text (a string as is, an integer or boolean as JSON writes it).
  std::string label_of(const Record& record, const std::string& path) const;

  // Whether a record belongs to this builder's split (filter and validation rules only).
  bool selects(const Record& record, const std::string& path, std::string& skip_reason) const;

  const DataConfig& config() const { return config_; }

 private:
  const tokenizers::Tokenizer& tokenizer_;
  DataConfig config_;
  std::string where_;
  Split split_;
  std::optional<tokenizers::PromptTemplate> prompt_;
  tokenizers::ChatFormat chat_format_ = tokenizers::ChatFormat::None;
  tokenizers::ChatOptions chat_options_;  // the tokenizer's BOS for templates that print it
  std::optional<int32_t> eos_;
  std::vector<std::string> labels_;
};

// The distinct labels of the rows `builder` selects (data.label_column), sorted: numerically when
// every label is an integer, else as text. No label at all is an error naming the file.
std::vector<std::string> collect_labels(RecordReader& reader, const ExampleBuilder& builder, const std::string& path);

}  // namespace lorakit::data
