// ft::utils::SummaryWriter: TensorBoard event files, as torch.utils.tensorboard writes them,
// with no protobuf dependency (the few messages are encoded by hand, utils/protobuf.hpp).
//
//   ft::utils::SummaryWriter writer("runs/exp1");
//   writer.add_scalar("train/loss", loss, step);
//   writer.add_histogram("fc1.weight", model.fc1.weight.value(), step);
//   // tensorboard --logdir runs
//
// A file is a sequence of TFRecords: u64 length, masked CRC-32C of the length, the data (one
// serialized Event), masked CRC-32C of the data. The first event carries file_version.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/utils/crc32c.hpp"
#include "ft/utils/protobuf.hpp"
#include "ft/vision/image.hpp"

namespace ft::inline FT_ABI::utils {

// TensorBoard's HistogramProto: bucket i counts values in (bucket_limit[i-1], bucket_limit[i]].
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit, bucket;
};

// PyTorch's default_bins ("tensorflow"): ±1e-12 · 1.1^k up to 1e20, and 0.
inline const std::vector<double>& tensorflow_bins() {
  static const std::vector<double> edges = [] {
    std::vector<double> pos;
    for (double v = 1e-12; v < 1e20; v *= 1.1) pos.push_back(v);
    std::vector<double> e;
    for (auto it = pos.rbegin(); it != pos.rend(); ++it) e.push_back(-*it);
    e.push_back(0);
    e.insert(e.end(), pos.begin(), pos.end());
    return e;
  }();
  return edges;
}

// np.histogram over `edges` (the last bin closed), trimmed to the non-empty range with one empty
// bucket in front, as torch.utils.tensorboard.summary.make_histogram.
FT_COMPILED Histogram make_histogram(const std::vector<double>& values, const std::vector<double>& edges);
#if FT_DEFINES_COMPILED
FT_COMPILED Histogram make_histogram(const std::vector<double>& values, const std::vector<double>& edges) {
  Histogram h;
  if (values.empty()) return h;
  h.min = *std::min_element(values.begin(), values.end());
  h.max = *std::max_element(values.begin(), values.end());
  h.num = static_cast<double>(values.size());
  for (double v : values) h.sum += v, h.sum_squares += v * v;
  std::vector<double> counts(edges.size() - 1, 0.0);
  for (double v : values) {
    if (!(v >= edges.front() && v <= edges.back())) continue;  // outside the edges (or NaN): not counted
    auto bin = static_cast<std::size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin()) - 1;
    counts[std::min(bin, counts.size() - 1)] += 1;
  }
  std::size_t first = counts.size(), last = 0;
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i] > 0) first = std::min(first, i), last = i;
  if (first == counts.size()) return h;
  h.bucket_limit.push_back(edges[first]);
  h.bucket.push_back(0);
  for (std::size_t i = first; i <= last; ++i) {
    h.bucket_limit.push_back(edges[i + 1]);
    h.bucket.push_back(counts[i]);
  }
  return h;
}
#endif

