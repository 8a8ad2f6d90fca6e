// Dual expression types: the adjoint rule of every expression node kind.
//
// backprop(e, g, f) walks the statement `e` from the root with g = ∂L/∂e (an expression of
// e's rank whose shape broadcasts to e's) and calls f(var, g_var) at each Var leaf, where
// g_var is that leaf's gradient *expression*; it returns the tuple of f's results, one an
// occurrence of a Var in the statement, in the order of the walk. Nothing is evaluated here: the rules compose
// types (mul: dA = g·b, dB = g·a; exp: dA = g·exp(a); where: g routed by the condition;
// broadcast: sum_to; reduction: g expanded back), so each leaf's gradient is one fused kernel
// that recomputes what it needs from the statement's leaves. The table of unary and binary
// derivatives is UnaryGrad / BinaryGrad below; a user op gets autograd by specialising one.
#pragma once

#include <string>
#include <tuple>
#include <type_traits>

#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/expr/generator.hpp"
#include "ft/expr/operators.hpp"
#include "ft/expr/reduce.hpp"
#include "ft/expr/shape_ops.hpp"

namespace ft::inline FT_ABI::autograd {

// How an op's gradient is defined: by a rule, not at all (comparisons, logical ops, casts to
// integers: their results carry no gradient), or as zero almost everywhere (floor, sign …:
// no gradient is propagated through them).
enum class Rule { missing, differentiable, none, zero };

// ---- unary ops: grad(op, g, a) = ∂L/∂a given g = ∂L/∂op(a) ----
template <class Op>
struct UnaryGrad {
  static constexpr Rule rule = Rule::missing;
};

#define FT_UNARY_GRAD(Op, expr)                                                                   \
  template <>                                                                                     \
  struct UnaryGrad<op::Op> {                                                                      \
    static constexpr Rule rule = Rule::differentiable;                                            \
    template <class G, class A>                                                                   \
    static auto grad([[maybe_unused]] const op::Op& o, const G& g, [[maybe_unused]] const A& a) { \
      return expr;                                                                                \
    }                                                                                             \
  };
FT_UNARY_GRAD(Neg, -g)
FT_UNARY_GRAD(Abs, g* sign(a))
FT_UNARY_GRAD(Exp, g* exp(a))
FT_UNARY_GRAD(Exp2, g* exp2(a) * 0.69314718055994530942)
FT_UNARY_GRAD(Log, g / a)
FT_UNARY_GRAD(Log2, g / (a * 0.69314718055994530942))
FT_UNARY_GRAD(Log1p, g / (a + 1))
FT_UNARY_GRAD(Expm1, g* exp(a))
FT_UNARY_GRAD(Sqrt, g / (sqrt(a) * 2))
FT_UNARY_GRAD(Rsqrt, g* rsqrt(a) / a * -0.5)
FT_UNARY_GRAD(Square, g* a * 2)
FT_UNARY_GRAD(Reciprocal, -(g / square(a)))
FT_UNARY_GRAD(Sin, g* cos(a))
FT_UNARY_GRAD(Cos, -(g* sin(a)))
FT_UNARY_GRAD(Tan, g*(square(tan(a)) + 1))
FT_UNARY_GRAD(Tanh, g*(1 - square(tanh(a))))
FT_UNARY_GRAD(Sigmoid, g* sigmoid(a) * (1 - sigmoid(a)))
FT_UNARY_GRAD(Erf, g* exp(-square(a)) * 1.12837916709551257390)
FT_UNARY_GRAD(Silu, g* sigmoid(a) * (a * (1 - sigmoid(a)) + 1))
FT_UNARY_GRAD(Relu, where(a > 0, g, 0))
#undef FT_UNARY_GRAD

// Derivatives with a runtime parameter, as binary functors (g, x) → g·f'(x).
namespace dop {
struct GeluGrad {
  static constexpr const char* name = "gelu_backward";
  bool approximate_tanh;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g_, X x_) const {
    using F = float_promote_t<promote_t<G, X>>;
    F g = static_cast<F>(g_), x = static_cast<F>(x_);
    if (approximate_tanh) {  // torch's gelu_backward, approximate="tanh"
      const F beta = F(0.79788456080286535588), kappa = F(0.044715);
      F t = math::tanh(beta * (x + kappa * x * x * x));
      return g * (F(0.5) * (F(1) + t) + F(0.5) * x * (F(1) - t * t) * beta * (F(1) + F(3) * kappa * x * x));
    }
    F cdf = F(0.5) * (F(1) + math::erf(x * F(0.70710678118654752440)));
    F pdf = math::exp(F(-0.5) * x * x) * F(0.39894228040143267794);
    return g * (cdf + x * pdf);
  }
};
struct LeakyReluGrad {
  static constexpr const char* name = "leaky_relu_backward";
  double negative_slope;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g, X x) const {
    using F = float_promote_t<promote_t<G, X>>;
    return x > X(0) ? static_cast<F>(g) : static_cast<F>(g) * static_cast<F>(negative_slope);
  }
};
struct EluGrad {
  static constexpr const char* name = "elu_backward";
  double alpha;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g, X x) const {
    using F = float_promote_t<promote_t<G, X>>;
    return x > X(0) ? static_cast<F>(g) : static_cast<F>(g) * static_cast<F>(alpha) * math::exp(static_cast<F>(x));
  }
};
struct SoftplusGrad {
  static constexpr const char* name = "softplus_backward";
  double beta, threshold;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g_, X x_) const {
    using F = float_promote_t<promote_t<G, X>>;
    F g = static_cast<F>(g_), bx = static_cast<F>(x_) * static_cast<F>(beta);
    return bx > static_cast<F>(threshold) ? g : g / (F(1) + math::exp(-bx));
  }
};
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

