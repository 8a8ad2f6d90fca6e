// The comparison and logical family: eq, ne, lt, le, gt, ge, logical_and/or/not (bool results,
// operators == != < <= > >= !) and where(cond, a, b). None carries a gradient; where routes
// its gradient by the condition (autograd/adjoint.hpp, the Where node).
#pragma once

#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/ops/common.hpp"

namespace ft::inline FT_ABI::op {

#define FT_COMPARE(Name, str, expr)                     \
  struct Name {                                         \
    static constexpr const char* name = str;            \
    template <class A, class B>                         \
    FT_HD FT_INLINE bool operator()(A a_, B b_) const { \
      using C = promote_t<A, B>;                        \
      C a = static_cast<C>(a_), b = static_cast<C>(b_); \
      return expr;                                      \
    }                                                   \
  };
FT_COMPARE(Eq, "eq", a == b)
FT_COMPARE(Ne, "ne", a != b)
FT_COMPARE(Lt, "lt", a < b)
FT_COMPARE(Le, "le", a <= b)
FT_COMPARE(Gt, "gt", a > b)
FT_COMPARE(Ge, "ge", a >= b)
#undef FT_COMPARE

struct LogicalAnd {
  static constexpr const char* name = "logical_and";
  template <class A, class B>
  FT_HD FT_INLINE bool operator()(A a, B b) const {
    return static_cast<bool>(a) && static_cast<bool>(b);
  }
};
struct LogicalOr {
  static constexpr const char* name = "logical_or";
  template <class A, class B>
  FT_HD FT_INLINE bool operator()(A a, B b) const {
    return static_cast<bool>(a) || static_cast<bool>(b);
  }
};
struct LogicalNot {
  static constexpr const char* name = "logical_not";
  template <class T>
  FT_HD FT_INLINE bool operator()(T x) const {
    return !static_cast<bool>(x);
  }
};

using ComparisonUnaryOps = List<LogicalNot>;
using ComparisonBinaryOps = List<Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr>;

}  // namespace ft::inline FT_ABI::op

namespace ft::inline FT_ABI {

FT_BINARY_FUNCTION(eq, Eq)
FT_BINARY_FUNCTION(ne, Ne)
FT_BINARY_FUNCTION(lt, Lt)
FT_BINARY_FUNCTION(le, Le)
FT_BINARY_FUNCTION(gt, Gt)
FT_BINARY_FUNCTION(ge, Ge)
FT_BINARY_FUNCTION(logical_and, LogicalAnd)
FT_BINARY_FUNCTION(logical_or, LogicalOr)

FT_UNARY_FUNCTION(logical_not, LogicalNot)
template <Expression A>
auto operator!(const A& a) {
  return logical_not(a);
}

FT_BINARY_OPERATOR(==, Eq)
FT_BINARY_OPERATOR(!=, Ne)
FT_BINARY_OPERATOR(<, Lt)
FT_BINARY_OPERATOR(<=, Le)
FT_BINARY_OPERATOR(>, Gt)
FT_BINARY_OPERATOR(>=, Ge)

// where(cond, a, b): a and b may be numbers.
template <Expression C, Operand A, Operand B>
auto where(const C& c, const A& a, const B& b) {
  if constexpr (Expression<A> || Expression<B>) {
    return detail::with_operands(a, b, [&](const auto& x, const auto& y) {
      return Where<C, std::decay_t<decltype(x)>, std::decay_t<decltype(y)>>(c, x, y);
    });
  } else {
    using T = detail::default_type_t<promote_t<A, B>>;
    return Where<C, Scalar<T>, Scalar<T>>(c, Scalar<T>{static_cast<T>(a)}, Scalar<T>{static_cast<T>(b)});
  }
}

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::autograd {
FT_ADJOINT_RULE(BinaryGrad, op::Eq, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::Ne, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::Lt, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::Le, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::Gt, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::Ge, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::LogicalAnd, Rule::none)
FT_ADJOINT_RULE(BinaryGrad, op::LogicalOr, Rule::none)
FT_ADJOINT_RULE(UnaryGrad, op::LogicalNot, Rule::none)
}  // namespace ft::inline FT_ABI::autograd
