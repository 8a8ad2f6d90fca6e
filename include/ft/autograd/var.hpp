// ft::Var<T, R>: a tensor value that autograd tracks, the tape node that produced it, the
// thread-local recording state (NoGradGuard, anomaly detection) and the backward engine.
//
// A Var is a handle, as a Python name is: copying it shares the value, the gradient and the
// link to the node. Vars are leaves of expressions like tensors; materialising an expression
// that reads a Var (`ft::Var<float, 2> h = ft::relu(x * w + b);`) runs one fused kernel and
// records one node (autograd/statement.hpp) whose backward is derived from the expression's type.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/print.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/operators.hpp"
#include "ft/expr/shape_ops.hpp"

namespace ft {

struct RequiresGrad {};
// Tag for a leaf Var whose gradient is wanted: `ft::Var<float, 2> W(init, ft::requires_grad);`.
inline constexpr RequiresGrad requires_grad{};

template <class T, int R>
class Var;

namespace autograd {
template <class T, int R, class G>
class AddTo;
}
namespace detail {
template <class T, int R, class G>
inline constexpr bool is_expression_node_v<autograd::AddTo<T, R, G>> = true;
}

namespace autograd {

// ---- thread-local recording state ----
struct ThreadState {
  bool grad_enabled = true;
  std::uint64_t next_sequence = 0;  // the tape position of the next recorded node
};
inline ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}
inline bool is_grad_enabled() { return thread_state().grad_enabled; }
inline void set_grad_enabled(bool on) { thread_state().grad_enabled = on; }

inline std::atomic<bool>& anomaly_flag() {
  static std::atomic<bool> on{false};
  return on;
}
inline bool is_anomaly_enabled() { return anomaly_flag().load(std::memory_order_relaxed); }

class VarState;

// One recorded statement (or boundary op, or user function): it reads the gradient of its
// output and accumulates the gradients of the Vars it read.
class Node {
 public:
  Node() : sequence_(thread_state().next_sequence++) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // What the node computed, as an op chain: "tanh(add(mul(Var[4, 3], Var[4, 3]), Var[4, 3]))".
  const std::string& name() const {
    if (name_.empty()) name_ = describe();
    return name_;
  }
  // Position on the tape: a node is recorded after every node it reads from.
  std::uint64_t sequence() const { return sequence_; }
  const std::vector<std::shared_ptr<VarState>>& inputs() const { return inputs_; }
  bool released() const { return released_; }

  void run_backward(VarState& out);
  // Frees what the node keeps for backward (retain_graph = false).
  void release() {
    name();  // described while the saved state still exists
    release_saved();
    inputs_.clear();
    versions_.clear();
    released_ = true;
  }

 protected:
  virtual std::string describe() const = 0;
  virtual void backward(VarState& out) = 0;
  virtual void release_saved() = 0;
  void add_input(std::shared_ptr<VarState> s) { inputs_.push_back(std::move(s)); }
  // Remembers the version of a storage the backward will read, to catch an in-place write
  // between the forward and the backward (the gradient would be computed from changed values).
  void save_version(const StorageImpl* s) {
    if (s) versions_.emplace_back(s, s->version());
  }

 private:
  mutable std::string name_;
  std::uint64_t sequence_;
  std::vector<std::shared_ptr<VarState>> inputs_;
  std::vector<std::pair<const StorageImpl*, std::uint64_t>> versions_;
  bool released_ = false;
};

// The type-erased part of a Var that the backward engine walks.
class VarState {
 public:
  virtual ~VarState() = default;
  std::shared_ptr<Node> grad_fn;  // null for a leaf
  bool requires_grad = false;
  bool retains_grad = false;  // keep .grad() of a non-leaf after backward
  virtual bool has_grad() const = 0;
  virtual void drop_grad() = 0;
  // A retained non-leaf gradient is set aside while a backward runs, so that the gradient this
  // backward passes upstream is its own contribution only, then the two are added.
  virtual void stash_retained() = 0;
  virtual void merge_retained() = 0;
  // The value and the gradient (undefined when none) with their type known at run time, sharing
  // storage: what optimizers, state dicts and parameter lists work with.
  virtual AnyTensor any_value() const = 0;
  virtual AnyTensor any_grad() const = 0;
  // Throws when the gradient holds a NaN or an infinity (anomaly detection).
  virtual void check_grad_finite(const std::string& where) const = 0;
};

// True when any element of `t` is NaN or infinite: one fused reduction.
template <class T, int R>
bool has_non_finite(const Tensor<T, R>& t) {
  if (!t.defined() || t.numel() == 0) return false;
  return ft::any(!(ft::abs(t) <= std::numeric_limits<T>::max())).item();
}

template <class G>
struct is_sum_to : std::false_type {};
template <class E, int RR>
struct is_sum_to<SumTo<E, RR>> : std::true_type {};

// dst + g, or g alone when dst is fresh (then dst is not read): the accumulation kernel.
template <class T, int R, class G>
class AddTo {
 public:
  using value_type = T;
  static constexpr int rank = R;
  AddTo(const Tensor<T, R>& dst, const G& g, bool fresh) : dst_(dst), g_(g), fresh_(fresh) {}

