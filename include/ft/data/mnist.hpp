// IDX files (LeCun's format for MNIST and its relatives) and ft::data::MNIST.
//
//   ft::data::MNIST train("data/mnist", true);   // train-images-idx3-ubyte (or .gz) + labels
//   auto [image, label] = train.get(0);         // Tensor<float, 3> [1, 28, 28] in [0, 1], Tensor<int64_t, 0>
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/data/dataset.hpp"
#include "ft/data/read.hpp"

namespace ft::inline FT_ABI::data {

// Decodes an IDX file: 2 zero bytes, a type code, the rank, big-endian u32 dimensions, then
// big-endian elements. Types: 0x08 uint8, 0x09 int8 (as int32), 0x0B int16 (as int32),
// 0x0C int32, 0x0D float32, 0x0E float64. Every size is checked against the data's length.
FT_COMPILED AnyTensor read_idx(std::span<const std::uint8_t> b, const std::string& name);
#if FT_DEFINES_COMPILED
FT_COMPILED AnyTensor read_idx(std::span<const std::uint8_t> b, const std::string& name) {
  const char* op = "read_idx";
  if (b.size() < 4) fail(op, "\"", name, "\": ", b.size(), " bytes, too short for the 4-byte IDX magic number");
  if (b[0] != 0 || b[1] != 0)
    fail(op, "\"", name,
         "\": bad magic number at offset 0 (expected 0x0000 then a type and a rank; is it an IDX file?)");
  const int type = b[2], rank = b[3];
  std::size_t elem = 0;
  DType dtype = DType::UInt8;
  switch (type) {
    case 0x08:
      elem = 1, dtype = DType::UInt8;
      break;
    case 0x09:
      elem = 1, dtype = DType::Int32;
      break;
    case 0x0B:
      elem = 2, dtype = DType::Int32;
      break;
    case 0x0C:
      elem = 4, dtype = DType::Int32;
      break;
    case 0x0D:
      elem = 4, dtype = DType::Float32;
      break;
    case 0x0E:
      elem = 8, dtype = DType::Float64;
      break;
    default:
      fail(op, "\"", name, "\": unknown IDX type code 0x", std::hex, type, " at offset 2");
  }
  if (rank < 1 || rank > kMaxRank)
    fail(op, "\"", name, "\": rank ", rank, " at offset 3 (expected 1 to ", kMaxRank, ")");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  if (b.size() < header)
    fail(op, "\"", name, "\": ", b.size(), " bytes, too short for the ", rank, " dimensions of the header (", header,
         " bytes)");
  std::vector<index_t> shape;
  std::uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const std::uint8_t* p = b.data() + 4 + 4 * d;
    const std::uint64_t n = (std::uint64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    shape.push_back(static_cast<index_t>(n));
    count *= n;
    if (count > b.size()) break;  // larger than the data can hold; reported below without overflow
  }
  const std::uint64_t expected = count * elem;
  if (count > b.size() || b.size() - header != expected)
    fail(op, "\"", name, "\": the header promises ",
         count > b.size() ? std::string("more than ") + std::to_string(b.size()) : std::to_string(expected),
         " bytes of data after offset ", header, " but ", b.size() - header, " follow");
  const std::uint8_t* data = b.data() + header;
  auto load_be = [&](std::size_t i) {
    std::uint64_t v = 0;
    for (std::size_t k = 0; k < elem; ++k) v = (v << 8) | data[i * elem + k];
    return v;
  };
  return with_dtype_rank(dtype, rank, [&]<class T, int R>() -> AnyTensor {
    Shape<R> s;
    for (int d = 0; d < R; ++d) s[d] = shape[static_cast<std::size_t>(d)];
    Tensor<T, R> t(s);
    T* out = t.data();
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint64_t v = load_be(i);
      if constexpr (std::is_same_v<T, float>) {
        std::uint32_t u = static_cast<std::uint32_t>(v);
        std::memcpy(&out[i], &u, 4);
      } else if constexpr (std::is_same_v<T, double>) {
        std::memcpy(&out[i], &v, 8);
      } else if constexpr (std::is_same_v<T, std::int32_t>) {
        if (type == 0x09)
          out[i] = static_cast<std::int8_t>(v);
        else if (type == 0x0B)
          out[i] = static_cast<std::int16_t>(v);
        else
          out[i] = static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
      } else {
        out[i] = static_cast<T>(v);
      }
    }
    return t;
  });
}
#endif

