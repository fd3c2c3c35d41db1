// `lorakit tokenize --model DIR (--text TEXT | --file F) [--jsonl]` and
// `lorakit detokenize --model DIR --ids 1,2,3`: the model directory's tokenizer, as
// transformers' AutoTokenizer would run it.
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/unicode.h"

namespace lorakit::cli {
namespace {

struct TokenizeArgs {
  std::string model, text, file;
  bool jsonl = false;
  bool no_special = false;
};

// The readable view: one row per token with its id, its vocabulary string and the text it stands for.
void print_pieces(const tokenizers::Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    const std::string text = tokenizer.decode(std::span(&id, 1));
    fmt::print("{:>8}  {:<24}  {}\n", id, tokenizer.id_to_token(id), nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  fmt::print("{} tokens\n", ids.size());
}

void run_tokenize(const TokenizeArgs& args) {
  const tokenizers::Tokenizer tokenizer = tokenizers::load_tokenizer(args.model);
  const auto emit = [&](const std::vector<int32_t>& ids) {
    if (args.jsonl)
      fmt::print("{}\n", nlohmann::json(ids).dump());
    else
      print_pieces(tokenizer, ids);
  };
  if (args.file.empty()) {
    emit(tokenizer.encode(args.text, !args.no_special));
    return;
  }
  std::ifstream in(args.file, std::ios::binary);
  if (!in) fail("{}: cannot open the file to tokenize", args.file);
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 BOM
    tokenizers::require_utf8(line, fmt::format("{}:{}", args.file, number));
    emit(tokenizer.encode(line, !args.no_special));
  }
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text -> token ids with a model directory's tokenizer");
  cmd->add_option("--model", args->model, "Hugging Face model directory (tokenizer.json, vocab.json + merges.txt, or tokenizer.model)")
      ->required();
  auto* text = cmd->add_option("--text", args->text, "Text to tokenize");
  auto* file = cmd->add_option("--file", args->file, "UTF-8 file: each line is tokenized on its own");
  text->excludes(file);
  cmd->add_flag("--jsonl", args->jsonl, "Print one JSON array of ids per input line instead of the table");
  cmd->add_flag("--no-special-tokens", args->no_special, "Do not add BOS/EOS (add_special_tokens=False)");
  cmd->callback([args, text, file] {
    if (!*text && !*file) fail("tokenize: give --text TEXT or --file FILE");
    run_tokenize(*args);
  });
}

void add_detokenize(CLI::App& app) {
  struct Args {
    std::string model, ids;
    bool skip_special = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Token ids -> text with a model directory's tokenizer");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  cmd->add_option("--ids", args->ids, "Comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--skip-special-tokens", args->skip_special, "Leave special tokens out of the text");
  cmd->callback([args] {
    const tokenizers::Tokenizer tokenizer = tokenizers::load_tokenizer(args->model);
    std::vector<int32_t> ids;
    for (int64_t id : parse_ids(args->ids)) ids.push_back(static_cast<int32_t>(std::min<int64_t>(id, INT32_MAX)));
    fmt::print("{}\n", tokenizer.decode(ids, args->skip_special));
  });
}

}  // namespace lorakit::cli
