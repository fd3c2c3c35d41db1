// config.json into create_model, for every architecture (model_type picks it), as loading a model,
// `inspect` and `export` do before any weight is read: the model's structure, its summary and its
// parameter count.
#include "core/json_reader.h"
#include "fuzz/harness.h"
#include "models/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lorakit::fuzz::write_file("config.json", lorakit::fuzz::as_view(data, size));
  lorakit::fuzz::expect_clear_error([&] {
    const nlohmann::json config = lorakit::JsonReader::parse_file(path.string());
    auto model = lorakit::create_model(lorakit::JsonReader(config, path.string()));
    (void)model->summary();
    (void)model->num_parameters();
  });
  return 0;
}
