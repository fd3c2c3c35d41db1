#include "data/examples.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/json_reader.h"

namespace lorakit::data {
namespace {

std::vector<std::string> column_names(const nlohmann::json& fields) {
  std::vector<std::string> names;
  for (const auto& [key, value] : fields.items()) names.push_back(key);
  return names;
}

const nlohmann::json& column(const Record& record, const std::string& path, const std::string& name) {
  if (!record.fields.contains(name)) {
    const auto names = column_names(record.fields);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    fail("{}:{}: no column '{}'{}; the row has: {}", path, record.line, name, did_you_mean(name, names), list);
  }
  return record.fields[name];
}

std::string text_column(const Record& record, const std::string& path, const std::string& name) {
  const nlohmann::json& value = column(record, path, name);
  if (value.is_null()) return "";
  if (!value.is_string())
    fail("{}:{}: column '{}' must be text, found {}", path, record.line, name, value.type_name());
  return value.get<std::string>();
}

void append(Example& example, const std::vector<int32_t>& ids, bool trained) {
  example.input_ids.insert(example.input_ids.end(), ids.begin(), ids.end());
  example.labels.insert(example.labels.end(), ids.begin(), ids.end());
  if (!trained) std::fill(example.labels.end() - static_cast<ptrdiff_t>(ids.size()), example.labels.end(), kIgnoreIndex);
  (trained ? example.response_tokens : example.prompt_tokens) += static_cast<int64_t>(ids.size());
}

}  // namespace

ReaderOptions reader_options(const DataConfig& config) {
  ReaderOptions options;
  options.skip_bad_rows = config.skip_bad_rows;
  if (!config.delimiter.empty()) {
    const std::string d = config.delimiter == "\\t" ? "\t" : config.delimiter;
    if (d.size() != 1 || d == "\"" || d == "\n" || d == "\r")
      fail("data.delimiter '{}': expected one character other than a quote or line break, e.g. ';' or '\\t'",
           config.delimiter);
    options.delimiter = d[0];
  }
  return options;
}

ExampleBuilder::ExampleBuilder(const tokenizers::Tokenizer& tokenizer, DataConfig config, std::string where,
                               Split split)
    : tokenizer_(tokenizer), config_(std::move(config)), where_(std::move(where)), split_(split) {
  if (!config_.validation_value.empty() && config_.filter_column.empty())
    fail("{}: validation_value '{}' needs filter_column (the column holding train/valid)", where_,
         config_.validation_value);
  if (config_.validation_fraction < 0 || config_.validation_fraction >= 1)
    fail("{}: validation_fraction {} must be in [0, 1)", where_, config_.validation_fraction);
  const int formats = !config_.text_column.empty() + !config_.prompt_template.empty() + !config_.messages_column.empty() +
                      !config_.ids_column.empty();
  if (formats != 1)
    fail("{}: choose exactly one data format: a text column, a prompt template with a response column, a "
         "messages column or an ids column", where_);
  if (!config_.prompt_template.empty()) {
    if (config_.response_column.empty() && config_.label_column.empty())
      fail("{}: a prompt template needs a response column (the text the model learns to write)", where_);
    prompt_.emplace(config_.prompt_template, where_ + ": prompt template");
  }
  if (!config_.messages_column.empty()) {
    chat_format_ = tokenizers::detect_chat_format(tokenizer.chat_template());
    if (chat_format_ == tokenizers::ChatFormat::None)
      fail("{}: a messages column needs the model's chat template, but {} has {} (lorakit renders: {}); hint: "
           "use data.prompt_template with a response column instead",
           where_, tokenizer.source(), tokenizer.chat_template().empty() ? "none" : "one lorakit does not know",
           tokenizers::known_chat_formats());
  }
  if (tokenizer.special().bos) chat_options_.bos_token = tokenizer.decode(std::vector<int32_t>{*tokenizer.special().bos}, false);
  if (config_.truncation_side != "right" && config_.truncation_side != "left")
    fail("{}: truncation side '{}': expected right or left", where_, config_.truncation_side);
  eos_ = tokenizer.special().eos;
  if (!config_.eos_token.empty()) {
    eos_ = tokenizer.token_to_id(config_.eos_token);
    if (!eos_) fail("{}: eos token '{}' is not in the tokenizer's vocabulary ({})", where_, config_.eos_token, tokenizer.source());
  }
  if (classifies() && config_.text_column.empty() && config_.prompt_template.empty())
    fail("{}: data.label_column needs the text to classify: data.text_column, or data.prompt_template (with its "
         "{{column}} fields)", where_);
  const bool wants_eos = config_.add_eos && config_.messages_column.empty() && config_.ids_column.empty() && !classifies();
  if (wants_eos && !eos_)
    fail("{}: the tokenizer ({}) names no eos_token to append; hint: name it (--eos-token '<|endoftext|>'), "
         "turn it off (--no-eos), or add eos_token to tokenizer_config.json", where_, tokenizer.source());
}

bool ExampleBuilder::selects(const Record& record, const std::string& path, std::string& skip_reason) const {
  std::string value;
  if (!config_.filter_column.empty()) {
    const nlohmann::json& v = column(record, path, config_.filter_column);
    value = v.is_string() ? v.get<std::string>() : v.dump();
  }
  if (!config_.validation_value.empty() && split_ != Split::All) {
    const bool validation = value == config_.validation_value;
    const bool train = config_.filter_value.empty() ? !validation : value == config_.filter_value;
    if (split_ == Split::Validation ? validation : train) return true;
    skip_reason = fmt::format("{} == {} ({} split)", config_.filter_column, value,
                              validation ? "validation" : split_ == Split::Train ? "not train" : "train");
    return false;
  }
  if (!config_.filter_column.empty() && value != config_.filter_value) {
    skip_reason = config_.filter_column + " != " + config_.filter_value;
    return false;
  }
  if (config_.validation_fraction > 0 && split_ != Split::All) {
    // splitmix64 of (seed, line): a stable, uniform choice per row.
    uint64_t z = config_.seed + 0x9E3779B97F4A7C15ull * (record.line + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const bool validation = static_cast<double>(z >> 11) / 9007199254740992.0 < config_.validation_fraction;
    if (validation != (split_ == Split::Validation)) {
      skip_reason = validation ? "in the validation fraction" : "in the training fraction";
      return false;
    }
  }
  return true;
}

std::string ExampleBuilder::label_of(const Record& record, const std::string& path) const {
  const nlohmann::json& value = column(record, path, config_.label_column);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer() || value.is_boolean()) return value.dump();
  fail("{}:{}: column '{}' must be a label (text or an integer), found {}", path, record.line, config_.label_column,
       value.is_null() ? "an empty value" : value.dump());
}

std::vector<std::string> collect_labels(RecordReader& reader, const ExampleBuilder& builder, const std::string& path) {
  std::set<std::string> seen;
  std::string skip_reason;
  for (Record record; reader.next(record);)
    if (builder.selects(record, path, skip_reason)) seen.insert(builder.label_of(record, path));
  if (seen.empty()) fail("{}: no labels in column '{}' of the training rows", path, builder.config().label_column);
  std::vector<std::string> labels(seen.begin(), seen.end());
  const auto integer = [](const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin() + (s[0] == '-'), s.end(), ::isdigit) && s != "-";
  };
  if (std::all_of(labels.begin(), labels.end(), integer))
    std::sort(labels.begin(), labels.end(), [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  return labels;
}

std::pair<std::string, std::string> ExampleBuilder::prompt_and_response(const Record& record,
                                                                        const std::string& path) const {
  if (!prompt_) fail("{}: generation needs a prompt template and a response column", where_);
  std::string prompt;
  try {
    prompt = prompt_->render(
        [&](const std::string& name) -> std::optional<std::string> {
          if (!record.fields.contains(name)) return std::nullopt;
          return text_column(record, path, name);
        },
        column_names(record.fields));
  } catch (const Error& e) {
    fail("{}:{}: {}", path, record.line, e.what());
  }
  if (config_.response_column.empty()) return {prompt, ""};  // a classifier's input text
  return {prompt, text_column(record, path, config_.response_column)};
}

std::optional<Example> ExampleBuilder::build(const Record& record, const std::string& path,
                                             std::string& skip_reason) const {
  return with_json_errors(fmt::format("{}:{}", path, record.line), [&]() -> std::optional<Example> {
    if (!selects(record, path, skip_reason)) return std::nullopt;
    Example example;
    example.line = record.line;
    if (!config_.ids_column.empty()) {
      const nlohmann::json& ids = column(record, path, config_.ids_column);
      if (!ids.is_array())
        fail("{}:{}: column '{}' must be a list of token ids, found {}", path, record.line, config_.ids_column, ids.type_name());
      std::vector<int32_t> tokens;
      for (const auto& id : ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
          fail("{}:{}: column '{}': {} is not a token id (a non-negative integer)", path, record.line, config_.ids_column,
               id.dump());
        tokens.push_back(id.get<int32_t>());
      }
      append(example, tokens, true);
    } else if (classifies()) {
      // The text with the tokenizer's special tokens ([CLS] ... [SEP], or BOS), and the label's id.
      const std::string text = config_.text_column.empty() ? prompt_and_response(record, path).first
                                                           : text_column(record, path, config_.text_column);
      if (text.empty()) {
        skip_reason = "empty text";
        return std::nullopt;
      }
      const std::string label = label_of(record, path);
      const auto it = std::find(labels_.begin(), labels_.end(), label);
      if (it == labels_.end())
        fail("{}:{}: label '{}' (column '{}') is not one of the {} labels the classifier knows ({}); hint: every label "
             "must occur in the training rows", path, record.line, label, config_.label_column, labels_.size(),
             fmt::join(labels_, ", "));
      example.class_label = static_cast<int32_t>(it - labels_.begin());
      append(example, tokenizer_.encode(text, true), false);
    } else if (!config_.text_column.empty()) {
      const std::string text = text_column(record, path, config_.text_column);
      if (text.empty()) {
        skip_reason = "empty text";
        return std::nullopt;
      }
      std::vector<int32_t> ids = tokenizer_.encode(text, true);
      if (config_.add_eos) ids.push_back(*eos_);
      append(example, ids, true);
    } else if (prompt_) {
      const std::string response = text_column(record, path, config_.response_column);
      if (response.empty()) {
        skip_reason = "empty response";
        return std::nullopt;
      }
      const std::string prompt = prompt_and_response(record, path).first;
      append(example, tokenizer_.encode(prompt, true), config_.train_on_prompt);
      std::vector<int32_t> ids = tokenizer_.encode(response, false);
      if (config_.add_eos) ids.push_back(*eos_);
      append(example, ids, true);
    } else {
      const nlohmann::json& messages = column(record, path, config_.messages_column);
      if (!messages.is_array())
        fail("{}:{}: column '{}' must be a list of {{\"role\", \"content\"}} messages, found {}", path, record.line,
             config_.messages_column, messages.type_name());
      std::vector<tokenizers::ChatSegment> segments;
      try {
        segments = tokenizers::render_chat(chat_format_, nlohmann::ordered_json::parse(messages.dump()), chat_options_);
      } catch (const Error& e) {
        fail("{}:{}: {}", path, record.line, e.what());
      }
      for (const auto& segment : segments)
        append(example, tokenizer_.encode(segment.text, false), segment.assistant || config_.train_on_prompt);
      if (example.response_tokens == 0) {
        skip_reason = "no assistant turn";
        return std::nullopt;
      }
    }
    const auto limit = static_cast<size_t>(config_.max_seq_len);
    if (limit > 0 && example.input_ids.size() > limit) {
      example.truncated = true;
      const auto cut = [&](std::vector<int32_t>& v) {
        if (config_.truncation_side == "right")
          v.resize(limit);
        else
          v.erase(v.begin(), v.end() - static_cast<ptrdiff_t>(limit));
      };
      cut(example.input_ids);
      cut(example.labels);
    }
    if (classifies()) return example;
    // A next-token loss needs a trained label after the first position.
    const bool trained = example.labels.size() >= 2 &&
                         std::any_of(example.labels.begin() + 1, example.labels.end(),
                                     [](int32_t label) { return label != kIgnoreIndex; });
    if (!trained) {
      skip_reason = example.truncated ? "truncation removed every response token" : "fewer than 2 tokens";
      return std::nullopt;
    }
    return example;
  });
}

}  // namespace lorakit::data
