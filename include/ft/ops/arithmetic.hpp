// The arithmetic family: add, sub, mul, div, pow, maximum, minimum, atan2, fmod, remainder,
// neg and clamp; the operators + - * / % and unary -, and the compound assignments.
// Binary ops compute in the promoted type of their inputs (div: floating, as torch.div).
#pragma once

#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/tensor.hpp"
#include "ft/ops/common.hpp"
#include "ft/ops/comparison.hpp"

namespace ft::inline FT_ABI::op {

#define FT_ARITH_BINARY(Name, str, body)                           \
  struct Name {                                                    \
    static constexpr const char* name = str;                       \
    template <class A, class B>                                    \
    FT_HD FT_INLINE promote_t<A, B> operator()(A a_, B b_) const { \
      using C = promote_t<A, B>;                                   \
      C a = static_cast<C>(a_), b = static_cast<C>(b_);            \
      return static_cast<C>(body);                                 \
    }                                                              \
  };
FT_ARITH_BINARY(Add, "add", a + b)
FT_ARITH_BINARY(Sub, "sub", a - b)
FT_ARITH_BINARY(Mul, "mul", a* b)
// maximum/minimum propagate NaN, as torch.maximum/minimum
FT_ARITH_BINARY(Maximum, "maximum", math::isnan(a) ? a : (math::isnan(b) ? b : (a > b ? a : b)))
FT_ARITH_BINARY(Minimum, "minimum", math::isnan(a) ? a : (math::isnan(b) ? b : (a < b ? a : b)))
#undef FT_ARITH_BINARY

// True division, as torch.div: integral inputs give float.
struct Div {
  static constexpr const char* name = "div";
  template <class A, class B>
  FT_HD FT_INLINE auto operator()(A a, B b) const {
    using C = float_promote_t<promote_t<A, B>>;
    return static_cast<C>(static_cast<C>(a) / static_cast<C>(b));
  }
};
struct Pow {
  static constexpr const char* name = "pow";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  template <class A, class B>
  FT_HD FT_INLINE promote_t<A, B> operator()(A a_, B b_) const {
    using C = promote_t<A, B>;
    C a = static_cast<C>(a_), b = static_cast<C>(b_);
    if constexpr (std::is_floating_point_v<C>) {
      return math::pow(a, b);
    } else if constexpr (std::is_same_v<C, bool>) {
      return b ? a : true;
    } else {  // integer power by squaring; negative exponents give 0 unless |a| == 1
      if (b < 0) return a == 1 ? C(1) : (a == C(-1) ? ((b & 1) ? C(-1) : C(1)) : C(0));
      // in the unsigned type: an overflowing power wraps (as torch) instead of being undefined
      using U = std::make_unsigned_t<C>;
      U r = 1, x = static_cast<U>(a);
      while (b) {
        if (b & 1) r = static_cast<U>(r * x);
        b = static_cast<C>(b >> 1);
        if (b) x = static_cast<U>(x * x);  // no squaring after the last bit
      }
      return static_cast<C>(r);
    }
  }
};
struct Atan2 {
  static constexpr const char* name = "atan2";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  template <class A, class B>
  FT_HD FT_INLINE auto operator()(A a, B b) const {
    using C = float_promote_t<promote_t<A, B>>;
    return math::atan2(static_cast<C>(a), static_cast<C>(b));
  }
};
// C's fmod: the result has the sign of the dividend. Integer division by zero gives 0, not a trap.
struct Fmod {
  static constexpr const char* name = "fmod";
  template <class A, class B>
  FT_HD FT_INLINE promote_t<A, B> operator()(A a_, B b_) const {
    using C = promote_t<A, B>;
    C a = static_cast<C>(a_), b = static_cast<C>(b_);
    if constexpr (std::is_floating_point_v<C>)
      return math::fmod(a, b);
    else
      return b == 0 ? C(0) : static_cast<C>(a % b);
  }
};
// Python's modulo (torch.remainder, operator%): the result has the sign of the divisor.
struct Remainder {
  static constexpr const char* name = "remainder";
  template <class A, class B>
  FT_HD FT_INLINE promote_t<A, B> operator()(A a_, B b_) const {
    using C = promote_t<A, B>;
    C a = static_cast<C>(a_), b = static_cast<C>(b_);
    C r = Fmod{}(a, b);
    if constexpr (std::is_unsigned_v<C> || std::is_same_v<C, bool>)
      return r;
    else
      return (r != C(0) && ((r < C(0)) != (b < C(0)))) ? static_cast<C>(r + b) : r;
  }
};

struct Neg {
  static constexpr const char* name = "neg";
  template <class T>
  FT_HD FT_INLINE T operator()(T x) const {
    static_assert(!std::is_same_v<T, bool>, "ft::neg: negation of a bool tensor is not defined; use logical_not");
    return static_cast<T>(-x);
  }
};
// clamp(x, lo, hi) with scalar bounds, in type C; NaN passes through; lo > hi gives hi.
template <class C>
struct Clamp {
  static constexpr const char* name = "clamp";
  C lo, hi;
  template <class T>
  FT_HD FT_INLINE C operator()(T in) const {
    C x = static_cast<C>(in);
    C y = x < lo ? lo : x;
    return y > hi ? hi : y;
  }
};

using ArithmeticUnaryOps = List<Neg, Clamp<float>>;
using ArithmeticBinaryOps = List<Add, Sub, Mul, Div, Pow, Maximum, Minimum, Atan2, Fmod, Remainder>;

}  // namespace ft::inline FT_ABI::op