namespace detail {

FT_COMPILED std::string encode_histogram(const Histogram& h);
#if FT_DEFINES_COMPILED
FT_COMPILED std::string encode_histogram(const Histogram& h) {
  std::string m;
  pb::double_field(m, 1, h.min);
  pb::double_field(m, 2, h.max);
  pb::double_field(m, 3, h.num);
  pb::double_field(m, 4, h.sum);
  pb::double_field(m, 5, h.sum_squares);
  auto packed = [&](std::uint32_t field, const std::vector<double>& v) {
    std::string p(v.size() * 8, '\0');
    if (!v.empty()) std::memcpy(p.data(), v.data(), p.size());
    pb::bytes_field(m, field, p);
  };
  packed(6, h.bucket_limit);
  packed(7, h.bucket);
  return m;
}
#endif

// An image or a batch of images as torch's SummaryWriter makes them: uint8 CHW with 3 or 4
// channels (one is repeated to three), a batch tiled 8 a row (tensorboard's make_grid).
FT_COMPILED Tensor<std::uint8_t, 3> image_to_chw(const AnyTensor& t, const std::string& format, const char* op);
#if FT_DEFINES_COMPILED
FT_COMPILED Tensor<std::uint8_t, 3> image_to_chw(const AnyTensor& t, const std::string& format, const char* op) {
  check(t.defined(), op, "the image tensor is undefined");
  check(t.dim() == static_cast<int>(format.size()), op, "dataformats \"", format, "\" needs a rank-", format.size(),
        " tensor, got shape ", t.shape_string());
  std::vector<double> v;
  v.reserve(static_cast<std::size_t>(t.numel()));
  visit_elements(t, [&](auto typed) {
    for (auto x : typed.to_vector()) v.push_back(static_cast<double>(x));
  });
  const double scale = t.dtype() == DType::UInt8 ? 1.0 : 255.0;
  // The sizes of N, C, H, W (1 where the format has no such letter) and their strides in v.
  index_t size[4] = {1, 1, 1, 1}, stride[4] = {0, 0, 0, 0};
  const auto shape = t.shape();
  index_t s = 1;
  for (int d = static_cast<int>(format.size()) - 1; d >= 0; --d) {
    const int k = static_cast<int>(std::string("NCHW").find(format[static_cast<std::size_t>(d)]));
    size[k] = shape[static_cast<std::size_t>(d)];
    stride[k] = s;
    s *= size[k];
  }
  const index_t n = size[0], c = size[1], h = size[2], w = size[3];
  check(c == 1 || c == 3 || c == 4, op, "images need 1, 3 or 4 channels, got shape ", t.shape_string(), " (", format,
        ")");
  check(n > 0 && h > 0 && w > 0, op, "the image ", t.shape_string(), " is empty");
  const index_t cols = std::min<index_t>(n, 8), rows = (n + cols - 1) / cols, oc = c == 1 ? 3 : c;
  Tensor<std::uint8_t, 3> out(Shape<3>{oc, h * rows, w * cols});
  std::fill(out.data(), out.data() + out.numel(), std::uint8_t{0});
  const index_t ow = w * cols, plane = h * rows * ow;
  for (index_t i = 0; i < n; ++i)
    for (index_t ch = 0; ch < oc; ++ch)
      for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x) {
          const double val = v[static_cast<std::size_t>(i * stride[0] + (c == 1 ? 0 : ch) * stride[1] + y * stride[2] +
                                                        x * stride[3])];
          const double q = std::clamp(val * scale, 0.0, 255.0);  // NaN → 0
          out.data()[ch * plane + ((i / cols) * h + y) * ow + (i % cols) * w + x] =
              static_cast<std::uint8_t>(q == q ? q : 0.0);
        }
  return out;
}
#endif

// One append-only event file.
class EventFile {
 public:
  FT_COMPILED explicit EventFile(const std::filesystem::path& dir);
  ~EventFile() {
    try {
      flush();
    } catch (const Error&) {  // a destructor must not throw; flush() reports the same error when called
    }
    std::fclose(file_);
  }
  EventFile(const EventFile&) = delete;
  EventFile& operator=(const EventFile&) = delete;

  static double wall_time() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  // Frames one serialized Event as a TFRecord into the buffer.
  FT_COMPILED void append(const std::string& event);
  FT_COMPILED void flush();
  int pending() const { return pending_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
  int pending_ = 0;
};

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED EventFile::EventFile(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("SummaryWriter", "cannot create the log directory \"", dir.string(), "\": ", ec.message());
  char host[256] = "localhost";
  (void)gethostname(host, sizeof(host) - 1);
  static std::atomic<int> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ =
      (dir / ("events.out.tfevents." + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) +
              "." + host + "." + std::to_string(getpid()) + "." + std::to_string(counter++)))
          .string();
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) fail("SummaryWriter", "cannot create the event file \"", path_, "\"");
  std::string event;
  pb::double_field(event, 1, wall_time());
  pb::bytes_field(event, 3, "brain.Event:2");
  append(event);
  flush();
}

FT_COMPILED void EventFile::append(const std::string& event) {
  char len[8];
  const std::uint64_t n = event.size();
  std::memcpy(len, &n, 8);
  auto put_crc = [&](std::uint32_t c) {
    char b[4];
    std::memcpy(b, &c, 4);
    buffer_.append(b, 4);
  };
  buffer_.append(len, 8);
  put_crc(masked_crc32c(len, 8));
  buffer_.append(event);
  put_crc(masked_crc32c(event.data(), event.size()));
  ++pending_;
}

FT_COMPILED void EventFile::flush() {
  if (!buffer_.empty()) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
      fail("SummaryWriter", "write to \"", path_, "\" failed (disk full?)");
    buffer_.clear();
  }
  if (std::fflush(file_) != 0) fail("SummaryWriter", "flush of \"", path_, "\" failed");
  pending_ = 0;
}
#endif

}  // namespace detail

