// Datasets: anything with size() and get(i) returning a sample (a tensor, an Example or a
// tuple of tensors). Batches stack samples along a new first dimension. TensorDataset,
// Subset and random_split as in torch.utils.data.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/runtime.hpp"

namespace ft::inline FT_ABI::data {

// A sample of a supervised data set: LibTorch's torch::data::Example.
template <class Data, class Target>
struct Example {
  Data data;
  Target target;
};

// A dataset: a size and random access to samples (PyTorch's map-style Dataset).
template <class D>
concept Dataset = requires(const D& d, index_t i) {
  { d.size() } -> std::convertible_to<index_t>;
  d.get(i);
};

template <Dataset D>
using sample_t = std::remove_cvref_t<decltype(std::declval<const D&>().get(index_t{0}))>;

// ---- batches: a sample type's tensors, each with a leading batch dimension ----

template <class S>
struct BatchOf {
  static_assert(sizeof(S) == 0,
                "ft::data: a sample must be a Tensor, an ft::data::Example or a std::tuple of tensors; "
                "specialise ft::data::BatchOf and for_each_tensor for other sample types");
};
template <class T, int R>
struct BatchOf<Tensor<T, R>> {
  static_assert(R < kMaxRank, "ft::data: a batch adds a dimension, so a sample's rank must be below 8");
  using type = Tensor<T, R + 1>;
};
template <class X, class Y>
struct BatchOf<Example<X, Y>> {
  using type = Example<typename BatchOf<X>::type, typename BatchOf<Y>::type>;
};
template <class... Ts>
struct BatchOf<std::tuple<Ts...>> {
  using type = std::tuple<typename BatchOf<Ts>::type...>;
};
template <class S>
using batch_t = typename BatchOf<S>::type;

// Calls f(tensor) for each tensor of a sample or batch, in declaration order.
template <class T, int R, class F>
void for_each_tensor(Tensor<T, R>& t, F&& f) {
  f(t);
}
template <class X, class Y, class F>
void for_each_tensor(Example<X, Y>& e, F&& f) {
  for_each_tensor(e.data, f);
  for_each_tensor(e.target, f);
}
template <class... Ts, class F>
void for_each_tensor(std::tuple<Ts...>& t, F&& f) {
  std::apply([&](auto&... part) { (for_each_tensor(part, f), ...); }, t);
}

// Calls f(sample_part, batch_part) for matching tensors of a sample and its batch.
template <class T, int R, class F>
void zip_tensors(const Tensor<T, R>& s, Tensor<T, R + 1>& b, F&& f) {
  f(s, b);
}
template <class X, class Y, class BX, class BY, class F>
void zip_tensors(const Example<X, Y>& s, Example<BX, BY>& b, F&& f) {
  zip_tensors(s.data, b.data, f);
  zip_tensors(s.target, b.target, f);
}
template <class... Ts, class... Bs, class F>
void zip_tensors(const std::tuple<Ts...>& s, std::tuple<Bs...>& b, F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) { (zip_tensors(std::get<I>(s), std::get<I>(b), f), ...); }
  (std::index_sequence_for<Ts...>{});
}

// Host memory for a batch tensor: plain (default) or pinned for asynchronous copies.
using HostAllocator = std::function<Storage(std::size_t bytes)>;

