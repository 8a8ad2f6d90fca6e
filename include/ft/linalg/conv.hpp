// ft::conv2d (NCHW, torch.nn.functional.conv2d's semantics) and the primitives its backward
// pass needs: conv2d_backward_data (dx), conv2d_backward_weight (dw), conv2d_backward_bias (db).
//
// CPU: im2col (one OpenMP loop over the batch's channel planes) + the strided-batched GEMM of
// linalg/gemm.hpp, the groups as the GEMM's batch; col2im (one loop) for the data gradient.
// CUDA: cuDNN 9's legacy convolution calls; the algorithm comes from cuDNN's heuristics and is
// cached with its workspace size per (shape, options, dtype, device, TF32 flag); the workspace
// comes from the library's stream-ordered allocator.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/cudnn.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/gemm.hpp"
#include "ft/linalg/nchw.hpp"
#if FT_CUDA_ENABLED
#include "ft/cuda/runtime.hpp"
#include "ft/exec/cuda.hpp"
#endif

namespace ft {

// torch.nn.functional.conv2d's options; each Pair takes one number or {height, width}:
// ft::conv2d(x, w, b, {.stride = 2, .padding = {1, 2}}).
struct Conv2dOptions {
  Pair stride = 1;
  Pair padding = 0;
  Pair dilation = 1;
  index_t groups = 1;
};

namespace linalg::detail {

// The sizes of one convolution, checked once; every back-end reads them from here.
struct ConvGeometry {
  index_t n, c, h, w;     // input [n, c, h, w]
  index_t o, cg, kh, kw;  // weight [o, cg, kh, kw], cg = c / groups
  index_t oh, ow;         // output [n, o, oh, ow]
  index_t groups;
  Pair stride, padding, dilation;

  index_t og() const { return o / groups; }    // output channels of a group
  index_t kg() const { return cg * kh * kw; }  // GEMM depth of a group: rows of its im2col block
  index_t k() const { return c * kh * kw; }    // rows of a sample's im2col matrix
  index_t p() const { return oh * ow; }        // output pixels of a plane: columns of im2col
  Shape<4> in_shape() const { return {n, c, h, w}; }
  Shape<4> weight_shape() const { return {o, cg, kh, kw}; }
  Shape<4> out_shape() const { return {n, o, oh, ow}; }
  // 1x1 kernel, unit stride, no padding: im2col is the identity, so the input is the col matrix.
  bool pointwise() const { return kh == 1 && kw == 1 && stride == Pair(1) && padding == Pair(0) && h == oh && w == ow; }
};

inline ConvGeometry conv_geometry(const char* op, const Shape<4>& x, const Shape<4>& w, const Conv2dOptions& opt) {
  const Pair s = opt.stride, p = opt.padding, d = opt.dilation;
  const index_t groups = opt.groups;
  check(s.h > 0 && s.w > 0, op, "stride must be positive, got ", s);
  check(d.h > 0 && d.w > 0, op, "dilation must be positive, got ", d);
  check(p.h >= 0 && p.w >= 0, op, "padding must be non-negative, got ", p);
  check(groups > 0, op, "groups must be positive, got ", groups);
  for (int i = 0; i < 4; ++i) {
    check(x[i] >= 0, op, "input shape ", x, " has a negative extent");
    check(w[i] >= 0, op, "weight shape ", w, " has a negative extent");
  }
  check(x[1] % groups == 0, op, "groups = ", groups, " does not divide the ", x[1], " channels of input ", x);
  check(w[0] % groups == 0, op, "groups = ", groups, " does not divide the ", w[0], " output channels of weight ", w);
  check(x[1] == w[1] * groups, op, "input ", x, " has ", x[1], " channels but weight ", w, " expects ", w[1] * groups,
        " (groups = ", groups, ")");
  check(w[2] > 0 && w[3] > 0, op, "weight ", w, " has an empty kernel");
  const index_t eff_h = d.h * (w[2] - 1) + 1, eff_w = d.w * (w[3] - 1) + 1;
  const index_t pad_h = x[2] + 2 * p.h, pad_w = x[3] + 2 * p.w;
  check(eff_h <= pad_h && eff_w <= pad_w, op, "the kernel ", hw(w[2], w[3]), " (", hw(eff_h, eff_w), " with dilation ",
        d, ") is larger than the padded input ", hw(pad_h, pad_w), " (input ", x, ", weight ", w, ", padding ", p, ")");
  ConvGeometry g{x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], 0, 0, groups, s, p, d};
  g.oh = (pad_h - eff_h) / s.h + 1;  // torch's rule: floor((H + 2p − d(k−1) − 1) / s) + 1
  g.ow = (pad_w - eff_w) / s.w + 1;
  return g;
}

// A backward primitive's grad_out must have the forward output's shape.
inline void check_grad_out(const char* op, const ConvGeometry& g, const Shape<4>& dy, const Shape<4>& x,
                           const Shape<4>& w) {
  check(dy == g.out_shape(), op, "grad_out ", dy, " should have shape ", g.out_shape(), ", the output of input ", x,
        " and weight ", w, " (stride ", g.stride, ", padding ", g.padding, ", dilation ", g.dilation, ")");
}

inline void check_conv_devices(const char* op, const char* a, Device da, const char* b, Device db) {
  check(da == db, op, a, " on ", da, " but ", b, " on ", db, "; move one with .to(device)");
}

template <class X, class W>
constexpr bool conv_operands_ok() {
  static_assert(X::rank == 4, "ft::conv2d: the input must be rank 4 [N, C, H, W]; unsqueeze(0) a single image");
  static_assert(W::rank == 4, "ft::conv2d: the weight must be rank 4 [out_channels, in_channels / groups, kH, kW]");
  static_assert(std::is_same_v<typename X::value_type, typename W::value_type>,
                "ft::conv2d: the operands must have the same element type; convert one with ft::cast<T>");
  static_assert(std::is_same_v<typename X::value_type, float> || std::is_same_v<typename X::value_type, double>,
                "ft::conv2d: only float and double tensors are supported");
  return X::rank == 4 && W::rank == 4 && std::is_same_v<typename X::value_type, typename W::value_type>;
}

}  // namespace linalg::detail

