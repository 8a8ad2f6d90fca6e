// conv2d on a GPU: cuDNN 9's legacy convolution calls; the algorithm comes from cuDNN's
// heuristics and is cached with its workspace size per (shape, options, dtype, device, TF32
// flag), the workspace from the library's stream-ordered allocator; the bias gradient is a
// kernel of ours (deterministic, no atomics). Empty without CUDA.
#pragma once

#include <array>
#include <climits>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/cudnn.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/conv_geometry.hpp"
#include "ft/linalg/gemm.hpp"
#if FT_CUDA_ENABLED
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/cuda.hpp"
#endif

namespace ft::inline FT_ABI::linalg::detail {

// ---- CUDA: cuDNN ----

#if FT_CUDNN_ENABLED

enum class CudnnConvKind : int { forward = 0, backward_data = 1, backward_filter = 2 };

// Descriptors and the chosen algorithm of one (shape, options, dtype, device, kind): built once,
// then only read (cuDNN descriptors may be shared by threads that do not modify them).
struct CudnnConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;
  std::size_t workspace = 0;

  CudnnConvPlan() = default;
  CudnnConvPlan(const CudnnConvPlan&) = delete;
  CudnnConvPlan& operator=(const CudnnConvPlan&) = delete;
  ~CudnnConvPlan() {
    if (x) (void)cudnnDestroyTensorDescriptor(x);
    if (y) (void)cudnnDestroyTensorDescriptor(y);
    if (w) (void)cudnnDestroyFilterDescriptor(w);
    if (conv) (void)cudnnDestroyConvolutionDescriptor(conv);
  }
};

// Heuristic choices whose workspace exceeds this are passed over (FFT algorithms can ask for GiBs).
inline constexpr std::size_t kMaxCudnnWorkspace = std::size_t(1) << 30;

// The first of cuDNN's heuristic choices that succeeds, keeps the requested math (no TF32
// unless ft::allow_tf32()), fits the workspace cap and, for the backward passes, is
// deterministic (bit-identical gradients run after run); failing that, the first that keeps
// the math and the cap but not determinism; never one that breaks the math or the cap (none:
// nullptr, and the caller throws).
template <class Perf>
const Perf* pick_cudnn_algo(const Perf* perf, int count, cudnnMathType_t math, bool need_deterministic) {
  // The descriptor keeps `math` whatever the choice reports: an FMA descriptor runs an algorithm
  // reported with DEFAULT_MATH in FMA; a DEFAULT one may use tensor cores (TF32 allowed) but
  // never down-converts to half precision.
  auto math_ok = [&](cudnnMathType_t m) {
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
    return m == math || (math == CUDNN_FMA_MATH ? m == CUDNN_DEFAULT_MATH : m == CUDNN_TENSOR_OP_MATH);
  };
  auto usable = [&](const Perf& p) {
    return p.status == CUDNN_STATUS_SUCCESS && math_ok(p.mathType) && p.memory <= kMaxCudnnWorkspace;
  };
  for (int i = 0; i < count; ++i)
    if (usable(perf[i]) && (!need_deterministic || perf[i].determinism == CUDNN_DETERMINISTIC)) return &perf[i];
  for (int i = 0; i < count; ++i)
    if (usable(perf[i])) return &perf[i];
  return nullptr;
}