struct SummaryWriterOptions {
  int max_queue = 10;       // events buffered before they are written (PyTorch's max_queue)
  double flush_secs = 120;  // ... or seconds since the last write (PyTorch's flush_secs)
};

class SummaryWriter {
 public:
  explicit SummaryWriter(std::string logdir, const SummaryWriterOptions& options = {})
      : logdir_(std::move(logdir)), options_(options), file_(std::make_unique<detail::EventFile>(logdir_)) {}
  ~SummaryWriter() = default;

  const std::string& log_dir() const { return logdir_; }
  const std::string& file_path() const { return file_->path(); }

  void add_scalar(const std::string& tag, double value, std::int64_t step, std::optional<double> wall_time = {}) {
    std::string v;
    pb::bytes_field(v, 1, tag);
    pb::float_field(v, 2, static_cast<float>(value));  // Summary.Value.simple_value, as PyTorch writes
    write(*file_, v, step, wall_time);
  }
  // One run per key, in <logdir>/<main_tag>_<key>, each with the scalar under main_tag: the
  // curves share one chart (torch's add_scalars).
  FT_COMPILED void add_scalars(const std::string& main_tag, const std::map<std::string, double>& values,
                               std::int64_t step, std::optional<double> wall_time = {});
  // The values of a tensor of any dtype and device. bins: 0 = PyTorch's "tensorflow" default
  // (exponential buckets), n > 0 = n equal buckets between the minimum and the maximum.
  FT_COMPILED void add_histogram(const std::string& tag, const AnyTensor& t, std::int64_t step, int bins = 0,
                                 std::optional<double> wall_time = {});
  void add_histogram_raw(const std::string& tag, const Histogram& h, std::int64_t step,
                         std::optional<double> wall_time = {}) {
    std::string v;
    pb::bytes_field(v, 1, tag);
    pb::bytes_field(v, 5, detail::encode_histogram(h));
    write(*file_, v, step, wall_time);
  }
  // Text (Markdown) under "<tag>/text_summary", as torch's add_text: a DT_STRING tensor of
  // shape [1] with the "text" plugin's metadata.
  FT_COMPILED void add_text(const std::string& tag, const std::string& text, std::int64_t step,
                            std::optional<double> wall_time = {});
  // An image of any dtype on any device, laid out as `dataformats` ("CHW", "HWC" or "HW"):
  // uint8 as it is, other types (values in [0, 1]) times 255, clipped and truncated, as
  // torch's add_image; one channel becomes RGB. PNG-encoded for TensorBoard's image plugin.
  void add_image(const std::string& tag, const AnyTensor& image, std::int64_t step,
                 const std::string& dataformats = "CHW", std::optional<double> wall_time = {}) {
    check(dataformats == "CHW" || dataformats == "HWC" || dataformats == "HW", "SummaryWriter::add_image",
          "dataformats must be \"CHW\", \"HWC\" or \"HW\", got \"", dataformats, "\"");
    write_image(tag, detail::image_to_chw(image, dataformats, "SummaryWriter::add_image"), step, wall_time);
  }
  // A batch [N, C, H, W] ("NCHW", or "NHWC") tiled 8 a row without padding, as torch's add_images.
  void add_images(const std::string& tag, const AnyTensor& images, std::int64_t step,
                  const std::string& dataformats = "NCHW", std::optional<double> wall_time = {}) {
    check(dataformats == "NCHW" || dataformats == "NHWC", "SummaryWriter::add_images",
          "dataformats must be \"NCHW\" or \"NHWC\", got \"", dataformats, "\"");
    write_image(tag, detail::image_to_chw(images, dataformats, "SummaryWriter::add_images"), step, wall_time);
  }
  void flush() {
    std::lock_guard lock(mutex_);
    file_->flush();
    for (auto& [key, f] : children_) f->flush();
    last_flush_ = std::chrono::steady_clock::now();
  }
  void close() { flush(); }

 private:
  void write(detail::EventFile& f, const std::string& value, std::int64_t step, std::optional<double> wall_time) {
    std::lock_guard lock(mutex_);
    write_locked(f, value, step, wall_time);
  }
  FT_COMPILED void write_locked(detail::EventFile& f, const std::string& value, std::int64_t step,
                                std::optional<double> wall_time);

  FT_COMPILED void write_image(const std::string& tag, const Tensor<std::uint8_t, 3>& chw, std::int64_t step,
                               std::optional<double> wall_time);

