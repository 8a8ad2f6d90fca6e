// ft::Var<T, R>: a tensor value that autograd tracks (a handle: copying it shares the value,
// the gradient and the link to the node), NoGradGuard and anomaly detection. The tape node and
// the backward engine are in autograd/engine.hpp, gradient accumulation in accumulate.hpp.
//
// Vars are leaves of expressions like tensors; materialising an expression that reads a Var
// (`ft::Var<float, 2> h = ft::relu(x * w + b);`) runs one fused kernel and records one node
// (autograd/statement.hpp) whose backward is derived from the expression's type.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/accumulate.hpp"
#include "ft/autograd/engine.hpp"
#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/print.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/ops/elementwise.hpp"

namespace ft::inline FT_ABI {

struct RequiresGrad {};
// Tag for a leaf Var whose gradient is wanted: `ft::Var<float, 2> W(init, ft::requires_grad);`.
inline constexpr RequiresGrad requires_grad{};

template <class T, int R>
class Var;

namespace autograd {

// The implicit seed of a loss's backward: a rank-0 1 on the loss's device. On a GPU it is a
// device-to-device copy of a 1 kept for the device, so a backward neither makes the host wait
// nor copies from the host (a CUDA graph can capture it); the kept 1 is made by the first
// backward on the device (a host copy: warm up before a capture, as for the optimizers).
template <class T>
Tensor<T, 0> unit_seed(Device d) {
  Tensor<T, 0> seed(Shape<0>{}, d);
  if (d.is_cpu()) {
    seed.data()[0] = T(1);
    return seed;
  }
  static std::mutex mutex;
  static Tensor<T, 0>* kept[kMaxDevices] = {};  // never freed: they outlive the CUDA runtime
  Tensor<T, 0>* one = nullptr;
  {
    std::lock_guard lock(mutex);
    check(d.index >= 0 && d.index < kMaxDevices, "backward", "CUDA device ", d.index, " is beyond the ", kMaxDevices,
          " devices fusedtensor supports");
    Tensor<T, 0>*& slot = kept[d.index];
    if (!slot) {
      Tensor<T, 0> host(Shape<0>{}, kCPU);
      host.data()[0] = T(1);
      slot = new Tensor<T, 0>(host.to(d));
    }
    one = slot;
  }
  cuda::copy_bytes(seed.data(), d, one->data(), d, sizeof(T));
  return seed;
}

template <class T, int R>
class VarImpl final : public VarState {
 public:
  explicit VarImpl(Tensor<T, R> v) : value(std::move(v)) {}
  Tensor<T, R> value;
  Tensor<T, R> grad;
  Tensor<T, R> retained;  // a retained non-leaf gradient, set aside during a backward

  bool has_grad() const override { return grad.defined(); }
  void drop_grad() override { grad = Tensor<T, R>(); }
  void stash_retained() override {
    retained = std::move(grad);
    grad = Tensor<T, R>();
  }
  void merge_retained() override {
    if (!retained.defined()) return;
    if (grad.defined()) retained = ft::eval(retained + grad);  // out of place: grad may be the caller's seed
    grad = std::move(retained);
    retained = Tensor<T, R>();
  }
  AnyTensor any_value() const override { return value; }
  AnyTensor any_grad() const override { return grad.defined() ? AnyTensor(grad) : AnyTensor(); }
  AnyTensor grad_or_zeros() override {
    if (!grad.defined()) {
      grad = Tensor<T, R>(value.shape(), value.device());
      grad = T(0);
    }
    return grad;
  }
  void check_grad_finite(const std::string& where) const override {
    if (has_non_finite(grad))
      fail("anomaly", "the backward of ", where, " produced a NaN or infinite gradient for an input of shape ",
           to_string(value.shape()));
  }

