// The Expression concept, scalar leaves, broadcasting of shapes and device agreement.
#pragma once

#include <concepts>
#include <optional>
#include <type_traits>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/index.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/tensor.hpp"

namespace ft::inline FT_ABI {

// What every node and every Tensor provides. The evaluator is the trivially copyable reader
// passed by value into the kernel; for_each_leaf lets the executor inspect the tensors read.
template <class E>
concept Expression = detail::is_expression_node_v<std::remove_cvref_t<E>> && requires(const E& e) {
  typename E::value_type;
  { E::rank } -> std::convertible_to<int>;
  e.shape();
  e.evaluator(EvalContext{});
};

// An operand of an op: an expression or a plain number.
template <class X>
concept Operand = Expression<X> || is_number_v<std::remove_cvref_t<X>>;

// A number broadcast everywhere (rank 0, no device). Of a two-byte floating type, it is held in
// float, unrounded, as PyTorch's kernels hold a Python number next to a half tensor.
template <class T>
struct Scalar {
  using value_type = T;
  static constexpr int rank = 0;
  compute_t<T> value;

  struct Eval {
    compute_t<T> value;
    template <class Ix>
    FT_HD FT_INLINE compute_t<T> operator()(const Ix&) const {
      return value;
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_t<T>, N> load(I) const {
      Vec<compute_t<T>, N> r;
      for (int k = 0; k < N; ++k) r.v[k] = value;
      return r;
    }
  };
  Shape<0> shape() const { return {}; }
  std::optional<Device> device_opt() const { return std::nullopt; }
  Eval evaluator(const EvalContext&) const { return {value}; }
  template <class F>
  void for_each_leaf(F&&) const {}
};

namespace detail {
template <class T>
inline constexpr bool is_expression_node_v<Scalar<T>> = true;

// True when an expression reads an ft::Var (autograd/var.hpp): such expressions record a tape
// node when they are materialised. Each node type forwards the question to its operands.
template <class E>
struct has_var : std::false_type {};
template <class E>
inline constexpr bool has_var_v = has_var<std::remove_cvref_t<E>>::value;

// Device of any node: none for scalars.
template <class E>
std::optional<Device> device_of(const E& e) {
  if constexpr (requires { e.device_opt(); })
    return e.device_opt();
  else
    return e.device();
}

// The one device that all operands share, or an error naming the op and both devices.
inline std::optional<Device> common_device(const char* op, std::optional<Device> a, std::optional<Device> b) {
  if (a && b && !(*a == *b)) fail(op, "expected all operands on the same device, got ", *a, " and ", *b);
  return a ? a : b;
}

// NumPy/PyTorch broadcasting: align from the right; equal sizes or a size of 1 broadcast.
template <int RA, int RB>
Shape<(RA > RB ? RA : RB)> broadcast_shapes(const char* op, const Shape<RA>& a, const Shape<RB>& b) {
  constexpr int R = RA > RB ? RA : RB;
  Shape<R> s;
  for (int i = 0; i < R; ++i) {
    int ia = i - (R - RA), ib = i - (R - RB);
    index_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      fail(op, "cannot broadcast ", to_string(a), " with ", to_string(b), " at dim ", i);
    s[i] = da == 1 ? db : da;
  }
  return s;
}

// A weak scalar (a C++ number next to a tensor) takes the tensor's type, except that a
// floating number next to an integral tensor gives float — PyTorch's rule for Python scalars.
// A bool tensor next to an integral number gives int64, as torch does.
template <class V, class S>
using scalar_type_t =
    std::conditional_t<is_floating_v<S> && !is_floating_v<V>, float,
                       std::conditional_t<std::is_same_v<V, bool> && !std::is_same_v<S, bool>, std::int64_t, V>>;

// The type of a number with no tensor beside it: float or int64, torch's defaults.
template <class S>
using default_type_t =
    std::conditional_t<is_floating_v<S>, float, std::conditional_t<std::is_same_v<S, bool>, bool, std::int64_t>>;

// The type of an elementwise op's result. Evaluators compute in compute_t (float for the two-byte
// types); a result in the compute type of the operands' promoted two-byte type is of that type
// (half + half is half, computed in float), any other result is what the op returns (a
// comparison's bool). An op whose result type is fixed says so: `using result_type = U` (cast).
template <class R, class P>
using logical_result_t = std::conditional_t<is_half_v<P> && std::is_same_v<R, compute_t<P>>, P, R>;

template <class Op, class R, class P>
struct op_result : std::type_identity<logical_result_t<R, P>> {};
template <class Op, class R, class P>
requires requires { typename Op::result_type; }
struct op_result<Op, R, P> : std::type_identity<typename Op::result_type> {};
template <class Op, class A>
using unary_result_t =
    typename op_result<Op, decltype(std::declval<const Op&>()(std::declval<compute_t<A>>())), A>::type;
template <class Op, class A, class B>
using binary_result_t =
    typename op_result<Op,
                       decltype(std::declval<const Op&>()(std::declval<compute_t<A>>(), std::declval<compute_t<B>>())),
                       promote_t<A, B>>::type;

// Wraps a number as Scalar, taking its type from the other operand; passes expressions through.
template <class Other, class X>
auto as_operand(const X& x) {
  if constexpr (is_number_v<X>) {
    using V = typename Other::value_type;
    return Scalar<scalar_type_t<V, X>>{static_cast<compute_t<scalar_type_t<V, X>>>(x)};
  } else {
    return x;
  }
}
}  // namespace detail

}  // namespace ft::inline FT_ABI
