// The reduction executors. Output element (o, i) combines the input elements (o, k, i),
// k < K, of the input viewed as [outer, K, inner]; a reduction over everything is
// outer = inner = 1. The combine order depends only on the shape, never on the thread count
// or timing, so results are bit-identical run after run (no floating-point atomics).
#pragma once

#include <memory>

#include "ft/core/config.hpp"
#include "ft/core/stats.hpp"
#include "ft/exec/launch.hpp"
#include "ft/expr/shape_ops.hpp"
#include "ft/ops/reduction.hpp"

#if FT_CUDA_ENABLED
#include "ft/cuda/kernels.hpp"
#include "ft/exec/cuda.hpp"
#include "ft/exec/fast_divmod.hpp"
#endif
#if FT_CUDA_KERNELS
#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>
#endif

namespace ft::inline FT_ABI::exec {

struct ReduceGeometry {
  index_t outer = 1, K = 1, inner = 1;
};

template <int RI>
ReduceGeometry reduce_geometry(const Shape<RI>& s, int dim) {
  ReduceGeometry g;
  if (dim < 0) {
    g.K = s.numel();
    return g;
  }
  for (int d = 0; d < dim; ++d) g.outer *= s[d];
  g.K = s[dim];
  for (int d = dim + 1; d < RI; ++d) g.inner *= s[d];
  return g;
}

// Reads element L (row-major over the input's shape) of an expression evaluator.
template <class I, int RI, bool Dense, class Ev>
struct ElementReader {
  Ev ev;
  Array<index_t, RI> shape;
  FT_HD FT_INLINE auto operator()(I L) const {
    if constexpr (Dense) {
      return ev(Index<I, RI, true>{L});
    } else {
      Index<I, RI, false> ix;
      ix.linear = L;
      for (int d = RI - 1; d >= 0; --d) {
        I s = static_cast<I>(shape[d]);
        ix.coord[d] = L % s;
        L /= s;
      }
      return ev(ix);
    }
  }
};

// Reads element L of the input taken in another order of its dimensions (the summed ones
// gathered in the middle, see sum_to_geometry): input coordinate p is (L / vstride[p]) mod size[p].
// The evaluator is built with a context that lets no leaf read by linear index.
template <class I, int RI, class Ev>
struct PermutedReader {
  Ev ev;
  Array<index_t, RI> vstride, size;
  FT_HD FT_INLINE auto operator()(I L) const {
    Index<I, RI, false> ix{};
    ix.linear = L;
    for (int p = 0; p < RI; ++p) ix.coord[p] = (L / static_cast<I>(vstride[p])) % static_cast<I>(size[p]);
    return ev(ix);
  }
};

// Writes a reduction's result, or adds it to what is there (a gradient accumulated in place).
template <class T, class V>
FT_HD FT_INLINE void put(T* out, index_t i, V v, bool add) {
  out[i] = add ? static_cast<T>(out[i] + static_cast<T>(v)) : static_cast<T>(v);
}

namespace cpu {

inline constexpr index_t kReduceChunk = 1 << 14;  // elements per partial of a long reduction
inline constexpr int kLanes = 8;                  // independent accumulators: the loop vectorises

// Combines x(k0) .. x(k1-1) in a fixed order: lane j takes k ≡ j (mod 8), lanes combine in order.
template <class Acc, class Red, class F>
Acc reduce_range(const Red& red, F&& x, index_t k0, index_t k1) {
  Acc lane[kLanes];
  for (auto& l : lane) l = red.template init<Acc>();
  index_t k = k0;
  for (; k + kLanes <= k1; k += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = red.accumulate(lane[j], x(k + j), k + j);
  for (int j = 0; k < k1; ++k, ++j) lane[j] = red.accumulate(lane[j], x(k), k);
  Acc acc = lane[0];
  for (int j = 1; j < kLanes; ++j) acc = red.combine(acc, lane[j]);
  return acc;
}

template <class T, class Red, class Read>
FT_CPU_MULTIVERSION void reduce(T* out, const Red& red, const Read read, const ReduceGeometry g, bool add = false) {
  using Acc = red::acc_t<Red, false>;
  const index_t K = g.K, inner = g.inner, outputs = g.outer * g.inner;
  if (outputs == 1) {  // one long reduction: fixed chunks in parallel, partials combined in order
    const index_t chunks = K > 0 ? (K + kReduceChunk - 1) / kReduceChunk : 1;
    std::unique_ptr<Acc[]> part(new Acc[static_cast<std::size_t>(chunks)]);  // not vector<bool>
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (index_t c = 0; c < chunks; ++c) {
      index_t k0 = c * kReduceChunk, k1 = k0 + kReduceChunk < K ? k0 + kReduceChunk : K;
      part[c] = reduce_range<Acc>(
          red, [&](index_t k) { return read(k); }, k0, k1);
    }
    Acc acc = part[0];
    for (index_t c = 1; c < chunks; ++c) acc = red.combine(acc, part[c]);
    put(out, 0, red.finalize(acc, K), add);
  } else if (inner == 1) {  // rows: one output per row
#pragma omp parallel for schedule(static) if (outputs * K > kReduceChunk)
    for (index_t o = 0; o < outputs; ++o) {
      Acc acc = reduce_range<Acc>(
          red, [&](index_t k) { return read(o * K + k); }, 0, K);
      put(out, o, red.finalize(acc, K), add);
    }
  } else {  // columns: a tile of 64 outputs walks down k together (contiguous reads along i)
    constexpr index_t kTile = 64;
    const index_t tiles = (inner + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) if (outputs * K > kReduceChunk)
    for (index_t t = 0; t < g.outer * tiles; ++t) {
      const index_t o = t / tiles, i0 = (t % tiles) * kTile;
      const index_t width = inner - i0 < kTile ? inner - i0 : kTile;
      Acc acc[kTile];
      for (index_t i = 0; i < width; ++i) acc[i] = red.template init<Acc>();
      for (index_t k = 0; k < K; ++k) {
        const index_t base = (o * K + k) * inner + i0;
        for (index_t i = 0; i < width; ++i) acc[i] = red.accumulate(acc[i], read(base + i), k);
      }
      for (index_t i = 0; i < width; ++i) put(out, o * inner + i0 + i, red.finalize(acc[i], K), add);
    }
  }
}

}  // namespace cpu

#if FT_CUDA_ENABLED
namespace gpu {

inline constexpr int kReduceBlock = 256;  // threads a block; 8 warps
inline constexpr int kRowsPerWarpBlock = kReduceBlock / 32;

// The reduction kernels of one (output type, reducer, reader, index type), behind one launcher.
template <class T, class Red, class Read, class I>
struct ReduceKernel {
  static void launch(T* out, Device dev, const Red& red, const Read& read, const ReduceGeometry& g, bool add);
};

// Runs the reduction `red` of the elements `read` gives into `out` ([outer, inner] of g): one launch.
template <class T, class Red, class Read, class I>
void reduce(T* out, Device dev, const Red& red, const Read& read, const ReduceGeometry& g, bool add = false) {
  cuda::launch_kernel<ReduceKernel<T, Red, Read, I>>("reduce", out, dev, red, read, g, add);
}

// Reads element L of the input on the device: linear when dense, else coordinates by fast division.
template <class I, int RI, bool Dense, class Ev>
struct DeviceReader {
  Ev ev;
  Divisors<I, RI> un;
  FT_HD FT_INLINE auto operator()(I L) const {
    if constexpr (Dense)
      return ev(Index<I, RI, true>{L});
    else
      return ev(unravel_fast<I, RI>(L, un));
  }
};

template <class I, int RI, class Ev>
struct PermutedDeviceReader {
  Ev ev;
  FastDivmod<I> vstride[RI > 0 ? RI : 1], size[RI > 0 ? RI : 1];
  FT_HD FT_INLINE auto operator()(I L) const {
    Index<I, RI, false> ix;
    ix.linear = L;
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int p = 0; p < RI; ++p) {
      I q, r;
      size[p].divmod(vstride[p].div(L), q, r);
      ix.coord[p] = r;
    }
    return ev(ix);
  }
};

#if FT_CUDA_KERNELS
template <class Red>
struct CombineOp {
  Red red;
  template <class Acc>
  __device__ FT_INLINE Acc operator()(const Acc& a, const Acc& b) const {
    return red.combine(a, b);
  }
};

// A partial written by another block, read from L2 (never from this SM's L1, which may hold a
// stale line): __ldcg for a number, word by word for an accumulator struct.
template <class T>
__device__ FT_INLINE T load_from_l2(const T* p) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    return __ldcg(p);
  } else if constexpr (sizeof(T) % 4 == 0 && alignof(T) >= 4) {
    T r;
    auto* dst = reinterpret_cast<unsigned*>(&r);
    const auto* src = reinterpret_cast<const unsigned*>(p);
    for (unsigned w = 0; w < sizeof(T) / 4; ++w) dst[w] = __ldcg(src + w);
    return r;
  } else {
    return *static_cast<const volatile T*>(p);  // bool: a volatile load also bypasses L1
  }
}

