// The reduction family: the reducers (how elements combine: red::Sum, Prod, Extreme, Norm,
// ArgExtreme, Variance, LogSumExp, Logical), the user-facing reductions (sum, mean, prod, max,
// min, argmax, argmin, norm, var, std, logsumexp, all, any — over everything, along a dimension,
// or keeping it with ft::keepdim) and their adjoint rules. The node they build is
// expr/reduce.hpp's Reduce; its executors are exec/reduce.hpp (included at the end).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/expr/math.hpp"
#include "ft/expr/reduce.hpp"
#include "ft/expr/shape_ops.hpp"
#include "ft/ops/elementwise.hpp"

namespace ft::inline FT_ABI {

// ---- reducers: how elements combine. Every combine is applied in a fixed order by the
// executors, so results are bit-identical run after run. Acc is the accumulator type, V the
// element type; `i` is the element's position along the reduced range (for argmax/argmin).
namespace red {

template <class T>
FT_HD FT_INLINE T lowest() {
  if constexpr (std::is_floating_point_v<T>)
    return -std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::lowest();
}
template <class T>
FT_HD FT_INLINE T highest() {
  if constexpr (std::is_floating_point_v<T>)
    return std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::max();
}

// A sum or product of integers (or bools) is int64, as in torch.
template <class V>
using sum_t = std::conditional_t<is_floating_v<V>, V, std::int64_t>;

// Sum, with an optional finalisation (mean divides by the count; norm2 takes the root).
template <class V, int Final>  // Final: 0 sum, 1 mean, 2 sqrt (2-norm)
struct Sum {
  using value_type = V;
  using out_type = std::conditional_t<Final == 0, sum_t<V>, float_promote_t<V>>;
  static constexpr const char* name = Final == 0 ? "sum" : (Final == 1 ? "mean" : "norm");
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc(0);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t) {
    return a + static_cast<Acc>(v);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    return a + b;
  }
  template <class Acc>
  FT_HD FT_INLINE static out_type finalize(Acc a, index_t n) {
    if constexpr (Final == 0)
      return static_cast<out_type>(a);
    else if constexpr (Final == 1 && std::is_floating_point_v<Acc>)
      return static_cast<out_type>(a / static_cast<Acc>(n));
    else if constexpr (Final == 1)
      return static_cast<out_type>(static_cast<double>(a) / static_cast<double>(n));
    else
      return static_cast<out_type>(math::sqrt(static_cast<float_promote_t<Acc>>(a)));
  }
};

template <class V>
struct Prod {
  using value_type = V;
  using out_type = sum_t<V>;
  static constexpr const char* name = "prod";
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc(1);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t) {
    return a * static_cast<Acc>(v);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    return a * b;
  }
  template <class Acc>
  FT_HD FT_INLINE static out_type finalize(Acc a, index_t) {
    return static_cast<out_type>(a);
  }
};

// max/min propagate NaN, as torch.max/min.
template <class V, bool IsMax>
struct Extreme {
  using value_type = V;
  using out_type = V;
  static constexpr const char* name = IsMax ? "max" : "min";
  static constexpr bool needs_elements = true;
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return IsMax ? lowest<compute_t<V>>() : highest<compute_t<V>>();
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc pick(Acc a, Acc b) {
    if (math::isnan(a)) return a;
    if (math::isnan(b)) return b;
    return IsMax ? (b > a ? b : a) : (b < a ? b : a);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t) {
    return pick<Acc>(a, v);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    return pick<Acc>(a, b);
  }
  template <class Acc>
  FT_HD FT_INLINE static out_type finalize(Acc a, index_t) {
    return a;
  }
};

