// safetensors: the header length, the JSON header (dtypes, shapes, offsets, __metadata__) and the
// data, through SafetensorsFile (the loader's validating mmap reader); every tensor is then read as
// float32, as loading a model does.
#include <ATen/core/Tensor.h>

#include "checkpoints/safetensors.h"
#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lorakit::fuzz::write_file("model.safetensors", lorakit::fuzz::as_view(data, size));
  lorakit::fuzz::expect_clear_error([&] {
    lorakit::SafetensorsFile file(path);
    for (const auto& entry : file.entries()) (void)file.read(entry.name, at::kFloat, at::kCPU);
  });
  return 0;
}