template <class T>
const CudnnConvPlan& cudnn_conv_plan(const char* op, cudnnHandle_t handle, const ConvGeometry& g, CudnnConvKind kind,
                                     Device device) {
  constexpr bool f32 = std::is_same_v<T, float>;
  const bool tf32 = f32 && allow_tf32();
  const std::array<index_t, 19> key{g.n,          g.c,
                                    g.h,          g.w,
                                    g.o,          g.cg,
                                    g.kh,         g.kw,
                                    g.stride.h,   g.stride.w,
                                    g.padding.h,  g.padding.w,
                                    g.dilation.h, g.dilation.w,
                                    g.groups,     static_cast<index_t>(dtype_of<T>()),
                                    device.index, static_cast<index_t>(kind),
                                    tf32};
  static std::mutex mutex;
  static std::map<std::array<index_t, 19>, std::unique_ptr<CudnnConvPlan>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return *it->second;

  for (index_t v : {g.n, g.c, g.h, g.w, g.o, g.oh, g.ow, g.stride.h, g.stride.w, g.padding.h, g.padding.w, g.dilation.h,
                    g.dilation.w, g.groups})
    check(v <= INT_MAX, op, "a size of ", v, " exceeds cuDNN's 32-bit limit");
  // cuDNN's legacy API indexes a tensor with 32-bit integers: larger ones must be split by batch
  for (index_t numel : {g.n * g.c * g.h * g.w, g.n * g.o * g.oh * g.ow, g.o * g.cg * g.kh * g.kw})
    check(numel <= INT_MAX, op, "a tensor of ", numel, " elements (input ", g.in_shape(),
          ") exceeds cuDNN's limit of 2^31 - 1 elements; split the batch");
  auto plan = std::make_unique<CudnnConvPlan>();
  const cudnnDataType_t type = f32                         ? CUDNN_DATA_FLOAT
                               : std::is_same_v<T, double> ? CUDNN_DATA_DOUBLE
                               : std::is_same_v<T, half>   ? CUDNN_DATA_HALF
                                                           : CUDNN_DATA_BFLOAT16;
  // the two-byte types accumulate in float (cuDNN's "pseudo-half" configuration)
  const cudnnDataType_t compute = is_half_v<T> ? CUDNN_DATA_FLOAT : type;
  auto i32 = [](index_t v) { return static_cast<int>(v); };
  FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
  FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
  FT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
  FT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv));
  FT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, type, i32(g.n), i32(g.c), i32(g.h), i32(g.w)));
  FT_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, type, i32(g.n), i32(g.o), i32(g.oh), i32(g.ow)));
  FT_CUDNN_CHECK(
      cudnnSetFilter4dDescriptor(plan->w, type, CUDNN_TENSOR_NCHW, i32(g.o), i32(g.cg), i32(g.kh), i32(g.kw)));
  FT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv, i32(g.padding.h), i32(g.padding.w), i32(g.stride.h),
                                                 i32(g.stride.w), i32(g.dilation.h), i32(g.dilation.w),
                                                 CUDNN_CROSS_CORRELATION, compute));
  FT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(plan->conv, i32(g.groups)));
  // FMA math keeps float convolutions in full fp32 (CUDNN_DEFAULT_MATH would allow TF32 on Ampere+);
  // the two-byte types run on tensor cores.
  const cudnnMathType_t math = is_half_v<T> ? CUDNN_TENSOR_OP_MATH : f32 && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  FT_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, math));

  if (kind == CudnnConvKind::forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    FT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan->x, plan->w, plan->conv, plan->y,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    const auto* p = pick_cudnn_algo(perf, count, math, false);
    check(p != nullptr, op, "cuDNN offers no forward algorithm within the workspace cap and math type for input ",
          g.in_shape(), ", weight ", g.weight_shape());
    plan->algo = static_cast<int>(p->algo);
  } else if (kind == CudnnConvKind::backward_data) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    FT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, plan->w, plan->y, plan->conv, plan->x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    const auto* p = pick_cudnn_algo(perf, count, math, true);
    check(p != nullptr, op, "cuDNN offers no backward-data algorithm within the workspace cap and math type for input ",
          g.in_shape(), ", weight ", g.weight_shape());
    plan->algo = static_cast<int>(p->algo);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    FT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, plan->x, plan->y, plan->conv, plan->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
    const auto* p = pick_cudnn_algo(perf, count, math, true);
    check(p != nullptr, op,
          "cuDNN offers no backward-filter algorithm within the workspace cap and math type for input ", g.in_shape(),
          ", weight ", g.weight_shape());
    plan->algo = static_cast<int>(p->algo);
  }
  // cuDNN decides tensor-core use from the algorithm and the descriptor's math type together;
  // the descriptor keeps ours, so TF32 never sneaks in.

  if (kind == CudnnConvKind::forward) {
    FT_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, plan->x, plan->w, plan->conv, plan->y,
                                                           static_cast<cudnnConvolutionFwdAlgo_t>(plan->algo),
                                                           &plan->workspace));
  } else if (kind == CudnnConvKind::backward_data) {
    FT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, plan->w, plan->y, plan->conv, plan->x,
                                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(plan->algo),
                                                                &plan->workspace));
  } else {
    FT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        handle, plan->x, plan->y, plan->conv, plan->w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan->algo),
        &plan->workspace));
  }
  return *(cache[key] = std::move(plan));
}

