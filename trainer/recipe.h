// Recipes: the YAML files `lorakit train`, `eval` and `data stats` run. Sections are HF/PEFT-named
// structs whose fields are declared once, in their visit_fields() lists (data/examples.h for
// `data`); reading, `--set section.key=value` overrides and writing the resolved recipe all walk
// those lists. Unknown keys and wrong types are errors with a "did you mean", reported together.
#pragma once

#include <string>
#include <vector>

#include "data/examples.h"

namespace lorakit::trainer {

struct ModelSection {
  std::string path;           // Hugging Face model directory
  std::string dtype = "fp32"; // fp32 | bf16 | fp16
};

template <typename Visitor>
void visit_fields(ModelSection& c, Visitor&& v) {
  v("path", c.path, "Hugging Face model directory (config.json, safetensors, tokenizer)");
  v("dtype", c.dtype, "weights' dtype: fp32, bf16 or fp16");
}

struct Recipe {
  std::string source;  // the file it was read from ("" when built from flags)
  ModelSection model;
  data::DataConfig data;
};

// Reads `path`, then applies `overrides` ("data.max_seq_len=512"). Relative model and data paths
// are resolved against the recipe's directory.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// The resolved recipe as YAML, every field written (what a run directory keeps).
std::string recipe_yaml(Recipe recipe);

}  // namespace lorakit::trainer
