// Nodes whose backward is code rather than a derived expression: the boundary ops (matmul,
// conv2d, pooling, the row-wise composites), views of Vars, and user-defined differentiable
// functions (ft::autograd::apply, the counterpart of torch.autograd.Function).
#pragma once

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/statement.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::autograd {

// A node that calls `bwd(grad_out)`; bwd accumulates into its inputs itself (accumulate()).
// It holds what bwd captured (the input Vars: saved state) until backward releases it.
template <class T, int R, class Bwd>
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, Bwd bwd, std::vector<std::shared_ptr<VarState>> inputs,
               const std::vector<const StorageImpl*>& saved)
      : name_(std::move(name)), bwd_(std::move(bwd)) {
    for (auto& in : inputs) add_input(std::move(in));
    for (const auto* s : saved) save_version(s);
  }

 protected:
  std::string describe() const override { return name_; }
  void backward(VarState& out) override {
    (*bwd_)(static_cast<const Tensor<T, R>&>(static_cast<VarImpl<T, R>&>(out).grad));
  }
  void release_saved() override { bwd_.reset(); }

 private:
  std::string name_;
  std::optional<Bwd> bwd_;
};

// Adds `g` to v's gradient when v requires grad (for use inside a backward).
template <class T, int R, class G>
void accumulate(const Var<T, R>& v, const G& g) {
  if (v.requires_grad()) v.state().accumulate(g);
}

// record() without the trace's mark.
template <class T, int R, class Bwd, class... Vs>
Var<T, R> record_untraced(std::string name, Tensor<T, R> value, Bwd bwd, const Vs&... inputs) {
  bool any = false;
  ((any = any || (inputs.defined() && inputs.requires_grad())), ...);
  if (!is_grad_enabled() || !any) return Var<T, R>(std::move(value));
  std::vector<std::shared_ptr<VarState>> in;
  std::vector<const StorageImpl*> saved;
  auto add = [&](const auto& v) {
    if (!v.defined()) return;
    if (v.requires_grad()) in.push_back(v.state_ptr());
    saved.push_back(v.value().storage().get());
  };
  (add(inputs), ...);
  auto node = std::make_shared<FunctionNode<T, R, Bwd>>(std::move(name), std::move(bwd), std::move(in), saved);
  if (is_anomaly_enabled()) check_forward_finite(value, node->name());
  return Var<T, R>::from_node(std::move(value), std::move(node));
}

// Records `value` as the result of op `name` over the Vars `inputs` with backward `bwd`, or
// returns it as a constant when recording is off or no input requires grad.
template <class T, int R, class Bwd, class... Vs>
Var<T, R> record(std::string name, Tensor<T, R> value, Bwd bwd, const Vs&... inputs) {
  // traced: marked as not describable until the op's own hook binds it (or the trace fails)
  const bool traced = trace::current() != nullptr;
  const std::string op = traced ? name : std::string();
  Var<T, R> out = record_untraced(std::move(name), std::move(value), std::move(bwd), inputs...);
  if (traced) trace::when_traced([&](trace::Sink& s) { s.opaque(trace::key(out), op, AnyTensor(out.value())); });
  return out;
}

// An operand of a boundary op as a Var: a Var as it is, an expression over Vars recorded as
// one statement, anything else (a tensor, a constant expression) as a constant leaf.
template <class X>
auto to_var(const X& x) {
  using T = float_promote_t<typename X::value_type>;
  if constexpr (ft::detail::is_var<X>::value)
    return x;
  else
    return Var<T, X::rank>(x);
}

}  // namespace ft::inline FT_ABI::autograd

namespace ft::inline FT_ABI::autograd {

// ---- user-defined differentiable functions, as torch.autograd.Function ----
//
//   struct Cube {
//     static constexpr const char* name = "cube";
//     template <class X> static auto forward(const X& x) { return x * x * x; }
//     template <class G, class X, class Y> static auto backward(const G& g, const X& x, const Y&) {
//       return std::tuple{g * x * x * 3.0f};
//     }
//   };
//   ft::Var<float, 1> y = ft::autograd::apply<Cube>(x);
//
// forward receives the inputs' values (tensors) and returns an expression or a tensor (an
// expression runs as one fused kernel). backward receives the output's gradient, the inputs'
// values and the output value, and returns one gradient per input (expressions fuse into
// the accumulation; return ft::autograd::no_grad for an input without one).
struct NoGradient {};
inline constexpr NoGradient no_grad{};

template <class Vars, class Grads, std::size_t... I>
void accumulate_all(const Vars& vars, const Grads& grads, std::index_sequence<I...>) {
  auto one = [&](auto i) {
    using Gi = std::remove_cvref_t<std::tuple_element_t<decltype(i)::value, Grads>>;
    if constexpr (!std::is_same_v<Gi, NoGradient>)
      accumulate(std::get<decltype(i)::value>(vars), std::get<decltype(i)::value>(grads));
  };
  (one(std::integral_constant<std::size_t, I>{}), ...);
}

template <class F, class... Xs>
auto apply(const Xs&... xs) {
  auto vars = std::make_tuple(to_var(xs)...);
  auto out_expr = std::apply([](const auto&... v) { return F::forward(v.value()...); }, vars);
  using O = std::remove_cvref_t<decltype(out_expr)>;
  using T = typename O::value_type;
  constexpr int R = O::rank;
  Tensor<T, R> out;
  if constexpr (std::is_same_v<O, Tensor<T, R>>)
    out = out_expr;
  else
    out = ft::eval(out_expr);
  auto bwd = [vars, out](const Tensor<T, R>& g) {
    auto grads = std::apply([&](const auto&... v) { return F::backward(g, v.value()..., out); }, vars);
    static_assert(std::tuple_size_v<decltype(grads)> == sizeof...(Xs),
                  "ft::autograd::apply: backward must return one gradient per input (ft::autograd::no_grad for none)");
    accumulate_all(vars, grads, std::index_sequence_for<Xs...>{});
  };
  return std::apply([&](const auto&... v) { return record(F::name, out, std::move(bwd), v...); }, vars);
}

}  // namespace ft::inline FT_ABI::autograd

