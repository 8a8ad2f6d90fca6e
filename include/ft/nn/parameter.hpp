// ft::nn::Parameter: a handle to a Var's state with the element type and rank known at run
// time. model.parameters() is a list of these; optimizers, gradient clipping and state dicts
// work on them. It shares the Var's value and gradient: an optimizer step through the handle
// updates the model's Var.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ft/autograd/var.hpp"
#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::nn {

class Parameter {
 public:
  Parameter() = default;
  // From any Var (implicit, so `{w, b}` is a parameter list).
  template <class T, int R>
  Parameter(const Var<T, R>& v)  // NOLINT
      : state_(v.state_ptr()) {
    check(state_ != nullptr, "Parameter", "the Var is undefined");
  }

  bool defined() const { return state_ != nullptr; }
  // The value, sharing the Var's storage (writes through it update the model).
  AnyTensor value() const { return state().any_value(); }
  // The accumulated gradient; undefined until a backward reached the Var.
  AnyTensor grad() const { return state().any_grad(); }
  bool has_grad() const { return state().has_grad(); }
  // The gradient, zeros first when none has been accumulated.
  AnyTensor grad_or_zeros() const { return state().grad_or_zeros(); }
  bool requires_grad() const { return state().requires_grad; }
  // Forgets the gradient (set_to_none, PyTorch's default) or fills it with zeros.
  void zero_grad(bool set_to_none = true) const {
    if (!has_grad()) return;
    if (set_to_none) {
      state().drop_grad();
    } else {
      visit_elements(grad(), [](auto g) {  // gradients are floating
        if constexpr (is_floating_v<typename decltype(g)::value_type>) g = typename decltype(g)::value_type(0);
      });
    }
  }
  DType dtype() const { return value().dtype(); }
  Device device() const { return value().device(); }
  index_t numel() const { return value().numel(); }
  const std::vector<index_t> shape() const { return value().shape(); }

  // The typed Var back (checked): shares the state.
  template <class T, int R>
  Var<T, R> as() const {
    auto typed = std::dynamic_pointer_cast<autograd::VarImpl<T, R>>(state_);
    if (!typed)
      fail("Parameter::as", "the parameter holds ", dtype(), " of rank ", value().dim(), ", requested ", dtype_of<T>(),
           " of rank ", R);
    return Var<T, R>::from_state(std::move(typed));
  }
  // The identity of the underlying Var: two handles to one Var compare equal.
  const void* id() const { return state_.get(); }
  friend bool operator==(const Parameter& a, const Parameter& b) { return a.state_ == b.state_; }

 private:
  autograd::VarState& state() const {
    check(state_ != nullptr, "Parameter", "the parameter is undefined");
    return *state_;
  }
  std::shared_ptr<autograd::VarState> state_;
};

using ParameterList = std::vector<Parameter>;

}  // namespace ft::inline FT_ABI::nn