// |x| summed (p = 1), x² summed then rooted (p = 2), or |x| maxed (p = inf); p is uniform
// across a launch, so the branch costs nothing.
template <class V>
struct Norm {
  using value_type = V;
  using out_type = float_promote_t<V>;
  static constexpr const char* name = "norm";
  double p = 2;
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc(0);
  }
  template <class Acc>
  FT_HD FT_INLINE Acc accumulate(Acc a, compute_t<V> v, index_t) const {
    Acc x = static_cast<Acc>(v);
    x = x < Acc(0) ? -x : x;
    if (p == 1) return a + x;
    if (p == 2) return a + x * x;
    if (p == 0) return a + (x != Acc(0) ? Acc(1) : Acc(0));  // NaN counts, as torch
    if (math::isinf(p)) return math::isnan(x) || x > a ? x : a;
    return a + math::pow(x, static_cast<Acc>(p));
  }
  template <class Acc>
  FT_HD FT_INLINE Acc combine(Acc a, Acc b) const {
    if (math::isinf(p)) return math::isnan(b) || b > a ? b : a;
    return a + b;
  }
  template <class Acc>
  FT_HD FT_INLINE out_type finalize(Acc a, index_t) const {
    if (p == 2) return static_cast<out_type>(math::sqrt(a));
    if (p == 1 || p == 0 || math::isinf(p)) return static_cast<out_type>(a);
    return static_cast<out_type>(math::pow(a, static_cast<Acc>(1 / p)));
  }
};

template <class V>
struct ValueIndex {
  V value;
  index_t index;
};

// argmax/argmin: the first index of the extreme; a NaN counts as the extreme (torch's rule).
template <class V, bool IsMax>
struct ArgExtreme {
  using value_type = V;
  using out_type = std::int64_t;
  static constexpr const char* name = IsMax ? "argmax" : "argmin";
  static constexpr bool needs_elements = true;
  using P = ValueIndex<compute_t<V>>;
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc{IsMax ? lowest<compute_t<V>>() : highest<compute_t<V>>(), -1};
  }
  // true when b should replace a; ties keep the lower index
  FT_HD FT_INLINE static bool better(const P& a, const P& b) {
    if (b.index < 0) return false;
    if (a.index < 0) return true;
    bool an = math::isnan(a.value), bn = math::isnan(b.value);
    if (an || bn) return bn && (!an || b.index < a.index);
    if (b.value == a.value) return b.index < a.index;
    return IsMax ? b.value > a.value : b.value < a.value;
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t i) {
    P b{v, i};
    return better(a, b) ? b : a;
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    return better(a, b) ? b : a;
  }
  template <class Acc>
  FT_HD FT_INLINE static out_type finalize(Acc a, index_t) {
    return a.index < 0 ? 0 : a.index;
  }
};

template <class A>
struct Welford {
  A mean, m2;
  index_t n;
};

// var/std by Welford's update and Chan's pairwise combination: no catastrophic cancellation.
template <class V, bool Sqrt>
struct Variance {
  using value_type = V;
  using out_type = float_promote_t<V>;
  static constexpr const char* name = Sqrt ? "std" : "var";
  double correction = 1;
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc{0, 0, 0};
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t) {
    using F = decltype(a.mean);
    a.n += 1;
    F d = static_cast<F>(v) - a.mean;
    a.mean += d / static_cast<F>(a.n);
    a.m2 += d * (static_cast<F>(v) - a.mean);
    return a;
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    using F = decltype(a.mean);
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    index_t n = a.n + b.n;
    F d = b.mean - a.mean;
    F fb = static_cast<F>(b.n) / static_cast<F>(n);
    return Acc{a.mean + d * fb, a.m2 + b.m2 + d * d * static_cast<F>(a.n) * fb, n};
  }
  template <class Acc>
  FT_HD FT_INLINE out_type finalize(Acc a, index_t) const {
    using F = decltype(a.mean);
    // torch divides by max(0, N − correction): inf past it, NaN only for 0/0
    F denom = static_cast<F>(a.n) - static_cast<F>(correction);
    F v = a.m2 / (denom > F(0) ? denom : F(0));
    if constexpr (Sqrt) v = math::sqrt(v);
    return static_cast<out_type>(v);
  }
};

template <class A>
struct MaxSum {
  A max, sum;
};

