// Embedding lookup (torch.nn.functional.embedding and nn.Embedding): the forward is one gather
// launch; the backward sums the gradient rows of each index after a counting sort of the
// indices on the host, so it is one launch, deterministic, without atomics.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ft/autograd/function.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/generator.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/module.hpp"
#include "ft/ops/elementwise.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {
template <class T>
struct EmbeddingGather {
  const std::int64_t* idx;
  const T* weight;
  index_t dim;
  FT_HD FT_INLINE T operator()(index_t i) const { return weight[idx[i / dim] * dim + i % dim]; }
};
// Row v of the weight's gradient: Σ over the positions p that read row v of g[p, :];
// positions[offsets[v] .. offsets[v+1]) lists them (a counting sort of the indices).
// Deterministic, no atomics.
template <class T>
struct EmbeddingGradRows {
  const std::int64_t* offsets;
  const std::int64_t* positions;
  const T* g;
  index_t dim;
  FT_HD FT_INLINE T operator()(index_t i) const {
    const index_t v = i / dim, d = i % dim;
    T s = T(0);
    for (std::int64_t k = offsets[v]; k < offsets[v + 1]; ++k) s += g[positions[k] * dim + d];
    return s;
  }
};
}  // namespace detail

namespace functional {

// The rows of `weight` [num_embeddings, embedding_dim] that `indices` [...] name:
// [..., embedding_dim]. Rows at padding_idx get no gradient. One gather launch; the backward
// is one launch after a counting sort of the indices on the host.
template <class T, int R>
Var<T, R + 1> embedding(const Tensor<std::int64_t, R>& indices, const Var<T, 2>& weight,
                        std::optional<std::int64_t> padding_idx = std::nullopt) {
  const Device dev = weight.device();
  check(indices.device() == dev, "Embedding", "indices on ", indices.device(), " and weight on ", dev);
  const index_t V = weight.size(0), D = weight.size(1);
  Tensor<std::int64_t, R> idx = indices.contiguous();
  if (idx.numel() > 0) {
    const bool bad = ft::any(ft::logical_or(idx < std::int64_t(0), idx >= static_cast<std::int64_t>(V))).item();
    check(!bad, "Embedding", "an index of ", to_string(idx.shape()), " is out of range for ", V, " embeddings");
  }
  Shape<R + 1> os;
  for (int d = 0; d < R; ++d) os[d] = idx.size(d);
  os[R] = D;
  Tensor<T, 2> w = weight.value().contiguous();
  Tensor<T, R + 1> out(os, dev);
  out = Generator<ft::nn::detail::EmbeddingGather<T>, R + 1>({idx.data(), w.data(), D}, os, dev);
  auto bwd = [wv = weight, idx, V, D, pad = padding_idx](const Tensor<T, R + 1>& g) {
    // counting sort of the indices (host): offsets [V + 1], positions [n]
    std::vector<std::int64_t> host = idx.to(kCPU).to_vector();
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(V) + 1, 0), positions(host.size());
    for (std::int64_t v : host)
      if (!pad || v != *pad) ++offsets[static_cast<std::size_t>(v) + 1];
    for (index_t v = 0; v < V; ++v) offsets[v + 1] += offsets[v];
    std::vector<std::int64_t> next(offsets.begin(), offsets.end() - 1);
    for (std::size_t p = 0; p < host.size(); ++p)
      if (!pad || host[p] != *pad) positions[static_cast<std::size_t>(next[host[p]]++)] = static_cast<std::int64_t>(p);
    const Device d = g.device();
    auto off = ft::from_vector(offsets, {V + 1}, d);
    auto pos = ft::from_vector(positions.empty() ? std::vector<std::int64_t>{0} : positions,
                               {positions.empty() ? index_t(1) : static_cast<index_t>(positions.size())}, d);
    Tensor<T, R + 1> gc = g.contiguous();
    wv.state().accumulate(
        Generator<ft::nn::detail::EmbeddingGradRows<T>, 2>({off.data(), pos.data(), gc.data(), D}, Shape<2>{V, D}, d));
  };
  return autograd::record("embedding", out, std::move(bwd), weight);
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
