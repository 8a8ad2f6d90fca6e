// The walker: the adjoint of every expression node kind (Var, Unary, Binary, Where, SumTo,
// Reduce), which reads the ops' rules (UnaryGrad, BinaryGrad, ReduceGrad: autograd/rules.hpp,
// specialised in each op family's file beside the op).
//
// backprop(e, g, f, k) walks the statement `e` from the root with g = ∂L/∂e (an expression of
// e's rank whose shape broadcasts to e's) and calls f(var, g_var) at each Var leaf, where
// g_var is that leaf's gradient *expression*; it calls k with f's results, one an occurrence of
// a Var in the statement, in the order of the walk, and returns what k returns. (Passing the
// results on, instead of returning them gathered, builds no tuple per node: concatenating the
// subtrees' tuples made 21,000 of the 149,000 functions of ft_gradcheck's first batch at -O0,
// 6 % of its compile time.) Nothing is evaluated here: the rules compose
// types (mul: dA = g·b, dB = g·a; exp: dA = g·exp(a); where: g routed by the condition;
// broadcast: sum_to; reduction: g expanded back), so each leaf's gradient is one fused kernel
// that recomputes what it needs from the statement's leaves. The table of unary and binary
// derivatives is in the op families (ft/ops/*.hpp); a user op gets autograd by specialising
// UnaryGrad or BinaryGrad.
#pragma once

#include <string>
#include <tuple>
#include <type_traits>

#include "ft/autograd/rules.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/expr/generator.hpp"
#include "ft/expr/shape_ops.hpp"
#include "ft/ops/elementwise.hpp"
#include "ft/ops/reduction.hpp"

namespace ft::inline FT_ABI::autograd {

// ---- walking a statement ----
template <class E>
struct Adjoint {
  static constexpr bool defined = false;
};

template <class E, class G, class F, class Cont>
decltype(auto) backprop(const E& e, const G& g, F&& f, Cont&& k);

namespace detail {
// The gradient of an operand of shape `s` from an expression over the parent's shape: summed
// over the dimensions the operand was broadcast along (nothing, unmaterialised, if none).
template <int R, class G>
auto fit(const G& g, const Shape<R>& s) {
  if constexpr (G::rank >= R)
    return SumTo<G, R>(g, s);
  else
    return ft::detail::raise_rank<R>(g);
}

// A node with two differentiable operands (Adj::lhs and Adj::rhs walk one each): k gets the
// left operand's occurrences, then the right's.
template <class Adj, class N, class G, class F, class Cont>
decltype(auto) both_operands(const N& n, const G& g, F& f, Cont& k) {
  return Adj::lhs(n, g, f, [&](auto&&... a) -> decltype(auto) {
    return Adj::rhs(n, g, f, [&](auto&&... b) -> decltype(auto) {
      return k(std::forward<decltype(a)>(a)..., std::forward<decltype(b)>(b)...);
    });
  });
}
}  // namespace detail

template <class T, int R>
struct Adjoint<Var<T, R>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Var<T, R>& v, const G& g, F&& f, Cont&& k) {
    return k(f(v, g));
  }
};

template <class Op, class A>
struct Adjoint<Unary<Op, A>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Unary<Op, A>& u, const G& g, F&& f, Cont&& k) {
    constexpr Rule rule = UnaryGrad<Op>::rule;
    static_assert(rule != Rule::missing,
                  "ft::autograd: this unary op has no adjoint rule; specialise ft::autograd::UnaryGrad<Op> "
                  "(see autograd/rules.hpp) or compute it under an ft::NoGradGuard");
    if constexpr (rule == Rule::differentiable)
      return backprop(u.operand(), UnaryGrad<Op>::grad(u.op(), g, u.operand()), f, k);
    else
      return k();
  }
};

template <class Op, class A, class B>
struct Adjoint<Binary<Op, A, B>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Binary<Op, A, B>& n, const G& g, F&& f, Cont&& k) {
    constexpr Rule rule = BinaryGrad<Op>::rule;
    static_assert(rule != Rule::missing,
                  "ft::autograd: this binary op has no adjoint rule; specialise ft::autograd::BinaryGrad<Op> "
                  "(see autograd/rules.hpp) or compute it under an ft::NoGradGuard");
    if constexpr (rule == Rule::differentiable)
      return detail::both_operands<Adjoint>(n, g, f, k);
    else
      return k();
  }
  template <class G, class F, class Cont>
  static decltype(auto) lhs(const Binary<Op, A, B>& n, const G& g, F& f, Cont&& k) {
    if constexpr (ft::detail::has_var_v<A>)
      return backprop(n.lhs(), detail::fit(BinaryGrad<Op>::lhs(g, n.lhs(), n.rhs()), n.lhs().shape()), f, k);
    else
      return k();
  }
  template <class G, class F, class Cont>
  static decltype(auto) rhs(const Binary<Op, A, B>& n, const G& g, F& f, Cont&& k) {
    if constexpr (ft::detail::has_var_v<B>)
      return backprop(n.rhs(), detail::fit(BinaryGrad<Op>::rhs(g, n.lhs(), n.rhs()), n.rhs().shape()), f, k);
    else
      return k();
  }
};

// where(c, a, b) routes g to a where c holds and to b elsewhere (the expression path and the
// reverse sweep, autograd/sweep.hpp, both use this rule).
struct WhereGrad {
  template <class Cond, class G>
  static auto lhs(const Cond& c, const G& g) {
    return where(c, g, 0);
  }
  template <class Cond, class G>
  static auto rhs(const Cond& c, const G& g) {
    return where(c, 0, g);
  }
};

