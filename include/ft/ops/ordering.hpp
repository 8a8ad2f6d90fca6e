// Ordering and scans, as PyTorch 1.13: sort, argsort, topk, kthvalue, unique (the ordering
// family) and cumsum, cumprod, cummax, cummin, logcumsumexp (the scans), with their gradients.
//
// All are materialisation boundaries along one dimension: the (fused) input expression is read
// once, as rows of the input viewed as [outer, K, inner] (exec/reduce.hpp's geometry), and the
// results are new contiguous tensors.
//   - Order: every sort is stable (ties keep increasing index, for descending too), NaN is the
//     largest value and −0 equals +0, as torch. Both devices sort the same integer keys
//     (ordered_key: the value's bits mapped so that unsigned order is the value order), so they
//     give the same indices. CPU: a row a thread (std::sort / partial_sort / nth_element on
//     (key, index) pairs: a total order, hence the stable result); fewer long rows than threads
//     are sorted in parts by every thread, then merged. CUDA: CUB's stable segmented
//     sort of whole rows (topk and kthvalue too, then keep their part), between a kernel that
//     makes the keys and one that writes the kept values, indices and inverse positions.
//   - Scans: sums and products of floats accumulate in double, of integers and bools in int64
//     (the result is int64, as torch). CPU: a row a thread, in order; a row of kScanLong or
//     more elements a chunk at a time, in parallel (chunk totals, then each chunk from the
//     totals before it). CUDA: a block a row, cub::BlockScan over tiles of 1024 elements. The
//     order of the combines is fixed by the shape, so results are bit-identical run after run
//     and on any thread count (no atomics anywhere).
//   - Gradients (Var overloads, one tape node each): sort, topk and kthvalue gather the output's
//     gradient through the inverse positions saved by the forward; cummax/cummin sum the
//     gradient over the run of outputs that picked each input; cumsum's is the reversed cumsum;
//     cumprod's is torch's formula, right with zeros; logcumsumexp's is torch's.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/generator.hpp"
#include "ft/expr/math.hpp"
#include "ft/ops/elementwise.hpp"

#if FT_CUDA_ENABLED
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/cuda.hpp"
#endif
#if FT_CUDA_KERNELS
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>
#endif

namespace ft::inline FT_ABI {

// (values, indices) of sort, topk, kthvalue, cummax and cummin, as torch's named tuples:
// `auto [v, i] = ft::sort(x);`. V is Tensor, or Var for the overloads on Vars.
template <class T, int R, template <class, int> class V = Tensor>
struct SortResult {
  V<T, R> values;
  Tensor<std::int64_t, R> indices;
};

// torch.unique's results: the sorted distinct values, and when asked for, the index of each
// input element's value among them (the input's shape) and how often each occurs.
template <class T, int R>
struct UniqueResult {
  Tensor<T, 1> values;
  Tensor<std::int64_t, R> inverse;  // undefined unless return_inverse
  Tensor<std::int64_t, 1> counts;   // undefined unless return_counts
};

namespace ordering {

// ---- keys: the value order as unsigned integer order ----
template <class T>
using key_t = std::conditional_t<
    sizeof(T) == 8, std::uint64_t,
    std::conditional_t<sizeof(T) == 4, std::uint32_t, std::conditional_t<sizeof(T) == 2, std::uint16_t, std::uint8_t>>>;

// The key of v: ascending unsigned order is ascending value order with every NaN one value
// above +inf and −0 = +0 (torch's order); descending flips the bits.
template <class T>
FT_HD FT_INLINE key_t<T> ordered_key(T v, bool descending) {
  using U = key_t<T>;
  constexpr U sign = static_cast<U>(U(1) << (sizeof(U) * 8 - 1));
  U u;
  if constexpr (std::is_same_v<T, bool>) {
    u = v ? 1 : 0;
  } else if constexpr (is_floating_v<T>) {
    // the two-byte types too: their bits order as float's
    if (math::isnan(v)) v = std::numeric_limits<T>::quiet_NaN();  // one NaN: the largest value
    if (v == T(0.0f)) v = T(0.0f);                                // −0 sorts as +0
    memcpy(&u, &v, sizeof(U));
    u = (u & sign) ? static_cast<U>(~u) : static_cast<U>(u | sign);  // negatives reversed, below positives
  } else if constexpr (std::is_signed_v<T>) {
    u = static_cast<U>(static_cast<U>(v) ^ sign);
  } else {
    u = static_cast<U>(v);
  }
  return descending ? static_cast<U>(~u) : u;
}

// unique: equal keys are one value, except NaNs, each its own (torch: NaN != NaN).
template <class T>
FT_HD FT_INLINE bool same_value(key_t<T> a, key_t<T> b) {
  if constexpr (is_floating_v<T>)
    return a == b && a != ordered_key<T>(std::numeric_limits<T>::quiet_NaN(), false);
  else
    return a == b;
}

// The rows along `dim` of a rank-R shape (rank 0: one row of one element).
template <int R>
exec::ReduceGeometry rows_of(const Shape<R>& s, int dim) {
  if constexpr (R == 0)
    return {};
  else
    return exec::reduce_geometry(s, dim);
}

// Which sorted positions of each row an op keeps: [first, first + count), in order.
struct Selection {
  index_t first = 0, count = 0;
  bool descending = false;
};

// ---- scans: what an element contributes (lift), how two partial results combine (in order:
// a before b; associative) and the output value ----

// cumsum (Prod = false) and cumprod: floats (the two-byte types too) in double, integers and
// bools in int64.
template <class T, bool Prod>
struct CumArith {
  using Acc = std::conditional_t<is_floating_v<T>, double, std::int64_t>;
  using Out = std::conditional_t<is_floating_v<T>, T, std::int64_t>;
  static constexpr bool has_index = false;
  FT_HD FT_INLINE static Acc lift(T x, index_t) { return static_cast<Acc>(x); }
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) { return Prod ? a * b : a + b; }
  FT_HD FT_INLINE static Out value(Acc a) { return static_cast<Out>(a); }
};

// logcumsumexp: log(exp(a) + exp(b)) as torch's _log_add_exp_helper (equal infinities stay).
// A two-byte type's running value is kept in float.
template <class T>
struct CumLogSumExp {
  using Acc = compute_t<T>;
  using Out = T;
  static constexpr bool has_index = false;
  FT_HD FT_INLINE static Acc lift(T x, index_t) { return static_cast<Acc>(x); }
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    const Acc lo = math::isnan(a) ? a : (a < b ? a : b), hi = math::isnan(a) ? a : (b < a ? a : b);
    if (lo != hi || (lo - lo == Acc(0))) return math::log1p(math::exp(lo - hi)) + hi;  // lo − lo: finite
    return b;
  }
  FT_HD FT_INLINE static Out value(Acc a) { return static_cast<Out>(a); }
};

