// Modules: plain structs holding ft::Var parameters, tensor buffers and sub-modules.
//
// A module derives from ft::nn::Module<Self> and lists its members once, by name, in visit():
//
//   struct Net : ft::nn::Module<Net> {
//     ft::nn::Linear<float> fc1{784, 128}, fc2{128, 10};
//     template <class V> void visit(V&& v) { v("fc1", fc1); v("fc2", fc2); }
//     template <class X> auto forward(const X& x) { return fc2(ft::relu(fc1(x))); }
//   };
//
// visit() names Vars (parameters), Tensors (buffers: running statistics and the like) and
// sub-modules; from it the base derives parameters(), named_parameters() ("fc1.weight"),
// state_dict() / load_state_dict(), to(device), train() / eval() and zero_grad(). forward()
// returns an expression where it can, so elementwise work crosses module boundaries lazily:
// Linear then ReLU is the GEMM plus one fused kernel.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ft/autograd/trace.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/nn/parameter.hpp"
#include "ft/nn/state_dict.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {

inline std::string join(const std::string& prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
}

template <class X>
struct is_tensor : std::false_type {};
template <class T, int R>
struct is_tensor<Tensor<T, R>> : std::true_type {};

// What a module's visit() hands over, by kind. Each callback gets the dotted name and the item.
template <class OnParam, class OnBuffer, class OnModule>
struct Walker {
  const std::string& prefix;
  OnParam& on_param;
  OnBuffer& on_buffer;
  OnModule& on_module;

  template <class X>
  void operator()(std::string_view name, X& item) const {
    const std::string full = join(prefix, name);
    if constexpr (ft::detail::is_var<X>::value) {
      if (item.defined()) on_param(full, item);
    } else if constexpr (is_tensor<X>::value) {
      if (item.defined()) on_buffer(full, item);
    } else {
      static_assert(
          requires { item.visit(*this); }, "ft::nn: visit() lists Vars, Tensors and modules (types with visit())");
      on_module(full, item);
      Walker<OnParam, OnBuffer, OnModule> sub{full, on_param, on_buffer, on_module};
      item.visit(sub);
    }
  }
};

struct Ignore {
  template <class... A>
  void operator()(A&&...) const {}
};

}  // namespace detail

// Calls on_param(name, Var&), on_buffer(name, Tensor&) and on_module(name, Module&) for every
// member of m and of its sub-modules, depth first, in the order visit() lists them.
template <class M, class OnParam, class OnBuffer = detail::Ignore, class OnModule = detail::Ignore>
void walk(M& m, OnParam on_param, OnBuffer on_buffer = {}, OnModule on_module = {}) {
  const std::string root;
  detail::Walker<OnParam, OnBuffer, OnModule> w{root, on_param, on_buffer, on_module};
  m.visit(w);
}

// The base of every module: what visit() gives, as PyTorch's nn.Module offers it.
template <class Derived>
class Module {
 public:
  // forward(), as PyTorch's module call.
  template <class... A>
  auto operator()(A&&... a) {
    const autograd::trace::ModuleScope scope(this);  // in an exported forward: the module path for errors
    return self().forward(std::forward<A>(a)...);
  }

  // ---- parameters ----
  // f(name, Var<T, R>&) for every parameter, sub-modules' included ("fc1.weight").
  template <class F>
  void for_each_parameter(F&& f) {
    walk(self(), [&](const std::string& n, auto& v) { f(n, v); });
  }
  // f(name, Tensor<T, R>&) for every buffer (running statistics and the like).
  template <class F>
  void for_each_buffer(F&& f) {
    walk(self(), detail::Ignore{}, [&](const std::string& n, auto& t) { f(n, t); });
  }
  // Every parameter once (a Var shared by two sub-modules is listed once), as handles that
  // share the Vars: what optimizers take.
  ParameterList parameters() {
    ParameterList out;
    for (auto& [name, p] : named_parameters()) out.push_back(p);
    return out;
  }
  std::vector<std::pair<std::string, Parameter>> named_parameters() {
    std::vector<std::pair<std::string, Parameter>> out;
    std::unordered_set<const void*> seen;
    for_each_parameter([&](const std::string& n, auto& v) {
      Parameter p(v);
      if (seen.insert(p.id()).second) out.emplace_back(n, p);
    });
    return out;
  }
  // The number of parameter values (elements), shared Vars counted once.
  index_t num_parameters() {
    index_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
  }
  void zero_grad(bool set_to_none = true) {
    for (const auto& p : parameters()) p.zero_grad(set_to_none);
  }

