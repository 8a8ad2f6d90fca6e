// The boundary ops on Vars: matmul, linear, conv2d, pooling, softmax, log_softmax, layer_norm
// and cross_entropy. Each runs its forward as for tensors and records one node whose backward
// uses the library's backward calls (GEMMs on BLAS/cuBLAS, cuDNN's backward-data/filter, the
// pooling gathers) or a short fused expression. These overloads are chosen whenever an operand
// reads a Var; an operand that is an expression over Vars is first recorded as its own
// statement (one fused kernel).
#pragma once

#include <cstdint>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/expr/generator.hpp"
#include "ft/linalg/conv.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/linalg/pool.hpp"
#include "ft/linalg/rowwise.hpp"

namespace ft::inline FT_ABI {

namespace autograd::detail {
template <class... Xs>
inline constexpr bool any_var_v = (ft::detail::has_var_v<Xs> || ...);

// Adds `g`, an expression of shape `s` (the Var's elements in row-major order), to v's gradient:
// written through a reshaped view of the gradient, so nothing is copied.
template <class T, int R, int RS, class G>
void accumulate_reshaped(const Var<T, R>& v, const Shape<RS>& s, const G& g) {
  if (!v.requires_grad()) return;
  auto& st = v.state();
  const bool fresh = !st.grad.defined();
  if (fresh) st.grad = Tensor<T, R>(v.shape(), v.device());
  add_into(st.grad.reshape(s), g, fresh);
}

// t as [batch, rows, cols]: a matrix gains a batch of 1, a vector becomes a row (left
// operand) or a column (right operand).
template <class T, int R>
Tensor<T, 3> as_batch(const Tensor<T, R>& t, bool left) {
  if constexpr (R == 1)
    return left ? t.reshape({1, 1, t.size(0)}) : t.reshape({1, t.size(0), 1});
  else if constexpr (R == 2)
    return t.unsqueeze(0);
  else
    return t;
}

// The gradient of a matmul operand of shape `s` from its batched product d: summed over the
// batch where the operand was broadcast along it.
template <class T, int R>
void accumulate_from_batch(const Var<T, R>& v, const Tensor<T, 3>& d) {
  if (!v.requires_grad()) return;
  const Shape<R>& s = v.shape();
  if (d.size(0) > 1 && (R < 3 || s[0] == 1))
    accumulate_reshaped(v, Shape<2>{d.size(1), d.size(2)}, ft::sum(d, 0));
  else
    accumulate_reshaped(v, d.shape(), d);
}
}  // namespace autograd::detail

// ---- matmul and linear ----
template <Expression A, Expression B>
requires(autograd::detail::any_var_v<A, B>) auto matmul(const A& a, const B& b) {
  auto va = autograd::to_var(a);
  auto vb = autograd::to_var(b);
  auto y = matmul(va.value(), vb.value());
  using Y = decltype(y);
  using T = typename Y::value_type;
  auto bwd = [va, vb](const Tensor<T, Y::rank>& g) {
    auto a3 = autograd::detail::as_batch(va.value(), true), b3 = autograd::detail::as_batch(vb.value(), false);
    const index_t batch = std::max(a3.size(0), b3.size(0));
    auto g3 = g.contiguous().reshape(Shape<3>{batch, a3.size(1), b3.size(2)});
    if (va.requires_grad()) autograd::detail::accumulate_from_batch(va, matmul(g3, b3.transpose(1, 2)));
    if (vb.requires_grad()) autograd::detail::accumulate_from_batch(vb, matmul(a3.transpose(1, 2), g3));
  };
  return autograd::record("matmul", y, std::move(bwd), va, vb);
}

// x·Wᵀ; the three-argument linear adds the bias to this lazily, so it fuses downstream.
template <Expression X, Expression W>
requires(autograd::detail::any_var_v<X, W>) auto linear(const X& x, const W& weight) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(weight);
  auto y = linear(vx.value(), vw.value());
  using Y = decltype(y);
  using T = typename Y::value_type;
  auto bwd = [vx, vw](const Tensor<T, Y::rank>& g) {
    const index_t out = vw.size(0), in = vw.size(1);
    if (vx.requires_grad()) autograd::detail::accumulate_reshaped(vx, vx.shape(), matmul(g, vw.value()));
    if (vw.requires_grad()) {
      auto g2 = g.contiguous().reshape(Shape<2>{g.numel() / out, out});
      auto x2 = vx.value().contiguous().reshape(Shape<2>{vx.numel() / in, in});
      autograd::detail::accumulate_reshaped(vw, vw.shape(), matmul(g2.transpose(0, 1), x2));
    }
  };
  return autograd::record("linear", y, std::move(bwd), vx, vw);
}

