// Attention and the Transformer, as PyTorch's: scaled_dot_product_attention,
// nn::MultiheadAttention, nn::TransformerEncoderLayer, nn::TransformerEncoder,
// nn::TransformerDecoderLayer, nn::TransformerDecoder, nn::Transformer and the causal mask helper
// generate_square_subsequent_mask.
//
// scaled_dot_product_attention is one fused operation (linalg/flash.hpp: FlashAttention's
// blockwise online softmax; the [.., L, S] scores are never stored, memory O(L·E)): one launch
// forward, one (CPU) or two (CUDA) backward, which recomputes the probabilities block by block.
// A mask that requires a gradient, or head dims above 128 on CUDA, take the composed path (a
// batched GEMM, a row-wise softmax, a batched GEMM: the scores materialised). On a GPU, half
// and bfloat16 calls without dropout go to cuDNN's fused attention where it takes them
// (nn/sdpa_cudnn.hpp; CMake builds with cuDNN and its frontend).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/linalg/flash.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/linalg/rowwise.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/layers.hpp"
#include "ft/nn/module.hpp"
#include "ft/nn/sdpa_cudnn.hpp"
#include "ft/ops/comparison.hpp"

namespace ft::inline FT_ABI {

// No attention mask.
struct NoMask {
  static constexpr int rank = 0;
};

struct SdpaOptions {
  double dropout_p = 0.0;
  bool is_causal = false;
  std::optional<double> scale{};  // 1/√E when not given
  std::uint64_t seed = 0;         // the dropout mask's (0: ft::next_seed())
};

namespace attention {

// The causal mask's "keep" [L, S]: key j ≤ query i (torch.ones(L, S).tril()).
inline Tensor<bool, 2> causal_keep(index_t L, index_t S, Device dev) {
  return arange<std::int64_t>(0, L, 1, dev).reshape(Shape<2>{L, 1}) >=
         arange<std::int64_t>(0, S, 1, dev).reshape(Shape<2>{1, S});
}

// softmax over the keys of scores s [.., L, S] with `mask` applied: a bool mask keeps the
// entries where it is true (scaled_dot_product_attention's convention), a floating one is added.
template <class T, int R, class M>
Var<T, R> masked_softmax(Var<T, R> s, const M& mask, bool causal) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  if constexpr (!std::is_same_v<M, NoMask>) {
    if (mask.defined()) {
      if constexpr (std::is_same_v<typename M::value_type, bool>)
        s = where(mask, s, neg_inf);
      else
        s = s + mask;
    }
  }
  if (causal) s = where(causal_keep(s.size(R - 2), s.size(R - 1), s.device()), s, neg_inf);
  return softmax(s, R - 1);
}

}  // namespace attention

