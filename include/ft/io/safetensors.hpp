// safetensors (Hugging Face's format, also what PyTorch users save weights in): an 8-byte
// little-endian header length, a JSON header {"name": {"dtype", "shape", "data_offsets"},
// "__metadata__": {...}} padded with spaces to 8 bytes, then the tensors' bytes. Files written
// here are byte-identical to the Python package's; loading validates every field first.
//
//   ft::io::save_safetensors("model.safetensors", model.state_dict());
//   model.load_state_dict(ft::io::load_safetensors("model.safetensors"));
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/io/file.hpp"
#include "ft/io/json.hpp"
#include "ft/nn/state_dict.hpp"

namespace ft::inline FT_ABI::io {

struct SafetensorsFile {
  nn::StateDict tensors;                        // in the order of their data in the file
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

namespace detail {

inline const char* safetensors_dtype(DType t) { return dtype_info(t).safetensors; }
// The Python package orders tensors by its dtype enum, descending, then by name.
inline int safetensors_rank(DType t) { return dtype_info(t).safetensors_order; }

}  // namespace detail

// The bytes of a safetensors file holding `tensors` and `metadata`.
FT_COMPILED std::vector<std::uint8_t> to_safetensors_bytes(const nn::StateDict& tensors,
                                                           const std::map<std::string, std::string>& metadata = {});
#if FT_DEFINES_COMPILED
FT_COMPILED std::vector<std::uint8_t> to_safetensors_bytes(const nn::StateDict& tensors,
                                                           const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, AnyTensor>> order;
  for (const auto& [name, t] : tensors) {
    check(t.defined(), "save_safetensors", "tensor \"", name, "\" is undefined");
    check(name != "__metadata__", "save_safetensors", "\"__metadata__\" is reserved and cannot name a tensor");
    order.emplace_back(name, contiguous_on(t, kCPU));
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    const int ra = detail::safetensors_rank(a.second.dtype()), rb = detail::safetensors_rank(b.second.dtype());
    return ra != rb ? ra > rb : a.first < b.first;
  });
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata)
      header += (first ? "" : ",") + json::quote(k) + ":" + json::quote(v), first = false;
    header += "},";
  }
  std::size_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto& [name, t] = order[i];
    header += json::quote(name) + ":{\"dtype\":\"" + detail::safetensors_dtype(t.dtype()) + "\",\"shape\":[";
    for (std::size_t d = 0; d < t.shape().size(); ++d) {  // appended piecewise: `"," + str` trips GCC 12's -Wrestrict
      if (d) header += ',';
      header += std::to_string(t.shape()[d]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes()) + "]}";
    header += i + 1 < order.size() ? "," : "";
    offset += t.nbytes();
  }
  if (header.back() == ',') header.pop_back();  // metadata only
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<std::uint8_t> out(8 + header.size() + offset);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::size_t at = 8 + header.size();
  for (const auto& [name, t] : order) {
    if (t.nbytes()) std::memcpy(out.data() + at, t.data(), t.nbytes());
    at += t.nbytes();
  }
  return out;
}
#endif

// Writes atomically (a temporary file renamed over `path`).
inline void save_safetensors(const std::string& path, const nn::StateDict& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  const std::vector<std::uint8_t> bytes = to_safetensors_bytes(tensors, metadata);
  write_file_atomic(path, "save_safetensors", [&](std::FILE* f) { write_all(f, bytes.data(), bytes.size()); });
}
// One tensor, stored under `name` (PyTorch users load it with safetensors.torch.load_file).
inline void save_safetensors(const std::string& path, const AnyTensor& t, const std::string& name = "tensor") {
  nn::StateDict sd;
  sd.insert(name, t);
  save_safetensors(path, sd);
}

// Parses and validates a whole file's bytes; tensors are created on `device`.
FT_COMPILED SafetensorsFile from_safetensors_bytes(std::span<const std::uint8_t> bytes, const std::string& name,
                                                   Device device = kCPU);
