// Files written so that a reader never sees half of one: the text goes to a temporary sibling,
// which is renamed over the target (rename(2) is atomic within a file system).
#pragma once

#include <filesystem>
#include <string>
#include <utility>

namespace lorakit {

// Writes `text` to `path` atomically; an error names the file when it cannot be written.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// The temporary sibling of an atomic write (a file or a directory tree), removed when the scope is
// left before keep(): a write that fails half-way leaves nothing behind.
class RemoveUnlessKept {
 public:
  explicit RemoveUnlessKept(std::filesystem::path path) : path_(std::move(path)) {}
  ~RemoveUnlessKept();
  RemoveUnlessKept(const RemoveUnlessKept&) = delete;
  RemoveUnlessKept& operator=(const RemoveUnlessKept&) = delete;
  void keep() { kept_ = true; }

 private:
  std::filesystem::path path_;
  bool kept_ = false;
};

}  // namespace lorakit