namespace attention {

// softmax(q·kᵀ·scale + mask)·v composed from matmul, softmax and matmul (the scores stored).
template <class T, int R, class M>
Var<T, R> composed(const Var<T, R>& q, const Var<T, R>& k, const Var<T, R>& v, const M& attn_mask, double scale,
                   const SdpaOptions& options) {
  // the leading dims folded into one batch dim (matmul's batch): [B, L, E] and so on
  auto fold = [](const auto& x) {
    if constexpr (std::decay_t<decltype(x)>::rank == 2)
      return x.unsqueeze(0);
    else
      return x.reshape({-1, x.size(R - 2), x.size(R - 1)});
  };
  const Var<T, 3> q3 = fold(q), k3 = fold(k), v3 = fold(v);
  Var<T, 3> s = matmul(q3, k3.transpose(1, 2)) * scale;
  Var<T, 3> p;
  if constexpr (std::is_same_v<M, NoMask> || M::rank <= 2) {
    p = masked_softmax(s, attn_mask, options.is_causal);
  } else {
    // the mask broadcast to the scores' shape, then folded as they are
    Shape<R> full = q.shape();
    full[R - 1] = k.size(R - 2);
    using MT = typename M::value_type;
    using MV = std::conditional_t<ft::detail::is_var<M>::value, Var<MT, 3>, Tensor<MT, 3>>;
    MV m3;
    if (attn_mask.defined()) {
      if constexpr (ft::detail::is_var<M>::value) {
        const Var<MT, R> whole = attn_mask + zeros<MT>(full, q.device());
        m3 = whole.reshape({-1, full[R - 2], full[R - 1]});
      } else {
        Tensor<MT, R> whole(full, q.device());
        std::move(whole) = attn_mask;  // written, broadcast (not rebound)
        m3 = whole.reshape(Shape<3>{whole.numel() / (full[R - 2] * full[R - 1]), full[R - 2], full[R - 1]});
      }
    }
    p = masked_softmax(s, m3, options.is_causal);
  }
  if (options.dropout_p > 0)
    p = nn::functional::dropout(p, options.dropout_p, true, options.seed ? options.seed : next_seed());
  Var<T, 3> o = matmul(p, v3);
  Shape<R> out_shape = q.shape();
  out_shape[R - 1] = v.size(R - 1);
  if constexpr (R == 2) {
    return o.squeeze(0);
  } else {
    out_shape[0] = -1;  // the batch's share, as the fold above (so a traced graph follows the batch)
    return [&]<std::size_t... I>(std::index_sequence<I...>) { return o.reshape({out_shape[I]...}); }
    (std::make_index_sequence<R>{});
  }
}

// ---- the fused path ----

// x's values as C, with unit column stride and rows that do not overlap (what a GEMM reads):
// x itself when it is so already, else a copy.
template <class C, class T, int R>
Tensor<C, R> operand(const Tensor<T, R>& x) {
  Tensor<C, R> y;
  if constexpr (std::is_same_v<T, C>)
    y = x;
  else
    y = Tensor<C, R>(cast<C>(x));
  const index_t rows = y.size(R - 2), cols = y.size(R - 1);
  const bool ok = (cols <= 1 || y.stride(R - 1) == 1) && (rows <= 1 || y.stride(R - 2) >= cols);
  return ok ? y : y.contiguous();
}

// The kernels' view of an operand of operand()'s layout.
template <class C, int R>
linalg::flash::Strided rows_of(const Tensor<C, R>& x) {
  linalg::flash::Strided s = linalg::flash::strided(x, x.shape());
  if (x.size(R - 2) <= 1) s.row = std::max<index_t>(x.size(R - 1), 1);  // unread; a valid leading dimension
  return s;
}

// A new tensor of `shape` whose dims are laid out in the order of like's strides (as
// torch.empty_like's preserve_format), so that an output of a head split is its heads' merge.
template <class C, class T, int R>
Tensor<C, R> empty_in_layout(const Shape<R>& shape, const Tensor<T, R>& like) {
  int order[R];
  for (int d = 0; d < R; ++d) order[d] = d;
  std::stable_sort(order, order + R, [&](int a, int b) { return like.stride(a) > like.stride(b); });
  if (order[R - 1] != R - 1) return Tensor<C, R>(shape, like.device());
  Shape<R> stored;
  int inverse[R];
  for (int d = 0; d < R; ++d) stored[d] = shape[order[d]], inverse[order[d]] = d;
  return Tensor<C, R>(stored, like.device()).permute(inverse);
}

// The mask types the kernels read in place: none, or a tensor (bool, or floating read as C).
template <class M>
struct KernelMask {
  static constexpr bool fusable = false;
};
template <>
struct KernelMask<NoMask> {
  static constexpr bool fusable = true;
  template <class C>
  using type = linalg::flash::NoMask;
  template <class C>
  using tensor = Tensor<bool, 1>;  // unused
};
template <class MT, int RM>
struct KernelMask<Tensor<MT, RM>> {
  static constexpr bool fusable = true;
  template <class C>
  using type = std::conditional_t<std::is_same_v<MT, bool>, bool, C>;
  template <class C>
  using tensor = Tensor<type<C>, RM>;
};

// The fused operation's node: the forward kernel now; its backward recomputes the blocks from the
// saved log-sum-exps. T's two-byte types run in float (compute_t).
template <class T, int R, class M>
Var<T, R> fused(const Var<T, R>& q, const Var<T, R>& k, const Var<T, R>& v, const M& attn_mask, double scale,
                const SdpaOptions& options) {
  using C = compute_t<T>;
  using KM = typename KernelMask<M>::template type<C>;
  constexpr bool has_mask = !std::is_same_v<M, NoMask>;
  const Device dev = q.device();
  const index_t L = q.size(R - 2), S = k.size(R - 2), E = q.size(R - 1), Ev = v.size(R - 1);
  Shape<R> full = q.shape();  // the scores' shape [.., L, S]
  full[R - 1] = S;
  // the mask as the kernel reads it: its own values (a floating one as C), broadcast in place
  typename KernelMask<M>::template tensor<C> mask;
  if constexpr (has_mask) {
    if (attn_mask.defined()) {
      constexpr int RM = M::rank;
      static_assert(RM <= R, "ft::scaled_dot_product_attention: attn_mask has more dims than the scores");
      bool fits = attn_mask.device() == dev;
      for (int d = 0; d < RM; ++d) fits = fits && (attn_mask.size(d) == 1 || attn_mask.size(d) == full[R - RM + d]);
      check(fits, "scaled_dot_product_attention", "attn_mask ", to_string(attn_mask.shape()), " on ",
            attn_mask.device(), " does not broadcast to the scores ", to_string(full), " on ", dev);
      if constexpr (std::is_same_v<typename M::value_type, KM>)
        mask = attn_mask;
      else
        mask = Tensor<KM, RM>(cast<KM>(attn_mask));
    }
  }
  index_t B = 1;  // the leading dims, folded
  for (int d = 0; d < R - 2; ++d) B *= q.size(d);
  const double p_drop = options.dropout_p;
  const std::uint64_t seed = p_drop > 0 ? (options.seed ? options.seed : next_seed()) : 0;
  // the problem over operands of operand()'s layout
  auto problem = [=](const Tensor<C, R>& qc, const Tensor<C, R>& kc, const Tensor<C, R>& vc) {
    linalg::flash::Problem<C, KM> p;
    p.q = qc.data(), p.k = kc.data(), p.v = vc.data();
    p.qs = rows_of(qc), p.ks = rows_of(kc), p.vs = rows_of(vc);
    if constexpr (has_mask) {
      if (mask.defined()) p.mask = mask.data(), p.ms = linalg::flash::strided(mask, full);
    }
    p.B = B;
    p.L = L, p.S = S, p.E = E, p.Ev = Ev;
    p.scale = static_cast<C>(scale);
    p.causal = options.is_causal;
    p.drop_p = p_drop >= 1 ? 2.0f : static_cast<float>(p_drop);
    p.drop_scale = p_drop > 0 && p_drop < 1 ? static_cast<C>(1.0 / (1.0 - p_drop)) : C(p_drop > 0 ? 0 : 1);
    p.seed = seed;
    return p;
  };
  const Tensor<C, R> qc = operand<C>(q.value()), kc = operand<C>(k.value()), vc = operand<C>(v.value());
  Shape<R> out_shape = q.shape();
  out_shape[R - 1] = Ev;
  Tensor<C, R> o = empty_in_layout<C>(out_shape, qc);
  Tensor<C, 2> lse(Shape<2>{B, L}, dev);
  linalg::flash::forward(dev, problem(qc, kc, vc), o.data(), rows_of(o), lse.data());
  Tensor<T, R> out;
  if constexpr (std::is_same_v<T, C>)
    out = o;
  else
    out = Tensor<T, R>(cast<T>(o));
  auto bwd = [=](const Tensor<T, R>& g) {
    const Tensor<C, R> gc = operand<C>(g);
    const Tensor<C, R - 1> delta = sum(gc * o, R - 1);  // Σ dout·o per query: one launch
    const Tensor<C, R> qb = operand<C>(q.value()), kb = operand<C>(k.value()), vb = operand<C>(v.value());
    Tensor<C, R> dq(q.shape(), dev), dk(k.shape(), dev), dv(v.shape(), dev);
    linalg::flash::backward(dev, problem(qb, kb, vb), gc.data(), rows_of(gc), lse.data(), delta.data(), dq.data(),
                            dk.data(), dv.data());
    auto give = [](const Var<T, R>& x, Tensor<C, R>&& dx) {  // a first gradient is dx itself
      if (!x.requires_grad()) return;
      if constexpr (std::is_same_v<T, C>)
        x.state().accumulate(std::move(dx));
      else
        x.state().accumulate(cast<T>(dx));
    };
    give(q, std::move(dq)), give(k, std::move(dk)), give(v, std::move(dv));
  };
  return autograd::record("scaled_dot_product_attention", out, std::move(bwd), q, k, v);
}

#if FT_CUDNN_SDPA_ENABLED
// A tensor's [b, h, s, d] view for cuDNN (R ≤ 4: the dims before the last two are b and h, the
// missing ones 1), or empty when its last dim is not unit-stride. Unit dims get the stride they
// would have in a contiguous tensor (they are never stepped through).
template <int R>
std::optional<cudnn::View> view4(const index_t* size, const index_t* stride) {
  if (R < 2 || R > 4 || (size[R - 1] > 1 && stride[R - 1] != 1)) return std::nullopt;
  cudnn::View v;
  constexpr int lead = 4 - R;
  for (int i = 0; i < lead; ++i) v.dim[i] = 1;
  for (int d = 0; d < R; ++d) v.dim[lead + d] = size[d], v.stride[lead + d] = stride[d];
  for (int i = 3; i >= 0; --i)
    if (v.dim[i] == 1) v.stride[i] = i == 3 ? 1 : v.dim[i + 1] * v.stride[i + 1];
  return v;
}
template <class X, int R>
std::optional<cudnn::View> view4(const Tensor<X, R>& t) {
  index_t size[R], stride[R];
  for (int d = 0; d < R; ++d) size[d] = t.size(d), stride[d] = t.stride(d);
  return view4<R>(size, stride);
}

// The call through cuDNN's fused attention: half or bfloat16 operands of rank ≤ 4 on a GPU, no
// dropout, no mask or a mask of T whose last two dims are [L, S] and whose others are 1 or the
// batch's (cuDNN's bias), the switch on, and cuDNN taking the problem (in training, its
// backward too). Empty otherwise: the fused kernels run. One node: forward one execution,
// backward one (dq, dk, dv together; deterministic).
template <class T, int R, class M>
std::optional<Var<T, R>> cudnn_sdpa(const Var<T, R>& q, const Var<T, R>& k, const Var<T, R>& v, const M& attn_mask,
                                    double scale, const SdpaOptions& options) {
  constexpr bool has_mask = !std::is_same_v<M, NoMask>;
  if constexpr (!is_half_v<T> || R > 4) {
    return std::nullopt;
  } else if constexpr (has_mask && !std::is_same_v<M, Tensor<T, M::rank>>) {
    return std::nullopt;  // a bool mask, a mask of another type, or one that requires a gradient
  } else {
    const Device dev = q.device();
    if (!dev.is_cuda() || !cudnn_sdpa_enabled() || options.dropout_p > 0 || q.numel() == 0 || k.numel() == 0 ||
        v.numel() == 0)
      return std::nullopt;
    const index_t L = q.size(R - 2), S = k.size(R - 2);
    auto unit_rows = [](const Tensor<T, R>& x) {
      return x.stride(R - 1) == 1 || x.size(R - 1) == 1 ? x : x.contiguous();
    };
    const Tensor<T, R> qv = unit_rows(q.value()), kv = unit_rows(k.value()), vv = unit_rows(v.value());
    Shape<R> out_shape = q.shape();
    out_shape[R - 1] = v.size(R - 1);
    const Tensor<T, R> o = empty_in_layout<T>(out_shape, qv);
    cudnn::Problem p;
    p.device = dev.index;
    p.bfloat16 = std::is_same_v<T, bfloat16>;
    p.causal = options.is_causal;
    p.scale = static_cast<float>(scale);
    p.training = autograd::is_grad_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
    const auto vq = view4(qv), vk = view4(kv), vvv = view4(vv), vo = view4(o);
    if (!vq || !vk || !vvv || !vo) return std::nullopt;
    p.q = *vq, p.k = *vk, p.v = *vvv, p.o = *vo;
    Tensor<T, has_mask ? M::rank : 1> bias;
    if constexpr (has_mask) {
      constexpr int RM = M::rank;
      if (attn_mask.defined()) {
        if (RM < 2 || RM > R || attn_mask.device() != dev || attn_mask.size(RM - 2) != L || attn_mask.size(RM - 1) != S)
          return std::nullopt;
        for (int d = 0; d < RM - 2; ++d)
          if (attn_mask.size(d) != 1 && attn_mask.size(d) != q.size(R - RM + d)) return std::nullopt;
        bias = attn_mask.stride(RM - 1) == 1 ? attn_mask : attn_mask.contiguous();
        index_t size[R], stride[R];
        for (int d = 0; d < R; ++d) {
          const int m = d - (R - RM);  // the mask's dim, right-aligned
          size[d] = m < 0 ? 1 : bias.size(m);
          stride[d] = m < 0 ? 0 : bias.stride(m);
        }
        const auto vb = view4<R>(size, stride);
        if (!vb) return std::nullopt;
        p.has_bias = true, p.bias = *vb;
      }
    }
    const index_t rows = p.q.dim[0] * p.q.dim[1] * L;
    const Tensor<float, 1> stats = p.training ? Tensor<float, 1>(Shape<1>{rows}, dev) : Tensor<float, 1>();
    if (!cudnn::forward(p, qv.data(), kv.data(), vv.data(), p.has_bias ? bias.data() : nullptr, o.data(),
                        p.training ? stats.data() : nullptr))
      return std::nullopt;
    auto bwd = [=](const Tensor<T, R>& g) {
      bool same = true;  // the backward graph reads dout in o's strides
      for (int d = 0; d < R; ++d) same = same && (g.size(d) == 1 || g.stride(d) == o.stride(d));
      Tensor<T, R> dout = g;
      if (!same) {
        dout = empty_in_layout<T>(o.shape(), qv);
        std::move(dout) = g;
      }
      Tensor<T, R> dq(q.shape(), dev), dk(k.shape(), dev), dv(v.shape(), dev);
      cudnn::backward(p, qv.data(), kv.data(), vv.data(), p.has_bias ? bias.data() : nullptr, o.data(), stats.data(),
                      dout.data(), dq.data(), dk.data(), dv.data());
      if (q.requires_grad()) q.state().accumulate(std::move(dq));
      if (k.requires_grad()) k.state().accumulate(std::move(dk));
      if (v.requires_grad()) v.state().accumulate(std::move(dv));
    };
    return autograd::record("scaled_dot_product_attention", o, std::move(bwd), q, k, v);
  }
}
#endif  // FT_CUDNN_SDPA_ENABLED

// Whether the fused kernels take this call: a mask without a gradient (a tensor), and on CUDA
// head dims the row kernels hold; empty problems go the composed way.
template <class M, class T, int R>
bool fusable(const Var<T, R>& q, const Var<T, R>& k, const Var<T, R>& v) {
  if constexpr (!KernelMask<M>::fusable) {
    return false;
  } else {
    if (q.numel() == 0 || k.numel() == 0 || v.numel() == 0) return false;
    return q.device().is_cpu() || std::max(q.size(R - 1), v.size(R - 1)) <= linalg::flash::kMaxRowHeadDim;
  }
}

}  // namespace attention

// torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal,
// scale): softmax(q·kᵀ·scale + mask)·v over the last two dims, q [.., L, E], k [.., S, E],
// v [.., S, Ev] → [.., L, Ev]. attn_mask (broadcast to [.., L, S]): bool, true where a query may
// attend; or floating, added to the scores. Dropout (dropout_p > 0) on the probabilities; the same
// seed drops the same entries as nn::functional::dropout over the [B, L, S] probabilities (the
// leading dims folded into B). A query whose every key is masked gets NaN, as in PyTorch 1.13.
template <Expression Q, Expression K, Expression V, class M = NoMask>
Var<float_promote_t<typename Q::value_type>, Q::rank> scaled_dot_product_attention(const Q& query, const K& key,
                                                                                   const V& value,
                                                                                   const M& attn_mask = {},
                                                                                   const SdpaOptions& options = {}) {
  using T = float_promote_t<typename Q::value_type>;
  constexpr int R = Q::rank;
  static_assert(R >= 2 && K::rank == R && V::rank == R,
                "ft::scaled_dot_product_attention: query, key and value have one rank, at least 2");
  const Var<T, R> q = autograd::to_var(query), k = autograd::to_var(key), v = autograd::to_var(value);
  bool ok = q.size(R - 1) == k.size(R - 1) && k.size(R - 2) == v.size(R - 2);
  for (int d = 0; d < R - 2; ++d) ok = ok && q.size(d) == k.size(d) && k.size(d) == v.size(d);
  check(ok, "scaled_dot_product_attention", "query ", to_string(q.shape()), ", key ", to_string(k.shape()),
        " and value ", to_string(v.shape()), " do not fit: [.., L, E], [.., S, E], [.., S, Ev]");
  check(q.device() == k.device() && k.device() == v.device(), "scaled_dot_product_attention", "query on ", q.device(),
        ", key on ", k.device(), ", value on ", v.device());
  check(options.dropout_p >= 0 && options.dropout_p <= 1, "scaled_dot_product_attention",
        "dropout_p must be in [0, 1], got ", options.dropout_p);
  const double scale = options.scale ? *options.scale : 1.0 / std::sqrt(static_cast<double>(q.size(R - 1)));
  // a traced forward (ONNX export) takes the composed path: its matmuls and softmax have ONNX forms
#if FT_CUDNN_SDPA_ENABLED
  if (!autograd::trace::current())
    if (auto r = attention::cudnn_sdpa(q, k, v, attn_mask, scale, options)) return *r;
#endif
  if (attention::fusable<M>(q, k, v) && !autograd::trace::current())
    return attention::fused(q, k, v, attn_mask, scale, options);
  return attention::composed(q, k, v, attn_mask, scale, options);
}

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::nn {

// nn.Transformer.generate_square_subsequent_mask: [n, n], −inf above the diagonal, 0 elsewhere
// (a float mask: added to the scores).
template <class T = float>
Tensor<T, 2> generate_square_subsequent_mask(index_t n, Device device = kCPU) {
  return where(attention::causal_keep(n, n, device), T(0), -std::numeric_limits<T>::infinity());
}

struct MultiheadAttentionOptions {
  double dropout = 0.0;  // on the attention probabilities, in training mode
  bool bias = true;
  bool batch_first = false;    // [N, L, E] instead of [L, N, E]
  index_t kdim = 0;            // the keys' features (0: embed_dim)
  index_t vdim = 0;            // the values' features (0: embed_dim)
  bool add_bias_kv = false;    // learnt bias_k and bias_v [1, 1, E] appended to the projected keys and values
  bool add_zero_attn = false;  // a key and a value of zeros appended after the projections (per head)
};

// What MultiheadAttention returns: the output, and the attention probabilities averaged over the
// heads [N, L, S] (undefined unless need_weights).
template <class T>
struct MultiheadAttentionOutput {
  Var<T, 3> output;
  Var<T, 3> weights;
};

// nn.MultiheadAttention(embed_dim, num_heads): PyTorch's parameters (in_proj_weight [3E, E],
// in_proj_bias [3E], out_proj; with kdim or vdim ≠ E, q_proj_weight [E, E], k_proj_weight
// [E, kdim] and v_proj_weight [E, vdim] instead of in_proj_weight), initialisation (xavier_uniform,
// zero biases) and masks: a bool attn_mask [L, S] or [N·heads, L, S] is true where attending is
// NOT allowed (a floating one is added); key_padding_mask [N, S] is true at the keys to ignore.
// add_bias_kv appends the learnt key and value bias_k, bias_v [1, 1, E] (xavier_normal) to the
// projected keys and values, add_zero_attn a key and a value of zeros to each head's; the masks
// allow both (S + 1 or S + 2 keys, as PyTorch's). With need_weights false the attention is the
// fused one (scaled_dot_product_attention over the heads, read in place); with it, or with the
// extra keys, the probabilities are formed (and averaged over the heads).
template <class T = float>
class MultiheadAttention : public Module<MultiheadAttention<T>> {
 public:
  Var<T, 2> in_proj_weight;
  Var<T, 2> q_proj_weight, k_proj_weight, v_proj_weight;  // defined when kdim or vdim ≠ embed_dim
  Var<T, 1> in_proj_bias;
  Var<T, 3> bias_k, bias_v;  // [1, 1, E], defined with add_bias_kv
  Linear<T> out_proj;

  MultiheadAttention() = default;
  MultiheadAttention(index_t embed_dim, index_t num_heads, const MultiheadAttentionOptions& options = {},
                     Device device = kCPU)
      : out_proj(embed_dim, embed_dim, options.bias, device), heads_(num_heads), options_(options) {
    check(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, "MultiheadAttention", "embed_dim (", embed_dim,
          ") must be divisible by num_heads (", num_heads, ")");
    check(options.dropout >= 0 && options.dropout <= 1, "MultiheadAttention", "dropout must be in [0, 1], got ",
          options.dropout);
    check(options.kdim >= 0 && options.vdim >= 0, "MultiheadAttention", "kdim (", options.kdim, ") and vdim (",
          options.vdim, ") must not be negative");
    const index_t kdim = options.kdim ? options.kdim : embed_dim, vdim = options.vdim ? options.vdim : embed_dim;
    auto weight = [&](index_t rows, index_t cols) {
      Tensor<T, 2> w(Shape<2>{rows, cols}, device);
      init::xavier_uniform_(w);
      return detail::parameter(w);
    };
    if (kdim == embed_dim && vdim == embed_dim) {
      in_proj_weight = weight(3 * embed_dim, embed_dim);
    } else {
      q_proj_weight = weight(embed_dim, embed_dim);
      k_proj_weight = weight(embed_dim, kdim);
      v_proj_weight = weight(embed_dim, vdim);
    }
    if (options.bias) {
      in_proj_bias = detail::parameter(zeros<T>(Shape<1>{3 * embed_dim}, device));
      out_proj.bias.data() = T(0.0f);
    }
    if (options.add_bias_kv) {
      for (Var<T, 3>* b : {&bias_k, &bias_v}) {
        Tensor<T, 3> t(Shape<3>{1, 1, embed_dim}, device);
        init::xavier_normal_(t);
        *b = detail::parameter(t);
      }
    }
  }
  index_t embed_dim() const { return out_proj.weight.size(0); }
  index_t kdim() const { return k_proj_weight.defined() ? k_proj_weight.size(1) : embed_dim(); }
  index_t vdim() const { return v_proj_weight.defined() ? v_proj_weight.size(1) : embed_dim(); }
  index_t num_heads() const { return heads_; }

  template <class V>
  void visit(V&& v) {
    v("q_proj_weight", q_proj_weight), v("k_proj_weight", k_proj_weight), v("v_proj_weight", v_proj_weight);
    v("in_proj_weight", in_proj_weight);
    v("in_proj_bias", in_proj_bias);
    v("bias_k", bias_k), v("bias_v", bias_v);
    v("out_proj", out_proj);
  }

  template <Expression Q, Expression K, Expression V, class M = NoMask>
  MultiheadAttentionOutput<T> forward(const Q& query, const K& key, const V& value,
                                      const Tensor<bool, 2>& key_padding_mask = {}, bool need_weights = true,
                                      const M& attn_mask = {}, bool is_causal = false) {
    static_assert(Q::rank == 3 && K::rank == 3 && V::rank == 3,
                  "ft::nn::MultiheadAttention: query, key and value are [L, N, E] ([N, L, E] with batch_first)");
    check(out_proj.weight.defined(), "MultiheadAttention", "the module was default-constructed (no parameters)");
    Var<T, 3> q = autograd::to_var(query), k = autograd::to_var(key), v = autograd::to_var(value);
    const bool self = q.state_ptr() == k.state_ptr() && k.state_ptr() == v.state_ptr();  // self-attention
    if (options_.batch_first) {
      q = q.transpose(0, 1);
      k = self ? q : k.transpose(0, 1);
      v = self ? q : v.transpose(0, 1);
    }
    const index_t L = q.size(0), N = q.size(1), E = embed_dim(), S = k.size(0), H = heads_, hd = E / H;
    check(q.size(2) == E && k.size(2) == kdim() && v.size(2) == vdim() && k.size(1) == N && v.size(1) == N &&
              v.size(0) == S,
          "MultiheadAttention", "query ", to_string(q.shape()), ", key ", to_string(k.shape()), " and value ",
          to_string(v.shape()), " (sequence-first) do not fit embed_dim ", E, ", kdim ", kdim(), ", vdim ", vdim());
    if constexpr (!std::is_same_v<M, NoMask>) {
      if (attn_mask.defined()) {
        static_assert(M::rank == 2 || M::rank == 3,
                      "ft::nn::MultiheadAttention: attn_mask is [L, S] or [N·heads, L, S]");
        const bool shape_ok =
            M::rank == 2 ? attn_mask.size(0) == L && attn_mask.size(1) == S
                         : attn_mask.size(0) == N * H && attn_mask.size(1) == L && attn_mask.size(M::rank - 1) == S;
        check(shape_ok, "MultiheadAttention", "attn_mask ", to_string(attn_mask.shape()), " is not [", L, ", ", S,
              "] or [", N * H, ", ", L, ", ", S, "]");
      }
    }
    check(!key_padding_mask.defined() || key_padding_mask.shape() == Shape<2>{N, S}, "MultiheadAttention",
          "key_padding_mask ", to_string(key_padding_mask.shape()), " is not [", N, ", ", S, "]");
    const index_t extra = (bias_k.defined() ? 1 : 0) + (options_.add_zero_attn ? 1 : 0);  // keys appended
    check(!(is_causal && extra), "MultiheadAttention",
          "is_causal with add_bias_kv or add_zero_attn: pass the causal attn_mask instead (the appended keys "
          "stay visible to every query)");
    // a traced forward (ONNX export) with a key padding mask takes the composed path below, whose
    // mask is a view of the mask input (the fused path's combined mask would be a constant)
    const bool traced_padding = key_padding_mask.defined() && autograd::trace::current();
    if (!need_weights && !ft::detail::is_var<M>::value && !extra && !traced_padding) {
      // the fused attention over the heads read in place: [len, N, E] → [N, heads, len, head_dim];
      // self-attention projects once, [L, N, 3E], and reads its three parts
      Var<T, 4> qh, kh, vh;
      if (self && in_proj_weight.defined()) {
        const Var<T, 3> y = in_proj_bias.defined() ? Var<T, 3>(linear(q, in_proj_weight) + in_proj_bias)
                                                   : Var<T, 3>(linear(q, in_proj_weight));
        const Var<T, 5> parts = y.reshape({L, N, 3, H, hd});
        qh = parts.select(2, 0).permute({1, 2, 0, 3});
        kh = parts.select(2, 1).permute({1, 2, 0, 3});
        vh = parts.select(2, 2).permute({1, 2, 0, 3});
      } else {
        auto project = [&](const Var<T, 3>& x, index_t part) {
          return in_projection(x, part).reshape({x.size(0), N, H, hd}).permute({1, 2, 0, 3});
        };
        qh = project(q, 0), kh = project(k, 1), vh = project(v, 2);
      }
      const SdpaOptions o{.dropout_p = this->is_training() ? options_.dropout : 0.0,
                          .is_causal = is_causal,
                          .seed = seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_)};
      bool has_attn_mask = false;
      if constexpr (!std::is_same_v<M, NoMask>) has_attn_mask = attn_mask.defined();
      Var<T, 4> a;  // [N, heads, L, head_dim], laid out as [L, N, heads, head_dim]
      if (!has_attn_mask && !key_padding_mask.defined()) {
        a = scaled_dot_product_attention(qh, kh, vh, NoMask{}, o);
      } else if (!has_attn_mask) {
        a = scaled_dot_product_attention(qh, kh, vh, heads_mask(Tensor<bool, 2>(), key_padding_mask, L, N, S), o);
      } else if constexpr (!std::is_same_v<M, NoMask> && !ft::detail::is_var<M>::value) {
        a = scaled_dot_product_attention(qh, kh, vh, heads_mask(attn_mask, key_padding_mask, L, N, S), o);
      }
      Var<T, 3> out = out_proj(a.permute({2, 0, 1, 3}).reshape({L, N, E}));
      if (options_.batch_first) out = out.transpose(0, 1);
      return {out, Var<T, 3>()};
    }
    // the probabilities are returned: the composed path, the scores stored
    // the projections, then [len, N, E] → [N·heads, len, head_dim] (N·heads as -1 and the batch
    // left to the reshapes below, so that a traced graph follows the batch)
    auto project = [&](const Var<T, 3>& x, index_t part) {
      return in_projection(x, part).reshape({x.size(0), -1, hd}).transpose(0, 1);
    };
    const Var<T, 3> qh = project(q, 0);
    Var<T, 3> kh, vh;
    if (bias_k.defined()) {  // the learnt key and value appended: [S + 1, N, E]
      auto with_bias = [&](const Var<T, 3>& x, index_t part, const Var<T, 3>& b) {
        return Var<T, 3>(cat({in_projection(x, part), b.expand({1, N, E})}, 0))
            .reshape({S + 1, -1, hd})
            .transpose(0, 1);
      };
      kh = with_bias(k, 1, bias_k), vh = with_bias(v, 2, bias_v);
    } else {
      kh = project(k, 1), vh = project(v, 2);
    }
    if (options_.add_zero_attn) {  // a key and a value of zeros for each head
      kh = pad(kh, {0, 0, 0, 1});
      vh = pad(vh, {0, 0, 0, 1});
    }
    const index_t SK = S + extra;                                                               // the keys attended to
    Var<T, 3> s = matmul(qh, kh.transpose(1, 2)) * (1.0 / std::sqrt(static_cast<double>(hd)));  // [N·H, L, SK]
    const T neg_inf = -std::numeric_limits<T>::infinity();
    if constexpr (!std::is_same_v<M, NoMask>) {
      if (attn_mask.defined()) {  // the appended keys allowed (false, or 0 added)
        if constexpr (std::is_same_v<typename M::value_type, bool>)
          s = extra ? Var<T, 3>(where(pad(attn_mask, {0, extra}), neg_inf, s))
                    : Var<T, 3>(where(attn_mask, neg_inf, s));
        else
          s = extra ? Var<T, 3>(s + pad(attn_mask, {0, extra})) : Var<T, 3>(s + attn_mask);
      }
    }
    if (traced_padding && !extra) {  // [N·H, L, S] as [N, H, L, S], the mask a view [N, 1, 1, S]
      const Var<T, 4> s4 = s.reshape({-1, H, L, SK});
      s = Var<T, 4>(where(key_padding_mask.reshape(Shape<4>{N, 1, 1, S}), neg_inf, s4)).reshape({-1, L, SK});
    } else if (key_padding_mask.defined()) {
      const Tensor<bool, 2> keys = extra ? Tensor<bool, 2>(pad(key_padding_mask, {0, extra})) : key_padding_mask;
      const Tensor<bool, 3> ignored =
          keys.reshape(Shape<3>{N, 1, SK}).expand({N, H, SK}).reshape(Shape<3>{N * H, 1, SK});
      s = where(ignored, neg_inf, s);
    }
    Var<T, 3> p = attention::masked_softmax(s, NoMask{}, is_causal);
    const Var<T, 3> weights = need_weights ? Var<T, 3>(mean(p.reshape({-1, H, L, SK}), 1)) : Var<T, 3>();
    if (options_.dropout > 0 && this->is_training())
      p = functional::dropout(p, options_.dropout, true, seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_));
    Var<T, 3> o = matmul(p, vh).transpose(0, 1).reshape({L, -1, E});  // [L, N, E]
    Var<T, 3> out = out_proj(o);
    if (options_.batch_first) out = out.transpose(0, 1);
    return {out, weights};
  }

 private:
  // x [len, N, E] projected by part (0 query, 1 key, 2 value) of in_proj_weight and in_proj_bias
  Var<T, 3> in_projection(const Var<T, 3>& x, index_t part) const {
    const index_t E = embed_dim();
    const Var<T, 2> w = in_proj_weight.defined() ? in_proj_weight.slice(0, part * E, (part + 1) * E)
                                                 : (part == 0   ? q_proj_weight
                                                    : part == 1 ? k_proj_weight
                                                                : v_proj_weight);
    if (!in_proj_bias.defined()) return linear(x, w);
    return linear(x, w) + in_proj_bias.slice(0, part * E, (part + 1) * E);
  }
  // attn_mask (true or −inf: not allowed) and key_padding_mask (true: ignored) as one mask of the
  // fused attention, which keeps (bool) or adds (floating): [1, 1, L, S], [N, heads, L, S],
  // [N, 1, 1, S] (broadcast in place) or, both given, their combination [N, 1 or heads, L, S].
  template <class M>
  auto heads_mask(const M& attn_mask, const Tensor<bool, 2>& key_padding_mask, index_t L, index_t N, index_t S) const {
    using MT = typename M::value_type;
    constexpr int RM = M::rank;
    Tensor<MT, 4> a;
    if (attn_mask.defined()) {
      const Tensor<MT, RM> m = attn_mask.contiguous();
      a = RM == 2 ? m.reshape(Shape<4>{1, 1, L, S}) : m.reshape(Shape<4>{N, heads_, L, S});
    }
    const Tensor<bool, 4> pad =
        key_padding_mask.defined() ? key_padding_mask.reshape(Shape<4>{N, 1, 1, S}) : Tensor<bool, 4>();
    if constexpr (std::is_same_v<MT, bool>) {
      if (!pad.defined()) return Tensor<bool, 4>(!a);
      if (!a.defined()) return Tensor<bool, 4>(!pad);
      return Tensor<bool, 4>(!logical_or(a, pad));
    } else {
      if (!pad.defined()) return a;
      return Tensor<MT, 4>(where(pad, -std::numeric_limits<MT>::infinity(), a));
    }
  }

  index_t heads_ = 1;
  MultiheadAttentionOptions options_;
  std::uint64_t seed_ = next_seed();
  std::uint64_t calls_ = 0;
};