// Everything into one value, in one launch: each block reduces a grid-strided share and
// writes a partial; the last block to finish (a ticket counter) combines the partials in
// block order. Both trees are fixed by the launch shape, so the result is deterministic.
// Memory order (the CUDA programming guide's pattern): a block's thread 0 stores its partial,
// fences (release), then takes a ticket; the thread that takes the last ticket fences again
// (acquire) before __syncthreads hands the result to its block, which reads the partials from L2.
template <class Acc, class T, class Red, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    reduce_all_kernel(T* out, Red red, Read read, I n, Acc* partials, unsigned* ticket, bool add) {
  using BlockReduce = cub::BlockReduce<Acc, kReduceBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ bool last;
  Acc acc = red.template init<Acc>();
  const I stride = static_cast<I>(gridDim.x) * kReduceBlock;
  for (I L = static_cast<I>(blockIdx.x) * kReduceBlock + threadIdx.x; L < n; L += stride)
    acc = red.accumulate(acc, read(L), static_cast<index_t>(L));
  Acc block = BlockReduce(temp).Reduce(acc, CombineOp<Red>{red});
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = block;
    __threadfence();
    const bool is_last = atomicAdd(ticket, 1u) == gridDim.x - 1;
    if (is_last) __threadfence();
    last = is_last;
  }
  __syncthreads();
  if (!last) return;
  acc = red.template init<Acc>();
  for (unsigned b = threadIdx.x; b < gridDim.x; b += kReduceBlock)
    acc = red.combine(acc, load_from_l2(partials + b));  // written by other blocks before their ticket
  __syncthreads();
  Acc total = BlockReduce(temp).Reduce(acc, CombineOp<Red>{red});
  if (threadIdx.x == 0) {
    put(out, 0, red.finalize(total, static_cast<index_t>(n)), add);
    *ticket = 0;
  }
}