// cummax (IsMax) and cummin: the extreme so far and its index; a later equal value or a NaN
// takes over (torch: the last index of equal extremes; NaN propagates).
template <class T, bool IsMax>
struct CumExtreme {
  using Acc = red::ValueIndex<T>;
  using Out = T;
  static constexpr bool has_index = true;
  FT_HD FT_INLINE static Acc lift(T x, index_t k) { return {x, k}; }
  FT_HD FT_INLINE static Acc combine(Acc a, Acc b) {
    const bool take =
        math::isnan(b.value) || (!math::isnan(a.value) && (IsMax ? !(b.value < a.value) : !(a.value < b.value)));
    return take ? b : a;
  }
  FT_HD FT_INLINE static Out value(Acc a) { return a.value; }
};

// ---- CPU: a row a thread. Nothing here vectorises (a sort, a sequential scan), so the loops
// are compiled once, not multiversioned. ----
namespace cpu {

// A small topk (count ≤ kSmallSelection, from the first) keeps its best keys so far in a sorted
// array: most elements cost one comparison with the worst kept, instead of a partial sort.
inline constexpr index_t kSmallSelection = 16;

// The `count` smallest (key, position) pairs of row (o, i) in order — what the stable sort's
// first `count` are, as a later position never displaces an equal key — written out.
// `keys` is room for the row's K keys: made first in a loop of their own (which vectorises),
// then scanned.
template <class T, class Read, class U>
void select_smallest(T* values, std::int64_t* indices, std::int64_t* inverse, const Read& read, index_t count,
                     index_t K, index_t o, index_t inner, index_t i, bool descending, U* keys) {
  const index_t base = o * K * inner + i;
  for (index_t k = 0; k < K; ++k) keys[k] = ordered_key<T>(static_cast<T>(read(base + k * inner)), descending);
  std::pair<U, index_t> kept[kSmallSelection];
  index_t n = 0;
  for (index_t k = 0; k < K; ++k) {
    const U key = keys[k];
    if (n == count && !(key < kept[n - 1].first)) continue;
    index_t j = n < count ? n++ : n - 1;  // the slot it enters from: a new one, or the worst's
    for (; j > 0 && key < kept[j - 1].first; --j) kept[j] = kept[j - 1];
    kept[j] = {key, k};
  }
  if (inverse)
    for (index_t k = 0; k < K; ++k) inverse[base + k * inner] = -1;
  for (index_t j = 0; j < count; ++j) {
    const index_t m = kept[j].second, out = (o * count + j) * inner + i;
    values[out] = static_cast<T>(read(base + m * inner));
    indices[out] = m;
    if (inverse) inverse[base + m * inner] = j;
  }
}

// A whole sort of fewer rows than threads, each of at least kLongSort elements, uses every
// thread on each row: its (key, index) pairs sorted in one part a thread, then the sorted parts
// merged pairwise. The pairs are totally ordered, so this is the one sort's result.
inline constexpr index_t kLongSort = 1 << 16;

template <class T, class Read>
void sort_long_rows(T* values, std::int64_t* indices, std::int64_t* inverse, const Read& read,
                    const exec::ReduceGeometry& g, bool descending, int parts) {
  using Pair = std::pair<key_t<T>, index_t>;
  const index_t K = g.K, inner = g.inner, rows = g.outer * g.inner;
  std::vector<Pair> row(static_cast<std::size_t>(K)), merged(static_cast<std::size_t>(K));
  std::vector<index_t> bound(static_cast<std::size_t>(parts) + 1);
  for (int p = 0; p <= parts; ++p) bound[p] = K * p / parts;
  for (index_t r = 0; r < rows; ++r) {
    const index_t base = r / inner * K * inner + r % inner;
#pragma omp parallel for schedule(static, 1) num_threads(parts)
    for (int p = 0; p < parts; ++p) {
      for (index_t k = bound[p]; k < bound[p + 1]; ++k)
        row[k] = {ordered_key<T>(static_cast<T>(read(base + k * inner)), descending), k};
      std::sort(row.begin() + bound[p], row.begin() + bound[p + 1]);
    }
    for (int width = 1; width < parts; width *= 2) {  // runs of `width` parts merged in pairs
#pragma omp parallel for schedule(static, 1) num_threads(parts)
      for (int p = 0; p < parts; p += 2 * width) {
        const auto at = [&](int q) { return row.begin() + bound[std::min(q, parts)]; };
        std::merge(at(p), at(p + width), at(p + width), at(p + 2 * width), merged.begin() + bound[p]);
      }
      row.swap(merged);
    }
#pragma omp parallel for schedule(static) num_threads(parts)
    for (index_t j = 0; j < K; ++j) {
      const index_t m = row[j].second;
      values[base + j * inner] = static_cast<T>(read(base + m * inner));
      indices[base + j * inner] = m;
      if (inverse) inverse[base + m * inner] = j;
    }
  }
}

template <class T, class Read>
void sort_rows(T* values, std::int64_t* indices, std::int64_t* inverse, const Read& read, const exec::ReduceGeometry& g,
               const Selection& sel) {
  using U = key_t<T>;
  const index_t K = g.K, inner = g.inner, rows = g.outer * g.inner;
  if (const int parts = exec::cpu::num_threads();
      parts > 1 && rows < parts && K >= kLongSort && sel.first == 0 && sel.count == K)
    return sort_long_rows(values, indices, inverse, read, g, sel.descending, parts);
#pragma omp parallel if (rows * K > exec::cpu::kParallelGrain)
  {
    std::vector<std::pair<U, index_t>> row(static_cast<std::size_t>(K));
    std::vector<U> keys(static_cast<std::size_t>(K));
#pragma omp for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      const index_t o = r / inner, i = r % inner, base = o * K * inner + i;
      if (sel.first == 0 && sel.count > 0 && sel.count < K && sel.count <= kSmallSelection) {
        select_smallest(values, indices, inverse, read, sel.count, K, o, inner, i, sel.descending, keys.data());
        continue;
      }
      for (index_t k = 0; k < K; ++k)
        row[k] = {ordered_key<T>(static_cast<T>(read(base + k * inner)), sel.descending), k};
      // (key, index) pairs are totally ordered: any of these gives the stable sort's positions
      const auto first = row.begin() + sel.first, last = first + sel.count;
      if (sel.count == K)
        std::sort(row.begin(), row.end());
      else if (sel.count == 1)
        std::nth_element(row.begin(), first, row.end());
      else if (sel.first == 0)
        std::partial_sort(row.begin(), last, row.end());
      for (index_t j = 0; j < sel.count; ++j) {
        const index_t m = row[sel.first + j].second, out = (o * sel.count + j) * inner + i;
        values[out] = static_cast<T>(read(base + m * inner));
        indices[out] = m;
      }
      if (inverse)
        for (index_t j = 0; j < K; ++j)
          inverse[base + row[j].second * inner] = j >= sel.first && j < sel.first + sel.count ? j - sel.first : -1;
    }
  }
}

