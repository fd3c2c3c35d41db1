// Sequence classifiers against transformers + PEFT SEQ_CLS (scripts/classifier_oracle.py): the same
// *ForSequenceClassification checkpoint and adapter (saved by PEFT, loaded by lorakit) give the same
// logits, loss and gradients of every LoRA pair and of the modules_to_save head on a right-padded
// batch, and the same trainable/all parameter counts; lorakit's own adapters and merged classifiers
// load in PEFT / AutoModelForSequenceClassification with the same logits (scripts/check_classifier.py);
// the metrics equal scikit-learn's.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoints/hf_model.h"
#include "checkpoints/peft_adapter.h"
#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "inference/classification_metrics.h"
#include "lora/lora.h"
#include "models/classifier.h"
#include "tests/cli_runner.h"
#include "tests/tensor_compare.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using namespace lorakit;
using lorakit::testing::compare;

namespace {

fs::path oracle_dir() { return fs::path(lorakit::testing::parity_dir()).parent_path() / "classifier"; }

nlohmann::json manifest() {
  std::ifstream in(oracle_dir() / "manifest.json");
  return in ? nlohmann::json::parse(in) : nlohmann::json();
}

struct Case {
  LoadedClassifier classifier;
  lora::LoraModel lora;
};

Case load_case(const fs::path& dir, const c10::Device& device) {
  Case c{load_hf_classifier(dir / "base", {at::kFloat, device}, 3, std::nullopt, 0), {}};
  c.lora = apply_peft_adapter(*c.classifier.model, dir / "adapter");
  return c;
}

// Runs scripts/check_classifier.py; returns its JSON report.
nlohmann::json check_in_python(const std::string& args) {
  const fs::path report = fs::temp_directory_path() / fmt::format("lorakit-check-classifier-{}.json", ::getpid());
  const std::string command = fmt::format("{} {}/scripts/check_classifier.py {} --report {}", lorakit::testing::venv_python(),
                                          LORAKIT_SOURCE_DIR, args, report.string());
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command;
  std::ifstream in(report);
  nlohmann::json j = in ? nlohmann::json::parse(in) : nlohmann::json();
  fs::remove(report);
  return j;
}

}  // namespace

TEST(Classifier, LogitsLossAndGradientsMatchPeftSeqCls) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  std::set<std::string> types;
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    const c10::Device device(lorakit::testing::test_device());
    Case k = load_case(dir, device);
    EXPECT_FALSE(k.classifier.head_initialized) << "the checkpoint's head was not read";
    EXPECT_EQ(k.lora.trainable_parameters, c["trainable"].get<int64_t>());
    EXPECT_EQ(k.lora.all_parameters, c["all"].get<int64_t>());
    k.lora.set_training(true);

    const SafetensorsFile ref(dir / "reference.safetensors");
    const at::Tensor logits =
        k.classifier.model->logits(ref.tensor("input_ids").to(device), ref.tensor("attention_mask").to(device));
    const at::Tensor labels = ref.tensor("labels").to(device);
    const at::Tensor loss = classification_loss_sum(logits, labels) / labels.size(0);
    loss.backward();
    const auto logits_cmp = compare(logits, ref.tensor("logits"), 1e-4);
    EXPECT_TRUE(logits_cmp.ok()) << "logits: " << logits_cmp.first_mismatch;
    const auto loss_cmp = compare(loss.reshape({1}), ref.tensor("loss"), 1e-4);
    EXPECT_TRUE(loss_cmp.ok()) << "loss: " << loss_cmp.first_mismatch;
    double worst = 0;
    std::vector<std::string> keys;
    for (const auto& [key, parameter] : k.lora.named_parameters()) {
      keys.push_back(key);
      ASSERT_TRUE(ref.find("grad/" + key)) << key << " is not trainable in PEFT";
      ASSERT_TRUE(parameter.grad().defined()) << key << " has no gradient";
      const auto grad_cmp = compare(parameter.grad(), ref.tensor("grad/" + key), 1e-4);
      EXPECT_TRUE(grad_cmp.ok()) << key << ": " << grad_cmp.first_mismatch;
      worst = std::max(worst, grad_cmp.max_abs);
    }
    // Every tensor PEFT trains, lorakit trains (LoRA pairs and the head).
    EXPECT_EQ(keys, c["grads"].get<std::vector<std::string>>());
    types.insert(c["model_type"].get<std::string>());
    std::printf("%s: logits %.2e, loss %.2e, %zu gradients (LoRA + head) max %.2e; %s\n", name.c_str(),
                logits_cmp.max_abs, loss_cmp.max_abs, keys.size(), worst, k.lora.trainable_line().c_str());
  }
  for (const char* type : {"llama", "exaone4", "gpt_neox", "bert", "electra"}) EXPECT_TRUE(types.count(type)) << type;
}