// ---- views of Vars ----
namespace ft::inline FT_ABI {

namespace autograd::detail {
template <class... Xs>
inline constexpr bool any_var_v = (ft::detail::has_var_v<Xs> || ...);

// Makes v's gradient when it has none (uninitialised: the first write overwrites it). True when
// it was made, so that the caller writes rather than adds.
template <class T, int R>
bool make_grad(const Var<T, R>& v) {
  auto& st = v.state();
  if (st.grad.defined()) return false;
  st.grad = Tensor<T, R>(v.shape(), v.device());
  return true;
}

// Adds `g`, an expression of shape `s` (the Var's elements in row-major order), to v's gradient:
// written through a reshaped view of the gradient, so nothing is copied. A gradient there that
// is not contiguous (one the user set to a transposed view) has no such view: g is evaluated
// first and added through the gradient's own shape (reshaping it would add into a copy).
template <class T, int R, int RS, class G>
void accumulate_reshaped(const Var<T, R>& v, const Shape<RS>& s, const G& g) {
  if (!v.requires_grad()) return;
  const bool fresh = make_grad(v);
  auto& st = v.state();
  if (st.grad.is_contiguous()) {
    add_into(st.grad.reshape(s), g, fresh);
  } else {
    Tensor<T, RS> flat(s, v.device());
    flat = g;
    add_into(st.grad, flat.reshape(v.shape()), false);
  }
}

// Adds g into the part of v's gradient that `view` selects (a zero gradient is made first).
template <class T, int R, class View, class G>
void accumulate_into_view(const Var<T, R>& v, View&& view, const G& g) {
  if (!v.requires_grad()) return;
  auto& st = v.state();
  if (!st.grad.defined()) {
    st.grad = Tensor<T, R>(v.shape(), v.device());
    st.grad = T(0);
  }
  add_into(view(st.grad), g, false);
}
}  // namespace autograd::detail

template <class T, int R>
Var<T, R> Var<T, R>::transpose(int d0, int d1) const {
  d0 = wrap_dim(d0, R, "transpose");
  d1 = wrap_dim(d1, R, "transpose");
  auto bwd = [in = *this, d0, d1](const Tensor<T, R>& g) { in.state().accumulate(g.transpose(d0, d1)); };
  auto out = autograd::record("transpose", value().transpose(d0, d1), std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    std::vector<std::int64_t> perm(R);
    for (int i = 0; i < R; ++i) perm[static_cast<std::size_t>(i)] = i == d0 ? d1 : i == d1 ? d0 : i;
    autograd::trace::boundary(s, "Transpose", {autograd::trace::name(s, *this)}, out,
                              {autograd::trace::Attribute::integers("perm", perm)});
  });
  return out;
}

template <class T, int R>
Var<T, R> Var<T, R>::permute(const int (&dims)[R > 0 ? R : 1]) const {
  int inv[R > 0 ? R : 1];
  auto v = value().permute(dims);
  for (int i = 0; i < R; ++i) inv[wrap_dim(dims[i], R, "permute")] = i;
  auto bwd = [in = *this, p = std::to_array(inv)](const Tensor<T, R>& g) {
    int q[R > 0 ? R : 1];
    std::copy(p.begin(), p.end(), q);
    in.state().accumulate(g.permute(q));
  };
  auto out = autograd::record("permute", v, std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    std::vector<std::int64_t> perm(R);
    for (int i = 0; i < R; ++i) perm[static_cast<std::size_t>(i)] = wrap_dim(dims[i], R, "permute");
    autograd::trace::boundary(s, "Transpose", {autograd::trace::name(s, *this)}, out,
                              {autograd::trace::Attribute::integers("perm", perm)});
  });
  return out;
}