// logsumexp by the online rescaling of a running max and a running sum of exp(x − max).
template <class V>
struct LogSumExp {
  using value_type = V;
  using out_type = float_promote_t<V>;
  static constexpr const char* name = "logsumexp";
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc{-std::numeric_limits<decltype(Acc{}.max)>::infinity(), 0};
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    using F = decltype(a.max);
    if (math::isnan(a.max) || math::isnan(b.max)) return Acc{a.max + b.max, F(0)};
    if (b.max == -std::numeric_limits<F>::infinity()) return a;
    if (a.max == -std::numeric_limits<F>::infinity()) return b;
    if (a.max == std::numeric_limits<F>::infinity() || b.max == std::numeric_limits<F>::infinity())
      return Acc{std::numeric_limits<F>::infinity(), F(1)};
    F m = a.max > b.max ? a.max : b.max;
    return Acc{m, a.sum * math::exp(a.max - m) + b.sum * math::exp(b.max - m)};
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t) {
    using F = decltype(a.max);
    return combine(a, Acc{static_cast<F>(v), F(1)});
  }
  template <class Acc>
  FT_HD FT_INLINE static out_type finalize(Acc a, index_t) {
    using F = decltype(a.max);
    if (a.max == -std::numeric_limits<F>::infinity() || a.max == std::numeric_limits<F>::infinity() ||
        math::isnan(a.max))
      return static_cast<out_type>(a.max);
    return static_cast<out_type>(a.max + math::log(a.sum));
  }
};

template <class V, bool IsAll>
struct Logical {
  using value_type = V;
  using out_type = bool;
  static constexpr const char* name = IsAll ? "all" : "any";
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return IsAll;
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, compute_t<V> v, index_t) {
    return IsAll ? (a && static_cast<bool>(v)) : (a || static_cast<bool>(v));
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    return IsAll ? (a && b) : (a || b);
  }
  template <class Acc>
  FT_HD FT_INLINE static out_type finalize(Acc a, index_t) {
    return a;
  }
};

template <class V, int F, bool D>
struct acc_of<Sum<V, F>, D> {
  using type = std::conditional_t<is_floating_v<V>, std::conditional_t<D, compute_t<V>, double>, std::int64_t>;
};
template <class V, bool D>
struct acc_of<Prod<V>, D> {
  using type = std::conditional_t<is_floating_v<V>, std::conditional_t<D, compute_t<V>, double>, std::int64_t>;
};
template <class V, bool D>
struct acc_of<Norm<V>, D> {
  using type = std::conditional_t<std::is_same_v<V, double> || !D, double, float>;
};
template <class V, bool M, bool D>
struct acc_of<ArgExtreme<V, M>, D> {
  using type = ValueIndex<compute_t<V>>;
};
template <class V, bool S, bool D>
struct acc_of<Variance<V, S>, D> {
  using type = Welford<std::conditional_t<std::is_same_v<V, double> || !D, double, float>>;
};
template <class V, bool D>
struct acc_of<LogSumExp<V>, D> {
  using type = MaxSum<std::conditional_t<std::is_same_v<V, double> || !D, double, float>>;
};
template <class V, bool A, bool D>
struct acc_of<Logical<V, A>, D> {
  using type = bool;
};

}  // namespace red

namespace red {
template <class V>
using SumR = Sum<V, 0>;
template <class V>
using MeanR = Sum<V, 1>;
template <class V>
using MaxR = Extreme<V, true>;
template <class V>
using MinR = Extreme<V, false>;
template <class V>
using ArgMaxR = ArgExtreme<V, true>;
template <class V>
using ArgMinR = ArgExtreme<V, false>;
template <class V>
using AllR = Logical<V, true>;
template <class V>
using AnyR = Logical<V, false>;
}  // namespace red

// Each reduction: f(e) over everything (rank 0), f(e, dim) drops dim, f(e, dim, ft::keepdim) keeps it.
#define FT_REDUCTION(fn, RED)                                               \
  template <Expression E>                                                   \
  auto fn(const E& e) {                                                     \
    return detail::reduce_all(red::RED<typename E::value_type>{}, e);       \
  }                                                                         \
  template <Expression E>                                                   \
  auto fn(const E& e, int dim) {                                            \
    return detail::reduce_dim(red::RED<typename E::value_type>{}, e, dim);  \
  }                                                                         \
  template <Expression E>                                                   \
  auto fn(const E& e, int dim, KeepDim) {                                   \
    return detail::reduce_keep(red::RED<typename E::value_type>{}, e, dim); \
  }
FT_REDUCTION(sum, SumR)
FT_REDUCTION(mean, MeanR)
FT_REDUCTION(prod, Prod)
FT_REDUCTION(max, MaxR)
FT_REDUCTION(min, MinR)
FT_REDUCTION(argmax, ArgMaxR)
FT_REDUCTION(argmin, ArgMinR)
FT_REDUCTION(logsumexp, LogSumExp)
FT_REDUCTION(all, AllR)
FT_REDUCTION(any, AnyR)
#undef FT_REDUCTION

