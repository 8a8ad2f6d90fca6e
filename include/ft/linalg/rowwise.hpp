// Row-wise composites, one launch per call: softmax, log_softmax, layer_norm, cross_entropy.
// Each reads its (fused) input expression directly: a row is the elements that differ only
// along `dim`, i.e. the input viewed as [outer, K, inner] as in exec/reduce.hpp. All are
// numerically stable (the row maximum is subtracted before exp) and deterministic.
//
// The file ends with the overloads on Vars: one tape node each, whose backward is one fused
// expression.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/generator.hpp"

namespace ft::inline FT_ABI {

namespace rowwise {

enum class Kind { Softmax, LogSoftmax };

// ---- CPU ----
namespace cpu {

template <class O, class Read>
FT_CPU_MULTIVERSION void softmax(O* out, const Read& read, const exec::ReduceGeometry g, Kind kind) {
  using F = compute_t<O>;  // a two-byte type's rows are computed in float
  const index_t K = g.K, inner = g.inner, rows = g.outer * g.inner;
#pragma omp parallel for schedule(static) if (rows * K > exec::cpu::kReduceChunk)
  for (index_t r = 0; r < rows; ++r) {
    const index_t o = r / inner, i = r % inner, base = o * K * inner + i;
    auto x = [&](index_t k) { return static_cast<F>(read(base + k * inner)); };
    // 8-lane passes (exec::cpu::reduce_range): the max, then the sum of exp(x − max) in double
    F m = exec::cpu::reduce_range<F>(red::Extreme<F, true>{}, x, 0, K);
    if (m == -std::numeric_limits<F>::infinity()) m = 0;  // a row of -inf: exp gives 0s, as torch
    const double s = exec::cpu::reduce_range<double>(
        red::Sum<F, 0>{}, [&](index_t k) { return math::exp(x(k) - m); }, 0, K);
    if (kind == Kind::Softmax) {
      const F inv = static_cast<F>(1.0 / s);
      for (index_t k = 0; k < K; ++k)
        store_value(out[base + k * inner], math::exp(static_cast<F>(read(base + k * inner)) - m) * inv);
    } else {
      const F log_s = static_cast<F>(std::log(s));  // (x − m) − log s: no rounding of m + log s
      for (index_t k = 0; k < K; ++k)
        store_value(out[base + k * inner], (static_cast<F>(read(base + k * inner)) - m) - log_s);
    }
  }
}

template <class O, class Read, class F = compute_t<O>>
FT_CPU_MULTIVERSION void layer_norm(O* out, F* mean, F* rstd, const Read& read, const O* w, const O* b, index_t rows,
                                    index_t K, double eps) {
  using Red = red::Variance<F, false>;
#pragma omp parallel for schedule(static) if (rows * K > exec::cpu::kReduceChunk)
  for (index_t r = 0; r < rows; ++r) {
    auto acc = exec::cpu::reduce_range<red::Welford<double>>(
        Red{}, [&](index_t k) { return static_cast<F>(read(r * K + k)); }, 0, K);
    const double rs = 1.0 / std::sqrt(acc.m2 / static_cast<double>(K) + eps);  // biased variance, as torch
    const F mu = static_cast<F>(acc.mean), sd = static_cast<F>(rs);
    mean[r] = mu;
    rstd[r] = sd;
    for (index_t k = 0; k < K; ++k) {
      F y = (static_cast<F>(read(r * K + k)) - mu) * sd;
      if (w) y *= static_cast<F>(w[k]);
      if (b) y += static_cast<F>(b[k]);
      store_value(out[r * K + k], y);
    }
  }
}

// Where layer_norm's backward writes: each gradient a contiguous buffer, overwritten or added
// to (add), or null when not wanted.
template <class F>
struct LayerNormGrads {
  F *dx = nullptr, *dw = nullptr, *db = nullptr;
  bool dx_add = false, dw_add = false, db_add = false;
};

// One row of layer_norm's backward: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = g·w and
// x̂ = (x − mean)·rstd; pw and pb (when not null) gain g·x̂ and g, the row's share of the
// weight's and bias's gradients. The two row sums in double, 8 lanes (as reduce_range).
template <bool HasW, class F>
FT_INLINE void layer_norm_backward_row(const F* __restrict__ x, const F* __restrict__ g, F mu, F rs,
                                       const F* __restrict__ w, index_t K, F* __restrict__ dx, bool dx_add,
                                       F* __restrict__ pw, F* __restrict__ pb) {
  constexpr int L = exec::cpu::kLanes;
  auto gh = [&](index_t k) { return HasW ? g[k] * w[k] : g[k]; };
  if (dx) {
    double s1[L] = {}, s2[L] = {};
    index_t k = 0;
    for (; k + L <= K; k += L)
      for (int j = 0; j < L; ++j) {
        const F h = gh(k + j), xh = (x[k + j] - mu) * rs;
        s1[j] += static_cast<double>(h);
        s2[j] += static_cast<double>(h * xh);
      }
    for (int j = 0; k < K; ++k, ++j) {
      const F h = gh(k), xh = (x[k] - mu) * rs;
      s1[j] += static_cast<double>(h);
      s2[j] += static_cast<double>(h * xh);
    }
    for (int j = 1; j < L; ++j) s1[0] += s1[j], s2[0] += s2[j];
    const F m1 = static_cast<F>(s1[0] / static_cast<double>(K)), m2 = static_cast<F>(s2[0] / static_cast<double>(K));
    if (dx_add) {
      for (index_t k2 = 0; k2 < K; ++k2) dx[k2] += rs * (gh(k2) - m1 - (x[k2] - mu) * rs * m2);
    } else {
      for (index_t k2 = 0; k2 < K; ++k2) dx[k2] = rs * (gh(k2) - m1 - (x[k2] - mu) * rs * m2);
    }
  }
  if (pw)
    for (index_t k = 0; k < K; ++k) pw[k] += g[k] * ((x[k] - mu) * rs);
  if (pb)
    for (index_t k = 0; k < K; ++k) pb[k] += g[k];
}

// layer_norm's backward over [rows, K] (x and g contiguous), one pass: each row's dx, and the
// weight's and bias's gradients as sums over fixed chunks of rows (at most 64, set by the
// shape alone) combined in chunk order, so the bits do not depend on the thread count.
template <class F>
FT_CPU_MULTIVERSION void layer_norm_backward(const F* x, const F* g, const F* mean, const F* rstd, const F* w,
                                             index_t rows, index_t K, const LayerNormGrads<F>& out) {
  const index_t chunks = rows < 64 ? rows : 64;
  const bool partials = out.dw || out.db;
  std::unique_ptr<F[]> part(partials ? new F[static_cast<std::size_t>(chunks * K * 2)]() : nullptr);
#pragma omp parallel for schedule(static) if (rows * K > exec::cpu::kReduceChunk)
  for (index_t c = 0; c < chunks; ++c) {
    F* pw = out.dw ? part.get() + c * K * 2 : nullptr;
    F* pb = out.db ? part.get() + c * K * 2 + K : nullptr;
    for (index_t r = rows * c / chunks; r < rows * (c + 1) / chunks; ++r) {
      F* dx = out.dx ? out.dx + r * K : nullptr;
      if (w)
        layer_norm_backward_row<true>(x + r * K, g + r * K, mean[r], rstd[r], w, K, dx, out.dx_add, pw, pb);
      else
        layer_norm_backward_row<false>(x + r * K, g + r * K, mean[r], rstd[r], w, K, dx, out.dx_add, pw, pb);
    }
  }
  if (!partials) return;
#pragma omp parallel for schedule(static) if (chunks * K > exec::cpu::kReduceChunk)
  for (index_t k = 0; k < K; ++k) {
    F sw = 0, sb = 0;
    for (index_t c = 0; c < chunks; ++c) sw += part[c * K * 2 + k], sb += part[c * K * 2 + K + k];
    if (out.dw) exec::put(out.dw, k, sw, out.dw_add);
    if (out.db) exec::put(out.db, k, sb, out.db_add);
  }
}

// Loss of row r: lse − (1 − ε)·x_t − ε/C·Σ_c x_c, with lse = log Σ exp(x_c); 0 when ignored.
template <class F, class Read>
F cross_entropy_row(const Read& read, index_t r, index_t C, std::int64_t t, double smoothing) {
  const index_t base = r * C;
  F m = -std::numeric_limits<F>::infinity();
  for (index_t c = 0; c < C; ++c) {
    F x = static_cast<F>(read(base + c));
    m = (x > m || math::isnan(x)) ? x : m;
  }
  double s = 0, sum_x = 0;
  for (index_t c = 0; c < C; ++c) {
    F x = static_cast<F>(read(base + c));
    s += static_cast<double>(math::exp(x - m));
    sum_x += static_cast<double>(x);
  }
  const double lse = static_cast<double>(m) + std::log(s);
  const double xt = static_cast<double>(static_cast<F>(read(base + t)));
  return static_cast<F>(lse - (1.0 - smoothing) * xt - smoothing / static_cast<double>(C) * sum_x);
}

// Per-row losses in parallel, then their sum in row order: deterministic.
template <class O, class Read>
FT_CPU_MULTIVERSION void cross_entropy(O* out, const Read& read, const std::int64_t* target, index_t N, index_t C,
                                       std::int64_t ignore_index, double smoothing, bool mean) {
  std::unique_ptr<double[]> loss(new double[static_cast<std::size_t>(N > 0 ? N : 1)]);
#pragma omp parallel for schedule(static) if (N * C > exec::cpu::kReduceChunk)
  for (index_t r = 0; r < N; ++r)
    loss[r] = target[r] == ignore_index
                  ? 0.0
                  : static_cast<double>(cross_entropy_row<compute_t<O>>(read, r, C, target[r], smoothing));
  double total = 0, count = 0;
  for (index_t r = 0; r < N; ++r) total += loss[r], count += target[r] != ignore_index;
  store_value(out[0], mean ? total / count : total);
}

}  // namespace cpu

// ---- CUDA ----
#if FT_CUDA_ENABLED
namespace gpu {

using exec::gpu::kReduceBlock;
using exec::gpu::kWarpRowMax;
inline constexpr int kWarps = kReduceBlock / 32;  // rows a block in the warp-a-row kernels

// The kernels, each behind one launcher, which picks a warp a row (8 rows a block) for rows of
// at most kWarpRowMax elements and a block a row for longer ones: one launch either way.
// O is the stored type; a two-byte type's rows are computed (and cached) in float, compute_t<O>.
template <class O, class Read, class I>
struct SoftmaxKernel {
  static void launch(Device dev, O* out, const Read& read, I rows, I K, I inner, Kind kind);
};
template <class O, class Read, class I>
struct LayerNormKernel {
  using F = compute_t<O>;
  static void launch(Device dev, O* out, F* mean, F* rstd, const Read& read, const O* w, const O* b, I rows, I K,
                     double eps);
};
template <class O, class Read, class I>
struct CrossEntropyKernel {
  static void launch(Device dev, O* out, const Read& read, const std::int64_t* target, I rows, I C,
                     std::int64_t ignore_index, double smoothing, bool mean, int* report_word, int code);
};

#if FT_CUDA_KERNELS

// Blocks for `units` rows (or groups of 8 rows), at most 8 a SM: the kernels stride over the rest.
inline unsigned row_blocks(index_t units, Device dev) {
  index_t cap = static_cast<index_t>(exec::gpu::sm_count(dev.index)) * 8;
  return static_cast<unsigned>(units < 1 ? 1 : (units < cap ? units : cap));
}

template <class F>
struct MaxOp {
  __device__ FT_INLINE F operator()(F a, F b) const { return (b > a || math::isnan(b)) ? b : a; }
};
struct AddOp {
  template <class F>
  __device__ FT_INLINE F operator()(F a, F b) const {
    return a + b;
  }
};

// A warp shuffle of any trivially copyable value, one 4-byte word at a time.
template <class T, class Shuffle>
__device__ FT_INLINE T shuffle_words(T v, Shuffle shuffle) {
  static_assert(sizeof(T) % 4 == 0, "a shuffled value is made of whole 4-byte words");
  unsigned w[sizeof(T) / 4];
  memcpy(w, &v, sizeof(T));
  for (unsigned& x : w) x = shuffle(x);
  memcpy(&v, w, sizeof(T));
  return v;
}

// The 32 lanes' values combined in a fixed tree (lane l takes lane l + 16, then l + 8 … into
// lane 0) and lane 0's result handed to every lane, so all lanes hold the same bits. The whole
// warp calls it.
template <class T, class Op>
__device__ FT_INLINE T warp_all_reduce(T v, Op op) {
  for (unsigned offset = 16; offset > 0; offset /= 2)
    v = op(v, shuffle_words(v, [offset](unsigned x) { return __shfl_down_sync(0xffffffffu, x, offset); }));
  return shuffle_words(v, [](unsigned x) { return __shfl_sync(0xffffffffu, x, 0); });
}

// Every row kernel reads its (fused) input once: the row is kept in shared memory between the
// passes (each thread reads back only what it wrote, so no barrier is needed), and the output
// is written once: softmax moves the bytes of a copy. A row too long for shared memory (more
// than the device's opt-in shared memory: 227 KiB on sm_90) is read again in each pass instead.
inline constexpr int kRowBlock = 1024;  // threads a block in the block-a-row kernels

// The block's shared row cache (dynamic shared memory; declared once for every element type).
template <class F>
__device__ FT_INLINE F* row_cache() {
  extern __shared__ __align__(16) unsigned char ft_row_cache_bytes[];
  return reinterpret_cast<F*>(ft_row_cache_bytes);
}

// Long rows: a block a row (rows blockIdx.x, + gridDim.x …): the max while caching the row,
// then the sum of exp(x − max), then the write, the last two from the cache (or re-read when
// `cached` is false).
template <class O, class Read, class I>
__global__ void __launch_bounds__(kRowBlock)
    softmax_kernel(O* out, Read read, I rows, I K, I inner, Kind kind, bool cached) {
  using F = compute_t<O>;
  using BlockReduce = cub::BlockReduce<F, kRowBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ F shared_m, shared_s;
  F* row = row_cache<F>();
  for (I r = blockIdx.x; r < rows; r += gridDim.x) {
    const I o = r / inner, i = r - o * inner, base = o * K * inner + i;
    auto x = [&](I k) { return cached ? row[k] : static_cast<F>(read(base + k * inner)); };
    F m = -std::numeric_limits<F>::infinity();
#pragma unroll 4
    for (I k = threadIdx.x; k < K; k += kRowBlock) {
      const F v = static_cast<F>(read(base + k * inner));
      if (cached) row[k] = v;
      m = MaxOp<F>{}(m, v);
    }
    m = BlockReduce(temp).Reduce(m, MaxOp<F>{});
    if (threadIdx.x == 0) shared_m = m == -std::numeric_limits<F>::infinity() ? F(0) : m;
    __syncthreads();
    m = shared_m;
    F s = 0;
    for (I k = threadIdx.x; k < K; k += kRowBlock) s += math::exp(x(k) - m);
    s = BlockReduce(temp).Reduce(s, AddOp{});
    if (threadIdx.x == 0) shared_s = s;
    __syncthreads();
    s = shared_s;
    if (kind == Kind::Softmax) {
      const F inv = F(1) / s;
      for (I k = threadIdx.x; k < K; k += kRowBlock) store_value(out[base + k * inner], math::exp(x(k) - m) * inv);
    } else {
      const F log_s = math::log(s);
      for (I k = threadIdx.x; k < K; k += kRowBlock) store_value(out[base + k * inner], (x(k) - m) - log_s);
    }
    __syncthreads();
  }
}

// Short rows: a warp a row (warp w of block b takes rows 8b + w, then + 8·gridDim.x …), lane l
// the elements k = l, l + 32 …, cached in the warp's share of shared memory (8·K elements a
// block); the max and the sum are warp trees; the same passes as above. A row along a non-last
// dim (inner > 1) is read with stride inner, as in the block kernel.
template <class O, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    softmax_warp_kernel(O* out, Read read, I rows, I K, I inner, Kind kind) {
  using F = compute_t<O>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  F* row = row_cache<F>() + static_cast<index_t>(warp) * K;
  for (I r = static_cast<I>(blockIdx.x) * kWarps + warp; r < rows; r += static_cast<I>(gridDim.x) * kWarps) {
    const I o = r / inner, i = r - o * inner, base = o * K * inner + i;
    F m = -std::numeric_limits<F>::infinity();
#pragma unroll 4
    for (I k = lane; k < K; k += 32) {
      const F v = static_cast<F>(read(base + k * inner));
      row[k] = v;
      m = MaxOp<F>{}(m, v);
    }
    m = warp_all_reduce(m, MaxOp<F>{});
    if (m == -std::numeric_limits<F>::infinity()) m = 0;  // a row of -inf: exp gives 0s, as torch
    F s = 0;
    for (I k = lane; k < K; k += 32) s += math::exp(row[k] - m);
    s = warp_all_reduce(s, AddOp{});
    if (kind == Kind::Softmax) {
      const F inv = F(1) / s;
      for (I k = lane; k < K; k += 32) store_value(out[base + k * inner], math::exp(row[k] - m) * inv);
    } else {
      const F log_s = math::log(s);
      for (I k = lane; k < K; k += 32) store_value(out[base + k * inner], (row[k] - m) - log_s);
    }
  }
}

// 1 / sqrt(biased variance + eps) of a row's Welford accumulator, in double.
template <class F>
__device__ FT_INLINE F layer_norm_rstd(const red::Welford<F>& acc, index_t K, double eps) {
  return static_cast<F>(1.0 / ::sqrt(static_cast<double>(acc.m2) / static_cast<double>(K) + eps));
}

// Long rows: a block a row (rows blockIdx.x, + gridDim.x …): Welford over the row in a block
// tree while caching it, then the normalised write from the cache (or a re-read).
template <class O, class Read, class I, class F = compute_t<O>>
__global__ void __launch_bounds__(kRowBlock) layer_norm_kernel(O* out, F* mean, F* rstd, Read read, const O* w,
                                                               const O* b, I rows, I K, double eps, bool cached) {
  using Red = red::Variance<F, false>;
  using Acc = red::Welford<F>;
  using BlockReduce = cub::BlockReduce<Acc, kRowBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ F shared_mu, shared_rs;
  F* row = row_cache<F>();
  for (I r = blockIdx.x; r < rows; r += gridDim.x) {
    Acc acc{0, 0, 0};
#pragma unroll 4
    for (I k = threadIdx.x; k < K; k += kRowBlock) {
      const F v = static_cast<F>(read(r * K + k));
      if (cached) row[k] = v;
      acc = Red::accumulate(acc, v, k);
    }
    acc = BlockReduce(temp).Reduce(acc, exec::gpu::CombineOp<Red>{Red{}});
    if (threadIdx.x == 0) {
      shared_mu = acc.mean;
      shared_rs = layer_norm_rstd(acc, K, eps);
      mean[r] = shared_mu;
      rstd[r] = shared_rs;
    }
    __syncthreads();
    const F mu = shared_mu, rs = shared_rs;
    for (I k = threadIdx.x; k < K; k += kRowBlock) {
      F y = ((cached ? row[k] : static_cast<F>(read(r * K + k))) - mu) * rs;
      if (w) y *= static_cast<F>(w[k]);
      if (b) y += static_cast<F>(b[k]);
      store_value(out[r * K + k], y);
    }
    __syncthreads();
  }
}

// Short rows: a warp a row (rows 8b + w, then + 8·gridDim.x …), lane l the elements l, l + 32 …
// cached as in softmax_warp_kernel; Welford per lane, combined in the warp tree (every lane
// gets lane 0's mean and m2).
template <class O, class Read, class I, class F = compute_t<O>>
__global__ void __launch_bounds__(kReduceBlock)
    layer_norm_warp_kernel(O* out, F* mean, F* rstd, Read read, const O* w, const O* b, I rows, I K, double eps) {
  using Red = red::Variance<F, false>;
  using Acc = red::Welford<F>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  F* row = row_cache<F>() + static_cast<index_t>(warp) * K;
  for (I r = static_cast<I>(blockIdx.x) * kWarps + warp; r < rows; r += static_cast<I>(gridDim.x) * kWarps) {
    Acc acc{0, 0, 0};
#pragma unroll 4
    for (I k = lane; k < K; k += 32) {
      const F v = static_cast<F>(read(r * K + k));
      row[k] = v;
      acc = Red::accumulate(acc, v, k);
    }
    acc = warp_all_reduce(acc, exec::gpu::CombineOp<Red>{Red{}});
    const F mu = acc.mean, rs = layer_norm_rstd(acc, K, eps);
    if (lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (I k = lane; k < K; k += 32) {
      F y = (row[k] - mu) * rs;
      if (w) y *= static_cast<F>(w[k]);
      if (b) y += static_cast<F>(b[k]);
      store_value(out[r * K + k], y);
    }
  }
}

// The loss of a row from its max m, Σ exp(x − m), Σ x and x_t: lse − (1 − ε)·x_t − ε/C·Σ x.
template <class F>
__device__ FT_INLINE double row_loss(F m, F exp_sum, F x_sum, F xt, index_t C, double smoothing) {
  return static_cast<double>(m) + ::log(static_cast<double>(exp_sum)) - (1.0 - smoothing) * static_cast<double>(xt) -
         smoothing / static_cast<double>(C) * static_cast<double>(x_sum);
}

// x_t of row `base`; a class index out of range is reported (cuda::report: an ft::Error at the
// next synchronisation) and gives NaN.
template <class F, class Read, class I>
__device__ FT_INLINE F target_logit(const Read& read, I base, std::int64_t t, I C, int* report_word, int code) {
  if (t >= 0 && t < static_cast<std::int64_t>(C)) return static_cast<F>(read(base + static_cast<I>(t)));
  cuda::report(report_word, code);
  return std::numeric_limits<F>::quiet_NaN();
}

// Thread 0 of every block: stores the block's (loss, count) as its partial and takes a ticket;
// the thread with the last ticket adds the partials in block order (the memory order of
// exec::gpu::reduce_all_kernel) and writes the mean or the sum.
template <class O>
__device__ void cross_entropy_finish(O* out, double loss, double count, bool mean, double* partials, unsigned* ticket) {
  partials[2 * blockIdx.x] = loss;
  partials[2 * blockIdx.x + 1] = count;
  __threadfence();
  if (atomicAdd(ticket, 1u) != gridDim.x - 1) return;
  __threadfence();
  double total = 0, counted = 0;
  for (unsigned b = 0; b < gridDim.x; ++b) {
    total += exec::gpu::load_from_l2(partials + 2 * b);  // written by other blocks before their ticket
    counted += exec::gpu::load_from_l2(partials + 2 * b + 1);
  }
  store_value(out[0], mean ? total / counted : total);
  *ticket = 0;
}

// A running log-sum-exp over (a share of) a row, read once: the max m, Σ exp(x − m) rescaled
// whenever m grows, and Σ x (label smoothing's term). Adding x is merging {x, 1, x}; merging
// is a fixed tree in the kernels, so the result is the same run to run.
template <class F>
struct OnlineLse {
  F m, exp_sum, x_sum;
};
// s·exp(from − to), exactly s when the max did not move (also for infinite maxima).
template <class F>
__device__ FT_INLINE F rescale(F s, F from, F to) {
  return from == to ? s : s * math::exp(from - to);
}
struct OnlineLseMerge {
  template <class F>
  __device__ FT_INLINE OnlineLse<F> operator()(const OnlineLse<F>& a, const OnlineLse<F>& b) const {
    const F m = MaxOp<F>{}(a.m, b.m);
    return {m, rescale(a.exp_sum, a.m, m) + rescale(b.exp_sum, b.m, m), a.x_sum + b.x_sum};
  }
};
template <class F>
__device__ FT_INLINE void online_add(OnlineLse<F>& acc, F x) {
  const F m = MaxOp<F>{}(acc.m, x);
  acc.exp_sum = rescale(acc.exp_sum, acc.m, m) + rescale(F(1), x, m);
  acc.m = m;
  acc.x_sum += x;
}
template <class F>
__device__ FT_INLINE OnlineLse<F> online_empty() {
  return {-std::numeric_limits<F>::infinity(), F(0), F(0)};
}

// Short rows: a warp a row computes its loss in one read of the row (cached in the warp's share
// of shared memory, as softmax_warp_kernel: the max, then the sums from the cache); each block
// sums its warps' losses in warp order, then cross_entropy_finish: one launch, deterministic.
template <class O, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    cross_entropy_kernel(O* out, Read read, const std::int64_t* target, I rows, I C, std::int64_t ignore_index,
                         double smoothing, bool mean, double* partials, unsigned* ticket, int* report_word, int code) {
  using F = compute_t<O>;
  __shared__ double warp_loss[kWarps], warp_count[kWarps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  F* row = row_cache<F>() + static_cast<index_t>(warp) * C;
  double my_loss = 0, my_count = 0;
  for (I r = static_cast<I>(blockIdx.x) * kWarps + warp; r < rows; r += static_cast<I>(gridDim.x) * kWarps) {
    const std::int64_t t = target[r];
    if (t == ignore_index) continue;
    const I base = r * C;
    F m = -std::numeric_limits<F>::infinity();
#pragma unroll 4
    for (I c = lane; c < C; c += 32) {
      const F x = static_cast<F>(read(base + c));
      row[c] = x;
      m = MaxOp<F>{}(m, x);
    }
    m = warp_all_reduce(m, MaxOp<F>{});
    F s = 0, sx = 0;  // independent sums from the cached row (a running log-sum-exp here is a serial chain)
    for (I c = lane; c < C; c += 32) {
      s += math::exp(row[c] - m);
      sx += row[c];
    }
    s = warp_all_reduce(s, AddOp{});
    sx = warp_all_reduce(sx, AddOp{});
    my_loss += row_loss(m, s, sx, target_logit<F>(read, base, t, C, report_word, code), C, smoothing);
    my_count += 1;
  }
  if (lane == 0) {
    warp_loss[warp] = my_loss;
    warp_count[warp] = my_count;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double bl = 0, bc = 0;
    for (int w = 0; w < kWarps; ++w) bl += warp_loss[w], bc += warp_count[w];
    cross_entropy_finish(out, bl, bc, mean, partials, ticket);
  }
}

// Long rows: a block a row (rows blockIdx.x, + gridDim.x …), read once: the running
// log-sum-exp in a block tree; thread 0 adds the block's row losses in row order, then
// cross_entropy_finish.
template <class O, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    cross_entropy_block_kernel(O* out, Read read, const std::int64_t* target, I rows, I C, std::int64_t ignore_index,
                               double smoothing, bool mean, double* partials, unsigned* ticket, int* report_word,
                               int code) {
  using F = compute_t<O>;
  using BlockReduce = cub::BlockReduce<OnlineLse<F>, kReduceBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  double loss = 0, count = 0;  // thread 0's
  for (I r = blockIdx.x; r < rows; r += gridDim.x) {
    const std::int64_t t = target[r];
    if (t == ignore_index) continue;  // the whole block skips the row
    const I base = r * C;
    OnlineLse<F> acc = online_empty<F>();
#pragma unroll 4
    for (I c = threadIdx.x; c < C; c += kReduceBlock) online_add(acc, static_cast<F>(read(base + c)));
    acc = BlockReduce(temp).Reduce(acc, OnlineLseMerge{});
    if (threadIdx.x == 0) {
      loss +=
          row_loss(acc.m, acc.exp_sum, acc.x_sum, target_logit<F>(read, base, t, C, report_word, code), C, smoothing);
      count += 1;
    }
    __syncthreads();  // the temporaries are reused by the next row
  }
  if (threadIdx.x == 0) cross_entropy_finish(out, loss, count, mean, partials, ticket);
}

// Dynamic shared memory for `bytes` of row cache, or 0 when they do not fit the device's
// opt-in limit (the kernel then re-reads). Above the default 48 KiB the kernel's limit is raised
// once a device (`raised`: the caller's, one per kernel instantiation).
template <class Kernel>
std::size_t row_cache_bytes(Kernel kernel, Device dev, std::size_t bytes, std::atomic<bool> (&raised)[kMaxDevices]) {
  constexpr std::size_t kDefault = 48 * 1024, kStaticShare = 8 * 1024;  // the kernels' own __shared__ fit in 8 KiB
  if (bytes <= kDefault - kStaticShare) return bytes;
  const std::size_t optin = exec::gpu::shared_optin(dev.index);
  if (bytes > optin - kStaticShare) return 0;
  if (!raised[dev.index].load(std::memory_order_acquire)) {
    FT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(optin - kStaticShare)));
    raised[dev.index].store(true, std::memory_order_release);
  }
  return bytes;
}

// Blocks of `threads` for `units` rows (or groups of 8), as many as stay resident with `smem`
// bytes each: the kernels stride over the rest.
template <class Kernel>
unsigned resident_blocks(Kernel kernel, Device dev, index_t units, int threads, std::size_t smem) {
  int per_sm = 0;
  FT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  const index_t cap = static_cast<index_t>(exec::gpu::sm_count(dev.index)) * (per_sm > 0 ? per_sm : 1);
  return static_cast<unsigned>(units < 1 ? 1 : (units < cap ? units : cap));
}

template <class O, class Read, class I>
void SoftmaxKernel<O, Read, I>::launch(Device dev, O* out, const Read& read, I rows, I K, I inner, Kind kind) {
  static std::atomic<bool> raised_warp[kMaxDevices], raised_block[kMaxDevices];
  cudaStream_t stream = cuda::current_stream();
  const std::size_t row_bytes = static_cast<std::size_t>(K) * sizeof(compute_t<O>);
  auto warp_kernel = softmax_warp_kernel<O, Read, I>;
  const std::size_t warp_smem =
      K <= kWarpRowMax ? row_cache_bytes(warp_kernel, dev, kWarps * row_bytes, raised_warp) : 0;
  if (warp_smem > 0) {  // else (K > kWarpRowMax, or 8 rows over the device's shared memory) a block a row
    warp_kernel<<<resident_blocks(warp_kernel, dev, (rows + kWarps - 1) / kWarps, kReduceBlock, warp_smem),
                  kReduceBlock, warp_smem, stream>>>(out, read, rows, K, inner, kind);
  } else {
    auto kernel = softmax_kernel<O, Read, I>;
    const std::size_t smem = row_cache_bytes(kernel, dev, row_bytes, raised_block);
    kernel<<<resident_blocks(kernel, dev, rows, kRowBlock, smem), kRowBlock, smem, stream>>>(out, read, rows, K, inner,
                                                                                             kind, smem > 0);
  }
  FT_CUDA_CHECK(cudaGetLastError());
}
template <class O, class Read, class I>
void LayerNormKernel<O, Read, I>::launch(Device dev, O* out, F* mean, F* rstd, const Read& read, const O* w, const O* b,
                                         I rows, I K, double eps) {
  static std::atomic<bool> raised_warp[kMaxDevices], raised_block[kMaxDevices];
  cudaStream_t stream = cuda::current_stream();
  const std::size_t row_bytes = static_cast<std::size_t>(K) * sizeof(F);
  auto warp_kernel = layer_norm_warp_kernel<O, Read, I>;
  const std::size_t warp_smem =
      K <= kWarpRowMax ? row_cache_bytes(warp_kernel, dev, kWarps * row_bytes, raised_warp) : 0;
  if (warp_smem > 0) {  // else (K > kWarpRowMax, or 8 rows over the device's shared memory) a block a row
    warp_kernel<<<resident_blocks(warp_kernel, dev, (rows + kWarps - 1) / kWarps, kReduceBlock, warp_smem),
                  kReduceBlock, warp_smem, stream>>>(out, mean, rstd, read, w, b, rows, K, eps);
  } else {
    auto kernel = layer_norm_kernel<O, Read, I>;
    const std::size_t smem = row_cache_bytes(kernel, dev, row_bytes, raised_block);
    kernel<<<resident_blocks(kernel, dev, rows, kRowBlock, smem), kRowBlock, smem, stream>>>(out, mean, rstd, read, w,
                                                                                             b, rows, K, eps, smem > 0);
  }
  FT_CUDA_CHECK(cudaGetLastError());
}
template <class O, class Read, class I>
void CrossEntropyKernel<O, Read, I>::launch(Device dev, O* out, const Read& read, const std::int64_t* target, I rows,
                                            I C, std::int64_t ignore_index, double smoothing, bool mean,
                                            int* report_word, int code) {
  static std::atomic<bool> raised[kMaxDevices];
  cudaStream_t stream = cuda::current_stream();
  auto warp_kernel = cross_entropy_kernel<O, Read, I>;
  const std::size_t row_bytes = static_cast<std::size_t>(C) * sizeof(compute_t<O>);
  const std::size_t smem = C <= kWarpRowMax ? row_cache_bytes(warp_kernel, dev, kWarps * row_bytes, raised) : 0;
  const bool warp_rows = smem > 0;  // else (long rows, or 8 rows over the shared memory) a block a row
  const unsigned blocks = warp_rows
                              ? resident_blocks(warp_kernel, dev, (rows + kWarps - 1) / kWarps, kReduceBlock, smem)
                              : row_blocks(rows, dev);
  exec::gpu::SplitScratch<double> scratch(dev, 1, 2 * static_cast<index_t>(blocks), stream);  // (loss, count) a block
  if (warp_rows)
    warp_kernel<<<blocks, kReduceBlock, smem, stream>>>(out, read, target, rows, C, ignore_index, smoothing, mean,
                                                        scratch.partials, scratch.tickets, report_word, code);
  else
    cross_entropy_block_kernel<O><<<blocks, kReduceBlock, 0, stream>>>(out, read, target, rows, C, ignore_index,
                                                                       smoothing, mean, scratch.partials,
                                                                       scratch.tickets, report_word, code);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS

}  // namespace gpu
#endif

template <Expression E>
auto softmax_impl(const E& e, int dim, Kind kind, const char* op) {
  static_assert(E::rank > 0, "ft::softmax: the input needs at least one dimension");
  using F = float_promote_t<typename E::value_type>;
  dim = wrap_dim(dim, E::rank, op);
  const Device dev = e.device();
  Tensor<F, E::rank> out(e.shape(), dev);
  if (out.numel() == 0) return out;
  const exec::ReduceGeometry g = exec::reduce_geometry(e.shape(), dim);
  F* o = out.data();
  exec::with_reader(
      e, dev, [&](const auto& read) { cpu::softmax(o, read, g, kind); },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        cuda::launch_kernel<gpu::SoftmaxKernel<F, std::remove_cvref_t<decltype(read)>, I>>(
            op, dev, o, read, static_cast<I>(g.outer * g.inner), static_cast<I>(g.K), static_cast<I>(g.inner), kind);
#else
        (void)read;
#endif
      });
  return out;
}

}  // namespace rowwise

// softmax(e, dim): exp(x − max) / Σ exp(x − max) along dim. One launch.
template <Expression E>
auto softmax(const E& e, int dim) {
  return rowwise::softmax_impl(e, dim, rowwise::Kind::Softmax, "softmax");
}
// log_softmax(e, dim): x − max − log Σ exp(x − max) along dim. One launch.
template <Expression E>
auto log_softmax(const E& e, int dim) {
  return rowwise::softmax_impl(e, dim, rowwise::Kind::LogSoftmax, "log_softmax");
}

// How a loss combines its per-element values, as PyTorch's `reduction`: their mean, their sum,
// or none (the per-element losses; ft::nn::functional's losses take it as a template argument,
// since it changes the result's rank); BatchMean, the sum divided by the batch size, is kl_div's
// alone (torch's 'batchmean'), an error for the other losses.
enum class Reduction { Mean, Sum, None, BatchMean };

struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
};

