#include "trainer/recipe.h"

#include <filesystem>
#include <type_traits>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "device/dtype.h"

namespace lorakit::trainer {
namespace {

namespace fs = std::filesystem;

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, lora::TargetModules>) return "a list of module names or a regex string";
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
  else if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else return "a string";
}

// Keys of earlier recipes whose meaning moved: an old recipe that sets one is an error that says
// where the setting lives now, never a silent change.
struct MovedKey {
  const char* key;
  const char* message;
};
constexpr MovedKey kMovedKeys[] = {
    {"train.precision",
     "train.precision is gone: model.dtype is the dtype of the frozen base weights and of the computation "
     "(LoRA weights stay fp32; fp16 turns on loss scaling); hint: delete it and set model.dtype (e.g. `model: {dtype: bf16}`)"},
};

std::string where_of(const std::string& source, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return source;
  return fmt::format("{}:{}:{}", source, mark.line + 1, mark.column + 1);
}

// Reads one section's mapping into its struct through visit_fields; collects problems.
template <typename Section>
void read_section(const YAML::Node& node, const std::string& name, const std::string& source, Section& section,
                  std::vector<std::string>& problems) {
  if (!node.IsMap()) {
    problems.push_back(fmt::format("{}: section '{}' must be a mapping of key: value", where_of(source, node), name));
    return;
  }
  std::vector<std::string> known;
  visit_fields(section, [&](const char* key, auto& field, const char*) {
    known.push_back(key);
    const YAML::Node value = node[key];
    if (!value) return;
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, lora::TargetModules>) {
      field = {};
      if (value.IsSequence()) {
        for (const auto& item : value) field.names.push_back(item.as<std::string>());
      } else if (value.IsScalar()) {
        // A string is a regex, as in PEFT; "all-linear" is PEFT's keyword.
        if (value.Scalar() == "all-linear")
          field.names = {"all-linear"};
        else
          field.regex = value.Scalar();
      } else {
        problems.push_back(fmt::format("{}: {}.{}: expected {}", where_of(source, value), name, key, type_name<T>()));
      }
      return;
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      field.clear();
      if (value.IsSequence()) {
        for (const auto& item : value) field.push_back(item.as<std::string>());
      } else if (value.IsScalar()) {
        field.push_back(value.Scalar());
      } else {
        problems.push_back(fmt::format("{}: {}.{}: expected {}", where_of(source, value), name, key, type_name<T>()));
      }
      return;
    } else {
    if (!value.IsScalar()) {
      problems.push_back(fmt::format("{}: {}.{}: expected {}, found a {}", where_of(source, value), name, key,
                                     type_name<T>(), value.IsSequence() ? "list" : "mapping"));
      return;
    }
    try {
      field = value.as<T>();
    } catch (const YAML::Exception&) {
      problems.push_back(fmt::format("{}: {}.{}: expected {}, found '{}'", where_of(source, value), name, key,
                                     type_name<T>(), value.Scalar()));
    }
    }
  });
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const auto moved = std::find_if(std::begin(kMovedKeys), std::end(kMovedKeys),
                                    [&](const MovedKey& m) { return m.key == name + "." + key; });
    if (moved != std::end(kMovedKeys))
      problems.push_back(fmt::format("{}: {}", where_of(source, entry.first), moved->message));
    else
      problems.push_back(fmt::format("{}: unknown key '{}.{}'{}", where_of(source, entry.first), name, key,
                                     did_you_mean(key, known)));
  }
}

template <typename Section>
void write_section(YAML::Emitter& out, const char* name, Section& section) {
  out << YAML::Key << name << YAML::Value << YAML::BeginMap;
  visit_fields(section, [&](const char* key, auto& field, const char*) {
    using T = std::decay_t<decltype(field)>;
    out << YAML::Key << key << YAML::Value;
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      out << YAML::BeginSeq;
      for (const auto& item : field) out << item;
      out << YAML::EndSeq;
    } else if constexpr (std::is_same_v<T, lora::TargetModules>) {
      if (!field.regex.empty()) {
        out << field.regex;
      } else {
        out << YAML::Flow << YAML::BeginSeq;
        for (const auto& n : field.names) out << n;
        out << YAML::EndSeq;
      }
    } else {
      out << field;
    }
  });
  out << YAML::EndMap;
}

// Visits the sections of a recipe: each (name, section) pair.
template <typename F>
void for_each_section(Recipe& recipe, F&& f) {
  f("model", recipe.model);
  f("lora", recipe.lora);
  f("data", recipe.data);
  f("train", recipe.train);
  f("output", recipe.output);
  f("inference", recipe.inference);
}

std::string resolve_path(const std::string& value, const fs::path& base) {
  if (value.empty() || fs::path(value).is_absolute()) return value;
  return (base / value).lexically_normal().string();
}

}  // namespace