enum class TransformerActivation { ReLU, GELU };

struct TransformerEncoderLayerOptions {
  index_t dim_feedforward = 2048;
  double dropout = 0.1;
  TransformerActivation activation = TransformerActivation::ReLU;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;  // pre-norm: x + sa(norm1(x)), then x + ff(norm2(x))
};

namespace attention {
// A Transformer layer's feed-forward block: linear2(dropout(activation(linear1(y)))). Without
// dropout (p = 0, or evaluation) linear2 reads h itself: the GEMM's operand would otherwise be
// h·1, a copy of [tokens, dim_feedforward] forward and backward.
template <class T>
Var<T, 3> feed_forward(Linear<T>& linear1, Dropout& dropout, Linear<T>& linear2, TransformerActivation activation,
                       const Var<T, 3>& y) {
  const Var<T, 3> h =
      activation == TransformerActivation::GELU ? Var<T, 3>(gelu(linear1(y))) : Var<T, 3>(relu(linear1(y)));
  return dropout.p > 0 && dropout.is_training() ? linear2(dropout(h)) : linear2(h);
}
}  // namespace attention

namespace attention {
// A stack's num_layers layers of one configuration, and its final LayerNorm when final_norm.
template <class Layer, class T>
void build_stack(const char* name, ModuleList<Layer>& layers, LayerNorm<T>& norm, index_t d_model, index_t nhead,
                 int num_layers, const TransformerEncoderLayerOptions& options, bool final_norm, Device device) {
  check(num_layers >= 1, name, "num_layers must be at least 1, got ", num_layers);
  for (int l = 0; l < num_layers; ++l) layers.push_back(Layer(d_model, nhead, options, device));
  if (final_norm) norm = LayerNorm<T>(d_model, options.layer_norm_eps, true, true, device);
}
}  // namespace attention

