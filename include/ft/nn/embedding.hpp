// Embedding lookup (torch.nn.functional.embedding and nn.Embedding). The forward is one gather
// launch that also checks the indices: a bad one is reported through the device's report word
// (cuda::report) and thrown as an ft::Error at once on the CPU, at the next synchronisation on
// a GPU, so a training step never waits for the check. The backward sums the gradient rows of
// each index after sorting the indices with their positions (a counting sort on the CPU, CUB's
// stable radix sort on a GPU): deterministic, no atomics, no host synchronisation.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ft/autograd/function.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/generator.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/module.hpp"
#include "ft/ops/elementwise.hpp"

#if FT_CUDA_KERNELS
#include <cub/device/device_radix_sort.cuh>
#endif

namespace ft::inline FT_ABI::nn {

namespace detail {
// Element i of the output [n, dim]: weight[idx[i / dim], i % dim]; an index outside [0, V)
// reports `code` and reads as 0.
template <class T>
struct EmbeddingGather {
  const std::int64_t* idx;
  const T* weight;
  index_t dim, V;
  int* report_word;
  int code;
  FT_HD FT_INLINE T operator()(index_t i) const {
    const std::int64_t v = idx[i / dim];
    if (v < 0 || v >= V) {
      cuda::report(report_word, code, v);
      return T(0);
    }
    return weight[v * dim + i % dim];
  }
};
// offsets[v] for v in [0, V]: the first position of the sorted indices holding v or more
// (a binary search); the positions reading row v are then sorted_pos[offsets[v] .. offsets[v+1]).
struct EmbeddingOffsets {
  const std::int64_t* sorted;
  index_t n;
  FT_HD FT_INLINE std::int64_t operator()(index_t v) const {
    index_t lo = 0, hi = n;
    while (lo < hi) {
      const index_t mid = lo + (hi - lo) / 2;
      if (sorted[mid] < v)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }
};
// Row v of the weight's gradient: Σ over the positions p that read row v of g[p, :], in
// increasing p (the sorts are stable); the padding row gets none. Deterministic, no atomics.
template <class T>
struct EmbeddingGradRows {
  const std::int64_t* offsets;
  const std::int64_t* positions;
  const T* g;
  index_t dim;
  std::int64_t pad;  // −1: none
  FT_HD FT_INLINE T operator()(index_t i) const {
    using C = compute_t<T>;  // a two-byte gradient summed in float, rounded once
    const index_t v = i / dim, d = i % dim;
    C s = C(0);
    if (v == pad) return static_cast<T>(s);
    for (std::int64_t k = offsets[v]; k < offsets[v + 1]; ++k) s += static_cast<C>(g[positions[k] * dim + d]);
    return static_cast<T>(s);
  }
};

#if FT_CUDA_ENABLED
// Sorts n indices with their positions 0..n−1 (stable: equal indices keep increasing
// positions), on the device's current stream: CUB's radix sort over all 64 bits.
struct EmbeddingSortKernel {
  static void launch(const std::int64_t* keys, std::int64_t* sorted_keys, std::int64_t* sorted_pos, int n, Device d);
};
#if FT_CUDA_KERNELS
inline void EmbeddingSortKernel::launch(const std::int64_t* keys, std::int64_t* sorted_keys, std::int64_t* sorted_pos,
                                        int n, Device d) {
  cuda::DeviceGuard guard(d);
  cudaStream_t stream = cuda::current_stream();
  Tensor<std::int64_t, 1> positions = ft::arange<std::int64_t>(n, d);
  std::size_t temp_bytes = 0;
  FT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys, sorted_keys, positions.data(), sorted_pos, n,
                                                0, 64, stream));
  Tensor<std::uint8_t, 1> temp(Shape<1>{static_cast<index_t>(temp_bytes) + 1}, d);
  FT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, keys, sorted_keys, positions.data(),
                                                sorted_pos, n, 0, 64, stream));
}
#endif
#endif

// The positions 0..n−1 of `idx` grouped by index value (stable) and the offsets [V + 1] of each
// value's group, on idx's device. Bad indices (reported by the forward) fall in no group.
inline std::pair<Tensor<std::int64_t, 1>, Tensor<std::int64_t, 1>> group_positions(const std::int64_t* idx, index_t n,
                                                                                   index_t V, Device dev) {
  if (dev.is_cpu()) {
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(V) + 1, 0), positions;
    positions.reserve(static_cast<std::size_t>(n));
    for (index_t p = 0; p < n; ++p)
      if (idx[p] >= 0 && idx[p] < V) ++offsets[static_cast<std::size_t>(idx[p]) + 1];
    for (index_t v = 0; v < V; ++v) offsets[v + 1] += offsets[v];
    positions.resize(static_cast<std::size_t>(offsets[V]));
    std::vector<std::int64_t> next(offsets.begin(), offsets.end() - 1);
    for (index_t p = 0; p < n; ++p)
      if (idx[p] >= 0 && idx[p] < V) positions[static_cast<std::size_t>(next[idx[p]]++)] = p;
    if (positions.empty()) positions.push_back(0);
    return {ft::from_vector(offsets, {V + 1}, dev),
            ft::from_vector(positions, {static_cast<index_t>(positions.size())}, dev)};
  }
