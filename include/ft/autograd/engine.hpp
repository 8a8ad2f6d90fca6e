// The backward engine: the thread-local recording state (grad mode, anomaly detection), the
// tape node (Node), the type-erased Var state it walks (VarState) and run_backward, which
// runs the reachable nodes in reverse tape order. Nothing here knows tensor types or kernels.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/storage.hpp"

namespace ft::inline FT_ABI::autograd {

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
  // The gradient, made zeros first when none has been accumulated (a collective writes into it).
  virtual AnyTensor grad_or_zeros() = 0;
};

// Watches every backward pass (DistributedDataParallel's gradient buckets): leaf_ready(leaf) once
// the last node that reads a leaf has run, so the leaf's gradient is final for this backward
// (leaves the backward does not reach are never named), and finished() after the last node.
// Registered for its lifetime by ObserverRegistration; the engine does no extra work without one.
class BackwardObserver {
 public:
  virtual ~BackwardObserver() = default;
  virtual void leaf_ready(VarState& leaf) = 0;
  virtual void finished() = 0;
};

inline std::vector<BackwardObserver*>& backward_observers() {
  static std::vector<BackwardObserver*> observers;
  return observers;
}

class ObserverRegistration {
 public:
  explicit ObserverRegistration(BackwardObserver* o) : o_(o) { backward_observers().push_back(o); }
  ~ObserverRegistration() { std::erase(backward_observers(), o_); }
  ObserverRegistration(const ObserverRegistration&) = delete;
  ObserverRegistration& operator=(const ObserverRegistration&) = delete;

 private:
  BackwardObserver* o_;
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
  // with observers: ready[i], the leaves whose last reader is states[i] (inputs are read before
  // the nodes release them)
  const auto& observers = backward_observers();
  std::vector<std::vector<VarState*>> ready(observers.empty() ? 0 : states.size());
  if (!observers.empty()) {
    std::unordered_map<VarState*, std::size_t> last;
    for (std::size_t i = 0; i < states.size(); ++i)
      for (const auto& in : states[i]->grad_fn->inputs())
        if (!in->grad_fn && in->requires_grad) last[in.get()] = i;
    for (const auto& [leaf, i] : last) ready[i].push_back(leaf);
  }
  seed();
  for (std::size_t i = 0; i < states.size(); ++i) {
    const auto& s = states[i];
    Node& node = *s->grad_fn;
    if (s->has_grad()) {  // else no gradient reached this statement
      node.run_backward(*s);
      if (!s->retains_grad) s->drop_grad();
      if (!retain_graph) node.release();
    }
    if (!ready.empty())
      for (VarState* leaf : ready[i])
        for (BackwardObserver* o : observers) o->leaf_ready(*leaf);
  }
  for (BackwardObserver* o : observers) o->finished();
}

}  // namespace ft::inline FT_ABI::autograd