// Rows of at least kScanLong elements are scanned a chunk at a time, so that one long row uses
// every thread: chunks of kScanChunk elements (a fixed size: the result does not depend on the
// thread count), each chunk's total first, then each chunk scanned from the combination of the
// totals before it. Both passes run kScanLanes chunks in one loop, their dependency chains
// (a double add's latency per element) side by side.
inline constexpr index_t kScanChunk = 4096, kScanLanes = 4, kScanLong = 4 * kScanChunk;

// Chunks c0, …, c0 + L − 1 of the row at `base` (`len` elements each), each lane from acc[l]
// (or from its first element, where fresh[l]); writes the running values when Write. u is the
// position in scan order, k the position along the row.
template <class Op, bool Write, int L, class Read>
FT_INLINE void scan_lanes(typename Op::Out* out, std::int64_t* indices, const Read& read, index_t base, index_t K,
                          index_t inner, bool reverse, index_t c0, index_t len, typename Op::Acc (&acc)[L],
                          const bool (&fresh)[L]) {
  using T = std::remove_cvref_t<decltype(read(index_t(0)))>;
  for (index_t t = 0; t < len; ++t)
    for (int l = 0; l < L; ++l) {
      const index_t u = (c0 + l) * kScanChunk + t, k = reverse ? K - 1 - u : u, at = base + k * inner;
      const auto a = Op::lift(static_cast<T>(read(at)), k);
      acc[l] = t == 0 && fresh[l] ? a : Op::combine(acc[l], a);
      if constexpr (Write) {
        out[at] = Op::value(acc[l]);
        if constexpr (Op::has_index) indices[at] = acc[l].index;
      }
    }
}

// One pass over every chunk of every row: totals (Write = false: acc[c] = chunk c's total) or
// the outputs (Write: chunk c scanned from acc[c], chunk 0 of a row fresh). Work item i of a
// row is kScanLanes whole chunks while there are that many, then one chunk.
template <class Op, bool Write, class Read>
void scan_chunk_pass(typename Op::Out* out, std::int64_t* indices, const Read& read, const exec::ReduceGeometry& g,
                     bool reverse, typename Op::Acc* acc) {
  using Acc = typename Op::Acc;
  constexpr index_t L = kScanLanes;
  const index_t K = g.K, inner = g.inner, rows = g.outer * g.inner;
  const index_t chunks = (K + kScanChunk - 1) / kScanChunk, whole = K / kScanChunk, groups = whole / L;
  const index_t items = groups + (chunks - groups * L);
#pragma omp parallel for schedule(static)
  for (index_t q = 0; q < rows * items; ++q) {
    const index_t r = q / items, i = q % items, base = r / inner * K * inner + r % inner;
    Acc* row_acc = acc + r * chunks;
    if (i < groups) {
      Acc a[L];
      bool fresh[L];
      for (index_t l = 0; l < L; ++l) {
        a[l] = row_acc[i * L + l];
        fresh[l] = !Write || i * L + l == 0;
      }
      scan_lanes<Op, Write>(out, indices, read, base, K, inner, reverse, i * L, kScanChunk, a, fresh);
      if constexpr (!Write)
        for (index_t l = 0; l < L; ++l) row_acc[i * L + l] = a[l];
    } else {
      const index_t c = groups * L + (i - groups);
      Acc a[1] = {row_acc[c]};
      const bool fresh[1] = {!Write || c == 0};
      scan_lanes<Op, Write>(out, indices, read, base, K, inner, reverse, c, std::min(kScanChunk, K - c * kScanChunk), a,
                            fresh);
      if constexpr (!Write) row_acc[c] = a[0];
    }
  }
}

template <class Op, class Read>
void scan_rows(typename Op::Out* out, std::int64_t* indices, const Read& read, const exec::ReduceGeometry& g,
               bool reverse) {
  using Acc = typename Op::Acc;
  const index_t K = g.K, inner = g.inner, rows = g.outer * g.inner;
  if (K >= kScanLong) {
    const index_t chunks = (K + kScanChunk - 1) / kScanChunk;
    std::vector<Acc> acc(static_cast<std::size_t>(rows * chunks));
    scan_chunk_pass<Op, false>(out, indices, read, g, reverse, acc.data());
    for (index_t r = 0; r < rows; ++r) {  // chunk c starts from the totals of chunks 0 … c − 1
      Acc* a = acc.data() + r * chunks;
      Acc before = a[0];
      for (index_t c = 1; c < chunks; ++c) {
        const Acc total = a[c];
        a[c] = before;
        before = Op::combine(before, total);
      }
    }
    scan_chunk_pass<Op, true>(out, indices, read, g, reverse, acc.data());
    return;
  }
#pragma omp parallel for schedule(static) if (rows * K > exec::cpu::kParallelGrain)
  for (index_t r = 0; r < rows; ++r) {  // the whole row as one lane from position 0
    Acc acc[1] = {};
    const bool fresh[1] = {true};
    scan_lanes<Op, true>(out, indices, read, r / inner * K * inner + r % inner, K, inner, reverse, 0, K, acc, fresh);
  }
}

}  // namespace cpu

