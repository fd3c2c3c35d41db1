#include "quant/bnb_4bit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>

#include <ATen/TensorOperators.h>
#include <ATen/ops/argsort.h>
#include <ATen/ops/bucketize.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/stack.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"

namespace lorakit::quant {

namespace {

// bitsandbytes' get_4bit_type values (float32), as hex so no decimal rounding intervenes.
constexpr float kNf4[16] = {-0x1p+0f,          -0x1.647362p-1f,  -0x1.0cd66p-1f,  -0x1.94654p-2f,
                            -0x1.23449ap-2f,   -0x1.7a6a7ep-3f,  -0x1.74f0e2p-4f, 0.0f,
                            0x1.45f5fep-4f,    0x1.4995c6p-3f,   0x1.f809bap-3f,  0x1.5a0674p-2f,
                            0x1.c3497p-2f,     0x1.200f56p-1f,   0x1.722766p-1f,  0x1p+0f};
constexpr float kFp4[16] = {0.0f,           0x1.555556p-8f,  0x1.555556p-1f,  0x1p+0f,
                            0x1.555556p-2f, 0x1p-1f,         0x1.555556p-3f,  0x1p-2f,
                            0.0f,           -0x1.555556p-8f, -0x1.555556p-1f, -0x1p+0f,
                            -0x1.555556p-2f, -0x1p-1f,       -0x1.555556p-3f, -0x1p-2f};

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: fail("4-bit weights are quantized from float32, bfloat16 or float16, not {}", c10::toString(type));
  }
}

at::ScalarType dtype_from_name(const std::string& where, const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  fail("{}: quant_state dtype '{}' (expected float32, bfloat16 or float16)", where, name);
}

// Python's repr of a float (json.dumps writes it so): shortest round trip, ".0" on integers.
std::string python_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

bool is_skipped(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& pattern : patterns) {
    if (name.ends_with(pattern)) return true;
    std::regex re;
    try {
      re = std::regex(pattern);
    } catch (const std::regex_error& e) {
      fail("skip_modules pattern '{}' is not a regular expression ({})", pattern, e.what());
    }
    // re.match(pattern + boundary): the pattern covers name[0, end) and `end` is at a module boundary.
    for (size_t end = 0; end <= name.size(); ++end) {
      const bool boundary = end == name.size() || name[end] == '.' || (end > 0 && name[end - 1] == '.');
      if (boundary && std::regex_match(name.begin(), name.begin() + static_cast<std::ptrdiff_t>(end), re)) return true;
    }
  }
  return false;
}