#define FT_PARAM_UNARY_GRAD(Op, Grad, ...)                      \
  template <>                                                   \
  struct UnaryGrad<op::Op> {                                    \
    static constexpr Rule rule = Rule::differentiable;          \
    template <class G, class A>                                 \
    static auto grad(const op::Op& o, const G& g, const A& a) { \
      return make_binary(dop::Grad{__VA_ARGS__}, g, a);         \
    }                                                           \
  };
FT_PARAM_UNARY_GRAD(Gelu, GeluGrad, o.approximate_tanh)
FT_PARAM_UNARY_GRAD(LeakyRelu, LeakyReluGrad, o.negative_slope)
FT_PARAM_UNARY_GRAD(Elu, EluGrad, o.alpha)
FT_PARAM_UNARY_GRAD(Softplus, SoftplusGrad, o.beta, o.threshold)
#undef FT_PARAM_UNARY_GRAD

template <class C>
struct UnaryGrad<op::Clamp<C>> {
  static constexpr Rule rule = std::is_floating_point_v<C> ? Rule::differentiable : Rule::none;
  template <class G, class A>
  static auto grad(const op::Clamp<C>& o, const G& g, const A& a) {
    return make_binary(dop::ClampGrad<C>{o.lo, o.hi}, g, a);
  }
};
// A cast between floating types passes the gradient back in the operand's type; a cast to an
// integer or bool type ends the gradient.
template <class U>
struct UnaryGrad<op::CastTo<U>> {
  static constexpr Rule rule = std::is_floating_point_v<U> ? Rule::differentiable : Rule::none;
  template <class G, class A>
  static auto grad(const op::CastTo<U>&, const G& g, const A&) {
    return cast<typename A::value_type>(g);
  }
};

#define FT_UNARY_RULE(Op, r)        \
  template <>                       \
  struct UnaryGrad<op::Op> {        \
    static constexpr Rule rule = r; \
  };
