// The per-element reverse sweep: the backward of an elementwise statement as one kernel that,
// at each element, computes every forward node's value once (the tape, in registers), then
// walks the statement from the root applying the ops' adjoint rules to those values, and
// stores each leaf occurrence's adjoint into its gradient.
//
// Without it, each leaf occurrence's gradient is its own expression (autograd/adjoint.hpp),
// and the multi-output kernel evaluates them side by side: every expression recomputes the
// forward subexpressions its rules read (`tanh(x·w + sin(x))` once per leaf occurrence below
// it), and the compiler cannot share them, because each copy reads the leaves through its own
// pointers. Here every forward node is computed once, and a rule's own recomputation of its
// node (the `tanh(a)` in tanh's rule) reads the same registers, so the compiler merges it.
//
// The rules are the same templates (UnaryGrad, BinaryGrad and WhereGrad), instantiated
// once on the host over Slot leaves: a Slot reads one value of the sweep's per-element state
// instead of memory. So the adjoints are the same operations on the same values, in the same
// order, as the expression path (the same bits but for where the compiler contracts a
// multiply-add into an fma differently).
//
// What it covers: statements whose nodes with a Var below them are Var leaves, unary and
// binary ops with an adjoint rule, and where; any subtree without a Var (tensors, reductions
// of tensors, generators) and any op that carries no gradient is read through its evaluator
// as a value. Anything else (a reduction, a broadcast sum or a remapping of a Var) keeps the
// expression path (`sweep::walkable`).
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/rules.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/core/index.hpp"
#include "ft/exec/multi.hpp"
#include "ft/expr/binary.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/unary.hpp"
#include "ft/expr/where.hpp"