// ---- CUDA ----
#if FT_CUDA_ENABLED
namespace gpu {

// Sorts each row's keys with their positions (CUB's stable segmented sort) and writes the
// selected positions' values and indices (and the inverse positions, when asked for).
template <class T, class Read, class I>
struct SortKernel {
  static void launch(Device dev, T* values, std::int64_t* indices, std::int64_t* inverse, const Read& read,
                     const exec::ReduceGeometry& g, const Selection& sel);
};
// The inclusive scan `Op` of each row (reversed: from the end), a block a row.
template <class Op, class Read, class I>
struct ScanKernel {
  static void launch(Device dev, typename Op::Out* out, std::int64_t* indices, const Read& read,
                     const exec::ReduceGeometry& g, bool reverse);
};
// unique, first half: the n keys of x sorted with their positions, and group[j] = the 1-based
// number of the distinct value at sorted position j (an inclusive scan of "a new value starts").
template <class T>
struct UniqueSortKernel {
  static void launch(Device dev, const T* x, index_t n, std::int64_t* positions, std::int64_t* group);
};
// unique, second half (after the host has read the number of values): the values, the inverse
// (input position → value number) and the counts.
template <class T>
struct UniqueWriteKernel {
  static void launch(Device dev, T* values, std::int64_t* inverse, std::int64_t* counts, const T* x,
                     const std::int64_t* positions, const std::int64_t* group, index_t n, index_t n_values);
};

#if FT_CUDA_KERNELS
using exec::gpu::kBlock;

template <class T, class Read, class I>
__global__ void __launch_bounds__(kBlock)
    sort_load_kernel(key_t<T>* keys, int* positions, int* offsets, Read read, I rows, I K, I inner, bool descending) {
  const I n = rows * K, stride = static_cast<I>(gridDim.x) * kBlock;
  for (I L = static_cast<I>(blockIdx.x) * kBlock + threadIdx.x; L < n; L += stride) {
    const I r = L / K, k = L - r * K, o = r / inner, i = r - o * inner;
    keys[L] = ordered_key<T>(static_cast<T>(read(o * K * inner + k * inner + i)), descending);
    positions[L] = static_cast<int>(k);
  }
  for (I r = static_cast<I>(blockIdx.x) * kBlock + threadIdx.x; r <= rows; r += stride)
    offsets[r] = static_cast<int>(r * K);
}

template <class T, class Read, class I>
__global__ void __launch_bounds__(kBlock)
    sort_write_kernel(T* values, std::int64_t* indices, std::int64_t* inverse, const int* sorted, Read read, I rows,
                      I K, I inner, I first, I count) {
  const I n = rows * K, stride = static_cast<I>(gridDim.x) * kBlock;
  for (I L = static_cast<I>(blockIdx.x) * kBlock + threadIdx.x; L < n; L += stride) {
    const I r = L / K, j = L - r * K, o = r / inner, i = r - o * inner, base = o * K * inner + i;
    const I m = static_cast<I>(sorted[L]);
    const bool kept = j >= first && j < first + count;
    if (kept) {
      const I out = (o * count + j - first) * inner + i;
      values[out] = static_cast<T>(read(base + m * inner));
      indices[out] = m;
    }
    if (inverse) inverse[base + m * inner] = kept ? static_cast<std::int64_t>(j - first) : -1;
  }
}

template <class T, class Read, class I>
void SortKernel<T, Read, I>::launch(Device dev, T* values, std::int64_t* indices, std::int64_t* inverse,
                                    const Read& read, const exec::ReduceGeometry& g, const Selection& sel) {
  using U = key_t<T>;
  cudaStream_t stream = cuda::current_stream();
  const index_t rows = g.outer * g.inner, n = rows * g.K;
  Tensor<std::uint8_t, 1> keys(Shape<1>{2 * n * static_cast<index_t>(sizeof(U))}, dev);  // in, out
  Tensor<int, 1> work(Shape<1>{2 * n + rows + 1}, dev);  // positions in, positions out, row offsets
  U *keys_in = reinterpret_cast<U*>(keys.data()), *keys_out = keys_in + n;
  int *pos_in = work.data(), *pos_out = pos_in + n, *offsets = pos_out + n;
  const unsigned blocks = exec::gpu::grid_for(n > rows ? n : rows + 1, dev.index);
  sort_load_kernel<T><<<blocks, kBlock, 0, stream>>>(keys_in, pos_in, offsets, read, static_cast<I>(rows),
                                                     static_cast<I>(g.K), static_cast<I>(g.inner), sel.descending);
  FT_CUDA_CHECK(cudaGetLastError());
  std::size_t temp_bytes = 0;
  FT_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairs(nullptr, temp_bytes, keys_in, keys_out, pos_in, pos_out,
                                                          static_cast<int>(n), static_cast<int>(rows), offsets,
                                                          offsets + 1, stream));
  Tensor<std::uint8_t, 1> temp(Shape<1>{static_cast<index_t>(temp_bytes) + 1}, dev);
  FT_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairs(temp.data(), temp_bytes, keys_in, keys_out, pos_in, pos_out,
                                                          static_cast<int>(n), static_cast<int>(rows), offsets,
                                                          offsets + 1, stream));
  sort_write_kernel<T><<<exec::gpu::grid_for(n, dev.index), kBlock, 0, stream>>>(
      values, indices, inverse, pos_out, read, static_cast<I>(rows), static_cast<I>(g.K), static_cast<I>(g.inner),
      static_cast<I>(sel.first), static_cast<I>(sel.count));
  FT_CUDA_CHECK(cudaGetLastError());
}

inline constexpr int kScanBlock = 256;  // threads a row
inline constexpr int kScanItems = 4;    // consecutive elements a thread in a tile: 1024 a tile

template <class Op>
struct ScanOp {
  template <class Acc>
  __device__ FT_INLINE Acc operator()(const Acc& a, const Acc& b) const {
    return Op::combine(a, b);
  }
};
// The running result of the tiles before, handed to cub::BlockScan (called by the first warp;
// lane 0's return is the tile's prefix).
template <class Op>
struct ScanPrefix {
  typename Op::Acc running;
  __device__ FT_INLINE typename Op::Acc operator()(const typename Op::Acc& tile) {
    const typename Op::Acc before = running;
    running = Op::combine(running, tile);
    return before;
  }
};

// A block a row (rows blockIdx.x, + gridDim.x …): tiles of kScanBlock × kScanItems elements in
// order, each a cub::BlockScan continued from the tiles before. Elements past the row's end are
// padding: an inclusive scan never carries them into the row's outputs.
template <class Op, class Read, class I>
__global__ void __launch_bounds__(kScanBlock)
    scan_kernel(typename Op::Out* out, std::int64_t* indices, Read read, I rows, I K, I inner, bool reverse) {
  using Acc = typename Op::Acc;
  using T = std::remove_cvref_t<decltype(read(I(0)))>;
  using BlockScan = cub::BlockScan<Acc, kScanBlock>;
  __shared__ typename BlockScan::TempStorage temp;
  for (I r = blockIdx.x; r < rows; r += gridDim.x) {
    const I o = r / inner, i = r - o * inner, base = o * K * inner + i;
    ScanPrefix<Op> prefix{Acc{}};
    for (I t0 = 0; t0 < K; t0 += kScanBlock * kScanItems) {
      Acc items[kScanItems];
      for (int u = 0; u < kScanItems; ++u) {
        const I t = t0 + static_cast<I>(threadIdx.x) * kScanItems + u, k = reverse ? K - 1 - t : t;
        items[u] = t < K ? Op::lift(static_cast<T>(read(base + k * inner)), k) : Acc{};
      }
      if (t0 == 0) {
        Acc total;
        BlockScan(temp).InclusiveScan(items, items, ScanOp<Op>{}, total);
        prefix.running = total;
      } else {
        BlockScan(temp).InclusiveScan(items, items, ScanOp<Op>{}, prefix);
      }
      for (int u = 0; u < kScanItems; ++u) {
        const I t = t0 + static_cast<I>(threadIdx.x) * kScanItems + u, k = reverse ? K - 1 - t : t;
        if (t >= K) break;
        out[base + k * inner] = Op::value(items[u]);
        if constexpr (Op::has_index) indices[base + k * inner] = items[u].index;
      }
      __syncthreads();  // temp is reused by the next tile
    }
  }
}

template <class Op, class Read, class I>
void ScanKernel<Op, Read, I>::launch(Device dev, typename Op::Out* out, std::int64_t* indices, const Read& read,
                                     const exec::ReduceGeometry& g, bool reverse) {
  const index_t rows = g.outer * g.inner, cap = static_cast<index_t>(exec::gpu::sm_count(dev.index)) * 8;
  const unsigned blocks = static_cast<unsigned>(rows < cap ? rows : cap);
  scan_kernel<Op><<<blocks, kScanBlock, 0, cuda::current_stream()>>>(
      out, indices, read, static_cast<I>(rows), static_cast<I>(g.K), static_cast<I>(g.inner), reverse);
  FT_CUDA_CHECK(cudaGetLastError());
}