namespace linalg::testing {
// The batch is processed in chunks of samples whose im2col matrices fit in this many bytes;
// tests lower it to run the chunked path on small tensors.
inline std::atomic<std::size_t> im2col_bytes{std::size_t(64) << 20};
}  // namespace linalg::testing

namespace linalg::detail {

// ---- CPU: im2col + GEMM ----

template <class T>
index_t im2col_chunk(const ConvGeometry& g) {
  const index_t per_sample = std::max<index_t>(g.k() * g.p() * static_cast<index_t>(sizeof(T)), 1);
  const auto budget = static_cast<index_t>(testing::im2col_bytes.load(std::memory_order_relaxed));
  return std::clamp<index_t>(budget / per_sample, 1, std::max<index_t>(g.n, 1));
}

// The calling thread's im2col buffer, kept from call to call and grown on demand (to at most
// testing::im2col_bytes, or one sample's matrix when that is larger), as oneDNN keeps its
// scratchpad: a fresh buffer of tens of MB a call costs more in page faults than the
// convolution's own memory traffic, and a chunk of the whole batch lets im2col and the GEMM each
// run once (alternating the OpenMP and BLAS thread pools sample by sample costs more again).
template <class T>
T* im2col_buffer(const ConvGeometry& g, index_t chunk) {
  thread_local Tensor<T, 1> buffer;
  const index_t need = chunk * g.k() * g.p();
  if (!buffer.defined() || buffer.numel() < need) {
    buffer = Tensor<T, 1>();  // free the old one first
    buffer = Tensor<T, 1>(Shape<1>{need}, kCPU);
  }
  return buffer.data();
}

// The outputs o in [0, n_out) that read input o·s + off inside [0, n_in) form the range [lo, hi).
inline void valid_range(index_t n_in, index_t n_out, index_t s, index_t off, index_t& lo, index_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = n_in - off > 0 ? (n_in - 1 - off) / s + 1 : 0;
  lo = std::min(lo, n_out);
  hi = std::clamp(hi, lo, n_out);
}

// col[n][(c·kH + i)·kW + j][oh·oW + ow] = x[n0 + n][c][oh·sH − pH + i·dH][ow·sW − pW + j·dW]
// (0 in the padding) for the nb samples from n0. One loop over the (sample, channel) planes.
template <class T>
void im2col(const ConvGeometry& g, const T* x, T* col, index_t n0, index_t nb) {
  stats::detail::record_launch(kCPU);
  const index_t planes = nb * g.c, plane_rows = g.kh * g.kw * g.p();
#pragma omp parallel for schedule(static) if (planes * plane_rows > exec::cpu::kParallelGrain)
  for (index_t q = 0; q < planes; ++q) {
    const T* src = x + (n0 * g.c + q) * g.h * g.w;
    T* dst = col + q * plane_rows;
    for (index_t i = 0; i < g.kh; ++i) {
      index_t oh0, oh1;
      const index_t off_h = i * g.dilation.h - g.padding.h;
      valid_range(g.h, g.oh, g.stride.h, off_h, oh0, oh1);
      for (index_t j = 0; j < g.kw; ++j, dst += g.p()) {
        index_t ow0, ow1;
        const index_t off_w = j * g.dilation.w - g.padding.w;
        valid_range(g.w, g.ow, g.stride.w, off_w, ow0, ow1);
        for (index_t oh = 0; oh < g.oh; ++oh) {
          T* row = dst + oh * g.ow;
          if (oh < oh0 || oh >= oh1) {
            std::fill(row, row + g.ow, T(0));
            continue;
          }
          const T* in = src + (oh * g.stride.h + off_h) * g.w + off_w;
          std::fill(row, row + ow0, T(0));
          if (g.stride.w == 1) {
            std::copy(in + ow0, in + ow1, row + ow0);
          } else {
            for (index_t ow = ow0; ow < ow1; ++ow) row[ow] = in[ow * g.stride.w];
          }
          std::fill(row + ow1, row + g.ow, T(0));
        }
      }
    }
  }
}

// The adjoint of im2col: dx[n0 + n][c] = Σ over the col entries that read each pixel, summed in
// a fixed (i, j, oh, ow) order. One loop over planes; each plane is written by one thread.
template <class T>
void col2im(const ConvGeometry& g, const T* col, T* dx, index_t n0, index_t nb) {
  stats::detail::record_launch(kCPU);
  const index_t planes = nb * g.c, plane_rows = g.kh * g.kw * g.p();
#pragma omp parallel for schedule(static) if (planes * plane_rows > exec::cpu::kParallelGrain)
  for (index_t q = 0; q < planes; ++q) {
    T* dst = dx + (n0 * g.c + q) * g.h * g.w;
    const T* src = col + q * plane_rows;
    std::fill(dst, dst + g.h * g.w, T(0));
    for (index_t i = 0; i < g.kh; ++i) {
      index_t oh0, oh1;
      const index_t off_h = i * g.dilation.h - g.padding.h;
      valid_range(g.h, g.oh, g.stride.h, off_h, oh0, oh1);
      for (index_t j = 0; j < g.kw; ++j, src += g.p()) {
        index_t ow0, ow1;
        const index_t off_w = j * g.dilation.w - g.padding.w;
        valid_range(g.w, g.ow, g.stride.w, off_w, ow0, ow1);
        for (index_t oh = oh0; oh < oh1; ++oh) {
          T* out = dst + (oh * g.stride.h + off_h) * g.w + off_w;
          const T* row = src + oh * g.ow;
          for (index_t ow = ow0; ow < ow1; ++ow) out[ow * g.stride.w] += row[ow];
        }
      }
    }
  }
}

// y[n, group] = W[group] · col[n, group] (+ y when accumulate): one strided-batched GEMM per
// group over the samples, or per sample over the groups, whichever makes fewer calls.
template <class T>
void conv2d_cpu(const ConvGeometry& g, const T* x, const T* w, T* y, bool accumulate) {
  const index_t G = g.groups, og = g.og(), kg = g.kg(), P = g.p(), K = g.k();
  const T beta = accumulate ? T(1) : T(0);
  const index_t chunk = im2col_chunk<T>(g);
  T* col = g.pointwise() ? nullptr : im2col_buffer<T>(g, chunk);
  for (index_t n0 = 0; n0 < g.n; n0 += chunk) {
    const index_t nb = std::min(chunk, g.n - n0);
    const T* cols = g.pointwise() ? x + n0 * K * P : col;
    if (!g.pointwise()) im2col(g, x, col, n0, nb);
    T* out = y + n0 * g.o * P;
    if (G <= nb) {
      for (index_t gi = 0; gi < G; ++gi)
        gemm<T>(kCPU, false, false, og, P, kg, T(1), w + gi * og * kg, kg, 0, cols + gi * kg * P, P, K * P, beta,
                out + gi * og * P, P, g.o * P, nb);
    } else {
      for (index_t n = 0; n < nb; ++n)
        gemm<T>(kCPU, false, false, og, P, kg, T(1), w, kg, og * kg, cols + n * K * P, P, kg * P, beta,
                out + n * g.o * P, P, og * P, G);
    }
  }
}

// dcol[n, group] = W[group]ᵀ · dy[n, group], then col2im (for a pointwise kernel the GEMM
// writes dx directly).
template <class T>
void conv2d_backward_data_cpu(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  const index_t G = g.groups, og = g.og(), kg = g.kg(), P = g.p(), K = g.k();
  const index_t chunk = im2col_chunk<T>(g);
  T* col = g.pointwise() ? nullptr : im2col_buffer<T>(g, chunk);
  for (index_t n0 = 0; n0 < g.n; n0 += chunk) {
    const index_t nb = std::min(chunk, g.n - n0);
    T* dcol = g.pointwise() ? dx + n0 * K * P : col;
    const T* gy = dy + n0 * g.o * P;
    if (G <= nb) {
      for (index_t gi = 0; gi < G; ++gi)
        gemm<T>(kCPU, true, false, kg, P, og, T(1), w + gi * og * kg, kg, 0, gy + gi * og * P, P, g.o * P, T(0),
                dcol + gi * kg * P, P, K * P, nb);
    } else {
      for (index_t n = 0; n < nb; ++n)
        gemm<T>(kCPU, true, false, kg, P, og, T(1), w, kg, og * kg, gy + n * g.o * P, P, og * P, T(0), dcol + n * K * P,
                P, kg * P, G);
    }
    if (!g.pointwise()) col2im(g, col, dx, n0, nb);
  }
}

// dW[group] = Σ_n dy[n, group] · col[n, group]ᵀ, accumulated sample after sample (a fixed
// order: the result is the same run after run): one GEMM per sample, batched over the groups.
template <class T>
void conv2d_backward_weight_cpu(const ConvGeometry& g, const T* x, const T* dy, T* dw) {
  const index_t G = g.groups, og = g.og(), kg = g.kg(), P = g.p(), K = g.k();
  const index_t chunk = im2col_chunk<T>(g);
  T* col = g.pointwise() ? nullptr : im2col_buffer<T>(g, chunk);
  for (index_t n0 = 0; n0 < g.n; n0 += chunk) {
    const index_t nb = std::min(chunk, g.n - n0);
    const T* cols = g.pointwise() ? x + n0 * K * P : col;
    if (!g.pointwise()) im2col(g, x, col, n0, nb);
    for (index_t n = 0; n < nb; ++n)
      gemm<T>(kCPU, false, true, og, kg, P, T(1), dy + (n0 + n) * g.o * P, P, og * P, cols + n * K * P, P, kg * P,
              n0 + n == 0 ? T(0) : T(1), dw, kg, og * kg, G);
  }
}

// db[o] = Σ_{n, pixel} dy[n, o, pixel] in double, in a fixed order (8 interleaved partial sums a
// row, which the compiler vectorises, added in a fixed tree); one loop over channels.
template <class T>
void conv2d_backward_bias_cpu(const T* dy, T* db, index_t n, index_t o, index_t p) {
  stats::detail::record_launch(kCPU);
  constexpr int kLanes = 8;
#pragma omp parallel for schedule(static) if (n * o * p > exec::cpu::kParallelGrain)
  for (index_t c = 0; c < o; ++c) {
    double acc[kLanes] = {};
    for (index_t b = 0; b < n; ++b) {
      const T* row = dy + (b * o + c) * p;
      index_t i = 0;
      for (; i + kLanes <= p; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(row[i + l]);
      for (int l = 0; i < p; ++i, ++l) acc[l] += static_cast<double>(row[i]);
    }
    for (int w = kLanes / 2; w > 0; w /= 2)
      for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    db[c] = static_cast<T>(acc[0]);
  }
}

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
// deterministic (bit-identical gradients run after run); failing that, the first that succeeds.
template <class Perf>
const Perf* pick_cudnn_algo(const Perf* perf, int count, cudnnMathType_t math, bool need_deterministic) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status == CUDNN_STATUS_SUCCESS && p.mathType == math && p.memory <= kMaxCudnnWorkspace &&
        (!need_deterministic || p.determinism == CUDNN_DETERMINISTIC))
      return &p;
  }
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return &perf[i];
  return nullptr;
}

