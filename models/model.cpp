#include "models/model.h"

#include "core/error.h"

namespace lorakit {

#define LORAKIT_ARCHITECTURE(type) std::unique_ptr<CausalLM> create_##type(const JsonReader& config);
#include "models/architectures.def"
#undef LORAKIT_ARCHITECTURE

void ParamVisitor::linear(const std::string& name, Linear& linear) {
  if (linear.fan_in_fan_out)
    tensor(name + ".weight", linear.weight, {linear.in_features, linear.out_features});
  else
    tensor(name + ".weight", linear.weight, {linear.out_features, linear.in_features});
  if (linear.has_bias) tensor(name + ".bias", linear.bias, {linear.out_features});
}

bool is_output_layer(const std::string& name) {
  const std::string last = name.substr(name.rfind('.') + 1);
  return last == "lm_head" || last == "embed_out";
}

int64_t Model::num_parameters() {
  struct Counter : ParamVisitor {
    int64_t total = 0;
    void tensor(const std::string&, at::Tensor&, const std::vector<int64_t>& shape) override {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      total += n;
    }
  } counter;
  visit(counter);
  return counter.total;
}

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> list = {
#define LORAKIT_ARCHITECTURE(type) {#type, create_##type},
#include "models/architectures.def"
#undef LORAKIT_ARCHITECTURE
  };
  return list;
}

std::vector<std::string> known_model_types() {
  std::vector<std::string> types;
  for (const auto& arch : architectures()) types.push_back(arch.model_type);
  return types;
}

std::unique_ptr<CausalLM> create_model(const JsonReader& config) {
  std::string model_type = config.string("model_type");
  for (const auto& arch : architectures())
    if (arch.model_type == model_type) return with_json_errors(config.where(), [&] { return arch.create(config); });
  fail("{}: unsupported model_type '{}'{} (lorakit knows: {})", config.where(), model_type,
       did_you_mean(model_type, known_model_types()), fmt::join(known_model_types(), ", "));
}

}  // namespace lorakit

namespace lorakit {

void check_config_size(const JsonReader& config, const char* key, int64_t value) {
  const std::string_view name = key;
  const int64_t limit = name == "num_hidden_layers" || name == "num_layers" || name == "n_layer" ? kMaxLayers : kMaxDimension;
  if (value <= 0 || value > limit) config.fail_key(key, fmt::format("a positive integer up to {}", limit));
}

RopeConfig read_rope_config(const JsonReader& config, double default_theta, double default_partial_rotary_factor,
                            int64_t max_position_embeddings) {
  RopeConfig rope;
  rope.rope_theta = config.number("rope_theta", default_theta);
  rope.partial_rotary_factor = config.number("partial_rotary_factor", default_partial_rotary_factor);
  if (!(rope.partial_rotary_factor > 0 && rope.partial_rotary_factor <= 1))
    config.fail_key("partial_rotary_factor", "a number in (0, 1]");
  std::string key = config.has("rope_parameters") ? "rope_parameters" : config.has("rope_scaling") ? "rope_scaling" : "";
  if (key.empty()) return rope;
  JsonReader params = config.child(key);
  rope.rope_theta = params.number("rope_theta", rope.rope_theta);
  rope.partial_rotary_factor = params.number("partial_rotary_factor", rope.partial_rotary_factor);
  if (!(rope.partial_rotary_factor > 0 && rope.partial_rotary_factor <= 1))
    params.fail_key("partial_rotary_factor", "a number in (0, 1]");
  RopeScaling& s = rope.scaling;
  s.rope_type = params.string("rope_type", params.string("type", "default"));
  if (s.rope_type == "default") return rope;
  if (s.rope_type != "linear" && s.rope_type != "dynamic" && s.rope_type != "llama3" && s.rope_type != "yarn")
    params.fail_key("rope_type", "'default', 'linear', 'dynamic', 'llama3' or 'yarn' (the RoPE types lorakit implements)");
  s.factor = params.number("factor");
  if (s.factor <= 0) params.fail_key("factor", "a positive number");
  s.original_max_position_embeddings =
      config.integer("original_max_position_embeddings",
                     params.integer("original_max_position_embeddings", max_position_embeddings));
  if (s.rope_type == "llama3") {
    s.low_freq_factor = params.number("low_freq_factor");
    s.high_freq_factor = params.number("high_freq_factor");
  } else if (s.rope_type == "yarn") {
    // HF: `beta_fast or 32`, `beta_slow or 1` (a null or 0 takes the default).
    if (params.has("beta_fast") && params.number("beta_fast") != 0) s.beta_fast = params.number("beta_fast");
    if (params.has("beta_slow") && params.number("beta_slow") != 0) s.beta_slow = params.number("beta_slow");
    if (params.has("attention_factor")) s.attention_factor = params.number("attention_factor");
    s.mscale = params.has("mscale") ? params.number("mscale") : 0.0;
    s.mscale_all_dim = params.has("mscale_all_dim") ? params.number("mscale_all_dim") : 0.0;
    s.truncate = params.boolean("truncate", true);
  }
  if ((s.rope_type == "llama3" || s.rope_type == "yarn") && s.original_max_position_embeddings <= 0)
    params.fail_key("original_max_position_embeddings", "a positive integer");
  if (s.rope_type == "dynamic" && max_position_embeddings <= 0)
    config.fail_key("max_position_embeddings", "a positive integer (dynamic RoPE scales past it)");
  return rope;
}

std::string read_config_dtype(const JsonReader& config) {
  return config.string("dtype", config.string("torch_dtype", ""));
}

}  // namespace lorakit