// cross_entropy(logits [N, C], target [N] of class indices): log_softmax and the gather fused,
// averaged over the rows whose target is not ignore_index (torch.nn.functional.cross_entropy),
// or summed (Reduction::Sum). A rank-0 tensor; one launch. Reduction::None is an error here.
template <Expression E>
Tensor<float_promote_t<typename E::value_type>, 0> cross_entropy(const E& logits, const Tensor<std::int64_t, 1>& target,
                                                                 const CrossEntropyOptions& opts = {}) {
  static_assert(E::rank == 2, "ft::cross_entropy: logits must be [batch, classes]");
  using F = float_promote_t<typename E::value_type>;
  const auto& s = logits.shape();
  const Device dev = logits.device();
  check(target.shape()[0] == s[0], "cross_entropy", "logits ", to_string(s), " and target ", to_string(target.shape()),
        " have different batch sizes");
  check(target.device() == dev, "cross_entropy", "logits on ", dev, " and target on ", target.device());
  check(opts.reduction != Reduction::None, "cross_entropy",
        "reduction None (per-row losses) is not a rank-0 result; use "
        "ft::nn::functional::cross_entropy<ft::Reduction::None>(logits, target, options)");
  check(opts.reduction != Reduction::BatchMean, "cross_entropy", "reduction BatchMean is kl_div's only");
  check(opts.label_smoothing >= 0 && opts.label_smoothing <= 1, "cross_entropy",
        "label_smoothing must be in [0, 1], got ", opts.label_smoothing);
  check(s[1] > 0 || s[0] == 0, "cross_entropy", "logits ", to_string(s), " have no classes");
  const index_t N = s[0], C = s[1];
  Tensor<std::int64_t, 1> t = target.contiguous();
  Tensor<F, 0> out(Shape<0>{}, dev);
  const bool mean = opts.reduction == Reduction::Mean;
  if (dev.is_cpu()) {  // class indices are checked here; a GPU kernel reports a bad one (cuda::report)
    const std::int64_t* tp = t.data();
    for (index_t r = 0; r < N; ++r)
      if (tp[r] != opts.ignore_index && (tp[r] < 0 || tp[r] >= C))
        fail("cross_entropy", "target ", tp[r], " at row ", r, " is out of range for ", C, " classes");
  }
  F* o = out.data();
  const std::int64_t* tp = t.data();
  exec::with_reader(
      logits, dev,
      [&](const auto& read) {
        rowwise::cpu::cross_entropy(o, read, tp, N, C, opts.ignore_index, opts.label_smoothing, mean);
      },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        cuda::launch_kernel<rowwise::gpu::CrossEntropyKernel<F, std::remove_cvref_t<decltype(read)>, I>>(
            "cross_entropy", dev, o, read, tp, static_cast<I>(N), static_cast<I>(C), opts.ignore_index,
            opts.label_smoothing, mean, cuda::report_word(dev),
            cuda::check_code(ft::detail::concat("cross_entropy: a target is out of range for ", C, " classes")));
#else
        (void)read;
#endif
      });
  return out;
}