template <class T>
const CudnnConvPlan& cudnn_conv_plan(const char* op, cudnnHandle_t handle, const ConvGeometry& g, CudnnConvKind kind,
                                     Device device) {
  constexpr bool f32 = std::is_same_v<T, float>;
  const bool tf32 = f32 && allow_tf32();
  const std::array<index_t, 19> key{
      g.n,          g.c,          g.h,        g.w,        g.o,          g.cg,
      g.kh,         g.kw,         g.stride.h, g.stride.w, g.padding.h,  g.padding.w,
      g.dilation.h, g.dilation.w, g.groups,   f32,        device.index, static_cast<index_t>(kind),
      tf32};
  static std::mutex mutex;
  static std::map<std::array<index_t, 19>, std::unique_ptr<CudnnConvPlan>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return *it->second;

  for (index_t v : {g.n, g.c, g.h, g.w, g.o, g.oh, g.ow, g.stride.h, g.stride.w, g.padding.h, g.padding.w, g.dilation.h,
                    g.dilation.w, g.groups})
    check(v <= INT_MAX, op, "a size of ", v, " exceeds cuDNN's 32-bit limit");
  auto plan = std::make_unique<CudnnConvPlan>();
  const cudnnDataType_t type = f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
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
                                                 CUDNN_CROSS_CORRELATION, type));
  FT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(plan->conv, i32(g.groups)));
  // FMA math keeps float convolutions in full fp32 (CUDNN_DEFAULT_MATH would allow TF32 on Ampere+).
  const cudnnMathType_t math = f32 && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  FT_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, math));

  cudnnMathType_t chosen_math = math;
  if (kind == CudnnConvKind::forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    FT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan->x, plan->w, plan->conv, plan->y,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    const auto* p = pick_cudnn_algo(perf, count, math, false);
    check(p != nullptr, op, "cuDNN offers no forward algorithm for input ", g.in_shape(), ", weight ",
          g.weight_shape());
    plan->algo = static_cast<int>(p->algo);
    chosen_math = p->mathType;
  } else if (kind == CudnnConvKind::backward_data) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    FT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, plan->w, plan->y, plan->conv, plan->x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    const auto* p = pick_cudnn_algo(perf, count, math, true);
    check(p != nullptr, op, "cuDNN offers no backward-data algorithm for input ", g.in_shape(), ", weight ",
          g.weight_shape());
    plan->algo = static_cast<int>(p->algo);
    chosen_math = p->mathType;
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    FT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, plan->x, plan->y, plan->conv, plan->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
    const auto* p = pick_cudnn_algo(perf, count, math, true);
    check(p != nullptr, op, "cuDNN offers no backward-filter algorithm for input ", g.in_shape(), ", weight ",
          g.weight_shape());
    plan->algo = static_cast<int>(p->algo);
    chosen_math = p->mathType;
  }
  // cuDNN decides tensor-core use from the algorithm and the descriptor's math type together;
  // a fallback choice with another math type keeps ours, so TF32 never sneaks in.
  if (chosen_math == math || math != CUDNN_FMA_MATH)
    FT_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, chosen_math));

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
  const T alpha = 1, beta = accumulate ? T(1) : T(0);  // cuDNN reads double scalars for double data
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
void conv2d_backward_bias_cuda(Device device, const T* dy, T* db, index_t n, index_t o, index_t p) {
  cuda::DeviceGuard guard(device);
  check(o <= INT_MAX, "conv2d_backward_bias", o, " channels exceed the grid's limit");
  stats::detail::record_launch(device);
  conv_bias_grad_kernel<T><<<static_cast<unsigned>(o), exec::gpu::kBlock, 0, cuda::current_stream()>>>(dy, db, n, o, p);
  FT_CUDA_CHECK(cudaGetLastError());
}