  struct Eval {
    TensorReader<T, R> dst;
    decltype(std::declval<const G&>().evaluator(EvalContext{})) g;
    T fresh;  // 1: dst is not read. A T, not a bool, so that the CPU loop vectorises the select
    template <class Ix>
    FT_HD FT_INLINE T operator()(const Ix& ix) const {
      const T v = static_cast<T>(g(ix));
      const T d = dst(ix);  // read unconditionally (discarded when fresh): no masked load
      return fresh != T(0) ? v : static_cast<T>(d + v);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<T, N> load(I i) const {
      auto x = g.template load<N>(i);
      Vec<T, N> r;
      if (fresh != T(0)) {
        for (int k = 0; k < N; ++k) r.v[k] = static_cast<T>(x.v[k]);
      } else {
        auto d = dst.template load<N>(i);
        for (int k = 0; k < N; ++k) r.v[k] = static_cast<T>(d.v[k] + static_cast<T>(x.v[k]));
      }
      return r;
    }
  };
  const Shape<R>& shape() const { return dst_.shape(); }
  std::optional<Device> device_opt() const { return dst_.device(); }
  Device device() const { return dst_.device(); }
  Eval evaluator(const EvalContext& ctx) const {
    return {dst_.evaluator(ctx), g_.evaluator(ctx), static_cast<T>(fresh_)};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    if (!fresh_) dst_.for_each_leaf(f);
    g_.for_each_leaf(f);
  }

 private:
  Tensor<T, R> dst_;
  G g_;
  bool fresh_;
};

// dst += g, or dst = g when dst is fresh (not read): one launch. Every gradient accumulation
// goes through here, also into views of a gradient (boundary ops, views of Vars).
template <class T, int R, class G>
void add_into(const Tensor<T, R>& dst, const G& g, bool fresh) {
  if constexpr (is_sum_to<G>::value && G::rank == R) {
    if (g.reduces() && g.shape() == dst.shape() && dst.is_contiguous()) {
      ft::detail::check_assignable(dst, g, "backward");
      dst.storage()->bump_version();
      exec::run_sum_to(dst, g, !fresh);
      return;
    }
  }
  ft::detail::assign(dst, AddTo<T, R, G>(dst, g, fresh), "backward");
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
};

inline void Node::run_backward(VarState& out) {
  check(!released_, "backward", "the graph of ", name(),
        " was already freed by an earlier backward; pass {.retain_graph = true} to the first backward to "
        "run backward through it again");
  for (const auto& [storage, version] : versions_)
    if (storage->version() != version)
      fail("backward", "a tensor that ", name(), " reads was modified in place after the forward (version ", version,
           ", now ", storage->version(),
           "); its gradient would be wrong. Write to a copy (clone()) or do the update after backward");
  backward(out);
  if (is_anomaly_enabled())
    for (const auto& in : inputs_) in->check_grad_finite(name_);
}

// Reverse tape order from `root`: every node reachable from it, latest first. A node's inputs
// were all produced before it, so this is a reverse topological order. `seed` accumulates the
// root's gradient once retained gradients are set aside.
template <class Seed>
void run_backward(const std::shared_ptr<VarState>& root, bool retain_graph, Seed&& seed) {
  // owning handles: releasing a node drops its inputs, which may be their last owner
  std::vector<std::shared_ptr<VarState>> states;
  std::unordered_set<VarState*> seen{root.get()};
  std::vector<std::shared_ptr<VarState>> stack{root};
  while (!stack.empty()) {
    auto s = std::move(stack.back());
    stack.pop_back();
    if (!s->grad_fn) continue;
    for (const auto& in : s->grad_fn->inputs())
      if (seen.insert(in.get()).second) stack.push_back(in);
    states.push_back(std::move(s));
  }
  std::sort(states.begin(), states.end(),
            [](const auto& a, const auto& b) { return a->grad_fn->sequence() > b->grad_fn->sequence(); });
  std::vector<VarState*> retaining;
  for (const auto& s : states)
    if (s->retains_grad) {
      s->stash_retained();
      retaining.push_back(s.get());
    }
  struct Merge {  // also when a backward throws: the retained gradients are not lost
    std::vector<VarState*>& states;
    ~Merge() {
      for (VarState* s : states) s->merge_retained();
    }
  } merge{retaining};
  seed();
  for (const auto& s : states) {
    Node& node = *s->grad_fn;
    if (!s->has_grad()) continue;  // no gradient reached this statement
    node.run_backward(*s);
    if (!s->retains_grad) s->drop_grad();
    if (!retain_graph) node.release();
  }
}

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
  static_assert(std::is_floating_point_v<T>, "ft::Var: gradients need float or double values");

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
    Tensor<T, 0> seed(Shape<0>{}, kCPU);
    seed.data()[0] = T(1);
    backward(seed.to(value().device()), opts);
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

}  // namespace ft