#if FT_DEFINES_COMPILED
FT_COMPILED SafetensorsFile from_safetensors_bytes(std::span<const std::uint8_t> bytes, const std::string& name,
                                                   Device device) {
  const char* op = "load_safetensors";
  ByteReader r(bytes, name, op);
  const std::uint64_t n = r.u64_le("the 8-byte header length");
  if (n > r.remaining() || n > (std::uint64_t{100} << 20))
    r.error(0, "header length " + std::to_string(n) + " exceeds the " + std::to_string(r.remaining()) +
                   " bytes that follow (or the 100 MB limit); not a safetensors file, or truncated");
  auto header_bytes = r.take(static_cast<std::size_t>(n), "the JSON header");
  json::Parser parser(std::string_view(reinterpret_cast<const char*>(header_bytes.data()), header_bytes.size()), 8,
                      name, op);
  const json::Value root = parser.parse();
  if (root.kind != json::Value::Object) parser.error_at(root.offset, "the header must be a JSON object");
  const std::span<const std::uint8_t> data = bytes.subspan(8 + static_cast<std::size_t>(n));

  struct Entry {
    std::string name;
    DType dtype;
    std::vector<index_t> shape;
    std::uint64_t begin, end;
  };
  std::vector<Entry> entries;
  SafetensorsFile out;
  for (std::size_t m = 0; m < root.keys.size(); ++m) {
    const std::string& key = root.keys[m];
    const json::Value& v = root.items[m];
    if (key == "__metadata__") {
      if (v.kind != json::Value::Object) parser.error_at(v.offset, "__metadata__ must be an object of strings");
      for (std::size_t k = 0; k < v.keys.size(); ++k) {
        if (v.items[k].kind != json::Value::String)
          parser.error_at(v.items[k].offset, "__metadata__ values must be strings");
        out.metadata[v.keys[k]] = v.items[k].text;
      }
      continue;
    }
    if (v.kind != json::Value::Object) parser.error_at(v.offset, "tensor \"" + key + "\" must be an object");
    const json::Value *dt = v.find("dtype"), *shape = v.find("shape"), *offs = v.find("data_offsets");
    if (!dt || !shape || !offs)
      parser.error_at(v.offset, "tensor \"" + key + "\" needs \"dtype\", \"shape\" and \"data_offsets\"");
    Entry e{key, DType::Float32, {}, 0, 0};
    const DTypeInfo* known = find_dtype([&](const DTypeInfo& i) { return dt->text == i.safetensors; });
    if (known) e.dtype = known->dtype;
    if (dt->kind != json::Value::String || !known)
      parser.error_at(dt->offset, "tensor \"" + key + "\" has dtype \"" + dt->text +
                                      "\", which fusedtensor does not support (F32, F64, I32, I64, U8, BOOL)");
    if (shape->kind != json::Value::Array || shape->items.size() > static_cast<std::size_t>(kMaxRank))
      parser.error_at(shape->offset, "tensor \"" + key + "\": shape must be an array of at most 8 sizes");
    std::uint64_t count = 1;
    bool overflow = false;
    for (const auto& d : shape->items) {
      const std::uint64_t s = parser.to_u64(d, "a shape entry");
      if (s > (std::uint64_t{1} << 62)) overflow = true;
      e.shape.push_back(static_cast<index_t>(s));
      if (!overflow && s && count > (std::uint64_t{1} << 62) / s) overflow = true;
      count *= overflow ? 1 : s;
    }
    if (offs->kind != json::Value::Array || offs->items.size() != 2)
      parser.error_at(offs->offset, "tensor \"" + key + "\": data_offsets must be [begin, end]");
    e.begin = parser.to_u64(offs->items[0], "data_offsets[0]");
    e.end = parser.to_u64(offs->items[1], "data_offsets[1]");
    if (e.begin > e.end || e.end > data.size())
      parser.error_at(offs->offset, "tensor \"" + key + "\": data_offsets [" + std::to_string(e.begin) + ", " +
                                        std::to_string(e.end) + "] are outside the " + std::to_string(data.size()) +
                                        " data bytes");
    if (overflow || count * dtype_size(e.dtype) != e.end - e.begin)
      parser.error_at(offs->offset,
                      "tensor \"" + key + "\": its shape and dtype need " +
                          (overflow ? std::string("more than 2^62") : std::to_string(count * dtype_size(e.dtype))) +
                          " bytes but data_offsets span " + std::to_string(e.end - e.begin));
    entries.push_back(std::move(e));
  }
  // The tensors must tile the data section: no gaps, no overlaps, nothing after the last.
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t expected = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != expected)
      r.error(8 + n + e->begin, "tensor \"" + e->name + "\" starts at data byte " + std::to_string(e->begin) +
                                    ", expected " + std::to_string(expected) + " (a gap or an overlap)");
    expected = e->end;
  }
  if (expected != data.size())
    r.error(8 + n + expected, std::to_string(data.size() - expected) + " bytes after the last tensor's data");
  for (const Entry* e : by_offset) {
    AnyTensor t = with_dtype_rank(e->dtype, static_cast<int>(e->shape.size()), [&]<class T, int R>() -> AnyTensor {
      Shape<R> s;
      for (int d = 0; d < R; ++d) s[d] = e->shape[static_cast<std::size_t>(d)];
      Tensor<T, R> host(s);
      if (e->end > e->begin) std::memcpy(host.data(), data.data() + e->begin, e->end - e->begin);
      if constexpr (std::is_same_v<T, bool>)
        for (index_t i = 0; i < host.numel(); ++i)
          if (data[e->begin + static_cast<std::uint64_t>(i)] > 1)
            r.error(8 + n + e->begin + static_cast<std::uint64_t>(i),
                    "tensor \"" + e->name + "\": a BOOL byte is not 0 or 1");
      return host;
    });
    out.tensors.insert(e->name, contiguous_on(t, device));
  }
  return out;
}
#endif

inline SafetensorsFile read_safetensors(const std::string& path, Device device = kCPU) {
  const std::vector<std::uint8_t> bytes = read_file(path, "load_safetensors");
  return from_safetensors_bytes(bytes, path, device);
}
// The tensors of a file, as a state dict (model.load_state_dict(load_safetensors(path))).
inline nn::StateDict load_safetensors(const std::string& path, Device device = kCPU) {
  return read_safetensors(path, device).tensors;
}

}  // namespace ft::inline FT_ABI::io