#endif  // FT_CUDA_ENABLED

template <class T>
Tensor<T, 4> conv2d_impl(const Tensor<T, 4>& x, const Tensor<T, 4>& w, const Tensor<T, 1>* bias,
                         const Conv2dOptions& opt) {
  constexpr const char* op = "conv2d";
  const Device device = x.device();
  check_conv_devices(op, "input", device, "weight", w.device());
  if (bias) check_conv_devices(op, "input", device, "bias", bias->device());
  const ConvGeometry g = conv_geometry(op, x.shape(), w.shape(), opt);
  if (bias)
    check(bias->size(0) == g.o, op, "bias ", bias->shape(), " has ", bias->size(0), " elements but weight ", w.shape(),
          " has ", g.o, " output channels");
  Tensor<T, 4> y(g.out_shape(), device);
  if (y.numel() == 0) return y;
  // With a bias, y starts as the broadcast bias (one launch) and the GEMM / cuDNN adds onto it.
  if (bias) ft::detail::assign(y, bias->reshape({1, g.o, 1, 1}), op);
  if (g.kg() == 0) {  // no input channels: the output is the bias alone
    if (!bias) ft::detail::assign(y, T(0), op);
    return y;
  }
  if (device.is_cpu()) {
    conv2d_cpu<T>(g, x.data(), w.data(), y.data(), bias != nullptr);
  } else {
#if FT_CUDNN_ENABLED
    conv2d_cudnn<T>(op, CudnnConvKind::forward, g, device, x.data(), w.data(), nullptr, y.data(), bias != nullptr);
#else
    no_cudnn(op, device);
#endif
  }
  return y;
}

}  // namespace linalg::detail