at::Tensor code_4bit(const std::string& quant_type) {
  const float* values = quant_type == "nf4" ? kNf4 : quant_type == "fp4" ? kFp4 : nullptr;
  if (!values) fail("4-bit quantization type '{}' (expected nf4 or fp4)", quant_type);
  return at::from_blob(const_cast<float*>(values), {16}, at::kFloat).clone();
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): per exponent 10^(i-6) the
// midpoints of a float32 linspace(0.1, 1), both signs, then 0 and 1, sorted.
at::Tensor dynamic_map() {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    at::Tensor boundaries = at::linspace(0.1, 1.0, (int64_t{1} << i) + 1, at::kFloat);
    at::Tensor means = (boundaries.slice(0, 0, -1) + boundaries.slice(0, 1)) / 2.0;
    const double scale = i == 6 ? 1.0 : std::pow(10.0, i - 6);
    for (at::Tensor part : {means * scale, means * -scale}) {
      const float* p = part.contiguous().data_ptr<float>();
      data.insert(data.end(), p, p + part.numel());
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  return at::from_blob(data.data(), {static_cast<int64_t>(data.size())}, at::kFloat).clone();
}

int64_t Weight4bit::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Weight4bit::bytes() const {
  int64_t total = 0;
  for (const at::Tensor* t : {&packed, &absmax, &quant_map, &nested_absmax, &nested_quant_map})
    if (t->defined()) total += t->numel() * static_cast<int64_t>(t->element_size());
  return total;
}

int64_t weight_4bit_bytes(int64_t numel, bool double_quant, int64_t blocksize) {
  const int64_t blocks = ceil_div(numel, blocksize);
  const int64_t statistics = double_quant ? blocks + ceil_div(blocks, 256) * 4 + 256 * 4 : blocks * 4;
  return ceil_div(numel, 2) + statistics + 16 * 4;
}

at::Tensor Weight4bit::absmax_float() const {
  if (!nested) return absmax.to(at::kFloat);
  return dequantize_blockwise(absmax, nested_absmax, nested_quant_map, nested_blocksize) + offset;
}

// dequantize_4bit: codes unpacked high nibble first, code * absmax of the value's block in float32,
// then the weight's dtype.
at::Tensor Weight4bit::dequantize() const {
  const int64_t n = numel();
  at::Tensor bytes_flat = packed.reshape({-1}).to(at::kInt);
  at::Tensor codes = at::stack({bytes_flat.__rshift__(4), bytes_flat.bitwise_and(0xF)}, 1).reshape({-1}).slice(0, 0, n);
  at::Tensor values = quant_map.index_select(0, codes);  // (n) float32
  at::Tensor scale = absmax_float();
  const int64_t full = n - n % blocksize;
  at::Tensor out = (values.slice(0, 0, full).view({-1, blocksize}) * scale.slice(0, 0, full / blocksize).view({-1, 1}))
                       .reshape({full});
  if (full < n) out = at::cat({out, values.slice(0, full) * scale[full / blocksize]});
  return out.view(shape).to(dtype);
}

Weight4bit Weight4bit::to(const c10::Device& device) const {
  Weight4bit w = *this;
  for (at::Tensor* t : {&w.packed, &w.absmax, &w.quant_map, &w.nested_absmax, &w.nested_quant_map})
    if (t->defined()) *t = t->to(device);
  return w;
}

// The 4-bit step is bitsandbytes' default (torch) kernel, op for op: absmax per block, values times
// the absmax's reciprocal (the remainder block divided by its own), clamped, bucketized against the
// sorted code's midpoints and mapped back to code order, packed two per byte.
Weight4bit quantize_4bit(const at::Tensor& weight, const std::string& quant_type, bool double_quant, int64_t blocksize) {
  Weight4bit w;
  w.quant_type = quant_type;
  w.blocksize = blocksize;
  w.shape = weight.sizes().vec();
  w.dtype = weight.scalar_type();
  dtype_name(w.dtype);  // a supported dtype
  w.quant_map = code_4bit(quant_type).to(weight.device());
  at::Tensor order = at::argsort(w.quant_map);
  at::Tensor sorted = w.quant_map.index_select(0, order);
  at::Tensor bounds = (sorted.slice(0, 0, -1) + sorted.slice(0, 1)) / 2;

  at::Tensor a = weight.reshape({-1}).to(at::kFloat);
  const int64_t n = a.numel();
  const int64_t rem = n % blocksize, full = n - rem;
  at::Tensor blocks = a.slice(0, 0, full).reshape({full / blocksize, blocksize});
  at::Tensor absmax = std::get<0>(blocks.abs().max(-1));
  at::Tensor scaled = at::clamp(blocks * at::reciprocal(absmax.clamp_min(1e-38)).view({-1, 1}), -1, 1).reshape({-1});
  if (rem) {
    at::Tensor tail = a.slice(0, full);
    at::Tensor am = tail.abs().max().clamp_min(1e-38);
    absmax = at::cat({absmax, am.unsqueeze(0)});
    scaled = at::cat({scaled, at::clamp(tail / am, -1, 1)});
  }
  if (scaled.numel() % 2) scaled = at::constant_pad_nd(scaled, {0, 1});
  at::Tensor q = at::bucketize(scaled, bounds, /*out_int32=*/true);
  if (quant_type != "nf4") q = order.index_select(0, q);
  at::Tensor q8 = q.to(at::kByte);
  w.packed = q8.slice(0, 0, c10::nullopt, 2).__lshift__(4).bitwise_or(q8.slice(0, 1, c10::nullopt, 2)).unsqueeze(1);

  if (!double_quant) {
    w.absmax = absmax;
    return w;
  }
  at::Tensor offset = absmax.mean();
  w.nested = true;
  w.offset = offset.item<float>();
  w.nested_quant_map = dynamic_map().to(weight.device());
  std::tie(w.absmax, w.nested_absmax) = quantize_blockwise(absmax - offset, w.nested_quant_map, w.nested_blocksize);
  return w;
}

// cquantize_blockwise_cpu_fp32 (bitsandbytes 0.50): each block's absmax, values times its
// reciprocal, clamped to [-1, 1], mapped to one of 65536 evenly spaced bins, and the bin looked up
// in a table of the nearest code point (the first whose midpoint with the next is not below the
// bin's value). Float32 throughout, one rounding per operation as the kernel does.
std::pair<at::Tensor, at::Tensor> quantize_blockwise(const at::Tensor& a, const at::Tensor& code, int64_t blocksize) {
  constexpr int kBins = 65536;
  at::Tensor code_cpu = code.to(at::kCPU, at::kFloat).contiguous();
  if (code_cpu.numel() != 256) fail("the 8-bit code has {} values (expected 256)", code_cpu.numel());
  const float* points = code_cpu.data_ptr<float>();
  std::vector<float> midpoints(255);
  for (int i = 0; i < 255; ++i) midpoints[i] = 0.5f * (points[i] + points[i + 1]);
  std::vector<uint8_t> table(kBins);
  for (int i = 0, c = 0; i < kBins; ++i) {
    const float value = -1.0f + (2.0f * static_cast<float>(i)) / static_cast<float>(kBins - 1);
    while (c < 255 && midpoints[c] < value) ++c;
    table[i] = static_cast<uint8_t>(c);
  }

  at::Tensor input = a.to(at::kCPU, at::kFloat).contiguous();
  const int64_t n = input.numel(), blocks = ceil_div(n, blocksize);
  at::Tensor out = at::empty({n}, at::kByte);
  at::Tensor absmax = at::empty({blocks}, at::kFloat);
  const float* src = input.data_ptr<float>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  float* am = absmax.data_ptr<float>();
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i)
      if (!std::isnan(src[i])) m = std::max(m, std::fabs(src[i]));
    am[b] = m;
    const float inverse = 1.0f / m;
    for (int64_t i = begin; i < end; ++i) {
      if (m == 0.0f) {
        dst[i] = 0;
        continue;
      }
      const float v = std::clamp(src[i] * inverse, -1.0f, 1.0f);
      const float bin = ((v + 1.0f) * 0.5f) * static_cast<float>(kBins - 1) + 0.5f;
      dst[i] = table[static_cast<uint16_t>(bin)];
    }
  }
  return {out.view(a.sizes()).to(a.device()), absmax.to(a.device())};
}