  std::string logdir_;
  SummaryWriterOptions options_;
  std::mutex mutex_;
  std::unique_ptr<detail::EventFile> file_;
  std::map<std::string, std::unique_ptr<detail::EventFile>> children_;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED void SummaryWriter::add_scalars(const std::string& main_tag, const std::map<std::string, double>& values,
                                            std::int64_t step, std::optional<double> wall_time) {
  std::lock_guard lock(mutex_);
  for (const auto& [key, value] : values) {
    auto& f = children_[key];
    if (!f) f = std::make_unique<detail::EventFile>(std::filesystem::path(logdir_) / (main_tag + "_" + key));
    std::string v;
    pb::bytes_field(v, 1, main_tag);
    pb::float_field(v, 2, static_cast<float>(value));
    write_locked(*f, v, step, wall_time);
  }
}

FT_COMPILED void SummaryWriter::add_histogram(const std::string& tag, const AnyTensor& t, std::int64_t step, int bins,
                                              std::optional<double> wall_time) {
  check(t.defined(), "SummaryWriter::add_histogram", "tag \"", tag, "\": the tensor is undefined");
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(t.numel()));
  visit_elements(t, [&](auto typed) {
    for (auto x : typed.to_vector()) values.push_back(static_cast<double>(x));
  });
  std::vector<double> edges;
  if (bins <= 0) {
    edges = tensorflow_bins();
  } else if (!values.empty()) {
    double lo = *std::min_element(values.begin(), values.end()), hi = *std::max_element(values.begin(), values.end());
    if (lo == hi) lo -= 0.5, hi += 0.5;  // numpy's range for constant input
    for (int i = 0; i <= bins; ++i) edges.push_back(lo + (hi - lo) * i / bins);
  } else {
    edges = {0, 1};
  }
  add_histogram_raw(tag, make_histogram(values, edges), step, wall_time);
}

FT_COMPILED void SummaryWriter::add_text(const std::string& tag, const std::string& text, std::int64_t step,
                                         std::optional<double> wall_time) {
  std::string plugin, metadata, shape, dim, tensor, v;
  pb::bytes_field(plugin, 1, "text");
  pb::bytes_field(plugin, 2, "");  // TextPluginData{version = 0} serialises to nothing
  pb::bytes_field(metadata, 1, plugin);
  pb::uint_field(dim, 1, 1);
  pb::bytes_field(shape, 2, dim);
  pb::uint_field(tensor, 1, 7);  // DT_STRING
  pb::bytes_field(tensor, 2, shape);
  pb::bytes_field(tensor, 8, text);
  pb::bytes_field(v, 1, tag + "/text_summary");
  pb::bytes_field(v, 8, tensor);
  pb::bytes_field(v, 9, metadata);
  write(*file_, v, step, wall_time);
}

FT_COMPILED void SummaryWriter::write_locked(detail::EventFile& f, const std::string& value, std::int64_t step,
                                             std::optional<double> wall_time) {
  std::string summary, event;
  pb::bytes_field(summary, 1, value);
  pb::double_field(event, 1, wall_time ? *wall_time : detail::EventFile::wall_time());
  pb::uint_field(event, 2, static_cast<std::uint64_t>(step));
  pb::bytes_field(event, 5, summary);
  f.append(event);
  const auto now = std::chrono::steady_clock::now();
  if (f.pending() >= options_.max_queue ||
      std::chrono::duration<double>(now - last_flush_).count() >= options_.flush_secs) {
    f.flush();
    last_flush_ = now;
  }
}

FT_COMPILED void SummaryWriter::write_image(const std::string& tag, const Tensor<std::uint8_t, 3>& chw,
                                            std::int64_t step, std::optional<double> wall_time) {
  std::string image, v;
  pb::uint_field(image, 1, static_cast<std::uint64_t>(chw.size(1)));  // Summary.Image: height, width,
  pb::uint_field(image, 2, static_cast<std::uint64_t>(chw.size(2)));  // colorspace (channels), PNG bytes
  pb::uint_field(image, 3, static_cast<std::uint64_t>(chw.size(0)));
  const std::vector<std::uint8_t> png = vision::encode_png(chw);
  pb::bytes_field(image, 4, std::string(png.begin(), png.end()));
  pb::bytes_field(v, 1, tag);
  pb::bytes_field(v, 4, image);
  write(*file_, v, step, wall_time);
}
#endif

}  // namespace ft::inline FT_ABI::utils