// nn.TransformerEncoderLayer(d_model, nhead): self-attention and a feed-forward block, each with
// a residual connection and a LayerNorm (after it, or before it with norm_first), PyTorch's
// parameter names (self_attn.in_proj_weight, linear1.weight, norm1.weight, …).
template <class T = float>
class TransformerEncoderLayer : public Module<TransformerEncoderLayer<T>> {
 public:
  MultiheadAttention<T> self_attn;
  Linear<T> linear1, linear2;
  LayerNorm<T> norm1, norm2;
  Dropout dropout, dropout1, dropout2;

  TransformerEncoderLayer() = default;
  TransformerEncoderLayer(index_t d_model, index_t nhead, const TransformerEncoderLayerOptions& options = {},
                          Device device = kCPU)
      : self_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, device),
        linear1(d_model, options.dim_feedforward, true, device),
        linear2(options.dim_feedforward, d_model, true, device),
        norm1(d_model, options.layer_norm_eps, true, true, device),
        norm2(d_model, options.layer_norm_eps, true, true, device),
        dropout(options.dropout),
        dropout1(options.dropout),
        dropout2(options.dropout),
        options_(options) {}

  template <class V>
  void visit(V&& v) {
    v("self_attn", self_attn), v("linear1", linear1), v("dropout", dropout), v("linear2", linear2);
    v("norm1", norm1), v("norm2", norm2), v("dropout1", dropout1), v("dropout2", dropout2);
  }

  // src [S, N, E] ([N, S, E] batch-first); src_mask [S, S] (bool: true = not allowed; or
  // floating, added); src_key_padding_mask [N, S] (true = padding).
  template <Expression X, class M = NoMask>
  Var<T, 3> forward(const X& src, const M& src_mask = {}, const Tensor<bool, 2>& src_key_padding_mask = {},
                    bool is_causal = false) {
    Var<T, 3> x = autograd::to_var(src);
    auto sa = [&](const Var<T, 3>& y) {
      return dropout1(self_attn(y, y, y, src_key_padding_mask, false, src_mask, is_causal).output);
    };
    auto ff = [&](const Var<T, 3>& y) {
      return dropout2(attention::feed_forward(linear1, dropout, linear2, options_.activation, y));
    };
    if (options_.norm_first) {
      x = x + sa(norm1(x));
      return x + ff(norm2(x));
    }
    x = norm1(x + sa(x));
    return norm2(x + ff(x));
  }

 private:
  TransformerEncoderLayerOptions options_;
};