// One cuDNN call: y = conv(x, w) (+ y), dx = conv_backward_data(dy, w), dw = conv_backward_filter(x, dy).
template <class T>
void conv2d_cudnn(const char* op, CudnnConvKind kind, const ConvGeometry& g, Device device, const T* x, const T* w,
                  const T* dy, T* out, bool accumulate) {
  cuda::DeviceGuard guard(device);
  cudnnHandle_t handle = cuda::cudnn_handle(device);
  const CudnnConvPlan& plan = cudnn_conv_plan<T>(op, handle, g, kind, device);
  Storage workspace = plan.workspace ? make_storage(plan.workspace, device) : nullptr;
  void* ws = workspace ? workspace->data() : nullptr;
  // cuDNN reads double scalars for double data, float ones for float, half and bfloat16
  const compute_t<T> alpha = 1, beta = accumulate ? 1 : 0;
  stats::detail::record_launch(device);
  if (kind == CudnnConvKind::forward) {
    FT_CUDNN_CHECK(cudnnConvolutionForward(handle, &alpha, plan.x, x, plan.w, w, plan.conv,
                                           static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo), ws, plan.workspace, &beta,
                                           plan.y, out));
  } else if (kind == CudnnConvKind::backward_data) {
    FT_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &alpha, plan.w, w, plan.y, dy, plan.conv,
                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algo), ws,
                                                plan.workspace, &beta, plan.x, out));
  } else {
    FT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &alpha, plan.x, x, plan.y, dy, plan.conv,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algo), ws,
                                                  plan.workspace, &beta, plan.w, out));
  }
}

#else

// A build without cuDNN cannot convolve on a GPU.
[[noreturn]] inline void no_cudnn(const char* op, Device device) {
  cuda::require_device(device, op);  // throws first in a build without CUDA
  fail(op, "tensors on ", device, " need cuDNN, but cudnn.h was not found when this file was compiled ",
       "(or FT_NO_CUDNN is defined)");
}

#endif  // FT_CUDNN_ENABLED

#if FT_CUDA_ENABLED

template <class T>
struct ConvBiasGradKernel {
  static void launch(const T* dy, T* db, index_t n, index_t o, index_t p);
};

#if FT_CUDA_KERNELS
// db[c] = Σ_{n, pixel} dy[n, c, pixel]: one block a channel, each thread a strided partial in
// double, then a fixed-shape tree in shared memory (deterministic: no atomics).
template <class T>
__global__ void __launch_bounds__(exec::gpu::kBlock)
    conv_bias_grad_kernel(const T* dy, T* db, index_t n, index_t o, index_t p) {
  constexpr int kBlock = exec::gpu::kBlock;
  __shared__ double partial[kBlock];
  const index_t c = blockIdx.x;
  // Walk (sample, pixel) pairs kBlock apart without dividing: advance the pixel, carry into the sample.
  const index_t step_b = kBlock / p, step_i = kBlock % p;
  index_t b = threadIdx.x / p, i = threadIdx.x % p;
  double acc = 0;
  while (b < n) {
    acc += static_cast<double>(dy[(b * o + c) * p + i]);
    b += step_b;
    i += step_i;
    if (i >= p) {
      i -= p;
      ++b;
    }
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s /= 2) {
    if (static_cast<int>(threadIdx.x) < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[c] = static_cast<T>(partial[0]);
}
template <class T>
void ConvBiasGradKernel<T>::launch(const T* dy, T* db, index_t n, index_t o, index_t p) {
  conv_bias_grad_kernel<T><<<static_cast<unsigned>(o), exec::gpu::kBlock, 0, cuda::current_stream()>>>(dy, db, n, o, p);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS

template <class T>
void conv2d_backward_bias_cuda(Device device, const T* dy, T* db, index_t n, index_t o, index_t p) {
  cuda::DeviceGuard guard(device);
  check(o <= INT_MAX, "conv2d_backward_bias", o, " channels exceed the grid's limit");
  stats::detail::record_launch(device);
  cuda::launch_kernel<ConvBiasGradKernel<T>>("conv2d_backward_bias", dy, db, n, o, p);
}

#endif  // FT_CUDA_ENABLED

}  // namespace ft::inline FT_ABI::linalg::detail
