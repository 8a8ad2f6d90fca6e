// The backward of one statement: every leaf occurrence's gradient expression (from backprop)
// accumulated into its leaf's gradient, as few launches as the shapes allow.
//
// The occurrences of the statement's highest-rank Vars (usually every leaf of an elementwise
// statement) run as ONE multi-output kernel when their gradients have one shape and nothing
// inside their expressions is summed over a broadcast dimension: the SumTo nodes the adjoint
// rules put at each broadcast point are then pass-throughs and are removed from the kernel's
// type (strip), so the loop has no per-element branch and vectorises. Every other occurrence
// (a bias broadcast into the statement, a leaf of lower rank) is one launch of its own: a fused
// reduction straight into the gradient when it was broadcast.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <tuple>
#include <utility>

#include "ft/autograd/adjoint.hpp"
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

// The output of one occurrence in the multi-output kernel (its gradient allocated if absent).
template <class Occ, class S>
auto output_of(const Occ& o, const S& stripped, bool add, exec::Plan& plan) {
  auto& grad = o.leaf->grad;
  using Grad = std::decay_t<decltype(grad)>;
  if (!grad.defined()) grad = Grad(o.leaf->value.shape(), o.leaf->value.device());
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

// One kernel for every occurrence: gradient k = strip(its expression), accumulated.
template <class Occs, class Stripped, std::size_t... K>
void run_fused(const Occs& occ, const Stripped& stripped, std::index_sequence<K...> ks) {
  constexpr std::size_t n = sizeof...(K);
  // Stores run from the last occurrence to the first (exec/multi.hpp): in that order, the
  // first store to a gradient that did not exist before overwrites it, every other one adds.
  const std::array<VarState*, n> leaf{std::get<K>(occ).leaf...};
  std::array<bool, n> add{std::get<K>(occ).leaf->grad.defined()...};
  for (std::size_t k = n; k-- > 0;)
    for (std::size_t j = k + 1; j < n; ++j) add[k] = add[k] || leaf[j] == leaf[k];
  ft::detail::EvaluationScope scope;
  exec::Plan plan;
  const std::tuple outs{output_of(std::get<K>(occ), std::get<K>(stripped), add[K], plan)...};
  const auto& first = std::get<0>(occ).leaf->value;
  exec::run_outputs(outputs_of(outs, ks), first.shape(), first.device(), plan);
}

constexpr bool contains(const auto& positions, std::size_t i) {
  for (std::size_t p : positions)
    if (p == i) return true;
  return false;
}
template <auto At, std::size_t I, class Occ>
void accumulate_unless_top(const Occ& o) {
  if constexpr (!contains(At, I)) accumulate_one(o);
}

// At: the positions of the top-rank occurrences; C indexes At, I every occurrence.
template <auto At, class Tuple, std::size_t... C, std::size_t... I>
void accumulate_split(const Tuple& occ, std::index_sequence<C...> cs, std::index_sequence<I...>) {
  if (fusable(std::get<At[C]>(occ)...)) {
    const auto top = std::forward_as_tuple(std::get<At[C]>(occ)...);
    run_fused(top, std::make_tuple(strip(std::get<At[C]>(occ).grad)...), cs);
    (accumulate_unless_top<At, I>(std::get<I>(occ)), ...);
  } else {
    (accumulate_one(std::get<I>(occ)), ...);
  }
}
}  // namespace detail

// Accumulates every occurrence's gradient into its leaf (see the top of this file).
template <class... O>
void accumulate_all(const std::tuple<O...>& occ) {
  if constexpr (sizeof...(O) > 0) {
    constexpr int top_rank = std::max({O::rank...});
    constexpr auto at = detail::positions_of_rank<top_rank, O...>();
    detail::accumulate_split<at>(occ, std::make_index_sequence<at.size()>{}, std::index_sequence_for<O...>{});
  }
}

}  // namespace ft::inline FT_ABI::autograd