at::Tensor dequantize_blockwise(const at::Tensor& q, const at::Tensor& absmax, const at::Tensor& code,
                                int64_t blocksize) {
  at::Tensor values = code.index_select(0, q.reshape({-1}).to(at::kLong));
  const int64_t n = values.numel(), full = n - n % blocksize;
  at::Tensor out = (values.slice(0, 0, full).view({-1, blocksize}) * absmax.slice(0, 0, full / blocksize).view({-1, 1}))
                       .reshape({full});
  if (full < n) out = at::cat({out, values.slice(0, full) * absmax[full / blocksize]});
  return out.view(q.sizes());
}

std::string quant_state_suffix(const std::string& quant_type) { return ".quant_state.bitsandbytes__" + quant_type; }

// QuantState.as_dict(packed=True): the tensors, and the rest as json.dumps bytes.
std::vector<std::pair<std::string, at::Tensor>> state_tensors(const Weight4bit& w) {
  std::string json = fmt::format(R"({{"quant_type": "{}", "blocksize": {}, "dtype": "{}", "shape": [{}])", w.quant_type,
                                 w.blocksize, dtype_name(w.dtype), fmt::join(w.shape, ", "));
  if (w.nested)
    json += fmt::format(R"(, "nested_blocksize": {}, "nested_dtype": "float32", "nested_offset": {})", w.nested_blocksize,
                        python_float(w.offset));
  json += "}";
  at::Tensor bytes = at::empty({static_cast<int64_t>(json.size())}, at::kByte);
  std::copy(json.begin(), json.end(), reinterpret_cast<char*>(bytes.data_ptr<uint8_t>()));
  std::vector<std::pair<std::string, at::Tensor>> out = {{"", w.packed}, {".absmax", w.absmax}};
  if (w.nested) {
    out.emplace_back(".nested_absmax", w.nested_absmax);
    out.emplace_back(".nested_quant_map", w.nested_quant_map);
  }
  out.emplace_back(".quant_map", w.quant_map);
  out.emplace_back(quant_state_suffix(w.quant_type), bytes);
  return out;
}

