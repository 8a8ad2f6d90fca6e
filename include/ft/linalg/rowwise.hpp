// Row-wise composites, one launch per call: softmax, log_softmax, layer_norm, cross_entropy.
// Each reads its (fused) input expression directly: a row is the elements that differ only
// along `dim`, i.e. the input viewed as [outer, K, inner] as in exec/reduce.hpp. All are
// numerically stable (the row maximum is subtracted before exp) and deterministic.
//
// The file ends with the overloads on Vars: one tape node each, whose backward is one fused
// expression.
#pragma once

#include <cmath>
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

template <class F, class Read>
FT_CPU_MULTIVERSION void softmax(F* out, const Read& read, const exec::ReduceGeometry g, Kind kind) {
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
        out[base + k * inner] = math::exp(static_cast<F>(read(base + k * inner)) - m) * inv;
    } else {
      const F log_s = static_cast<F>(std::log(s));  // (x − m) − log s: no rounding of m + log s
      for (index_t k = 0; k < K; ++k) out[base + k * inner] = (static_cast<F>(read(base + k * inner)) - m) - log_s;
    }
  }
}

template <class F, class Read>
FT_CPU_MULTIVERSION void layer_norm(F* out, F* mean, F* rstd, const Read& read, const F* w, const F* b, index_t rows,
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
      if (w) y *= w[k];
      if (b) y += b[k];
      out[r * K + k] = y;
    }
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
template <class F, class Read>
FT_CPU_MULTIVERSION void cross_entropy(F* out, const Read& read, const std::int64_t* target, index_t N, index_t C,
                                       std::int64_t ignore_index, double smoothing, bool mean) {
  std::unique_ptr<double[]> loss(new double[static_cast<std::size_t>(N > 0 ? N : 1)]);
#pragma omp parallel for schedule(static) if (N * C > exec::cpu::kReduceChunk)
  for (index_t r = 0; r < N; ++r)
    loss[r] =
        target[r] == ignore_index ? 0.0 : static_cast<double>(cross_entropy_row<F>(read, r, C, target[r], smoothing));
  double total = 0, count = 0;
  for (index_t r = 0; r < N; ++r) total += loss[r], count += target[r] != ignore_index;
  out[0] = static_cast<F>(mean ? total / count : total);
}

}  // namespace cpu

// ---- CUDA ----
#if FT_CUDA_ENABLED
namespace gpu {

using exec::gpu::kReduceBlock;

// The kernels, one row (or a warp a row) at a time, each behind one launcher.
template <class F, class Read, class I>
struct SoftmaxKernel {
  static void launch(unsigned blocks, F* out, const Read& read, I rows, I K, I inner, Kind kind);
};
template <class F, class Read, class I>
struct LayerNormKernel {
  static void launch(unsigned blocks, F* out, F* mean, F* rstd, const Read& read, const F* w, const F* b, I rows, I K,
                     double eps);
};
template <class F, class Read, class I>
struct CrossEntropyKernel {
  static void launch(unsigned blocks, F* out, const Read& read, const std::int64_t* target, I rows, I C,
                     std::int64_t ignore_index, double smoothing, bool mean, double* partials, unsigned* ticket);
};

#if FT_CUDA_KERNELS

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

// One row a block: max, then the sum of exp(x − max), then the write; each pass re-reads the
// fused input (recomputing is cheaper than storing).
template <class F, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock) softmax_kernel(F* out, Read read, I rows, I K, I inner, Kind kind) {
  using BlockReduce = cub::BlockReduce<F, kReduceBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ F shared_m, shared_s;
  for (I r = blockIdx.x; r < rows; r += gridDim.x) {
    const I o = r / inner, i = r - o * inner, base = o * K * inner + i;
    F m = -std::numeric_limits<F>::infinity();
    for (I k = threadIdx.x; k < K; k += kReduceBlock) m = MaxOp<F>{}(m, static_cast<F>(read(base + k * inner)));
    m = BlockReduce(temp).Reduce(m, MaxOp<F>{});
    if (threadIdx.x == 0) shared_m = m == -std::numeric_limits<F>::infinity() ? F(0) : m;
    __syncthreads();
    m = shared_m;
    F s = 0;
    for (I k = threadIdx.x; k < K; k += kReduceBlock) s += math::exp(static_cast<F>(read(base + k * inner)) - m);
    s = BlockReduce(temp).Reduce(s, AddOp{});
    if (threadIdx.x == 0) shared_s = s;
    __syncthreads();
    s = shared_s;
    if (kind == Kind::Softmax) {
      const F inv = F(1) / s;
      for (I k = threadIdx.x; k < K; k += kReduceBlock)
        out[base + k * inner] = math::exp(static_cast<F>(read(base + k * inner)) - m) * inv;
    } else {
      const F log_s = math::log(s);
      for (I k = threadIdx.x; k < K; k += kReduceBlock)
        out[base + k * inner] = (static_cast<F>(read(base + k * inner)) - m) - log_s;
    }
    __syncthreads();
  }
}