#if FT_CUDA_ENABLED
  check(n <= std::numeric_limits<int>::max(), "Embedding", "the backward sorts at most 2^31 − 1 indices, got ", n);
  Tensor<std::int64_t, 1> sorted(Shape<1>{n}, dev), positions(Shape<1>{n}, dev);
  stats::detail::record_launch(dev);
  cuda::launch_kernel<EmbeddingSortKernel>("Embedding", idx, sorted.data(), positions.data(), static_cast<int>(n), dev);
  Tensor<std::int64_t, 1> offsets(Shape<1>{V + 1}, dev);
  offsets = Generator<EmbeddingOffsets, 1>({sorted.data(), n}, Shape<1>{V + 1}, dev);
  return {offsets, positions};
#else
  cuda::require_device(dev, "Embedding");
  return {};
#endif
}
}  // namespace detail

namespace functional {

// The rows of `weight` [num_embeddings, embedding_dim] that `indices` [...] name:
// [..., embedding_dim]. Rows at padding_idx get no gradient. One gather launch, which checks
// the indices (see the top of this file); the backward does not wait for the host either.
template <class T, int R>
Var<T, R + 1> embedding(const Tensor<std::int64_t, R>& indices, const Var<T, 2>& weight,
                        std::optional<std::int64_t> padding_idx = std::nullopt) {
  const Device dev = weight.device();
  check(indices.device() == dev, "Embedding", "indices on ", indices.device(), " and weight on ", dev);
  const index_t V = weight.size(0), D = weight.size(1);
  Tensor<std::int64_t, R> idx = indices.contiguous();
  Shape<R + 1> os;
  for (int d = 0; d < R; ++d) os[d] = idx.size(d);
  os[R] = D;
  Tensor<T, 2> w = weight.value().contiguous();
  Tensor<T, R + 1> out(os, dev);
  const int code = cuda::check_code(ft::detail::concat("Embedding: an index of the indices ", to_string(idx.shape()),
                                                       " is out of range for ", V, " embeddings"));
  out = Generator<ft::nn::detail::EmbeddingGather<T>, R + 1>({idx.data(), w.data(), D, V, cuda::report_word(dev), code},
                                                             os, dev);  // a CPU statement raises its reports as it ends
  auto bwd = [wv = weight, idx, V, D, pad = padding_idx](const Tensor<T, R + 1>& g) {
    const Device d = g.device();
    auto [offsets, positions] = ft::nn::detail::group_positions(idx.data(), idx.numel(), V, d);
    Tensor<T, R + 1> gc = g.contiguous();
    wv.state().accumulate(Generator<ft::nn::detail::EmbeddingGradRows<T>, 2>(
        {offsets.data(), positions.data(), gc.data(), D, pad ? *pad : std::int64_t(-1)}, Shape<2>{V, D}, d));
  };
  auto result = autograd::record("embedding", out, std::move(bwd), weight);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "Gather", {autograd::trace::name(s, weight), autograd::trace::name(s, indices)},
                              result);
  });
  return result;
}

}  // namespace functional

// A lookup table [num_embeddings, embedding_dim] ~ N(0, 1), padding_idx's row zero and
// without gradient.
template <class T = float>
class Embedding : public Module<Embedding<T>> {
 public:
  Var<T, 2> weight;
  std::optional<std::int64_t> padding_idx;

  Embedding() = default;
  Embedding(index_t num_embeddings, index_t embedding_dim, std::optional<std::int64_t> padding = std::nullopt,
            Device device = kCPU) {
    if (padding && *padding < 0) padding = *padding + num_embeddings;
    check(!padding || (*padding >= 0 && *padding < num_embeddings), "Embedding", "padding_idx must be within [",
          -num_embeddings, ", ", num_embeddings, ")");
    padding_idx = padding;
    Tensor<T, 2> w(Shape<2>{num_embeddings, embedding_dim}, device);
    init::normal_(w);
    if (padding) w.select(0, *padding) = T(0);
    weight = Var<T, 2>(w, requires_grad);
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }

  // indices [...] → [..., embedding_dim] (functional::embedding)
  template <int R>
  Var<T, R + 1> forward(const Tensor<std::int64_t, R>& indices) {
    return functional::embedding(indices, weight, padding_idx);
  }
};

}  // namespace ft::inline FT_ABI::nn