  // grad += g (g broadcasts to the value's shape) in one launch; the first accumulation
  // writes g without reading (no zero fill), and a broadcast operand's sum runs straight into
  // the gradient.
  template <class G>
  void accumulate(const G& g) {
    const bool fresh = !grad.defined();
    if (fresh) grad = Tensor<T, R>(value.shape(), value.device());
    add_into(grad, g, fresh);
  }
  // A first gradient that nothing else holds (a boundary op's fresh result: conv2d's or
  // pooling's backward) becomes the gradient itself, with no copy. A view, or a tensor someone
  // else still holds (the incoming gradient passed through a reshape), is copied as above.
  void accumulate(Tensor<T, R>&& g) {
    if (!grad.defined() && g.storage() && g.storage().use_count() == 1 && g.is_contiguous() &&
        g.shape() == value.shape() && g.device() == value.device() &&
        g.storage()->bytes() == static_cast<std::size_t>(g.numel()) * sizeof(T)) {
      grad = std::move(g);
      return;
    }
    accumulate<Tensor<T, R>>(g);
  }
};

}  // namespace autograd

// While alive, expressions over Vars are evaluated without recording (thread-local), as
// torch.no_grad(): inference, optimizer updates, metrics.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(autograd::is_grad_enabled()) { autograd::set_grad_enabled(false); }
  ~NoGradGuard() { autograd::set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// With anomaly detection on, a NaN or infinity produced by a statement's forward or by any
// backward throws ft::Error naming the statement's op chain (costs one reduction a statement).
inline void set_detect_anomaly(bool on) { autograd::anomaly_flag().store(on); }
inline bool is_anomaly_enabled() { return autograd::is_anomaly_enabled(); }

struct BackwardOptions {
  bool retain_graph = false;  // keep the graph for another backward through it
};

template <class T, int R>
class Var {
  static_assert(is_floating_v<T>, "ft::Var: gradients need floating values (float, double, half, bfloat16)");

 public:
  using value_type = T;
  static constexpr int rank = R;

  // An undefined Var.
  Var() = default;
  // A constant leaf (no gradient); shares the tensor's storage.
  Var(Tensor<T, R> value)  // NOLINT: implicit, so a tensor can stand where a Var is expected
      : impl_(std::make_shared<autograd::VarImpl<T, R>>(std::move(value))) {}
  // A leaf whose gradient autograd computes: from a tensor (shared) or any expression (evaluated).
  template <class E>
  requires detail::is_expression_node_v<E> Var(const E& init, RequiresGrad) : Var(evaluate(init)) {
    impl_->requires_grad = true;
    mark_parameter();
  }
  // Materialises an expression over Vars: one fused kernel, one tape node. Defined in
  // autograd/statement.hpp.
  template <class E>
  requires(detail::is_expression_node_v<E> && !std::is_same_v<E, Var> && !std::is_same_v<E, Tensor<T, R>>)
      Var(const E& e);  // NOLINT: implicit, so `ft::Var<float, 2> h = ft::relu(x * w);` records

  Var(const Var&) = default;
  Var(Var&&) noexcept = default;
  Var& operator=(const Var&) = default;
  Var& operator=(Var&&) noexcept = default;
  // Rebinds this name to the result of a new statement; the old value stays intact for backward.
  template <class E>
  requires(detail::is_expression_node_v<E> && !std::is_same_v<E, Var>) Var& operator=(const E& e) {
    return *this = Var(e);
  }

  // ---- value and gradient ----
  bool defined() const { return impl_ != nullptr; }
  const Tensor<T, R>& value() const { return state().value; }
  // The value for in-place updates that autograd does not see (optimizer steps, initialisers).
  Tensor<T, R>& data() const { return state().value; }
  // The accumulated gradient: undefined until a backward reaches this Var.
  const Tensor<T, R>& grad() const { return state().grad; }
  bool has_grad() const { return state().grad.defined(); }
  // Forgets the gradient (set_to_none, PyTorch's default) or fills it with zeros.
  void zero_grad(bool set_to_none = true) const {
    auto& s = state();
    if (!s.grad.defined()) return;
    if (set_to_none)
      s.grad = Tensor<T, R>();
    else
      s.grad = T(0);
  }
  bool requires_grad() const { return defined() && impl_->requires_grad; }
  // Leaves only, as torch's requires_grad_().
  Var& set_requires_grad(bool on) {
    if (!is_leaf())
      fail("set_requires_grad", "only a leaf Var's requires_grad can be changed; this one is the result of ",
           impl_->grad_fn->name(), " (use detach() for a leaf copy)");
    state().requires_grad = on;
    if (on) mark_parameter();
    return *this;
  }
  // A leaf is a Var not produced by a recorded statement.
  bool is_leaf() const { return !impl_ || impl_->grad_fn == nullptr; }
  // Keeps the gradient of a non-leaf after backward (torch's retain_grad()).
  void retain_grad() const { state().retains_grad = true; }
  // The recorded node that produced this Var (empty for a leaf): its op chain.
  std::string grad_fn_name() const { return is_leaf() ? std::string() : impl_->grad_fn->name(); }
  // A new leaf sharing this value, cut off from the graph.
  Var detach() const { return Var(value()); }

  // ---- views: share the value's storage; the gradient flows back through the inverse view
  // (defined in autograd/function.hpp) ----
  Var transpose(int d0, int d1) const;
  Var permute(const int (&dims)[R > 0 ? R : 1]) const;
  template <std::size_t N>
  Var<T, static_cast<int>(N)> reshape(const index_t (&sizes)[N]) const;
  Var<T, 1> flatten() const;
  Var<T, R + 1> unsqueeze(int d) const;
  Var<T, (R > 0 ? R - 1 : 0)> squeeze(int d) const;
  Var slice(int dim, index_t start, index_t end, index_t step = 1) const;
  Var<T, (R > 0 ? R - 1 : 0)> select(int dim, index_t i) const;
  template <std::size_t N>
  Var<T, static_cast<int>(N)> expand(const index_t (&sizes)[N]) const;

  // ---- backward ----
  // The gradient of this rank-0 Var with respect to every leaf that requires grad,
  // accumulated into their grad().
  void backward(BackwardOptions opts = {}) const {
    static_assert(R == 0,
                  "ft::Var::backward(): only a rank-0 Var (a loss) has an implicit seed; "
                  "pass the gradient of the output: v.backward(seed)");
    backward(autograd::unit_seed<T>(value().device()), opts);
  }
  // Backward with `seed` = ∂L/∂this (this Var's shape and device).
  void backward(const Tensor<T, R>& seed, BackwardOptions opts = {}) const {
    auto& s = state();
    check(seed.shape() == value().shape() && seed.device() == value().device(), "backward", "the seed of shape ",
          to_string(seed.shape()), " on ", seed.device(), " does not match the output of shape ",
          to_string(value().shape()), " on ", value().device());
    check(s.requires_grad, "backward", "this Var does not require grad: no leaf it was computed from requires grad",
          autograd::is_grad_enabled() ? "" : " (it was computed under a NoGradGuard)");
    autograd::run_backward(impl_, opts.retain_graph, [&] {
      if (is_leaf() || s.grad.defined())
        s.accumulate(seed);
      else
        s.grad = seed;  // the output's own gradient is only read: no copy
    });
  }

  // ---- the Expression interface: a Var reads as its value ----
  const Shape<R>& shape() const { return value().shape(); }
  index_t size(int d) const { return value().size(d); }
  index_t numel() const { return value().numel(); }
  Device device() const { return value().device(); }
  std::optional<Device> device_opt() const { return device(); }
  T item() const { return value().item(); }
  auto evaluator(const EvalContext& ctx) const { return value().evaluator(ctx); }
  template <class F>
  void for_each_leaf(F&& f) const {
    value().for_each_leaf(f);
  }

  // ---- for autograd's own use ----
  autograd::VarImpl<T, R>& state() const {
    check(impl_ != nullptr, "Var", "the Var is undefined");
    return *impl_;
  }
  const std::shared_ptr<autograd::VarImpl<T, R>>& state_ptr() const { return impl_; }
  // Another handle to the Var whose state this is (parameter lists hold states type-erased).
  static Var from_state(std::shared_ptr<autograd::VarImpl<T, R>> state) {
    Var v;
    v.impl_ = std::move(state);
    return v;
  }
  // A Var produced by `node` with value `v`.
  static Var from_node(Tensor<T, R> v, std::shared_ptr<autograd::Node> node) {
    Var out(std::move(v));
    out.impl_->requires_grad = true;
    out.impl_->grad_fn = std::move(node);
    return out;
  }

 private:
  void mark_parameter() const {
    if (const auto& s = state().value.storage()) s->mark_leaf_parameter();
  }
  template <class E>
  static Tensor<T, R> evaluate(const E& e) {
    static_assert(E::rank == R, "ft::Var: the initial value's rank differs from the Var's");
    if constexpr (std::is_same_v<E, Tensor<T, R>>) {
      return e;
    } else {
      Tensor<T, R> t(e.shape(), e.device());
      t = e;
      return t;
    }
  }

  std::shared_ptr<autograd::VarImpl<T, R>> impl_;
};

namespace detail {
template <class T, int R>
inline constexpr bool is_expression_node_v<Var<T, R>> = true;
template <class T, int R>
struct has_var<Var<T, R>> : std::true_type {};

template <class E>
struct is_var : std::false_type {};
template <class T, int R>
struct is_var<Var<T, R>> : std::true_type {};
}  // namespace detail

template <class T, int R>
std::ostream& operator<<(std::ostream& os, const Var<T, R>& v) {
  os << v.value();
  if (v.requires_grad()) os << (v.is_leaf() ? "  (requires_grad)" : "  (grad_fn: " + v.grad_fn_name() + ")");
  return os;
}

}  // namespace ft::inline FT_ABI
