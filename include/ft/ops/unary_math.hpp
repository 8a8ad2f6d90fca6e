// The unary math family: exp, exp2, log, log2, log1p, expm1, sqrt, rsqrt, reciprocal, sin, cos,
// tan, tanh, erf, floor, ceil, round, trunc, abs, square and sign. The floating functions compute
// integral inputs in float, as PyTorch does; floor … trunc, abs and sign keep the input type.
#pragma once

#include <cstdint>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/ops/arithmetic.hpp"
#include "ft/ops/common.hpp"
#include "ft/ops/comparison.hpp"

namespace ft::inline FT_ABI::op {

// A floating unary op: promotes integral input to float, then applies `body`. `heavy`: a
// transcendental function (`costly`: autograd/saved_derivatives.hpp weighs recomputing it).
#define FT_FLOAT_UNARY(Name, str, heavy, body)    \
  struct Name {                                   \
    static constexpr const char* name = str;      \
    static constexpr bool costly = heavy;         \
    template <class T>                            \
    FT_HD FT_INLINE auto operator()(T in) const { \
      using F = float_promote_t<T>;               \
      F x = static_cast<F>(in);                   \
      return static_cast<F>(body);                \
    }                                             \
  };
FT_FLOAT_UNARY(Exp, "exp", true, math::exp(x))
FT_FLOAT_UNARY(Exp2, "exp2", true, math::exp2(x))
FT_FLOAT_UNARY(Log, "log", true, math::log(x))
FT_FLOAT_UNARY(Log2, "log2", true, math::log2(x))
FT_FLOAT_UNARY(Log1p, "log1p", true, math::log1p(x))
FT_FLOAT_UNARY(Expm1, "expm1", true, math::expm1(x))
FT_FLOAT_UNARY(Sqrt, "sqrt", false, math::sqrt(x))
FT_FLOAT_UNARY(Rsqrt, "rsqrt", false, math::rsqrt(x))
FT_FLOAT_UNARY(Reciprocal, "reciprocal", false, F(1) / x)
FT_FLOAT_UNARY(Sin, "sin", true, math::sin(x))
FT_FLOAT_UNARY(Cos, "cos", true, math::cos(x))
FT_FLOAT_UNARY(Tan, "tan", true, math::tan(x))
FT_FLOAT_UNARY(Tanh, "tanh", true, math::tanh(x))
FT_FLOAT_UNARY(Erf, "erf", true, math::erf(x))
#undef FT_FLOAT_UNARY

// Ops that keep the input type (integral stays integral).
#define FT_SAME_UNARY(Name, str, body)           \
  struct Name {                                  \
    static constexpr const char* name = str;     \
    template <class T>                           \
    FT_HD FT_INLINE T operator()(T x) const {    \
      if constexpr (std::is_floating_point_v<T>) \
        return body;                             \
      else                                       \
        return x;                                \
    }                                            \
  };
FT_SAME_UNARY(Floor, "floor", math::floor(x))
FT_SAME_UNARY(Ceil, "ceil", math::ceil(x))
FT_SAME_UNARY(Round, "round", math::rint(x))
FT_SAME_UNARY(Trunc, "trunc", math::trunc(x))
#undef FT_SAME_UNARY

struct Abs {
  static constexpr const char* name = "abs";
  template <class T>
  FT_HD FT_INLINE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return math::fabs(x);
    else if constexpr (std::is_unsigned_v<T>)
      return x;
    else
      return x < 0 ? static_cast<T>(-x) : x;
  }
};
// square(bool) is int64, as torch.square
struct Square {
  static constexpr const char* name = "square";
  template <class T>
  FT_HD FT_INLINE auto operator()(T in) const {
    using R = std::conditional_t<std::is_same_v<T, bool>, std::int64_t, T>;
    const R x = static_cast<R>(in);
    return static_cast<R>(x * x);
  }
};
struct Sign {
  static constexpr const char* name = "sign";
  template <class T>
  FT_HD FT_INLINE T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>)
      return static_cast<T>(x != T(0));
    else
      return static_cast<T>((T(0) < x) - (x < T(0)));
  }
};

