// One statement, one tape node. `ft::Var<float, 2> h = expr;` runs the expression as one fused
// kernel and records a StatementNode that keeps the expression itself: its leaves (the Vars
// and tensors it read, which exist anyway) and nothing computed inside it, but for a
// compute-heavy statement on the CPU, which saves its derivatives
// (autograd/saved_derivatives.hpp). Backward derives each leaf's gradient expression from the
// expression's type (autograd/adjoint.hpp) and runs it as one fused kernel accumulating into
// the leaf's gradient.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/fused_backward.hpp"
#include "ft/autograd/saved_derivatives.hpp"
#include "ft/autograd/trace.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::autograd {

namespace detail {
template <class E>
struct is_reduce : std::false_type {};
template <class Red, class E, int R>
struct is_reduce<Reduce<Red, E, R>> : std::true_type {};

// Calls f(storage) for every tensor the statement reads, through reductions to their inputs.
template <class E, class F>
void for_each_storage(const E& e, F&& f) {
  if constexpr (ft::detail::is_var<E>::value)
    f(e.value().storage().get());
  else if constexpr (requires { e.storage(); })
    f(e.storage().get());
  else
    for_each_operand(e, [&](const auto& c) { for_each_storage(c, f); });
}
}  // namespace detail

template <class E, class T, int R>
class StatementNode final : public Node {
 public:
  // `forward`: the temporaries the forward computed (the statement's reductions), read again
  // by the backward instead of being recomputed; `saved`: the derivatives the forward saved
  // (autograd/saved_derivatives.hpp), or none.
  StatementNode(const E& e, ft::detail::Temporaries forward, saved::Derivatives<T, R> derivatives = {})
      : expr_(e), forward_(std::move(forward)), saved_(std::move(derivatives)) {
    detail::for_each_storage(e, [&](const StorageImpl* s) { save_version(s); });
    for_each_var(e, [&](const auto& v) {
      if (v.requires_grad()) add_input(v.state_ptr());
    });
  }

 protected:
  std::string describe() const override { return autograd::describe(*expr_); }
  void backward(VarState& out) override {
    const Tensor<T, R>& g = static_cast<VarImpl<T, R>&>(out).grad;
    if constexpr (saved::eligible_v<E, T, R>) {
      if (!saved_.empty()) return saved::accumulate(g, saved_);
    }
    if constexpr (requires { expr_->separable_backward(g); }) {  // a statement that is only a resampling
      if (expr_->separable_backward(g)) return;
    }
    ft::detail::EvaluationScope scope(ft::detail::EvaluationScope::fresh, &forward_);
    const detail::Statement<E, T, R> st{*expr_, g};
    backprop(
        *expr_, g, [](const auto& var, const auto& gv) { return occurrence(var, gv); },
        [&](const auto&... occ) { accumulate_occurrences(st, occ...); });
  }
  void release_saved() override {
    expr_.reset();
    forward_.clear();
    saved_.clear();
  }

 private:
  std::optional<E> expr_;
  ft::detail::Temporaries forward_;
  saved::Derivatives<T, R> saved_;
};

// Throws when `value` holds a NaN or an infinity (anomaly detection, after a forward).
template <class T, int R>
void check_forward_finite(const Tensor<T, R>& value, const std::string& what) {
  if (has_non_finite(value))
    fail("anomaly", "the forward of ", what, " produced a NaN or infinite value (shape ", to_string(value.shape()),
         ")");
}

// True when some Var of the statement requires grad and recording is on.
template <class E>
bool records(const E& e) {
  if (!is_grad_enabled()) return false;
  bool any = false;
  for_each_var(e, [&](const auto& v) { any = any || v.requires_grad(); });
  return any;
}

}  // namespace ft::inline FT_ABI::autograd

namespace ft::inline FT_ABI {

template <class T, int R>
template <class E>
requires(detail::is_expression_node_v<E> && !std::is_same_v<E, Var<T, R>> &&
         !std::is_same_v<E, Tensor<T, R>>) Var<T, R>::Var(const E& e) {
  static_assert(E::rank == R,
                "ft::Var: the expression's rank differs from the Var's; declare the Var with the expression's rank");
  detail::EvaluationScope scope(detail::EvaluationScope::fresh);
  bool recording = false;
  if constexpr (detail::has_var_v<E>) recording = autograd::records(e);
  Tensor<T, R> v;
  autograd::saved::Derivatives<T, R> saved;
  if constexpr (autograd::saved::eligible_v<E, T, R>) {
    if (recording) autograd::saved::forward(e, v, saved);  // one fused launch, the derivatives with it
  }
  if (saved.empty()) v = evaluate(e);  // one fused launch
  bool recorded = false;
  if constexpr (detail::has_var_v<E>) {
    if (recording) {
      if constexpr (autograd::detail::is_reduce<E>::value) {
        // the statement's value is its top reduction's value: keep it for the adjoint rule
        if constexpr (std::is_same_v<typename E::value_type, T>) scope.temporaries().put(e.id(), v);
      }
      auto node = std::make_shared<autograd::StatementNode<E, T, R>>(e, scope.take(), std::move(saved));
      if (autograd::is_anomaly_enabled()) autograd::check_forward_finite(v, node->name());
      *this = from_node(std::move(v), std::move(node));
      recorded = true;
    }
  }
  if (!recorded) *this = Var(std::move(v));
  autograd::trace::statement(e, *this);  // ONNX export's trace, when one runs
}

}  // namespace ft::inline FT_ABI