Weight4bit weight_from_state(const std::string& where, const std::function<at::Tensor(const std::string&)>& get,
                             const std::vector<int64_t>& shape) {
  Weight4bit w;
  at::Tensor json_bytes;
  for (const char* type : {"nf4", "fp4"})
    if (at::Tensor t = get(quant_state_suffix(type)); t.defined()) {
      if (json_bytes.defined()) fail("{}: both an nf4 and an fp4 quant_state", where);
      json_bytes = t;
    }
  if (!json_bytes.defined()) fail("{}: no quant_state.bitsandbytes__nf4 (or __fp4) next to the 4-bit weight", where);
  json_bytes = json_bytes.to(at::kCPU).contiguous();
  if (json_bytes.scalar_type() != at::kByte) fail("{}: quant_state must be uint8 bytes", where);
  const char* p = reinterpret_cast<const char*>(json_bytes.data_ptr<uint8_t>());
  check_json_depth(std::string_view(p, static_cast<size_t>(json_bytes.numel())), where + ": quant_state");
  nlohmann::json state = nlohmann::json::parse(p, p + json_bytes.numel(), nullptr, /*allow_exceptions=*/false);
  if (!state.is_object()) fail("{}: quant_state is not a JSON object (hint: the checkpoint may be damaged)", where);
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!state.contains(key)) fail("{}: quant_state has no '{}'", where, key);
    return state[key];
  };
  try {
    w.quant_type = field("quant_type").get<std::string>();
    w.blocksize = field("blocksize").get<int64_t>();
    w.dtype = dtype_from_name(where, field("dtype").get<std::string>());
    w.shape = field("shape").get<std::vector<int64_t>>();
    if (state.contains("nested_offset")) {
      w.nested = true;
      w.nested_blocksize = field("nested_blocksize").get<int64_t>();
      w.offset = static_cast<float>(field("nested_offset").get<double>());
      if (field("nested_dtype").get<std::string>() != "float32")
        fail("{}: nested_dtype '{}' (expected float32)", where, state["nested_dtype"].dump());
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: quant_state has a value of the wrong type ({})", where, e.what());
  }
  if (w.quant_type != "nf4" && w.quant_type != "fp4") fail("{}: quant_type '{}' (expected nf4 or fp4)", where, w.quant_type);
  if (w.shape != shape)
    fail("{}: quant_state shape [{}] but the architecture expects [{}]", where, fmt::join(w.shape, ", "),
         fmt::join(shape, ", "));
  if (w.blocksize < 2 || w.blocksize > 4096 || (w.nested && (w.nested_blocksize < 2 || w.nested_blocksize > 4096)))
    fail("{}: blocksize {} (expected 64 as bitsandbytes writes, at most 4096)", where, w.blocksize);
  const int64_t n = w.numel(), blocks = ceil_div(n, w.blocksize);
  auto tensor = [&](const std::string& suffix, at::ScalarType dtype, int64_t count) {
    at::Tensor t = get(suffix);
    if (!t.defined()) fail("{}: no '{}' tensor next to the 4-bit weight", where, "weight" + suffix);
    if (t.scalar_type() != dtype || t.numel() != count)
      fail("{}{}: {} {} values (expected {} {})", where, suffix, t.numel(), c10::toString(t.scalar_type()), count,
           c10::toString(dtype));
    return t.reshape({count});
  };
  w.packed = tensor("", at::kByte, ceil_div(n, 2)).view({-1, 1});
  w.quant_map = tensor(".quant_map", at::kFloat, 16);
  if (w.nested) {
    w.absmax = tensor(".absmax", at::kByte, blocks);
    w.nested_absmax = tensor(".nested_absmax", at::kFloat, ceil_div(blocks, w.nested_blocksize));
    w.nested_quant_map = tensor(".nested_quant_map", at::kFloat, 256);
  } else {
    w.absmax = tensor(".absmax", at::kFloat, blocks);
  }
  return w;
}

}  // namespace lorakit::quant