// var/std with Bessel's correction by default (correction = 1, as torch.var).
#define FT_VARIANCE(fn, SQRT)                                                                    \
  template <Expression E>                                                                        \
  auto fn(const E& e, double correction = 1) {                                                   \
    return detail::reduce_all(red::Variance<typename E::value_type, SQRT>{correction}, e);       \
  }                                                                                              \
  template <Expression E>                                                                        \
  auto fn(const E& e, int dim, double correction = 1) {                                          \
    return detail::reduce_dim(red::Variance<typename E::value_type, SQRT>{correction}, e, dim);  \
  }                                                                                              \
  template <Expression E>                                                                        \
  auto fn(const E& e, int dim, KeepDim, double correction = 1) {                                 \
    return detail::reduce_keep(red::Variance<typename E::value_type, SQRT>{correction}, e, dim); \
  }
FT_VARIANCE(var, false)
FT_VARIANCE(std, true)
#undef FT_VARIANCE

// Vector norms (torch.linalg.vector_norm), any p ≥ 0: (Σ|x|^p)^(1/p); p = 0 counts the non-zeros,
// p = inf is max |x|. ft::norm(e), ft::norm(e, 1), ft::norm(e, 2, dim), ft::norm(e, INFINITY,
// dim, ft::keepdim), ft::norm(e, 3, dim).
namespace detail {
inline double check_norm_p(double p) {
  check(p >= 0 && !std::isnan(p), "norm", "p must be a non-negative number or inf, got ", p);
  return p;
}
}  // namespace detail
template <Expression E>
auto norm(const E& e, double p = 2) {
  return detail::reduce_all(red::Norm<typename E::value_type>{detail::check_norm_p(p)}, e);
}
template <Expression E>
auto norm(const E& e, double p, int dim) {
  return detail::reduce_dim(red::Norm<typename E::value_type>{detail::check_norm_p(p)}, e, dim);
}
template <Expression E>
auto norm(const E& e, double p, int dim, KeepDim) {
  return detail::reduce_keep(red::Norm<typename E::value_type>{detail::check_norm_p(p)}, e, dim);
}

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::red {
// The reducers, for the completeness test (each has an adjoint rule and a gradcheck case).
using Reducers = op::List<SumR<double>, MeanR<double>, Prod<double>, MaxR<double>, MinR<double>, ArgMaxR<double>,
                          ArgMinR<double>, Norm<double>, Variance<double, false>, Variance<double, true>,
                          LogSumExp<double>, AllR<double>, AnyR<double>>;
}  // namespace ft::inline FT_ABI::red

