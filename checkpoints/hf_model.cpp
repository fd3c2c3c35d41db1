#include "checkpoints/hf_model.h"

#include <algorithm>

#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"

namespace lorakit {

namespace fs = std::filesystem;

HfModelDir open_hf_model_dir(const fs::path& dir) {
  HfModelDir hf;
  hf.dir = dir;
  if (!fs::exists(dir)) fail("{}: no such directory (hint: pass a Hugging Face model directory)", dir.string());
  if (!fs::is_directory(dir)) fail("{}: not a directory (hint: pass the folder that holds config.json)", dir.string());
  hf.config_path = dir / "config.json";
  if (!fs::exists(hf.config_path))
    fail("{}: no config.json (hint: a Hugging Face model directory holds config.json and model*.safetensors)",
         dir.string());
  hf.config = JsonReader::parse_file(hf.config_path.string());
  JsonReader(hf.config, hf.config_path.string());  // must be an object

  fs::path single = dir / "model.safetensors";
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    hf.weight_files = {single};
    hf.weight_format = "model.safetensors";
  } else if (fs::exists(index)) {
    nlohmann::json parsed = JsonReader::parse_file(index.string());
    JsonReader reader(parsed, index.string());
    if (!reader.has("weight_map") || !parsed["weight_map"].is_object())
      reader.fail_key("weight_map", "an object mapping tensor names to shard files");
    std::set<std::string> shards;
    for (auto& [name, file] : parsed["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map['{}'] must be a file name", index.string(), name);
      shards.insert(file.get<std::string>());
    }
    for (const auto& shard : shards) {
      if (shard.find('/') != std::string::npos || shard == "..")
        fail("{}: shard '{}' must be a file name in the same directory", index.string(), shard);
      if (!fs::exists(dir / shard)) fail("{}: shard '{}' listed in weight_map is missing", index.string(), shard);
      hf.weight_files.push_back(dir / shard);
    }
    hf.weight_format = fmt::format("sharded ({} files)", hf.weight_files.size());
  } else if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json")) {
    fail("{}: only pytorch_model.bin weights found; lorakit reads safetensors (hint: convert once in Python: "
         "AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True))",
         dir.string());
  }
  return hf;
}

std::string WeightCheck::problems(const std::string& where) const {
  std::string message = fmt::format("{}: the weights do not fit the architecture:", where);
  auto section = [&](const char* title, const std::vector<std::string>& items) {
    if (items.empty()) return;
    message += fmt::format(" {} {} tensor(s): ", items.size(), title);
    size_t shown = std::min<size_t>(items.size(), 8);
    message += fmt::format("{}", fmt::join(items.begin(), items.begin() + shown, ", "));
    if (items.size() > shown) message += fmt::format(", ... ({} more)", items.size() - shown);
    message += ";";
  };
  section("missing", missing);
  section("unexpected", unexpected);
  section("mis-shaped", mismatched);
  message += " (hint: check that config.json belongs to these weights)";
  return message;
}

namespace {

struct FileIndex {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsEntry*>> entries;
};

FileIndex index_files(const HfModelDir& hf) {
  FileIndex index;
  for (const auto& path : hf.weight_files) {
    index.files.push_back(std::make_unique<SafetensorsFile>(path));
    const SafetensorsFile* file = index.files.back().get();
    for (const auto& e : file->entries()) {
      auto [it, inserted] = index.entries.emplace(e.name, std::pair{file, &e});
      if (!inserted)
        fail("tensor '{}' is stored twice: in {} and in {}", e.name, it->second.first->path().string(), path.string());
    }
  }
  return index;
}

WeightCheck check_index(CausalLM& model, const FileIndex& index) {
  struct Checker : ParamVisitor {
    const FileIndex& index;
    WeightCheck check;
    std::set<std::string> expected;
    explicit Checker(const FileIndex& i) : index(i) {}
    void tensor(const std::string& name, at::Tensor&, const std::vector<int64_t>& shape) override {
      expected.insert(name);
      auto it = index.entries.find(name);
      if (it == index.entries.end()) {
        check.missing.push_back(name);
        return;
      }
      const SafetensorsEntry& e = *it->second.second;
      if (e.shape != shape)
        check.mismatched.push_back(fmt::format("{}: file {} vs expected {}", name, shape_string(e.shape), shape_string(shape)));
      check.dtypes.insert(e.dtype);
    }
  } checker(index);
  model.visit(checker);
  WeightCheck check = std::move(checker.check);
  check.tensors = static_cast<int64_t>(index.entries.size());
  for (const auto& [name, where] : index.entries) {
    if (checker.expected.count(name)) continue;
    (model.ignores_checkpoint_tensor(name) ? check.ignored : check.unexpected).push_back(name);
  }
  for (const auto& dtype : check.dtypes) {
    at::ScalarType type;
    if (!safetensors_dtype_to_torch(dtype, &type) || !at::isFloatingType(type))
      check.mismatched.push_back(fmt::format("weights stored as {} (expected F32, F16 or BF16)", dtype));
  }
  return check;
}

}  // namespace

WeightCheck check_weights(CausalLM& model, const HfModelDir& hf) { return check_index(model, index_files(hf)); }

std::unique_ptr<CausalLM> load_hf_model(const fs::path& dir, const LoadOptions& options) {
  HfModelDir hf = open_hf_model_dir(dir);
  std::unique_ptr<CausalLM> model = create_model(JsonReader(hf.config, hf.config_path.string()));
  if (hf.weight_files.empty())
    fail("{}: no weights (expected model.safetensors or model.safetensors.index.json)", dir.string());
  FileIndex index = index_files(hf);
  WeightCheck check = check_index(*model, index);
  if (!check.ok()) throw Error(check.problems(dir.string()));

  struct Filler : ParamVisitor {
    const FileIndex& index;
    const LoadOptions& options;
    Filler(const FileIndex& i, const LoadOptions& o) : index(i), options(o) {}
    void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>&) override {
      const auto& [file, entry] = index.entries.at(name);
      slot = file->read(name, options.dtype, options.device);
    }
  } filler(index, options);
  model->visit(filler);
  return model;
}

}  // namespace lorakit
