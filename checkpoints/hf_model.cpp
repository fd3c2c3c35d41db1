#include "checkpoints/hf_model.h"

#include <malloc.h>

#include <algorithm>
#include <functional>

#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/format.h"
#include "core/json_reader.h"

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

// The suffixes of a 4-bit weight stored under `weight` ("model.layers.0.mlp.up_proj.weight"), or
// none when it is stored as a plain tensor.
std::vector<std::string> stored_4bit_suffixes(const FileIndex& index, const std::string& weight) {
  std::vector<std::string> suffixes;
  for (const char* type : {"nf4", "fp4"})
    if (index.entries.count(weight + quant::quant_state_suffix(type))) suffixes.push_back(quant::quant_state_suffix(type));
  if (suffixes.empty()) return suffixes;
  for (const char* s : {"", ".absmax", ".quant_map"}) suffixes.push_back(s);
  if (index.entries.count(weight + ".nested_absmax") || index.entries.count(weight + ".nested_quant_map"))
    for (const char* s : {".nested_absmax", ".nested_quant_map"}) suffixes.push_back(s);
  return suffixes;
}

WeightCheck check_index(Model& model, const FileIndex& index) {
  struct Checker : ParamVisitor {
    const FileIndex& index;
    WeightCheck check;
    std::set<std::string> expected;
    explicit Checker(const FileIndex& i) : index(i) {}
    void linear(const std::string& name, Linear& l) override {
      const std::vector<std::string> suffixes = stored_4bit_suffixes(index, name + ".weight");
      if (suffixes.empty()) return ParamVisitor::linear(name, l);
      for (const std::string& suffix : suffixes) {
        expected.insert(name + ".weight" + suffix);
        if (!index.entries.count(name + ".weight" + suffix)) check.missing.push_back(name + ".weight" + suffix);
      }
      if (l.has_bias) tensor(name + ".bias", l.bias, {l.out_features});
    }
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

WeightCheck check_weights(Model& model, const HfModelDir& hf) { return check_index(model, index_files(hf)); }

// Fills `model` from the checked files (tensors the check found missing are left undefined).
static void fill_model(Model& model, const fs::path& dir, const HfModelDir& hf, const FileIndex& index, const LoadOptions& options) {

  // The compute dtype of 4-bit Linears: the option, else the checkpoint's own quantization_config
  // (as transformers reads it), else the model dtype.
  at::ScalarType compute_dtype = options.quantize.compute_dtype;
  if (compute_dtype == at::ScalarType::Undefined) {
    compute_dtype = options.dtype;
    const nlohmann::json& qc = hf.config.contains("quantization_config") ? hf.config["quantization_config"] : nlohmann::json();
    if (qc.is_object() && qc.value("bnb_4bit_compute_dtype", nlohmann::json()).is_string()) {
      const std::string name = qc["bnb_4bit_compute_dtype"].get<std::string>();
      compute_dtype = name == "bfloat16" ? at::kBFloat16 : name == "float16" ? at::kHalf : at::kFloat;
    }
  }
  const std::string model_type = model.summary().model_type;
  if (options.quantize.enabled()) {
    if (options.quantize.type != "nf4" && options.quantize.type != "fp4")
      fail("model.quantization '{}': expected nf4, fp4 or none", options.quantize.type);
    if (model_type == "gpt2" || model_type == "rwkv")
      fail("{}: 4-bit quantization of {} models is not supported yet (hint: load it in bf16 or fp16; QLoRA runs on the "
           "llama family, EXAONE and GPT-NeoX)", dir.string(), model_type);
  }

  struct Filler : ParamVisitor {
    const FileIndex& index;
    const LoadOptions& options;
    at::ScalarType compute_dtype;
    Filler(const FileIndex& i, const LoadOptions& o, at::ScalarType c) : index(i), options(o), compute_dtype(c) {}
    void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>&) override {
      const auto it = index.entries.find(name);
      if (it == index.entries.end()) return;  // a classifier head the checkpoint lacks
      slot = it->second.first->read(name, options.dtype, options.device);
    }
    void linear(const std::string& name, Linear& l) override {
      const std::string weight = name + ".weight";
      const std::vector<int64_t> shape = {l.out_features, l.in_features};
      quant::Weight4bit w;
      if (!stored_4bit_suffixes(index, weight).empty()) {
        w = quant::weight_from_state(weight, [&](const std::string& suffix) {
          const auto it = index.entries.find(weight + suffix);
          return it == index.entries.end() ? at::Tensor() : it->second.first->tensor(weight + suffix);
        }, shape).to(options.device);
      } else if (options.quantize.enabled() && !is_output_layer(name) && !skipped(name)) {
        const auto& [file, entry] = index.entries.at(weight);
        w = quant::quantize_4bit(file->read(weight, options.dtype, options.device), options.quantize.type,
                                 options.quantize.double_quant);
      } else {
        return ParamVisitor::linear(name, l);
      }
      w.compute_dtype = compute_dtype;
      l.weight_4bit = std::make_shared<const quant::Weight4bit>(std::move(w));
      // The float32 copy and the quantizer's temporaries are freed by now; glibc would keep them in
      // its heap, and the resident set would grow towards the dense model's. Give them back.
      if (weight_4bit_on_cpu()) ::malloc_trim(0);
      if (l.has_bias) tensor(name + ".bias", l.bias, {l.out_features});
    }
    bool skipped(const std::string& name) const { return quant::is_skipped(name, options.quantize.skip_modules); }
    bool weight_4bit_on_cpu() const { return options.device.is_cpu(); }
  } filler(index, options, compute_dtype);
  model.visit(filler);
}

std::unique_ptr<CausalLM> load_hf_model(const fs::path& dir, const LoadOptions& options) {
  HfModelDir hf = open_hf_model_dir(dir);
  std::unique_ptr<CausalLM> model = create_model(JsonReader(hf.config, hf.config_path.string()));
  if (hf.weight_files.empty())
    fail("{}: no weights (expected model.safetensors or model.safetensors.index.json)", dir.string());
  FileIndex index = index_files(hf);
  WeightCheck check = check_index(*model, index);
  if (!check.ok()) throw Error(check.problems(dir.string()));
  fill_model(*model, dir, hf, index, options);
  return model;
}

std::vector<std::string> classifier_labels(const HfModelDir& hf) {
  const nlohmann::json& c = hf.config;
  const bool classifier = c.contains("architectures") && c["architectures"].is_array() && !c["architectures"].empty() &&
                          c["architectures"][0].is_string() &&
                          c["architectures"][0].get<std::string>().ends_with("ForSequenceClassification");
  if (!classifier || !c.contains("id2label") || !c["id2label"].is_object()) return {};
  return labels_from_id2label(c["id2label"], hf.config_path.string());
}

std::vector<std::string> labels_from_id2label(const nlohmann::json& id2label, const std::string& where) {
  if (!id2label.is_object()) fail("{}: id2label must be an object of id: label name", where);
  std::vector<std::string> labels(id2label.size());
  for (const auto& [key, value] : id2label.items()) {
    const int32_t id = parse_id(key, where + ": id2label");
    if (id >= static_cast<int32_t>(labels.size()) || !value.is_string() || !labels[id].empty())
      fail("{}: id2label must map the ids 0..{} to label names, found \"{}\": {}", where, labels.size() - 1, key, value.dump());
    labels[id] = value.get<std::string>();
  }
  return labels;
}

LoadedClassifier load_hf_classifier(const fs::path& dir, const LoadOptions& options, int64_t num_labels,
                                    std::optional<int64_t> pad_token_id, uint64_t seed) {
  HfModelDir hf = open_hf_model_dir(dir);
  LoadedClassifier out;
  out.model = create_classifier(JsonReader(hf.config, hf.config_path.string()), num_labels, pad_token_id);
  if (hf.weight_files.empty())
    fail("{}: no weights (expected model.safetensors or model.safetensors.index.json)", dir.string());
  if (options.quantize.enabled()) fail("{}: 4-bit quantization of classifiers is not supported yet; hint: model.quantization: none", dir.string());
  FileIndex index = index_files(hf);
  WeightCheck check = check_index(*out.model, index);
  // A base model has no head: every head tensor missing is expected (transformers initialises it).
  const std::string head = out.model->head_module();
  const auto in_head = [&](const std::string& name) { return name.starts_with(head + "."); };
  const size_t head_missing = std::count_if(check.missing.begin(), check.missing.end(), in_head);
  size_t head_tensors = 0;
  struct Count : ParamVisitor {
    std::function<void(const std::string&)> f;
    void tensor(const std::string& name, at::Tensor&, const std::vector<int64_t>&) override { f(name); }
  } count;
  count.f = [&](const std::string& name) { head_tensors += in_head(name); };
  out.model->visit(count);
  if (head_missing == head_tensors) {
    std::erase_if(check.missing, in_head);
    out.head_initialized = true;
  }
  if (!check.ok())
    throw Error(check.problems(dir.string()) +
                (std::any_of(check.mismatched.begin(), check.mismatched.end(), in_head)
                     ? fmt::format("; hint: the checkpoint's {} head has another number of labels than the {} here", head, num_labels)
                     : ""));
  fill_model(*out.model, dir, hf, index, options);
  if (out.head_initialized) out.model->init_head(seed, options.device);
  return out;
}


nlohmann::json bnb_4bit_quantization_config(const quant::QuantizeConfig& config, at::ScalarType compute_dtype,
                                            const std::string& output_layer) {
  nlohmann::json skip = nullptr;
  if (!config.skip_modules.empty()) {
    skip = nlohmann::json::array({output_layer});  // an explicit list replaces transformers' default
    for (const auto& s : config.skip_modules) skip.push_back(s);
  }
  const char* compute = compute_dtype == at::kBFloat16 ? "bfloat16" : compute_dtype == at::kHalf ? "float16" : "float32";
  return {{"_load_in_4bit", true},
          {"_load_in_8bit", false},
          {"bnb_4bit_compute_dtype", compute},
          {"bnb_4bit_quant_storage", "uint8"},
          {"bnb_4bit_quant_type", config.type},
          {"bnb_4bit_use_double_quant", config.double_quant},
          {"llm_int8_enable_fp32_cpu_offload", false},
          {"llm_int8_has_fp16_weight", false},
          {"llm_int8_skip_modules", skip},
          {"llm_int8_threshold", 6.0},
          {"load_in_4bit", true},
          {"load_in_8bit", false},
          {"quant_method", "bitsandbytes"}};
}

}  // namespace lorakit