namespace ft::inline FT_ABI::autograd {

// ---- reductions: g (of the reduction's rank) expanded back over the reduced dimension ----
namespace detail {
// t, of a reduction's output rank, as an expression of the input's rank that broadcasts to it.
template <class Red, class E, int OR, class Tt>
auto expand(const Reduce<Red, E, OR>& r, const Tt& t) {
  if constexpr (OR == E::rank)  // keepdim
    return t;
  else if constexpr (OR == E::rank - 1)  // the reduced dimension was dropped
    return ft::detail::unsqueeze(t, r.dim() >= 0 ? r.dim() : 0);
  else  // everything into a rank-0 value
    return ft::detail::raise_rank<E::rank>(t);
}
// The reduction's value, expanded: the statement's forward kept it (or it is recomputed once).
template <class Red, class E, int OR>
auto expanded_result(const Reduce<Red, E, OR>& r) {
  return expand(r, r.result());
}
// How many elements each output combined, as a weak scalar.
template <class Red, class E, int OR>
double count(const Reduce<Red, E, OR>& r) {
  return static_cast<double>(r.reduced_size());
}
// The same reduction shape applied to another expression: along r's dim (kept) or over all.
// (For a rank-1 input, over all and along dim 0 are the same.)
template <class Red, class E, int OR, class X, class Red2>
auto like(const Reduce<Red, E, OR>& r, Red2 red2, const X& x) {
  if constexpr (OR == 0 && E::rank > 1)
    return ft::detail::raise_rank<E::rank>(ft::detail::reduce_all(red2, x));
  else if constexpr (E::rank == 0)
    return ft::detail::reduce_all(red2, x);
  else
    return ft::detail::reduce_keep(red2, x, r.dim() >= 0 ? r.dim() : 0);
}
}  // namespace detail

template <class V, int Final>
struct ReduceGrad<red::Sum<V, Final>> {
  static constexpr Rule rule = is_floating_v<V> ? Rule::differentiable : Rule::none;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    if constexpr (Final == 0)
      return ge;
    else if constexpr (Final == 1)
      return ge / detail::count(r);
    else {  // 2-norm
      auto y = detail::expanded_result(r);
      return where(y == 0, 0, ge * r.input() / y);
    }
  }
};
// ∂prod/∂x_i = the product of the other elements (torch's prod_backward): prod / x_i where the
// group has no zero; where it has one, the product of its nonzero elements at the zero and 0
// elsewhere; where it has two or more, 0.
template <class V>
struct ReduceGrad<red::Prod<V>> {
  static constexpr Rule rule = is_floating_v<V> ? Rule::differentiable : Rule::none;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    const auto& x = r.input();
    using X = typename N::input_type::value_type;
    auto zero = x == X(0);
    auto zero_count = detail::like(r, red::SumR<float>{}, cast<float>(zero));
    auto nonzero_prod = detail::like(r, red::Prod<X>{}, where(zero, X(1), x));
    return where(zero_count == 0, ge * detail::expanded_result(r) / x,
                 where(logical_and(zero, zero_count == 1), ge * nonzero_prod, X(0)));
  }
};
// max/min: the gradient goes to the elements equal to the extreme, shared equally among ties
// (torch.amax's rule).
template <class V, bool IsMax>
struct ReduceGrad<red::Extreme<V, IsMax>> {
  static constexpr Rule rule = is_floating_v<V> ? Rule::differentiable : Rule::none;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    auto hit = r.input() == detail::expanded_result(r);
    auto ties = detail::like(r, red::SumR<float>{}, cast<float>(hit));
    return where(hit, ge / ties, 0);
  }
};
// p = 2: g·x/‖x‖ (0 where the norm is 0); p = 1: g·sign(x); p = ∞: g·sign(x) at the elements
// of the largest magnitude, shared among ties.
template <class V>
struct ReduceGrad<red::Norm<V>> {
  static constexpr Rule rule = is_floating_v<V> ? Rule::differentiable : Rule::none;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    const auto& x = r.input();
    auto y = detail::expanded_result(r);
    const double p = r.reducer().p;
    auto top = abs(x) == y;
    auto ties = detail::like(r, red::SumR<float>{}, cast<float>(top));
    // general p: g·sign(x)·|x|^(p−1) / y^(p−1), 0 where y = 0 (torch's norm_backward); p = 0: 0
    auto general = where(y == 0, 0, ge * sign(x) * pow(abs(x) / y, p - 1));
    return where(Scalar<bool>{p == 1}, ge * sign(x),
                 where(Scalar<bool>{p == 2}, where(y == 0, 0, ge * x / y),
                       where(Scalar<bool>{std::isinf(p)}, where(top, ge * sign(x) / ties, 0),
                             where(Scalar<bool>{p == 0}, 0, general))));
  }
};
// var: g·2(x − mean)/(n − correction); std: that divided by 2·std.
template <class V, bool Sqrt>
struct ReduceGrad<red::Variance<V, Sqrt>> {
  static constexpr Rule rule = Rule::differentiable;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    const auto& x = r.input();
    auto mu = detail::like(r, red::MeanR<typename N::input_type::value_type>{}, x);
    const double denom = detail::count(r) - r.reducer().correction;  // not clamped at 0: torch's backward
    if constexpr (Sqrt)
      return ge * (x - mu) / (detail::expanded_result(r) * denom);
    else
      return ge * (x - mu) * (2.0 / denom);
  }
};
template <class V>
struct ReduceGrad<red::LogSumExp<V>> {
  static constexpr Rule rule = Rule::differentiable;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    return ge * exp(r.input() - detail::expanded_result(r));
  }
};
template <class V, bool M>
struct ReduceGrad<red::ArgExtreme<V, M>> {
  static constexpr Rule rule = Rule::none;
};
template <class V, bool A>
struct ReduceGrad<red::Logical<V, A>> {
  static constexpr Rule rule = Rule::none;
};

}  // namespace ft::inline FT_ABI::autograd

#include "ft/exec/reduce.hpp"  // IWYU pragma: export (runs the reductions made here)
