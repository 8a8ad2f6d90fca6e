// A statement's derivatives saved by its forward: for a compute-heavy elementwise statement on
// the CPU, the forward kernel also computes ∂y/∂leaf for each of its Vars (the reverse sweep of
// autograd/sweep.hpp run from a unit adjoint) and stores them beside y; the backward is then
// grad(leaf) += g · ∂y/∂leaf, one memory-bound kernel, instead of a sweep that computes the
// statement's forward again.
//
// Why: the CPU runs a statement of transcendental functions at its compute speed, not its
// memory speed, so a backward that recomputes the forward costs a second forward (the
// 'transcendental' bench: forward 21 ms, recomputing backward 26 ms, saved-derivative backward
// 8.6 ms; docs/benchmarks.md). The price is memory: one tensor of the statement's shape a
// distinct Var, kept until the backward (the recomputing path keeps nothing). So by default
// (`StatementDerivatives::automatic`) the derivatives are saved only where the recomputation is
// worth more than the memory traffic: on the CPU (a GPU recomputes for free), at least two
// transcendental ops a distinct Var (`costly` ops: exp, log, sin, tanh, sigmoid, GELU, pow …),
// and a statement of at least `kSaveMinElements` elements. `set_statement_derivatives` forces
// either way (where the statement is eligible at all).
//
// Eligible statements: those the reverse sweep walks, whose Var occurrences are all
// Var<T, R> of the statement's own dtype (float or double) and shape, requiring grad — the
// common elementwise statement over activations and same-shaped parameters. Anything else
// takes the usual path (autograd/fused_backward.hpp).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/fused_backward.hpp"
#include "ft/autograd/sweep.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/multi.hpp"