quant::QuantizeConfig quantize_config(const ModelSection& model) {
  quant::QuantizeConfig q;
  if (model.quantization == "none" || model.quantization.empty()) return q;
  if (model.quantization != "nf4" && model.quantization != "fp4")
    fail("model.quantization '{}': expected none, nf4 or fp4{}", model.quantization,
         did_you_mean(model.quantization, {"none", "nf4", "fp4"}));
  q.type = model.quantization;
  q.double_quant = model.double_quant;
  if (!model.compute_dtype.empty()) q.compute_dtype = parse_dtype(model.compute_dtype, "model.compute_dtype");
  q.skip_modules = model.skip_modules;
  return q;
}

// The recipe, with yaml-cpp's conversion exceptions still raw (load_recipe turns them into Errors).
static Recipe load_recipe_unchecked(const std::string& path, const std::vector<std::string>& overrides) {
  if (!fs::exists(path)) fail("{}: no such recipe file", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    fail("{}:{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  for (const std::string& item : overrides) {
    if (item.starts_with("task=")) {
      root["task"] = item.substr(5);
      continue;
    }
    const size_t eq = item.find('='), dot = item.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      fail("--set '{}': expected section.key=value, e.g. data.max_seq_len=512", item);
    const std::string section = item.substr(0, dot), key = item.substr(dot + 1, eq - dot - 1);
    if (!root[section]) root[section] = YAML::Node(YAML::NodeType::Map);
    root[section][key] = YAML::Load(item.substr(eq + 1));
  }
  Recipe recipe;
  recipe.source = path;
  std::vector<std::string> problems, sections;
  if (!root.IsMap()) fail("{}: a recipe is a mapping of sections (model, data, ...)", path);
  for_each_section(recipe, [&](const char* name, auto& section) {
    sections.push_back(name);
    if (root[name]) read_section(root[name], name, path, section, problems);
  });
  if (root["task"]) {
    recipe.task = root["task"].as<std::string>();
    if (recipe.task != "causal_lm" && recipe.task != "sequence_classification")
      problems.push_back(fmt::format("{}: task '{}': expected {}{}", where_of(path, root["task"]), recipe.task, kTaskHelp,
                                     did_you_mean(recipe.task, {"causal_lm", "sequence_classification"})));
  }
  if (classifies(recipe) && recipe.data.label_column.empty())
    problems.push_back(fmt::format("{}: task: sequence_classification needs data.label_column (the column of each row's label)", path));
  if (!classifies(recipe) && !recipe.data.label_column.empty())
    problems.push_back(fmt::format("{}: data.label_column is set but the task is causal_lm; hint: add task: sequence_classification", path));
  for (const auto& entry : root) {
    const std::string name = entry.first.as<std::string>();
    if (name == "task") continue;
    if (std::find(sections.begin(), sections.end(), name) == sections.end())
      problems.push_back(fmt::format("{}: unknown section '{}'{} (sections: model, lora, data, train, output, inference)", where_of(path, entry.first),
                                     name, did_you_mean(name, sections)));
  }
  if (recipe.model.dtype != "fp32" && recipe.model.dtype != "bf16" && recipe.model.dtype != "fp16")
    problems.push_back(fmt::format("{}: model.dtype '{}': expected fp32, bf16 or fp16",
                                   root["model"] && root["model"]["dtype"] ? where_of(path, root["model"]["dtype"]) : path,
                                   recipe.model.dtype));
  const std::string& quantization = recipe.model.quantization;
  if (quantization != "none" && quantization != "nf4" && quantization != "fp4")
    problems.push_back(fmt::format("{}: model.quantization '{}': expected none, nf4 or fp4{}",
                                   root["model"] && root["model"]["quantization"] ? where_of(path, root["model"]["quantization"]) : path,
                                   quantization, did_you_mean(quantization, {"none", "nf4", "fp4"})));
  const std::string& compute = recipe.model.compute_dtype;
  if (!compute.empty() && compute != "fp32" && compute != "bf16" && compute != "fp16")
    problems.push_back(fmt::format("{}: model.compute_dtype '{}': expected fp32, bf16 or fp16 (or empty: model.dtype)",
                                   root["model"] && root["model"]["compute_dtype"] ? where_of(path, root["model"]["compute_dtype"]) : path,
                                   compute));
  if (!problems.empty()) {
    std::string message = fmt::format("{}: {} problem{} in the recipe", path, problems.size(), problems.size() == 1 ? "" : "s");
    for (const auto& p : problems) message += "\n  " + p;
    throw Error(message);
  }
  const fs::path base = fs::path(path).parent_path();
  recipe.model.path = resolve_path(recipe.model.path, base);
  recipe.data.path = resolve_path(recipe.data.path, base);
  if (recipe.model.path.empty()) fail("{}: model.path is missing (a Hugging Face model directory)", path);
  if (recipe.data.path.empty()) fail("{}: data.path is missing (a CSV, TSV or JSONL file)", path);
  return recipe;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  try {
    return load_recipe_unchecked(path, overrides);
  } catch (const YAML::Exception& e) {  // a section that is a scalar, a value of the wrong kind, ...
    fail("{}:{}:{}: unexpected YAML: {}; hint: a recipe is a map of sections (model, lora, data, train, output)",
         path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
}

std::string recipe_yaml(Recipe recipe) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "task" << YAML::Value << recipe.task;
  for_each_section(recipe, [&](const char* name, auto& section) { write_section(out, name, section); });
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace lorakit::trainer
