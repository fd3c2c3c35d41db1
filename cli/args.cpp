#include "cli/args.h"

#include <stdexcept>

#include "core/error.h"

namespace lorakit::cli {

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      size_t used = 0;
      const long long id = std::stoll(item, &used);
      if (used != item.size() || id < 0) throw std::invalid_argument(item);
      ids.push_back(id);
    } catch (const std::exception&) {
      fail("--ids: '{}' is not a token id (expected non-negative integers separated by commas, e.g. 1,2,3)", item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32") return c10::kFloat;
  if (name == "bf16") return c10::kBFloat16;
  if (name == "fp16") return c10::kHalf;
  fail("--dtype: '{}' is not one of fp32, bf16, fp16", name);
}

data::DataConfig DataArgs::resolved() const {
  data::DataConfig out = config;
  if (!filter.empty()) {
    const size_t eq = filter.find('=');
    if (eq == std::string::npos || eq == 0) fail("--filter '{}': expected COLUMN=VALUE, e.g. data_type=train", filter);
    out.filter_column = filter.substr(0, eq);
    out.filter_value = filter.substr(eq + 1);
  }
  return out;
}

void add_data_options(CLI::App* cmd, DataArgs& args) {
  cmd->add_option("--data", args.path, "CSV, TSV or JSONL file")->required();
  auto* text = cmd->add_option("--text-column", args.config.text_column, "Column of plain text: every token is trained");
  auto* prompt = cmd->add_option("--prompt-template", args.config.prompt_template,
                                 "Prompt with {column} fields, e.g. \"### 질문: {input}\\n### 답변: \"");
  cmd->add_option("--response-column", args.config.response_column, "Column the model learns after the prompt (EOS appended)");
  auto* messages = cmd->add_option("--messages-column", args.config.messages_column,
                                   "Column of chat messages, rendered with the model's chat template; assistant turns are trained");
  text->excludes(prompt)->excludes(messages);
  prompt->excludes(messages);
  cmd->add_option("--filter", args.filter, "Keep rows where COLUMN=VALUE, e.g. data_type=train");
  cmd->add_option("--max-seq-len", args.config.max_seq_len, "Truncate longer examples (0: no limit)")->capture_default_str();
  cmd->add_option("--truncation-side", args.config.truncation_side, "right or left")->capture_default_str();
  cmd->add_flag("--train-on-prompt", args.config.train_on_prompt, "Take the loss on prompt tokens too");
  cmd->add_option("--eos-token", args.config.eos_token, "EOS appended to responses (default: the tokenizer's eos_token)");
  cmd->add_flag("!--no-eos", args.config.add_eos, "Append no EOS to responses");
}

}  // namespace lorakit::cli
