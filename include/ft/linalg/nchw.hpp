// What convolution and pooling share: ft::Pair (one number or {h, w}, as PyTorch's int-or-tuple
// arguments), turning an operand into a contiguous NCHW tensor, and a one-launch loop over
// elements that runs as one OpenMP loop on the CPU and one kernel on a GPU.
#pragma once

#include <algorithm>
#include <ostream>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/expr/expression.hpp"

#if FT_CUDA_ENABLED
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/cuda.hpp"
#endif

namespace ft::inline FT_ABI {

// A height and a width: `2` means {2, 2}, `{1, 2}` means height 1, width 2.
struct Pair {
  index_t h = 0;
  index_t w = 0;

  constexpr Pair() = default;
  constexpr Pair(index_t both) : h(both), w(both) {}  // NOLINT: implicit, so `.stride = 2` works
  constexpr Pair(index_t height, index_t width) : h(height), w(width) {}
  friend constexpr bool operator==(const Pair&, const Pair&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Pair& p) { return os << '(' << p.h << ", " << p.w << ')'; }

namespace linalg::detail {

template <class E>
inline constexpr bool is_plain_tensor_v = false;
template <class T, int R>
inline constexpr bool is_plain_tensor_v<Tensor<T, R>> = true;

// `e`'s values as a contiguous tensor: a contiguous tensor as it is (no launch), a strided view
// copied and an expression evaluated (one launch each).
template <class E>
Tensor<typename E::value_type, E::rank> contiguous_operand(const E& e, const char* op, const char* what) {
  if constexpr (is_plain_tensor_v<E>) {
    check(e.defined(), op, "the ", what, " tensor is undefined");
    return e.contiguous();
  } else {
    return eval(e);
  }
}

// Shorthand for the message of a failed geometry check.
inline std::string hw(index_t h, index_t w) { return ft::detail::concat(h, "x", w); }

#if FT_CUDA_ENABLED
template <class F>
struct ForEachElementKernel {
  static void launch(const F& f, index_t n, int device);
};
#if FT_CUDA_KERNELS
template <class F>
__global__ void __launch_bounds__(exec::gpu::kBlock) for_each_element_kernel(F f, index_t n) {
  const index_t stride = static_cast<index_t>(gridDim.x) * exec::gpu::kBlock;
  for (index_t i = static_cast<index_t>(blockIdx.x) * exec::gpu::kBlock + threadIdx.x; i < n; i += stride) f(i);
}
template <class F>
void ForEachElementKernel<F>::launch(const F& f, index_t n, int device) {
  for_each_element_kernel<<<exec::gpu::grid_for(n, device), exec::gpu::kBlock, 0, cuda::current_stream()>>>(f, n);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif
#endif

// The outputs o in [0, n_out) that read input o·s + off inside [0, n_in) form the range [lo, hi).
inline void valid_range(index_t n_in, index_t n_out, index_t s, index_t off, index_t& lo, index_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = n_in - off > 0 ? (n_in - 1 - off) / s + 1 : 0;
  lo = std::min(lo, n_out);
  hi = std::clamp(hi, lo, n_out);
}

// Calls f(i) for every i in [0, n) on `device`: one OpenMP loop (parallel when n·cost is worth
// a parallel region) or one grid-stride kernel. Counts one launch; n = 0 launches nothing.
// `f` is a trivially copyable functor with an FT_HD operator()(index_t) (nvcc needs no
// extended lambdas this way).
template <class F>
void for_each_element(Device device, index_t n, const F& f, index_t cost = 1) {
  (void)cost;  // unused without OpenMP
  if (n <= 0) return;
  stats::detail::record_launch(device);
  if (device.is_cpu()) {
#pragma omp parallel for schedule(static) if (n * cost > exec::cpu::kParallelGrain)
    for (index_t i = 0; i < n; ++i) f(i);
    return;
  }
#if FT_CUDA_ENABLED
  cuda::DeviceGuard guard(device);
  cuda::launch_kernel<ForEachElementKernel<F>>("for_each_element", f, n, device.index);
#else
  cuda::require_device(device, "for_each_element");
#endif
}

}  // namespace linalg::detail
}  // namespace ft::inline FT_ABI
