// What every elementwise op family builds on: op lists (for the completeness tests),
// make_unary / make_binary (numbers become weak scalars, zero-dim tensors promote as in
// PyTorch), and the cast op, which type promotion itself uses.
//
// An op family's file (ft/ops/comparison.hpp, arithmetic.hpp, unary_math.hpp, activation.hpp,
// reduction.hpp, the linalg/ boundary ops, nn/loss.hpp) holds, side by side, its functors
// (ft::op), its user-facing functions (ft::) and its adjoint rules (ft::autograd), and lists
// its ops in an op::List for tests/test_gradcheck.cpp.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "ft/autograd/rules.hpp"
#include "ft/core/config.hpp"
#include "ft/core/dtype.hpp"
#include "ft/expr/binary.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/math.hpp"
#include "ft/expr/nary.hpp"
#include "ft/expr/unary.hpp"
#include "ft/expr/where.hpp"

namespace ft::inline FT_ABI::op {

// A family's ops, so that tests can walk them (each needs an adjoint rule and a gradcheck case).
template <class... Ops>
struct List {};

template <class... Lists>
struct concat;
template <>
struct concat<> {
  using type = List<>;
};
template <class... A>
struct concat<List<A...>> {
  using type = List<A...>;
};
template <class... A, class... B, class... Rest>
struct concat<List<A...>, List<B...>, Rest...> : concat<List<A..., B...>, Rest...> {};
template <class... Lists>
using concat_t = typename concat<Lists...>::type;

// A floating value outside the integer type's range (or NaN) converts to the type's lowest
// value, as x86's conversion instructions (and so PyTorch on the CPU) do; uint8 goes through
// int64 and wraps, as torch. Defined on every device: C++'s own conversion is undefined there.
// A two-byte U is computed in float: the value rounded to U and read back.
template <class U>
struct CastTo {
  static constexpr const char* name = "cast";
  using result_type = U;
  template <class T>
  FT_HD FT_INLINE compute_t<U> operator()(T x) const {
    if constexpr (is_half_v<U>) {
      return static_cast<float>(U(static_cast<float>(x)));
    } else if constexpr (std::is_floating_point_v<T> && std::is_unsigned_v<U> && !std::is_same_v<U, bool>) {
      return static_cast<U>(CastTo<std::int64_t>{}(x));
    } else if constexpr (std::is_floating_point_v<T> && std::is_integral_v<U> && !std::is_same_v<U, bool>) {
      const T lo = static_cast<T>(std::numeric_limits<U>::lowest());  // -2^(bits-1): exact in T
      return x >= lo && x < -lo ? static_cast<U>(x) : std::numeric_limits<U>::lowest();
    } else {
      return static_cast<U>(x);
    }
  }
};

}  // namespace ft::inline FT_ABI::op

namespace ft::inline FT_ABI {

template <class Op, Expression A>
auto make_unary(Op op, const A& a) {
  return Unary<Op, A>(op, a);
}

namespace detail {
// bool < integral < floating: the categories of PyTorch's type promotion.
template <class T>
inline constexpr int category_v = std::is_same_v<T, bool> ? 0 : (is_floating_v<T> ? 2 : 1);

// PyTorch's rule for a zero-dim tensor beside a dimensioned one: it decides the result type
// only when its category is higher (float32[3] + float64[] is float32, int32[3] + float64[] is
// float64). Otherwise it is read in the other operand's type.
template <class Other, class Z>
auto zero_dim_operand(const Z& z) {
  using D = typename Other::value_type;
  using V = typename Z::value_type;
  if constexpr (Z::rank == 0 && Other::rank > 0 && !std::is_same_v<V, D> && category_v<V> <= category_v<D>)
    return Unary<op::CastTo<D>, Z>(op::CastTo<D>{}, z);
  else
    return z;
}

// f(a', b') with a and b as operands of one node: a number becomes a weak Scalar of the other
// side's category, and a zero-dim tensor beside a dimensioned one is read in its type.
template <Operand A, Operand B, class F>
requires(Expression<A> || Expression<B>) auto with_operands(const A& a, const B& b, F&& f) {
  if constexpr (Expression<A> && Expression<B>) {
    if constexpr ((A::rank == 0) != (B::rank == 0))
      return f(zero_dim_operand<B>(a), zero_dim_operand<A>(b));
    else
      return f(a, b);
  } else if constexpr (Expression<A>) {
    return f(a, as_operand<A>(b));
  } else {
    return f(as_operand<B>(a), b);
  }
}
}  // namespace detail

// At least one side is an expression; a number on either side becomes a weak Scalar.
template <class Op, Operand A, Operand B>
requires(Expression<A> || Expression<B>) auto make_binary(Op op, const A& a, const B& b) {
  return detail::with_operands(a, b, [&](const auto& x, const auto& y) {
    return Binary<Op, std::decay_t<decltype(x)>, std::decay_t<decltype(y)>>(op, x, y);
  });
}

// The op families' helpers: a function or operator that builds the node of a functor without
// parameters (`FT_BINARY_FUNCTION(add, Add)` defines ft::add(a, b)). Used in namespace ft.
#define FT_UNARY_FUNCTION(fn, Op)   \
  template <Expression A>           \
  auto fn(const A& a) {             \
    return make_unary(op::Op{}, a); \
  }
#define FT_BINARY_FUNCTION(fn, Op) \
  template <Operand A, Operand B>  \
  requires(Expression<A> || Expression<B>) auto fn(const A& a, const B& b) { return make_binary(op::Op{}, a, b); }
#define FT_BINARY_OPERATOR(sym, Op)                                                    \
  template <Operand A, Operand B>                                                      \
  requires(Expression<A> || Expression<B>) auto operator sym(const A& a, const B& b) { \
    return make_binary(op::Op{}, a, b);                                                \
  }

template <class U, Expression A>
auto cast(const A& a) {
  static_assert(is_dtype_v<U>,
                "ft::cast: target type must be float, double, half, bfloat16, int32_t, int64_t, uint8_t or bool");
  return make_unary(op::CastTo<U>{}, a);
}

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::autograd {
// A cast between floating types passes the gradient back in the operand's type; a cast to an
// integer or bool type ends the gradient.
template <class U>
struct UnaryGrad<op::CastTo<U>> {
  static constexpr Rule rule = is_floating_v<U> ? Rule::differentiable : Rule::none;
  template <class G, class A>
  static auto grad(const op::CastTo<U>&, const G& g, const A&) {
    return cast<typename A::value_type>(g);
  }
};
}  // namespace ft::inline FT_ABI::autograd