template <class T, int R>
struct LayerNormResult {
  Tensor<T, R> output;
  Tensor<compute_t<T>, 1> mean;  // one a normalised row: the leading dims flattened (float for a two-byte T)
  Tensor<compute_t<T>, 1> rstd;  // 1 / sqrt(biased variance + eps)
};

// layer_norm over the last `normalized_dims` dimensions, with optional elementwise affine
// weight and bias of those dimensions' shape (pass undefined tensors for none), as
// torch.nn.functional.layer_norm. Also returns the mean and rstd of each row. One launch.
template <Expression E, class T = float_promote_t<typename E::value_type>, int WR = 1>
requires(!detail::has_var_v<E>) LayerNormResult<T, E::rank> layer_norm(const E& x, int normalized_dims,
                                                                       const Tensor<T, WR>& weight = {},
                                                                       const Tensor<T, WR>& bias = {},
                                                                       double eps = 1e-5) {
  constexpr int R = E::rank;
  static_assert(is_floating_v<T>, "ft::layer_norm: weight and bias must be of a floating type");
  using F = compute_t<T>;
  check(normalized_dims >= 1 && normalized_dims <= R, "layer_norm", "normalized_dims must be in [1, ", R, "], got ",
        normalized_dims);
  const auto& s = x.shape();
  index_t rows = 1, K = 1;
  for (int d = 0; d < R; ++d) (d < R - normalized_dims ? rows : K) *= s[d];
  const Device dev = x.device();
  auto affine = [&](const Tensor<T, WR>& p, const char* what) -> Tensor<T, WR> {
    if (!p.defined()) return p;
    bool ok = WR == normalized_dims && p.device() == dev;
    for (int d = 0; ok && d < WR; ++d) ok = p.shape()[d] == s[R - normalized_dims + d];
    if (!ok)
      fail("layer_norm", what, " of shape ", to_string(p.shape()), " on ", p.device(), " does not match the last ",
           normalized_dims, " dims of input ", to_string(s), " on ", dev);
    return p.contiguous();
  };
  Tensor<T, WR> w = affine(weight, "weight"), b = affine(bias, "bias");
  LayerNormResult<T, R> res{Tensor<T, R>(s, dev), Tensor<F, 1>(Shape<1>{rows}, dev), Tensor<F, 1>(Shape<1>{rows}, dev)};
  if (rows * K == 0) return res;
  T* out = res.output.data();
  F *mu = res.mean.data(), *rs = res.rstd.data();
  const T *wp = w.defined() ? w.data() : nullptr, *bp = b.defined() ? b.data() : nullptr;
  exec::with_reader(
      x, dev, [&](const auto& read) { rowwise::cpu::layer_norm(out, mu, rs, read, wp, bp, rows, K, eps); },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        cuda::launch_kernel<rowwise::gpu::LayerNormKernel<T, std::remove_cvref_t<decltype(read)>, I>>(
            "layer_norm", dev, out, mu, rs, read, wp, bp, static_cast<I>(rows), static_cast<I>(K), eps);
#else
        (void)read;
#endif
      });
  return res;
}

}  // namespace ft::inline FT_ABI