// ---- conv2d ----
namespace autograd::detail {
template <class VX, class VW, class VB>
auto conv2d_var(const VX& vx, const VW& vw, const VB* vb, const Conv2dOptions& options) {
  using T = typename VX::value_type;
  Tensor<T, 4> y = vb ? conv2d(vx.value(), vw.value(), vb->value(), options) : conv2d(vx.value(), vw.value(), options);
  VB b = vb ? *vb : VB();
  auto bwd = [vx, vw, b, options](const Tensor<T, 4>& g) {
    if (vx.requires_grad()) vx.state().accumulate(conv2d_backward_data(g, vw.value(), vx.shape(), options));
    if (vw.requires_grad()) vw.state().accumulate(conv2d_backward_weight(vx.value(), g, vw.shape(), options));
    if (b.defined() && b.requires_grad()) b.state().accumulate(conv2d_backward_bias(g));
  };
  return record("conv2d", y, std::move(bwd), vx, vw, b);
}
}  // namespace autograd::detail

template <Expression X, Expression W>
requires(autograd::detail::any_var_v<X, W>) auto conv2d(const X& x, const W& w, const Conv2dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  using VB = Var<typename decltype(vx)::value_type, 1>;
  return autograd::detail::conv2d_var(vx, vw, static_cast<const VB*>(nullptr), options);
}
template <Expression X, Expression W, Expression B>
requires(autograd::detail::any_var_v<X, W, B>) auto conv2d(const X& x, const W& w, const B& bias,
                                                           const Conv2dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  auto vb = autograd::to_var(bias);
  return autograd::detail::conv2d_var(vx, vw, &vb, options);
}

// ---- pooling ----
template <Expression X>
requires(ft::detail::has_var_v<X>) auto max_pool2d(const X& x, Pair kernel, Pair stride, Pair padding = 0,
                                                   Pair dilation = 1, bool ceil_mode = false) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto r = max_pool2d_with_indices(vx.value(), kernel, stride, padding, dilation, ceil_mode);
  auto bwd = [vx, idx = r.indices, kernel, stride, padding, dilation, ceil_mode](const Tensor<T, 4>& g) {
    vx.state().accumulate(max_pool2d_backward(g, idx, vx.shape(), kernel, stride, padding, dilation, ceil_mode));
  };
  return autograd::record("max_pool2d", r.output, std::move(bwd), vx);
}
template <Expression X>
requires(ft::detail::has_var_v<X>) auto max_pool2d(const X& x, Pair kernel) { return max_pool2d(x, kernel, kernel); }
template <Expression X>
requires(ft::detail::has_var_v<X>) auto avg_pool2d(const X& x, Pair kernel, Pair stride, Pair padding = 0,
                                                   bool ceil_mode = false, bool count_include_pad = true) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto y = avg_pool2d(vx.value(), kernel, stride, padding, ceil_mode, count_include_pad);
  auto bwd = [vx, kernel, stride, padding, ceil_mode, count_include_pad](const Tensor<T, 4>& g) {
    vx.state().accumulate(avg_pool2d_backward(g, vx.shape(), kernel, stride, padding, ceil_mode, count_include_pad));
  };
  return autograd::record("avg_pool2d", y, std::move(bwd), vx);
}
template <Expression X>
requires(ft::detail::has_var_v<X>) auto avg_pool2d(const X& x, Pair kernel) { return avg_pool2d(x, kernel, kernel); }
template <Expression X>
requires(ft::detail::has_var_v<X>) auto adaptive_avg_pool2d(const X& x, Pair output_size) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto y = adaptive_avg_pool2d(vx.value(), output_size);
  auto bwd = [vx](const Tensor<T, 4>& g) { vx.state().accumulate(adaptive_avg_pool2d_backward(g, vx.shape())); };
  return autograd::record("adaptive_avg_pool2d", y, std::move(bwd), vx);
}