// torch.nn.functional.conv2d: x [N, C, H, W], w [O, C / groups, kH, kW] → [N, O, oH, oW] with
// oH = floor((H + 2·padding − dilation·(kH − 1) − 1) / stride) + 1 (same for the width).
// Operands that are expressions are evaluated first, strided views made contiguous.
template <Expression X, Expression W>
auto conv2d(const X& x, const W& w, const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  if constexpr (linalg::detail::conv_operands_ok<X, W>()) {
    auto xc = linalg::detail::contiguous_operand(x, "conv2d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv2d", "weight");
    return linalg::detail::conv2d_impl<T>(xc, wc, nullptr, options);
  }
}

// The same plus bias [O], added to every output pixel of its channel.
template <Expression X, Expression W, Expression B>
auto conv2d(const X& x, const W& w, const B& bias, const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  static_assert(B::rank == 1, "ft::conv2d: the bias must be rank 1 [out_channels]");
  static_assert(std::is_same_v<typename B::value_type, T>,
                "ft::conv2d: the bias must have the input's element type; convert it with ft::cast<T>");
  if constexpr (linalg::detail::conv_operands_ok<X, W>() && B::rank == 1 && std::is_same_v<typename B::value_type, T>) {
    auto xc = linalg::detail::contiguous_operand(x, "conv2d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv2d", "weight");
    auto bc = linalg::detail::contiguous_operand(bias, "conv2d", "bias");
    return linalg::detail::conv2d_impl<T>(xc, wc, &bc, options);
  }
}