// ---- on Vars: each backward is one fused expression ----
namespace ft::inline FT_ABI {

namespace detail {
template <class T, int R>
Tensor<T, R> ones_like_shape(const Shape<R>& shape) {
  Tensor<T, R> t(shape);
  std::fill(t.data(), t.data() + t.numel(), T(1));
  return t;
}
}  // namespace detail

// ---- row-wise composites ----
// softmax: dx = y·(g − Σ g·y) along dim (one reduction, one fused kernel).
template <Expression E>
requires(ft::detail::has_var_v<E>) auto softmax(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  Tensor<T, E::rank> y = softmax(vx.value(), dim);
  dim = wrap_dim(dim, E::rank, "softmax");
  auto bwd = [vx, y, dim](const Tensor<T, E::rank>& g) { vx.state().accumulate(y * (g - sum(g * y, dim, keepdim))); };
  auto out = autograd::record("softmax", y, std::move(bwd), vx);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "Softmax", {autograd::trace::name(s, vx)}, out,
                              {autograd::trace::Attribute::integer("axis", dim)});
  });
  return out;
}
// log_softmax: dx = g − exp(y)·Σ g along dim.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto log_softmax(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  Tensor<T, E::rank> y = log_softmax(vx.value(), dim);
  dim = wrap_dim(dim, E::rank, "log_softmax");
  auto bwd = [vx, y, dim](const Tensor<T, E::rank>& g) { vx.state().accumulate(g - exp(y) * sum(g, dim, keepdim)); };
  auto out = autograd::record("log_softmax", y, std::move(bwd), vx);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "LogSoftmax", {autograd::trace::name(s, vx)}, out,
                              {autograd::trace::Attribute::integer("axis", dim)});
  });
  return out;
}

