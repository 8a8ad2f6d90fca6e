// The reduction executors. Output element (o, i) combines the input elements (o, k, i),
// k < K, of the input viewed as [outer, K, inner]; a reduction over everything is
// outer = inner = 1. The combine order depends only on the shape, never on the thread count
// or timing, so results are bit-identical run after run (no floating-point atomics).
#pragma once

#include <algorithm>
#include <memory>
#include <optional>

#include "ft/core/config.hpp"
#include "ft/core/stats.hpp"
#include "ft/exec/cpu.hpp"
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
// The evaluator is built with a context that lets no leaf read by linear index. The CPU's
// reductions read consecutive L (a row, a tile of a column), so the reader keeps the last
// coordinates and steps them, the fastest dimension first, instead of dividing a dimension at
// a time (two 64-bit divisions each: most of a bias gradient's time). `order` lists the
// dimensions slowest first (vstride descending). Each thread reads through its own copy (the
// executor's loops take it firstprivate).
template <class I, int RI, class Ev>
struct SteppingReader {
  Ev ev;
  Array<index_t, RI> vstride, size;
  Array<int, RI> order;
  mutable CoordIndex<I, RI> ix{};
  mutable I next = -1;
  // The coordinates of element L, by division.
  FT_INLINE void locate(I L, CoordIndex<I, RI>& at) const {
    for (int p = 0; p < RI; ++p) at.coord[p] = (L / static_cast<I>(vstride[p])) % static_cast<I>(size[p]);
  }
  FT_INLINE auto operator()(I L) const {
    if (L == next) {
      for (int v = RI - 1; v >= 0; --v) {
        const int p = order[v];
        if (++ix.coord[p] < static_cast<I>(size[p])) break;
        ix.coord[p] = 0;
      }
    } else {
      locate(L, ix);
    }
    next = L + 1;
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

// The column case (inner > 1) runs tiles of kTile outputs that walk down k together.
inline constexpr index_t kTile = 64;
struct ColumnTile {
  index_t o, i0, width;  // the outer index, the first column, the tile's width (≤ kTile)
};
FT_INLINE ColumnTile column_tile(index_t t, index_t tiles, index_t inner) {
  const index_t i0 = (t % tiles) * kTile;
  return {t / tiles, i0, inner - i0 < kTile ? inner - i0 : kTile};
}

// The three shapes of a reduction, each its own loop (a caller that knows which can occur
// compiles only those): one long reduction (fixed chunks in parallel, partials combined in
// order), rows (one output per row), columns (a tile of 64 outputs walks down k together:
// contiguous reads along i).
template <class T, class Red, class Read>
FT_CPU_MULTIVERSION void reduce_all(T* out, const Red& red, const Read read, const ReduceGeometry g, bool add) {
  using Acc = red::acc_t<Red, false>;
  const index_t K = g.K;
  const index_t chunks = K > 0 ? (K + kReduceChunk - 1) / kReduceChunk : 1;
  std::unique_ptr<Acc[]> part(new Acc[static_cast<std::size_t>(chunks)]);  // not vector<bool>
#pragma omp parallel for schedule(static) if (chunks > 1) firstprivate(read)
  for (index_t c = 0; c < chunks; ++c) {
    index_t k0 = c * kReduceChunk, k1 = k0 + kReduceChunk < K ? k0 + kReduceChunk : K;
    part[c] = reduce_range<Acc>(
        red, [&](index_t k) { return read(k); }, k0, k1);
  }
  Acc acc = part[0];
  for (index_t c = 1; c < chunks; ++c) acc = red.combine(acc, part[c]);
  put(out, 0, red.finalize(acc, K), add);
}

template <class T, class Red, class Read>
FT_CPU_MULTIVERSION void reduce_rows(T* out, const Red& red, const Read read, const ReduceGeometry g, bool add) {
  using Acc = red::acc_t<Red, false>;
  const index_t K = g.K, outputs = g.outer * g.inner;
#pragma omp parallel for schedule(static) if (outputs * K > kReduceChunk) firstprivate(read)
  for (index_t o = 0; o < outputs; ++o) {
    Acc acc = reduce_range<Acc>(
        red, [&](index_t k) { return read(o * K + k); }, 0, K);
    put(out, o, red.finalize(acc, K), add);
  }
}

template <class T, class Red, class Read>
FT_CPU_MULTIVERSION void reduce_columns(T* out, const Red& red, const Read read, const ReduceGeometry g, bool add) {
  using Acc = red::acc_t<Red, false>;
  const index_t K = g.K, inner = g.inner;
  [[maybe_unused]] const index_t outputs = g.outer * g.inner;  // read by OpenMP's if clause alone
  const index_t tiles = (inner + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) if (outputs * K > kReduceChunk) firstprivate(read)
  for (index_t t = 0; t < g.outer * tiles; ++t) {
    const auto [o, i0, width] = column_tile(t, tiles, inner);
    Acc acc[kTile];
    for (index_t i = 0; i < width; ++i) acc[i] = red.template init<Acc>();
    for (index_t k = 0; k < K; ++k) {
      const index_t base = (o * K + k) * inner + i0;
      for (index_t i = 0; i < width; ++i) acc[i] = red.accumulate(acc[i], read(base + i), k);
    }
    for (index_t i = 0; i < width; ++i) put(out, o * inner + i0 + i, red.finalize(acc[i], K), add);
  }
}

template <class T, class Red, class Read>
void reduce(T* out, const Red& red, const Read& read, const ReduceGeometry& g, bool add = false) {
  if (g.outer * g.inner == 1)
    reduce_all(out, red, read, g, add);
  else if (g.inner == 1)
    reduce_rows(out, red, read, g, add);
  else
    reduce_columns(out, red, read, g, add);
}

// A SumTo whose kept dimensions end the input (g.inner > 1: a bias gradient, [B, N] → [N]):
// tiles of 64 outputs walk down the summed elements together, as reduce's column case, but
// along a tile only the fastest dimension (the last) moves, so each index is built from one
// division-made start. A tile's row is evaluated into a buffer first, then added to the
// accumulators: two simple loops that vectorise (the evaluation versioned for unit strides, a
// `where` a blend), where one loop mixing the expression with double accumulators stayed
// scalar (a recomputed GELU gradient summed at 17 ns an element).
// The same order of accumulation as reduce: the bits do not depend on the thread count.
template <class T, class Red, class Reader>
FT_CPU_MULTIVERSION FT_CPU_STRIDED_LOOP void sum_to_columns(T* out, const Red& red, const Reader reader,
                                                            const ReduceGeometry g, bool add) {
  using Acc = red::acc_t<Red, false>;
  using I = std::int64_t;
  constexpr int RI = decltype(reader.order)::size();
  using V = std::remove_cvref_t<decltype(reader.ev(std::declval<const CoordIndex<I, RI>&>()))>;
  const index_t K = g.K, inner = g.inner, tiles = (inner + kTile - 1) / kTile;
  const I size_last = static_cast<I>(reader.size[RI - 1]);
  // the fastest dimension is the input's last (else a size-1 dimension ends the input): the
  // tile's loop then moves one coordinate at a place known when compiling, which vectorises
  const bool last_fastest = reader.order[RI - 1] == RI - 1;
#pragma omp parallel for schedule(static) if (g.outer * inner * K > kReduceChunk) firstprivate(reader)
  for (index_t t = 0; t < g.outer * tiles; ++t) {
    const auto [o, i0, width] = column_tile(t, tiles, inner);
    Acc acc[kTile];
    V row[kTile];
    for (index_t i = 0; i < width; ++i) acc[i] = red.template init<Acc>();
    for (index_t k = 0; k < K; ++k) {
      const I L0 = static_cast<I>((o * K + k) * inner + i0);
      CoordIndex<I, RI> start{};
      reader.locate(L0, start);
      const I c0 = start.coord[RI - 1];
      if (last_fastest && c0 + static_cast<I>(width) <= size_last) {
        for (index_t i = 0; i < width; ++i) {
          CoordIndex<I, RI> at = start;  // the last coordinate moves: each leaf reads at a fixed stride
          at.coord[RI - 1] = c0 + static_cast<I>(i);
          row[i] = reader.ev(at);
        }
        for (index_t i = 0; i < width; ++i) acc[i] = red.accumulate(acc[i], row[i], k);
      } else {  // the tile wraps the fastest dimension: step element by element
        for (index_t i = 0; i < width; ++i) acc[i] = red.accumulate(acc[i], reader(L0 + static_cast<I>(i)), k);
      }
    }
    for (index_t i = 0; i < width; ++i) put(out, o * inner + i0 + i, red.finalize(acc[i], K), add);
  }
}

}  // namespace cpu

#if FT_CUDA_ENABLED
namespace gpu {

inline constexpr int kReduceBlock = 256;  // threads a block; 8 warps
inline constexpr int kRowsPerWarpBlock = kReduceBlock / 32;
// Rows up to this long take a warp each (at most 32 elements a lane), longer ones a block (as
// PyTorch's warp softmax); also the cut for the row-wise composites (linalg/rowwise.hpp).
inline constexpr index_t kWarpRowMax = 1024;

// The reduction kernels of one (output type, reducer, reader, index type), behind one launcher.
template <class T, class Red, class Read, class I>
struct ReduceKernel {
  static void launch(T* out, Device dev, const Red& red, const Read& read, const ReduceGeometry& g, bool add);
  template <class Reader>
  static void launch_with(T* out, Device dev, const Red& red, const Reader& read, const ReduceGeometry& g, bool add);
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
#if defined(__CUDA_ARCH__)  // device code: g++ (nvcc's host pass too) knows no such pragma
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

// The scratch of a reduction split over blocks: `tickets` counters, zeroed on the stream (the
// kernel's last block also puts its counter back to 0), and `parts` partials, in one block from
// the stream-ordered pool, released after the launch in stream order.
template <class Acc>
struct SplitScratch {
  static_assert(alignof(Acc) <= 16, "a partial must fit the 16-byte alignment of the partials");
  Tensor<std::uint8_t, 1> work;
  unsigned* tickets;
  Acc* partials;
  SplitScratch(Device dev, index_t n_tickets, index_t parts, cudaStream_t stream) {
    const index_t ticket_bytes = (n_tickets * static_cast<index_t>(sizeof(unsigned)) + 15) / 16 * 16;
    work = Tensor<std::uint8_t, 1>(Shape<1>{ticket_bytes + parts * static_cast<index_t>(sizeof(Acc))}, dev);
    tickets = reinterpret_cast<unsigned*>(work.data());
    partials = reinterpret_cast<Acc*>(work.data() + ticket_bytes);
    FT_CUDA_CHECK(cudaMemsetAsync(tickets, 0, static_cast<std::size_t>(n_tickets) * sizeof(unsigned), stream));
  }
};

// A split reduction launches about this many blocks (enough to fill a GPU: an H200 holds 132 SMs
// × 8 blocks of 256 threads), and no block takes fewer than `least` elements of a reduction.
inline constexpr index_t kSplitBlocks = 1024;
inline constexpr index_t kSplitLeast = 16;  // elements a thread at least: a partial and a ticket are worth it

// Pieces each of `n` reductions of length `len` is cut into. Depends only on the shape, so the
// partition and the combine order (hence the bits of the result) are the same on every GPU.
inline index_t split_count(index_t n, index_t len, index_t least) {
  const index_t by_len = (len + least - 1) / least, by_grid = (kSplitBlocks + n - 1) / n;
  const index_t s = by_len < by_grid ? by_len : by_grid;
  return s > 1 ? s : 1;
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

// Few long rows: row blockIdx.x is cut into gridDim.y pieces of `chunk` elements (piece p takes
// k in [p·chunk, (p + 1)·chunk)); a block reduces its piece in a fixed tree and stores it as
// partial p of the row. The row's last block (a ticket a row, the memory order of
// reduce_all_kernel) combines the pieces in piece order: strided over its threads, then its tree.
template <class Acc, class T, class Red, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    reduce_split_rows_kernel(T* out, Red red, Read read, I K, I chunk, Acc* partials, unsigned* tickets, bool add) {
  using BlockReduce = cub::BlockReduce<Acc, kReduceBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ bool last;
  const I row = static_cast<I>(blockIdx.x);
  const unsigned pieces = gridDim.y;
  Acc* row_partials = partials + static_cast<index_t>(blockIdx.x) * pieces;
  const I k0 = static_cast<I>(blockIdx.y) * chunk, k1 = k0 + chunk < K ? k0 + chunk : K;
  Acc acc = red.template init<Acc>();
  for (I k = k0 + static_cast<I>(threadIdx.x); k < k1; k += kReduceBlock)
    acc = red.accumulate(acc, read(row * K + k), static_cast<index_t>(k));
  Acc piece = BlockReduce(temp).Reduce(acc, CombineOp<Red>{red});
  if (threadIdx.x == 0) {
    row_partials[blockIdx.y] = piece;
    __threadfence();
    const bool is_last = atomicAdd(tickets + blockIdx.x, 1u) == pieces - 1;
    if (is_last) __threadfence();
    last = is_last;
  }
  __syncthreads();
  if (!last) return;
  acc = red.template init<Acc>();
  for (unsigned p = threadIdx.x; p < pieces; p += kReduceBlock) acc = red.combine(acc, load_from_l2(row_partials + p));
  __syncthreads();  // temp is reused
  Acc total = BlockReduce(temp).Reduce(acc, CombineOp<Red>{red});
  if (threadIdx.x == 0) {
    put(out, row, red.finalize(total, static_cast<index_t>(K)), add);
    tickets[blockIdx.x] = 0;
  }
}

// Short reductions over an outer dimension (K < kTiledColumnMin): one thread per output walks
// down k (reads coalesce along i).
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

inline constexpr index_t kTiledColumnMin = 32;  // columns this long or longer take reduce_tiled_cols_kernel

// Longer reductions over an outer dimension ([B·T, C] -> [C]: a bias gradient). A tile is W
// consecutive outputs (o, i0 … i0 + W − 1), W = min(32, inner rounded up to a power of 2); the
// block's thread (y, x) = (threadIdx.x / W, threadIdx.x % W) takes column i0 + x and, of the rows
// of chunk blockIdx.y (k in [c·chunk, (c + 1)·chunk)), every R-th from k = c·chunk + y, R = 256 / W
// (loads coalesce along x). The R row lanes of a column combine in a fixed tree in shared memory.
// With one chunk that is the output; otherwise it is the chunk's partial of the tile, and the
// tile's last block (a ticket a tile) combines the chunks in order: lane y takes chunks y, y + R …,
// then the same tree. Blocks stride over the tiles (a grid-stride loop), so any grid is correct.
template <class Acc, class T, class Red, class Read, class I>
__global__ void __launch_bounds__(kReduceBlock)
    reduce_tiled_cols_kernel(T* out, Red red, Read read, I K, I inner, int log2w, I tiles_per_outer, I tiles, I chunk,
                             Acc* partials, unsigned* tickets, bool add) {
  __shared__ alignas(Acc) unsigned char lanes_raw[kReduceBlock * sizeof(Acc)];  // raw: Acc may have constructors
  __shared__ bool last;
  Acc* lanes = reinterpret_cast<Acc*>(lanes_raw);
  const unsigned W = 1u << log2w, R = kReduceBlock >> log2w;
  const unsigned x = threadIdx.x & (W - 1), y = threadIdx.x >> log2w;
  const unsigned chunks = gridDim.y;
  // lane (y, x) holds v; returns the combine of column x's R lanes, in every thread of the column
  auto column_tree = [&](Acc v) {
    lanes[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = R / 2; s > 0; s /= 2) {
      if (y < s) lanes[threadIdx.x] = red.combine(lanes[threadIdx.x], lanes[threadIdx.x + s * W]);
      __syncthreads();
    }
    return lanes[x];
  };
  const I k0 = static_cast<I>(blockIdx.y) * chunk, k1 = k0 + chunk < K ? k0 + chunk : K;
  for (I tile = static_cast<I>(blockIdx.x); tile < tiles; tile += static_cast<I>(gridDim.x)) {
    const I o = tile / tiles_per_outer, i = (tile - o * tiles_per_outer) * static_cast<I>(W) + static_cast<I>(x);
    const bool in_range = i < inner;  // the last tile of a row of outputs may be partial
    Acc acc = red.template init<Acc>();
    if (in_range)
      for (I k = k0 + static_cast<I>(y); k < k1; k += static_cast<I>(R))
        acc = red.accumulate(acc, read((o * K + k) * inner + i), static_cast<index_t>(k));
    acc = column_tree(acc);
    if (chunks == 1) {
      if (y == 0 && in_range) put(out, o * inner + i, red.finalize(acc, static_cast<index_t>(K)), add);
    } else {
      Acc* tile_partials = partials + static_cast<index_t>(tile) * chunks * W;
      if (y == 0 && in_range) {
        tile_partials[blockIdx.y * W + x] = acc;
        __threadfence();  // every writer fences (as PyTorch's reductions), and thread 0 again after the barrier
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        __threadfence();
        const bool is_last = atomicAdd(tickets + tile, 1u) == chunks - 1;
        if (is_last) __threadfence();
        last = is_last;
      }
      __syncthreads();
      if (last) {  // uniform across the block: column_tree's barriers are safe
        acc = red.template init<Acc>();
        if (in_range)
          for (unsigned c = y; c < chunks; c += R) acc = red.combine(acc, load_from_l2(tile_partials + c * W + x));
        acc = column_tree(acc);
        if (y == 0 && in_range) put(out, o * inner + i, red.finalize(acc, static_cast<index_t>(K)), add);
        if (threadIdx.x == 0) tickets[tile] = 0;
      }
    }
    __syncthreads();  // lanes and `last` are reused by the next tile
  }
}

template <class T, class Red, class Read, class I>
void ReduceKernel<T, Red, Read, I>::launch(T* out, Device dev, const Red& red, const Read& reader,
                                           const ReduceGeometry& g, bool add) {
  // (a reader over a very long statement goes through a pointer: with_kernel_argument)
  with_kernel_argument(reader, dev.index, [&](const auto& read) { launch_with(out, dev, red, read, g, add); });
}

template <class T, class Red, class Read, class I>
template <class Reader>
void ReduceKernel<T, Red, Read, I>::launch_with(T* out, Device dev, const Red& red, const Reader& read,
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
    SplitScratch<Acc> scratch(dev, 1, blocks, stream);
    reduce_all_kernel<Acc, T><<<blocks, kReduceBlock, 0, stream>>>(out, red, read, static_cast<I>(g.K),
                                                                   scratch.partials, scratch.tickets, add);
  } else if (g.inner == 1) {
    if (g.K <= kWarpRowMax) {
      reduce_rows_kernel<true, Acc, T>
          <<<blocks_for((g.outer + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock), kReduceBlock, 0, stream>>>(
              out, red, read, static_cast<I>(g.outer), static_cast<I>(g.K), add);
    } else if (const index_t pieces = split_count(g.outer, g.K, kSplitLeast * kReduceBlock); pieces == 1) {
      // enough rows to fill the GPU a block each
      reduce_rows_kernel<false, Acc, T><<<blocks_for(g.outer), kReduceBlock, 0, stream>>>(
          out, red, read, static_cast<I>(g.outer), static_cast<I>(g.K), add);
    } else {  // few long rows ([3, 10^6]): pieces > 1 only when outer < kSplitBlocks (a grid.x)
      SplitScratch<Acc> scratch(dev, g.outer, g.outer * pieces, stream);
      const dim3 grid(static_cast<unsigned>(g.outer), static_cast<unsigned>(pieces));
      reduce_split_rows_kernel<Acc, T><<<grid, kReduceBlock, 0, stream>>>(out, red, read, static_cast<I>(g.K),
                                                                          static_cast<I>((g.K + pieces - 1) / pieces),
                                                                          scratch.partials, scratch.tickets, add);
    }
  } else if (g.K < kTiledColumnMin) {
    reduce_cols_kernel<Acc, T><<<blocks_for((outputs + kReduceBlock - 1) / kReduceBlock), kReduceBlock, 0, stream>>>(
        out, red, read, static_cast<I>(g.outer), static_cast<I>(g.K), static_cast<I>(g.inner), add);
  } else {
    int log2w = 1;  // inner >= 2 here
    while (log2w < 5 && (index_t(1) << log2w) < g.inner) ++log2w;
    const index_t W = index_t(1) << log2w, R = kReduceBlock / W;
    const index_t tiles_per_outer = (g.inner + W - 1) / W, tiles = g.outer * tiles_per_outer;
    const index_t chunks = split_count(tiles, g.K, kSplitLeast * R);  // > 1 only when tiles < kSplitBlocks
    const dim3 grid(blocks_for(tiles), static_cast<unsigned>(chunks));
    std::optional<SplitScratch<Acc>> scratch;
    if (chunks > 1) scratch.emplace(dev, tiles, tiles * chunks * W, stream);
    reduce_tiled_cols_kernel<Acc, T><<<grid, kReduceBlock, 0, stream>>>(
        out, red, read, static_cast<I>(g.K), static_cast<I>(g.inner), log2w, static_cast<I>(tiles_per_outer),
        static_cast<I>(tiles), static_cast<I>((g.K + chunks - 1) / chunks), scratch ? scratch->partials : nullptr,
        scratch ? scratch->tickets : nullptr, add);
  }
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS

}  // namespace gpu
#endif

// Runs `cpu_body(read)` or `gpu_body(read)` with the reader of the input expression that its
// leaves allow (dense linear or coordinates; 32- or 64-bit on the GPU). Counts one launch.
// Stepping: a CPU body that gives each thread its own copy of the reader and reads consecutive
// elements (cpu::reduce, cpu::sum_to_columns) gets, for a non-dense input, the SteppingReader
// itself, which steps the coordinates instead of dividing for each element (a broadcast mean
// or rstd made layer_norm's backward reductions 40 times slower than a dense sum). Other
// bodies share one reader between threads, so theirs keeps no state.
template <bool Stepping = false, class E, class CpuBody, class GpuBody>
void with_reader(const E& e, Device dev, CpuBody&& cpu_body, GpuBody&& gpu_body) {
  constexpr int RI = E::rank;
  ft::detail::EvaluationScope scope;  // joins the statement's evaluation, or opens one
  Plan plan;
  plan_leaves(plan, e.shape().numel(), e);
  if (dev.is_cpu()) {
    stats::detail::record_launch(kCPU);
    auto go = [&]<bool D>() {
      auto ev = e.evaluator(make_context(e.shape()));
      ElementReader<std::int64_t, RI, D, decltype(ev)> read{ev, e.shape()};
      cpu_body([read](index_t L) { return read(static_cast<std::int64_t>(L)); });
    };
    if (plan.dense) {
      go.template operator()<true>();
    } else if constexpr (Stepping) {
      EvalContext ctx = make_context(e.shape());
      ctx.numel = -1;  // no leaf has this many elements, so each reads by coordinates
      auto ev = e.evaluator(ctx);
      SteppingReader<std::int64_t, RI, decltype(ev)> read{ev, contiguous_strides(e.shape()), e.shape(), {}};
      for (int p = 0; p < RI; ++p) read.order[p] = p;
      cpu_body(read);  // the reader itself: a column reduction builds its rows from it
    } else {
      go.template operator()<false>();
    }
    cpu::raise_reports();
  } else {
#if FT_CUDA_ENABLED
    auto ev = e.evaluator(make_context(e.shape()));
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

// The order in which a SteppingReader walks the input's dimensions: slowest first; of equal
// strides (a size-1 dimension beside another) the larger size last. (Of the rank only: a sort
// in sum_dims_into was a std::sort per expression type, 15 functions each at -O0.)
template <int RI>
Array<int, RI> stepping_order(const Array<index_t, RI>& vstride, const Shape<RI>& s) {
  Array<int, RI> order;
  for (int p = 0; p < RI; ++p) order[p] = p;
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return vstride[a] != vstride[b] ? vstride[a] > vstride[b] : s[a] < s[b]; });
  return order;
}

// Sums `e` over its dimensions marked in `summed` into the contiguous `out` on `dev` (kept
// dimensions in order): SumTo's launch. Of the output it depends only on whether it is one
// value (ToScalar: one loop of the three), not on its rank or node type, so that the
// gradients of a statement's operands of different ranks (x and a bias it broadcasts,
// SumTo<g, 2> and SumTo<g, 1>) share one set of loops.
template <bool ToScalar, class T, class E>
void sum_dims_into(T* out, Device dev, const E& e, const bool (&summed)[E::rank > 0 ? E::rank : 1], bool add) {
  constexpr int RI = E::rank;
  const auto& s = e.shape();
  Array<index_t, RI> vstride;
  const ReduceGeometry g = sum_to_geometry(s, summed, vstride);
  using Red = red::Sum<typename E::value_type, 0>;
  Plan plan;
  plan_leaves(plan, s.numel(), e);
  stats::detail::record_launch(dev);
  if (dev.is_cpu() && plan.dense && vstride == contiguous_strides(s)) {
    // the summed dimensions lead (a bias gradient [B, N] → [N]) and every leaf is dense: the
    // input in its own order, read by linear index (5 times faster than by coordinates)
    auto ev = e.evaluator(make_context(s));
    ElementReader<std::int64_t, RI, true, decltype(ev)> read{ev, s};
    const auto at = [read](index_t L) { return read(static_cast<std::int64_t>(L)); };
    if constexpr (ToScalar)  // (one value: the other loops cannot occur)
      cpu::reduce_all(out, Red{}, at, g, add);
    else
      cpu::reduce(out, Red{}, at, g, add);
    cpu::raise_reports();
    return;
  }
  EvalContext ctx = make_context(s);
  ctx.numel = -1;  // no leaf has this many elements, so each reads by coordinates
  auto ev = e.evaluator(ctx);
  if (dev.is_cpu()) {
    SteppingReader<std::int64_t, RI, decltype(ev)> read{ev, vstride, s, stepping_order(vstride, s)};
    if constexpr (RI > 0 && !ToScalar) {
      if (g.inner > 1) {
        cpu::sum_to_columns(out, Red{}, read, g, add);
        cpu::raise_reports();
        return;
      }
    }
    // (columns, g.inner > 1, went to sum_to_columns: one long sum or rows, two of reduce's three loops)
    const auto at = [read](index_t L) { return read(static_cast<std::int64_t>(L)); };
    if (ToScalar || g.outer * g.inner == 1)
      cpu::reduce_all(out, Red{}, at, g, add);
    else if constexpr (!ToScalar)
      cpu::reduce_rows(out, Red{}, at, g, add);
    cpu::raise_reports();
  } else {
#if FT_CUDA_ENABLED
    cuda::DeviceGuard guard(dev);
    auto go = [&]<class I>() {
      gpu::PermutedDeviceReader<I, RI, decltype(ev)> read{ev, {}, {}};
      for (int p = 0; p < RI; ++p) {
        read.vstride[p] = FastDivmod<I>(static_cast<I>(vstride[p]));
        read.size[p] = FastDivmod<I>(static_cast<I>(s[p] > 0 ? s[p] : 1));
      }
      gpu::reduce<T, Red, decltype(read), I>(out, dev, Red{}, read, g, add);
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

// Runs SumTo `node` into the contiguous `dst` of its shape: one launch.
template <class T, int R, class Node>
void run_sum_to(const Tensor<T, R>& dst, const Node& node, bool add = false) {
  const auto& e = node.input();
  constexpr int RI = std::remove_cvref_t<decltype(e)>::rank;
  if (dst.numel() == 0) return;
  ft::detail::EvaluationScope scope;
  bool summed[RI > 0 ? RI : 1] = {};
  for (int j = 0; j < RI; ++j) summed[j] = j < RI - R || node.shape()[j - (RI - R)] == 1;
  sum_dims_into<R == 0>(dst.data(), dst.device(), e, summed, add);
}

// Runs reduction `node` into the contiguous tensor `dst` of its shape: one launch.
template <class T, int OR, class Node>
void run_reduce(const Tensor<T, OR>& dst, const Node& node) {
  if (dst.numel() == 0) return;
  const auto& e = node.input();
  const ReduceGeometry g = reduce_geometry(e.shape(), node.dim());
  const Device dev = dst.device();
  with_reader<true>(
      e, dev,
      [&](const auto& read) {
        if constexpr (OR == 0) {  // everything into one value: the other loops cannot occur
          cpu::reduce_all(dst.data(), node.reducer(), read, g, false);
        } else {
          if constexpr (requires { read.order; }) {  // a non-dense input, read by coordinates
            if (g.inner > 1 && g.K > 0) {            // columns: a tile's row at a time, which vectorises
              cpu::sum_to_columns(dst.data(), node.reducer(), read, g, false);
              return;
            }
          }
          cpu::reduce(dst.data(), node.reducer(), read, g);
        }
      },
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
