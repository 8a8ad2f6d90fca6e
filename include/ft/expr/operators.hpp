// The user-facing elementwise API: operator overloads and PyTorch-named functions. Each
// returns a lazy expression node; nothing runs until the result is assigned or evaluated.
#pragma once

#include <string_view>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/expr/binary.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/ops.hpp"
#include "ft/expr/unary.hpp"
#include "ft/expr/where.hpp"

namespace ft::inline FT_ABI {

template <class Op, Expression A>
auto make_unary(Op op, const A& a) {
  return Unary<Op, A>(op, a);
}

namespace detail {
// bool < integral < floating: the categories of PyTorch's type promotion.
template <class T>
inline constexpr int category_v = std::is_same_v<T, bool> ? 0 : (std::is_floating_point_v<T> ? 2 : 1);

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
}  // namespace detail

// At least one side is an expression; a number on either side becomes a weak Scalar.
template <class Op, Operand A, Operand B>
requires(Expression<A> || Expression<B>) auto make_binary(Op op, const A& a, const B& b) {
  if constexpr (Expression<A> && Expression<B>) {
    if constexpr ((A::rank == 0) != (B::rank == 0)) {
      auto za = detail::zero_dim_operand<B>(a);
      auto zb = detail::zero_dim_operand<A>(b);
      return Binary<Op, decltype(za), decltype(zb)>(op, za, zb);
    } else {
      return Binary<Op, A, B>(op, a, b);
    }
  } else if constexpr (Expression<A>) {
    auto s = detail::as_operand<A>(b);
    return Binary<Op, A, decltype(s)>(op, a, s);
  } else {
    auto s = detail::as_operand<B>(a);
    return Binary<Op, decltype(s), B>(op, s, b);
  }
}

// ---- unary functions ----
#define FT_UNARY_FN(fn, Op)         \
  template <Expression A>           \
  auto fn(const A& a) {             \
    return make_unary(op::Op{}, a); \
  }
FT_UNARY_FN(neg, Neg)
FT_UNARY_FN(abs, Abs)
FT_UNARY_FN(exp, Exp)
FT_UNARY_FN(exp2, Exp2)
FT_UNARY_FN(log, Log)
FT_UNARY_FN(log2, Log2)
FT_UNARY_FN(log1p, Log1p)
FT_UNARY_FN(expm1, Expm1)
FT_UNARY_FN(sqrt, Sqrt)
FT_UNARY_FN(rsqrt, Rsqrt)
FT_UNARY_FN(square, Square)
FT_UNARY_FN(reciprocal, Reciprocal)
FT_UNARY_FN(sin, Sin)
FT_UNARY_FN(cos, Cos)
FT_UNARY_FN(tan, Tan)
FT_UNARY_FN(tanh, Tanh)
FT_UNARY_FN(sigmoid, Sigmoid)
FT_UNARY_FN(relu, Relu)
FT_UNARY_FN(silu, Silu)
FT_UNARY_FN(erf, Erf)
FT_UNARY_FN(floor, Floor)
FT_UNARY_FN(ceil, Ceil)
FT_UNARY_FN(round, Round)
FT_UNARY_FN(trunc, Trunc)
FT_UNARY_FN(sign, Sign)
FT_UNARY_FN(logical_not, LogicalNot)
#undef FT_UNARY_FN

template <Expression A>
auto leaky_relu(const A& a, double negative_slope = 0.01) {
  return make_unary(op::LeakyRelu{negative_slope}, a);
}
template <Expression A>
auto elu(const A& a, double alpha = 1.0) {
  return make_unary(op::Elu{alpha}, a);
}
// approximate: "none" (the erf form) or "tanh", as torch.nn.functional.gelu.
template <Expression A>
auto gelu(const A& a, std::string_view approximate = "none") {
  check(approximate == "none" || approximate == "tanh", "gelu", "approximate must be \"none\" or \"tanh\", got \"",
        approximate, "\"");
  return make_unary(op::Gelu{approximate == "tanh"}, a);
}
template <Expression A>
auto softplus(const A& a, double beta = 1.0, double threshold = 20.0) {
  return make_unary(op::Softplus{beta, threshold}, a);
}
// Scalar bounds, computed in the weak-scalar type (a fractional bound on an integer tensor
// gives float); min > max gives max everywhere, as torch.clamp. For tensor bounds use
// maximum(minimum(x, hi), lo).
template <Expression A, class Lo, class Hi>
requires(std::is_arithmetic_v<Lo>&& std::is_arithmetic_v<Hi>) auto clamp(const A& a, Lo lo, Hi hi) {
  using C = detail::scalar_type_t<typename A::value_type, promote_t<Lo, Hi>>;
  return make_unary(op::Clamp<C>{static_cast<C>(lo), static_cast<C>(hi)}, a);
}
template <class U, Expression A>
auto cast(const A& a) {
  static_assert(is_dtype_v<U>, "ft::cast: target type must be float, double, int32_t, int64_t, uint8_t or bool");
  return make_unary(op::CastTo<U>{}, a);
}

// ---- binary functions ----
#define FT_BINARY_FN(fn, Op)      \
  template <Operand A, Operand B> \
  requires(Expression<A> || Expression<B>) auto fn(const A& a, const B& b) { return make_binary(op::Op{}, a, b); }
FT_BINARY_FN(add, Add)
FT_BINARY_FN(sub, Sub)
FT_BINARY_FN(mul, Mul)
FT_BINARY_FN(div, Div)
FT_BINARY_FN(pow, Pow)
FT_BINARY_FN(maximum, Maximum)
FT_BINARY_FN(minimum, Minimum)
FT_BINARY_FN(atan2, Atan2)
FT_BINARY_FN(fmod, Fmod)
FT_BINARY_FN(remainder, Remainder)
FT_BINARY_FN(eq, Eq)
FT_BINARY_FN(ne, Ne)
FT_BINARY_FN(lt, Lt)
FT_BINARY_FN(le, Le)
FT_BINARY_FN(gt, Gt)
FT_BINARY_FN(ge, Ge)
FT_BINARY_FN(logical_and, LogicalAnd)
FT_BINARY_FN(logical_or, LogicalOr)
#undef FT_BINARY_FN

// ---- operators ----
template <Expression A>
auto operator-(const A& a) {
  return neg(a);
}
template <Expression A>
auto operator!(const A& a) {
  return logical_not(a);
}

#define FT_BINARY_OPERATOR(sym, Op)                                                    \
  template <Operand A, Operand B>                                                      \
  requires(Expression<A> || Expression<B>) auto operator sym(const A& a, const B& b) { \
    return make_binary(op::Op{}, a, b);                                                \
  }
FT_BINARY_OPERATOR(+, Add)
FT_BINARY_OPERATOR(-, Sub)
FT_BINARY_OPERATOR(*, Mul)
FT_BINARY_OPERATOR(/, Div)
FT_BINARY_OPERATOR(%, Remainder)
FT_BINARY_OPERATOR(==, Eq)
FT_BINARY_OPERATOR(!=, Ne)
FT_BINARY_OPERATOR(<, Lt)
FT_BINARY_OPERATOR(<=, Le)
FT_BINARY_OPERATOR(>, Gt)
FT_BINARY_OPERATOR(>=, Ge)
#undef FT_BINARY_OPERATOR

// where(cond, a, b): a and b may be numbers.
template <Expression C, Operand A, Operand B>
auto where(const C& c, const A& a, const B& b) {
  if constexpr (Expression<A> && Expression<B>) {
    if constexpr ((A::rank == 0) != (B::rank == 0)) {
      auto za = detail::zero_dim_operand<B>(a);
      auto zb = detail::zero_dim_operand<A>(b);
      return Where<C, decltype(za), decltype(zb)>(c, za, zb);
    } else {
      return Where<C, A, B>(c, a, b);
    }
  } else if constexpr (Expression<A>) {
    auto sb = detail::as_operand<A>(b);
    return Where<C, A, decltype(sb)>(c, a, sb);
  } else if constexpr (Expression<B>) {
    auto sa = detail::as_operand<B>(a);
    return Where<C, decltype(sa), B>(c, sa, b);
  } else {
    using T = detail::default_type_t<promote_t<A, B>>;
    return Where<C, Scalar<T>, Scalar<T>>(c, Scalar<T>{static_cast<T>(a)}, Scalar<T>{static_cast<T>(b)});
  }
}

// ---- compound assignment: in place, one launch ----
// Also on a temporary view: `x.slice(0, 0, 4, 2) += 1.0f;` updates x.
#define FT_COMPOUND(sym, fn)                                 \
  template <class T, int R, Operand E>                       \
  Tensor<T, R>& operator sym(Tensor<T, R>& t, const E& e) {  \
    t = fn(t, e);                                            \
    return t;                                                \
  }                                                          \
  template <class T, int R, Operand E>                       \
  Tensor<T, R>& operator sym(Tensor<T, R>&& t, const E& e) { \
    return t sym e;                                          \
  }
FT_COMPOUND(+=, add)
FT_COMPOUND(-=, sub)
FT_COMPOUND(*=, mul)
FT_COMPOUND(/=, div)
FT_COMPOUND(%=, remainder)
#undef FT_COMPOUND

}  // namespace ft::inline FT_ABI
