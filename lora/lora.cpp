#include "lora/lora.h"

#include <algorithm>
#include <cmath>
#include <regex>

#include <ATen/ops/dropout.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/zeros.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/format.h"

namespace lorakit::lora {
namespace {

}  // namespace

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

LoraLinear::LoraLinear(int64_t in, int64_t out, const LoraConfig& config)
    : scaling(config.scaling()), dropout(config.lora_dropout) {
  lora_A = at::empty({config.r, in}, at::kFloat);
  lora_B = at::zeros({out, config.r}, at::kFloat);
}

at::Tensor LoraLinear::delta(const at::Tensor& x) const {
  at::Tensor h = x.to(lora_A.scalar_type());                         // (..., in) float32
  if (dropout > 0) h = at::dropout(h, dropout, training);
  at::Tensor y = at::matmul(at::matmul(h, lora_A.t()), lora_B.t());  // (..., r) -> (..., out)
  return (y * scaling).to(x.scalar_type());
}

std::vector<std::string> match_targets(const TargetModules& targets, const std::vector<std::string>& linears) {
  std::vector<std::string> out;
  const bool all_linear = targets.regex.empty() && targets.names.size() == 1 && targets.names[0] == "all-linear";
  std::optional<std::regex> pattern;
  if (!targets.regex.empty()) {
    if (targets.regex == "all-linear") {
      for (const auto& name : linears)
        if (!is_output_layer(name)) out.push_back(name);
      return out;
    }
    try {
      pattern.emplace(targets.regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail("lora.target_modules: '{}' is not a valid regex ({})", targets.regex, e.what());
    }
  }
  for (const auto& name : linears) {
    bool hit = false;
    if (all_linear) {
      hit = !is_output_layer(name);
    } else if (pattern) {
      hit = std::regex_match(name, *pattern);
    } else {
      for (const auto& target : targets.names)
        if (name == target || (name.size() > target.size() && name.ends_with("." + target))) hit = true;
    }
    if (hit) out.push_back(name);
  }
  return out;
}

std::string LoraModel::trainable_line() const {
  return fmt::format("trainable params: {} || all params: {} || trainable%: {:.4f}", with_commas(trainable_parameters),
                     with_commas(all_parameters), 100.0 * static_cast<double>(trainable_parameters) /
                                                      static_cast<double>(all_parameters));
}

std::string LoraModel::modules_line() const {
  std::vector<std::pair<std::string, int>> groups;
  for (const Adapter& a : adapters) {
    const std::string last = a.module.substr(a.module.rfind('.') + 1);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == last; });
    if (it == groups.end())
      groups.emplace_back(last, 1);
    else
      ++it->second;
  }
  std::string list;
  for (const auto& [name, count] : groups) list += fmt::format("{}{} x{}", list.empty() ? "" : ", ", name, count);
  return fmt::format("LoRA on {} modules (r={}, lora_alpha={}, scaling {:.4g}): {}; first {}, last {}", adapters.size(),
                     config.r, config.lora_alpha, config.scaling(), list, adapters.front().module, adapters.back().module);
}

std::vector<std::pair<std::string, at::Tensor>> LoraModel::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const Adapter& a : adapters) {
    out.emplace_back("base_model.model." + a.module + ".lora_A.weight", a.lora->lora_A);
    out.emplace_back("base_model.model." + a.module + ".lora_B.weight", a.lora->lora_B);
  }
  for (const auto& [name, tensor] : saved_modules) out.emplace_back("base_model.model." + name, tensor);
  return out;
}

void LoraModel::set_training(bool training) {
  for (Adapter& a : adapters) a.lora->training = training;
}

bool in_modules(const std::string& name, const std::vector<std::string>& modules) {
  // Every module path that holds the tensor: "classifier.dense.weight" -> "classifier", "classifier.dense".
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
    const std::string module = name.substr(0, dot);
    for (const auto& entry : modules)
      if (module == entry || module.ends_with("." + entry)) return true;
  }
  return false;
}