// cross_entropy: dlogits = (softmax(x) − q)·scale on the rows whose target is not ignored,
// with q the (smoothed) one-hot target and scale = g / (rows counted) for the mean. The
// softmax is recomputed from a logsumexp inside the one fused kernel: no [N, C] intermediate.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto cross_entropy(const E& logits, const Tensor<std::int64_t, 1>& target,
                                                      const CrossEntropyOptions& opts = {}) {
  auto vx = autograd::to_var(logits);
  using T = typename decltype(vx)::value_type;
  Tensor<T, 0> loss = cross_entropy(vx.value(), target, opts);
  auto bwd = [vx, target, opts](const Tensor<T, 0>& g) {
    const auto& x = vx.value();
    const index_t C = x.size(1);
    const Device dev = x.device();
    auto t = target.unsqueeze(1);
    auto valid = t != opts.ignore_index;
    Generator<gen::Arange<std::int64_t>, 1> classes(gen::Arange<std::int64_t>{0, 1}, Shape<1>{C}, dev);
    const double eps = opts.label_smoothing;
    auto q = where(classes == t, 1.0 - eps + eps / static_cast<double>(C), eps / static_cast<double>(C));
    auto p = exp(x - logsumexp(x, 1, keepdim));
    auto counted = cast<T>(sum(target != opts.ignore_index));
    auto scale = where(Scalar<bool>{opts.reduction == Reduction::Mean}, g / counted, g);
    vx.state().accumulate(where(valid, (p - q) * scale, 0));
  };
  return autograd::record("cross_entropy", loss, std::move(bwd), vx);
}