TEST(Classifier, AdaptersRoundTripThroughPeft) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    Case k = load_case(dir, at::kCPU);
    // lorakit's save, PEFT's load: no missing or unexpected key, the reference logits.
    const fs::path saved = fs::temp_directory_path() / fmt::format("lorakit-seqcls-{}-{}", name, ::getpid());
    save_peft_adapter(saved, k.lora, (dir / "base").string(), true);
    const nlohmann::json report = check_in_python(fmt::format("--base {} --adapter {} --reference {}", (dir / "base").string(),
                                                              saved.string(), (dir / "reference.safetensors").string()));
    ASSERT_FALSE(report.is_null());
    EXPECT_EQ(report["missing"].size(), 0u) << report.dump();
    EXPECT_EQ(report["unexpected"].size(), 0u) << report.dump();
    EXPECT_LT(report["max_abs_logits"].get<double>(), 1e-4) << report.dump();
    // And read back by lorakit: the same tensors.
    lora::LoraModel again = apply_peft_adapter(*load_hf_classifier(dir / "base", {}, 3, std::nullopt, 0).model, saved);
    const auto a = k.lora.named_parameters(), b = again.named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(compare(a[i].second, b[i].second, 0).ok()) << a[i].first;
    std::printf("%s: lorakit's adapter in PEFT: %zu missing, %zu unexpected, logits %.2e\n", name.c_str(),
                report["missing"].size(), report["unexpected"].size(), report["max_abs_logits"].get<double>());
    fs::remove_all(saved);
  }
}

TEST(Classifier, BaseLanguageModelGetsANewHead) {
  const fs::path dir = oracle_dir() / "llama-default-r4";
  if (!fs::exists(dir / "lm")) GTEST_SKIP() << "oracle output missing";
  // A causal LM checkpoint: lm_head dropped, score initialised from the seed (the same seed, the same head).
  LoadedClassifier a = load_hf_classifier(dir / "lm", {}, 4, std::nullopt, 7);
  LoadedClassifier b = load_hf_classifier(dir / "lm", {}, 4, std::nullopt, 7);
  EXPECT_TRUE(a.head_initialized);
  const at::Tensor ids = at::tensor({5, 6, 7, 0, 0}, at::kLong).view({1, 5});
  const at::Tensor la = a.model->logits(ids, at::ones_like(ids)), lb = b.model->logits(ids, at::ones_like(ids));
  EXPECT_EQ(la.sizes(), (std::vector<int64_t>{1, 4}));
  EXPECT_TRUE(compare(la, lb, 0).ok());
  // The classifier checkpoint's head has 3 labels: asking for 5 names the head and both shapes.
  try {
    load_hf_classifier(dir / "base", {}, 5, std::nullopt, 0);
    FAIL() << "a 3-label head loaded as 5 labels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("score.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("labels"), std::string::npos) << e.what();
  }
  // A SEQ_CLS adapter on a causal LM is refused with a hint.
  auto lm = load_hf_model(dir / "lm", {});
  try {
    apply_peft_adapter(*lm, dir / "adapter");
    FAIL() << "a SEQ_CLS adapter applied to a causal LM";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SEQ_CLS"), std::string::npos) << e.what();
  }
}

TEST(ClassificationMetrics, EqualScikitLearn) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  for (const auto& c : m["metrics"]) {
    const int64_t k = c["num_labels"];
    SCOPED_TRACE(k);
    const auto y_true = c["y_true"].get<std::vector<int64_t>>(), y_pred = c["y_pred"].get<std::vector<int64_t>>();
    const inference::ClassificationMetrics got = inference::classification_metrics(y_true, y_pred, k);
    EXPECT_NEAR(got.accuracy, c["accuracy"].get<double>(), 1e-12);
    for (int64_t i = 0; i < k; ++i) {
      EXPECT_NEAR(got.per_label[i].precision, c["precision"][i].get<double>(), 1e-12) << "label " << i;
      EXPECT_NEAR(got.per_label[i].recall, c["recall"][i].get<double>(), 1e-12) << "label " << i;
      EXPECT_NEAR(got.per_label[i].f1, c["f1"][i].get<double>(), 1e-12) << "label " << i;
      EXPECT_EQ(got.per_label[i].support, c["support"][i].get<int64_t>()) << "label " << i;
    }
    for (const auto& [name, average] : {std::pair{"macro", got.macro}, {"micro", got.micro}, {"weighted", got.weighted}}) {
      EXPECT_NEAR(average.precision, c["averages"][name][0].get<double>(), 1e-12) << name;
      EXPECT_NEAR(average.recall, c["averages"][name][1].get<double>(), 1e-12) << name;
      EXPECT_NEAR(average.f1, c["averages"][name][2].get<double>(), 1e-12) << name;
    }
    EXPECT_EQ(got.confusion, c["confusion_matrix"].get<std::vector<std::vector<int64_t>>>());
  }
}
