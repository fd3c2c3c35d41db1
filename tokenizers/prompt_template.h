// Plain prompt templates with named fields, the way polyglot-ko users write them:
// "### 질문: {input}\n### 답변: " with {name} filled from a row's columns. "{{" and "}}" are
// literal braces. Field names are checked when the template is parsed, values when it is rendered.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lorakit::tokenizers {

class PromptTemplate {
 public:
  // `where` names the template's origin in errors ("recipe.yaml: data.prompt").
  PromptTemplate(std::string_view source, std::string where);

  const std::vector<std::string>& fields() const { return fields_; }  // in order, without repeats

  // `value(name)` returns the field's text, or nullopt when the row has no such field; the
  // error then lists `available` names with a "did you mean".
  std::string render(const std::function<std::optional<std::string>(const std::string&)>& value,
                     const std::vector<std::string>& available = {}) const;

 private:
  struct Part {
    std::string text;
    bool field = false;
  };
  std::vector<Part> parts_;
  std::vector<std::string> fields_;
  std::string where_;
};

}  // namespace lorakit::tokenizers
