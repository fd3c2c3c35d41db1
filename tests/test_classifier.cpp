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
#include "models/classification_metrics.h"
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
  ASSERT_GE(m["metrics"].size(), 4u) << "scikit-learn missing from the oracle's python?";
  for (const auto& c : m["metrics"]) {
    const int64_t k = c["num_labels"];
    SCOPED_TRACE(k);
    const auto y_true = c["y_true"].get<std::vector<int64_t>>(), y_pred = c["y_pred"].get<std::vector<int64_t>>();
    const ClassificationMetrics got = classification_metrics(y_true, y_pred, k);
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

TEST(Classifier, MergedClassifiersLoadInTransformersWithTheUnmergedLogits) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const fs::path dir = oracle_dir() / name;
    // The oracle's adapter has no labels.json: merge takes the labels of the base classifier's config.
    const fs::path merged = fs::temp_directory_path() / fmt::format("lorakit-seqcls-merged-{}-{}", name, ::getpid());
    const auto r = lorakit::testing::run(fmt::format("merge --model {} --adapter {} --out {} --overwrite", (dir / "base").string(),
                                                     (dir / "adapter").string(), merged.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json report = check_in_python(fmt::format("--merged {} --reference {}", merged.string(),
                                                              (dir / "reference.safetensors").string()));
    ASSERT_FALSE(report.is_null());
    EXPECT_EQ(report["missing"].size(), 0u) << report.dump();
    EXPECT_EQ(report["unexpected"].size(), 0u) << report.dump();
    EXPECT_EQ(report["num_labels"].get<int64_t>(), 3);
    EXPECT_EQ(report["id2label"]["1"].get<std::string>(), "reject");
    // The reference logits are PEFT's unmerged model's.
    EXPECT_LT(report["max_abs_logits"].get<double>(), 1e-4) << report.dump();
    std::printf("%s: merged, in AutoModelForSequenceClassification: %zu missing, %zu unexpected, logits vs unmerged %.2e\n",
                name.c_str(), report["missing"].size(), report["unexpected"].size(), report["max_abs_logits"].get<double>());
    fs::remove_all(merged);
  }
}

TEST(Classifier, InspectCountsParametersAsTransformers) {
  const auto m = manifest();
  ASSERT_FALSE(m.is_null()) << "no oracle output at " << oracle_dir();
  std::set<std::string> names;
  for (const auto& c : m["counts"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const auto r = lorakit::testing::run(fmt::format("inspect {} --json", c["dir"].get<std::string>()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json j = nlohmann::json::parse(r.output);
    EXPECT_EQ(j["num_parameters"].get<int64_t>(), c["classifier"].get<int64_t>()) << "AutoModelForSequenceClassification";
    EXPECT_EQ(j["backbone_parameters"].get<int64_t>(), c["backbone"].get<int64_t>()) << "AutoModel";
    std::printf("%s: %lld parameters with the %lld-label head, %lld without (transformers: %lld, %lld)\n", name.c_str(),
                static_cast<long long>(j["num_parameters"].get<int64_t>()), static_cast<long long>(c["num_labels"].get<int64_t>()),
                static_cast<long long>(j["backbone_parameters"].get<int64_t>()), static_cast<long long>(c["classifier"].get<int64_t>()),
                static_cast<long long>(c["backbone"].get<int64_t>()));
    names.insert(name);
  }
  EXPECT_TRUE(names.count("klue-bert-base"));
  if (!names.count("koelectra-base-v3-discriminator")) GTEST_SKIP() << "../shared/models/koelectra-base-v3-discriminator absent";
}

// The demo's path from the command line: train an ELECTRA classifier on AlimTalk-style rows, evaluate it
// (metrics equal scikit-learn's on the predictions it wrote), merge it, and check the merged model and
// its tokenizer in transformers give the probabilities lorakit wrote; an unseen label is a clear error.
// ELECTRA (the demo's) and EXAONE 4.0 (a decoder: the pad id decides the pooled token).
class ClassifierCli : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Models, ClassifierCli, ::testing::Values("electra", "exaone4"));

TEST_P(ClassifierCli, TrainEvalMergeFromTheCommandLine) {
  const std::string type = GetParam();
  const fs::path tmp = fs::temp_directory_path() / fmt::format("lorakit-classifier-cli-{}-{}", type, ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string python = lorakit::testing::venv_python(), src = LORAKIT_SOURCE_DIR;
  const fs::path csv = tmp / "templates.csv", model = tmp / "tiny-electra", run = tmp / "run";
  auto r = lorakit::testing::run_command(fmt::format("{0} {1}/scripts/make_alimtalk_csv.py --out {2} --rows 120 && {0} "
                                                     "{1}/scripts/make_tiny_model.py --model-type {4} --out {3} "
                                                     "--tokenizer-corpus {2}", python, src, csv.string(), model.string(), type));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = lorakit::testing::run(fmt::format("train {}/recipes/demo-classifier.yaml --set model.path={} --set data.path={} "
                                        "--set output.dir={} --set train.num_train_epochs=8 --set train.eval_steps=0",
                                        src, model.string(), csv.string(), run.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("labels (2): approve, reject"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(type == "electra" ? "a new classifier head" : "a new score head"), std::string::npos) << r.output;
  const nlohmann::json summary = nlohmann::json::parse(std::ifstream(run / "summary.json"));
  EXPECT_EQ(summary["task"], "sequence_classification");
  EXPECT_TRUE(summary["eval_accuracy"].is_number()) << summary.dump();
  const nlohmann::json adapter_config = nlohmann::json::parse(std::ifstream(run / "adapter" / "adapter_config.json"));
  EXPECT_EQ(adapter_config["task_type"], "SEQ_CLS");
  EXPECT_EQ(adapter_config["modules_to_save"], nlohmann::json::parse(R"(["classifier", "score"])"));
  ASSERT_TRUE(fs::exists(run / "adapter" / "labels.json"));

  const fs::path predictions = tmp / "predictions.csv";
  r = lorakit::testing::run(fmt::format("eval --model {} --adapter {} --data {} --text-column template --label-column label "
                                        "--filter data_type=valid --predictions {} --json", model.string(),
                                        (run / "adapter").string(), csv.string(), predictions.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json metrics = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  r = lorakit::testing::run(fmt::format("merge --model {} --adapter {} --out {}", model.string(), (run / "adapter").string(),
                                        (tmp / "merged").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json check = check_in_python(fmt::format("--merged {} --predictions {} --data {} --text-column template",
                                                           (tmp / "merged").string(), predictions.string(), csv.string()));
  ASSERT_FALSE(check.is_null());
  EXPECT_EQ(check["missing"].size(), 0u) << check.dump();
  EXPECT_EQ(check["unexpected"].size(), 0u) << check.dump();
  EXPECT_EQ(check["rows"].get<int64_t>(), metrics["examples"].get<int64_t>());
  EXPECT_LT(check["max_abs_probabilities"].get<double>(), 1e-4) << check.dump();
  EXPECT_NEAR(metrics["accuracy"].get<double>(), check["sklearn_accuracy"].get<double>(), 1e-12);
  for (const char* average : {"macro", "micro", "weighted"})
    for (const char* key : {"precision", "recall", "f1"})
      EXPECT_NEAR(metrics[average][key].get<double>(), check[std::string("sklearn_") + average][key].get<double>(), 1e-12)
          << average << " " << key;
  for (size_t k = 0; k < 2; ++k)
    for (const char* key : {"precision", "recall", "f1", "support"})
      EXPECT_NEAR(metrics["per_label"][k][key].get<double>(), check["sklearn_per_label"][k][key].get<double>(), 1e-12) << k << key;
  EXPECT_EQ(metrics["confusion_matrix"], check["sklearn_confusion_matrix"]);
  std::printf("%s classifier from the CLI: accuracy %.4f macro F1 %.4f on %lld rows (sklearn: %.4f, %.4f); merged model in "
              "transformers: probabilities within %.2e\n", type.c_str(), metrics["accuracy"].get<double>(), metrics["macro"]["f1"].get<double>(),
              static_cast<long long>(metrics["examples"].get<int64_t>()), check["sklearn_accuracy"].get<double>(),
              check["sklearn_macro"]["f1"].get<double>(), check["max_abs_probabilities"].get<double>());

  // A label the classifier was not trained on names the file, the line and the known labels.
  {
    std::ofstream bad(tmp / "bad.csv");
    bad << "template,label\n안녕하세요 주문이 완료되었습니다.,approve\n오늘만 특가!,spam\n";
  }
  r = lorakit::testing::run(fmt::format("eval --model {} --data {} --text-column template --label-column label",
                                        (tmp / "merged").string(), (tmp / "bad.csv").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("bad.csv:3: label 'spam'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("approve, reject"), std::string::npos) << r.output;
  fs::remove_all(tmp);
}

TEST(Classifier, BadInputIsAClearError) {
  const fs::path dir = oracle_dir() / "llama-default-r4";
  if (!fs::exists(dir / "lm")) GTEST_SKIP() << "oracle output missing";
  const fs::path tmp = fs::temp_directory_path() / fmt::format("lorakit-classifier-bad-{}", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  {
    std::ofstream csv(tmp / "rows.csv");
    csv << "text,label\nhello,yes\nworld,yes\n";
  }
  // A recipe whose task and label column disagree; a training file with one label.
  {
    std::ofstream recipe(tmp / "recipe.yaml");
    recipe << "task: sequence_classification\nmodel:\n  path: " << (dir / "lm").string() << "\ndata:\n  path: rows.csv\n"
           << "  text_column: text\n  label_column: label\ntrain:\n  max_steps: 1\noutput:\n  dir: " << (tmp / "run").string() << "\n";
  }
  auto r = lorakit::testing::run(fmt::format("train {} --set task=causal_lm", (tmp / "recipe.yaml").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("data.label_column is set but the task is causal_lm"), std::string::npos) << r.output;
  r = lorakit::testing::run(fmt::format("train {} --set task=sequence_clasification", (tmp / "recipe.yaml").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("did you mean 'sequence_classification'"), std::string::npos) << r.output;
  // The oracle's model has no tokenizer: ids-only directories refuse text, so this fails on the tokenizer
  // or on the single label; either names the file.
  r = lorakit::testing::run(fmt::format("train {}", (tmp / "recipe.yaml").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(tmp / "run")) << "a failed start wrote the run directory";

  // A PEFT adapter without labels.json, then one whose id2label skips an id.
  const std::string eval = fmt::format("eval --model {} --adapter {{}} --data {} --text-column text --label-column label",
                                       (dir / "base").string(), (tmp / "rows.csv").string());
  r = lorakit::testing::run(fmt::format(fmt::runtime(eval), (dir / "adapter").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no labels.json"), std::string::npos) << r.output;
  fs::copy(dir / "adapter", tmp / "adapter");
  std::ofstream(tmp / "adapter" / "labels.json") << R"({"id2label": {"0": "yes", "5": "no"}, "pad_token_id": 0})";
  r = lorakit::testing::run(fmt::format(fmt::runtime(eval), (tmp / "adapter").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("labels.json: id2label must map the ids 0..1"), std::string::npos) << r.output;
  fs::remove_all(tmp);
}