namespace detail {

inline Storage host_storage(const HostAllocator& alloc, std::size_t bytes) {
  return alloc ? alloc(bytes) : make_storage(bytes, kCPU);
}

// Copies one sample tensor (any device, any strides) into row `row` of a contiguous host batch.
template <class T, int R>
void copy_row(const Tensor<T, R>& sample, Tensor<T, R + 1>& batch, index_t row, index_t index) {
  Shape<R> expected;
  for (int d = 0; d < R; ++d) expected[d] = batch.shape()[d + 1];
  if (sample.shape() != expected)
    fail("DataLoader", "sample ", index, " has shape ", to_string(sample.shape()), " but the batch's first sample has ",
         to_string(expected), "; samples of one batch must have equal shapes (pad them or use batch_size 1)");
  const std::size_t bytes = static_cast<std::size_t>(sample.numel()) * sizeof(T);
  Tensor<T, R> src = sample.contiguous();
  cuda::copy_bytes(batch.data() + row * sample.numel(), kCPU, src.data(), src.device(), bytes);
}

// A new contiguous host tensor of src's rows at `indices` (one memcpy a row on the host).
template <class T, int R>
Tensor<T, R> gather_rows(const Tensor<T, R>& src, std::span<const index_t> indices, const HostAllocator& alloc) {
  static_assert(R > 0, "ft::data: rows are taken along the first dimension, so tensors need rank >= 1");
  Shape<R> shape = src.shape();
  const index_t n = static_cast<index_t>(indices.size());
  shape[0] = n;
  Storage storage = host_storage(alloc, static_cast<std::size_t>(shape.numel()) * sizeof(T));
  Tensor<T, R> out(storage, static_cast<T*>(storage->data()), shape, contiguous_strides(shape));
  const index_t row = n ? shape.numel() / n : 0;
  const std::size_t row_bytes = static_cast<std::size_t>(row) * sizeof(T);
  if (src.device().is_cpu() && src.is_contiguous()) {
    for (index_t i = 0; i < n; ++i)
      std::memcpy(out.data() + i * row, src.data() + indices[static_cast<std::size_t>(i)] * row, row_bytes);
  } else {
    for (index_t i = 0; i < n; ++i) {
      Tensor<T, R - 1> s = src.select(0, indices[static_cast<std::size_t>(i)]).contiguous();
      cuda::copy_bytes(out.data() + i * row, kCPU, s.data(), s.device(), row_bytes);
    }
  }
  return out;
}

}  // namespace detail

// Stacks samples into one host batch (torch.utils.data.default_collate for tensors).
template <class S>
batch_t<S> collate(std::span<const S> samples, std::span<const index_t> indices, const HostAllocator& alloc = {}) {
  check(!samples.empty(), "collate", "no samples to stack");
  batch_t<S> batch;
  const index_t n = static_cast<index_t>(samples.size());
  zip_tensors(samples[0], batch, [&]<class T, int R>(const Tensor<T, R>& first, Tensor<T, R + 1>& b) {
    Shape<R + 1> shape;
    shape[0] = n;
    for (int d = 0; d < R; ++d) shape[d + 1] = first.shape()[d];
    Storage storage = detail::host_storage(alloc, static_cast<std::size_t>(shape.numel()) * sizeof(T));
    b = Tensor<T, R + 1>(storage, static_cast<T*>(storage->data()), shape, contiguous_strides(shape));
  });
  for (index_t i = 0; i < n; ++i)
    zip_tensors(samples[static_cast<std::size_t>(i)], batch,
                [&]<class T, int R>(const Tensor<T, R>& s, Tensor<T, R + 1>& b) {
                  detail::copy_row(s, b, i, indices[static_cast<std::size_t>(i)]);
                });
  return batch;
}

