#include "tokenizers/bpe.h"

#include <algorithm>
#include <queue>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

constexpr size_t kCacheCapacity = 200'000;
constexpr size_t kMaxCachedWord = 256;

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

Bpe::Bpe(StringMap<int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
         BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  const size_t prefix = options_.continuing_subword_prefix.size();
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto a = vocab_.find(left), b = vocab_.find(right);
    if (a == vocab_.end() || b == vocab_.end())
      fail("{}: merge {} '{} {}' uses a token missing from the vocab ('{}')", where, rank, left, right,
           a == vocab_.end() ? left : right);
    // HF cuts the prefix's length off the right token unconditionally.
    const std::string merged = left + (prefix ? right.substr(std::min(prefix, right.size())) : right);
    const auto m = vocab_.find(merged);
    if (m == vocab_.end())
      fail("{}: merge {} '{} {}' makes '{}', which is missing from the vocab", where, rank, left, right, merged);
    // A later duplicate overwrites an earlier one, as in HF.
    merges_.insert_or_assign(pair_key(a->second, b->second), std::pair{static_cast<int32_t>(rank), m->second});
  }
  if (options_.unk_token) {
    const auto it = vocab_.find(*options_.unk_token);
    if (it == vocab_.end()) fail("{}: unk_token '{}' is not in the vocab", where, *options_.unk_token);
    unk_id_ = it->second;
  }
}

void Bpe::encode(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (word.size() <= kMaxCachedWord) {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  merge_word(word, ids);
  if (word.size() <= kMaxCachedWord) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.try_emplace(std::string(word), ids.begin() + static_cast<ptrdiff_t>(first), ids.end());
  }
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (options_.ignore_merges) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per character (with prefix/suffix), byte fallback or unk for unknowns.
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  std::optional<int32_t> pending_unk;  // an unk not yet emitted (fuse_unk extends it)
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t n = utf8_length(static_cast<unsigned char>(word[pos]));
    const bool is_first = pos == 0, is_last = pos + n >= word.size();
    piece.clear();
    if (!is_first) piece += options_.continuing_subword_prefix;
    piece += word.substr(pos, n);
    if (is_last) piece += options_.end_of_word_suffix;
    pos += n;
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk) symbols.push_back(*std::exchange(pending_unk, std::nullopt));
      symbols.push_back(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<int32_t> bytes;
      for (unsigned char b : piece) {
        const auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
        if (it == vocab_.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == piece.size()) {  // a pending unk stays pending, as in HF
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !options_.fuse_unk) symbols.push_back(*pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk) symbols.push_back(*pending_unk);

  // Merge by (rank, position) with a priority queue over a linked list of symbols (HF's
  // Word::merge_all): stale entries are skipped when their pair no longer exists.
  const int n = static_cast<int>(symbols.size());
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const auto it = merges_.find(pair_key(symbols[left], symbols[next[left]]));
    if (it != merges_.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int right = next[top.pos];
    const auto it = merges_.find(pair_key(symbols[top.pos], symbols[right]));
    if (it == merges_.end() || it->second.second != top.id) continue;
    symbols[top.pos] = top.id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    push_pair(prev[top.pos]);
    push_pair(top.pos);
  }
  for (int i = 0; i >= 0 && i < n; i = next[i]) ids.push_back(symbols[i]);
}

}  // namespace lorakit::tokenizers