// ---- row-wise composites ----
// softmax: dx = y·(g − Σ g·y) along dim (one reduction, one fused kernel).
template <Expression E>
requires(ft::detail::has_var_v<E>) auto softmax(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  Tensor<T, E::rank> y = softmax(vx.value(), dim);
  dim = wrap_dim(dim, E::rank, "softmax");
  auto bwd = [vx, y, dim](const Tensor<T, E::rank>& g) { vx.state().accumulate(y * (g - sum(g * y, dim, keepdim))); };
  return autograd::record("softmax", y, std::move(bwd), vx);
}
// log_softmax: dx = g − exp(y)·Σ g along dim.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto log_softmax(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  Tensor<T, E::rank> y = log_softmax(vx.value(), dim);
  dim = wrap_dim(dim, E::rank, "log_softmax");
  auto bwd = [vx, y, dim](const Tensor<T, E::rank>& g) { vx.state().accumulate(g - exp(y) * sum(g, dim, keepdim)); };
  return autograd::record("log_softmax", y, std::move(bwd), vx);
}

// cross_entropy: dlogits = (softmax(x) − q)·scale on the rows whose target is not ignored,
// with q the (smoothed) one-hot target and scale = g / (rows counted) for the mean. The
// softmax is recomputed from a logsumexp inside the one fused kernel: no [N, C] intermediate.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto cross_entropy(const E& logits, const Tensor<std::int64_t, 1>& target,
                                                      const CrossEntropyOptions& opts = {}) {
  auto vx = autograd::to_var(logits);
  using T = typename decltype(vx)::value_type;
  Tensor<T, 0> loss = cross_entropy(vx.value(), target, opts);
  auto bwd = [vx, target, opts](const Tensor<T, 0>& g) {
    const auto& x = vx.value();
    const index_t C = x.size(1);
    const Device dev = x.device();
    auto t = target.unsqueeze(1);
    auto valid = t != opts.ignore_index;
    Generator<gen::Arange<std::int64_t>, 1> classes(gen::Arange<std::int64_t>{0, 1}, Shape<1>{C}, dev);
    const double eps = opts.label_smoothing;
    auto q = where(classes == t, 1.0 - eps + eps / static_cast<double>(C), eps / static_cast<double>(C));
    auto p = exp(x - logsumexp(x, 1, keepdim));
    auto counted = cast<T>(sum(target != opts.ignore_index));
    auto scale = where(Scalar<bool>{opts.reduction == Reduction::Mean}, g / counted, g);
    vx.state().accumulate(where(valid, (p - q) * scale, 0));
  };
  return autograd::record("cross_entropy", loss, std::move(bwd), vx);
}

// layer_norm with Var weight and bias (pass undefined Vars for none):
// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = g·w; dw = Σ g·x̂, db = Σ g over the rows.
template <Expression E, class T = float_promote_t<typename E::value_type>, int WR = 1>
requires(ft::detail::has_var_v<E>) Var<T, E::rank> layer_norm(const E& x, int normalized_dims,
                                                              const Var<T, WR>& weight = {},
                                                              const Var<T, WR>& bias = {}, double eps = 1e-5) {
  constexpr int R = E::rank;
  auto vx = autograd::to_var(x);
  auto res = layer_norm(vx.value(), normalized_dims, weight.defined() ? weight.value() : Tensor<T, WR>(),
                        bias.defined() ? bias.value() : Tensor<T, WR>(), eps);
  const index_t rows = res.mean.size(0), K = rows > 0 ? vx.numel() / rows : 0;
  auto bwd = [vx, weight, bias, mean = res.mean, rstd = res.rstd, rows, K](const Tensor<T, R>& g) {
    auto x2 = vx.value().contiguous().reshape(Shape<2>{rows, K});
    auto g2 = g.contiguous().reshape(Shape<2>{rows, K});
    auto mu = mean.unsqueeze(1);
    auto rs = rstd.unsqueeze(1);
    auto xhat = (x2 - mu) * rs;
    auto input_grad = [&](const auto& gh) {
      autograd::detail::accumulate_reshaped(
          vx, Shape<2>{rows, K}, rs * (gh - ft::mean(gh, 1, keepdim) - xhat * ft::mean(gh * xhat, 1, keepdim)));
    };
    if (vx.requires_grad()) {
      if (weight.defined())
        input_grad(g2 * weight.value().contiguous().reshape(Shape<2>{1, K}));
      else
        input_grad(g2);
    }
    if (weight.defined() && weight.requires_grad())
      autograd::detail::accumulate_reshaped(weight, Shape<1>{K}, ft::sum(g2 * xhat, 0));
    if (bias.defined() && bias.requires_grad())
      autograd::detail::accumulate_reshaped(bias, Shape<1>{K}, ft::sum(g2, 0));
  };
  return autograd::record("layer_norm", res.output, std::move(bwd), vx, weight, bias);
}

}  // namespace ft::inline FT_ABI