namespace detail {
// SplitMix64's finaliser: every bit of z reaches every bit of the result.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace detail

// The seed of sample `index`'s random transforms in an epoch: a function of (seed, epoch, index)
// alone, so augmentation is the same whatever the number of workers and the batch order.
struct EpochSeed {
  std::uint64_t seed = 0, epoch = 0;
  std::uint64_t for_sample(index_t index) const {
    return detail::mix64(seed ^ (epoch * 0xD1B54A32D192ED03ull) ^
                         (static_cast<std::uint64_t>(index) * 0x9E3779B97F4A7C15ull));
  }
};

// A dataset whose samples take a seed (random transforms): the loader calls get(i, seed), with
// the seed from EpochSeed::for_sample; get(i) alone is epoch 0 of seed 0.
template <class D>
concept SeededDataset = Dataset<D> && requires(const D& d, index_t i, std::uint64_t s) {
  { d.get(i, s) } -> std::same_as<sample_t<D>>;
};

// Sample i of a dataset, with its seed when the dataset takes one.
template <Dataset D>
sample_t<D> get_sample(const D& dataset, index_t i, const EpochSeed& seed) {
  if constexpr (SeededDataset<D>)
    return dataset.get(i, seed.for_sample(i));
  else
    return dataset.get(i);
}

// A dataset may gather a whole batch itself (PyTorch's __getitems__): then the loader calls it.
template <class D>
concept BatchedDataset = Dataset<D> && requires(const D& d, std::span<const index_t> idx, const HostAllocator& a) {
  { d.get_batch(idx, a) } -> std::same_as<batch_t<sample_t<D>>>;
};

template <Dataset D>
batch_t<sample_t<D>> get_batch(const D& dataset, std::span<const index_t> indices, const HostAllocator& alloc = {},
                               const EpochSeed& seed = {}) {
  if constexpr (BatchedDataset<D> && !SeededDataset<D>) {
    return dataset.get_batch(indices, alloc);
  } else {
    std::vector<sample_t<D>> samples;
    samples.reserve(indices.size());
    for (index_t i : indices) samples.push_back(get_sample(dataset, i, seed));
    return collate(std::span<const sample_t<D>>(samples), indices, alloc);
  }
}

// ---- TensorDataset: samples are rows of tensors that share their first dimension ----

template <class... Tensors>
class TensorDataset {
  static_assert(sizeof...(Tensors) > 0, "ft::data::TensorDataset needs at least one tensor");

 public:
  using sample_type = std::tuple<decltype(std::declval<Tensors>().select(0, 0))...>;

  explicit TensorDataset(Tensors... tensors) : tensors_(std::move(tensors)...) {
    index_t n = std::get<0>(tensors_).size(0);
    std::apply(
        [&](const auto&... t) {
          if (((t.size(0) != n) || ...)) {
            std::string shapes;
            ((shapes += (shapes.empty() ? "" : ", ") + to_string(t.shape())), ...);
            fail("TensorDataset", "tensors must have the same first dimension, got ", shapes);
          }
        },
        tensors_);
  }
  index_t size() const { return std::get<0>(tensors_).size(0); }
  sample_type get(index_t i) const {
    check(i >= 0 && i < size(), "TensorDataset", "index ", i, " is out of range for a dataset of ", size(), " samples");
    return std::apply([&](const auto&... t) { return sample_type(t.select(0, i)...); }, tensors_);
  }
  // One row copy per tensor and sample, straight into the batch (no per-sample tensors).
  batch_t<sample_type> get_batch(std::span<const index_t> indices, const HostAllocator& alloc = {}) const {
    batch_t<sample_type> batch;
    for (index_t i : indices)
      check(i >= 0 && i < size(), "TensorDataset", "index ", i, " is out of range for a dataset of ", size(),
            " samples");
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((std::get<I>(batch) = detail::gather_rows(std::get<I>(tensors_), indices, alloc)), ...);
    }
    (std::index_sequence_for<Tensors...>{});
    return batch;
  }
  const std::tuple<Tensors...>& tensors() const { return tensors_; }

 private:
  std::tuple<Tensors...> tensors_;
};

// ---- Subset and random_split ----