template <class T>
__global__ void __launch_bounds__(kBlock)
    unique_load_kernel(key_t<T>* keys, std::int64_t* positions, const T* x, index_t n) {
  for (index_t L = static_cast<index_t>(blockIdx.x) * kBlock + threadIdx.x; L < n;
       L += static_cast<index_t>(gridDim.x) * kBlock) {
    keys[L] = ordered_key<T>(x[L], false);
    positions[L] = L;
  }
}
template <class T>
__global__ void __launch_bounds__(kBlock) unique_flag_kernel(std::int64_t* flags, const key_t<T>* keys, index_t n) {
  for (index_t L = static_cast<index_t>(blockIdx.x) * kBlock + threadIdx.x; L < n;
       L += static_cast<index_t>(gridDim.x) * kBlock)
    flags[L] = L == 0 || !same_value<T>(keys[L - 1], keys[L]);
}
template <class T>
__global__ void __launch_bounds__(kBlock)
    unique_write_kernel(T* values, std::int64_t* inverse, std::int64_t* starts, const T* x,
                        const std::int64_t* positions, const std::int64_t* group, index_t n) {
  for (index_t L = static_cast<index_t>(blockIdx.x) * kBlock + threadIdx.x; L < n;
       L += static_cast<index_t>(gridDim.x) * kBlock) {
    const std::int64_t v = group[L] - 1;
    if (L == 0 || group[L - 1] != group[L]) {
      values[v] = x[positions[L]];
      starts[v] = L;
    }
    if (inverse) inverse[positions[L]] = v;
  }
}
template <class = void>  // a template: a kernel defined in a header must not be defined in every object file
__global__ void __launch_bounds__(kBlock)
    unique_count_kernel(std::int64_t* counts, const std::int64_t* starts, index_t n_values, index_t n) {
  for (index_t v = static_cast<index_t>(blockIdx.x) * kBlock + threadIdx.x; v < n_values;
       v += static_cast<index_t>(gridDim.x) * kBlock)
    counts[v] = (v + 1 < n_values ? starts[v + 1] : n) - starts[v];
}

template <class T>
void UniqueSortKernel<T>::launch(Device dev, const T* x, index_t n, std::int64_t* positions, std::int64_t* group) {
  using U = key_t<T>;
  cudaStream_t stream = cuda::current_stream();
  Tensor<std::uint8_t, 1> key_bytes(Shape<1>{2 * n * static_cast<index_t>(sizeof(U))}, dev);
  U* keys = reinterpret_cast<U*>(key_bytes.data());    // in, then sorted
  Tensor<std::int64_t, 1> work(Shape<1>{2 * n}, dev);  // positions in, then the flags
  const unsigned blocks = exec::gpu::grid_for(n, dev.index);
  unique_load_kernel<T><<<blocks, kBlock, 0, stream>>>(keys, work.data(), x, n);
  FT_CUDA_CHECK(cudaGetLastError());
  std::size_t sort_bytes = 0, scan_bytes = 0;
  FT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, keys + n, work.data(), positions,
                                                static_cast<int>(n), 0, int(sizeof(U) * 8), stream));
  FT_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, work.data(), group, static_cast<int>(n), stream));
  Tensor<std::uint8_t, 1> temp(Shape<1>{static_cast<index_t>(std::max(sort_bytes, scan_bytes)) + 1}, dev);
  FT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), sort_bytes, keys, keys + n, work.data(), positions,
                                                static_cast<int>(n), 0, int(sizeof(U) * 8), stream));
  unique_flag_kernel<T><<<blocks, kBlock, 0, stream>>>(work.data(), keys + n, n);
  FT_CUDA_CHECK(cudaGetLastError());
  FT_CUDA_CHECK(
      cub::DeviceScan::InclusiveSum(temp.data(), scan_bytes, work.data(), group, static_cast<int>(n), stream));
}

template <class T>
void UniqueWriteKernel<T>::launch(Device dev, T* values, std::int64_t* inverse, std::int64_t* counts, const T* x,
                                  const std::int64_t* positions, const std::int64_t* group, index_t n,
                                  index_t n_values) {
  cudaStream_t stream = cuda::current_stream();
  Tensor<std::int64_t, 1> starts(Shape<1>{n_values}, dev);
  unique_write_kernel<T><<<exec::gpu::grid_for(n, dev.index), kBlock, 0, stream>>>(values, inverse, starts.data(), x,
                                                                                   positions, group, n);
  FT_CUDA_CHECK(cudaGetLastError());
  if (counts) {
    unique_count_kernel<>
        <<<exec::gpu::grid_for(n_values, dev.index), kBlock, 0, stream>>>(counts, starts.data(), n_values, n);
    FT_CUDA_CHECK(cudaGetLastError());
  }
}
#endif  // FT_CUDA_KERNELS

}  // namespace gpu
#endif  // FT_CUDA_ENABLED

// ---- the row drivers: one launch each (one statement) on the input's device ----

// The kept positions `sel` of each sorted row of e along dim: values and indices laid out as
// [outer, sel.count, inner]; inverse (when not null) of e's shape: each element's position
// among the kept ones, or −1.
template <Expression E, class T = typename E::value_type>
void sort_into(const E& e, int dim, const Selection& sel, T* values, std::int64_t* indices, std::int64_t* inverse,
               const char* op) {
  const Device dev = e.device();
  const exec::ReduceGeometry g = rows_of(e.shape(), dim);
  if (e.shape().numel() == 0 || (sel.count == 0 && !inverse)) return;
  if (dev.is_cuda())
    check(g.outer * g.inner * g.K < std::numeric_limits<int>::max(), op,
          "at most 2^31 − 1 elements can be sorted on a GPU, got ", to_string(e.shape()));
  exec::with_reader(
      e, dev, [&](const auto& read) { cpu::sort_rows<T>(values, indices, inverse, read, g, sel); },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        cuda::launch_kernel<gpu::SortKernel<T, std::remove_cvref_t<decltype(read)>, I>>(op, dev, values, indices,
                                                                                        inverse, read, g, sel);
#else
        (void)read;
#endif
      });
}

// The scan Op of each row of e along dim (from the end when reverse), into a new tensor.
template <class Op, Expression E>
Tensor<typename Op::Out, E::rank> scan(const E& e, int dim, std::int64_t* indices, bool reverse, const char* op) {
  const Device dev = e.device();
  Tensor<typename Op::Out, E::rank> out(e.shape(), dev);
  if (out.numel() == 0) return out;
  const exec::ReduceGeometry g = rows_of(e.shape(), dim);
  auto* o = out.data();
  exec::with_reader(
      e, dev, [&](const auto& read) { cpu::scan_rows<Op>(o, indices, read, g, reverse); },
      [&]<class I>(const auto& read) {
#if FT_CUDA_ENABLED
        cuda::launch_kernel<gpu::ScanKernel<Op, std::remove_cvref_t<decltype(read)>, I>>(op, dev, o, indices, read, g,
                                                                                         reverse);
#else
        (void)read;
#endif
      });
  (void)op;
  return out;
}