namespace ft::inline FT_ABI::autograd {

// Whether a recorded elementwise statement saves its derivatives at the forward (see the top
// of autograd/saved_derivatives.hpp).
enum class StatementDerivatives {
  automatic,  // on the CPU, for compute-heavy statements of at least kSaveMinElements elements
  recompute,  // never: the backward recomputes the forward (no memory kept)
  save,       // on the CPU, wherever the statement is eligible
};

namespace detail {
inline std::atomic<StatementDerivatives>& statement_derivatives_setting() {
  static std::atomic<StatementDerivatives> s{StatementDerivatives::automatic};
  return s;
}
}  // namespace detail

// Sets the policy for every thread; returns the previous one.
inline StatementDerivatives set_statement_derivatives(StatementDerivatives d) {
  return detail::statement_derivatives_setting().exchange(d);
}
inline StatementDerivatives statement_derivatives() { return detail::statement_derivatives_setting().load(); }

// Smallest statement that saves its derivatives under `automatic`: below, the recomputation
// costs less than the allocations.
inline constexpr index_t kSaveMinElements = index_t(1) << 15;

namespace saved {

using sweep::Kind;
using sweep::kind_v;

// An op whose evaluation is a transcendental function (marked `costly` beside its forward).
template <class Op>
constexpr bool costly_op() {
  if constexpr (requires { Op::costly; })
    return Op::costly;
  else
    return false;
}
template <class Op>
inline constexpr bool costly_op_v = costly_op<Op>();

// How many costly ops the statement evaluates at an element (a reduction's input not counted:
// it is computed once, before the loop).
template <class E>
struct costly : std::integral_constant<int, 0> {};
template <class Op, class A>
struct costly<Unary<Op, A>> : std::integral_constant<int, int(costly_op_v<Op>) + costly<A>::value> {};
template <class Op, class A, class B>
struct costly<Binary<Op, A, B>>
    : std::integral_constant<int, int(costly_op_v<Op>) + costly<A>::value + costly<B>::value> {};
template <class C, class A, class B>
struct costly<Where<C, A, B>> : std::integral_constant<int, costly<C>::value + costly<A>::value + costly<B>::value> {};

// Whether every Var occurrence the sweep reports under E is of type V.
template <class E, class V, Kind = kind_v<E>>
struct occurrences_are : std::true_type {};
template <class E, class V>
struct occurrences_are<E, V, Kind::leaf> : std::is_same<E, V> {};
template <class Op, class A, class V>
struct occurrences_are<Unary<Op, A>, V, Kind::unary> : occurrences_are<A, V> {};
template <class Op, class A, class B, class V>
struct occurrences_are<Binary<Op, A, B>, V, Kind::binary>
    : std::bool_constant<occurrences_are<A, V>::value && occurrences_are<B, V>::value> {};
template <class C, class A, class B, class V>
struct occurrences_are<Where<C, A, B>, V, Kind::where>
    : std::bool_constant<occurrences_are<A, V>::value && occurrences_are<B, V>::value> {};

// The Var occurrences in the sweep's order (an op's left operand before its right).
template <class E, class F>
void each_occurrence(const E& e, F&& f) {
  constexpr Kind kind = kind_v<E>;
  if constexpr (kind == Kind::leaf) {
    f(e);
  } else if constexpr (kind == Kind::unary) {
    each_occurrence(e.operand(), f);
  } else if constexpr (kind == Kind::binary || kind == Kind::where) {
    each_occurrence(e.lhs(), f);
    each_occurrence(e.rhs(), f);
  }
}

// The most distinct Vars a statement saves derivatives for (the backward kernels instantiated).
inline constexpr std::size_t kMaxLeaves = 4;

template <class E, class T, int R>
constexpr bool eligible() {
  constexpr bool real = std::is_same_v<T, float> || std::is_same_v<T, double>;
  constexpr bool same_type = std::is_same_v<typename E::value_type, T> && E::rank == R;
  constexpr bool walked = sweep::walkable<E>::value && occurrences_are<E, Var<T, R>>::value;
  return real && same_type && walked && sweep::occurrences<E>::value >= 1 && costly<E>::value >= 2;
}
template <class E, class T, int R>
inline constexpr bool eligible_v = eligible<E, T, R>();

// What a statement keeps for its backward: its distinct Vars and ∂y/∂each.
template <class T, int R>
struct Derivatives {
  std::vector<VarImpl<T, R>*> leaves;  // kept alive by the node's inputs
  std::vector<Tensor<T, R>> d;
  bool empty() const { return d.empty(); }
  void clear() {
    leaves.clear();
    d.clear();
  }
};

// grad(leaf k) (+)= g · d[k] for every leaf k in I: one CPU kernel.
template <class T, int R, std::size_t... I>
void accumulate_k(const Tensor<T, R>& g, const Derivatives<T, R>& s, std::index_sequence<I...>) {
  exec::Plan plan;
  const auto outs =
      exec::make_outputs(detail::output_of(s.leaves[I], g * s.d[I], s.leaves[I]->grad.defined(), plan)...);
  exec::cpu::run_each(outs, g.shape(), plan.dense);  // a CPU-only path: no GPU kernel instantiated
}

template <class T, int R>
void accumulate(const Tensor<T, R>& g, const Derivatives<T, R>& s) {
  check(g.shape() == s.d[0].shape() && g.device().is_cpu(), "backward",
        "internal error: a statement's gradient of shape ", to_string(g.shape()), " on ", g.device(),
        " for saved derivatives of shape ", to_string(s.d[0].shape()));
  if (g.numel() == 0) return;
  ft::detail::EvaluationScope scope;
  switch (s.d.size()) {
    case 1:
      return accumulate_k(g, s, std::make_index_sequence<1>{});
    case 2:
      return accumulate_k(g, s, std::make_index_sequence<2>{});
    case 3:
      return accumulate_k(g, s, std::make_index_sequence<3>{});
    default:
      return accumulate_k(g, s, std::make_index_sequence<4>{});
  }
}

template <class T, std::size_t... K>
auto sinks(const std::array<T*, sizeof...(K)>& ptr, const std::array<bool, sizeof...(K)>& add,
           std::index_sequence<K...>) {
  return sweep::make_sinks(sweep::Sink<T>{ptr[K], static_cast<T>(add[K])}...);
}

// Runs statement e into `value` and, where the policy and the statement allow, its
// derivatives into `out` (then true). False: nothing was run; evaluate e as usual.
template <class E, class T, int R>
bool forward(const E& e, Tensor<T, R>& value, Derivatives<T, R>& out) {
  constexpr std::size_t n = sweep::occurrences<E>::value;
  const StatementDerivatives policy = statement_derivatives();
  if (policy == StatementDerivatives::recompute) return false;
  const Shape<R> shape = e.shape();
  const std::optional<Device> device = ft::detail::device_of(e);
  if (!device || !device->is_cpu() || shape.numel() == 0) return false;
  std::array<VarImpl<T, R>*, n> leaf{};
  std::size_t i = 0;
  bool ok = true;
  each_occurrence(e, [&](const Var<T, R>& v) {
    ok = ok && v.requires_grad() && v.value().shape() == shape;
    leaf[i++] = &v.state();
  });
  if (!ok) return false;
  // the distinct Vars, and for each occurrence its Var's position among them
  std::array<std::size_t, n> slot{};
  std::size_t k = 0;
  for (std::size_t j = 0; j < n; ++j) {
    slot[j] = k;
    for (std::size_t m = 0; m < j; ++m)
      if (leaf[m] == leaf[j]) slot[j] = slot[m];
    if (slot[j] == k) out.leaves.push_back(leaf[j]), ++k;
  }
  if (k > kMaxLeaves || (policy == StatementDerivatives::automatic &&
                         (costly<E>::value < 2 * static_cast<int>(k) || shape.numel() < kSaveMinElements))) {
    out.leaves.clear();
    return false;
  }
  value = Tensor<T, R>(shape, *device);
  ft::detail::check_assignable(value, e, "eval");
  std::array<T*, n> ptr{};
  std::array<bool, n> add{};  // stores run from the last occurrence: a later one of the Var stored first
  for (std::size_t m = 0; m < k; ++m) out.d.emplace_back(shape, *device);
  for (std::size_t j = 0; j < n; ++j) {
    ptr[j] = out.d[slot[j]].data();
    for (std::size_t m = j + 1; m < n; ++m) add[j] = add[j] || slot[m] == slot[j];
  }
  ft::detail::EvaluationScope scope;
  const exec::LeafList leaves = exec::leaves_of(e);
  const exec::Plan plan = exec::make_plan(value, leaves);
  const EvalContext ctx = make_context(shape);
  using Root = sweep::Node<E, T, 0, std::make_index_sequence<n>>;
  const auto o = sinks(ptr, add, std::make_index_sequence<n>{});
  // the sweep from a unit adjoint: each occurrence's ∂y/∂occurrence, summed into its Var's
  // derivative as the backward's stores sum occurrences into a gradient; y stored beside
  using Unit = sweep::UnitAdjoint<compute_t<T>>;
  const sweep::Body<Root, Unit, std::decay_t<decltype(o)>, sweep::ValueOut<T>> body{
      Root::make(e, ctx), Unit{}, o, {value.data()}};
  exec::cpu::run_each(body, shape, plan.dense);
  return true;
}

}  // namespace saved
}  // namespace ft::inline FT_ABI::autograd