template <class C, class A, class B>
struct Adjoint<Where<C, A, B>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Where<C, A, B>& n, const G& g, F&& f, Cont&& k) {
    return detail::both_operands<Adjoint>(n, g, f, k);
  }
  template <class G, class F, class Cont>
  static decltype(auto) lhs(const Where<C, A, B>& n, const G& g, F& f, Cont&& k) {
    if constexpr (ft::detail::has_var_v<A>)
      return backprop(n.lhs(), detail::fit(WhereGrad::lhs(n.condition(), g), n.lhs().shape()), f, k);
    else
      return k();
  }
  template <class G, class F, class Cont>
  static decltype(auto) rhs(const Where<C, A, B>& n, const G& g, F& f, Cont&& k) {
    if constexpr (ft::detail::has_var_v<B>)
      return backprop(n.rhs(), detail::fit(WhereGrad::rhs(n.condition(), g), n.rhs().shape()), f, k);
    else
      return k();
  }
};

// The gradient of a node whose output is smaller than its input (a sum_to, a reduction) is read
// over the input's whole shape (BroadcastTo): an operand of the input broadcast along a summed
// dimension then sums it once per element there.
template <class E, int R>
struct Adjoint<SumTo<E, R>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const SumTo<E, R>& n, const G& g, F&& f, Cont&& k) {
    return backprop(n.input(), ft::detail::broadcast_to(ft::detail::raise_rank<E::rank>(g), n.input().shape()), f, k);
  }
};

template <class E, int R>
struct Adjoint<BroadcastTo<E, R>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const BroadcastTo<E, R>& n, const G& g, F&& f, Cont&& k) {
    return backprop(n.input(), detail::fit(g, n.input().shape()), f, k);
  }
};

template <class Red, class E, int OR>
struct Adjoint<Reduce<Red, E, OR>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Reduce<Red, E, OR>& r, const G& g, F&& f, Cont&& k) {
    constexpr Rule rule = ReduceGrad<Red>::rule;
    static_assert(rule != Rule::missing, "ft::autograd: this reduction has no adjoint rule");
    if constexpr (rule == Rule::differentiable)
      return backprop(
          r.input(),
          ft::detail::broadcast_to(ft::detail::raise_rank<E::rank>(ReduceGrad<Red>::grad(r, detail::expand(r, g))),
                                   r.input().shape()),
          f, k);
    else
      return k();
  }
};

template <class E, class G, class F, class Cont>
decltype(auto) backprop(const E& e, const G& g, F&& f, Cont&& k) {
  if constexpr (ft::detail::has_var_v<E>) {
    static_assert(G::rank == E::rank, "ft::autograd: internal error, a gradient's rank differs from its node's");
    static_assert(
        requires { Adjoint<E>::apply(e, g, f, k); },
        "ft::autograd: no adjoint rule for this expression node; compute it under an ft::NoGradGuard");
    return Adjoint<E>::apply(e, g, f, k);
  } else {
    return k();
  }
}

// ---- the Vars a statement reads, and its op chain for messages ----
// Calls f(child) for each operand of node e (none for a leaf): the one place that knows how
// the node kinds hold their operands.
template <class E, class F>
void for_each_operand(const E& e, F&& f) {
  if constexpr (requires { e.operand(); }) {
    f(e.operand());
  } else if constexpr (requires { e.condition(); }) {
    f(e.condition());
    f(e.lhs());
    f(e.rhs());
  } else if constexpr (requires { e.lhs(); }) {
    f(e.lhs());
    f(e.rhs());
  } else if constexpr (requires { e.input(); }) {
    f(e.input());
  }
}

template <class E, class F>
void for_each_var(const E& e, F&& f) {
  if constexpr (ft::detail::is_var<E>::value)
    f(e);
  else if constexpr (ft::detail::has_var_v<E>)
    for_each_operand(e, [&](const auto& c) { for_each_var(c, f); });
}

template <class E>
std::string describe(const E& e) {
  if constexpr (ft::detail::is_var<E>::value) {
    return "Var" + to_string(e.shape());
  } else if constexpr (requires {
                         e.operand();
                         e.op();
                       }) {
    return std::string(E::op_name()) + "(" + describe(e.operand()) + ")";
  } else if constexpr (requires { e.operand(); }) {
    return "unsqueeze(" + describe(e.operand()) + ")";
  } else if constexpr (requires { e.condition(); }) {
    return "where(" + describe(e.condition()) + ", " + describe(e.lhs()) + ", " + describe(e.rhs()) + ")";
  } else if constexpr (requires { e.lhs(); }) {
    return std::string(E::op_name()) + "(" + describe(e.lhs()) + ", " + describe(e.rhs()) + ")";
  } else if constexpr (requires { e.reducer(); }) {
    return std::string(E::reducer_type::name) + "(" + describe(e.input()) + ")";
  } else if constexpr (requires { e.input(); }) {
    return "sum_to(" + describe(e.input()) + ")";
  } else if constexpr (requires { e.value; }) {
    return ft::detail::concat(+e.value);
  } else if constexpr (requires { e.storage(); }) {
    return "Tensor" + to_string(e.shape());
  } else {
    return "generated" + to_string(e.shape());
  }
}

}  // namespace ft::inline FT_ABI::autograd