namespace ft::inline FT_ABI {

// A rank-0 expression whose value is slot K of the index it is evaluated at (a sweep's Slots).
// In namespace ft, so that the rules' unqualified calls (square, log …) find ft's functions by
// argument-dependent lookup, as they do for the expression path's operands.
template <class T, int K>
struct AdjointSlot {
  using value_type = T;
  static constexpr int rank = 0;
  struct Eval {
    template <class Ix>
    FT_HD FT_INLINE compute_t<T> operator()(const Ix& ix) const {
      return ix.template get<K>();
    }
  };
  Shape<0> shape() const { return {}; }
  std::optional<Device> device_opt() const { return std::nullopt; }
  Eval evaluator(const EvalContext&) const { return {}; }
  template <class F>
  void for_each_leaf(F&&) const {}
};

namespace detail {
template <class T, int K>
inline constexpr bool is_expression_node_v<AdjointSlot<T, K>> = true;
}  // namespace detail

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::autograd::sweep {

template <class T, int K>
using Slot = AdjointSlot<T, K>;

// The values a rule is evaluated at: the adjoint g and the node's operands (slots 0, 1, 2).
template <class A, class B = A, class C = A>
struct Slots {
  A s0;
  B s1;
  C s2;
  template <int K>
  FT_HD FT_INLINE auto get() const {
    if constexpr (K == 0)
      return s0;
    else if constexpr (K == 1)
      return s1;
    else
      return s2;
  }
};

// ---- the forward values kept at one element ----
template <class V>
struct Value {
  V value;
};
template <class V, class A>
struct Value1 {
  V value;
  A a;
};
template <class V, class A, class B>
struct Value2 {
  V value;
  A a;
  B b;
};
template <class V, class C, class A, class B>
struct ValueW {
  V value;
  C c;
  A a;
  B b;
};

// ---- which statements the sweep runs ----
// How the sweep treats a node: read as a value (opaque), a Var occurrence, walked through its
// rule (unary, binary, where), or left with its statement to the expression path (a reduction,
// a remapping, a broadcast sum of a Var, an op without a rule).
enum class Kind { opaque, leaf, unary, binary, where, expression_path };

template <class E>
struct kind_of {
  static constexpr Kind value = Kind::expression_path;
};
template <class T, int R>
struct kind_of<Var<T, R>> {
  static constexpr Kind value = Kind::leaf;
};
// An op with a rule is walked; one whose result carries no gradient is a value.
constexpr Kind kind_by_rule(Rule rule, Kind walked) {
  return rule == Rule::differentiable ? walked : rule == Rule::missing ? Kind::expression_path : Kind::opaque;
}
template <class Op, class A>
struct kind_of<Unary<Op, A>> {
  static constexpr Kind value = kind_by_rule(UnaryGrad<Op>::rule, Kind::unary);
};
template <class Op, class A, class B>
struct kind_of<Binary<Op, A, B>> {
  static constexpr Kind value = kind_by_rule(BinaryGrad<Op>::rule, Kind::binary);
};
template <class C, class A, class B>
struct kind_of<Where<C, A, B>> {
  static constexpr Kind value = Kind::where;
};

// A subtree without a Var is a value whatever its kind.
template <class E>
inline constexpr Kind kind_v = ft::detail::has_var_v<E> ? kind_of<E>::value : Kind::opaque;

// Whether every node of E with a Var below it is of a kind the sweep walks.
template <class E>
struct walkable : std::bool_constant<kind_v<E> != Kind::expression_path> {};
template <class Op, class A>
struct walkable<Unary<Op, A>> : std::bool_constant<kind_v<Unary<Op, A>> == Kind::opaque ||
                                                   (kind_v<Unary<Op, A>> == Kind::unary && walkable<A>::value)> {};
template <class Op, class A, class B>
struct walkable<Binary<Op, A, B>>
    : std::bool_constant<kind_v<Binary<Op, A, B>> == Kind::opaque ||
                         (kind_v<Binary<Op, A, B>> == Kind::binary && walkable<A>::value && walkable<B>::value)> {};
template <class C, class A, class B>
struct walkable<Where<C, A, B>> : std::bool_constant<walkable<A>::value && walkable<B>::value> {};

// The number of leaf occurrences backprop reports under E (autograd/adjoint.hpp), in its
// order: an op's left operand before its right.
template <class E, Kind = kind_v<E>>
struct occurrences : std::integral_constant<std::size_t, kind_v<E> == Kind::leaf ? 1 : 0> {};
template <class Op, class A>
struct occurrences<Unary<Op, A>, Kind::unary> : occurrences<A> {};
template <class Op, class A, class B>
struct occurrences<Binary<Op, A, B>, Kind::binary>
    : std::integral_constant<std::size_t, occurrences<A>::value + occurrences<B>::value> {};
template <class C, class A, class B>
struct occurrences<Where<C, A, B>, Kind::where>
    : std::integral_constant<std::size_t, occurrences<A>::value + occurrences<B>::value> {};

// ---- the nodes of a sweep ----
// Node<E, G, I, At>: statement node E reached by an adjoint of type G, whose first leaf
// occurrence is number I; At lists the occurrences whose adjoints are stored (their
// positions in the output list).
template <class E, class G, std::size_t I, class At, Kind = kind_v<E>>
struct Node;

// The position of occurrence i in At (a std::index_sequence), or At's size when absent. A
// type, not an array: nvcc names the kernel by its template arguments and does not take class
// types there.
template <std::size_t... A>
constexpr std::size_t position_of(std::index_sequence<A...>, std::size_t i) {
  constexpr std::size_t at[] = {A..., 0};
  for (std::size_t p = 0; p < sizeof...(A); ++p)
    if (at[p] == i) return p;
  return sizeof...(A);
}

// A value read through its evaluator: a subtree without a Var, or an op without a gradient.
template <class E, class G, std::size_t I, class At>
struct Node<E, G, I, At, Kind::opaque> {
  using V = compute_t<typename E::value_type>;  // the tape holds compute values
  decltype(std::declval<const E&>().evaluator(EvalContext{})) ev;

  using Tape = Value<V>;

  static Node make(const E& e, const EvalContext& ctx) { return {e.evaluator(ctx)}; }
  template <class Ix>
  FT_HD FT_INLINE void forward(const Ix& ix, Tape& t) const {
    t.value = static_cast<V>(ev(ix));
  }
  template <class Vals>
  FT_HD FT_INLINE void backward(const Tape&, const compute_t<G>&, Vals&) const {}
};

// A Var occurrence: its adjoint is stored when the occurrence is one of At.
template <class E, class G, std::size_t I, class At>
struct Node<E, G, I, At, Kind::leaf> : Node<E, G, I, At, Kind::opaque> {
  static Node make(const E& e, const EvalContext& ctx) { return {{e.evaluator(ctx)}}; }
  template <class Vals>
  FT_HD FT_INLINE void backward(const Value<compute_t<typename E::value_type>>&, const compute_t<G>& g,
                                Vals& vals) const {
    constexpr std::size_t p = position_of(At{}, I);
    if constexpr (p < At::size()) vals.template put<p>(g);
  }
};

template <class Op, class A, class G, std::size_t I, class At>
struct Node<Unary<Op, A>, G, I, At, Kind::unary> {
  using E = Unary<Op, A>;
  using V = compute_t<typename E::value_type>;  // the tape holds compute values
  using AV = typename A::value_type;
  using RuleExpr = decltype(UnaryGrad<Op>::grad(std::declval<const Op&>(), Slot<G, 0>{}, Slot<AV, 1>{}));
  using GA = typename RuleExpr::value_type;
  using Child = Node<A, GA, I, At>;
  using Tape = Value1<V, typename Child::Tape>;
  Op op;
  Child a;
  decltype(std::declval<const RuleExpr&>().evaluator(EvalContext{})) rule;

  static Node make(const E& e, const EvalContext& ctx) {
    return {e.op(), Child::make(e.operand(), ctx),
            UnaryGrad<Op>::grad(e.op(), Slot<G, 0>{}, Slot<AV, 1>{}).evaluator(EvalContext{})};
  }
  template <class Ix>
  FT_HD FT_INLINE void forward(const Ix& ix, Tape& t) const {
    a.forward(ix, t.a);
    t.value = op(t.a.value);
  }
  template <class Vals>
  FT_HD FT_INLINE void backward(const Tape& t, const compute_t<G>& g, Vals& vals) const {
    a.backward(t.a, static_cast<compute_t<GA>>(rule(Slots<compute_t<G>, compute_t<AV>>{g, t.a.value, {}})), vals);
  }
};

// The rule of one side of a binary op over Slots (g, a, b), or nothing for a side without a Var.
struct NoRule {
  using value_type = char;
};
template <bool Left, class Op, class G, class AV, class BV>
auto binary_rule() {
  if constexpr (Left)
    return BinaryGrad<Op>::lhs(Slot<G, 0>{}, Slot<AV, 1>{}, Slot<BV, 2>{});
  else
    return BinaryGrad<Op>::rhs(Slot<G, 0>{}, Slot<AV, 1>{}, Slot<BV, 2>{});
}
template <bool On, bool Left, class Op, class G, class AV, class BV>
struct BinaryRule {
  using type = NoRule;
  using ev_type = NoRule;
  static NoRule make() { return {}; }
};
template <bool Left, class Op, class G, class AV, class BV>
struct BinaryRule<true, Left, Op, G, AV, BV> {
  using type = decltype(binary_rule<Left, Op, G, AV, BV>());
  using ev_type = decltype(std::declval<const type&>().evaluator(EvalContext{}));
  static ev_type make() { return binary_rule<Left, Op, G, AV, BV>().evaluator(EvalContext{}); }
};

template <class Op, class A, class B, class G, std::size_t I, class At>
struct Node<Binary<Op, A, B>, G, I, At, Kind::binary> {
  using E = Binary<Op, A, B>;
  using V = compute_t<typename E::value_type>;  // the tape holds compute values
  using AV = typename A::value_type;
  using BV = typename B::value_type;
  static constexpr bool on_a = ft::detail::has_var_v<A>, on_b = ft::detail::has_var_v<B>;
  using RuleA = BinaryRule<on_a, true, Op, G, AV, BV>;
  using RuleB = BinaryRule<on_b, false, Op, G, AV, BV>;
  using GA = typename RuleA::type::value_type;
  using GB = typename RuleB::type::value_type;
  using ChildA = Node<A, GA, I, At>;
  using ChildB = Node<B, GB, I + occurrences<A>::value, At>;
  using Tape = Value2<V, typename ChildA::Tape, typename ChildB::Tape>;
  Op op;
  ChildA a;
  ChildB b;
  typename RuleA::ev_type rule_a;
  typename RuleB::ev_type rule_b;

  static Node make(const E& e, const EvalContext& ctx) {
    return {e.op(), ChildA::make(e.lhs(), ctx), ChildB::make(e.rhs(), ctx), RuleA::make(), RuleB::make()};
  }
  template <class Ix>
  FT_HD FT_INLINE void forward(const Ix& ix, Tape& t) const {
    a.forward(ix, t.a);
    b.forward(ix, t.b);
    t.value = op(t.a.value, t.b.value);
  }
  template <class Vals>
  FT_HD FT_INLINE void backward(const Tape& t, const compute_t<G>& g, Vals& vals) const {
    const Slots<compute_t<G>, compute_t<AV>, compute_t<BV>> s{g, t.a.value, t.b.value};
    if constexpr (on_a) a.backward(t.a, static_cast<compute_t<GA>>(rule_a(s)), vals);
    if constexpr (on_b) b.backward(t.b, static_cast<compute_t<GB>>(rule_b(s)), vals);
  }
};

// where(c, a, b): WhereGrad (autograd/adjoint.hpp) over the condition's value and g.
template <class C, class A, class B, class G, std::size_t I, class At>
struct Node<Where<C, A, B>, G, I, At, Kind::where> {
  using E = Where<C, A, B>;
  using V = compute_t<typename E::value_type>;  // the tape holds compute values
  using CV = typename C::value_type;
  using RuleA = decltype(WhereGrad::lhs(Slot<CV, 0>{}, Slot<G, 1>{}));
  using RuleB = decltype(WhereGrad::rhs(Slot<CV, 0>{}, Slot<G, 1>{}));
  using GA = typename RuleA::value_type;
  using GB = typename RuleB::value_type;
  using ChildA = Node<A, GA, I, At>;
  using ChildB = Node<B, GB, I + occurrences<A>::value, At>;
  using Tape = ValueW<V, compute_t<CV>, typename ChildA::Tape, typename ChildB::Tape>;
  decltype(std::declval<const C&>().evaluator(EvalContext{})) c;
  ChildA a;
  ChildB b;
  decltype(std::declval<const RuleA&>().evaluator(EvalContext{})) rule_a;
  decltype(std::declval<const RuleB&>().evaluator(EvalContext{})) rule_b;

  static Node make(const E& e, const EvalContext& ctx) {
    return {e.condition().evaluator(ctx), ChildA::make(e.lhs(), ctx), ChildB::make(e.rhs(), ctx),
            WhereGrad::lhs(Slot<CV, 0>{}, Slot<G, 1>{}).evaluator(EvalContext{}),
            WhereGrad::rhs(Slot<CV, 0>{}, Slot<G, 1>{}).evaluator(EvalContext{})};
  }
  template <class Ix>
  FT_HD FT_INLINE void forward(const Ix& ix, Tape& t) const {
    t.c = c(ix);
    a.forward(ix, t.a);
    b.forward(ix, t.b);
    t.value = static_cast<bool>(t.c) ? static_cast<V>(t.a.value) : static_cast<V>(t.b.value);
  }
  template <class Vals>
  FT_HD FT_INLINE void backward(const Tape& t, const compute_t<G>& g, Vals& vals) const {
    const Slots<compute_t<CV>, compute_t<G>> s{t.c, g, {}};
    if constexpr (ft::detail::has_var_v<A>) a.backward(t.a, static_cast<compute_t<GA>>(rule_a(s)), vals);
    if constexpr (ft::detail::has_var_v<B>) b.backward(t.b, static_cast<compute_t<GB>>(rule_b(s)), vals);
  }
};

// ---- the outputs: one gradient an occurrence of At, stored like exec::Outputs ----
template <class... T>
struct Sinks;

template <>
struct Sinks<> {
  struct Values {};
  template <class I>
  FT_HD FT_INLINE void store(const Values&, I) const {}
};

template <class T, class... Rest>
struct Sinks<T, Rest...> {
  T* ptr;            // contiguous, with the kernel's shape
  compute_t<T> add;  // 1: out += value; 0: out = value (a number: see exec::Output)
  Sinks<Rest...> tail;

  struct Values {
    compute_t<T> head;  // rounded once, when stored
    typename Sinks<Rest...>::Values tail;
    template <std::size_t P, class X>
    FT_HD FT_INLINE void put(const X& x) {
      if constexpr (P == 0)
        head = static_cast<compute_t<T>>(x);
      else
        tail.template put<P - 1>(x);
    }
  };

  // The last output first: one that accumulates reads what a later one stored at the same
  // element (two occurrences of one leaf), as exec::Outputs.
  template <class I>
  FT_HD FT_INLINE void store(const Values& v, I i) const {
    tail.store(v.tail, i);
    exec::store_or_add(ptr[i], v.head, add);
  }
};

// One output's pointer and add flag, and the list of them in occurrence order.
template <class T>
struct Sink {
  T* ptr;
  compute_t<T> add;
};
inline Sinks<> make_sinks() { return {}; }
template <class T, class... Rest>
Sinks<T, Rest...> make_sinks(const Sink<T>& head, const Sink<Rest>&... rest) {
  return {head.ptr, head.add, make_sinks(rest...)};
}

// Where the root's forward value goes: nowhere in a backward; into the statement's value in a
// forward that saves its derivatives (autograd/saved_derivatives.hpp).
struct NoValue {
  template <class V, class I>
  FT_HD FT_INLINE void store(const V&, I) const {}
};
template <class T>
struct ValueOut {
  T* ptr;  // contiguous, with the kernel's shape
  template <class V, class I>
  FT_HD FT_INLINE void store(const V& v, I i) const {
    store_value(ptr[i], v);
  }
};
// A unit adjoint at every element: the sweep then computes ∂y/∂(each occurrence).
template <class C>
struct UnitAdjoint {
  template <class Ix>
  FT_HD FT_INLINE C operator()(const Ix&) const {
    return C(1);
  }
};

// The kernel body: the tape, the adjoints from the root's g, the stores.
template <class Root, class GEv, class Out, class Value = NoValue>
struct Body {
  Root root;
  GEv g;
  Out out;
  Value value{};
  template <class Ix>
  FT_HD FT_INLINE void operator()(const Ix& ix) const {
    typename Root::Tape tape;
    root.forward(ix, tape);
    typename Out::Values vals;
    root.backward(tape, g(ix), vals);
    value.store(tape.value, ix.linear);
    out.store(vals, ix.linear);
  }
};

}  // namespace ft::inline FT_ABI::autograd::sweep