FT_UNARY_RULE(Floor, Rule::zero)
FT_UNARY_RULE(Ceil, Rule::zero)
FT_UNARY_RULE(Round, Rule::zero)
FT_UNARY_RULE(Trunc, Rule::zero)
FT_UNARY_RULE(Sign, Rule::zero)
FT_UNARY_RULE(LogicalNot, Rule::none)
#undef FT_UNARY_RULE

// ---- binary ops: lhs/rhs(op, g, a, b) = ∂L/∂a, ∂L/∂b given g = ∂L/∂op(a, b), before the sum
// over broadcast dimensions ----
template <class Op>
struct BinaryGrad {
  static constexpr Rule rule = Rule::missing;
};

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

#define FT_BINARY_NONE(Op)                   \
  template <>                                \
  struct BinaryGrad<op::Op> {                \
    static constexpr Rule rule = Rule::none; \
  };
FT_BINARY_NONE(Eq)
FT_BINARY_NONE(Ne)
FT_BINARY_NONE(Lt)
FT_BINARY_NONE(Le)
FT_BINARY_NONE(Gt)
FT_BINARY_NONE(Ge)
FT_BINARY_NONE(LogicalAnd)
FT_BINARY_NONE(LogicalOr)
#undef FT_BINARY_NONE

// ---- walking a statement ----
template <class E>
struct Adjoint {
  static constexpr bool defined = false;
};

template <class E, class G, class F>
auto backprop(const E& e, const G& g, F&& f);

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
}  // namespace detail

template <class T, int R>
struct Adjoint<Var<T, R>> {
  template <class G, class F>
  static auto apply(const Var<T, R>& v, const G& g, F&& f) {
    return std::make_tuple(f(v, g));
  }
};

template <class Op, class A>
struct Adjoint<Unary<Op, A>> {
  template <class G, class F>
  static auto apply(const Unary<Op, A>& u, const G& g, F&& f) {
    constexpr Rule rule = UnaryGrad<Op>::rule;
    static_assert(rule != Rule::missing,
                  "ft::autograd: this unary op has no adjoint rule; specialise ft::autograd::UnaryGrad<Op> "
                  "(see autograd/adjoint.hpp) or compute it under an ft::NoGradGuard");
    if constexpr (rule == Rule::differentiable)
      return backprop(u.operand(), UnaryGrad<Op>::grad(u.op(), g, u.operand()), f);
    else
      return std::tuple<>{};
  }
};

template <class Op, class A, class B>
struct Adjoint<Binary<Op, A, B>> {
  template <class G, class F>
  static auto apply(const Binary<Op, A, B>& n, const G& g, F&& f) {
    constexpr Rule rule = BinaryGrad<Op>::rule;
    static_assert(rule != Rule::missing,
                  "ft::autograd: this binary op has no adjoint rule; specialise ft::autograd::BinaryGrad<Op> "
                  "(see autograd/adjoint.hpp) or compute it under an ft::NoGradGuard");
    if constexpr (rule == Rule::differentiable)
      return std::tuple_cat(lhs(n, g, f), rhs(n, g, f));
    else
      return std::tuple<>{};
  }
  template <class G, class F>
  static auto lhs(const Binary<Op, A, B>& n, const G& g, F& f) {
    if constexpr (ft::detail::has_var_v<A>)
      return backprop(n.lhs(), detail::fit(BinaryGrad<Op>::lhs(g, n.lhs(), n.rhs()), n.lhs().shape()), f);
    else
      return std::tuple<>{};
  }
  template <class G, class F>
  static auto rhs(const Binary<Op, A, B>& n, const G& g, F& f) {
    if constexpr (ft::detail::has_var_v<B>)
      return backprop(n.rhs(), detail::fit(BinaryGrad<Op>::rhs(g, n.lhs(), n.rhs()), n.rhs().shape()), f);
    else
      return std::tuple<>{};
  }
};