namespace ft::inline FT_ABI {

FT_BINARY_FUNCTION(add, Add)
FT_BINARY_FUNCTION(sub, Sub)
FT_BINARY_FUNCTION(mul, Mul)
FT_BINARY_FUNCTION(div, Div)
FT_BINARY_FUNCTION(pow, Pow)
FT_BINARY_FUNCTION(maximum, Maximum)
FT_BINARY_FUNCTION(minimum, Minimum)
FT_BINARY_FUNCTION(atan2, Atan2)
FT_BINARY_FUNCTION(fmod, Fmod)
FT_BINARY_FUNCTION(remainder, Remainder)

FT_UNARY_FUNCTION(neg, Neg)
template <Expression A>
auto operator-(const A& a) {
  return neg(a);
}
// Scalar bounds, computed in the weak-scalar type (a fractional bound on an integer tensor
// gives float); min > max gives max everywhere, as torch.clamp. For tensor bounds use
// maximum(minimum(x, hi), lo).
template <Expression A, class Lo, class Hi>
requires(std::is_arithmetic_v<Lo>&& std::is_arithmetic_v<Hi>) auto clamp(const A& a, Lo lo, Hi hi) {
  using C = detail::scalar_type_t<typename A::value_type, promote_t<Lo, Hi>>;
  return make_unary(op::Clamp<C>{static_cast<C>(lo), static_cast<C>(hi)}, a);
}

FT_BINARY_OPERATOR(+, Add)
FT_BINARY_OPERATOR(-, Sub)
FT_BINARY_OPERATOR(*, Mul)
FT_BINARY_OPERATOR(/, Div)
FT_BINARY_OPERATOR(%, Remainder)

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

// The adjoint rules. Div, Pow, Atan2, Fmod and Remainder use square, log, trunc and floor of
// ft/ops/unary_math.hpp, found when a rule is instantiated (that file is included below).
namespace ft::inline FT_ABI::autograd {

#define FT_BINARY_GRAD(Op, dl, dr)                                                          \
  template <>                                                                               \
  struct BinaryGrad<op::Op> {                                                               \
    static constexpr Rule rule = Rule::differentiable;                                      \
    template <class G, class A, class B>                                                    \
    static auto lhs(const G& g, [[maybe_unused]] const A& a, [[maybe_unused]] const B& b) { \
      return dl;                                                                            \
    }                                                                                       \
    template <class G, class A, class B>                                                    \
    static auto rhs(const G& g, [[maybe_unused]] const A& a, [[maybe_unused]] const B& b) { \
      return dr;                                                                            \
    }                                                                                       \
  };
FT_BINARY_GRAD(Add, g, g)
FT_BINARY_GRAD(Sub, g, -g)
FT_BINARY_GRAD(Mul, g* b, g* a)
FT_BINARY_GRAD(Div, g / b, -(g* a / square(b)))
// torch: 0 where the exponent is 0 (d/da), and where a = 0 with b ≥ 0 (d/db)
FT_BINARY_GRAD(Pow, where(b == 0, 0, g* b* pow(a, b - 1)), where(logical_and(a == 0, b >= 0), 0, g* pow(a, b) * log(a)))
// ties share the gradient equally, as torch.maximum/minimum
FT_BINARY_GRAD(Maximum, where(a > b, g, where(a == b, g * 0.5, 0)), where(b > a, g, where(a == b, g * 0.5, 0)))
FT_BINARY_GRAD(Minimum, where(a < b, g, where(a == b, g * 0.5, 0)), where(b < a, g, where(a == b, g * 0.5, 0)))
FT_BINARY_GRAD(Atan2, g* b / (square(a) + square(b)), -(g* a) / (square(a) + square(b)))
FT_BINARY_GRAD(Fmod, g, -(g* trunc(a / b)))
FT_BINARY_GRAD(Remainder, g, -(g* floor(a / b)))
#undef FT_BINARY_GRAD

template <>
struct UnaryGrad<op::Neg> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A>
  static auto grad(const op::Neg&, const G& g, const A&) {
    return -g;
  }
};

namespace dop {
// g where lo ≤ x ≤ hi, else 0 (torch's clamp_backward; a NaN x gets 0).
template <class C>
struct ClampGrad {
  static constexpr const char* name = "clamp_backward";
  C lo, hi;
  template <class G, class X>
  FT_HD FT_INLINE G operator()(G g, X x) const {
    C v = static_cast<C>(x);
    return v >= lo && v <= hi ? g : G(0);
  }
};
}  // namespace dop

template <class C>
struct UnaryGrad<op::Clamp<C>> {
  static constexpr Rule rule = is_floating_v<C> ? Rule::differentiable : Rule::none;
  template <class G, class A>
  static auto grad(const op::Clamp<C>& o, const G& g, const A& a) {
    return make_binary(dop::ClampGrad<C>{o.lo, o.hi}, g, a);
  }
};

}  // namespace ft::inline FT_ABI::autograd

#include "ft/ops/unary_math.hpp"  // IWYU pragma: export (the rules above use its functions)
