#include "tokenizers/prompt_template.h"

#include <algorithm>

#include "core/error.h"

namespace lorakit::tokenizers {

PromptTemplate::PromptTemplate(std::string_view source, std::string where) : where_(std::move(where)) {
  std::string literal;
  for (size_t pos = 0; pos < source.size(); ++pos) {
    const char c = source[pos];
    if (c == '{' && pos + 1 < source.size() && source[pos + 1] == '{') {
      literal.push_back('{');
      ++pos;
    } else if (c == '}' && pos + 1 < source.size() && source[pos + 1] == '}') {
      literal.push_back('}');
      ++pos;
    } else if (c == '{') {
      const size_t close = source.find('}', pos);
      if (close == std::string_view::npos)
        fail("{}: '{{' at offset {} has no closing '}}'; hint: write '{{{{' for a literal brace", where_, pos);
      const std::string name(source.substr(pos + 1, close - pos - 1));
      const bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
        return ch == '_' || ch == '-' || ch == '.' || ch == ' ' || std::isalnum(static_cast<unsigned char>(ch)) ||
               static_cast<unsigned char>(ch) >= 0x80;
      });
      if (!valid || name.find('{') != std::string::npos)
        fail("{}: bad field name '{{{}}}' at offset {}; hint: fields are column names in braces, "
             "literal braces are '{{{{' and '}}}}'", where_, name, pos);
      if (!literal.empty()) parts_.push_back({std::move(literal), false});
      literal.clear();
      parts_.push_back({name, true});
      if (std::find(fields_.begin(), fields_.end(), name) == fields_.end()) fields_.push_back(name);
      pos = close;
    } else if (c == '}') {
      fail("{}: '}}' at offset {} closes nothing; hint: write '}}}}' for a literal brace", where_, pos);
    } else {
      literal.push_back(c);
    }
  }
  if (!literal.empty()) parts_.push_back({std::move(literal), false});
}

std::string PromptTemplate::render(const std::function<std::optional<std::string>(const std::string&)>& value,
                                   const std::vector<std::string>& available) const {
  std::string out;
  for (const Part& part : parts_) {
    if (!part.field) {
      out += part.text;
      continue;
    }
    const auto text = value(part.text);
    if (!text) {
      std::string names;
      for (const auto& name : available) names += (names.empty() ? "" : ", ") + name;
      fail("{}: field '{{{}}}' has no value{}{}", where_, part.text, did_you_mean(part.text, available),
           names.empty() ? "" : "; available: " + names);
    }
    out += *text;
  }
  return out;
}

}  // namespace lorakit::tokenizers