template <class F, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    layer_norm_kernel(F* out, F* mean, F* rstd, Read read, const F* w, const F* b, I rows, I K, double eps) {
  using Red = red::Variance<F, false>;
  using Acc = red::Welford<F>;
  using BlockReduce = cub::BlockReduce<Acc, kReduceBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ F shared_mu, shared_rs;
  for (I r = blockIdx.x; r < rows; r += gridDim.x) {
    Acc acc{0, 0, 0};
    for (I k = threadIdx.x; k < K; k += kReduceBlock) acc = Red::accumulate(acc, static_cast<F>(read(r * K + k)), k);
    acc = BlockReduce(temp).Reduce(acc, exec::gpu::CombineOp<Red>{Red{}});
    if (threadIdx.x == 0) {
      shared_mu = acc.mean;
      shared_rs = static_cast<F>(1.0 / ::sqrt(static_cast<double>(acc.m2) / static_cast<double>(K) + eps));
      mean[r] = shared_mu;
      rstd[r] = shared_rs;
    }
    __syncthreads();
    const F mu = shared_mu, rs = shared_rs;
    for (I k = threadIdx.x; k < K; k += kReduceBlock) {
      F y = (static_cast<F>(read(r * K + k)) - mu) * rs;
      if (w) y *= w[k];
      if (b) y += b[k];
      out[r * K + k] = y;
    }
    __syncthreads();
  }
}

// A warp a row computes its loss; each block sums its warps' losses in warp order, and the
// last block to finish sums the blocks' partials in block order: one launch, deterministic.
template <class F, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    cross_entropy_kernel(F* out, Read read, const std::int64_t* target, I rows, I C, std::int64_t ignore_index,
                         double smoothing, bool mean, double* partials, unsigned* ticket) {
  constexpr int kWarps = kReduceBlock / 32;
  __shared__ double warp_loss[kWarps], warp_count[kWarps];
  __shared__ bool last;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  double my_loss = 0, my_count = 0;
  for (I r = static_cast<I>(blockIdx.x) * kWarps + warp; r < rows; r += static_cast<I>(gridDim.x) * kWarps) {
    const std::int64_t t = target[r];
    if (t == ignore_index) continue;
    const I base = r * C;
    F m = -std::numeric_limits<F>::infinity();
    for (I c = lane; c < C; c += 32) m = MaxOp<F>{}(m, static_cast<F>(read(base + c)));
    for (int off = 16; off > 0; off /= 2) m = MaxOp<F>{}(m, __shfl_xor_sync(0xffffffffu, m, off));
    F s = 0, sx = 0;
    for (I c = lane; c < C; c += 32) {
      F x = static_cast<F>(read(base + c));
      s += math::exp(x - m);
      sx += x;
    }
    for (int off = 16; off > 0; off /= 2) {  // butterfly: every lane ends with the same sums
      s += __shfl_xor_sync(0xffffffffu, s, off);
      sx += __shfl_xor_sync(0xffffffffu, sx, off);
    }
    F xt = (t >= 0 && t < static_cast<std::int64_t>(C)) ? static_cast<F>(read(base + static_cast<I>(t)))
                                                        : std::numeric_limits<F>::quiet_NaN();  // bad class index
    my_loss += static_cast<double>(m) + ::log(static_cast<double>(s)) - (1.0 - smoothing) * static_cast<double>(xt) -
               smoothing / static_cast<double>(C) * static_cast<double>(sx);
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
    partials[2 * blockIdx.x] = bl;
    partials[2 * blockIdx.x + 1] = bc;
    __threadfence();
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
    if (last) {
      __threadfence();
      double total = 0, count = 0;
      for (unsigned b = 0; b < gridDim.x; ++b) total += partials[2 * b], count += partials[2 * b + 1];
      out[0] = static_cast<F>(mean ? total / count : total);
      *ticket = 0;
    }
  }
}

template <class F, class Read, class I>
void SoftmaxKernel<F, Read, I>::launch(unsigned blocks, F* out, const Read& read, I rows, I K, I inner, Kind kind) {
  softmax_kernel<F><<<blocks, kReduceBlock, 0, cuda::current_stream()>>>(out, read, rows, K, inner, kind);
  FT_CUDA_CHECK(cudaGetLastError());
}
template <class F, class Read, class I>
void LayerNormKernel<F, Read, I>::launch(unsigned blocks, F* out, F* mean, F* rstd, const Read& read, const F* w,
                                         const F* b, I rows, I K, double eps) {
  layer_norm_kernel<F><<<blocks, kReduceBlock, 0, cuda::current_stream()>>>(out, mean, rstd, read, w, b, rows, K, eps);
  FT_CUDA_CHECK(cudaGetLastError());
}
template <class F, class Read, class I>
void CrossEntropyKernel<F, Read, I>::launch(unsigned blocks, F* out, const Read& read, const std::int64_t* target,
                                            I rows, I C, std::int64_t ignore_index, double smoothing, bool mean,
                                            double* partials, unsigned* ticket) {
  cross_entropy_kernel<F><<<blocks, kReduceBlock, 0, cuda::current_stream()>>>(out, read, target, rows, C, ignore_index,
                                                                               smoothing, mean, partials, ticket);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS

}  // namespace gpu
#endif

