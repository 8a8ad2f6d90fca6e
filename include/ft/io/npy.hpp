// NumPy .npy files: "\x93NUMPY", a version, the header length, a Python dict literal
// {'descr', 'fortran_order', 'shape'} padded to 64 bytes, then the data. Saved files are
// byte-identical to numpy.save's (version 1.0, or 2.0 for huge headers); loading accepts
// versions 1.0–3.0, little- or big-endian data (swapped) and Fortran order (made C order).
//
//   ft::io::save_npy("x.npy", tensor);
//   ft::Tensor<float, 2> x = ft::io::load_npy("x.npy").as<float, 2>();
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/assign.hpp"
#include "ft/io/file.hpp"

namespace ft::inline FT_ABI::io {

namespace detail {

// numpy's descr: '<' (little-endian) or '|' (one byte) and the type code, "<f4".
inline std::string npy_descr(DType t) { return (dtype_size(t) == 1 ? "|" : "<") + std::string(dtype_info(t).numpy); }

// The parts of the header dict that matter, parsed from its Python literal.
struct NpyHeader {
  DType dtype = DType::Float32;
  bool swap = false;  // big-endian data
  bool fortran = false;
  std::vector<index_t> shape;
};

FT_COMPILED NpyHeader parse_npy_header(std::string_view h, std::size_t base, ByteReader& r);
#if FT_DEFINES_COMPILED
FT_COMPILED NpyHeader parse_npy_header(std::string_view h, std::size_t base, ByteReader& r) {
  std::size_t p = 0;
  auto err = [&](const std::string& what) { r.error(base + p, "npy header: " + what); };
  auto ws = [&] {
    while (p < h.size() && (h[p] == ' ' || h[p] == '\t' || h[p] == '\n')) ++p;
  };
  auto expect = [&](char c) {
    ws();
    if (p >= h.size() || h[p] != c) err(std::string("expected '") + c + "'");
    ++p;
  };
  auto str = [&]() {
    ws();
    if (p >= h.size() || (h[p] != '\'' && h[p] != '"')) err("expected a quoted string");
    const char q = h[p++];
    const std::size_t b = p;
    while (p < h.size() && h[p] != q) ++p;
    if (p >= h.size()) err("unterminated string");
    return std::string(h.substr(b, p++ - b));
  };
  NpyHeader out;
  bool have_descr = false, have_order = false, have_shape = false;
  expect('{');
  for (;;) {
    ws();
    if (p < h.size() && h[p] == '}') break;
    const std::string key = str();
    expect(':');
    ws();
    if (key == "descr") {
      const std::string d = str();
      const DTypeInfo* known = nullptr;
      if (d.size() == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '='))
        known = find_dtype([&](const DTypeInfo& i) { return i.numpy && d.substr(1) == i.numpy; });
      if (known) out.dtype = known->dtype;
      if (!known) err("dtype '" + d + "' is not supported (float16/32/64, int32/64, uint8, bool)");
      out.swap = d[0] == '>' && dtype_size(out.dtype) > 1;
      have_descr = true;
    } else if (key == "fortran_order") {
      if (h.substr(p, 4) == "True") {
        out.fortran = true, p += 4;
      } else if (h.substr(p, 5) == "False") {
        p += 5;
      } else {
        err("fortran_order must be True or False");
      }
      have_order = true;
    } else if (key == "shape") {
      expect('(');
      for (;;) {
        ws();
        if (p < h.size() && h[p] == ')') break;
        std::uint64_t v = 0;
        const std::size_t b = p;
        while (p < h.size() && h[p] >= '0' && h[p] <= '9') {
          if (v > (std::uint64_t{1} << 56)) err("a shape entry is too large");
          v = v * 10 + static_cast<std::uint64_t>(h[p++] - '0');
        }
        if (p == b) err("expected a non-negative integer in the shape");
        if (p < h.size() && h[p] == 'L') ++p;  // Python 2's long suffix
        if (out.shape.size() == static_cast<std::size_t>(kMaxRank)) err("more than 8 dimensions");
        out.shape.push_back(static_cast<index_t>(v));
        ws();
        if (p < h.size() && h[p] == ',')
          ++p;
        else if (p >= h.size() || h[p] != ')')
          err("expected ',' or ')' in the shape");
      }
      ++p;
      have_shape = true;
    } else {
      err("unexpected key '" + key + "'");
    }
    ws();
    if (p < h.size() && h[p] == ',')
      ++p;
    else if (p >= h.size() || h[p] != '}')
      err("expected ',' or '}'");
  }
  if (!have_descr || !have_order || !have_shape) err("'descr', 'fortran_order' and 'shape' are all required");
  return out;
}
#endif

}  // namespace detail

