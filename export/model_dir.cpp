#include "export/model_dir.h"

#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "checkpoints/safetensors.h"
#include "core/files.h"

namespace lorakit::exports {

namespace fs = std::filesystem;

WrittenModel write_model_dir(const fs::path& out, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                             const nlohmann::json& config, const fs::path& source, uint64_t max_shard_bytes) {
  const fs::path tmp = out.parent_path() / fmt::format(".{}.tmp-{}", out.filename().string(), ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  RemoveUnlessKept guard(tmp);  // on any error the temporary goes; the target only appears complete, by the rename
  WrittenModel written;
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  uint64_t shard_bytes = 0;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    if (shard_bytes > 0 && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().emplace_back(name, tensor);
    shard_bytes += bytes;
    written.bytes += bytes;
  }
  written.shards = static_cast<int64_t>(shards.size());
  if (shards.size() == 1) {
    save_safetensors(tmp / "model.safetensors", shards[0], {{"format", "pt"}});
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      save_safetensors(tmp / file, shards[i], {{"format", "pt"}});
      for (const auto& [name, t] : shards[i]) weight_map[name] = file;
    }
    std::ofstream(tmp / "model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", written.bytes}}}, {"weight_map", weight_map}}.dump(2) << "\n";
  }
  std::ofstream(tmp / "config.json") << config.dump(2) << "\n";
  for (const char* file : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja"})
    if (fs::exists(source / file)) fs::copy_file(source / file, tmp / file);
  if (fs::exists(out)) fs::remove_all(out);
  fs::rename(tmp, out);
  guard.keep();
  return written;
}

}  // namespace lorakit::exports
