// Reading TensorBoard event files back: the TFRecord framing with both CRCs checked, and the
// Event fields that SummaryWriter writes. For tests and tools; corrupt input is an ft::Error
// naming the file and the offset.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/utils/crc32c.hpp"
#include "ft/utils/protobuf.hpp"
#include "ft/utils/summary_writer.hpp"

namespace ft::inline FT_ABI::utils {

// Summary.Image: the size, the channels (colorspace) and the PNG bytes.
struct SummaryImage {
  std::int64_t height = 0, width = 0, colorspace = 0;
  std::string encoded;
};

struct SummaryValue {
  std::string tag;
  std::optional<float> simple_value;
  std::optional<Histogram> histogram;
  std::vector<std::string> strings;  // a tensor's string_val (add_text)
  std::string plugin_name;
  std::optional<SummaryImage> image;  // add_image / add_images
};

struct Event {
  double wall_time = 0;
  std::int64_t step = 0;
  std::string file_version;
  std::vector<SummaryValue> values;
};

namespace detail {

inline std::vector<double> packed_doubles(std::string_view b, std::size_t at, const std::string& name) {
  if (b.size() % 8) fail("read_events", "\"", name, "\": packed doubles of ", b.size(), " bytes at offset ", at);
  std::vector<double> v(b.size() / 8);
  if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
  return v;
}

inline Histogram decode_histogram(std::string_view m, std::size_t at, const std::string& name) {
  Histogram h;
  pb::Reader r(m, at, name);
  double* scalars[] = {&h.min, &h.max, &h.num, &h.sum, &h.sum_squares};
  while (!r.done()) {
    pb::Wire w;
    const auto f = r.key(w);
    if (f >= 1 && f <= 5 && w == pb::kFixed64) {
      *scalars[f - 1] = r.fixed64();
    } else if ((f == 6 || f == 7) && w == pb::kBytes) {
      auto [b, o] = r.bytes();
      (f == 6 ? h.bucket_limit : h.bucket) = packed_doubles(b, o, name);
    } else {
      r.skip(w);
    }
  }
  return h;
}

inline SummaryValue decode_value(std::string_view m, std::size_t at, const std::string& name) {
  SummaryValue v;
  pb::Reader r(m, at, name);
  while (!r.done()) {
    pb::Wire w;
    const auto f = r.key(w);
    if (f == 1 && w == pb::kBytes) {
      v.tag = std::string(r.bytes().first);
    } else if (f == 2 && w == pb::kFixed32) {
      v.simple_value = r.fixed32();
    } else if (f == 4 && w == pb::kBytes) {
      auto [b, o] = r.bytes();
      pb::Reader im(b, o, name);
      SummaryImage image;
      while (!im.done()) {
        pb::Wire iw;
        const auto k = im.key(iw);
        if (k >= 1 && k <= 3 && iw == pb::kVarint)
          (k == 1 ? image.height : k == 2 ? image.width : image.colorspace) = static_cast<std::int64_t>(im.varint());
        else if (k == 4 && iw == pb::kBytes)
          image.encoded = std::string(im.bytes().first);
        else
          im.skip(iw);
      }
      v.image = std::move(image);
    } else if (f == 5 && w == pb::kBytes) {
      auto [b, o] = r.bytes();
      v.histogram = decode_histogram(b, o, name);
    } else if (f == 8 && w == pb::kBytes) {  // TensorProto: string_val is field 8
      auto [b, o] = r.bytes();
      pb::Reader t(b, o, name);
      while (!t.done()) {
        pb::Wire tw;
        if (t.key(tw) == 8 && tw == pb::kBytes)
          v.strings.emplace_back(t.bytes().first);
        else
          t.skip(tw);
      }
    } else if (f == 9 && w == pb::kBytes) {  // SummaryMetadata.plugin_data.plugin_name
      auto [b, o] = r.bytes();
      pb::Reader md(b, o, name);
      while (!md.done()) {
        pb::Wire mw;
        if (md.key(mw) == 1 && mw == pb::kBytes) {
          auto [pd, po] = md.bytes();
          pb::Reader p(pd, po, name);
          while (!p.done()) {
            pb::Wire pw;
            if (p.key(pw) == 1 && pw == pb::kBytes)
              v.plugin_name = std::string(p.bytes().first);
            else
              p.skip(pw);
          }
        } else {
          md.skip(mw);
        }
      }
    } else {
      r.skip(w);
    }
  }
  return v;
}

inline Event decode_event(std::string_view m, std::size_t at, const std::string& name) {
  Event e;
  pb::Reader r(m, at, name);
  while (!r.done()) {
    pb::Wire w;
    const auto f = r.key(w);
    if (f == 1 && w == pb::kFixed64) {
      e.wall_time = r.fixed64();
    } else if (f == 2 && w == pb::kVarint) {
      e.step = static_cast<std::int64_t>(r.varint());
    } else if (f == 3 && w == pb::kBytes) {
      e.file_version = std::string(r.bytes().first);
    } else if (f == 5 && w == pb::kBytes) {
      auto [b, o] = r.bytes();
      pb::Reader s(b, o, name);
      while (!s.done()) {
        pb::Wire sw;
        if (s.key(sw) == 1 && sw == pb::kBytes) {
          auto [vb, vo] = s.bytes();
          e.values.push_back(decode_value(vb, vo, name));
        } else {
          s.skip(sw);
        }
      }
    } else {
      r.skip(w);
    }
  }
  return e;
}

}  // namespace detail

// Decodes every record of an event file's bytes.
inline std::vector<Event> decode_events(std::string_view bytes, const std::string& name = "<memory>") {
  std::vector<Event> events;
  std::size_t pos = 0;
  auto u32 = [&](std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  };
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 12)
      fail("read_events", "\"", name, "\": truncated record header at offset ", pos, " (", bytes.size() - pos,
           " bytes left, 12 needed)");
    std::uint64_t n;
    std::memcpy(&n, bytes.data() + pos, 8);
    if (u32(pos + 8) != masked_crc32c(bytes.data() + pos, 8))
      fail("read_events", "\"", name, "\": length CRC mismatch in the record at offset ", pos);
    if (n > bytes.size() - pos - 12 || bytes.size() - pos - 12 - n < 4)
      fail("read_events", "\"", name, "\": the record at offset ", pos, " promises ", n, " bytes but ",
           bytes.size() - pos - 12, " remain (truncated file?)");
    const std::string_view data = bytes.substr(pos + 12, n);
    if (u32(pos + 12 + n) != masked_crc32c(data.data(), data.size()))
      fail("read_events", "\"", name, "\": data CRC mismatch in the record at offset ", pos);
    events.push_back(detail::decode_event(data, pos + 12, name));
    pos += 12 + n + 4;
  }
  return events;
}

inline std::vector<Event> read_events(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("read_events", "cannot open \"", path, "\"");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return decode_events(bytes, path);
}

}  // namespace ft::inline FT_ABI::utils
