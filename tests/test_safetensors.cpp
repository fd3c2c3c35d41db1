// safetensors: round trips of every dtype LibTorch has, files written by the Python safetensors
// package (via scripts/parity.py's fixtures), and damaged files that must give an error naming the
// file and the tensor, never a crash or an out-of-bounds read.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/test_paths.h"
#include <nlohmann/json.hpp>

#include "checkpoints/safetensors.h"
#include "core/error.h"
#include "tests/tensor_compare.h"

namespace fs = std::filesystem;
using lorakit::SafetensorsFile;

namespace {

fs::path temp_dir() {
  fs::path dir = fs::temp_directory_path() / fmt::format("lorakit_test_safetensors_{}", ::getpid());
  fs::create_directories(dir);
  return dir;
}

// A file from a raw header and data section, for the damaged cases.
fs::path write_raw(const std::string& name, const std::string& header, size_t data_bytes, int64_t header_length = -1) {
  fs::path path = temp_dir() / name;
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header_length >= 0 ? static_cast<uint64_t>(header_length) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header;
  out << std::string(data_bytes, '\x01');
  return path;
}

// Expects opening `path` to throw lorakit::Error whose message holds every piece in `expected`.
void expect_error(const fs::path& path, std::initializer_list<std::string> expected) {
  try {
    SafetensorsFile file(path);
    FAIL() << "opened a damaged file without error: " << path;
  } catch (const lorakit::Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << "message does not name the file: " << message;
    for (const auto& piece : expected)
      EXPECT_NE(message.find(piece), std::string::npos) << "message lacks '" << piece << "': " << message;
  }
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeWithFormatMetadata) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  int i = 0;
  for (auto type : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kLong, at::kInt, at::kShort, at::kChar,
                    at::kByte, at::kBool}) {
    at::Tensor t = (at::randn({3, 5}) * 10).to(type);
    tensors.emplace_back(fmt::format("t{}.{}", i++, c10::toString(type)), t);
  }
  tensors.emplace_back("scalar", at::scalar_tensor(3.5));
  tensors.emplace_back("empty", at::zeros({0, 4}));
  tensors.emplace_back("non_contiguous", at::randn({4, 6}).t());
  fs::path path = temp_dir() / "roundtrip.safetensors";
  lorakit::save_safetensors(path, tensors, {{"note", "x"}});

  SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "x");
  ASSERT_EQ(file.entries().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    at::Tensor back = file.tensor(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(back.equal(t)) << name;
  }
  // The data section starts 8-byte aligned, as the reference writer pads it.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_FALSE(fs::exists(path.string() + fmt::format(".tmp.{}", ::getpid()))) << "temporary file left behind";
}

TEST(Safetensors, PythonSafetensorsReadsWhatWeWrite) {
  at::Tensor w = at::randn({5, 3}).to(at::kBFloat16), b = at::arange(7, at::kLong);
  fs::path path = temp_dir() / "for_python.safetensors";
  lorakit::save_safetensors(path, {{"layer.weight", w}, {"layer.bias", b}});
  // The reference reader (and the metadata check transformers applies) must accept the file and
  // see the same values; it prints them as text for comparison here.
  std::string command = fmt::format(
      "{} -c \"import sys; from safetensors import safe_open; f = safe_open(sys.argv[1], 'pt'); "
      "assert f.metadata() == {{'format': 'pt'}}, f.metadata(); w = f.get_tensor('layer.weight'); "
      "print(str(w.dtype), list(w.shape), repr(w.float().sum().item()), f.get_tensor('layer.bias').tolist())\" {} 2>&1",
      lorakit::testing::venv_python(), path.string());
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[4096] = {0};
  std::string output;
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  EXPECT_EQ(::pclose(pipe), 0) << output;
  std::string expected = fmt::format("torch.bfloat16 [5, 3] {} [0, 1, 2, 3, 4, 5, 6]\n",
                                     fmt::format("{}", w.to(at::kFloat).sum().item<double>()));
  EXPECT_EQ(output, expected);
}

TEST(Safetensors, ReadsFilesWrittenByPythonSafetensors) {
  SafetensorsFile file(fs::path(lorakit::testing::parity_dir()) / "gpt_neox_rot1_tied" / "reference.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.find("input_ids")->dtype, "I64");
  EXPECT_EQ(file.tensor("logits").dim(), 3);
  EXPECT_EQ(file.tensor("loss").dim(), 0);
}

TEST(Safetensors, AcceptsUnalignedAndSpacePaddedHeaders) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  SafetensorsFile unaligned(write_raw("unaligned.safetensors", header, 8));
  EXPECT_EQ(unaligned.tensor("a").numel(), 2);
  SafetensorsFile padded(write_raw("padded.safetensors", header + "     ", 8));
  EXPECT_EQ(padded.entries().size(), 1u);
}

TEST(Safetensors, KnowsEveryDtypeTheFormatNames) {
  for (const char* dtype : {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
                            "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3", "F6_E3M2",
                            "F4"})
    EXPECT_GT(lorakit::safetensors_dtype_bits(dtype), 0) << dtype;
  // Sub-byte types: 4 F4 values are 2 bytes.
  std::string header = R"({"q":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}})";
  SafetensorsFile file(write_raw("f4.safetensors", header, 2));
  EXPECT_EQ(file.find("q")->end, 2u);
}

TEST(Safetensors, DamagedFilesNameTheFileAndTensor) {
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  expect_error(write_raw("empty_header.safetensors", "", 0, 0), {"does not start with"});
  {  // fewer than 8 bytes
    fs::path p = temp_dir() / "tiny.safetensors";
    std::ofstream(p) << "abc";
    expect_error(p, {"too short"});
  }
  expect_error(write_raw("header_past_end.safetensors", "{" + ok_entry + "}", 16, 5000), {"runs past the end"});
  expect_error(write_raw("huge_header.safetensors", "{}", 0, 1LL << 40), {"exceeds"});
  expect_error(write_raw("not_json.safetensors", "{\"w\": [1, 2", 0), {"invalid"});
  expect_error(write_raw("truncated.safetensors", "{" + ok_entry + "}", 10), {"'w'", "run past the data section"});
  expect_error(write_raw("out_of_range.safetensors", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}})", 16),
               {"'w'", "[8, 24]"});
  expect_error(write_raw("overlap.safetensors",
                         R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12),
               {"overlaps", "'a'", "'b'"});
  expect_error(write_raw("hole.safetensors",
                         R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         12),
               {"unused bytes", "'b'"});
  expect_error(write_raw("trailing.safetensors", "{" + ok_entry + "}", 20), {"trailing"});
  expect_error(write_raw("unknown_dtype.safetensors", R"({"w":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", 8),
               {"'w'", "unknown dtype 'F31'", "did you mean 'F32'"});
  expect_error(write_raw("shape_mismatch.safetensors", R"({"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,16]}})", 16),
               {"'w'", "[3, 2]", "needs 12"});
  expect_error(write_raw("negative_shape.safetensors", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
               {"'w'", "non-negative"});
  expect_error(write_raw("reversed.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
               {"'w'", "end before"});
  expect_error(write_raw("duplicate.safetensors",
                         R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         8),
               {"'w'", "twice"});
  expect_error(write_raw("bad_metadata.safetensors", R"({"__metadata__":{"format":3}})", 0), {"__metadata__"});
  expect_error(write_raw("missing_fields.safetensors", R"({"w":{"dtype":"F32"}})", 0), {"'w'", "data_offsets"});
  expect_error(temp_dir() / "does_not_exist.safetensors", {"cannot open"});
}