// nn.TransformerEncoder: num_layers encoder layers (each its own parameters, "layers.0.…"), and
// an optional final LayerNorm ("norm").
template <class T = float>
class TransformerEncoder : public Module<TransformerEncoder<T>> {
 public:
  ModuleList<TransformerEncoderLayer<T>> layers;
  LayerNorm<T> norm;  // default-constructed (no parameters) unless final_norm

  TransformerEncoder() = default;
  TransformerEncoder(index_t d_model, index_t nhead, int num_layers, const TransformerEncoderLayerOptions& options = {},
                     bool final_norm = false, Device device = kCPU) {
    attention::build_stack("TransformerEncoder", layers, norm, d_model, nhead, num_layers, options, final_norm, device);
  }
  template <class V>
  void visit(V&& v) {
    v("layers", layers);
    v("norm", norm);
  }
  template <Expression X, class M = NoMask>
  Var<T, 3> forward(const X& src, const M& mask = {}, const Tensor<bool, 2>& src_key_padding_mask = {},
                    bool is_causal = false) {
    Var<T, 3> x = autograd::to_var(src);
    for (std::size_t l = 0; l < layers.size(); ++l) x = layers[l](x, mask, src_key_padding_mask, is_causal);
    return norm.weight.defined() ? Var<T, 3>(norm(x)) : x;
  }
};

