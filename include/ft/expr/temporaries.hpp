// The temporaries of one evaluation. A reduction inside a larger statement (or a SumTo that
// sums) is computed into a temporary that the outer kernel reads as a leaf. That temporary
// belongs to the evaluation, not to the node: expression nodes are values and hold no mutable
// state, so a kept `auto s = ft::sum(x);` reads x's current values every time it is evaluated.
//
// The executor opens an EvaluationScope around each statement; nodes look their value up by
// their id (copies of a node share it, so `s + s` computes the sum once) and compute it on
// first use. A recorded autograd statement keeps its forward's temporaries (they are the
// values its backward needs, like PyTorch's saved tensors) and reopens them for the backward.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI::detail {

// A fresh identity for a boundary node; copies keep it.
inline std::uint64_t next_node_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

class Temporaries {
 public:
  Temporaries() = default;
  explicit Temporaries(const Temporaries* saved) : saved_(saved) {}

  // The value of node `id`, or null when this evaluation has not computed it yet.
  template <class Value>
  const Value* find(std::uint64_t id) const {
    for (const auto& [key, value] : values_)
      if (key == id) return static_cast<const Value*>(value.get());
    return saved_ ? saved_->find<Value>(id) : nullptr;
  }
  template <class Value>
  const Value& put(std::uint64_t id, Value v) {
    auto p = std::make_shared<const Value>(std::move(v));
    values_.emplace_back(id, p);
    return *p;
  }
  bool empty() const { return values_.empty(); }
  void clear() { values_.clear(); }

 private:
  std::vector<std::pair<std::uint64_t, std::shared_ptr<const void>>> values_;
  const Temporaries* saved_ = nullptr;  // read-only fallback: a recorded statement's forward values
};

inline Temporaries*& current_temporaries() {
  thread_local Temporaries* current = nullptr;
  return current;
}

// Opened by every entry point that builds an evaluator. By default it joins the evaluation
// already open on this thread (a reduction evaluated inside a statement shares its
// temporaries); `fresh` starts a new one, optionally falling back to saved values.
class EvaluationScope {
 public:
  struct Fresh {};
  static constexpr Fresh fresh{};

  EvaluationScope() : prev_(current_temporaries()) { current_temporaries() = prev_ ? prev_ : &own_; }
  explicit EvaluationScope(Fresh, const Temporaries* saved = nullptr) : own_(saved), prev_(current_temporaries()) {
    current_temporaries() = &own_;
  }
  ~EvaluationScope() { current_temporaries() = prev_; }
  EvaluationScope(const EvaluationScope&) = delete;
  EvaluationScope& operator=(const EvaluationScope&) = delete;

  Temporaries& temporaries() { return *current_temporaries(); }
  // What this scope computed (a fresh scope's own values), handed over to be kept.
  Temporaries take() {
    Temporaries t;
    std::swap(t, own_);
    return t;
  }

 private:
  Temporaries own_;
  Temporaries* prev_;
};

// The open evaluation's temporaries; reading a reduction node outside one is a misuse.
inline Temporaries& open_temporaries(const char* op) {
  Temporaries* t = current_temporaries();
  if (!t)
    fail(op,
         "a reduction node was read outside an evaluation; evaluate the expression with ft::eval or assign it "
         "to a tensor");
  return *t;
}

// The value of boundary node `id` in the open evaluation, computed by `make` on first use.
template <class Value, class Make>
const Value& temporary(std::uint64_t id, const char* op, Make&& make) {
  Temporaries& t = open_temporaries(op);
  if (const Value* v = t.find<Value>(id)) return *v;
  return t.put(id, make());
}

}  // namespace ft::inline FT_ABI::detail