template <class C, class A, class B>
struct Adjoint<Where<C, A, B>> {
  template <class G, class F>
  static auto apply(const Where<C, A, B>& n, const G& g, F&& f) {
    return std::tuple_cat(lhs(n, g, f), rhs(n, g, f));
  }
  template <class G, class F>
  static auto lhs(const Where<C, A, B>& n, const G& g, F& f) {
    if constexpr (ft::detail::has_var_v<A>)
      return backprop(n.lhs(), detail::fit(where(n.condition(), g, 0), n.lhs().shape()), f);
    else
      return std::tuple<>{};
  }
  template <class G, class F>
  static auto rhs(const Where<C, A, B>& n, const G& g, F& f) {
    if constexpr (ft::detail::has_var_v<B>)
      return backprop(n.rhs(), detail::fit(where(n.condition(), 0, g), n.rhs().shape()), f);
    else
      return std::tuple<>{};
  }
};

template <class E, int R>
struct Adjoint<SumTo<E, R>> {
  template <class G, class F>
  static auto apply(const SumTo<E, R>& n, const G& g, F&& f) {
    return backprop(n.input(), ft::detail::raise_rank<E::rank>(g), f);
  }
};

// ---- reductions: g (of the reduction's rank) expanded back over the reduced dimension ----
template <class Red>
struct ReduceGrad {
  static constexpr Rule rule = Rule::missing;
};

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
  static constexpr Rule rule = std::is_floating_point_v<V> ? Rule::differentiable : Rule::none;
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
// ∂prod/∂x = prod / x (an element equal to zero gives NaN or infinity here)
template <class V>
struct ReduceGrad<red::Prod<V>> {
  static constexpr Rule rule = std::is_floating_point_v<V> ? Rule::differentiable : Rule::none;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    return ge * detail::expanded_result(r) / r.input();
  }
};
// max/min: the gradient goes to the elements equal to the extreme, shared equally among ties
// (torch.amax's rule).
template <class V, bool IsMax>
struct ReduceGrad<red::Extreme<V, IsMax>> {
  static constexpr Rule rule = std::is_floating_point_v<V> ? Rule::differentiable : Rule::none;
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
  static constexpr Rule rule = std::is_floating_point_v<V> ? Rule::differentiable : Rule::none;
  template <class N, class G>
  static auto grad(const N& r, const G& ge) {
    const auto& x = r.input();
    auto y = detail::expanded_result(r);
    const double p = r.reducer().p;
    auto top = abs(x) == y;
    auto ties = detail::like(r, red::SumR<float>{}, cast<float>(top));
    return where(Scalar<bool>{p == 1}, ge * sign(x),
                 where(Scalar<bool>{p == 2}, where(y == 0, 0, ge * x / y), where(top, ge * sign(x) / ties, 0)));
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

template <class Red, class E, int OR>
struct Adjoint<Reduce<Red, E, OR>> {
  template <class G, class F>
  static auto apply(const Reduce<Red, E, OR>& r, const G& g, F&& f) {
    constexpr Rule rule = ReduceGrad<Red>::rule;
    static_assert(rule != Rule::missing, "ft::autograd: this reduction has no adjoint rule");
    if constexpr (rule == Rule::differentiable)
      return backprop(r.input(), ft::detail::raise_rank<E::rank>(ReduceGrad<Red>::grad(r, detail::expand(r, g))), f);
    else
      return std::tuple<>{};
  }
};

template <class E, class G, class F>
auto backprop(const E& e, const G& g, F&& f) {
  if constexpr (ft::detail::has_var_v<E>) {
    static_assert(G::rank == E::rank, "ft::autograd: internal error, a gradient's rank differs from its node's");
    static_assert(
        requires { Adjoint<E>::apply(e, g, f); },
        "ft::autograd: no adjoint rule for this expression node; compute it under an ft::NoGradGuard");
    return Adjoint<E>::apply(e, g, f);
  } else {
    return std::tuple<>{};
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