// ---- gradients: generators over the input's shape, one fused accumulation each ----

// dx(o, m, i) = g(o, inverse(o, m, i), i) where the forward kept element m, else 0.
template <class T>
struct GatherThroughInverse {
  const T* g;
  const std::int64_t* inverse;
  index_t K, count, inner;
  FT_HD FT_INLINE T operator()(index_t L) const {
    const std::int64_t j = inverse[L];
    if (j < 0) return T(0);
    const index_t o = L / (K * inner), i = L % inner;
    return g[(o * count + j) * inner + i];
  }
};

// cummax/cummin: dx(o, m, i) = Σ g(o, k, i) over the outputs k that picked m. Those are a run
// k = m, m + 1 … (the picked index never decreases along a row), summed in order.
template <class T>
struct SumOverPickedRun {
  const T* g;
  const std::int64_t* picked;
  index_t K, inner;
  FT_HD FT_INLINE T operator()(index_t L) const {
    const index_t m = (L / inner) % K, base = L - m * inner;
    T s = T(0);
    for (index_t k = m; k < K && picked[base + k * inner] == m; ++k) s += g[base + k * inner];
    return s;
  }
};

template <int R>
Shape<R> with_extent(Shape<R> s, int dim, index_t n) {
  if constexpr (R > 0) s[dim] = n;
  return s;
}
template <int R>
Shape<(R > 0 ? R - 1 : 0)> without_dim(const Shape<R>& s, int dim) {
  Shape<(R > 0 ? R - 1 : 0)> out;
  for (int d = 0, j = 0; d < R; ++d)
    if (d != dim) out[j++] = s[d];
  return out;
}

}  // namespace ordering

// ---- sort, argsort, topk, kthvalue ----

// torch.sort(x, dim, descending, stable): the values along dim in order and their int64
// indices. Always stable (`stable` is accepted for torch's signature): ties keep increasing
// index; NaN is the largest value. One launch.
template <Expression E>
SortResult<typename E::value_type, E::rank> sort(const E& e, int dim = -1, bool descending = false,
                                                 bool stable = false) {
  using T = typename E::value_type;
  constexpr int R = E::rank;
  (void)stable;
  dim = wrap_dim(dim, R, "sort");
  const Device dev = e.device();
  SortResult<T, R> res{Tensor<T, R>(e.shape(), dev), Tensor<std::int64_t, R>(e.shape(), dev)};
  const index_t K = R > 0 ? e.shape()[dim] : 1;
  ordering::sort_into(e, dim, {0, K, descending}, res.values.data(), res.indices.data(), nullptr, "sort");
  return res;
}

// torch.argsort(x, dim, descending, stable): sort's indices. One launch.
template <Expression E>
Tensor<std::int64_t, E::rank> argsort(const E& e, int dim = -1, bool descending = false, bool stable = false) {
  return sort(e, dim, descending, stable).indices;
}

namespace ordering {
template <Expression E>
SortResult<typename E::value_type, E::rank> topk(const E& e, index_t k, int dim, bool largest, std::int64_t* inverse) {
  using T = typename E::value_type;
  constexpr int R = E::rank;
  static_assert(!std::is_same_v<T, bool>, "ft::topk: bool tensors have no topk in torch; cast to uint8 first");
  dim = wrap_dim(dim, R, "topk");
  const index_t K = R > 0 ? e.shape()[dim] : 1;
  check(k >= 0 && k <= K, "topk", "k = ", k, " is out of range for dimension ", dim, " of size ", K, " of ",
        to_string(e.shape()));
  const Device dev = e.device();
  const Shape<R> s = with_extent(e.shape(), dim, k);
  SortResult<T, R> res{Tensor<T, R>(s, dev), Tensor<std::int64_t, R>(s, dev)};
  sort_into(e, dim, {0, k, largest}, res.values.data(), res.indices.data(), inverse, "topk");
  return res;
}
template <int RO, Expression E>
SortResult<typename E::value_type, RO> kthvalue(const E& e, index_t k, int dim, std::int64_t* inverse) {
  using T = typename E::value_type;
  constexpr int R = E::rank;
  static_assert(!std::is_same_v<T, bool>, "ft::kthvalue: bool tensors have no kthvalue in torch; cast to uint8 first");
  dim = wrap_dim(dim, R, "kthvalue");
  const index_t K = R > 0 ? e.shape()[dim] : 1;
  check(k >= 1 && k <= K, "kthvalue", "k = ", k, " is out of range for dimension ", dim, " of size ", K, " of ",
        to_string(e.shape()), " (k counts from 1)");
  const Device dev = e.device();
  Shape<RO> s;
  if constexpr (RO == R)
    s = with_extent(e.shape(), dim, 1);
  else
    s = without_dim(e.shape(), dim);
  SortResult<T, RO> res{Tensor<T, RO>(s, dev), Tensor<std::int64_t, RO>(s, dev)};
  sort_into(e, dim, {k - 1, 1, false}, res.values.data(), res.indices.data(), inverse, "kthvalue");
  return res;
}
}  // namespace ordering

// torch.topk(x, k, dim, largest, sorted): the k largest (or smallest) values along dim and
// their indices, always in sorted order (largest first for largest); ties keep increasing
// index; NaN counts as the largest. Not for bool (as torch). One launch.
template <Expression E>
SortResult<typename E::value_type, E::rank> topk(const E& e, index_t k, int dim = -1, bool largest = true,
                                                 bool sorted = true) {
  (void)sorted;
  return ordering::topk(e, k, dim, largest, nullptr);
}

// torch.kthvalue(x, k, dim): the k-th smallest value along dim (k from 1) and its index (the
// k-th in stable order among ties); dim is dropped, or kept with ft::keepdim. One launch.
template <Expression E>
SortResult<typename E::value_type, (E::rank > 0 ? E::rank - 1 : 0)> kthvalue(const E& e, index_t k, int dim = -1) {
  static_assert(E::rank > 0, "ft::kthvalue: a rank-0 input keeps its rank; pass ft::keepdim");
  return ordering::kthvalue<(E::rank > 0 ? E::rank - 1 : 0)>(e, k, dim, nullptr);
}
template <Expression E>
SortResult<typename E::value_type, E::rank> kthvalue(const E& e, index_t k, int dim, KeepDim) {
  return ordering::kthvalue<E::rank>(e, k, dim, nullptr);
}

// ---- scans ----

// torch.cumsum(x, dim): running sums along dim; integers and bools give int64. One launch.
template <Expression E>
auto cumsum(const E& e, int dim) {
  dim = wrap_dim(dim, E::rank, "cumsum");
  return ordering::scan<ordering::CumArith<typename E::value_type, false>>(e, dim, nullptr, false, "cumsum");
}
// torch.cumprod(x, dim): running products along dim; integers and bools give int64. One launch.
template <Expression E>
auto cumprod(const E& e, int dim) {
  dim = wrap_dim(dim, E::rank, "cumprod");
  return ordering::scan<ordering::CumArith<typename E::value_type, true>>(e, dim, nullptr, false, "cumprod");
}
// torch.logcumsumexp(x, dim): log Σ exp over the prefix along dim, stably. Floats only. One launch.
template <Expression E>
auto logcumsumexp(const E& e, int dim) {
  using T = typename E::value_type;
  static_assert(is_floating_v<T>, "ft::logcumsumexp: the input must be of a floating type (as torch)");
  dim = wrap_dim(dim, E::rank, "logcumsumexp");
  return ordering::scan<ordering::CumLogSumExp<T>>(e, dim, nullptr, false, "logcumsumexp");
}