template <class T, int R>
template <std::size_t N>
Var<T, static_cast<int>(N)> Var<T, R>::reshape(const index_t (&sizes)[N]) const {
  constexpr int NR = static_cast<int>(N);
  auto bwd = [in = *this](const Tensor<T, NR>& g) { in.state().accumulate(g.reshape(in.shape())); };
  auto out = autograd::record("reshape", value().reshape(sizes), std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    // the sizes: a size left to the reshape (-1) stays -1; with a symbolic batch, the leading
    // dimensions that the reshape keeps are 0 (copied: [L, N, 3E] -> [L, N, 3, H, hd] follows N)
    std::vector<std::int64_t> shape(out.shape().begin(), out.shape().end());
    for (int d = 0; d < NR; ++d)
      if (sizes[d] == -1) shape[static_cast<std::size_t>(d)] = -1;
    for (int d = 0; s.is_dynamic_batch() && d < std::min(R, NR) && shape[static_cast<std::size_t>(d)] == size(d); ++d)
      shape[static_cast<std::size_t>(d)] = 0;
    autograd::trace::boundary(s, "Reshape", {autograd::trace::name(s, *this), s.ints(shape)}, out);
  });
  return out;
}

template <class T, int R>
Var<T, 1> Var<T, R>::flatten() const {
  return reshape({-1});
}

template <class T, int R>
Var<T, R + 1> Var<T, R>::unsqueeze(int d) const {
  auto v = value().unsqueeze(d);
  if (d < 0) d += R + 1;
  auto bwd = [in = *this, d](const Tensor<T, R + 1>& g) { in.state().accumulate(g.squeeze(d)); };
  auto out = autograd::record("unsqueeze", v, std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "Unsqueeze", {autograd::trace::name(s, *this), s.int1(d)}, out);
  });
  return out;
}

template <class T, int R>
Var<T, (R > 0 ? R - 1 : 0)> Var<T, R>::squeeze(int d) const {
  static_assert(R > 0, "ft::Var::squeeze: a rank-0 Var has no dimension to squeeze");
  auto v = value().squeeze(d);
  d = wrap_dim(d, R, "squeeze");
  auto bwd = [in = *this, d](const Tensor<T, R - 1>& g) { in.state().accumulate(g.unsqueeze(d)); };
  auto out = autograd::record("squeeze", v, std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "Squeeze", {autograd::trace::name(s, *this), s.int1(d)}, out);
  });
  return out;
}

template <class T, int R>
Var<T, R> Var<T, R>::slice(int dim, index_t start, index_t end, index_t step) const {
  auto bwd = [in = *this, dim, start, end, step](const Tensor<T, R>& g) {
    autograd::detail::accumulate_into_view(
        in, [&](const Tensor<T, R>& t) { return t.slice(dim, start, end, step); }, g);
  };
  auto out = autograd::record("slice", value().slice(dim, start, end, step), std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(
        s, "Slice",
        {autograd::trace::name(s, *this), s.int1(start), s.int1(end), s.int1(wrap_dim(dim, R, "slice")), s.int1(step)},
        out);
  });
  return out;
}

template <class T, int R>
Var<T, (R > 0 ? R - 1 : 0)> Var<T, R>::select(int dim, index_t i) const {
  static_assert(R > 0, "ft::Var::select: a rank-0 Var has no dimension to select");
  auto bwd = [in = *this, dim, i](const Tensor<T, R - 1>& g) {
    autograd::detail::accumulate_into_view(
        in, [&](const Tensor<T, R>& t) { return t.select(dim, i); }, g);
  };
  auto out = autograd::record("select", value().select(dim, i), std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "Gather", {autograd::trace::name(s, *this), s.scalar(double(i), DType::Int64)}, out,
                              {autograd::trace::Attribute::integer("axis", wrap_dim(dim, R, "select"))});
  });
  return out;
}

template <class T, int R>
template <std::size_t N>
Var<T, static_cast<int>(N)> Var<T, R>::expand(const index_t (&sizes)[N]) const {
  constexpr int NR = static_cast<int>(N);
  auto bwd = [in = *this](const Tensor<T, NR>& g) { in.state().accumulate(sum_to(g, in.shape())); };
  auto out = autograd::record("expand", value().expand(sizes), std::move(bwd), *this);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    // 1 where the size stays (broadcasting keeps it, a symbolic batch included)
    std::vector<std::int64_t> shape(out.shape().begin(), out.shape().end());
    for (int d = 0; d < R; ++d)
      if (size(d) == out.size(NR - R + d)) shape[static_cast<std::size_t>(NR - R + d)] = 1;
    autograd::trace::boundary(s, "Expand", {autograd::trace::name(s, *this), s.ints(shape)}, out);
  });
  return out;
}

}  // namespace ft::inline FT_ABI
