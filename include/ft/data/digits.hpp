// ft::data::Digits: the 1797 8×8 handwritten digits shipped in data/digits.csv.gz (UCI, CC BY
// 4.0; see data/README.md), as images [1, 8, 8] in [0, 1] and int64 labels.
//
//   ft::data::Digits digits;                                      // finds the shipped file
//   auto [train, test] = ft::data::train_test_split(digits, 0.2, 0);  // reproducible 80/20 split
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/data/csv.hpp"
#include "ft/data/dataset.hpp"

namespace ft::inline FT_ABI::data {

class Digits {
 public:
  using sample_type = Example<Tensor<float, 3>, Tensor<std::int64_t, 0>>;

  // Reads `path`, or default_path() when empty.
  FT_COMPILED explicit Digits(const std::string& path = "");

  // The shipped data/digits.csv.gz (data::shipped_file: $FT_DATA_DIR first).
  static std::string default_path() { return shipped_file("digits.csv.gz"); }

  index_t size() const { return targets_.numel(); }
  sample_type get(index_t i) const {
    check(i >= 0 && i < size(), "Digits", "index ", i, " is out of range for ", size(), " images");
    return {images_.select(0, i), targets_.select(0, i)};
  }
  batch_t<sample_type> get_batch(std::span<const index_t> indices, const HostAllocator& alloc = {}) const {
    for (index_t i : indices)
      check(i >= 0 && i < size(), "Digits", "index ", i, " is out of range for ", size(), " images");
    return {detail::gather_rows(images_, indices, alloc), detail::gather_rows(targets_, indices, alloc)};
  }
  const Tensor<float, 4>& images() const { return images_; }
  const Tensor<std::int64_t, 1>& targets() const { return targets_; }

 private:
  Tensor<float, 4> images_;
  Tensor<std::int64_t, 1> targets_;
};

// A reproducible {train, test} split of any dataset, `test_fraction` of it in the test set
// (scikit-learn's train_test_split; the rounding of random_split).
template <Dataset D>
std::pair<Subset<D>, Subset<D>> train_test_split(const D& dataset, double test_fraction, std::uint64_t seed) {
  check(test_fraction > 0 && test_fraction < 1, "train_test_split", "test_fraction must be in (0, 1), got ",
        test_fraction);
  auto parts = random_split(dataset, {1 - test_fraction, test_fraction}, seed);
  return {parts[0], parts[1]};
}

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED Digits::Digits(const std::string& path) {
  const std::string file = path.empty() ? default_path() : path;
  CsvDataset<std::int64_t> csv(file);
  check(csv.num_features() == 64, "Digits", "\"", file, "\" has ", csv.num_features(),
        " pixel columns; the digits file has 64 (8×8) and a label");
  const index_t n = csv.size();
  images_ = Tensor<float, 4>(Shape<4>{n, 1, 8, 8});
  const float* px = csv.features().data();
  for (index_t i = 0; i < n * 64; ++i) {
    check(px[i] >= 0 && px[i] <= 16, "Digits", "\"", file, "\": pixel ", i % 64, " of row ", i / 64 + 1, " is ", px[i],
          ", outside 0..16");
    images_.data()[i] = px[i] * (1.0f / 16.0f);
  }
  targets_ = csv.targets();
  for (index_t i = 0; i < n; ++i)
    check(targets_.data()[i] >= 0 && targets_.data()[i] <= 9, "Digits", "\"", file, "\": label ", targets_.data()[i],
          " of row ", i + 1, " is not a digit");
}
#endif

}  // namespace ft::inline FT_ABI::data
