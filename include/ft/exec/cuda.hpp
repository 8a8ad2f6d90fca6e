// The CUDA executor: one kernel per statement. The kernels compile under nvcc only; every file
// of a CUDA build calls run / run_each, which reach them through cuda::launch_kernel.
#pragma once

#include <atomic>

#include "ft/core/config.hpp"

#if FT_CUDA_ENABLED

#include <cuda_runtime.h>

#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/fast_divmod.hpp"
#include "ft/exec/launch.hpp"

namespace ft::inline FT_ABI::exec::gpu {

inline constexpr int kBlock = 256;  // 8 warps: full occupancy at 8 blocks/SM, small tail

// The two kernels every statement uses: an expression into a tensor, and a multi-output body.
template <class T, int R, class Ev>
struct EvalKernel {
  static void launch(const Tensor<T, R>& dst, const Ev& ev, const Plan& plan);
};
template <int N, int R, class Body>
struct EachKernel {
  static void launch(const Body& body, const Shape<R>& shape, int device, const Plan& plan);
};

// The device's SM count, queried once; threads may race to fill the cache (they store the same
// value), so it is atomic.
inline int sm_count(int device) {
  static std::atomic<int> cached[kMaxDevices] = {};
  check(device >= 0 && device < kMaxDevices, "launch", "CUDA device ", device, " is beyond the ", kMaxDevices,
        " devices fusedtensor supports");
  int n = cached[device].load(std::memory_order_relaxed);
  if (n == 0) {
    FT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    cached[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

// The most shared memory a block may opt in to on the device (227 KiB on sm_90), queried once.
inline std::size_t shared_optin(int device) {
  static std::atomic<int> cached[kMaxDevices] = {};
  check(device >= 0 && device < kMaxDevices, "launch", "CUDA device ", device, " is beyond the ", kMaxDevices,
        " devices fusedtensor supports");
  int n = cached[device].load(std::memory_order_relaxed);
  if (n == 0) {
    FT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    cached[device].store(n, std::memory_order_relaxed);
  }
  return static_cast<std::size_t>(n);
}

// Enough blocks to fill every SM several times over; the grid-stride loops cover the rest.
inline unsigned grid_for(index_t work, int device) {
  index_t blocks = (work + kBlock - 1) / kBlock;
  index_t cap = static_cast<index_t>(sm_count(device)) * 32;
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

template <class I, int R>
struct Divisors {
  FastDivmod<I> d[R > 0 ? R : 1];
};

// ---- kernel arguments too large to pass by value ----
//
// A kernel's parameters hold at most 32 KB (CUDA 12.1+, Volta+; 4 KB before). A statement's
// evaluator is its expression with every leaf's reader in it, so a long statement that reads
// the same tensors many times grows past that (vision's hue rotation: 57–71 KB), and nvcc
// refuses the kernel. Such an argument is copied to device memory for the launch and the
// kernel reads it through a pointer (each thread from the L1/L2 caches), decided at compile
// time so the by-value kernel is never instantiated. The copy is stream-ordered, as is the
// free; a CUDA graph cannot capture it (a pageable copy), which is an ft::Error.
inline constexpr std::size_t kMaxKernelArgument = 16 * 1024;

// `Arg` read through a pointer to its device copy: the calls the kernels make, forwarded.
template <class Arg>
struct ByPointer {
  Arg* p;
  template <class... A>
  FT_HD FT_INLINE decltype(auto) operator()(A&&... a) const {
    return (*p)(static_cast<A&&>(a)...);
  }
  template <int N, class I>
  FT_HD FT_INLINE auto load(I i) const {
    return p->template load<N>(i);
  }
  template <int N, class I>
  FT_HD FT_INLINE void step(I i) const {
    p->template step<N>(i);
  }
};

// f(arg), or f(ByPointer) to a device copy of arg when it is larger than kMaxKernelArgument.
template <class Arg, class F>
void with_kernel_argument(const Arg& arg, int device, F&& f) {
  if constexpr (sizeof(Arg) <= kMaxKernelArgument) {
    f(arg);
  } else {
    const Device dev(kCUDA, device);
    check(!cuda::capturing(dev), "launch", "a statement whose kernel argument takes ", sizeof(Arg),
          " bytes (more than CUDA's 32 KB of parameters) cannot be captured in a CUDA graph: split the statement");
    const Storage copy = make_storage(sizeof(Arg), dev);
    FT_CUDA_CHECK(cudaMemcpyAsync(copy->data(), &arg, sizeof(Arg), cudaMemcpyHostToDevice, cuda::current_stream()));
    f(ByPointer<Arg>{static_cast<Arg*>(copy->data())});
  }
}

#if FT_CUDA_KERNELS

// Same-shape contiguous leaves: linear index, N elements a thread per step so that each
// leaf is read with one 16-byte load (N = 16 / sizeof(output element)).
template <int N, class I, class T, int R, class Ev>
__global__ void __launch_bounds__(kBlock) dense_kernel(T* __restrict__ out, Ev ev, I n) {
  const I stride = static_cast<I>(gridDim.x) * kBlock;
  const I first = static_cast<I>(blockIdx.x) * kBlock + static_cast<I>(threadIdx.x);
  if constexpr (N > 1) {
    const I nvec = n / N;
    for (I v = first; v < nvec; v += stride) {
      auto x = ev.template load<N>(v * N);
      Vec<T, N> y;
#pragma unroll
      for (int k = 0; k < N; ++k) store_value(y.v[k], x.v[k]);
      *reinterpret_cast<Vec<T, N>*>(out + v * N) = y;
    }
    for (I i = nvec * N + first; i < n; i += stride) store_value(out[i], ev(Index<I, R, true>{i}));
  } else {
    for (I i = first; i < n; i += stride) store_value(out[i], ev(Index<I, R, true>{i}));
  }
}

// The coordinates of linear index i by fast division.
template <class I, int R>
__device__ FT_INLINE Index<I, R, false> unravel_fast(I i, const Divisors<I, R>& div) {
  Index<I, R, false> ix;
  ix.linear = i;
  I rest = i;
#pragma unroll
  for (int d = R - 1; d > 0; --d) {
    I q, r;
    div.d[d].divmod(rest, q, r);
    ix.coord[d] = r;
    rest = q;
  }
  if constexpr (R > 0) ix.coord[0] = rest;
  return ix;
}

// Broadcast or strided leaves: coordinates from the linear index by fast division, once per
// element, shared by every leaf.
template <class I, class T, int R, class Ev>
__global__ void __launch_bounds__(kBlock) strided_kernel(TensorWriter<T, R> out, Ev ev, I n, Divisors<I, R> div) {
  const I stride = static_cast<I>(gridDim.x) * kBlock;
  for (I i = static_cast<I>(blockIdx.x) * kBlock + static_cast<I>(threadIdx.x); i < n; i += stride) {
    const auto ix = unravel_fast<I, R>(i, div);
    store_value(out[ix], ev(ix));
  }
}

// A multi-output kernel: body(ix) (or body.template step<N>(i) for N elements from i, each
// leaf and output read with one 16-byte access) computes and stores every output at ix.
template <int N, class I, int R, class Body>
__global__ void __launch_bounds__(kBlock) each_dense_kernel(Body body, I n) {
  const I stride = static_cast<I>(gridDim.x) * kBlock;
  const I first = static_cast<I>(blockIdx.x) * kBlock + static_cast<I>(threadIdx.x);
  I tail = 0;
  if constexpr (N > 1) {
    const I nvec = n / N;
    for (I v = first; v < nvec; v += stride) body.template step<N>(v * N);
    tail = nvec * N;
  }
  for (I i = tail + first; i < n; i += stride) body(Index<I, R, true>{i});
}

template <class I, int R, class Body>
__global__ void __launch_bounds__(kBlock) each_strided_kernel(Body body, I n, Divisors<I, R> div) {
  const I stride = static_cast<I>(gridDim.x) * kBlock;
  for (I i = static_cast<I>(blockIdx.x) * kBlock + static_cast<I>(threadIdx.x); i < n; i += stride)
    body(unravel_fast<I, R>(i, div));
}

template <class I, class T, int R, class Ev>
void launch(const Tensor<T, R>& dst, const Ev& ev, const Plan& plan) {
  const I n = static_cast<I>(dst.numel());
  const int dev = dst.device().index;
  cudaStream_t stream = cuda::current_stream();
  if (plan.dense) {
    constexpr int N = 16 / sizeof(T) > 0 ? static_cast<int>(16 / sizeof(T)) : 1;
    if (plan.aligned16 && n >= N) {
      dense_kernel<N, I, T, R><<<grid_for(n / N, dev), kBlock, 0, stream>>>(dst.data(), ev, n);
    } else {
      dense_kernel<1, I, T, R><<<grid_for(n, dev), kBlock, 0, stream>>>(dst.data(), ev, n);
    }
  } else {
    Divisors<I, R> div;
    for (int d = 0; d < R; ++d) div.d[d] = FastDivmod<I>(static_cast<I>(dst.shape()[d]));
    TensorWriter<T, R> out{dst.data(), dst.strides(), dst.is_contiguous()};
    strided_kernel<I, T, R><<<grid_for(n, dev), kBlock, 0, stream>>>(out, ev, n, div);
  }
  FT_CUDA_CHECK(cudaGetLastError());
}

template <int N, class I, int R, class Body>
void launch_each(const Body& body, const Shape<R>& shape, const Plan& plan, int dev) {
  const I n = static_cast<I>(shape.numel());
  cudaStream_t stream = cuda::current_stream();
  if (plan.dense) {
    if (N > 1 && plan.aligned16 && n >= N)
      each_dense_kernel<N, I, R><<<grid_for(n / N, dev), kBlock, 0, stream>>>(body, n);
    else
      each_dense_kernel<1, I, R><<<grid_for(n, dev), kBlock, 0, stream>>>(body, n);
  } else {
    Divisors<I, R> div;
    for (int d = 0; d < R; ++d) div.d[d] = FastDivmod<I>(static_cast<I>(shape[d]));
    each_strided_kernel<I, R><<<grid_for(n, dev), kBlock, 0, stream>>>(body, n, div);
  }
  FT_CUDA_CHECK(cudaGetLastError());
}

template <int N, int R, class Body>
void EachKernel<N, R, Body>::launch(const Body& body, const Shape<R>& shape, int device, const Plan& plan) {
  with_kernel_argument(body, device, [&](const auto& b) {
    if (plan.index32)
      launch_each<N, std::int32_t, R>(b, shape, plan, device);
    else
      launch_each<N, std::int64_t, R>(b, shape, plan, device);
  });
}

template <class T, int R, class Ev>
void EvalKernel<T, R, Ev>::launch(const Tensor<T, R>& dst, const Ev& ev, const Plan& plan) {
  with_kernel_argument(ev, dst.device().index, [&](const auto& e) {
    if (plan.index32)
      gpu::launch<std::int32_t>(dst, e, plan);
    else
      gpu::launch<std::int64_t>(dst, e, plan);
  });
}

#endif  // FT_CUDA_KERNELS

// Runs a multi-output kernel body over `shape` on `device`: one launch. N: elements a thread
// step in the dense path (1 when the outputs' element sizes differ).
template <int N, int R, class Body>
void run_each(const Body& body, const Shape<R>& shape, Device device, const Plan& plan) {
  cuda::DeviceGuard guard(device);
  stats::detail::record_launch(device);
  cuda::launch_kernel<EachKernel<N, R, Body>>("eval", body, shape, device.index, plan);
}

template <class T, int R, class Ev>
void run(const Tensor<T, R>& dst, const Ev& ev, const Plan& plan) {
  cuda::DeviceGuard guard(dst.device());
  stats::detail::record_launch(dst.device());
  cuda::launch_kernel<EvalKernel<T, R, Ev>>("eval", dst, ev, plan);
}

}  // namespace ft::inline FT_ABI::exec::gpu

#endif