// One row a block (long rows) or a warp (short rows), reduced over k in a fixed tree.
template <bool WarpPerRow, class Acc, class T, class Red, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock) reduce_rows_kernel(T* out, Red red, Read read, I rows, I K, bool add) {
  if constexpr (WarpPerRow) {
    using WarpReduce = cub::WarpReduce<Acc>;
    __shared__ typename WarpReduce::TempStorage temp[kRowsPerWarpBlock];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (I row = static_cast<I>(blockIdx.x) * kRowsPerWarpBlock + warp; row < rows;
         row += static_cast<I>(gridDim.x) * kRowsPerWarpBlock) {
      Acc acc = red.template init<Acc>();
      for (I k = lane; k < K; k += 32) acc = red.accumulate(acc, read(row * K + k), static_cast<index_t>(k));
      Acc total = WarpReduce(temp[warp]).Reduce(acc, CombineOp<Red>{red});
      if (lane == 0) put(out, row, red.finalize(total, static_cast<index_t>(K)), add);
    }
  } else {
    using BlockReduce = cub::BlockReduce<Acc, kReduceBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    for (I row = blockIdx.x; row < rows; row += gridDim.x) {
      Acc acc = red.template init<Acc>();
      for (I k = threadIdx.x; k < K; k += kReduceBlock)
        acc = red.accumulate(acc, read(row * K + k), static_cast<index_t>(k));
      Acc total = BlockReduce(temp).Reduce(acc, CombineOp<Red>{red});
      if (threadIdx.x == 0) put(out, row, red.finalize(total, static_cast<index_t>(K)), add);
      __syncthreads();  // temp is reused by the next row
    }
  }
}

// Reductions over an outer dimension: one thread per output walks down k (reads coalesce along i).
template <class Acc, class T, class Red, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    reduce_cols_kernel(T* out, Red red, Read read, I outer, I K, I inner, bool add) {
  const I outputs = outer * inner;
  for (I t = static_cast<I>(blockIdx.x) * kReduceBlock + threadIdx.x; t < outputs;
       t += static_cast<I>(gridDim.x) * kReduceBlock) {
    const I o = t / inner, i = t - o * inner;
    Acc acc = red.template init<Acc>();
    for (I k = 0; k < K; ++k) acc = red.accumulate(acc, read((o * K + k) * inner + i), static_cast<index_t>(k));
    put(out, t, red.finalize(acc, static_cast<index_t>(K)), add);
  }
}

