// The backward of one statement: every leaf occurrence's gradient expression (from backprop)
// accumulated into its leaf's gradient, as few launches as the shapes allow.
//
// The occurrences of the statement's highest-rank Vars (usually every leaf of an elementwise
// statement) run as ONE kernel when their gradients have one shape and nothing inside their
// expressions is summed over a broadcast dimension: the statement's per-element reverse sweep
// (autograd/sweep.hpp) when its nodes are of the kinds the sweep walks, else a multi-output
// kernel of their gradient expressions, whose SumTo nodes (put by the adjoint rules at each
// broadcast point) are then pass-throughs and are removed from the kernel's type (strip), so
// the loop has no per-element branch and vectorises. Every other occurrence
// (a bias broadcast into the statement, a leaf of lower rank) is one launch of its own: a fused
// reduction straight into the gradient when it was broadcast. Where that reduction sums the very
// expression a top-rank occurrence has just written fresh into its gradient (the bias and the
// product of `x·Wᵀ + b` both get the adjoint of the sum), it sums that gradient instead of
// computing the expression again (a GELU's or a sigmoid's derivative once, not twice).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/sweep.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/multi.hpp"

namespace ft::inline FT_ABI::autograd {

// One occurrence of a leaf in a statement and its gradient expression from there.
template <class T, int R, class G>
struct Occurrence {
  static constexpr int rank = R;
  VarImpl<T, R>* leaf;
  G grad;
};

template <class T, int R, class G>
Occurrence<T, R, G> occurrence(const Var<T, R>& v, const G& g) {
  return {&v.state(), g};
}

namespace detail {
template <class E>
struct has_sum_to : std::false_type {};
template <class E, int R>
struct has_sum_to<SumTo<E, R>> : std::true_type {};
template <class Op, class A>
struct has_sum_to<Unary<Op, A>> : has_sum_to<A> {};
template <class Op, class A, class B>
struct has_sum_to<Binary<Op, A, B>> : std::bool_constant<has_sum_to<A>::value || has_sum_to<B>::value> {};
template <class C, class A, class B>
struct has_sum_to<Where<C, A, B>>
    : std::bool_constant<has_sum_to<C>::value || has_sum_to<A>::value || has_sum_to<B>::value> {};
template <class E>
struct has_sum_to<Unsqueeze<E>> : has_sum_to<E> {};
template <class E, int R>
struct has_sum_to<BroadcastTo<E, R>> : has_sum_to<E> {};
template <class E>
struct is_broadcast_to : std::false_type {};
template <class E, int R>
struct is_broadcast_to<BroadcastTo<E, R>> : std::true_type {};

// True when every SumTo in e (outside reductions, which are launches of their own) sums
// nothing and keeps its input's rank: then strip(e) computes the same values.
template <class E>
bool strippable(const E& e) {
  if constexpr (!has_sum_to<E>::value) {
    return true;
  } else if constexpr (is_sum_to<E>::value) {
    return E::rank == E::input_type::rank && !e.reduces() && strippable(e.input());
  } else {
    bool ok = true;
    for_each_operand(e, [&](const auto& c) { ok = ok && strippable(c); });
    return ok;
  }
}

// e without its SumTo nodes (each replaced by its input; valid where strippable(e)).
template <class E>
auto strip(const E& e) {
  if constexpr (!has_sum_to<E>::value) {
    return e;
  } else if constexpr (is_sum_to<E>::value) {
    if constexpr (E::rank == E::input_type::rank)
      return strip(e.input());
    else
      return e;  // never run: strippable() is false
  } else if constexpr (is_broadcast_to<E>::value) {
    return ft::detail::broadcast_to(strip(e.input()), e.shape());
  } else if constexpr (requires {
                         e.op();
                         e.operand();
                       }) {
    return make_unary(e.op(), strip(e.operand()));
  } else if constexpr (requires { e.operand(); }) {
    return ft::detail::unsqueeze(strip(e.operand()), e.dim());
  } else if constexpr (requires { e.condition(); }) {
    return where(strip(e.condition()), strip(e.lhs()), strip(e.rhs()));
  } else {
    return make_binary(e.op(), strip(e.lhs()), strip(e.rhs()));
  }
}

template <int RM, class... O>
constexpr std::size_t count_rank() {
  return ((O::rank == RM ? 1 : 0) + ... + 0);
}
// The positions of the occurrences of rank RM.
template <int RM, class... O>
constexpr auto positions_of_rank() {
  constexpr std::array<bool, sizeof...(O)> match{(O::rank == RM)...};
  std::array<std::size_t, count_rank<RM, O...>()> at{};
  for (std::size_t i = 0, j = 0; i < match.size(); ++i)
    if (match[i]) at[j++] = i;
  return at;
}
template <class Occ>
void accumulate_one(const Occ& o) {
  if (o.leaf->requires_grad) o.leaf->accumulate(o.grad);
}

// Can these occurrences run as one multi-output kernel?
template <class First, class... Rest>
bool fusable(const First& first, const Rest&... rest) {
  const auto& shape = first.leaf->value.shape();
  const Device device = first.leaf->value.device();
  auto ok = [&](const auto& o) {
    const auto& v = o.leaf->value;
    return o.leaf->requires_grad && v.shape() == shape && v.device() == device && strippable(o.grad);
  };
  return ok(first) && (ok(rest) && ...);
}

// The output of a leaf's gradient in a multi-output kernel (allocated if absent): `add`s, or
// writes, the values of `stripped`.
template <class T, int R, class S>
auto output_of(VarImpl<T, R>* leaf, const S& stripped, bool add, exec::Plan& plan) {
  auto& grad = leaf->grad;
  using Grad = std::decay_t<decltype(grad)>;
  if (!grad.defined()) grad = Grad(leaf->value.shape(), leaf->value.device());
  ft::detail::check_assignable(grad, stripped, "backward");
  grad.storage()->bump_version();
  exec::plan_leaves(plan, grad.numel(), stripped);
  if (reinterpret_cast<std::uintptr_t>(grad.data()) % 16 != 0) plan.aligned16 = false;
  return exec::Output<typename Grad::value_type, decltype(stripped.evaluator(EvalContext{}))>{
      grad.data(), stripped.evaluator(make_context(grad.shape())), static_cast<typename Grad::value_type>(add)};
}

template <class Outs, std::size_t... K>
auto outputs_of(const Outs& outs, std::index_sequence<K...>) {
  return exec::make_outputs(std::get<K>(outs)...);
}

// How each occurrence's store goes in a kernel that writes them all. Stores run from the last
// occurrence to the first (exec/multi.hpp): in that order, the first store to a gradient that
// did not exist before overwrites it (add false), every other one adds. fresh: whether the
// gradient then holds exactly the occurrence's values (written, not added to an earlier
// gradient or to another occurrence of the same leaf).
template <std::size_t N>
struct StoreFlags {
  std::array<bool, N> add{}, fresh{};
};
template <class Occs, std::size_t... K>
StoreFlags<sizeof...(K)> store_flags(const Occs& occ, std::index_sequence<K...>) {
  constexpr std::size_t n = sizeof...(K);
  const std::array<VarState*, n> leaf{std::get<K>(occ).leaf...};
  StoreFlags<n> f{{std::get<K>(occ).leaf->grad.defined()...}, {}};
  for (std::size_t k = n; k-- > 0;)
    for (std::size_t j = k + 1; j < n; ++j) f.add[k] = f.add[k] || leaf[j] == leaf[k];
  for (std::size_t k = 0; k < n; ++k) {
    f.fresh[k] = !f.add[k];
    for (std::size_t j = 0; j < k; ++j) f.fresh[k] = f.fresh[k] && leaf[j] != leaf[k];
  }
  return f;
}

// One kernel for every occurrence: gradient k = strip(its expression), accumulated. Returns
// the occurrences' fresh flags.
template <class Occs, class Stripped, std::size_t... K>
auto run_fused(const Occs& occ, const Stripped& stripped, std::index_sequence<K...> ks) {
  const auto flags = store_flags(occ, ks);
  ft::detail::EvaluationScope scope;
  exec::Plan plan;
  const std::tuple outs{output_of(std::get<K>(occ).leaf, std::get<K>(stripped), flags.add[K], plan)...};
  const auto& first = std::get<0>(occ).leaf->value;
  exec::run_outputs(outputs_of(outs, ks), first.shape(), first.device(), plan);
  return flags.fresh;
}

// The statement being differentiated and its output's gradient, for the reverse sweep.
template <class E, class T, int R>
struct Statement {
  static constexpr int rank = R;
  const E& expr;
  const Tensor<T, R>& grad;
};
template <class S>
inline constexpr bool sweepable_v = false;
template <class E, class T, int R>
inline constexpr bool sweepable_v<Statement<E, T, R>> = sweep::walkable<E>::value;

// The same gradients by the per-element reverse sweep (autograd/sweep.hpp): one kernel that
// computes the statement's forward values once and every occurrence of At from them.
template <auto At, class E, class T, int R, class Occs, class Stripped, std::size_t... K>
auto run_swept(const Statement<E, T, R>& st, const Occs& occ, const Stripped& stripped, std::index_sequence<K...> ks) {
  const auto flags = store_flags(occ, ks);
  ft::detail::EvaluationScope scope;
  const auto& shape = st.grad.shape();
  const Device device = st.grad.device();
  exec::Plan plan;
  exec::plan_leaves(plan, shape.numel(), st.expr);
  exec::plan_leaves(plan, shape.numel(), st.grad);
  auto sink = [&](const auto& o, const auto& s, bool add) {
    auto& grad = o.leaf->grad;
    using Grad = std::decay_t<decltype(grad)>;
    if (!grad.defined()) grad = Grad(o.leaf->value.shape(), o.leaf->value.device());
    ft::detail::check_assignable(grad, s, "backward");
    grad.storage()->bump_version();
    return sweep::Sink<typename Grad::value_type>{grad.data(), static_cast<typename Grad::value_type>(add)};
  };
  const auto out = sweep::make_sinks(sink(std::get<K>(occ), std::get<K>(stripped), flags.add[K])...);
  if (shape.numel() == 0) return flags.fresh;  // the gradients exist, empty: nothing to launch
  const EvalContext ctx = make_context(shape);
  using Root = sweep::Node<E, T, 0, std::index_sequence<At[K]...>>;
  const sweep::Body<Root, decltype(st.grad.evaluator(ctx)), std::decay_t<decltype(out)>> body{
      Root::make(st.expr, ctx), st.grad.evaluator(ctx), out};
  if (device.is_cpu()) {
    exec::cpu::run_each(body, shape, plan.dense);
  } else {
#if FT_CUDA_ENABLED
    exec::gpu::run_each<1>(body, shape, device, plan);
#else
    cuda::require_device(device, "backward");
#endif
  }
  return flags.fresh;
}

// ---- the same expression built twice ----
// True when a and b (of one type) compute the same values: the same Vars and tensor views, the
// same scalars and op parameters. False where unsure (an op with padding or a node kind not
// listed), which only costs the shortcut below.
template <class T, int R>
bool same_value(const Tensor<T, R>& a, const Tensor<T, R>& b) {
  return a.data() == b.data() && a.shape() == b.shape() && a.strides() == b.strides() && a.device() == b.device();
}
template <class T, int R>
bool same_value(const Var<T, R>& a, const Var<T, R>& b) {
  return &a.state() == &b.state();
}
template <class T>
bool same_value(const Scalar<T>& a, const Scalar<T>& b) {
  return a.value == b.value;
}
template <class Op>
bool same_op(const Op& a, const Op& b) {
  if constexpr (std::is_empty_v<Op>)
    return true;
  else if constexpr (std::is_trivially_copyable_v<Op> && std::has_unique_object_representations_v<Op>)
    return std::memcmp(&a, &b, sizeof(Op)) == 0;
  else
    return false;
}
template <class E>
bool same_value(const E& a, const E& b) {
  if constexpr (is_sum_to<E>::value) {
    return a.shape() == b.shape() && same_value(a.input(), b.input());
  } else if constexpr (requires {
                         a.op();
                         a.operand();
                       }) {
    return same_op(a.op(), b.op()) && same_value(a.operand(), b.operand());
  } else if constexpr (requires { a.operand(); }) {
    return a.dim() == b.dim() && same_value(a.operand(), b.operand());
  } else if constexpr (requires { a.condition(); }) {
    return same_value(a.condition(), b.condition()) && same_value(a.lhs(), b.lhs()) && same_value(a.rhs(), b.rhs());
  } else if constexpr (requires {
                         a.op();
                         a.lhs();
                       }) {
    return same_op(a.op(), b.op()) && same_value(a.lhs(), b.lhs()) && same_value(a.rhs(), b.rhs());
  } else {
    return false;
  }
}

// Occurrence o after the fused kernel: when its gradient sums (SumTo) an expression that top
// occurrence k (stripped to s) has just written fresh, it sums k's gradient; otherwise its own
// expression. Returns true when it took the shortcut.
template <class Occ, class TopOcc, class S>
bool accumulate_from_top(const Occ& o, const TopOcc& top, const S& s, bool fresh) {
  using G = decltype(o.grad);
  if constexpr (is_sum_to<G>::value) {
    if constexpr (std::is_same_v<typename G::input_type, S>) {
      if (fresh && o.leaf->requires_grad && top.leaf->grad.shape() == s.shape() && same_value(o.grad.input(), s)) {
        const auto& written = top.leaf->grad;
        o.leaf->accumulate(SumTo<std::decay_t<decltype(written)>, G::rank>(written, o.grad.shape()));
        return true;
      }
    }
  }
  return false;
}

constexpr bool contains(const auto& positions, std::size_t i) {
  for (std::size_t p : positions)
    if (p == i) return true;
  return false;
}
template <auto At, std::size_t I, class Occ, class Tops, class Stripped, std::size_t N, std::size_t... C>
void accumulate_unless_top(const Occ& o, const Tops& tops, const Stripped& stripped, const std::array<bool, N>& fresh,
                           std::index_sequence<C...>) {
  if constexpr (!contains(At, I)) {
    const bool shared = (accumulate_from_top(o, std::get<C>(tops), std::get<C>(stripped), fresh[C]) || ...);
    if (!shared) accumulate_one(o);
  }
}

// At: the positions of the top-rank occurrences; C indexes At, I every occurrence. With the
// statement, the top-rank occurrences run as its reverse sweep where it covers them.
template <auto At, class Tuple, class Stmt, std::size_t... C, std::size_t... I>
void accumulate_split(const Tuple& occ, const Stmt& st, std::index_sequence<C...> cs, std::index_sequence<I...>) {
  constexpr bool swept =
      sweepable_v<Stmt> && std::remove_cvref_t<std::tuple_element_t<At[0], Tuple>>::rank == Stmt::rank;
  if (fusable(std::get<At[C]>(occ)...)) {
    const auto top = std::forward_as_tuple(std::get<At[C]>(occ)...);
    const auto stripped = std::make_tuple(strip(std::get<At[C]>(occ).grad)...);
    std::array<bool, sizeof...(C)> fresh;
    if constexpr (swept) {
      // fusable occurrences have the statement's shape (nothing on their way is broadcast)
      check(st.grad.shape() == std::get<0>(top).leaf->value.shape(), "backward",
            "internal error: a fused gradient's shape differs from its statement's");
      fresh = run_swept<At>(st, top, stripped, cs);
    } else {
      fresh = run_fused(top, stripped, cs);
    }
    (accumulate_unless_top<At, I>(std::get<I>(occ), top, stripped, fresh, cs), ...);
  } else {
    (accumulate_one(std::get<I>(occ)), ...);
  }
}
}  // namespace detail

// Accumulates every occurrence's gradient into its leaf (see the top of this file); `st` is
// the statement the occurrences come from, which the reverse sweep runs where it can.
template <class Stmt, class... O>
void accumulate_occurrences(const Stmt& st, const O&... occ) {
  if constexpr (sizeof...(O) > 0) {
    constexpr int top_rank = std::max({O::rank...});
    constexpr auto at = detail::positions_of_rank<top_rank, O...>();
    detail::accumulate_split<at>(std::forward_as_tuple(occ...), st, std::make_index_sequence<at.size()>{},
                                 std::index_sequence_for<O...>{});
  }
}

}  // namespace ft::inline FT_ABI::autograd
