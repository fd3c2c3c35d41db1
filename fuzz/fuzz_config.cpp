// config.json into create_model, for every architecture (model_type picks it), as loading a model,
// `inspect` and `export` do before any weight is read: the model's structure, its summary and its
// parameter count; and as a sequence classifier (create_classifier, bert and electra included) with
// the labels its id2label names, as training a classifier and `inspect` do.
#include "core/json_reader.h"
#include "fuzz/harness.h"
#include "models/classifier.h"
#include "models/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lorakit::fuzz::write_file("config.json", lorakit::fuzz::as_view(data, size));
  lorakit::fuzz::expect_clear_error([&] {
    const nlohmann::json config = lorakit::JsonReader::parse_file(path.string());
    const lorakit::JsonReader reader(config, path.string());
    if (!lorakit::is_encoder_model_type(reader.string("model_type", ""))) {
      auto model = lorakit::create_model(reader);
      (void)model->summary();
      (void)model->num_parameters();
    }
    const int64_t labels = config.contains("id2label") && config["id2label"].is_object() ? config["id2label"].size() : 2;
    auto classifier = lorakit::create_classifier(reader, labels);
    (void)classifier->summary();
    (void)classifier->num_parameters();
  });
  return 0;
}