// dx = ∂L/∂x of conv2d given dy = ∂L/∂y (the transposed convolution of dy with w), for an input
// of shape x_shape. Deterministic on both devices.
template <Expression G, Expression W>
auto conv2d_backward_data(const G& grad_out, const W& w, const Shape<4>& x_shape, const Conv2dOptions& options = {}) {
  using T = typename G::value_type;
  constexpr const char* op = "conv2d_backward_data";
  if constexpr (linalg::detail::conv_operands_ok<G, W>()) {
    using namespace linalg::detail;
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    auto wc = contiguous_operand(w, op, "weight");
    const Device device = dy.device();
    check_conv_devices(op, "grad_out", device, "weight", wc.device());
    const ConvGeometry g = conv_geometry(op, x_shape, wc.shape(), options);
    check_grad_out(op, g, dy.shape(), x_shape, wc.shape());
    Tensor<T, 4> dx(x_shape, device);
    if (dx.numel() == 0) return dx;
    if (dy.numel() == 0) {  // no output channels: nothing flows back
      ft::detail::assign(dx, T(0), op);
      return dx;
    }
    if (device.is_cpu()) {
      conv2d_backward_data_cpu<T>(g, dy.data(), wc.data(), dx.data());
    } else {
#if FT_CUDNN_ENABLED
      conv2d_cudnn<T>(op, CudnnConvKind::backward_data, g, device, nullptr, wc.data(), dy.data(), dx.data(), false);
#else
      no_cudnn(op, device);
#endif
    }
    return dx;
  }
}

