// Evaluation of an expression into a tensor: checks, alias detection, and the dispatch to
// the executor of the operands' device. This is the definition of the customisation point
// that Tensor's constructors and operator= call.
#pragma once

#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/copy.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/exec/cuda.hpp"
#include "ft/exec/launch.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/remap.hpp"
#include "ft/expr/temporaries.hpp"
#include "ft/ops/common.hpp"

namespace ft::inline FT_ABI {

namespace exec {

// The GPU half of run: the statement's kernel on dst's device (or the error of a build
// without CUDA).
template <class T, int R, class Ev>
void run_on_gpu(const Tensor<T, R>& dst, const Ev& ev, const Plan& plan) {
#if FT_CUDA_ENABLED
  gpu::run(dst, ev, plan);
#else
  (void)ev;
  (void)plan;
  cuda::require_device(dst.device(), "eval");
#endif
}

// Runs `e` into `dst` with exactly one launch; `dst` is not read by `e` through another index map.
template <class T, int R, class E>
void run(const Tensor<T, R>& dst, const E& e) {
  if (dst.numel() == 0) return;  // nothing to compute: no launch
  if constexpr (requires { e.run_rows_cpu(dst); }) {
    if (dst.device().is_cpu() && e.run_rows_cpu(dst)) return;  // a statement with a CPU loop of its own (gather)
  }
  ft::detail::EvaluationScope scope;
  Plan plan = make_plan(dst, e);
  auto ev = e.evaluator(make_context(dst.shape()));
  if (dst.device().is_cpu()) {
    if constexpr (ft::detail::cat_parts<E>::ok && ft::detail::cat_parts<E>::count == 1) {
      CatSplit split;
      ft::detail::find_cat(e, split);
      const int d = R - split.from_end;
      if (split.found && !plan.dense && d >= 0 && dst.shape()[d] == split.start[split.n]) {
        cpu::run_by_part(dst, ev, split);
        return;
      }
    }
    cpu::run(dst, ev, plan);
  } else {
    run_on_gpu(dst, ev, plan);
  }
}

// A copy into `dst` from a tensor of its dtype (S ≤ R: broadcast), or a fill with one value:
// bytes moved by one routine per element size on the CPU (exec/copy.hpp), so the CPU's fused
// loops are never instantiated for them; the same kernel as any statement on a GPU.
template <class T, int R, class E>
void copy_or_fill(const Tensor<T, R>& dst, const E& e) {
  if (dst.numel() == 0) return;
  if (dst.device().is_cpu()) {
    if constexpr (requires { e.value; }) {
      T value;
      store_value(value, e.value);
      cpu::fill_tensor(dst, value);
    } else {
      cpu::copy_tensor(dst, e);
    }
  } else {
    ft::detail::EvaluationScope scope;
    run_on_gpu(dst, e.evaluator(make_context(dst.shape())), make_plan(dst, e));
  }
}

// True when `e` reads `dst`'s storage through any index map other than `dst`'s own, in
// which case writing in place could read an element after it was overwritten.
template <class T, int R, class E>
bool reads_through_other_map(const Tensor<T, R>& dst, const E& e) {
  bool conflict = false;
  e.for_each_leaf([&](const LeafInfo& l) {
    if (!l.storage || l.storage != dst.storage().get()) return;
    bool same = !l.remapped && l.data == dst.data() && l.rank == R && l.elem_size == sizeof(T);
    for (int d = 0; same && d < R; ++d)
      same = l.shape[d] == dst.shape()[d] && (l.shape[d] == 1 || l.strides[d] == dst.strides()[d]);
    if (!same) conflict = true;
  });
  return conflict;
}

}  // namespace exec

namespace detail {

// PyTorch's can_cast for writing into an existing tensor: no floating → integral/bool, no
// integral → bool; widening and same-category narrowing (int64 → int32) are allowed.
template <class From, class To>
inline constexpr bool can_assign_v = is_floating_v<To> ||
                                     (std::is_same_v<To, bool> ? std::is_same_v<From, bool> : !is_floating_v<From>);

// Whether writing E into a Tensor<T, R> only moves bytes: E is a tensor of dtype T (any rank)
// or one value of type T (exec::copy_or_fill).
template <class T, class E>
inline constexpr bool is_copy_or_fill_v = false;
template <class T, int S>
inline constexpr bool is_copy_or_fill_v<T, Tensor<T, S>> = exec::cpu::byte_copyable_v<T>;
template <class T>
inline constexpr bool is_copy_or_fill_v<T, Scalar<T>> = exec::cpu::byte_copyable_v<T>;

// Throws unless `expr` can be written into `dst`: same device, shape broadcasting to dst's.
template <class T, int R, class E>
void check_assignable(const Tensor<T, R>& dst, const E& expr, const char* op) {
  check(dst.defined(), op, "the destination tensor is undefined");
  if (auto d = device_of(expr); d && !(*d == dst.device()))
    fail(op, "expression on ", *d, " cannot be written to a tensor on ", dst.device(),
         "; move one side with .to(device)");
  for (int d = 0; d < R; ++d)
    if (dst.shape()[d] > 1 && dst.strides()[d] == 0)  // an expanded view: torch refuses it too
      fail(op, "more than one element of the written-to tensor of shape ", to_string(dst.shape()), " (strides ",
           to_string(dst.strides()), ") refers to a single memory location; clone() it before writing");
  const auto& s = expr.shape();
  for (int i = 0; i < E::rank; ++i) {
    index_t want = dst.shape()[R - E::rank + i];
    if (s[i] != want && s[i] != 1)
      fail(op, "cannot write an expression of shape ", to_string(s), " into a tensor of shape ", to_string(dst.shape()),
           " (dim ", i, ")");
  }
}

template <class T, int R, class E>
void assign(const Tensor<T, R>& dst, const E& expr, const char* op) {
  if constexpr (is_number_v<E>) {
    assign(dst, Scalar<T>{op::CastTo<T>{}(expr)}, op);  // a number fills, converted as ft::cast does
  } else {
    static_assert(E::rank <= R,
                  "ft: cannot write an expression of higher rank into a tensor; reduce or reshape it first");
    static_assert(can_assign_v<typename E::value_type, T>,
                  "ft: writing a floating expression into an integer or bool tensor (or an integer one into a bool "
                  "tensor) would narrow it implicitly, which PyTorch refuses too; convert with ft::cast<T>(expr)");
    check_assignable(dst, expr, op);
    EvaluationScope scope;  // the statement's temporaries (reductions inside it) live until it is written
    dst.storage()->bump_version();
    const auto& s = expr.shape();
    if constexpr (requires { expr.materialize_into(dst); }) {
      // A boundary node (a reduction) of the destination's exact shape runs straight into a
      // contiguous destination that its inputs do not read: one launch, no temporary.
      bool direct = E::rank == R && dst.is_contiguous();
      for (int i = 0; direct && i < E::rank; ++i) direct = s[i] == dst.shape()[R - E::rank + i];
      if (direct)
        expr.input().for_each_leaf([&](const LeafInfo& l) { direct = direct && l.storage != dst.storage().get(); });
      if (direct) {
        expr.materialize_into(dst);
        return;
      }
    }
    if constexpr (is_copy_or_fill_v<T, E>) {
      if (exec::reads_through_other_map(dst, expr)) {
        Tensor<T, R> tmp(dst.shape(), dst.device());  // e.g. a = a.transpose(0, 1)
        exec::copy_or_fill(tmp, expr);
        exec::copy_or_fill(dst, tmp);
      } else {
        exec::copy_or_fill(dst, expr);
      }
    } else if (exec::reads_through_other_map(dst, expr)) {
      Tensor<T, R> tmp(dst.shape(), dst.device());  // e.g. a = a.transpose(0, 1) + a
      exec::run(tmp, expr);
      exec::copy_or_fill(dst, tmp);
    } else {
      exec::run(dst, expr);
    }
  }
}

}  // namespace detail

// Evaluates an expression into a new contiguous tensor: one launch (a bare tensor is copied).
template <Expression E>
auto eval(const E& e) {
  Tensor<typename E::value_type, E::rank> out(e.shape(), e.device());
  detail::assign(out, e, "eval");
  return out;
}

}  // namespace ft::inline FT_ABI
