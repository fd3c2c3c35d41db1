// SentencePiece tokenizer.model through libsentencepiece, read the way transformers' Llama
// conversion reads it: HF applies no SentencePiece normalizer and prepends the "▁" dummy prefix
// only to the piece at the start of the input (Metaspace prepend_scheme "first"). To get that from
// libsentencepiece, the model's NormalizerSpec is rewritten before loading: identity rules, no
// dummy prefix, no whitespace collapsing; the prefix is then added here.
#include <fstream>

#include <sentencepiece_processor.h>

#include "core/error.h"
#include "tokenizers/models.h"
#include "tokenizers/sentencepiece_vocab.h"

namespace lorakit::tokenizers {
namespace {

// --- just enough protobuf wire format to rewrite one submessage -----------------------------

struct Wire {
  std::string_view data;
  size_t pos = 0;
  bool done() const { return pos >= data.size(); }
  uint64_t varint(const std::string& where) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= data.size()) fail("{}: truncated protobuf varint", where);
      const auto byte = static_cast<unsigned char>(data[pos++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail("{}: malformed protobuf varint", where);
  }
  // Skips the value of a field with `wire_type`; returns the bytes it spanned.
  std::string_view value(int wire_type, const std::string& where) {
    const size_t start = pos;
    uint64_t n = 0;  // the bytes after the tag (and length)
    switch (wire_type) {
      case 0: varint(where); break;
      case 1: n = 8; break;
      case 2: n = varint(where); break;  // a claimed length: checked against what is left before use
      case 5: n = 4; break;
      default: fail("{}: unsupported protobuf wire type {}", where, wire_type);
    }
    if (n > data.size() - pos) fail("{}: truncated protobuf field ({} bytes claimed, {} left)", where, n, data.size() - pos);
    pos += n;
    return data.substr(start, pos - start);
  }
};

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// NormalizerSpec fields: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces.
std::string hf_normalizer_spec(std::string_view spec, const std::string& where) {
  std::string out;
  Wire wire{spec};
  while (!wire.done()) {
    const size_t start = wire.pos;
    const uint64_t tag = wire.varint(where);
    const int field = static_cast<int>(tag >> 3);
    wire.value(static_cast<int>(tag & 7), where);
    if (field >= 1 && field <= 4) continue;
    out.append(spec.substr(start, wire.pos - start));
  }
  put_varint(out, (1 << 3) | 2);
  put_varint(out, 8);
  out += "identity";
  put_varint(out, (3 << 3) | 0);
  put_varint(out, 0);
  put_varint(out, (4 << 3) | 0);
  put_varint(out, 0);
  return out;
}

// ModelProto field 3 is normalizer_spec.
std::string hf_model_proto(std::string_view proto, const std::string& where) {
  std::string out;
  Wire wire{proto};
  bool found = false;
  while (!wire.done()) {
    const size_t start = wire.pos;
    const uint64_t tag = wire.varint(where);
    const int wire_type = static_cast<int>(tag & 7);
    const std::string_view value = wire.value(wire_type, where);
    if ((tag >> 3) == 3 && wire_type == 2) {
      Wire length{value};
      const uint64_t n = length.varint(where);
      const std::string spec = hf_normalizer_spec(value.substr(length.pos, n), where);
      put_varint(out, tag);
      put_varint(out, spec.size());
      out += spec;
      found = true;
    } else {
      out.append(proto.substr(start, wire.pos - start));
    }
  }
  if (!found) {
    const std::string spec = hf_normalizer_spec({}, where);
    put_varint(out, (3 << 3) | 2);
    put_varint(out, spec.size());
    out += spec;
  }
  return out;
}

// Runs libsentencepiece's loader: a status, or an exception its trie builder throws on pieces it
// cannot index (darts' "zero-length key" for a piece that starts with a NUL byte).
template <typename Load>
void load_sentencepiece(const std::string& path, Load&& load) {
  sentencepiece::util::Status status;
  try {
    status = load();
  } catch (const std::exception& e) {
    fail("{}: SentencePiece could not load the model ({}); hint: the file is damaged or not a tokenizer.model", path,
         e.what());
  }
  if (!status.ok())
    fail("{}: not a SentencePiece model ({}); hint: the file may be a Git LFS pointer or truncated", path,
         status.ToString());
}

class SentencePieceModel : public Model {
 public:
  explicit SentencePieceModel(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open", path);
    const std::string proto((std::istreambuf_iterator<char>(in)), {});
    const std::string hf_proto = hf_model_proto(proto, path);
    load_sentencepiece(path, [&] { return processor_.LoadFromSerializedProto(hf_proto); });
  }
  void encode(std::string_view piece, bool at_start, std::vector<int32_t>& ids) const override {
    std::string text = at_start && !piece.starts_with(' ') ? " " + std::string(piece) : std::string(piece);
    std::vector<int> out;
    const auto status = processor_.Encode(text, &out);
    if (!status.ok()) fail("{}: SentencePiece could not encode a piece: {}", path_, status.ToString());
    ids.insert(ids.end(), out.begin(), out.end());
  }
  int64_t size() const override { return processor_.GetPieceSize(); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int id = processor_.PieceToId(std::string(token));
    // PieceToId answers unk for unknown pieces; only the unk piece itself maps to unk.
    if (id == processor_.unk_id() && processor_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  std::string id_to_token(int32_t id) const override {
    return id >= 0 && id < processor_.GetPieceSize() ? processor_.IdToPiece(id) : "";
  }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<Model> make_sentencepiece_model(const std::string& path) {
  return std::make_unique<SentencePieceModel>(path);
}

std::vector<SentencePiece> read_sentencepiece_vocab(const std::string& path) {
  sentencepiece::SentencePieceProcessor processor;
  load_sentencepiece(path, [&] { return processor.Load(path); });
  std::vector<SentencePiece> pieces(static_cast<size_t>(processor.GetPieceSize()));
  for (int id = 0; id < processor.GetPieceSize(); ++id) {
    SentencePiece& p = pieces[static_cast<size_t>(id)];
    p.piece = processor.IdToPiece(id);
    p.score = processor.GetScore(id);
    p.type = processor.IsUnknown(id)  ? SentencePiece::UNKNOWN
             : processor.IsControl(id) ? SentencePiece::CONTROL
             : processor.IsUnused(id)  ? SentencePiece::UNUSED
             : processor.IsByte(id)    ? SentencePiece::BYTE
                                       : SentencePiece::NORMAL;
  }
  return pieces;
}

}  // namespace lorakit::tokenizers
