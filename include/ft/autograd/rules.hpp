// The adjoint tables' primary templates. Each op family's file (ft/ops/*.hpp, nn/loss.hpp)
// specialises them beside the op's forward; the walker in autograd/adjoint.hpp reads them.
//
// UnaryGrad<Op>::grad(op, g, a)        = ∂L/∂a given g = ∂L/∂op(a)
// BinaryGrad<Op>::lhs/rhs(g, a, b)     = ∂L/∂a, ∂L/∂b given g = ∂L/∂op(a, b), before the sum over
//                                        broadcast dimensions (the walker adds it)
// ReduceGrad<Red>::grad(r, g)          = ∂L/∂x for the reduction r over x, g expanded back to x's rank
//
// Each is an expression over the node's operands, so a leaf's gradient is one fused kernel. A
// user op gets autograd by specialising one of them.
#pragma once

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::autograd {

// How an op's gradient is defined: by a rule, not at all (comparisons, logical ops, casts to
// integers: their results carry no gradient), or as zero almost everywhere (floor, sign …:
// no gradient is propagated through them).
enum class Rule { missing, differentiable, none, zero };

template <class Op>
struct UnaryGrad {
  static constexpr Rule rule = Rule::missing;
};
template <class Op>
struct BinaryGrad {
  static constexpr Rule rule = Rule::missing;
};
template <class Red>
struct ReduceGrad {
  static constexpr Rule rule = Rule::missing;
};

}  // namespace ft::inline FT_ABI::autograd

// A rule with no gradient expression (Rule::none or Rule::zero), in namespace ft::autograd:
// `FT_ADJOINT_RULE(UnaryGrad, op::Floor, Rule::zero)`.
#define FT_ADJOINT_RULE(Kind, Op, r) \
  template <>                        \
  struct Kind<Op> {                  \
    static constexpr Rule rule = r;  \
  };
