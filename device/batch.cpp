#include "device/batch.h"

#include <algorithm>

#include <ATen/ops/from_blob.h>

namespace lorakit {

DeviceBatch to_device(const data::Batch& b, const c10::Device& device) {
  const auto to = [&](const std::vector<int32_t>& v) {
    return at::from_blob(const_cast<int32_t*>(v.data()), {b.rows, b.cols}, at::kInt).to(device, at::kLong);  // (B, T)
  };
  DeviceBatch out{to(b.input_ids), to(b.labels), TokenLayout(to(b.attention_mask))};
  // A packed batch is one whose rows hold more examples than rows.
  if (b.examples > b.rows && b.sequence_ids.size() == b.input_ids.size()) {
    out.layout.position_ids = to(b.position_ids);
    out.layout.sequence_ids = to(b.sequence_ids);
  }
  out.layout.padded = std::find(b.attention_mask.begin(), b.attention_mask.end(), 0) != b.attention_mask.end();
  return out;
}

}  // namespace lorakit