namespace detail {
// The gradient buffer of v that layer_norm's CPU backward writes (null when v needs none), made
// when v has none yet (then written, not added to: add false).
template <class T, int R>
void layer_norm_grad_buffer(const Var<T, R>& v, T*& p, bool& add) {
  if (!v.defined() || !v.requires_grad()) return;
  add = !autograd::detail::make_grad(v);
  p = v.state().grad.data();
}

// layer_norm's backward on the CPU in one pass over the rows (rowwise::cpu::layer_norm_backward),
// writing straight into the gradients. False (nothing written) when a gradient buffer already
// there is not contiguous: the caller then takes the expression path.
template <class T, int R, int WR>
bool layer_norm_backward_cpu(const Tensor<T, 2>& x, const Tensor<T, 2>& g, const Tensor<T, 1>& mean,
                             const Tensor<T, 1>& rstd, const Var<T, R>& vx, const Var<T, WR>& weight,
                             const Var<T, WR>& bias) {
  auto usable = [](const auto& v) {
    return !v.defined() || !v.requires_grad() || !v.state().grad.defined() || v.state().grad.is_contiguous();
  };
  if (!usable(vx) || !usable(weight) || !usable(bias)) return false;
  rowwise::cpu::LayerNormGrads<T> out;
  // one after another, so that a Var passed twice (weight and bias) has its gradient made once
  layer_norm_grad_buffer(vx, out.dx, out.dx_add);
  layer_norm_grad_buffer(weight, out.dw, out.dw_add);
  layer_norm_grad_buffer(bias, out.db, out.db_add);
  const Tensor<T, 1> w = weight.defined() ? weight.value().contiguous().reshape(Shape<1>{x.size(1)}) : Tensor<T, 1>();
  stats::detail::record_launch(kCPU);
  rowwise::cpu::layer_norm_backward(x.data(), g.data(), mean.data(), rstd.data(), w.defined() ? w.data() : nullptr,
                                    x.size(0), x.size(1), out);
  return true;
}
}  // namespace detail

