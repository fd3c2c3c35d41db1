#include "trainer/checkpoint.h"

#include <algorithm>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "core/json_reader.h"

namespace lorakit::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(); }

json state_json(const TrainState& s) {
  return {{"step", s.step}, {"cursor", s.cursor.to_json()}, {"loss_scale", s.loss_scale.scale},
          {"good_steps", s.loss_scale.good_steps}, {"best_eval", finite_or_null(s.best_eval)},
          {"evals_without_improvement", s.evals_without_improvement}, {"tokens", s.tokens}, {"seconds", s.seconds},
          {"loss_sum", s.loss_sum}, {"last_loss", finite_or_null(s.last_loss)},
          {"peak_memory", s.peak_memory}, {"peak_reserved", s.peak_reserved}, {"world_size", s.world_size}};
}

TrainState state_from_json(const json& j) {
  TrainState s;
  s.step = j.at("step");
  s.cursor = data::Cursor::from_json(j.at("cursor"));
  s.loss_scale.scale = j.at("loss_scale");
  s.loss_scale.good_steps = j.at("good_steps");
  s.best_eval = j.at("best_eval").is_null() ? INFINITY : j.at("best_eval").get<double>();
  s.evals_without_improvement = j.at("evals_without_improvement");
  s.tokens = j.at("tokens");
  s.seconds = j.at("seconds");
  s.loss_sum = j.at("loss_sum");
  s.last_loss = j.at("last_loss").is_null() ? NAN : j.at("last_loss").get<double>();
  s.peak_memory = j.value("peak_memory", 0.0);
  s.peak_reserved = j.value("peak_reserved", 0.0);
  s.world_size = j.value("world_size", int64_t{1});
  return s;
}

// The step-N directories of a run with their steps, oldest first; `complete` keeps those with a state.json.
std::vector<std::pair<int64_t, fs::path>> checkpoints_of(const fs::path& run_dir, bool complete) {
  std::vector<std::pair<int64_t, fs::path>> all;
  if (!fs::exists(run_dir / "checkpoints")) return all;
  for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints")) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("step-") || (complete && !fs::exists(entry.path() / "state.json"))) continue;
    all.emplace_back(std::stoll(name.substr(5)), entry.path());
  }
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

void save_checkpoint(const fs::path& run_dir, const lora::LoraModel& lora, const AdamW& adam, const TrainState& state,
                     const std::string& base_model, int64_t keep, const c10::Device& device) {
  const fs::path dir = run_dir / "checkpoints" / fmt::format("step-{}", state.step);
  const fs::path tmp = run_dir / "checkpoints" / fmt::format(".step-{}.tmp", state.step);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_peft_adapter(tmp / "adapter", lora, base_model);
  std::vector<std::pair<std::string, at::Tensor>> moments;
  const auto names = lora.named_parameters();
  for (size_t i = 0; i < adam.exp_avg.size(); ++i) {
    moments.emplace_back("exp_avg." + names[i].first, adam.exp_avg[i].to(at::kCPU));
    moments.emplace_back("exp_avg_sq." + names[i].first, adam.exp_avg_sq[i].to(at::kCPU));
  }
  moments.emplace_back("rng_state", at::detail::getDefaultCPUGenerator().get_state());
  if (device.is_cuda()) moments.emplace_back("cuda_rng_state", at::globalContext().defaultGenerator(device).get_state());
  save_safetensors(tmp / "optimizer.safetensors", moments, {{"format", "pt"}, {"adam_step", std::to_string(adam.step)}});
  std::ofstream(tmp / "state.json") << state_json(state).dump(1) << "\n";
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  const auto all = checkpoints_of(run_dir, false);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_all(all[i].second);
}

fs::path newest_checkpoint(const fs::path& run_dir) {
  const auto all = checkpoints_of(run_dir, true);
  return all.empty() ? fs::path() : all.back().second;
}

TrainState load_checkpoint(const fs::path& checkpoint, lora::LoraModel& lora, AdamW& adam, at::Generator& generator,
                           const c10::Device& device) {
  load_peft_adapter_weights(checkpoint / "adapter", lora);
  const SafetensorsFile moments(checkpoint / "optimizer.safetensors");
  adam.exp_avg.clear();
  adam.exp_avg_sq.clear();
  for (const auto& [name, p] : lora.named_parameters()) {
    adam.exp_avg.push_back(moments.tensor("exp_avg." + name).to(device));
    adam.exp_avg_sq.push_back(moments.tensor("exp_avg_sq." + name).to(device));
  }
  adam.step = std::stoll(moments.metadata().at("adam_step"));
  generator.set_state(moments.tensor("rng_state"));
  if (device.is_cuda() && moments.find("cuda_rng_state")) {
    at::Generator cuda = at::globalContext().defaultGenerator(device);  // a handle on the device's generator
    cuda.set_state(moments.tensor("cuda_rng_state"));
  }
  return state_from_json(JsonReader::parse_file((checkpoint / "state.json").string()));
}

}  // namespace lorakit::trainer