// The bytes numpy.save would write for `t` (any device or strides).
FT_COMPILED std::vector<std::uint8_t> to_npy_bytes(const AnyTensor& t);
#if FT_DEFINES_COMPILED
FT_COMPILED std::vector<std::uint8_t> to_npy_bytes(const AnyTensor& t) {
  check(t.defined(), "save_npy", "the tensor is undefined");
  check(dtype_info(t.dtype()).numpy != nullptr, "save_npy", "numpy has no ", t.dtype(),
        " type; convert the tensor first (ft::cast<float>), or save it as safetensors");
  AnyTensor host = contiguous_on(t, kCPU);
  std::string shape = "(";
  for (std::size_t d = 0; d < host.shape().size(); ++d) {
    if (d) shape += ", ";
    shape += std::to_string(host.shape()[d]);
  }
  shape += host.shape().size() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") + detail::npy_descr(host.dtype()) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  if (!host.shape().empty()) header.append(21 - std::to_string(host.shape()[0]).size(), ' ');  // numpy's growth room
  std::size_t prefix = 10;
  std::size_t pad = 64 - (prefix + header.size() + 1) % 64;
  int major = 1;
  if (header.size() + 1 + pad > 65535) {
    major = 2, prefix = 12;
    pad = 64 - (prefix + header.size() + 1) % 64;
  }
  header.append(pad, ' ');
  header += '\n';
  std::vector<std::uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(major), 0};
  const std::uint64_t n = header.size();
  for (std::size_t i = 0; i < prefix - 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  const auto* data = static_cast<const std::uint8_t*>(host.data());
  out.insert(out.end(), data, data + host.nbytes());
  return out;
}
#endif

inline void save_npy(const std::string& path, const AnyTensor& t) {
  const std::vector<std::uint8_t> bytes = to_npy_bytes(t);
  write_file_atomic(path, "save_npy", [&](std::FILE* f) { write_all(f, bytes.data(), bytes.size()); });
}

FT_COMPILED AnyTensor from_npy_bytes(std::span<const std::uint8_t> bytes, const std::string& name,
                                     Device device = kCPU);
#if FT_DEFINES_COMPILED
FT_COMPILED AnyTensor from_npy_bytes(std::span<const std::uint8_t> bytes, const std::string& name, Device device) {
  ByteReader r(bytes, name, "load_npy");
  auto magic = r.take(6, "the magic string \\x93NUMPY");
  static constexpr std::uint8_t kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (!std::equal(magic.begin(), magic.end(), kMagic))
    r.error(0, "not a .npy file (the magic string \\x93NUMPY is missing)");
  const auto version = r.take(2, "the format version");
  if (version[0] < 1 || version[0] > 3)
    r.error(6, "format version " + std::to_string(version[0]) + "." + std::to_string(version[1]) +
                   " is not supported (1.0 to 3.0)");
  const std::size_t header_len = version[0] == 1 ? r.u16_le("the header length") : r.u32_le("the header length");
  const std::size_t header_at = r.offset();
  auto h = r.take(header_len, "the header");
  const detail::NpyHeader hd =
      detail::parse_npy_header(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()), header_at, r);
  std::uint64_t count = 1;
  for (index_t s : hd.shape) {
    if (s && count > (std::uint64_t{1} << 56) / static_cast<std::uint64_t>(s))
      r.error(header_at, "the shape has too many elements");
    count *= static_cast<std::uint64_t>(s);
  }
  const std::uint64_t need = count * dtype_size(hd.dtype);
  if (need != r.remaining())
    r.error(r.offset(), "the header's shape and dtype need " + std::to_string(need) + " data bytes but " +
                            std::to_string(r.remaining()) + " follow");
  auto data = r.take(static_cast<std::size_t>(need), "the data");
  const int rank = static_cast<int>(hd.shape.size());
  // typed only to fill the host tensor: its copy to the device (and Fortran order's transpose) is
  // compiled once per dtype (contiguous_on), not per dtype and rank
  AnyTensor t = with_dtype_rank(hd.dtype, rank, [&]<class T, int R>() -> AnyTensor {
    Shape<R> s;  // Fortran order is C order of the reversed shape, transposed back below
    for (int d = 0; d < R; ++d) s[d] = hd.shape[static_cast<std::size_t>(hd.fortran ? R - 1 - d : d)];
    Tensor<T, R> host(s);
    auto* dst = reinterpret_cast<std::uint8_t*>(host.data());
    if (!data.empty()) std::memcpy(dst, data.data(), data.size());
    if (hd.swap)
      for (std::size_t i = 0; i < data.size(); i += sizeof(T)) std::reverse(dst + i, dst + i + sizeof(T));
    if constexpr (std::is_same_v<T, bool>)
      for (std::size_t i = 0; i < data.size(); ++i)
        if (data[i] > 1) r.error(bytes.size() - data.size() + i, "a bool byte is not 0 or 1");
    return host;
  });
  if (hd.fortran && rank > 1) {
    std::vector<int> reversed(static_cast<std::size_t>(rank));
    for (int d = 0; d < rank; ++d) reversed[static_cast<std::size_t>(d)] = rank - 1 - d;
    t = t.permute(reversed);
  }
  return contiguous_on(t, device);
}
#endif

inline AnyTensor load_npy(const std::string& path, Device device = kCPU) {
  const std::vector<std::uint8_t> bytes = read_file(path, "load_npy");
  return from_npy_bytes(bytes, path, device);
}

}  // namespace ft::inline FT_ABI::io