  // ---- state ----
  // Parameters and buffers by name, sharing their storage (copy before changing them).
  StateDict state_dict() {
    StateDict sd;
    walk(
        self(), [&](const std::string& n, auto& v) { sd.insert(n, v.value()); },
        [&](const std::string& n, auto& t) { sd.insert(n, t); });
    return sd;
  }
  // Copies every entry into the parameter or buffer of that name (in place: optimizers and
  // other handles keep seeing the module's tensors). strict (PyTorch's default): a missing or
  // an unexpected key is an error; a dtype or shape mismatch always is.
  void load_state_dict(const StateDict& sd, bool strict = true) {
    std::vector<std::string> missing;
    std::unordered_set<std::string> used;
    auto load = [&](const std::string& n, const AnyTensor& dst) {
      if (!sd.contains(n)) {
        missing.push_back(n);
        return;
      }
      used.insert(n);
      copy_into(dst, sd.at(n), "\"" + n + "\"");
    };
    walk(
        self(), [&](const std::string& n, auto& v) { load(n, v.value()); },
        [&](const std::string& n, auto& t) { load(n, t); });
    std::vector<std::string> unexpected;
    for (const auto& [n, t] : sd)
      if (!used.count(n)) unexpected.push_back(n);
    if (strict && (!missing.empty() || !unexpected.empty()))
      fail("load_state_dict", "missing keys [", list(missing), "], unexpected keys [", list(unexpected),
           "] (pass strict = false to load the matching keys only)");
  }

  // Moves every parameter and buffer to `device` (gradients are dropped; build the optimizer
  // after moving the model, as in PyTorch).
  Derived& to(Device device) {
    walk(
        self(),
        [&](const std::string&, auto& v) {
          v.data() = v.value().to(device);
          v.zero_grad();
        },
        [&](const std::string&, auto& t) { t = t.to(device); });
    return self();
  }

  // ---- mode ----
  // Training mode (Dropout drops, BatchNorm uses batch statistics) for this module and every
  // sub-module; eval() is train(false).
  Derived& train(bool on = true) {
    training_ = on;
    walk(self(), detail::Ignore{}, detail::Ignore{}, [&](const std::string&, auto& m) {
      if constexpr (requires { m.set_training_flag(on); }) m.set_training_flag(on);
    });
    return self();
  }
  Derived& eval() { return train(false); }
  bool is_training() const { return training_; }
  void set_training_flag(bool on) { training_ = on; }

 protected:
  bool training_ = true;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  static std::string list(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "\"" : ", \"") + n + "\"";
    return s;
  }
};

// A module with no parameters (activations, pooling, Flatten): an empty visit().
template <class Derived>
struct Stateless : Module<Derived> {
  template <class V>
  void visit(V&&) {}
};

// Modules composed at compile time: forward() feeds each module's output to the next, so an
// elementwise module's expression fuses into whatever consumes it. Members are named "0",
// "1", ... as in PyTorch.
template <class... M>
class Sequential : public Module<Sequential<M...>> {
 public:
  Sequential() = default;
  explicit Sequential(M... m) : mods_(std::move(m)...) {}

  template <class V>
  void visit(V&& v) {
    visit_from<0>(v);
  }
  template <class X>
  auto forward(const X& x) {
    return forward_from<0>(x);
  }
  template <std::size_t I>
  auto& get() {
    return std::get<I>(mods_);
  }
  static constexpr std::size_t size() { return sizeof...(M); }

 private:
  template <std::size_t I, class V>
  void visit_from(V& v) {
    if constexpr (I < sizeof...(M)) {
      v(std::to_string(I), std::get<I>(mods_));
      visit_from<I + 1>(v);
    }
  }
  template <std::size_t I, class X>
  auto forward_from(const X& x) {
    if constexpr (I == sizeof...(M))
      return x;
    else
      return forward_from<I + 1>(std::get<I>(mods_).forward(x));
  }
  std::tuple<M...> mods_;
};

// A run-time list of modules of one type (PyTorch's ModuleList), named "0", "1", ...
template <class M>
class ModuleList : public Module<ModuleList<M>> {
 public:
  ModuleList() = default;
  ModuleList(std::initializer_list<M> mods) : mods_(mods) {}
  void push_back(M m) { mods_.push_back(std::move(m)); }
  template <class... A>
  M& emplace_back(A&&... a) {
    return mods_.emplace_back(std::forward<A>(a)...);
  }
  M& operator[](std::size_t i) {
    check(i < mods_.size(), "ModuleList", "index ", i, " out of range for ", mods_.size(), " modules");
    return mods_[i];
  }
  std::size_t size() const { return mods_.size(); }
  auto begin() { return mods_.begin(); }
  auto end() { return mods_.end(); }

  template <class V>
  void visit(V&& v) {
    for (std::size_t i = 0; i < mods_.size(); ++i) v(std::to_string(i), mods_[i]);
  }

 private:
  std::vector<M> mods_;
};

}  // namespace ft::inline FT_ABI::nn
