// The few protobuf wire-format pieces TensorBoard's event files need, written and read by hand
// so that the library has no protobuf dependency. Reading is bounds-checked throughout.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI::utils::pb {

enum Wire : std::uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

inline void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void key(std::string& out, std::uint32_t field, Wire w) { varint(out, (std::uint64_t{field} << 3) | w); }
inline void uint_field(std::string& out, std::uint32_t field, std::uint64_t v) {
  key(out, field, kVarint);
  varint(out, v);
}
inline void double_field(std::string& out, std::uint32_t field, double v) {
  key(out, field, kFixed64);
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts only (x86-64, aarch64), as the rest of the library
  out.append(b, 8);
}
inline void float_field(std::string& out, std::uint32_t field, float v) {
  key(out, field, kFixed32);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
inline void bytes_field(std::string& out, std::uint32_t field, std::string_view v) {
  key(out, field, kBytes);
  varint(out, v.size());
  out.append(v);
}

// A cursor over one message's bytes; every read checks the remaining length.
class Reader {
 public:
  Reader(std::string_view data, std::size_t base, const std::string& name) : d_(data), base_(base), name_(name) {}
  bool done() const { return pos_ >= d_.size(); }
  std::size_t offset() const { return base_ + pos_; }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1, "a varint");
      const auto b = static_cast<std::uint8_t>(d_[pos_++]);
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
    fail("read_events", "\"", name_, "\": varint longer than 10 bytes at offset ", offset());
  }
  // Returns the field number and sets `wire`.
  std::uint32_t key(Wire& wire) {
    const std::uint64_t k = varint();
    wire = static_cast<Wire>(k & 7);
    if (k >> 3 == 0 || k >> 3 > 0x1FFFFFFF)
      fail("read_events", "\"", name_, "\": invalid field number at offset ", offset());
    return static_cast<std::uint32_t>(k >> 3);
  }
  double fixed64() {
    need(8, "a 64-bit value");
    double v;
    std::memcpy(&v, d_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }
  float fixed32() {
    need(4, "a 32-bit value");
    float v;
    std::memcpy(&v, d_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  // A length-delimited field: its bytes and the file offset where they start.
  std::pair<std::string_view, std::size_t> bytes() {
    const std::uint64_t n = varint();
    if (n > d_.size() - pos_)
      fail("read_events", "\"", name_, "\": a field of ", n, " bytes at offset ", offset(), " overruns its message (",
           d_.size() - pos_, " bytes left)");
    std::pair<std::string_view, std::size_t> r{d_.substr(pos_, n), offset()};
    pos_ += n;
    return r;
  }
  void skip(Wire w) {
    switch (w) {
      case kVarint:
        (void)varint();
        break;
      case kFixed64:
        need(8, "a 64-bit value"), pos_ += 8;
        break;
      case kBytes:
        (void)bytes();
        break;
      case kFixed32:
        need(4, "a 32-bit value"), pos_ += 4;
        break;
      default:
        fail("read_events", "\"", name_, "\": unsupported wire type ", int(w), " at offset ", offset());
    }
  }
  const std::string& name() const { return name_; }

 private:
  void need(std::size_t n, const char* what) {
    if (n > d_.size() - pos_) fail("read_events", "\"", name_, "\": truncated ", what, " at offset ", offset());
  }
  std::string_view d_;
  std::size_t base_, pos_ = 0;
  const std::string& name_;
};

}  // namespace ft::inline FT_ABI::utils::pb
