// Files written so that a reader never sees half of one: the text goes to a temporary sibling,
// which is renamed over the target (rename(2) is atomic within a file system).
#pragma once

#include <filesystem>
#include <string>

namespace lorakit {

// Writes `text` to `path` atomically; an error names the file when it cannot be written.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace lorakit
