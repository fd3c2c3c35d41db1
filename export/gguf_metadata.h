// The general.* keys of a GGUF file as gguf-py's Metadata.load + set_gguf_meta_model write them
// for a Hugging Face directory: generation_config.json's sampling settings, the README.md model
// card's front matter (name, base models, datasets, tags, languages, license, ...), config.json's
// _name_or_path when it is a hub id, and the heuristics on the directory's name (name, basename,
// finetune, version, size label); the size label otherwise from the parameter count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "export/gguf_file.h"

namespace lorakit::exports::gguf {

// `name` overrides general.name (the converter's --model-name); `total_params` is negative for an
// adapter (gguf-py's marker that the count is not the model's).
void write_general(Writer& w, const std::filesystem::path& dir, const std::string& name, int64_t total_params);

// gguf-py's size_label: the parameter count in K/M/B/T with at least two significant digits.
std::string size_label(int64_t parameters);

}  // namespace lorakit::exports::gguf
