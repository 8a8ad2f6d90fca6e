// conv2d on the CPU: im2col (one OpenMP loop over the batch's channel planes) + the
// strided-batched GEMM of linalg/gemm.hpp, the groups as the GEMM's batch; col2im (one loop)
// for the data gradient; the bias gradient as one loop.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <optional>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/conv_geometry.hpp"
#include "ft/linalg/gemm.hpp"
#include "ft/linalg/nchw.hpp"

namespace ft::inline FT_ABI {

namespace linalg::testing {
// The batch is processed in chunks of samples whose im2col matrices fit in this many bytes;
// tests lower it to run the chunked path on small tensors.
inline std::atomic<std::size_t> im2col_bytes{std::size_t(64) << 20};
// Whether float convolutions may run through oneDNN (where the build has it); tests of the
// im2col path turn it off.
inline std::atomic<bool> onednn_conv{true};
}  // namespace linalg::testing

namespace linalg::detail {

// ---- CPU: oneDNN's direct convolutions where they pay ----
// A float forward, and a data gradient with at least kOnednnDataGradMinChannels input channels a
// group, run through oneDNN (linalg/onednn.hpp) when the build has it; pointwise kernels stay one
// GEMM. Measured against im2col + GEMM (2 threads, docs/benchmarks.md): the forward 0.45–0.84 of
// the time from 1 to 64 channels; the data gradient 0.53–0.77 from 6 channels up but 1.6–5.4
// times slower below (oneDNN pads the channels of its blocked layout). The weight gradient stays
// ft's (its sum over the batch has the same bits for any thread count).
inline constexpr index_t kOnednnDataGradMinChannels = 6;

inline bool conv_uses_onednn(const ConvGeometry& g, bool data_gradient) {
#if defined(FT_HAVE_DNNL)
  return testing::onednn_conv && !g.pointwise() && (!data_gradient || g.cg >= kOnednnDataGradMinChannels);
#else
  (void)g, (void)data_gradient;
  return false;
#endif
}

#if defined(FT_HAVE_DNNL)
// One pass of a float convolution through oneDNN where conv_uses_onednn says so (in0, in1, out
// as onednn::convolution's): true when it ran, one launch.
inline bool onednn_pass(const ConvGeometry& g, onednn::ConvKind kind, bool accumulate, const float* in0,
                        const float* in1, float* out) {
  const onednn::ConvKey key{kind,       g.n,         g.c,         g.h,          g.w,          g.o,
                            g.kh,       g.kw,        g.oh,        g.ow,         g.groups,     g.stride.h,
                            g.stride.w, g.padding.h, g.padding.w, g.dilation.h, g.dilation.w, accumulate};
  if (!conv_uses_onednn(g, kind == onednn::ConvKind::backward_data) || !onednn::convolution(key, in0, in1, out))
    return false;
  stats::detail::record_launch(kCPU);
  return true;
}
#endif

// ---- CPU: im2col + GEMM ----

template <class T>
index_t im2col_chunk(const ConvGeometry& g) {
  const index_t per_sample = std::max<index_t>(g.k() * g.p() * static_cast<index_t>(sizeof(T)), 1);
  const auto budget = static_cast<index_t>(testing::im2col_bytes.load(std::memory_order_relaxed));
  return std::clamp<index_t>(budget / per_sample, 1, std::max<index_t>(g.n, 1));
}

// buffer's data, reallocated first when it holds fewer than `need` elements.
template <class T>
T* grown(Tensor<T, 1>& buffer, index_t need) {
  if (!buffer.defined() || buffer.numel() < need) {
    buffer = Tensor<T, 1>();  // free the old one first
    buffer = Tensor<T, 1>(Shape<1>{need}, kCPU);
  }
  return buffer.data();
}

// The calling thread's im2col buffer, kept from call to call and grown on demand (to at most
// testing::im2col_bytes, or one sample's matrix when that is larger), as oneDNN keeps its
// scratchpad: a fresh buffer of tens of MB a call costs more in page faults than the
// convolution's own memory traffic, and a chunk of the whole batch lets im2col and the GEMM each
// run once (alternating the OpenMP and BLAS thread pools sample by sample costs more again).
template <class T>
T* im2col_buffer(const ConvGeometry& g, index_t chunk) {
  thread_local Tensor<T, 1> buffer;
  return grown(buffer, chunk * g.k() * g.p());
}

// col[n][(c·kH + i)·kW + j][oh·oW + ow] = x[n0 + n][c][oh·sH − pH + i·dH][ow·sW − pW + j·dW]
// (0 in the padding) for the nb samples from n0. One loop over the (sample, channel) planes.
// With by_row, the samples sit side by side in each row instead, col[(c·kH + i)·kW + j][n][pixel]:
// the layout in which one GEMM over the chunk sums the weight gradient's products.
// part: a part of a larger kernel's work, not counted as a launch (inside that kernel's parallel
// loop this one runs on the calling thread: OpenMP does not nest).
template <class T>
void im2col(const ConvGeometry& g, const T* x, T* col, index_t n0, index_t nb, bool by_row = false, bool part = false) {
  if (!part) stats::detail::record_launch(kCPU);
  const index_t planes = nb * g.c;
  [[maybe_unused]] const index_t plane_rows = g.kh * g.kw * g.p();  // read by OpenMP's if clause only
  const index_t row_stride = by_row ? nb * g.p() : g.p(), sample_stride = by_row ? g.p() : g.k() * g.p();
#pragma omp parallel for schedule(static) if (planes * plane_rows > exec::cpu::kParallelGrain)
  for (index_t q = 0; q < planes; ++q) {
    const T* src = x + (n0 * g.c + q) * g.h * g.w;
    T* dst = col + (q / g.c) * sample_stride + (q % g.c) * g.kh * g.kw * row_stride;
    for (index_t i = 0; i < g.kh; ++i) {
      index_t oh0, oh1;
      const index_t off_h = i * g.dilation.h - g.padding.h;
      valid_range(g.h, g.oh, g.stride.h, off_h, oh0, oh1);
      for (index_t j = 0; j < g.kw; ++j, dst += row_stride) {
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
#if defined(FT_HAVE_DNNL)
  if constexpr (std::is_same_v<T, float>)
    if (onednn_pass(g, onednn::ConvKind::forward, accumulate, x, w, y)) return;
#endif
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
#if defined(FT_HAVE_DNNL)
  if constexpr (std::is_same_v<T, float>)
    if (onednn_pass(g, onednn::ConvKind::backward_data, false, dy, w, dx)) return;
#endif
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

// dy[n0 + n][o][pixel] → dyt[o][n][pixel] for the nb samples from n0: the chunk's output
// gradient with its samples side by side in each channel's row. One loop over the rows.
// On the calling thread: a part of the weight gradient's kernel.
template <class T>
void samples_by_row(const ConvGeometry& g, const T* dy, T* dyt, index_t n0, index_t nb) {
  const index_t rows = g.o * nb, P = g.p();
  for (index_t r = 0; r < rows; ++r) {
    const index_t o = r / nb, n = r % nb;
    const T* src = dy + ((n0 + n) * g.o + o) * P;
    std::copy(src, src + P, dyt + r * P);
  }
}

// The weight gradient's pieces: as many samples as keep a piece's im2col matrix and its dy
// within kPieceBytes (a core's share of L2, so the GEMM reads them from cache, not memory),
// at least one, at most im2col_chunk's.
inline constexpr index_t kPieceBytes = index_t(512) << 10;
template <class T>
index_t weight_grad_piece(const ConvGeometry& g) {
  const index_t per_sample = std::max<index_t>((g.k() + g.o) * g.p() * static_cast<index_t>(sizeof(T)), 1);
  return std::clamp<index_t>(kPieceBytes / per_sample, 1, im2col_chunk<T>(g));
}
// The fixed number of partial sums the pieces are dealt to (contiguous runs of pieces, whatever
// the thread count), added in order at the end: the result is the same for any thread count.
inline constexpr index_t kWeightGradLanes = 16;

// dW[group] = Σ_n dy[n, group] · col[n, group]ᵀ, one kernel: the batch is cut into pieces of a
// few samples (weight_grad_piece); in each, im2col and dy are laid out with the samples side by
// side in each row (im2col by_row, samples_by_row), so the sum over the piece's samples and
// pixels is the inner dimension of one single-threaded GEMM (batched over the groups) that
// reads them from cache. Runs of pieces go to kWeightGradLanes partial sums, spread over the
// threads (each lane's pieces in order, beta 1 after its first), and the partials are added in
// lane order: the same bits for any thread count. (One GEMM over the whole batch, split along
// its tiny output, streamed the matrices from memory: LeNet's first layer took 3× as long.)
template <class T>
void conv2d_backward_weight_cpu(const ConvGeometry& g, const T* x, const T* dy, T* dw) {
  stats::detail::record_launch(kCPU);
  const index_t G = g.groups, og = g.og(), kg = g.kg(), P = g.p(), size = g.o * kg;
  const index_t piece = weight_grad_piece<T>(g), pieces = (g.n + piece - 1) / piece;
  const index_t lanes = std::min(kWeightGradLanes, pieces);
  const bool parallel = lanes > 1 && g.n * g.k() * P > exec::cpu::kParallelGrain;
  const index_t threads = parallel ? std::min<index_t>(exec::cpu::num_threads(), lanes) : 1;
  // All memory before the parallel loop (an allocation failing inside it could not be reported):
  // lanes 1.. sum into partials (lane 0 into dw), each thread has its piece's im2col and dy.
  const bool own_col = !(g.pointwise() && piece == 1), own_dyt = piece > 1;
  const index_t col_size = own_col ? piece * g.k() * P : 0, dyt_size = own_dyt ? piece * g.o * P : 0;
  Tensor<T, 1> scratch(Shape<1>{(lanes - 1) * size + threads * (col_size + dyt_size)}, kCPU);
  T* const part = scratch.data();
  auto run_lane = [&](index_t lane, index_t thread) {
    T* out = lane == 0 ? dw : part + (lane - 1) * size;
    T* col = part + (lanes - 1) * size + thread * (col_size + dyt_size);
    T* dyt = col + col_size;
    const index_t p0 = pieces * lane / lanes, p1 = pieces * (lane + 1) / lanes;
    for (index_t p = p0; p < p1; ++p) {
      const index_t n0 = p * piece, nb = std::min(piece, g.n - n0), inner = nb * P;
      const T* cols = col;
      if (g.pointwise() && nb == 1)
        cols = x + n0 * g.k() * P;  // the sample's [C, pixels] is its im2col matrix
      else
        im2col(g, x, col, n0, nb, true, true);
      const T* gy = dy + n0 * g.o * P;
      if (nb > 1) {
        samples_by_row(g, dy, dyt, n0, nb);
        gy = dyt;
      }
      gemm_cpu_part<T>(false, true, og, kg, inner, T(1), gy, inner, og * inner, cols, inner, kg * inner,
                       p == p0 ? T(0) : T(1), out, kg, og * kg, G);
    }
  };
  {
#if defined(FT_HAVE_CBLAS)
    // each lane's GEMMs on its own thread; a single lane (one large piece) keeps the threaded GEMM
    std::optional<blas_pool::SingleThreaded> single;
    if (parallel && blas_pool::openblas().own_threads()) single.emplace();
#endif
#if defined(_OPENMP)
    [[maybe_unused]] const int team = static_cast<int>(threads);  // read by the pragma (nvcc does not see it)
#pragma omp parallel for schedule(static) num_threads(team) if (parallel)
    for (index_t lane = 0; lane < lanes; ++lane) run_lane(lane, omp_get_thread_num());
#else
    for (index_t lane = 0; lane < lanes; ++lane) run_lane(lane, 0);
#endif
  }
  for (index_t lane = 1; lane < lanes; ++lane) {
    const T* src = part + (lane - 1) * size;
    for (index_t i = 0; i < size; ++i) dw[i] += src[i];
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

}  // namespace linalg::detail

}  // namespace ft::inline FT_ABI