using UnaryMathOps = List<Exp, Exp2, Log, Log2, Log1p, Expm1, Sqrt, Rsqrt, Reciprocal, Sin, Cos, Tan, Tanh, Erf, Floor,
                          Ceil, Round, Trunc, Abs, Square, Sign>;

}  // namespace ft::inline FT_ABI::op

namespace ft::inline FT_ABI {

FT_UNARY_FUNCTION(exp, Exp)
FT_UNARY_FUNCTION(exp2, Exp2)
FT_UNARY_FUNCTION(log, Log)
FT_UNARY_FUNCTION(log2, Log2)
FT_UNARY_FUNCTION(log1p, Log1p)
FT_UNARY_FUNCTION(expm1, Expm1)
FT_UNARY_FUNCTION(sqrt, Sqrt)
FT_UNARY_FUNCTION(rsqrt, Rsqrt)
FT_UNARY_FUNCTION(reciprocal, Reciprocal)
FT_UNARY_FUNCTION(sin, Sin)
FT_UNARY_FUNCTION(cos, Cos)
FT_UNARY_FUNCTION(tan, Tan)
FT_UNARY_FUNCTION(tanh, Tanh)
FT_UNARY_FUNCTION(erf, Erf)
FT_UNARY_FUNCTION(floor, Floor)
FT_UNARY_FUNCTION(ceil, Ceil)
FT_UNARY_FUNCTION(round, Round)
FT_UNARY_FUNCTION(trunc, Trunc)
FT_UNARY_FUNCTION(abs, Abs)
FT_UNARY_FUNCTION(square, Square)
FT_UNARY_FUNCTION(sign, Sign)

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::autograd {

#define FT_UNARY_GRAD(Op, expr)                                                                   \
  template <>                                                                                     \
  struct UnaryGrad<op::Op> {                                                                      \
    static constexpr Rule rule = Rule::differentiable;                                            \
    template <class G, class A>                                                                   \
    static auto grad([[maybe_unused]] const op::Op& o, const G& g, [[maybe_unused]] const A& a) { \
      return expr;                                                                                \
    }                                                                                             \
  };
FT_UNARY_GRAD(Exp, g* exp(a))
FT_UNARY_GRAD(Exp2, g* exp2(a) * 0.69314718055994530942)
FT_UNARY_GRAD(Log, g / a)
FT_UNARY_GRAD(Log2, g / (a * 0.69314718055994530942))
FT_UNARY_GRAD(Log1p, g / (a + 1))
FT_UNARY_GRAD(Expm1, g* exp(a))
FT_UNARY_GRAD(Sqrt, g / (sqrt(a) * 2))
FT_UNARY_GRAD(Rsqrt, g* rsqrt(a) / a * -0.5)
FT_UNARY_GRAD(Reciprocal, -(g / square(a)))
FT_UNARY_GRAD(Sin, g* cos(a))
FT_UNARY_GRAD(Cos, -(g* sin(a)))
FT_UNARY_GRAD(Tan, g*(square(tan(a)) + 1))
FT_UNARY_GRAD(Tanh, g*(1 - square(tanh(a))))
FT_UNARY_GRAD(Erf, g* exp(-square(a)) * 1.12837916709551257390)
FT_UNARY_GRAD(Abs, g* sign(a))
FT_UNARY_GRAD(Square, g* a * 2)
#undef FT_UNARY_GRAD

FT_ADJOINT_RULE(UnaryGrad, op::Floor, Rule::zero)
FT_ADJOINT_RULE(UnaryGrad, op::Ceil, Rule::zero)
FT_ADJOINT_RULE(UnaryGrad, op::Round, Rule::zero)
FT_ADJOINT_RULE(UnaryGrad, op::Trunc, Rule::zero)
FT_ADJOINT_RULE(UnaryGrad, op::Sign, Rule::zero)

}  // namespace ft::inline FT_ABI::autograd