#if FT_CUDA_ENABLED
inline unsigned row_blocks(index_t rows, Device dev) {
  index_t cap = static_cast<index_t>(exec::gpu::sm_count(dev.index)) * 8;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < cap ? rows : cap));
}
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
            op, row_blocks(g.outer * g.inner, dev), o, read, static_cast<I>(g.outer * g.inner), static_cast<I>(g.K),
            static_cast<I>(g.inner), kind);
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
// since it changes the result's rank).
enum class Reduction { Mean, Sum, None };

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
  check(opts.label_smoothing >= 0 && opts.label_smoothing <= 1, "cross_entropy",
        "label_smoothing must be in [0, 1], got ", opts.label_smoothing);
  check(s[1] > 0 || s[0] == 0, "cross_entropy", "logits ", to_string(s), " have no classes");
  const index_t N = s[0], C = s[1];
  Tensor<std::int64_t, 1> t = target.contiguous();
  Tensor<F, 0> out(Shape<0>{}, dev);
  const bool mean = opts.reduction == Reduction::Mean;
  if (dev.is_cpu()) {  // class indices are checked here; a GPU kernel gives NaN for a bad one
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
        const unsigned blocks = rowwise::row_blocks((N + 7) / 8, dev);
        Tensor<std::uint8_t, 1> work(Shape<1>{static_cast<index_t>(16 + 2 * sizeof(double) * blocks)}, dev);
        auto* ticket = reinterpret_cast<unsigned*>(work.data());
        auto* partials = reinterpret_cast<double*>(work.data() + 16);
        FT_CUDA_CHECK(cudaMemsetAsync(ticket, 0, sizeof(unsigned), cuda::current_stream()));
        cuda::launch_kernel<rowwise::gpu::CrossEntropyKernel<F, std::remove_cvref_t<decltype(read)>, I>>(
            "cross_entropy", blocks, o, read, tp, static_cast<I>(N), static_cast<I>(C), opts.ignore_index,
            opts.label_smoothing, mean, partials, ticket);
#else
        (void)read;
#endif
      });
  return out;
}

template <class T, int R>
struct LayerNormResult {
  Tensor<T, R> output;
  Tensor<T, 1> mean;  // one a normalised row: the leading dims flattened
  Tensor<T, 1> rstd;  // 1 / sqrt(biased variance + eps)
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
  static_assert(std::is_floating_point_v<T>, "ft::layer_norm: weight and bias must be float or double");
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
  LayerNormResult<T, R> res{Tensor<T, R>(s, dev), Tensor<T, 1>(Shape<1>{rows}, dev), Tensor<T, 1>(Shape<1>{rows}, dev)};
  if (rows * K == 0) return res;
  T *out = res.output.data(), *mu = res.mean.data(), *rs = res.rstd.data();
  const T *wp = w.defined() ? w.data() : nullptr, *bp = b.defined() ? b.data() : nullptr;
  exec::with_reader(
      x, dev, [&](const auto& read) { rowwise::cpu::layer_norm(out, mu, rs, read, wp, bp, rows, K, eps); },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        cuda::launch_kernel<rowwise::gpu::LayerNormKernel<T, std::remove_cvref_t<decltype(read)>, I>>(
            "layer_norm", rowwise::row_blocks(rows, dev), out, mu, rs, read, wp, bp, static_cast<I>(rows),
            static_cast<I>(K), eps);
#else
        (void)read;
#endif
      });
  return res;
}

}  // namespace ft::inline FT_ABI

// ---- on Vars: each backward is one fused expression ----
namespace ft::inline FT_ABI {

// ---- row-wise composites ----
// softmax: dx = y·(g − Σ g·y) along dim (one reduction, one fused kernel).
template <Expression E>
requires(ft::detail::has_var_v<E>) auto softmax(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  Tensor<T, E::rank> y = softmax(vx.value(), dim);
  dim = wrap_dim(dim, E::rank, "softmax");
  auto bwd = [vx, y, dim](const Tensor<T, E::rank>& g) { vx.state().accumulate(y * (g - sum(g * y, dim, keepdim))); };
  return autograd::record("softmax", y, std::move(bwd), vx);
}
// log_softmax: dx = g − exp(y)·Σ g along dim.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto log_softmax(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  Tensor<T, E::rank> y = log_softmax(vx.value(), dim);
  dim = wrap_dim(dim, E::rank, "log_softmax");
  auto bwd = [vx, y, dim](const Tensor<T, E::rank>& g) { vx.state().accumulate(g - exp(y) * sum(g, dim, keepdim)); };
  return autograd::record("log_softmax", y, std::move(bwd), vx);
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
  return autograd::record("layer_norm", res.output, std::move(bwd), vx, weight, bias);
}

}  // namespace ft::inline FT_ABI
