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

// Runs `e`, whose leaves are `leaves`, into `dst` with exactly one launch; `dst` is not read
// by `e` through another index map.
template <class T, int R, class E>
void run(const Tensor<T, R>& dst, const E& e, const LeafList& leaves) {
  if (dst.numel() == 0) return;  // nothing to compute: no launch
  if constexpr (requires { e.run_rows_cpu(dst); }) {
    if (dst.device().is_cpu() && e.run_rows_cpu(dst)) return;  // a statement with a CPU loop of its own (gather)
  }
  ft::detail::EvaluationScope scope;
  Plan plan = make_plan(dst, leaves);
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

// True when one of the leaves reads `dst`'s storage through any index map other than `dst`'s
// own, in which case writing in place could read an element after it was overwritten.
FT_OUTLINE bool reads_through_other_map(const void* storage, const void* data, std::size_t elem_size, int rank,
                                        const index_t* shape, const index_t* strides, const LeafList& leaves) {
  for (int i = 0; i < leaves.size(); ++i) {
    const LeafInfo& l = leaves[i];
    if (!l.storage || l.storage != storage) continue;
    bool same = !l.remapped && l.data == data && l.rank == rank && l.elem_size == elem_size;
    for (int d = 0; same && d < rank; ++d)
      same = l.shape[d] == shape[d] && (l.shape[d] == 1 || l.strides[d] == strides[d]);
    if (!same) return true;
  }
  return false;
}

template <class T, int R>
bool reads_through_other_map(const Tensor<T, R>& dst, const LeafList& leaves) {
  return reads_through_other_map(dst.storage().get(), dst.data(), sizeof(T), R, dst.shape().begin(),
                                 dst.strides().begin(), leaves);
}

template <class T, int R, class E>
bool reads_through_other_map(const Tensor<T, R>& dst, const E& e) {
  return reads_through_other_map(dst, leaves_of(e));
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

// Throws unless an expression of shape `eshape` (rank `erank`) on `edev` can be written into a
// tensor of shape `shape`: same device, shape broadcasting to the tensor's, no element of the
// tensor written twice. Not a template: one copy a file, whatever the statements.
FT_OUTLINE void check_assignable(const char* op, bool defined, Device device, std::optional<Device> edev, int rank,
                                 const index_t* shape, const index_t* strides, int erank, const index_t* eshape) {
  check(defined, op, "the destination tensor is undefined");
  if (edev && !(*edev == device))
    fail(op, "expression on ", *edev, " cannot be written to a tensor on ", device, "; move one side with .to(device)");
  for (int d = 0; d < rank; ++d)
    if (shape[d] > 1 && strides[d] == 0)  // an expanded view: torch refuses it too
      fail(op, "more than one element of the written-to tensor of shape ", dims_string(shape, rank), " (strides ",
           dims_string(strides, rank), ") refers to a single memory location; clone() it before writing");
  for (int i = 0; i < erank; ++i) {
    const index_t want = shape[rank - erank + i];
    if (eshape[i] != want && eshape[i] != 1)
      fail(op, "cannot write an expression of shape ", dims_string(eshape, erank), " into a tensor of shape ",
           dims_string(shape, rank), " (dim ", i, ")");
  }
}

template <class T, int R, class E>
void check_assignable(const Tensor<T, R>& dst, const E& expr, const char* op) {
  check_assignable(op, dst.defined(), dst.device(), device_of(expr), R, dst.shape().begin(), dst.strides().begin(),
                   E::rank, expr.shape().begin());
}

// A contiguous tensor of dst's shape and device, to compute into when dst is read through
// another index map (one copy per tensor type, not per statement).
template <class T, int R>
[[gnu::noinline]] Tensor<T, R> scratch_like(const Tensor<T, R>& dst) {
  return Tensor<T, R>(dst.shape(), dst.device());
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
        const Tensor<T, R> tmp = scratch_like(dst);  // e.g. a = a.transpose(0, 1)
        exec::copy_or_fill(tmp, expr);
        exec::copy_or_fill(dst, tmp);
      } else {
        exec::copy_or_fill(dst, expr);
      }
    } else {
      const exec::LeafList leaves = exec::leaves_of(expr);
      if (exec::reads_through_other_map(dst, leaves)) {
        const Tensor<T, R> tmp = scratch_like(dst);  // e.g. a = a.transpose(0, 1) + a
        exec::run(tmp, expr, leaves);
        exec::copy_or_fill(dst, tmp);
      } else {
        exec::run(dst, expr, leaves);
      }
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