namespace ordering {
template <bool IsMax, Expression E>
SortResult<typename E::value_type, E::rank> cum_extreme(const E& e, int dim, const char* op) {
  using T = typename E::value_type;
  dim = wrap_dim(dim, E::rank, op);
  Tensor<std::int64_t, E::rank> idx(e.shape(), e.device());
  Tensor<T, E::rank> values = scan<CumExtreme<T, IsMax>>(e, dim, idx.data(), false, op);
  return {values, idx};
}
}  // namespace ordering

// torch.cummax(x, dim): the running maximum along dim and the index it came from (the last of
// equal maxima; a NaN takes over and stays). One launch.
template <Expression E>
SortResult<typename E::value_type, E::rank> cummax(const E& e, int dim) {
  return ordering::cum_extreme<true>(e, dim, "cummax");
}
// torch.cummin(x, dim): the running minimum, as cummax. One launch.
template <Expression E>
SortResult<typename E::value_type, E::rank> cummin(const E& e, int dim) {
  return ordering::cum_extreme<false>(e, dim, "cummin");
}

// ---- unique ----

// torch.unique(x, sorted, return_inverse, return_counts) without dim: the distinct values of
// the flattened input in ascending order (always sorted; `sorted` is accepted for torch's
// signature), NaNs each their own. The number of values decides the output's size, so this
// synchronises with the host once (also counted on the CPU, as a GPU would wait there).
// Launches: the input's evaluation when it is not a contiguous tensor, then one (CPU) or two
// (GPU: sort and scan, then the writes).
template <Expression E>
UniqueResult<typename E::value_type, E::rank> unique(const E& e, bool sorted = true, bool return_inverse = false,
                                                     bool return_counts = false) {
  using T = typename E::value_type;
  using U = ordering::key_t<T>;
  constexpr int R = E::rank;
  (void)sorted;
  const Device dev = e.device();
  Tensor<T, R> x;
  if constexpr (std::is_same_v<E, Tensor<T, R>>)
    x = e.contiguous();
  else
    x = ft::eval(e);
  const index_t n = x.numel();
  UniqueResult<T, R> res;
  if (return_inverse) res.inverse = Tensor<std::int64_t, R>(x.shape(), dev);
  if (n == 0) {
    res.values = Tensor<T, 1>(Shape<1>{0}, dev);
    if (return_counts) res.counts = Tensor<std::int64_t, 1>(Shape<1>{0}, dev);
    return res;
  }
  std::int64_t* inv = return_inverse ? res.inverse.data() : nullptr;
  if (dev.is_cpu()) {
    stats::detail::record_launch(kCPU);
    stats::detail::record_host_sync(kCPU);
    const T* xp = x.data();
    std::vector<std::pair<U, index_t>> keys(static_cast<std::size_t>(n));
    for (index_t L = 0; L < n; ++L) keys[L] = {ordering::ordered_key<T>(xp[L], false), L};
    std::sort(keys.begin(), keys.end());
    std::vector<index_t> starts;
    for (index_t j = 0; j < n; ++j)
      if (j == 0 || !ordering::same_value<T>(keys[j - 1].first, keys[j].first)) starts.push_back(j);
    const index_t nv = static_cast<index_t>(starts.size());
    res.values = Tensor<T, 1>(Shape<1>{nv}, dev);
    if (return_counts) res.counts = Tensor<std::int64_t, 1>(Shape<1>{nv}, dev);
    for (index_t v = 0; v < nv; ++v) {
      const index_t end = v + 1 < nv ? starts[v + 1] : n;
      res.values.data()[v] = xp[keys[starts[v]].second];
      if (return_counts) res.counts.data()[v] = end - starts[v];
      if (inv)
        for (index_t j = starts[v]; j < end; ++j) inv[keys[j].second] = v;
    }
    return res;
  }
#if FT_CUDA_ENABLED
  check(n < std::numeric_limits<int>::max(), "unique", "takes at most 2^31 − 1 elements on a GPU, got ",
        to_string(x.shape()));
  cuda::DeviceGuard guard(dev);
  Tensor<std::int64_t, 1> positions(Shape<1>{n}, dev), group(Shape<1>{n}, dev);
  stats::detail::record_launch(dev);
  cuda::launch_kernel<ordering::gpu::UniqueSortKernel<T>>("unique", dev, x.data(), n, positions.data(), group.data());
  std::int64_t nv = 0;
  cuda::copy_bytes(&nv, kCPU, group.data() + (n - 1), dev, sizeof(nv));  // the one wait for the host
  res.values = Tensor<T, 1>(Shape<1>{nv}, dev);
  if (return_counts) res.counts = Tensor<std::int64_t, 1>(Shape<1>{nv}, dev);
  stats::detail::record_launch(dev);
  cuda::launch_kernel<ordering::gpu::UniqueWriteKernel<T>>("unique", dev, res.values.data(), inv,
                                                           return_counts ? res.counts.data() : nullptr, x.data(),
                                                           positions.data(), group.data(), n, nv);
#else
  cuda::require_device(dev, "unique");
#endif
  return res;
}

}  // namespace ft::inline FT_ABI

// ---- on Vars: one tape node each ----
namespace ft::inline FT_ABI {

namespace ordering {
// Records `values` as op's output; its backward gathers the gradient through `inverse`
// (saved by the forward: each input element's position among the outputs of its row, or −1).
template <class T, int R, int RO>
Var<T, RO> record_gather(const char* op, const Var<T, R>& vx, Tensor<T, RO> values, Tensor<std::int64_t, R> inverse,
                         index_t count, int dim) {
  auto bwd = [vx, inverse, count, dim](const Tensor<T, RO>& g) {
    const exec::ReduceGeometry geo = rows_of(vx.shape(), dim);
    Tensor<T, RO> gc = g.contiguous();
    vx.state().accumulate(Generator<GatherThroughInverse<T>, R>({gc.data(), inverse.data(), geo.K, count, geo.inner},
                                                                vx.shape(), vx.device()));
  };
  return autograd::record(op, std::move(values), std::move(bwd), vx);
}
// The inverse positions, when the result will be recorded.
template <class T, int R>
Tensor<std::int64_t, R> inverse_for(const Var<T, R>& vx) {
  if (!autograd::is_grad_enabled() || !vx.requires_grad()) return {};
  return Tensor<std::int64_t, R>(vx.shape(), vx.device());
}
template <class T, int R>
std::int64_t* data_or_null(const Tensor<T, R>& t) {
  return t.defined() ? t.data() : nullptr;
}
}  // namespace ordering

// sort: dx = g gathered through the inverse permutation (each input element's sorted position).
template <Expression E>
requires(ft::detail::has_var_v<E>) auto sort(const E& e, int dim = -1, bool descending = false, bool stable = false) {
  (void)stable;
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "sort");
  const index_t K = R > 0 ? vx.shape()[dim] : 1;
  Tensor<std::int64_t, R> inverse = ordering::inverse_for(vx);
  Tensor<T, R> values(vx.shape(), vx.device());
  Tensor<std::int64_t, R> indices(vx.shape(), vx.device());
  ordering::sort_into(vx.value(), dim, {0, K, descending}, values.data(), indices.data(),
                      ordering::data_or_null(inverse), "sort");
  return SortResult<T, R, Var>{ordering::record_gather("sort", vx, values, inverse, K, dim), indices};
}

