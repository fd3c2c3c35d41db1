// A compiled PCRE2 pattern with Unicode semantics (UTF + UCP, so \p{L}, \s and \w are Unicode-aware)
// and JIT, standing in for the Oniguruma regexes of HF tokenizers' Split and ByteLevel.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lorakit::tokenizers {

class Regex {
 public:
  // `where` names the pattern's origin in errors ("tokenizer.json: pre_tokenizer.pattern.Regex").
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Non-overlapping matches [begin, end) from left to right; `text` must be valid UTF-8. An empty
  // match is skipped and the search resumes one character later (Oniguruma's find_iter).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  static std::string escape(std::string_view literal);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lorakit::tokenizers
