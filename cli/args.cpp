#include "cli/args.h"

#include <stdexcept>

#include "core/error.h"
#include "trainer/recipe.h"

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

std::pair<std::string, data::DataConfig> DataArgs::resolve() const {
  if (!recipe.empty()) {
    if (flags_given)
      fail("give the data format in the recipe or as flags, not both; hint: override recipe fields with "
           "--set data.KEY=VALUE");
    const trainer::Recipe r = trainer::load_recipe(recipe, sets);
    return {model.empty() ? r.model.path : model, r.data};
  }
  if (!sets.empty()) fail("--set needs a recipe");
  if (model.empty()) fail("give --model DIR (or a recipe)");
  if (config.path.empty()) fail("give --data FILE (or a recipe)");
  data::DataConfig out = config;
  if (!filter.empty()) {
    const size_t eq = filter.find('=');
    if (eq == std::string::npos || eq == 0) fail("--filter '{}': expected COLUMN=VALUE, e.g. data_type=train", filter);
    out.filter_column = filter.substr(0, eq);
    out.filter_value = filter.substr(eq + 1);
  }
  return {model, out};
}

std::string DataArgs::recipe_quantization() const {
  if (recipe.empty()) return "";
  const std::string q = trainer::load_recipe(recipe, sets).model.quantization;
  return q == "none" ? "" : q;
}

quant::QuantizeConfig quantization_of(const std::string& type) {
  quant::QuantizeConfig q;
  q.type = type;
  return q;
}

void add_data_options(CLI::App* cmd, DataArgs& args) {
  cmd->add_option("--model", args.model, "Hugging Face model directory (weights, tokenizer, chat template)");
  cmd->add_option("--recipe", args.recipe, "Recipe YAML whose model and data sections to use");
  cmd->add_option("--set", args.sets, "Override a recipe field: section.key=value (repeatable)");
  std::vector<CLI::Option*> flags;
  flags.push_back(cmd->add_option("--data", args.config.path, "CSV, TSV or JSONL file"));
  auto* text = cmd->add_option("--text-column", args.config.text_column, "Column of plain text: every token is trained");
  auto* prompt = cmd->add_option("--prompt-template", args.config.prompt_template,
                                 "Prompt with {column} fields, e.g. \"### 질문: {input}\\n### 답변: \"");
  auto* messages = cmd->add_option("--messages-column", args.config.messages_column,
                                   "Column of chat messages, rendered with the model's chat template; assistant turns are trained");
  text->excludes(prompt)->excludes(messages);
  prompt->excludes(messages);
  flags.insert(flags.end(), {text, prompt, messages});
  flags.push_back(cmd->add_option("--filter", args.filter, "Keep rows where COLUMN=VALUE, e.g. data_type=train"));
  flags.push_back(cmd->add_option("--max-seq-len", args.config.max_seq_len, "Truncate longer examples (0: no limit)"));
  flags.push_back(cmd->add_option("--truncation-side", args.config.truncation_side, "right or left"));
  flags.push_back(cmd->add_flag("--train-on-prompt", args.config.train_on_prompt, "Take the loss on prompt tokens too"));
  flags.push_back(cmd->add_option("--eos-token", args.config.eos_token, "EOS appended to responses (default: the tokenizer's eos_token)"));
  flags.push_back(cmd->add_flag("!--no-eos", args.config.add_eos, "Append no EOS to responses"));
  flags.push_back(cmd->add_option("--delimiter", args.config.delimiter, "CSV field delimiter, e.g. ';' or '\\t'"));
  flags.push_back(cmd->add_flag("--skip-bad-rows", args.config.skip_bad_rows,
                                "Count and skip malformed rows (wrong field count, bad UTF-8, NUL, bad JSON) instead of stopping"));
  flags.push_back(cmd->add_option("--response-column", args.config.response_column,
                                  "Column the model learns after the prompt (EOS appended)"));
  flags.push_back(cmd->add_option("--label-column", args.config.label_column,
                                  "A classifier's data: the column of each row's label (with --text-column)"));
  cmd->parse_complete_callback([&args, flags] {
    for (const CLI::Option* option : flags)
      if (option->count() > 0) args.flags_given = true;
  });
}

}  // namespace lorakit::cli