template <class T, class Red, class Read, class I>
void ReduceKernel<T, Red, Read, I>::launch(T* out, Device dev, const Red& red, const Read& read,
                                           const ReduceGeometry& g, bool add) {
  using Acc = red::acc_t<Red, true>;
  cudaStream_t stream = cuda::current_stream();
  const index_t outputs = g.outer * g.inner;
  auto blocks_for = [&](index_t work) {
    index_t b = work > 0 ? work : 1;
    index_t cap = static_cast<index_t>(sm_count(dev.index)) * 8;
    return static_cast<unsigned>(b < cap ? b : cap);
  };
  if (outputs == 1) {
    const unsigned blocks = blocks_for((g.K + kReduceBlock * 4 - 1) / (kReduceBlock * 4));
    // partials and the ticket counter live in one small block from the stream-ordered pool
    Tensor<std::uint8_t, 1> work(Shape<1>{static_cast<index_t>(blocks * sizeof(Acc) + 16)}, dev);
    auto* ticket = reinterpret_cast<unsigned*>(work.data());
    auto* partials = reinterpret_cast<Acc*>(work.data() + 16);
    FT_CUDA_CHECK(cudaMemsetAsync(ticket, 0, sizeof(unsigned), stream));
    reduce_all_kernel<Acc, T>
        <<<blocks, kReduceBlock, 0, stream>>>(out, red, read, static_cast<I>(g.K), partials, ticket, add);
  } else if (g.inner == 1) {
    if (g.K <= 1024) {
      reduce_rows_kernel<true, Acc, T>
          <<<blocks_for((g.outer + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock), kReduceBlock, 0, stream>>>(
              out, red, read, static_cast<I>(g.outer), static_cast<I>(g.K), add);
    } else {
      reduce_rows_kernel<false, Acc, T><<<blocks_for(g.outer), kReduceBlock, 0, stream>>>(
          out, red, read, static_cast<I>(g.outer), static_cast<I>(g.K), add);
    }
  } else {
    reduce_cols_kernel<Acc, T><<<blocks_for((outputs + kReduceBlock - 1) / kReduceBlock), kReduceBlock, 0, stream>>>(
        out, red, read, static_cast<I>(g.outer), static_cast<I>(g.K), static_cast<I>(g.inner), add);
  }
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS

}  // namespace gpu
#endif

// Runs `cpu_body(read)` or `gpu_body(read)` with the reader of the input expression that its
// leaves allow (dense linear or coordinates; 32- or 64-bit on the GPU). Counts one launch.
template <class E, class CpuBody, class GpuBody>
void with_reader(const E& e, Device dev, CpuBody&& cpu_body, GpuBody&& gpu_body) {
  constexpr int RI = E::rank;
  ft::detail::EvaluationScope scope;  // joins the statement's evaluation, or opens one
  Plan plan;
  plan_leaves(plan, e.shape().numel(), e);
  auto ev = e.evaluator(make_context(e.shape()));
  if (dev.is_cpu()) {
    stats::detail::record_launch(kCPU);
    auto go = [&]<bool D>() {
      ElementReader<std::int64_t, RI, D, decltype(ev)> read{ev, e.shape()};
      cpu_body([read](index_t L) { return read(static_cast<std::int64_t>(L)); });
    };
    if (plan.dense)
      go.template operator()<true>();
    else
      go.template operator()<false>();
  } else {
#if FT_CUDA_ENABLED
    cuda::DeviceGuard guard(dev);
    stats::detail::record_launch(dev);
    auto go = [&]<class I, bool D>() {
      gpu::DeviceReader<I, RI, D, decltype(ev)> read{ev, {}};
      for (int d = 0; d < RI; ++d) read.un.d[d] = FastDivmod<I>(static_cast<I>(e.shape()[d]));
      gpu_body.template operator()<I>(read);
      FT_CUDA_CHECK(cudaGetLastError());
    };
    if (plan.index32) {
      if (plan.dense)
        go.template operator()<std::int32_t, true>();
      else
        go.template operator()<std::int32_t, false>();
    } else {
      if (plan.dense)
        go.template operator()<std::int64_t, true>();
      else
        go.template operator()<std::int64_t, false>();
    }
#else
    (void)gpu_body;
    cuda::require_device(dev, "reduce");
#endif
  }
}

// The sum over several dimensions as one [outer, K, inner] reduction: the input's dimensions
// are taken in the order (kept ones before the last summed one) (summed ones) (kept ones after
// it), which keeps the output in row-major order of the kept dimensions.
template <int RI>
ReduceGeometry sum_to_geometry(const Shape<RI>& s, const bool (&summed)[RI > 0 ? RI : 1], Array<index_t, RI>& vstride) {
  ReduceGeometry g;
  int last = -1;
  for (int d = 0; d < RI; ++d)
    if (summed[d]) last = d;
  int order[RI > 0 ? RI : 1], n = 0;
  for (int d = 0; d < last; ++d)
    if (!summed[d]) order[n++] = d, g.outer *= s[d];
  for (int d = 0; d < RI; ++d)
    if (summed[d]) order[n++] = d, g.K *= s[d];
  for (int d = last + 1; d < RI; ++d) order[n++] = d, g.inner *= s[d];
  index_t acc = 1;
  for (int v = RI - 1; v >= 0; --v) {
    vstride[order[v]] = acc;
    acc *= s[order[v]] > 0 ? s[order[v]] : 1;
  }
  return g;
}

// Runs SumTo `node` into the contiguous `dst` of its shape: one launch.
template <class T, int R, class Node>
void run_sum_to(const Tensor<T, R>& dst, const Node& node, bool add = false) {
  const auto& e = node.input();
  using E = std::remove_cvref_t<decltype(e)>;
  constexpr int RI = E::rank;
  if (dst.numel() == 0) return;
  ft::detail::EvaluationScope scope;
  const auto& s = e.shape();
  bool summed[RI > 0 ? RI : 1] = {};
  for (int j = 0; j < RI; ++j) summed[j] = j < RI - R || node.shape()[j - (RI - R)] == 1;
  Array<index_t, RI> vstride;
  const ReduceGeometry g = sum_to_geometry(s, summed, vstride);
  const Device dev = dst.device();
  using Red = red::Sum<typename E::value_type, 0>;
  Plan plan;
  plan_leaves(plan, s.numel(), e);
  EvalContext ctx = make_context(s);
  ctx.numel = -1;  // no leaf has this many elements, so each reads by coordinates
  auto ev = e.evaluator(ctx);
  stats::detail::record_launch(dev);
  if (dev.is_cpu()) {
    PermutedReader<std::int64_t, RI, decltype(ev)> read{ev, vstride, s};
    cpu::reduce(
        dst.data(), Red{}, [read](index_t L) { return read(static_cast<std::int64_t>(L)); }, g, add);
  } else {
#if FT_CUDA_ENABLED
    cuda::DeviceGuard guard(dev);
    auto go = [&]<class I>() {
      gpu::PermutedDeviceReader<I, RI, decltype(ev)> read{ev, {}, {}};
      for (int p = 0; p < RI; ++p) {
        read.vstride[p] = FastDivmod<I>(static_cast<I>(vstride[p]));
        read.size[p] = FastDivmod<I>(static_cast<I>(s[p] > 0 ? s[p] : 1));
      }
      gpu::reduce<T, Red, decltype(read), I>(dst.data(), dev, Red{}, read, g, add);
    };
    if (plan.index32)
      go.template operator()<std::int32_t>();
    else
      go.template operator()<std::int64_t>();
#else
    cuda::require_device(dev, "sum_to");
#endif
  }
}

// Runs reduction `node` into the contiguous tensor `dst` of its shape: one launch.
template <class T, int OR, class Node>
void run_reduce(const Tensor<T, OR>& dst, const Node& node) {
  if (dst.numel() == 0) return;
  const auto& e = node.input();
  const ReduceGeometry g = reduce_geometry(e.shape(), node.dim());
  const Device dev = dst.device();
  with_reader(
      e, dev, [&](const auto& read) { cpu::reduce(dst.data(), node.reducer(), read, g); },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        gpu::reduce<T, typename Node::reducer_type, std::remove_cvref_t<decltype(read)>, I>(dst.data(), dev,
                                                                                            node.reducer(), read, g);
#else
        (void)read;
#endif
      });
}

}  // namespace ft::inline FT_ABI::exec

namespace ft::inline FT_ABI {

template <class Red, class E, int OutRank>
template <class T>
void Reduce<Red, E, OutRank>::materialize_into(const Tensor<T, OutRank>& dst) const {
  exec::run_reduce(dst, *this);
}

template <class E, int R>
template <class T>
void SumTo<E, R>::materialize_into(const Tensor<T, R>& dst) const {
  if constexpr (E::rank == R) {
    if (!reduces_) return detail::assign(dst, e_, "sum_to");
  }
  exec::run_sum_to(dst, *this);  // (leading dimensions of size 1 are dropped by a trivial sum)
}

}  // namespace ft::inline FT_ABI