// The samples of `dataset` at `indices` (shared, so copies are cheap).
template <Dataset D>
class Subset {
 public:
  Subset(D dataset, std::vector<index_t> indices)
      : dataset_(std::move(dataset)), indices_(std::make_shared<const std::vector<index_t>>(std::move(indices))) {
    const index_t n = dataset_.size();
    for (index_t i : *indices_)
      check(i >= 0 && i < n, "Subset", "index ", i, " is out of range for a dataset of ", n, " samples");
  }
  index_t size() const { return static_cast<index_t>(indices_->size()); }
  sample_t<D> get(index_t i) const {
    check(i >= 0 && i < size(), "Subset", "index ", i, " is out of range for a subset of ", size(), " samples");
    return dataset_.get((*indices_)[static_cast<std::size_t>(i)]);
  }
  // The seed of the subset's sample i goes to the dataset's sample it maps to.
  sample_t<D> get(index_t i, std::uint64_t seed) const requires SeededDataset<D> {
    check(i >= 0 && i < size(), "Subset", "index ", i, " is out of range for a subset of ", size(), " samples");
    return dataset_.get((*indices_)[static_cast<std::size_t>(i)], seed);
  }
  batch_t<sample_t<D>> get_batch(std::span<const index_t> indices, const HostAllocator& alloc = {}) const {
    std::vector<index_t> mapped;
    mapped.reserve(indices.size());
    for (index_t i : indices) {
      check(i >= 0 && i < size(), "Subset", "index ", i, " is out of range for a subset of ", size(), " samples");
      mapped.push_back((*indices_)[static_cast<std::size_t>(i)]);
    }
    return data::get_batch(dataset_, std::span<const index_t>(mapped), alloc);
  }
  const D& dataset() const { return dataset_; }
  const std::vector<index_t>& indices() const { return *indices_; }

 private:
  D dataset_;
  std::shared_ptr<const std::vector<index_t>> indices_;
};

namespace detail {

// SplitMix64: a fixed, portable sequence (std::uniform_int_distribution differs between
// standard libraries, so shuffles would not reproduce across compilers).
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() { return mix64(state += 0x9E3779B97F4A7C15ull); }
  // Uniform in [0, n) without modulo bias (Lemire's multiply-and-reject).
  std::uint64_t below(std::uint64_t n) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }
};

}  // namespace detail

// A permutation of 0..n-1 determined by `seed` alone (Fisher-Yates).
inline std::vector<index_t> randperm(index_t n, std::uint64_t seed) {
  check(n >= 0, "randperm", "n must be non-negative, got ", n);
  std::vector<index_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), index_t{0});
  detail::SplitMix64 rng{seed};
  for (std::size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  return p;
}

// Splits a dataset into non-overlapping random subsets of the given lengths, or of the given
// fractions (summing to 1; remainders go round-robin to the first subsets, as PyTorch).
template <Dataset D>
std::vector<Subset<D>> random_split(const D& dataset, const std::vector<double>& lengths, std::uint64_t seed) {
  const index_t n = dataset.size();
  check(!lengths.empty(), "random_split", "no lengths given");
  std::vector<index_t> counts;
  double total = 0;
  for (double l : lengths) {
    check(l >= 0, "random_split", "lengths must be non-negative, got ", l);
    total += l;
  }
  if (std::abs(total - 1.0) < 1e-9 && n != 1) {
    index_t assigned = 0;
    for (double f : lengths) counts.push_back(static_cast<index_t>(std::floor(f * static_cast<double>(n))));
    for (index_t c : counts) assigned += c;
    for (std::size_t i = 0; assigned < n; i = (i + 1) % counts.size(), ++assigned) ++counts[i];
  } else {
    for (double l : lengths) {
      check(l == std::floor(l), "random_split", "lengths must be whole numbers or fractions summing to 1, got ", l);
      counts.push_back(static_cast<index_t>(l));
    }
    check(static_cast<index_t>(total) == n, "random_split", "the lengths sum to ", total, " but the dataset has ", n,
          " samples");
  }
  std::vector<index_t> perm = randperm(n, seed);
  std::vector<Subset<D>> parts;
  index_t begin = 0;
  for (index_t c : counts) {
    parts.emplace_back(dataset, std::vector<index_t>(perm.begin() + begin, perm.begin() + begin + c));
    begin += c;
  }
  return parts;
}

}  // namespace ft::inline FT_ABI::data