// dw = ∂L/∂w of conv2d given the input x and dy = ∂L/∂y, for a weight of shape w_shape,
// accumulated over the batch in a fixed order (bit-identical run after run).
template <Expression X, Expression G>
auto conv2d_backward_weight(const X& x, const G& grad_out, const Shape<4>& w_shape, const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  constexpr const char* op = "conv2d_backward_weight";
  if constexpr (linalg::detail::conv_operands_ok<X, G>()) {
    using namespace linalg::detail;
    auto xc = contiguous_operand(x, op, "input");
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    const Device device = xc.device();
    check_conv_devices(op, "input", device, "grad_out", dy.device());
    const ConvGeometry g = conv_geometry(op, xc.shape(), w_shape, options);
    check_grad_out(op, g, dy.shape(), xc.shape(), w_shape);
    Tensor<T, 4> dw(w_shape, device);
    if (dw.numel() == 0) return dw;
    if (dy.numel() == 0 || xc.numel() == 0) {  // an empty batch: the gradient is zero
      ft::detail::assign(dw, T(0), op);
      return dw;
    }
    if (device.is_cpu()) {
      conv2d_backward_weight_cpu<T>(g, xc.data(), dy.data(), dw.data());
    } else {
#if FT_CUDNN_ENABLED
      conv2d_cudnn<T>(op, CudnnConvKind::backward_filter, g, device, xc.data(), nullptr, dy.data(), dw.data(), false);
#else
      no_cudnn(op, device);
#endif
    }
    return dw;
  }
}

// db = ∂L/∂bias given dy [N, O, oH, oW]: the sum over every axis but the channel. One launch,
// deterministic (a fixed summation order in double on both devices).
template <Expression G>
auto conv2d_backward_bias(const G& grad_out) {
  using T = typename G::value_type;
  constexpr const char* op = "conv2d_backward_bias";
  static_assert(G::rank == 4, "ft::conv2d_backward_bias: grad_out must be rank 4 [N, O, oH, oW]");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "ft::conv2d_backward_bias: only float and double tensors are supported");
  if constexpr (G::rank == 4) {
    auto dy = linalg::detail::contiguous_operand(grad_out, op, "grad_out");
    const Device device = dy.device();
    const index_t n = dy.size(0), o = dy.size(1), p = dy.size(2) * dy.size(3);
    Tensor<T, 1> db(Shape<1>{o}, device);
    if (o == 0) return db;
    if (n * p == 0) {
      ft::detail::assign(db, T(0), op);
      return db;
    }
    if (device.is_cpu()) {
      linalg::detail::conv2d_backward_bias_cpu<T>(dy.data(), db.data(), n, o, p);
    } else {
#if FT_CUDA_ENABLED
      linalg::detail::conv2d_backward_bias_cuda<T>(device, dy.data(), db.data(), n, o, p);
#else
      cuda::require_device(device, op);
#endif
    }
    return db;
  }
}

}  // namespace ft