using TransformerDecoderLayerOptions = TransformerEncoderLayerOptions;

// nn.TransformerDecoderLayer(d_model, nhead): self-attention over the target, attention over the
// memory (the encoder's output), a feed-forward block; each with a residual connection and a
// LayerNorm (after it, or before it with norm_first). PyTorch's parameter names (self_attn.…,
// multihead_attn.…, linear1, linear2, norm1, norm2, norm3).
template <class T = float>
class TransformerDecoderLayer : public Module<TransformerDecoderLayer<T>> {
 public:
  MultiheadAttention<T> self_attn, multihead_attn;
  Linear<T> linear1, linear2;
  LayerNorm<T> norm1, norm2, norm3;
  Dropout dropout, dropout1, dropout2, dropout3;

  TransformerDecoderLayer() = default;
  TransformerDecoderLayer(index_t d_model, index_t nhead, const TransformerDecoderLayerOptions& options = {},
                          Device device = kCPU)
      : self_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, device),
        multihead_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, device),
        linear1(d_model, options.dim_feedforward, true, device),
        linear2(options.dim_feedforward, d_model, true, device),
        norm1(d_model, options.layer_norm_eps, true, true, device),
        norm2(d_model, options.layer_norm_eps, true, true, device),
        norm3(d_model, options.layer_norm_eps, true, true, device),
        dropout(options.dropout),
        dropout1(options.dropout),
        dropout2(options.dropout),
        dropout3(options.dropout),
        options_(options) {}

  template <class V>
  void visit(V&& v) {
    v("self_attn", self_attn), v("multihead_attn", multihead_attn), v("linear1", linear1), v("dropout", dropout);
    v("linear2", linear2), v("norm1", norm1), v("norm2", norm2), v("norm3", norm3);
    v("dropout1", dropout1), v("dropout2", dropout2), v("dropout3", dropout3);
  }

  // tgt [T, N, E] and memory [S, N, E] ([N, ·, E] batch-first); tgt_mask [T, T] and memory_mask
  // [T, S] (bool: true = not allowed; or floating, added); the key padding masks [N, T] and [N, S]
  // (true = padding); tgt_is_causal: the target's causal mask without a tensor.
  template <Expression X, Expression Mem, class TM = NoMask, class MM = NoMask>
  Var<T, 3> forward(const X& tgt, const Mem& memory, const TM& tgt_mask = {}, const MM& memory_mask = {},
                    const Tensor<bool, 2>& tgt_key_padding_mask = {},
                    const Tensor<bool, 2>& memory_key_padding_mask = {}, bool tgt_is_causal = false) {
    Var<T, 3> x = autograd::to_var(tgt);
    const Var<T, 3> mem = autograd::to_var(memory);
    auto sa = [&](const Var<T, 3>& y) {
      return dropout1(self_attn(y, y, y, tgt_key_padding_mask, false, tgt_mask, tgt_is_causal).output);
    };
    auto mha = [&](const Var<T, 3>& y) {
      return dropout2(multihead_attn(y, mem, mem, memory_key_padding_mask, false, memory_mask).output);
    };
    auto ff = [&](const Var<T, 3>& y) {
      return dropout3(attention::feed_forward(linear1, dropout, linear2, options_.activation, y));
    };
    if (options_.norm_first) {
      x = x + sa(norm1(x));
      x = x + mha(norm2(x));
      return x + ff(norm3(x));
    }
    x = norm1(x + sa(x));
    x = norm2(x + mha(x));
    return norm3(x + ff(x));
  }

 private:
  TransformerDecoderLayerOptions options_;
};