// layer_norm with Var weight and bias (pass undefined Vars for none):
// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = g·w; dw = Σ g·x̂, db = Σ g over the rows.
template <Expression E, class T = float_promote_t<typename E::value_type>, int WR = 1>
requires(ft::detail::has_var_v<E>) Var<T, E::rank> layer_norm(const E& x, int normalized_dims,
                                                              const Var<T, WR>& weight = {},
                                                              const Var<T, WR>& bias = {}, double eps = 1e-5) {
  constexpr int R = E::rank;
  auto vx = autograd::to_var(x);
  auto res = layer_norm(vx.value(), normalized_dims, weight.defined() ? weight.value() : Tensor<T, WR>(),
                        bias.defined() ? bias.value() : Tensor<T, WR>(), eps);
  const index_t rows = res.mean.size(0), K = rows > 0 ? vx.numel() / rows : 0;
  auto bwd = [vx, weight, bias, mean = res.mean, rstd = res.rstd, rows, K](const Tensor<T, R>& g) {
    auto x2 = vx.value().contiguous().reshape(Shape<2>{rows, K});
    auto g2 = g.contiguous().reshape(Shape<2>{rows, K});
    if constexpr (!is_half_v<T>)  // a two-byte type takes the expression path, which computes in float
      if (x2.device().is_cpu() && detail::layer_norm_backward_cpu(x2, g2, mean, rstd, vx, weight, bias)) return;
    auto mu = mean.unsqueeze(1);
    auto rs = rstd.unsqueeze(1);
    auto xhat = (x2 - mu) * rs;
    auto input_grad = [&](const auto& gh) {
      autograd::detail::accumulate_reshaped(
          vx, Shape<2>{rows, K}, rs * (gh - ft::mean(gh, 1, keepdim) - xhat * ft::mean(gh * xhat, 1, keepdim)));
    };
    if (vx.requires_grad()) {
      if (weight.defined())
        input_grad(g2 * weight.value().contiguous().reshape(Shape<2>{1, K}));
      else
        input_grad(g2);
    }
    if (weight.defined() && weight.requires_grad())
      autograd::detail::accumulate_reshaped(weight, Shape<1>{K}, ft::sum(g2 * xhat, 0));
    if (bias.defined() && bias.requires_grad())
      autograd::detail::accumulate_reshaped(bias, Shape<1>{K}, ft::sum(g2, 0));
  };
  auto out = autograd::record("layer_norm", res.output, std::move(bwd), vx, weight, bias);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    // ONNX's LayerNormalization needs a scale: ones when the layer has no weight
    Shape<WR> normalized;
    for (int d = 0; d < WR; ++d) normalized[d] = vx.size(R - WR + d);
    std::vector<std::string> in = {autograd::trace::name(s, vx),
                                   weight.defined() ? autograd::trace::name(s, weight)
                                                    : autograd::trace::name(s, detail::ones_like_shape<T>(normalized))};
    if (bias.defined()) in.push_back(autograd::trace::name(s, bias));
    autograd::trace::boundary(s, "LayerNormalization", in, out,
                              {autograd::trace::Attribute::integer("axis", -normalized_dims),
                               autograd::trace::Attribute::real("epsilon", eps)});
  });
  return out;
}

}  // namespace ft::inline FT_ABI