LoraModel inject_lora(Model& model, LoraConfig config, uint64_t seed) {
  if (config.r < 1 || config.r > kMaxRank) fail("lora.r must be an integer from 1 to {}, found {}", kMaxRank, config.r);
  if (config.lora_dropout < 0 || config.lora_dropout >= 1)
    fail("lora.lora_dropout must be in [0, 1), found {}", config.lora_dropout);
  if (config.bias != "none") fail("lora.bias '{}' is not supported (only \"none\")", config.bias);
  if (config.init_lora_weights != "true" && config.init_lora_weights != "gaussian" && config.init_lora_weights != "false")
    fail("lora.init_lora_weights '{}': expected true, gaussian or false", config.init_lora_weights);
  const ArchSummary summary = model.summary();
  if (config.target_modules.empty()) config.target_modules.names = summary.default_lora_targets;

  struct Collect : ParamVisitor {
    std::vector<std::pair<std::string, Linear*>> linears;
    std::vector<std::pair<std::string, at::Tensor*>> tensors;
    int64_t total = 0;
    void tensor(const std::string& name, at::Tensor& slot, const std::vector<int64_t>& shape) override {
      tensors.emplace_back(name, &slot);
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      total += n;
    }
    void linear(const std::string& name, Linear& l) override {
      linears.emplace_back(name, &l);
      ParamVisitor::linear(name, l);
    }
  } collect;
  model.visit(collect);

  std::vector<std::string> names;  // LoRA candidates: every Linear outside modules_to_save
  for (const auto& [name, linear] : collect.linears)
    if (!in_modules(name + ".weight", config.modules_to_save)) names.push_back(name);
  const std::vector<std::string> matched = match_targets(config.target_modules, names);
  if (matched.empty()) {
    std::string wanted = config.target_modules.regex;
    for (const auto& n : config.target_modules.names) wanted += (wanted.empty() ? "" : ", ") + n;
    std::vector<std::string> short_names;
    for (const auto& n : names) {
      const std::string last = n.substr(n.rfind('.') + 1);
      if (std::find(short_names.begin(), short_names.end(), last) == short_names.end()) short_names.push_back(last);
    }
    std::string existing;
    for (const auto& n : short_names) existing += (existing.empty() ? "" : ", ") + n;
    fail("lora.target_modules [{}] matches no module of this {} model{}; its Linear modules are: {}", wanted,
         summary.model_type, config.target_modules.names.empty() ? "" : did_you_mean(config.target_modules.names[0], short_names),
         existing);
  }

  LoraModel lora;
  lora.config = config;
  for (auto& [name, t] : collect.tensors) {
    if (!in_modules(name, config.modules_to_save)) {
      if (t->defined()) t->set_requires_grad(false);
      continue;
    }
    // A head trained fully: float32 (the optimizer's dtype), its own leaf.
    if (t->defined()) *t = t->detach().to(at::kFloat).set_requires_grad(true);
    lora.saved_modules.emplace_back(name, *t);
    lora.trainable_parameters += t->defined() ? t->numel() : 0;
  }
  if (!config.modules_to_save.empty() && lora.saved_modules.empty() && config.task_type != "SEQ_CLS")
    fail("lora.modules_to_save [{}] matches no module of this {} model", fmt::join(config.modules_to_save, ", "),
         summary.model_type);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, linear] : collect.linears) {
    if (std::find(matched.begin(), matched.end(), name) == matched.end()) continue;
    auto adapter = std::make_shared<LoraLinear>(linear->in_features, linear->out_features, config);
    if (config.init_lora_weights == "gaussian") {
      adapter->lora_A.normal_(0.0, 1.0 / static_cast<double>(config.r), generator);
    } else {
      // kaiming_uniform_(a=sqrt(5)) on (r, in): U(-1/sqrt(in), 1/sqrt(in)).
      const double bound = 1.0 / std::sqrt(static_cast<double>(linear->in_features));
      adapter->lora_A.uniform_(-bound, bound, generator);
      if (config.init_lora_weights == "false") adapter->lora_B.uniform_(-bound, bound, generator);
    }
    if (linear->weight.defined() || linear->weight_4bit) {
      adapter->lora_A = adapter->lora_A.to(linear->device());
      adapter->lora_B = adapter->lora_B.to(linear->device());
    }
    adapter->lora_A.set_requires_grad(true);
    adapter->lora_B.set_requires_grad(true);
    linear->adapter = adapter;
    lora.fan_in_fan_out = lora.fan_in_fan_out || linear->fan_in_fan_out;
    lora.trainable_parameters += adapter->lora_A.numel() + adapter->lora_B.numel();
    lora.adapters.push_back({name, adapter});
  }
  lora.all_parameters = collect.total + lora.trainable_parameters;
  return lora;
}

}  // namespace lorakit::lora