// nn.TransformerDecoder: num_layers decoder layers ("layers.0.…") over one memory, and an
// optional final LayerNorm ("norm").
template <class T = float>
class TransformerDecoder : public Module<TransformerDecoder<T>> {
 public:
  ModuleList<TransformerDecoderLayer<T>> layers;
  LayerNorm<T> norm;  // default-constructed (no parameters) unless final_norm

  TransformerDecoder() = default;
  TransformerDecoder(index_t d_model, index_t nhead, int num_layers, const TransformerDecoderLayerOptions& options = {},
                     bool final_norm = false, Device device = kCPU) {
    attention::build_stack("TransformerDecoder", layers, norm, d_model, nhead, num_layers, options, final_norm, device);
  }
  template <class V>
  void visit(V&& v) {
    v("layers", layers);
    v("norm", norm);
  }
  template <Expression X, Expression Mem, class TM = NoMask, class MM = NoMask>
  Var<T, 3> forward(const X& tgt, const Mem& memory, const TM& tgt_mask = {}, const MM& memory_mask = {},
                    const Tensor<bool, 2>& tgt_key_padding_mask = {},
                    const Tensor<bool, 2>& memory_key_padding_mask = {}, bool tgt_is_causal = false) {
    Var<T, 3> x = autograd::to_var(tgt);
    const Var<T, 3> mem = autograd::to_var(memory);
    for (std::size_t l = 0; l < layers.size(); ++l)
      x = layers[l](x, mem, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal);
    return norm.weight.defined() ? Var<T, 3>(norm(x)) : x;
  }
};

struct TransformerOptions {
  int num_encoder_layers = 6;
  int num_decoder_layers = 6;
  index_t dim_feedforward = 2048;
  double dropout = 0.1;
  TransformerActivation activation = TransformerActivation::ReLU;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;
};

// nn.Transformer(d_model, nhead): an encoder and a decoder, each with its final LayerNorm
// ("encoder.layers.0.…", "encoder.norm", "decoder.…"), as PyTorch's.
template <class T = float>
class Transformer : public Module<Transformer<T>> {
 public:
  TransformerEncoder<T> encoder;
  TransformerDecoder<T> decoder;

  Transformer() = default;
  Transformer(index_t d_model, index_t nhead, const TransformerOptions& options = {}, Device device = kCPU)
      : encoder(d_model, nhead, options.num_encoder_layers, layer_options(options), true, device),
        decoder(d_model, nhead, options.num_decoder_layers, layer_options(options), true, device) {}
  template <class V>
  void visit(V&& v) {
    v("encoder", encoder);
    v("decoder", decoder);
  }
  // src [S, N, E], tgt [T, N, E] ([N, ·, E] batch-first) → [T, N, E]; the masks as the layers'.
  template <Expression X, Expression Y, class SM = NoMask, class TM = NoMask, class MM = NoMask>
  Var<T, 3> forward(const X& src, const Y& tgt, const SM& src_mask = {}, const TM& tgt_mask = {},
                    const MM& memory_mask = {}, const Tensor<bool, 2>& src_key_padding_mask = {},
                    const Tensor<bool, 2>& tgt_key_padding_mask = {},
                    const Tensor<bool, 2>& memory_key_padding_mask = {}) {
    const Var<T, 3> memory = encoder(src, src_mask, src_key_padding_mask);
    return decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask);
  }

 private:
  static TransformerEncoderLayerOptions layer_options(const TransformerOptions& o) {
    return {.dim_feedforward = o.dim_feedforward,
            .dropout = o.dropout,
            .activation = o.activation,
            .layer_norm_eps = o.layer_norm_eps,
            .batch_first = o.batch_first,
            .norm_first = o.norm_first};
  }
};

}  // namespace ft::inline FT_ABI::nn
