// Reductions as expression nodes: sum, mean, prod, max, min, argmax, argmin, norm, var, std,
// logsumexp, all, any — over all elements or along one dimension (dropped, or kept with
// ft::keepdim). `ft::sum(a * b, 1)` reads a and b once, in one launch.
//
// A reduction assigned to a tensor runs straight into it (one launch). Used inside a larger
// expression (`x - ft::max(x, 1, ft::keepdim)`), it is evaluated first into a temporary, which
// the outer kernel reads as a leaf: exactly two launches.
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/math.hpp"
#include "ft/expr/operators.hpp"
#include "ft/expr/temporaries.hpp"

namespace ft::inline FT_ABI {

struct KeepDim {};
inline constexpr KeepDim keepdim{};

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
using sum_t = std::conditional_t<std::is_floating_point_v<V>, V, std::int64_t>;

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
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t) {
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
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t) {
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
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return IsMax ? lowest<V>() : highest<V>();
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc pick(Acc a, Acc b) {
    if (math::isnan(a)) return a;
    if (math::isnan(b)) return b;
    return IsMax ? (b > a ? b : a) : (b < a ? b : a);
  }
  template <class Acc>
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t) {
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
  FT_HD FT_INLINE Acc accumulate(Acc a, V v, index_t) const {
    Acc x = static_cast<Acc>(v);
    x = x < Acc(0) ? -x : x;
    if (p == 1) return a + x;
    if (p == 2) return a + x * x;
    return math::isnan(x) || x > a ? x : a;
  }
  template <class Acc>
  FT_HD FT_INLINE Acc combine(Acc a, Acc b) const {
    if (p == 1 || p == 2) return a + b;
    return math::isnan(b) || b > a ? b : a;
  }
  template <class Acc>
  FT_HD FT_INLINE out_type finalize(Acc a, index_t) const {
    return static_cast<out_type>(p == 2 ? math::sqrt(a) : a);
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
  using P = ValueIndex<V>;
  template <class Acc>
  FT_HD FT_INLINE static Acc init() {
    return Acc{IsMax ? lowest<V>() : highest<V>(), -1};
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
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t i) {
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
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t) {
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
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t) {
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
  FT_HD FT_INLINE static Acc accumulate(Acc a, V v, index_t) {
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

// The accumulator each reducer uses on the host (OnDevice = false) and on a GPU.
// The default (max, min): the element type itself. Floating sums accumulate in double on the
// host (cheap there: a 10^7-element float sum comes out correctly rounded) and in the element
// type on a GPU, where the fixed tree order keeps the error at O(log n) ulps.
template <class Red, bool OnDevice>
struct acc_of {
  using type = typename Red::value_type;
};
template <class V, int F, bool D>
struct acc_of<Sum<V, F>, D> {
  using type = std::conditional_t<std::is_floating_point_v<V>, std::conditional_t<D, V, double>, std::int64_t>;
};
template <class V, bool D>
struct acc_of<Prod<V>, D> {
  using type = std::conditional_t<std::is_floating_point_v<V>, std::conditional_t<D, V, double>, std::int64_t>;
};
template <class V, bool D>
struct acc_of<Norm<V>, D> {
  using type = std::conditional_t<std::is_same_v<V, double> || !D, double, float>;
};
template <class V, bool M, bool D>
struct acc_of<ArgExtreme<V, M>, D> {
  using type = ValueIndex<V>;
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
template <class Red, bool OnDevice>
using acc_t = typename acc_of<Red, OnDevice>::type;

}  // namespace red

// Reduce<Red, E, OutRank>: Red over all of E (dim_ < 0) or along one dimension.
template <class Red, class E, int OutRank>
class Reduce {
 public:
  using value_type = typename Red::out_type;
  static constexpr int rank = OutRank;
  using input_type = E;
  using reducer_type = Red;

  Reduce(Red red, E e, int dim, bool keepdim) : red_(red), e_(std::move(e)), dim_(dim), keepdim_(keepdim) {
    const auto& s = e_.shape();
    if (dim_ >= 0) {
      for (int i = 0, j = 0; i < E::rank; ++i) {
        if (i == dim_) {
          if (keepdim_) shape_[j++] = 1;
        } else {
          shape_[j++] = s[i];
        }
      }
    } else {
      for (int i = 0; i < OutRank; ++i) shape_[i] = 1;
    }
    index_t k = reduced_size();
    if constexpr (std::is_same_v<Red, red::Extreme<typename Red::value_type, true>> ||
                  std::is_same_v<Red, red::Extreme<typename Red::value_type, false>> ||
                  std::is_same_v<Red, red::ArgExtreme<typename Red::value_type, true>> ||
                  std::is_same_v<Red, red::ArgExtreme<typename Red::value_type, false>>) {
      check(k > 0 || output_numel() == 0, Red::name, "cannot reduce over an empty dimension of ", to_string(s),
            " (the result is undefined)");
    }
  }

  const Shape<OutRank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return detail::device_of(e_); }
  Device device() const { return device_opt().value_or(kCPU); }
  const E& input() const { return e_; }
  const Red& reducer() const { return red_; }
  int dim() const { return dim_; }
  // Elements combined into each output element.
  index_t reduced_size() const { return dim_ >= 0 ? e_.shape()[dim_] : e_.shape().numel(); }
  index_t output_numel() const { return shape_.numel(); }

  // Runs the reduction into `dst` (same shape): one launch. Defined in exec/reduce.hpp.
  template <class T>
  void materialize_into(const Tensor<T, OutRank>& dst) const;

  // Inside a larger expression the reduction is a leaf: its value is a temporary of the
  // evaluation in progress (expr/temporaries.hpp), computed on first use.
  const Tensor<value_type, OutRank>& result() const {
    return detail::temporary<Tensor<value_type, OutRank>>(id_, Red::name, [&] {
      Tensor<value_type, OutRank> t(shape_, device());
      materialize_into(t);
      return t;
    });
  }
  auto evaluator(const EvalContext& ctx) const { return result().evaluator(ctx); }
  template <class F>
  void for_each_leaf(F&& f) const {
    result().for_each_leaf(f);
  }
  // Identity of this node and its copies within an evaluation.
  std::uint64_t id() const { return id_; }
  // The value of a reduction over everything, copied to the host: evaluated now, each call.
  value_type item() const {
    detail::EvaluationScope scope(detail::EvaluationScope::fresh);
    return result().item();
  }

 private:
  Red red_;
  E e_;
  int dim_;
  bool keepdim_;
  Shape<OutRank> shape_{};
  std::uint64_t id_ = detail::next_node_id();
};

namespace detail {
template <class Red, class E, int R>
inline constexpr bool is_expression_node_v<Reduce<Red, E, R>> = true;
template <class Red, class E, int R>
struct has_var<Reduce<Red, E, R>> : has_var<E> {};

template <class Red, Expression E>
auto reduce_all(Red red, const E& e) {
  return Reduce<Red, E, 0>(red, e, -1, false);
}
template <class Red, Expression E>
auto reduce_dim(Red red, const E& e, int dim) {
  static_assert(E::rank > 0, "ft: reducing along a dimension needs an operand of rank 1 or more");
  return Reduce<Red, E, E::rank - 1>(red, e, wrap_dim(dim, E::rank, Red::name), false);
}
template <class Red, Expression E>
auto reduce_keep(Red red, const E& e, int dim) {
  return Reduce<Red, E, E::rank>(red, e, wrap_dim(dim, E::rank, Red::name), true);
}
}  // namespace detail

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

// Vector norms, p = 1, 2 or infinity: ft::norm(e), ft::norm(e, 1), ft::norm(e, 2, dim),
// ft::norm(e, INFINITY, dim, ft::keepdim).
namespace detail {
inline double check_norm_p(double p) {
  check(p == 1 || p == 2 || (std::isinf(p) && p > 0), "norm", "p must be 1, 2 or inf, got ", p);
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