// topk: dx = g at the kept elements' positions, 0 elsewhere.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto topk(const E& e, index_t k, int dim = -1, bool largest = true,
                                             bool sorted = true) {
  (void)sorted;
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  Tensor<std::int64_t, R> inverse = ordering::inverse_for(vx);
  auto res = ordering::topk(vx.value(), k, dim, largest, ordering::data_or_null(inverse));
  dim = wrap_dim(dim, R, "topk");
  return SortResult<T, R, Var>{ordering::record_gather("topk", vx, res.values, inverse, k, dim), res.indices};
}

// kthvalue: dx = g at the chosen element, 0 elsewhere.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto kthvalue(const E& e, index_t k, int dim = -1) {
  static_assert(E::rank > 0, "ft::kthvalue: a rank-0 input keeps its rank; pass ft::keepdim");
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank, RO = R > 0 ? R - 1 : 0;
  Tensor<std::int64_t, R> inverse = ordering::inverse_for(vx);
  auto res = ordering::kthvalue<RO>(vx.value(), k, dim, ordering::data_or_null(inverse));
  dim = wrap_dim(dim, R, "kthvalue");
  return SortResult<T, RO, Var>{ordering::record_gather("kthvalue", vx, res.values, inverse, 1, dim), res.indices};
}
template <Expression E>
requires(ft::detail::has_var_v<E>) auto kthvalue(const E& e, index_t k, int dim, KeepDim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  Tensor<std::int64_t, R> inverse = ordering::inverse_for(vx);
  auto res = ordering::kthvalue<R>(vx.value(), k, dim, ordering::data_or_null(inverse));
  dim = wrap_dim(dim, R, "kthvalue");
  return SortResult<T, R, Var>{ordering::record_gather("kthvalue", vx, res.values, inverse, 1, dim), res.indices};
}

// cumsum: dx = the reversed cumsum of g (Σ over the outputs at or after each position).
template <Expression E>
requires(ft::detail::has_var_v<E>) auto cumsum(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "cumsum");
  Tensor<T, R> y = cumsum(vx.value(), dim);
  auto bwd = [vx, dim](const Tensor<T, R>& g) {
    vx.state().accumulate(ordering::scan<ordering::CumArith<T, false>>(g, dim, nullptr, true, "cumsum"));
  };
  return autograd::record("cumsum", y, std::move(bwd), vx);
}

// cumprod, torch's formula: with z the row's first zero (if any), dx_m = Σ_{j≥m} g_j·y_j / x_m
// for m < z; dx_z = Σ_{j≥z} g_j·Π_{i≤j, i≠z} x_i (the cumprod with x_z taken as 1); 0 after z.
template <Expression E>
requires(ft::detail::has_var_v<E>) auto cumprod(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "cumprod");
  Tensor<T, R> y = cumprod(vx.value(), dim);
  auto bwd = [vx, y, dim](const Tensor<T, R>& g) {
    using Sum = ordering::CumArith<T, false>;
    const Tensor<T, R>& x = vx.value();
    Tensor<std::int64_t, R> zeros = cumsum(x == T(0), dim);  // zeros at or before each position
    auto first_zero = logical_and(x == T(0), zeros == 1);
    Tensor<T, R> y1 = cumprod(where(first_zero, T(1), x), dim);
    Tensor<T, R> a = ordering::scan<Sum>(g * y, dim, nullptr, true, "cumprod");
    Tensor<T, R> b = ordering::scan<Sum>(g * y1, dim, nullptr, true, "cumprod");
    vx.state().accumulate(where(zeros == 0, a / x, where(first_zero, b, T(0))));
  };
  return autograd::record("cumprod", y, std::move(bwd), vx);
}

// logcumsumexp, torch's formula: dx_m = Σ_{j≥m} g_j·exp(x_m − y_j), the positive and negative
// parts of g each through a reversed logcumsumexp (no overflow).
template <Expression E>
requires(ft::detail::has_var_v<E>) auto logcumsumexp(const E& e, int dim) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "logcumsumexp");
  Tensor<T, R> y = logcumsumexp(vx.value(), dim);
  auto bwd = [vx, y, dim](const Tensor<T, R>& g) {
    using Lse = ordering::CumLogSumExp<T>;
    const T lowest = std::numeric_limits<T>::lowest();
    Tensor<T, R> pos =
        ordering::scan<Lse>(where(g > T(0), log(abs(g)), lowest) - y, dim, nullptr, true, "logcumsumexp");
    Tensor<T, R> neg =
        ordering::scan<Lse>(where(g < T(0), log(abs(g)), lowest) - y, dim, nullptr, true, "logcumsumexp");
    const Tensor<T, R>& x = vx.value();
    vx.state().accumulate(exp(pos + x) - exp(neg + x));
  };
  return autograd::record("logcumsumexp", y, std::move(bwd), vx);
}

namespace ordering {
// cummax/cummin: dx_m = Σ of g over the outputs whose index is m.
template <bool IsMax, class E>
auto cum_extreme_var(const E& e, int dim, const char* op) {
  auto vx = autograd::to_var(e);
  using T = typename decltype(vx)::value_type;
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, op);
  auto res = cum_extreme<IsMax>(vx.value(), dim, op);
  auto bwd = [vx, idx = res.indices, dim](const Tensor<T, R>& g) {
    const exec::ReduceGeometry geo = rows_of(vx.shape(), dim);
    Tensor<T, R> gc = g.contiguous();
    vx.state().accumulate(
        Generator<SumOverPickedRun<T>, R>({gc.data(), idx.data(), geo.K, geo.inner}, vx.shape(), vx.device()));
  };
  return SortResult<T, R, Var>{autograd::record(op, res.values, std::move(bwd), vx), res.indices};
}
}  // namespace ordering

template <Expression E>
requires(ft::detail::has_var_v<E>) auto cummax(const E& e, int dim) {
  return ordering::cum_extreme_var<true>(e, dim, "cummax");
}
template <Expression E>
requires(ft::detail::has_var_v<E>) auto cummin(const E& e, int dim) {
  return ordering::cum_extreme_var<false>(e, dim, "cummin");
}

}  // namespace ft::inline FT_ABI
