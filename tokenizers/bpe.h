// The BPE model of HF tokenizers (models/bpe): a word's characters start as vocab ids and the
// adjacent pair with the best merge rank (leftmost on ties) is merged until none applies.
// Characters missing from the vocab become <0xNN> byte tokens (byte_fallback), the unk token
// (fused when fuse_unk), or are dropped, as in HF.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lorakit::tokenizers {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;  // "" = none
  std::string end_of_word_suffix;         // "" = none
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe {
 public:
  // `merges` in priority order (rank 0 first). `where` names the source file in errors.
  Bpe(StringMap<int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
      BpeOptions options, const std::string& where);

  // Appends the ids of one pre-tokenized word.
  void encode(std::string_view word, std::vector<int32_t>& ids) const;

  const StringMap<int32_t>& vocab() const { return vocab_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

  StringMap<int32_t> vocab_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) -> (rank, id)
  BpeOptions options_;
  std::optional<int32_t> unk_id_;

  mutable std::mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace lorakit::tokenizers