inline AnyTensor read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_maybe_gzip(path, "read_idx");
  return read_idx(std::span<const std::uint8_t>(bytes), path);
}

// The MNIST training (60000) or test (10000) set from the four standard IDX files in `root`
// (or root/MNIST/raw, torchvision's layout), each optionally gzip'd. Images are uint8 in
// memory and become float in [0, 1] per batch, as torchvision's ToTensor.
class MNIST {
 public:
  using sample_type = Example<Tensor<float, 3>, Tensor<std::int64_t, 0>>;

  FT_COMPILED explicit MNIST(const std::string& root, bool train = true);

  index_t size() const { return targets_.numel(); }
  sample_type get(index_t i) const {
    std::array<index_t, 1> one{i};
    auto b = get_batch(one);
    return {b.data.select(0, 0), b.target.select(0, 0)};
  }
  batch_t<sample_type> get_batch(std::span<const index_t> indices, const HostAllocator& alloc = {}) const {
    const index_t n = static_cast<index_t>(indices.size()), rows = images_.size(1), cols = images_.size(2);
    for (index_t i : indices)
      check(i >= 0 && i < size(), "MNIST", "index ", i, " is out of range for a dataset of ", size(), " images");
    Shape<4> shape{n, 1, rows, cols};
    Storage storage = detail::host_storage(alloc, static_cast<std::size_t>(shape.numel()) * sizeof(float));
    Tensor<float, 4> x(storage, static_cast<float*>(storage->data()), shape, contiguous_strides(shape));
    const index_t pixels = rows * cols;
    for (index_t k = 0; k < n; ++k) {
      const std::uint8_t* src = images_.data() + indices[static_cast<std::size_t>(k)] * pixels;
      float* dst = x.data() + k * pixels;
      for (index_t p = 0; p < pixels; ++p) dst[p] = static_cast<float>(src[p]) * (1.0f / 255.0f);
    }
    return {x, detail::gather_rows(targets_, indices, alloc)};
  }
  const Tensor<std::uint8_t, 3>& images() const { return images_; }
  const Tensor<std::int64_t, 1>& targets() const { return targets_; }

 private:
  static std::string find(const std::string& root, const std::string& file) {
    namespace fs = std::filesystem;
    for (const fs::path& dir : {fs::path(root), fs::path(root) / "MNIST" / "raw"})
      for (const char* ext : {"", ".gz"})
        if (fs::exists(dir / (file + ext))) return (dir / (file + ext)).string();
    fail("MNIST", "\"", file, "\" (or ", file, ".gz) not found in \"", root, "\" or \"", root,
         "/MNIST/raw\"; download the four files from the MNIST page (or with torchvision) first");
  }

  Tensor<std::uint8_t, 3> images_;
  Tensor<std::int64_t, 1> targets_;
};

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED MNIST::MNIST(const std::string& root, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string image_path = find(root, prefix + "-images-idx3-ubyte");
  const std::string label_path = find(root, prefix + "-labels-idx1-ubyte");
  AnyTensor images = read_idx(image_path), labels = read_idx(label_path);
  check(images.is<std::uint8_t, 3>(), "MNIST", "\"", image_path, "\" holds ", images.dtype(), " of shape ",
        images.shape_string(), "; MNIST images are uint8 [N, rows, cols] (magic 0x00000803)");
  check(labels.is<std::uint8_t, 1>(), "MNIST", "\"", label_path, "\" holds ", labels.dtype(), " of shape ",
        labels.shape_string(), "; MNIST labels are uint8 [N] (magic 0x00000801)");
  check(images.size(0) == labels.size(0), "MNIST", "\"", image_path, "\" has ", images.size(0), " images but \"",
        label_path, "\" has ", labels.size(0), " labels");
  images_ = images.as<std::uint8_t, 3>();
  auto l = labels.as<std::uint8_t, 1>();
  targets_ = Tensor<std::int64_t, 1>(l.shape());
  for (index_t i = 0; i < l.numel(); ++i) {
    check(l.data()[i] <= 9, "MNIST", "\"", label_path, "\": label ", int(l.data()[i]), " of sample ", i,
          " is not a digit 0..9");
    targets_.data()[i] = l.data()[i];
  }
}
#endif

}  // namespace ft::inline FT_ABI::data
