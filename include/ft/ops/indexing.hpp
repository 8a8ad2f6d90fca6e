// Indexing, as PyTorch 1.13: gathers (index_select, gather, take_along_dim, index — x[i0, i1, …],
// one_hot, masked_fill), scatters (scatter, scatter_add, scatter_reduce, index_add, index_put),
// and the ops whose size depends on the data (nonzero, masked_select, where(cond)).
//
// - Gathers are expressions: `relu(gather(x, 1, idx) * w)` is one launch. The node reads its
//   operand (any expression) at the coordinates the index tensor gives. The kernel that reads
//   the index checks it: a bad one is reported (cuda::report) and thrown as an ft::Error naming
//   the op and the shapes — on the CPU when the statement's loop ends (naming the value too), on
//   a GPU at the next synchronisation, so a step never waits for the check. (A separate checking
//   pass before the loop cost as much as a fifth of the gather.)
// - Scatters are boundaries (a new tensor; the inputs may be expressions and are read in the
//   one kernel that writes the result). Every destination element reduces its own sources in
//   increasing source order, after the sources have been grouped by destination (a counting
//   sort on the CPU, CUB's stable radix sort on a GPU): deterministic on every device and thread
//   count, no atomics, no host wait. Launches: one on the CPU (the grouping is host code); five
//   on a GPU (destination keys, the positions 0..n−1, the sort, group offsets, the result).
// - Gradients: a gather's is the same grouped sum read from the upstream gradient (an expression
//   node, so it fuses into the gradient's kernel); the scatters' (tape nodes) are gathers and
//   grouped fills of the gradient. scatter_reduce "amax"/"amin" split the gradient evenly among
//   the elements equal to the result, as torch.
// - nonzero, masked_select and where(cond) wait for the host once (the result's size).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/factories.hpp"
#include "ft/expr/generator.hpp"
#include "ft/expr/remap.hpp"
#include "ft/ops/elementwise.hpp"
#include "ft/ops/reduction.hpp"

#if FT_CUDA_KERNELS
#include <thrust/iterator/counting_iterator.h>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_select.cuh>
#endif

namespace ft::inline FT_ABI {

// ---- grouping sources by destination (shared by every scatter and gather gradient) ----
namespace detail {

// The positions 0..n−1 of the sources grouped by destination key (stable: increasing position
// within a group): destination v reads positions[offsets[v] .. offsets[v + 1]).
struct Grouping {
  Tensor<std::int64_t, 1> offsets;    // [V + 1]
  Tensor<std::int64_t, 1> positions;  // [max(n, 1)]
};

// offsets[v]: the first position of the sorted keys holding v or more (a binary search).
struct GroupOffsets {
  const std::int64_t* sorted;
  index_t n;
  FT_HD FT_INLINE std::int64_t operator()(index_t v) const {
    index_t lo = 0, hi = n;
    while (lo < hi) {
      const index_t mid = lo + (hi - lo) / 2;
      if (sorted[mid] < v)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }
};

#if FT_CUDA_ENABLED
// Sorts n keys in [0, 2^end_bit) with their positions 0..n−1 (stable) on the device's current
// stream: CUB's radix sort over the key's low end_bit bits only.
struct GroupSortKernel {
  static void launch(const std::int64_t* keys, std::int64_t* sorted_keys, std::int64_t* sorted_pos, int n, int end_bit,
                     Device d);
};
// The positions of the true flags, ascending, and their count (at *count, on the device).
struct SelectTrueKernel {
  static void launch(const bool* flags, std::int64_t* positions, std::int64_t* count, int n, Device d);
};
#if FT_CUDA_KERNELS
inline void GroupSortKernel::launch(const std::int64_t* keys, std::int64_t* sorted_keys, std::int64_t* sorted_pos,
                                    int n, int end_bit, Device d) {
  cuda::DeviceGuard guard(d);
  cudaStream_t stream = cuda::current_stream();
  // keys are non-negative, so their unsigned order is their order
  auto* k_in = reinterpret_cast<const std::uint64_t*>(keys);
  auto* k_out = reinterpret_cast<std::uint64_t*>(sorted_keys);
  Tensor<std::int64_t, 1> positions(Shape<1>{n}, d);
  positions = Generator<gen::Arange<std::int64_t>, 1>({0, 1}, Shape<1>{n}, d);
  std::size_t temp_bytes = 0;
  FT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, k_in, k_out, positions.data(), sorted_pos, n, 0,
                                                end_bit, stream));
  Tensor<std::uint8_t, 1> temp(Shape<1>{static_cast<index_t>(temp_bytes) + 1}, d);
  FT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, k_in, k_out, positions.data(), sorted_pos, n,
                                                0, end_bit, stream));
}
inline void SelectTrueKernel::launch(const bool* flags, std::int64_t* positions, std::int64_t* count, int n, Device d) {
  cuda::DeviceGuard guard(d);
  cudaStream_t stream = cuda::current_stream();
  thrust::counting_iterator<std::int64_t> first(0);
  std::size_t temp_bytes = 0;
  FT_CUDA_CHECK(cub::DeviceSelect::Flagged(nullptr, temp_bytes, first, flags, positions, count, n, stream));
  Tensor<std::uint8_t, 1> temp(Shape<1>{static_cast<index_t>(temp_bytes) + 1}, d);
  FT_CUDA_CHECK(cub::DeviceSelect::Flagged(temp.data(), temp_bytes, first, flags, positions, count, n, stream));
}
#endif
#endif

// Groups the sources 0..n−1 by `key(p)` ∈ [0, V] (V: the source goes nowhere, a bad index that
// the key function reported). CPU: a counting sort on the host (no launch). GPU: the keys
// (one launch), CUB's radix sort (one), the offsets (one); no host wait.
template <class KeyFn>
Grouping group_by_key(const KeyFn& key, index_t n, index_t V, Device dev, const char* op) {
  Grouping g;
  if (dev.is_cpu()) {
    std::vector<std::int64_t> keys(static_cast<std::size_t>(n));
    g.offsets = Tensor<std::int64_t, 1>(Shape<1>{V + 1}, dev);
    std::int64_t* off = g.offsets.data();
    std::fill(off, off + V + 1, std::int64_t(0));
    for (index_t p = 0; p < n; ++p) {
      keys[p] = key(p);
      if (keys[p] < V) ++off[keys[p] + 1];
    }
    for (index_t v = 0; v < V; ++v) off[v + 1] += off[v];
    g.positions = Tensor<std::int64_t, 1>(Shape<1>{std::max<index_t>(n, 1)}, dev);
    std::int64_t* pos = g.positions.data();
    pos[0] = 0;
    std::vector<std::int64_t> next(off, off + V);
    for (index_t p = 0; p < n; ++p)
      if (keys[p] < V) pos[next[keys[p]]++] = p;
    cuda::check_reports(dev);  // a bad index the caller's own check did not name
    return g;
  }
#if FT_CUDA_ENABLED
  check(n < std::numeric_limits<int>::max(), op, "sorts at most 2^31 − 1 sources on a GPU, got ", n);
  g.positions = Tensor<std::int64_t, 1>(Shape<1>{std::max<index_t>(n, 1)}, dev);
  g.offsets = Tensor<std::int64_t, 1>(Shape<1>{V + 1}, dev);
  if (n == 0) {
    g.offsets = std::int64_t(0);
    return g;
  }
  Tensor<std::int64_t, 1> keys(Shape<1>{n}, dev), sorted(Shape<1>{n}, dev);
  keys = Generator<KeyFn, 1>(key, Shape<1>{n}, dev);
  int end_bit = 1;
  while (end_bit < 63 && (std::int64_t(1) << end_bit) <= V) ++end_bit;
  stats::detail::record_launch(dev);
  cuda::launch_kernel<GroupSortKernel>(op, keys.data(), sorted.data(), g.positions.data(), static_cast<int>(n), end_bit,
                                       dev);
  g.offsets = Generator<GroupOffsets, 1>({sorted.data(), n}, Shape<1>{V + 1}, dev);
  return g;
#else
  (void)key, (void)n, (void)V, (void)op;
  cuda::require_device(dev, op);
  return g;
#endif
}

// The ascending linear positions of the true elements of `flags` (contiguous). The count is
// read by the host: one wait (counted on the CPU too, where a GPU would wait).
inline Tensor<std::int64_t, 1> true_positions(const Tensor<bool, 1>& flags, const char* op) {
  const Device dev = flags.device();
  const index_t n = flags.numel();
  if (dev.is_cpu()) {
    stats::detail::record_host_sync(kCPU);  // where a GPU waits for the count
    std::vector<std::int64_t> pos;
    for (index_t i = 0; i < n; ++i)
      if (flags.data()[i]) pos.push_back(i);
    Tensor<std::int64_t, 1> r(Shape<1>{static_cast<index_t>(pos.size())}, dev);
    std::copy(pos.begin(), pos.end(), r.data());
    return r;
  }
#if FT_CUDA_ENABLED
  check(n < std::numeric_limits<int>::max(), op, "selects from at most 2^31 − 1 elements on a GPU, got ", n);
  Tensor<std::int64_t, 1> pos(Shape<1>{std::max<index_t>(n, 1)}, dev), count(Shape<1>{1}, dev);
  if (n == 0) return pos.slice(0, 0, 0);
  stats::detail::record_launch(dev);
  cuda::launch_kernel<SelectTrueKernel>(op, flags.data(), pos.data(), count.data(), static_cast<int>(n), dev);
  std::int64_t k = 0;
  cuda::copy_bytes(&k, kCPU, count.data(), dev, sizeof(k));  // the one wait for the host
  return pos.slice(0, 0, k);
#else
  cuda::require_device(dev, op);
  return {};
#endif
}

// Calls f(p, value) for each element of a (possibly strided or broadcast) index tensor, p its
// row-major position; on the host (the tensor is on the CPU).
template <int R, class F>
void for_each_index_value(const Tensor<std::int64_t, R>& t, F&& f) {
  const index_t n = t.numel();
  index_t c[R > 0 ? R : 1] = {};
  for (index_t p = 0; p < n; ++p) {
    index_t off = 0;
    for (int d = 0; d < R; ++d) off += c[d] * t.strides()[d];
    f(p, t.data()[off]);
    for (int d = R - 1; d >= 0; --d) {
      if (++c[d] < t.shape()[d]) break;
      c[d] = 0;
    }
  }
}

// The least and greatest of n contiguous indices (0 and 0 for none), in parallel. (A template:
// GCC's function clones are safe across translation units only for templates.)
template <class T>
FT_CPU_MULTIVERSION std::pair<T, T> index_range(const T* p, index_t n) {
  T lo = 0, hi = 0;
#pragma omp parallel for simd reduction(min : lo) reduction(max : hi) if (n > (index_t(1) << 16))
  for (index_t i = 0; i < n; ++i) {
    lo = p[i] < lo ? p[i] : lo;
    hi = p[i] > hi ? p[i] : hi;
  }
  return {lo, hi};
}

// On the CPU: throws naming the first index outside [−size, size) (wrap) or [0, size), with
// `where()` (the dimension and shapes) appended. A GPU's kernels report instead.
template <int R, class Where>
void check_indices(const char* op, const Tensor<std::int64_t, R>& t, index_t size, bool wrap, Where&& where) {
  if (!t.device().is_cpu()) return;
  if (t.is_contiguous()) {  // the common case: one parallel pass for the range, then the walk only to name a bad one
    const auto [lo, hi] = index_range(t.data(), t.numel());
    if (hi < size && lo >= (wrap ? -size : 0)) return;
  }
  for_each_index_value(t, [&](index_t, std::int64_t v) {
    if (v >= size || v < (wrap ? -size : 0)) fail(op, "index ", v, " is out of bounds for ", where());
  });
}

// The row-major strides of an index read at `shape` (0 along broadcast dimensions).
template <int R>
Array<index_t, R> read_strides(const Tensor<std::int64_t, R>& t) {
  Array<index_t, R> s = t.strides();
  for (int d = 0; d < R; ++d)
    if (t.shape()[d] == 1) s[d] = 0;
  return s;
}

// The check code of a GPU kernel's bound check (none needed on the CPU, which checks first).
inline int gpu_check_code(Device dev, const std::string& message) {
  return dev.is_cuda() ? cuda::check_code(message) : 1;
}

// A gather kernel's bound check of index v into a dimension of size n: a bad index is reported
// (with its value on the CPU) and read as 0 — the statement's value is thrown away when the
// report is raised, on the CPU as soon as the statement's loop ends. One compare a read, a
// branch never taken: the CPU loop runs faster than with a separate checking pass first.
FT_HD FT_INLINE void index_in_range(std::int64_t& v, index_t n, int* word, int code) {
  if (static_cast<std::uint64_t>(v) >= static_cast<std::uint64_t>(n)) [[unlikely]] {
    cuda::report(word, code, v);
    v = 0;
  }
}

template <class I, int R>
FT_HD FT_INLINE void unravel_position(index_t p, const Array<index_t, R>& shape, I (&c)[R > 0 ? R : 1]) {
  for (int d = R - 1; d >= 0; --d) {
    c[d] = static_cast<I>(p % shape[d]);
    p /= shape[d];
  }
}

}  // namespace detail

// ---- Gather: index_select, gather, take_along_dim ----
// out[c] = e[c with c[dim] replaced by index[c]]; e's size-1 dimensions broadcast
// (take_along_dim). `index` is a rank-R view whose shape broadcasts to the result's.
template <class E>
class Gather {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = E::rank;
  static_assert(rank >= 1, "ft::gather: the input must have at least one dimension");

  Gather(const char* op, E e, Tensor<std::int64_t, rank> index, int dim, const Shape<rank>& shape,
         const std::string& index_shape)
      : e_(std::move(e)),
        index_(std::move(index)),
        dim_(dim),
        shape_(shape),
        device_(detail::common_device(op, detail::device_of(e_), index_.device())),
        op_(op) {
    code_ = cuda::check_code(ft::detail::concat(op, ": an index is out of bounds for dimension ", dim, " with size ",
                                                e_.shape()[dim], " (index ", index_shape, ", input ",
                                                to_string(e_.shape()), ")"));
  }

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    const std::int64_t* idx;
    Array<index_t, rank> istrides, shape, in_shape;
    int dim;
    int* word;
    int code;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      const Array<I, rank> c = detail::node_coords<rank>(ix, shape);
      I off = 0;
      for (int d = 0; d < rank; ++d) off += c[d] * static_cast<I>(istrides[d]);
      std::int64_t v = idx[off];
      detail::index_in_range(v, in_shape[dim], word, code);
      CoordIndex<I, rank> at{};
      // a coordinate past a size-1 dimension of the operand is read as 0 by the operand itself,
      // as in any broadcast (zero strides of its leaves, node_coords of its remapping nodes)
      for (int d = 0; d < rank; ++d) at.coord[d] = d == dim ? static_cast<I>(v) : c[d];
      return e(at);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, rank>(*this, i);
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  Eval evaluator(const EvalContext&) const {
    return {e_.evaluator(detail::remapped_context()),
            index_.data(),
            detail::read_strides(index_),
            shape_,
            e_.shape(),
            dim_,
            cuda::report_word(device()),
            code_};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(e_, f);
    detail::for_each_remapped_leaf(index_, f);
  }
  // The plain statement `dst = gather(x, -1, idx)` of a CPU tensor x into a contiguous dst, run
  // as LibTorch runs it: a row of the index and of dst at unit stride, x's row read at the index
  // (its unit-stride case a loop of its own). The general kernel's strided walk costs ~1.2 times
  // this loop's time (a pointer step a leaf, a multiply by x's stride). Same check and report;
  // one launch. False where it does not apply (another dim, a broadcast index, an expression x).
  template <class T>
  bool run_rows_cpu(const Tensor<T, rank>& dst) const {
    if constexpr (!std::is_same_v<E, Tensor<value_type, rank>>) {
      return false;
    } else {
      if (dim_ != rank - 1 || !dst.is_contiguous() || !index_.is_contiguous() || !e_.device().is_cpu() ||
          index_.shape() != dst.shape())
        return false;
      stats::detail::record_launch(kCPU);
      const index_t n = shape_[rank - 1], rows = n ? shape_.numel() / n : 0, step = e_.strides()[rank - 1];
      const Array<index_t, rank> xs = e_.strides();
#pragma omp parallel for schedule(static) if (rows * n > exec::cpu::kParallelGrain)
      for (index_t r = 0; r < rows; ++r) {
        index_t off = 0;  // x's offset of row r: its leading coordinates by x's strides
        for (index_t rest = r, d = rank - 2; d >= 0; --d) {
          off += rest % shape_[d] * xs[d];
          rest /= shape_[d];
        }
        if (step == 1)
          gather_row<T, true>(e_.data() + off, index_.data() + r * n, dst.data() + r * n, n, e_.shape()[rank - 1], 1,
                              code_);
        else
          gather_row<T, false>(e_.data() + off, index_.data() + r * n, dst.data() + r * n, n, e_.shape()[rank - 1],
                               step, code_);
      }
      exec::cpu::raise_reports();
      return true;
    }
  }
  const E& operand() const { return e_; }
  const char* op() const { return op_; }
  static constexpr const char* op_name() { return "gather"; }
  const Tensor<std::int64_t, rank>& index() const { return index_; }
  int dim() const { return dim_; }

 private:
  // One row of run_rows_cpu, every value a parameter (in registers: a report's stores cannot
  // make the loop reload them).
  template <class T, bool Unit>
  static void gather_row(const value_type* x, const std::int64_t* idx, T* out, index_t n, index_t size, index_t step,
                         int code) {
    int* const word = cuda::report_word(kCPU);
    for (index_t k = 0; k < n; ++k) {
      std::int64_t v = idx[k];
      detail::index_in_range(v, size, word, code);
      store_value(out[k], compute_type(x[Unit ? v : v * step]));
    }
  }
  E e_;
  Tensor<std::int64_t, rank> index_;
  int dim_;
  Shape<rank> shape_;
  std::optional<Device> device_;
  const char* op_;
  int code_ = 1;
};

// ---- IndexGather: x[i0, i1, …, i(K−1)] (advanced indexing of the leading K dims) ----
// out [B…, x.shape[K:]…][b, t] = x[i0[b], …, i(K−1)[b], t]; negative indices count from the end.
template <class E, int K, int B>
class IndexGather {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = B + E::rank - K;
  static_assert(K >= 1 && K <= E::rank, "ft::index: between 1 and rank index tensors");

  IndexGather(const char* op, E e, std::array<Tensor<std::int64_t, B>, K> idx, const Shape<B>& bshape)
      : e_(std::move(e)), idx_(std::move(idx)), device_(detail::device_of(e_)), op_(op) {
    for (int d = 0; d < B; ++d) shape_[d] = bshape[d];
    for (int d = K; d < E::rank; ++d) shape_[B + d - K] = e_.shape()[d];
    for (int j = 0; j < K; ++j) {
      device_ = detail::common_device(op, device_, idx_[j].device());
      codes_[j] = cuda::check_code(ft::detail::concat(op, ": an index is out of bounds for ", where(j)));
    }
  }

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    Array<const std::int64_t*, K> idx;
    Array<Array<index_t, B>, K> istrides;
    Array<index_t, rank> shape;
    Array<index_t, E::rank> in_shape;
    int* word;
    Array<int, K> codes;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      const Array<I, rank> c = detail::node_coords<rank>(ix, shape);
      CoordIndex<I, E::rank> at{};
      for (int j = 0; j < K; ++j) {
        I off = 0;
        for (int d = 0; d < B; ++d) off += c[d] * static_cast<I>(istrides[j][d]);
        const std::int64_t v = idx[j][off];
        std::int64_t w = v + (v < 0 ? in_shape[j] : 0);  // negative indices count from the end
        if (static_cast<std::uint64_t>(w) >= static_cast<std::uint64_t>(in_shape[j])) [[unlikely]] {
          cuda::report(word, codes[j], v);
          w = 0;
        }
        at.coord[j] = static_cast<I>(w);
      }
      for (int d = K; d < E::rank; ++d) at.coord[d] = c[B + d - K];
      return e(at);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, rank>(*this, i);
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  Eval evaluator(const EvalContext&) const {
    Eval ev{e_.evaluator(detail::remapped_context()), {}, {}, shape_, e_.shape(), cuda::report_word(device()), codes_};
    for (int j = 0; j < K; ++j) {
      ev.idx[j] = idx_[j].data();
      ev.istrides[j] = detail::read_strides(idx_[j]);
    }
    return ev;
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(e_, f);
    for (const auto& t : idx_) detail::for_each_remapped_leaf(t, f);
  }
  const E& operand() const { return e_; }
  const char* op() const { return op_; }
  static constexpr const char* op_name() { return "index"; }
  const std::array<Tensor<std::int64_t, B>, K>& indices() const { return idx_; }

 private:
  std::string where(int j) const {
    return ft::detail::concat("dimension ", j, " with size ", e_.shape()[j], " (index ", to_string(idx_[j].shape()),
                              ", input ", to_string(e_.shape()), ")");
  }
  E e_;
  std::array<Tensor<std::int64_t, B>, K> idx_;
  Shape<rank> shape_{};
  std::optional<Device> device_;
  const char* op_;
  Array<int, K> codes_{};
};

// ---- Scattered: the grouped reduction behind every scatter and every gather's gradient ----
enum class ScatterMode : std::uint8_t { sum, mean, amax, amin, prod, replace };

// Element c of the result (shape [R]) combines x[c] (when include_self or no source reaches it)
// with the sources s grouped at c's key, in increasing source order. The key of c is its
// row-major position over the keyed dims [k0, k0 + kn); a source's coordinates are c's outside
// those dims and, inside, the source position unravelled over `source_shape`'s dims
// [k0, k0 + pn) (pn = RS − (R − kn)). So scatter/gather key all dims (k0 = 0, kn = R = RS),
// index_add one (kn = pn = 1), index_put the leading kn dims from pn = rank-of-indices dims.
template <class X, class S, int R, int RS>
class Scattered {
 public:
  using value_type = typename X::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = R;

  Scattered(X x, S s, const Shape<R>& shape, const Shape<RS>& source_shape, detail::Grouping groups, int k0, int kn,
            ScatterMode mode, bool include_self)
      : x_(std::move(x)),
        s_(std::move(s)),
        shape_(shape),
        source_shape_(source_shape),
        groups_(std::move(groups)),
        k0_(k0),
        kn_(kn),
        mode_(mode),
        include_self_(include_self),
        device_(detail::common_device("scatter", detail::device_of(x_), detail::device_of(s_))) {}

  struct Eval {
    decltype(std::declval<const X&>().evaluator(EvalContext{})) x;
    decltype(std::declval<const S&>().evaluator(EvalContext{})) s;
    const std::int64_t* offsets;
    const std::int64_t* positions;
    Array<index_t, R> shape;
    Array<index_t, RS> source_shape;
    int k0, kn;
    ScatterMode mode;
    bool include_self;

    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      CoordIndex<I, R> at{};
      at.coord = detail::node_coords<R>(ix, shape);
      index_t key = 0;
      for (int d = k0; d < k0 + kn; ++d) key = key * shape[d] + static_cast<index_t>(at.coord[d]);
      const compute_type self = x(at);
      const std::int64_t first = offsets[key], last = offsets[key + 1];
      if (first == last) return self;
      const int pn = RS - (R - kn);
      CoordIndex<I, RS> src{};
      for (int d = 0; d < k0; ++d) src.coord[d] = at.coord[d];
      for (int d = k0 + kn; d < R; ++d) src.coord[d - kn + pn] = at.coord[d];
      auto read = [&](std::int64_t k) {
        index_t p = static_cast<index_t>(positions[k]);
        for (int d = k0 + pn - 1; d >= k0; --d) {
          src.coord[d] = static_cast<I>(p % source_shape[d]);
          p /= source_shape[d];
        }
        return static_cast<compute_type>(s(src));
      };
      if (mode == ScatterMode::replace) return read(last - 1);
      compute_type acc = include_self ? self : read(first);
      for (std::int64_t k = include_self ? first : first + 1; k < last; ++k) {
        const compute_type v = read(k);
        switch (mode) {
          case ScatterMode::amax:
            acc = takes(v > acc, v, acc) ? v : acc;
            break;
          case ScatterMode::amin:
            acc = takes(v < acc, v, acc) ? v : acc;
            break;
          case ScatterMode::prod:
            acc = static_cast<compute_type>(acc * v);
            break;
          default:  // sum, mean
            acc = static_cast<compute_type>(acc + v);
        }
      }
      if (mode == ScatterMode::mean) {
        const auto n = static_cast<compute_type>(last - first + (include_self ? 1 : 0));
        if constexpr (std::is_floating_point_v<compute_type>) {
          acc = acc / n;
        } else if constexpr (!std::is_same_v<compute_type, bool>) {
          compute_type q = static_cast<compute_type>(acc / n);  // floor division, as torch
          if constexpr (std::is_signed_v<compute_type>)
            if (q * n != acc && (acc < 0)) q = static_cast<compute_type>(q - 1);
          acc = q;
        }
      }
      return acc;
    }
    // amax/amin: v replaces acc when it compares so, or is a NaN (which then stays), as torch
    static FT_HD FT_INLINE bool takes(bool better, compute_type v, compute_type acc) {
      if constexpr (std::is_floating_point_v<compute_type>)
        return acc == acc && (better || v != v);
      else
        return better;
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, R>(*this, i);
    }
  };

  const Shape<R>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  Eval evaluator(const EvalContext&) const {
    return {x_.evaluator(detail::remapped_context()),
            s_.evaluator(detail::remapped_context()),
            groups_.offsets.data(),
            groups_.positions.data(),
            shape_,
            source_shape_,
            k0_,
            kn_,
            mode_,
            include_self_};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(x_, f);
    detail::for_each_remapped_leaf(s_, f);
    detail::for_each_remapped_leaf(groups_.offsets, f);
    detail::for_each_remapped_leaf(groups_.positions, f);
  }
  const X& self() const { return x_; }
  const S& source() const { return s_; }

 private:
  X x_;
  S s_;
  Shape<R> shape_;
  Shape<RS> source_shape_;
  detail::Grouping groups_;
  int k0_, kn_;
  ScatterMode mode_;
  bool include_self_;
  std::optional<Device> device_;
};

// ---- OneHot ----
// out[c, k] = t[c] == k (int64); a class outside [0, C) is reported.
template <int R>
class OneHot {
 public:
  using value_type = std::int64_t;
  static constexpr int rank = R + 1;

  OneHot(Tensor<std::int64_t, R> t, index_t classes, int code) : t_(std::move(t)), code_(code) {
    for (int d = 0; d < R; ++d) shape_[d] = t_.shape()[d];
    shape_[R] = classes;
  }
  struct Eval {
    const std::int64_t* t;
    Array<index_t, R> strides;
    Array<index_t, R + 1> shape;
    int* word;
    int code;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE std::int64_t operator()(const Index<I, OR, D>& ix) const {
      const Array<I, R + 1> c = detail::node_coords<R + 1>(ix, shape);
      I off = 0;
      for (int d = 0; d < R; ++d) off += c[d] * static_cast<I>(strides[d]);
      const std::int64_t v = t[off];
      if (v < 0 || v >= shape[R]) cuda::report(word, code);
      return v == static_cast<std::int64_t>(c[R]) ? 1 : 0;
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<std::int64_t, N> load(I i) const {
      return detail::load_by_index<N, std::int64_t, R + 1>(*this, i);
    }
  };
  const Shape<R + 1>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return t_.device(); }
  Device device() const { return t_.device(); }
  Eval evaluator(const EvalContext&) const {
    return {t_.data(), detail::read_strides(t_), shape_, cuda::report_word(device()), code_};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(t_, f);
  }

 private:
  Tensor<std::int64_t, R> t_;
  Shape<R + 1> shape_{};
  int code_;
};

// ---- FlatTake / FlatPut: masked_select and its gradient ----
// out[i] = e at the row-major position positions[i] of `shape` (e broadcast to it).
template <class E, int R>
class FlatTake {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = 1;
  FlatTake(E e, Tensor<std::int64_t, 1> positions, const Shape<R>& shape)
      : e_(std::move(e)), pos_(std::move(positions)), shape_(shape), out_{pos_.numel()} {}
  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    const std::int64_t* pos;
    Array<index_t, R> shape, e_shape;
    Array<index_t, 1> out;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      const Array<I, 1> c = detail::node_coords<1>(ix, out);
      CoordIndex<I, R> at{};
      index_t p = static_cast<index_t>(pos[c[0]]);
      for (int d = R - 1; d >= 0; --d) {
        at.coord[d] = e_shape[d] == 1 ? I(0) : static_cast<I>(p % shape[d]);
        p /= shape[d];
      }
      return e(at);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, 1>(*this, i);
    }
  };
  const Shape<1>& shape() const { return out_; }
  std::optional<Device> device_opt() const { return pos_.device(); }
  Device device() const { return pos_.device(); }
  Eval evaluator(const EvalContext&) const {
    Eval ev{e_.evaluator(detail::remapped_context()), pos_.data(), shape_, {}, out_};
    for (int d = 0; d < R; ++d) ev.e_shape[d] = d < R - E::rank ? 1 : e_.shape()[d - (R - E::rank)];
    return ev;
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(e_, f);
    detail::for_each_remapped_leaf(pos_, f);
  }
  const E& operand() const { return e_; }
  const Tensor<std::int64_t, 1>& positions() const { return pos_; }
  const Shape<R>& full_shape() const { return shape_; }
  const char* op() const { return "masked_select"; }
  static constexpr const char* op_name() { return "masked_select"; }

 private:
  E e_;
  Tensor<std::int64_t, 1> pos_;
  Shape<R> shape_;
  Shape<1> out_;
};

// The adjoint of FlatTake: element c of `shape` is g[i] where positions[i] is c's row-major
// position (a binary search: the positions ascend), else 0.
template <class G, int R>
class FlatPut {
 public:
  using value_type = typename G::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = R;
  FlatPut(G g, Tensor<std::int64_t, 1> positions, const Shape<R>& shape)
      : g_(std::move(g)), pos_(std::move(positions)), shape_(shape) {}
  struct Eval {
    decltype(std::declval<const G&>().evaluator(EvalContext{})) g;
    const std::int64_t* pos;
    index_t n;
    Array<index_t, R> shape;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      const Array<I, R> c = detail::node_coords<R>(ix, shape);
      index_t p = 0;
      for (int d = 0; d < R; ++d) p = p * shape[d] + static_cast<index_t>(c[d]);
      index_t lo = 0, hi = n;
      while (lo < hi) {
        const index_t mid = lo + (hi - lo) / 2;
        if (pos[mid] < p)
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo == n || pos[lo] != p) return compute_type(0);
      return g(Index<I, 1, false>{0, {static_cast<I>(lo)}});
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, R>(*this, i);
    }
  };
  const Shape<R>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return pos_.device(); }
  Device device() const { return pos_.device(); }
  Eval evaluator(const EvalContext&) const {
    return {g_.evaluator(detail::remapped_context()), pos_.data(), pos_.numel(), shape_};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(g_, f);
    detail::for_each_remapped_leaf(pos_, f);
  }

 private:
  G g_;
  Tensor<std::int64_t, 1> pos_;
  Shape<R> shape_;
};

namespace detail {
template <class E>
inline constexpr bool is_expression_node_v<Gather<E>> = true;
template <class E>
struct has_var<Gather<E>> : has_var<E> {};
template <class E, int K, int B>
inline constexpr bool is_expression_node_v<IndexGather<E, K, B>> = true;
template <class E, int K, int B>
struct has_var<IndexGather<E, K, B>> : has_var<E> {};
template <class X, class S, int R, int RS>
inline constexpr bool is_expression_node_v<Scattered<X, S, R, RS>> = true;
template <int R>
inline constexpr bool is_expression_node_v<OneHot<R>> = true;
template <class E, int R>
inline constexpr bool is_expression_node_v<FlatTake<E, R>> = true;
template <class E, int R>
struct has_var<FlatTake<E, R>> : has_var<E> {};
template <class G, int R>
inline constexpr bool is_expression_node_v<FlatPut<G, R>> = true;
}  // namespace detail

// ---- destination keys ----
namespace indexing {

// scatter/gather: source p (row-major over pshape, the index's shape) goes to the element of
// kshape at p's coordinates with [dim] = index[p] (0 along kshape's size-1 dims: broadcast).
template <int R>
struct KeyAlongDim {
  const std::int64_t* idx;
  Array<index_t, R> istrides, pshape, kshape;
  int dim;
  int* word;
  int code;
  FT_HD FT_INLINE std::int64_t operator()(index_t p) const {
    index_t c[R];
    detail::unravel_position<index_t, R>(p, pshape, c);
    index_t off = 0;
    for (int d = 0; d < R; ++d) off += c[d] * istrides[d];
    const std::int64_t v = idx[off];
    std::int64_t key = 0, V = 1;
    for (int d = 0; d < R; ++d) V *= kshape[d];
    if (v < 0 || v >= kshape[dim]) {
      cuda::report(word, code);
      return V;
    }
    for (int d = 0; d < R; ++d) key = key * kshape[d] + (d == dim ? v : (kshape[d] == 1 ? 0 : c[d]));
    return key;
  }
};

// index_add / index_select's gradient: source p goes to index[p] along the dim.
struct KeySelect {
  const std::int64_t* idx;
  index_t stride, size;
  int* word;
  int code;
  FT_HD FT_INLINE std::int64_t operator()(index_t p) const {
    const std::int64_t v = idx[p * stride];
    if (v < 0 || v >= size) {
      cuda::report(word, code);
      return size;
    }
    return v;
  }
};

// index_put / index's gradient: source b (row-major over bshape) goes to
// (i0[b], …, i(K−1)[b]) of the leading K dims (negative indices count from the end).
template <int K, int B>
struct KeyIndices {
  Array<const std::int64_t*, K> idx;
  Array<Array<index_t, B>, K> istrides;
  Array<index_t, B> bshape;
  Array<index_t, K> sizes;
  int* word;
  int code;
  FT_HD FT_INLINE std::int64_t operator()(index_t p) const {
    index_t c[B > 0 ? B : 1];
    detail::unravel_position<index_t, B>(p, bshape, c);
    std::int64_t key = 0, V = 1;
    for (int j = 0; j < K; ++j) V *= sizes[j];
    for (int j = 0; j < K; ++j) {
      index_t off = 0;
      for (int d = 0; d < B; ++d) off += c[d] * istrides[j][d];
      std::int64_t v = idx[j][off];
      v += v < 0 ? sizes[j] : 0;
      if (v < 0 || v >= sizes[j]) {
        cuda::report(word, code);
        return V;
      }
      key = key * sizes[j] + v;
    }
    return key;
  }
};

// The count of sources at each element: offsets[v + 1] − offsets[v] (+1 with self).
template <class T>
struct GroupCount {
  const std::int64_t* offsets;
  std::int64_t extra;
  FT_HD FT_INLINE T operator()(index_t v) const { return static_cast<T>(offsets[v + 1] - offsets[v] + extra); }
};

template <class X>
Tensor<typename X::value_type, X::rank> materialize(const X& x) {
  if constexpr (std::is_same_v<X, Tensor<typename X::value_type, X::rank>>)
    return x;
  else
    return ft::eval(x);
}

// The grouping of scatter(x [R], dim, index [R]): index's elements by destination in x.
template <int R>
detail::Grouping group_along_dim(const char* op, const Shape<R>& xshape, int dim, const Tensor<std::int64_t, R>& index,
                                 const Shape<R>& pshape) {
  const Device dev = index.device();
  auto where = [&] {
    return ft::detail::concat("dimension ", dim, " with size ", xshape[dim], " (index ", to_string(index.shape()),
                              ", self ", to_string(xshape), ")");
  };
  detail::check_indices(op, index, xshape[dim], false, where);
  const int code = detail::gpu_check_code(dev, ft::detail::concat(op, ": an index is out of bounds for ", where()));
  KeyAlongDim<R> key{index.data(), detail::read_strides(index), pshape, xshape, dim, cuda::report_word(dev), code};
  return detail::group_by_key(key, pshape.numel(), xshape.numel(), dev, op);
}

// index_add's grouping: the entries of a vector index by their value along a dim of size n.
inline detail::Grouping group_select(const char* op, const Tensor<std::int64_t, 1>& index, index_t n, int dim,
                                     const std::string& shapes) {
  const Device dev = index.device();
  auto where = [&] { return ft::detail::concat("dimension ", dim, " with size ", n, " (", shapes, ")"); };
  detail::check_indices(op, index, n, false, where);
  const int code = detail::gpu_check_code(dev, ft::detail::concat(op, ": an index is out of bounds for ", where()));
  KeySelect key{index.data(), index.numel() ? index.strides()[0] : 0, n, cuda::report_word(dev), code};
  return detail::group_by_key(key, index.numel(), n, dev, op);
}

// The broadcast shape of K index tensors.
template <int B, std::size_t K>
Shape<B> broadcast_indices(const char* op, const std::array<Tensor<std::int64_t, B>, K>& idx) {
  Shape<B> s = idx[0].shape();
  for (std::size_t j = 1; j < K; ++j) s = ft::detail::broadcast_shapes(op, s, idx[j].shape());
  return s;
}
template <int B, std::size_t K>
std::array<Tensor<std::int64_t, B>, K> expand_indices(const std::array<Tensor<std::int64_t, B>, K>& idx,
                                                      const Shape<B>& s) {
  std::array<Tensor<std::int64_t, B>, K> r;
  for (std::size_t j = 0; j < K; ++j) {
    if constexpr (B > 0) {
      Array<index_t, B> st = idx[j].strides();
      for (int d = 0; d < B; ++d)
        if (idx[j].shape()[d] == 1) st[d] = 0;
      r[j] = Tensor<std::int64_t, B>(idx[j].storage(), idx[j].data(), s, st);
    } else {
      r[j] = idx[j];
    }
  }
  return r;
}

// index_put's grouping: positions over the indices' broadcast shape by destination among the
// leading K dims of xshape.
template <int R, int B, std::size_t K>
detail::Grouping group_indices(const char* op, const Shape<R>& xshape,
                               const std::array<Tensor<std::int64_t, B>, K>& idx, const Shape<B>& bshape) {
  constexpr int NK = static_cast<int>(K);
  const Device dev = idx[0].device();
  KeyIndices<NK, B> key{};
  index_t V = 1;
  for (int j = 0; j < NK; ++j) {
    detail::check_indices(op, idx[j], xshape[j], true, [&] {
      return ft::detail::concat("dimension ", j, " with size ", xshape[j], " (index ", to_string(idx[j].shape()),
                                ", self ", to_string(xshape), ")");
    });
    key.idx[j] = idx[j].data();
    key.istrides[j] = detail::read_strides(idx[j]);
    key.sizes[j] = xshape[j];
    V *= xshape[j];
  }
  key.bshape = bshape;
  key.word = cuda::report_word(dev);
  key.code = detail::gpu_check_code(
      dev, ft::detail::concat(op, ": an index is out of bounds for the indexed dimensions of ", to_string(xshape)));
  return detail::group_by_key(key, bshape.numel(), V, dev, op);
}

// nonzero's element (i, k): coordinate k of the i-th position.
template <int R>
struct Coords {
  const std::int64_t* pos;
  Array<index_t, R> shape;
  FT_HD FT_INLINE std::int64_t operator()(index_t i) const {
    index_t p = static_cast<index_t>(pos[i / R]);
    const int k = static_cast<int>(i % R);
    for (int d = R - 1; d > k; --d) p /= shape[d];
    return p % shape[k];
  }
};

// t's leading part: [0, shape[d]) along every dim (a view).
template <class T, int R>
Tensor<T, R> leading(const Tensor<T, R>& t, const Shape<R>& shape) {
  Tensor<T, R> r = t;
  for (int d = 0; d < R; ++d)
    if (shape[d] != t.shape()[d]) r = r.slice(d, 0, shape[d]);
  return r;
}

inline ScatterMode parse_reduce(std::string_view reduce) {
  if (reduce == "sum") return ScatterMode::sum;
  if (reduce == "mean") return ScatterMode::mean;
  if (reduce == "amax") return ScatterMode::amax;
  if (reduce == "amin") return ScatterMode::amin;
  if (reduce == "prod") return ScatterMode::prod;
  fail("scatter_reduce", "reduce argument must be either sum, prod, mean, amax or amin, got ", reduce);
}

// torch's shape rules for scatter: index no larger than src anywhere, nor than self outside dim.
template <int R>
void check_scatter_shapes(const char* op, const Shape<R>& self, const Shape<R>& index, const Shape<R>* src, int dim) {
  bool ok = true;
  for (int d = 0; d < R; ++d) {
    if (d != dim && index[d] > self[d]) ok = false;
    if (src && index[d] > (*src)[d]) ok = false;
  }
  if (!ok)
    fail(op, "expected index ", to_string(index), " to be smaller than self ", to_string(self),
         " apart from dimension ", dim,
         src ? ft::detail::concat(" and to be smaller size than src ", to_string(*src)) : std::string());
}

}  // namespace indexing

// ---- gathers (expressions) ----

// torch.index_select(x, dim, index): x's slices at index (a vector) along dim.
template <Expression E>
auto index_select(const E& x, int dim, const Tensor<std::int64_t, 1>& index) {
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "index_select");
  Shape<R> shape = x.shape();
  shape[dim] = index.numel();
  Shape<R> ishape;
  Array<index_t, R> istrides{};
  for (int d = 0; d < R; ++d) ishape[d] = d == dim ? index.numel() : 1;
  istrides[dim] = index.numel() ? index.strides()[0] : 0;
  Tensor<std::int64_t, R> view(index.storage(), index.data(), ishape, istrides);
  return Gather<E>("index_select", x, view, dim, shape, to_string(index.shape()));
}

// torch.gather(x, dim, index): out[c] = x[c with c[dim] = index[c]]; index has x's rank and
// no larger size than x outside dim.
template <Expression E>
auto gather(const E& x, int dim, const Tensor<std::int64_t, E::rank>& index) {
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "gather");
  for (int d = 0; d < R; ++d)
    if (d != dim && index.shape()[d] > x.shape()[d])
      fail("gather", "size of index ", to_string(index.shape()), " exceeds the input ", to_string(x.shape()),
           " at dimension ", d);
  return Gather<E>("gather", x, index, dim, index.shape(), to_string(index.shape()));
}

// torch.take_along_dim(x, indices, dim): x and indices broadcast against each other outside dim.
template <Expression E>
auto take_along_dim(const E& x, const Tensor<std::int64_t, E::rank>& indices, int dim) {
  constexpr int R = E::rank;
  dim = wrap_dim(dim, R, "take_along_dim");
  Shape<R> xs = x.shape(), shape;
  xs[dim] = indices.shape()[dim];
  shape = ft::detail::broadcast_shapes("take_along_dim", xs, indices.shape());
  Array<index_t, R> st = indices.strides();
  for (int d = 0; d < R; ++d)
    if (indices.shape()[d] == 1) st[d] = 0;
  Tensor<std::int64_t, R> view(indices.storage(), indices.data(), shape, st);
  return Gather<E>("take_along_dim", x, view, dim, shape, to_string(indices.shape()));
}
// take_along_dim without dim: over the flattened input and indices.
template <class X>
requires(Expression<X>&& requires(const X& x) {
  x.flatten();
}) auto take_along_dim(const X& x, const Tensor<std::int64_t, X::rank>& indices) {
  return take_along_dim(x.flatten(), indices.contiguous().flatten(), 0);
}

// x[i0, …, i(K−1)] (ATen's index): K ≥ 1 index tensors, broadcast together, over the leading K
// dims; the result is [broadcast index shape…, x.shape[K:]…]. Negative indices count from the end.
template <Expression E, int B, std::size_t K>
auto index(const E& x, const std::array<Tensor<std::int64_t, B>, K>& indices) {
  static_assert(K >= 1 && static_cast<int>(K) <= E::rank, "ft::index: between 1 and rank(x) index tensors");
  const Shape<B> b = indexing::broadcast_indices("index", indices);
  return IndexGather<E, static_cast<int>(K), B>("index", x, indexing::expand_indices(indices, b), b);
}
template <Expression E, int B>
auto index(const E& x, const Tensor<std::int64_t, B>& i0) {
  return ft::index(x, std::array<Tensor<std::int64_t, B>, 1>{i0});
}

// torch.nn.functional.one_hot(t, num_classes): [..., num_classes] of int64. num_classes = −1
// takes max(t) + 1: one host wait.
template <int R>
OneHot<R> one_hot(const Tensor<std::int64_t, R>& t, index_t num_classes = -1) {
  const Device dev = t.device();
  if (num_classes == -1) {
    check(t.numel() > 0, "one_hot", "can not infer the total number of classes from an empty tensor");
    num_classes = static_cast<index_t>(Tensor<std::int64_t, 0>(ft::max(t)).item()) + 1;
  }
  check(num_classes >= 0, "one_hot", "num_classes must be -1 or non-negative, got ", num_classes);
  detail::check_indices("one_hot", t, num_classes, false, [&] {
    return ft::detail::concat(num_classes,
                              " classes (class values must be non-negative and smaller than num_classes; "
                              "input ",
                              to_string(t.shape()), ")");
  });
  return OneHot<R>(
      t, num_classes,
      detail::gpu_check_code(dev, ft::detail::concat("one_hot: a class value is out of range for ", num_classes,
                                                     " classes (input ", to_string(t.shape()), ")")));
}

// torch.masked_fill(x, mask, value): value where mask (bool, broadcast) is true. A where, so it
// fuses and its gradient (x's; value's when value is an expression) is where's.
template <Expression X, Expression M, Operand V>
auto masked_fill(const X& x, const M& mask, const V& value) {
  static_assert(std::is_same_v<typename M::value_type, bool>, "ft::masked_fill: the mask must be a bool expression");
  using T = typename X::value_type;
  if constexpr (Expression<V>) {
    static_assert(V::rank == 0, "ft::masked_fill: value must be a number or a zero-dimensional tensor");
    if constexpr (std::is_same_v<typename V::value_type, T>)
      return Where<M, V, X>(mask, value, x);
    else
      return Where<M, decltype(cast<T>(value)), X>(mask, cast<T>(value), x);
  } else {
    return Where<M, Scalar<T>, X>(mask, Scalar<T>{static_cast<T>(value)}, x);
  }
}

// ---- data-dependent sizes (one host wait each) ----

// torch.nonzero(x): [n, rank] int64, the coordinates of the non-zero elements in row-major order.
template <Expression E>
Tensor<std::int64_t, 2> nonzero(const E& x) {
  constexpr int R = E::rank;
  const Device dev = x.device();
  Tensor<bool, 1> flags;
  if constexpr (std::is_same_v<E, Tensor<bool, R>>) {
    if (x.is_contiguous()) flags = x.reshape(Shape<1>{x.numel()});
  }
  if (!flags.defined()) {
    Tensor<bool, R> f = (x != typename E::value_type(0));
    flags = f.reshape(Shape<1>{f.numel()});
  }
  const Tensor<std::int64_t, 1> pos = detail::true_positions(flags, "nonzero");
  Tensor<std::int64_t, 2> out(Shape<2>{pos.numel(), R}, dev);
  if constexpr (R > 0) out = Generator<indexing::Coords<R>, 2>({pos.data(), x.shape()}, out.shape(), dev);
  return out;
}

// torch.where(cond): nonzero(cond) as one index vector per dimension (views of one tensor).
template <Expression E>
std::array<Tensor<std::int64_t, 1>, E::rank> where(const E& cond) {
  const Tensor<std::int64_t, 2> nz = nonzero(cond);
  std::array<Tensor<std::int64_t, 1>, E::rank> r;
  for (int d = 0; d < E::rank; ++d) r[d] = nz.select(1, d);
  return r;
}

// torch.masked_select(x, mask): the elements of x where mask (x and mask broadcast together),
// in row-major order: a vector expression over the positions found (one host wait).
template <Expression X, Expression M>
auto masked_select(const X& x, const M& mask) {
  static_assert(std::is_same_v<typename M::value_type, bool>, "ft::masked_select: the mask must be a bool expression");
  constexpr int R = X::rank > M::rank ? X::rank : M::rank;
  const Shape<R> s = ft::detail::broadcast_shapes("masked_select", x.shape(), mask.shape());
  ft::detail::common_device("masked_select", ft::detail::device_of(x), ft::detail::device_of(mask));
  Tensor<bool, R> f(s, mask.device());
  f = mask;
  return FlatTake<X, R>(x, detail::true_positions(f.reshape(Shape<1>{f.numel()}), "masked_select"), s);
}

namespace indexing {
// The trues of a bool mask over x's leading dims, one index vector a dim (views of nonzero's
// result: one host wait), after checking the mask's shape against those dims (PyTorch's rule).
template <int M, int R>
std::array<Tensor<std::int64_t, 1>, M> mask_indices(const char* op, const Tensor<bool, M>& mask,
                                                    const Shape<R>& shape) {
  static_assert(M >= 1 && M <= R, "ft: a bool mask indexes between 1 and rank(x) leading dims");
  for (int d = 0; d < M; ++d)
    if (mask.shape()[d] != shape[d])
      fail(op, "the shape of the mask ", to_string(mask.shape()), " at index ", d,
           " does not match the shape of the indexed tensor ", to_string(shape));
  const Tensor<std::int64_t, 2> nz = nonzero(mask);
  std::array<Tensor<std::int64_t, 1>, M> r;
  for (int d = 0; d < M; ++d) r[d] = nz.select(1, d);
  return r;
}
}  // namespace indexing

// x[mask] (ATen's index with a bool mask): mask over x's M leading dims, of their shape; the
// result is [number of trues, x.shape[M:]…], in the trues' row-major order (one host wait).
template <Expression E, int M>
auto index(const E& x, const Tensor<bool, M>& mask) {
  return ft::index(x, indexing::mask_indices("index", mask, x.shape()));
}

// ---- scatters (boundaries: a new tensor, one launch on the CPU) ----
namespace indexing {

// The result of a scatter over tensors/expressions: one evaluation of the Scattered node.
template <class X, class S, int R, int RS>
Tensor<typename X::value_type, R> run(const X& x, const S& s, const Shape<RS>& source_shape, detail::Grouping g, int k0,
                                      int kn, ScatterMode mode, bool include_self) {
  return ft::eval(Scattered<X, S, R, RS>(x, s, x.shape(), source_shape, std::move(g), k0, kn, mode, include_self));
}

template <class X, class S>
auto scatter_along(const char* op, const X& x, int dim, const Tensor<std::int64_t, X::rank>& index, const S& src,
                   ScatterMode mode, bool include_self) {
  constexpr int R = X::rank;
  if constexpr (S::rank == R) {
    const Shape<R> ss = src.shape();
    check_scatter_shapes(op, x.shape(), index.shape(), &ss, dim);
  } else {
    check_scatter_shapes<R>(op, x.shape(), index.shape(), nullptr, dim);
  }
  ft::detail::common_device(op, ft::detail::device_of(x), index.device());
  auto g = group_along_dim(op, x.shape(), dim, index, index.shape());
  return run<X, S, R, R>(x, src, index.shape(), std::move(g), 0, R, mode, include_self);
}

}  // namespace indexing

namespace autograd::detail {
// Adds g into the part of v's gradient that is [0, shape[d]) along every dim (the part of a
// scatter's src that its index covers), or the whole gradient when the shapes agree.
template <class T, int R, class G>
void accumulate_leading(const Var<T, R>& v, const Shape<R>& shape, const G& g) {
  if (!v.requires_grad()) return;
  if (shape == v.shape()) return v.state().accumulate(g);
  accumulate_into_view(
      v, [&](const Tensor<T, R>& t) { return indexing::leading(t, shape); }, g);
}
}  // namespace autograd::detail

// torch.scatter(x, dim, index, src): x with x[c with c[dim] = index[c]] = src[c]. With
// duplicate destinations the last source (in row-major order) wins, on every device.
template <Expression X, Expression S>
auto scatter(const X& x, int dim, const Tensor<std::int64_t, X::rank>& index, const S& src) {
  static_assert(S::rank == X::rank, "ft::scatter: index, self and src must have the same rank");
  dim = wrap_dim(dim, X::rank, "scatter");
  if constexpr (autograd::detail::any_var_v<X, S>) {
    auto vx = autograd::to_var(x);
    auto vs = autograd::to_var(src);
    auto out = indexing::scatter_along("scatter", vx.value(), dim, index, vs.value(), ScatterMode::replace, true);
    using T = typename decltype(out)::value_type;
    auto bwd = [vx, vs, dim, index](const Tensor<T, X::rank>& g) {
      if (vx.requires_grad())
        vx.state().accumulate(
            indexing::scatter_along("scatter", g, dim, index, Scalar<T>{0}, ScatterMode::replace, true));
      autograd::detail::accumulate_leading(vs, index.shape(), gather(g, dim, index));
    };
    return autograd::record("scatter", out, std::move(bwd), vx, vs);
  } else {
    return indexing::scatter_along("scatter", x, dim, index, src, ScatterMode::replace, true);
  }
}
// torch.scatter(x, dim, index, value): value at every indexed element.
template <Expression X, class V>
requires std::is_arithmetic_v<V>
auto scatter(const X& x, int dim, const Tensor<std::int64_t, X::rank>& index, V value) {
  using T = typename X::value_type;
  dim = wrap_dim(dim, X::rank, "scatter");
  if constexpr (autograd::detail::any_var_v<X>) {
    auto vx = autograd::to_var(x);
    auto out = indexing::scatter_along("scatter", vx.value(), dim, index, Scalar<T>{static_cast<T>(value)},
                                       ScatterMode::replace, true);
    auto bwd = [vx, dim, index](const Tensor<T, X::rank>& g) {
      vx.state().accumulate(
          indexing::scatter_along("scatter", g, dim, index, Scalar<T>{0}, ScatterMode::replace, true));
    };
    return autograd::record("scatter", out, std::move(bwd), vx);
  } else {
    return indexing::scatter_along("scatter", x, dim, index, Scalar<T>{static_cast<T>(value)}, ScatterMode::replace,
                                   true);
  }
}

namespace indexing {
// scatter_reduce's "prod" backward (torch's scatter_reduce_backward): each element's gradient is
// g times the product of the other factors of its destination, computed without dividing by a
// zero. Self: g·P'/x', with x' = x where x ≠ 0 else 1 and P' the product with x' in place of
// x. A source: g·P/s where it is not the only zero source of its destination; where it is, g
// times the product with that source replaced by 1.
template <class T, int R>
void scatter_prod_backward(const char* op, const Var<T, R>& vx, const Var<T, R>& vs, int dim,
                           const Tensor<std::int64_t, R>& index, bool include_self, const Tensor<T, R>& out,
                           const Tensor<T, R>& g) {
  const Shape<R> is = index.shape();
  const Tensor<T, R>& x = vx.value();
  if (vx.requires_grad()) {
    const Tensor<T, R> nonzero_x = where(x == T(0), T(1), x);
    const Tensor<T, R> p = scatter_along(op, nonzero_x, dim, index, vs.value(), ScatterMode::prod, include_self);
    const Tensor<T, R> gx = g * p / nonzero_x;
    if (include_self)
      vx.state().accumulate(gx);
    else  // the destinations' values do not depend on x
      vx.state().accumulate(scatter_along(op, gx, dim, index, Scalar<T>{0}, ScatterMode::replace, true));
  }
  if (vs.requires_grad()) {
    const Tensor<T, R> s = leading(vs.value(), is);
    // the zero sources of each source's destination
    const Tensor<T, R> zero_sources = gather(
        scatter_along(op, zeros<T>(x.shape(), x.device()), dim, index, cast<T>(s == T(0)), ScatterMode::sum, true), dim,
        index);
    const Tensor<bool, R> only_zero = logical_and(s == T(0), zero_sources == T(1));
    const Tensor<T, R> p = scatter_along(op, x, dim, index, where(only_zero, T(1), s), ScatterMode::prod, include_self);
    autograd::detail::accumulate_leading(
        vs, is, where(only_zero, gather(g * p, dim, index), gather(g * out, dim, index) / where(s == T(0), T(1), s)));
  }
}
}  // namespace indexing

// torch.scatter_reduce(x, dim, index, src, reduce, include_self): reduce ∈ sum, prod, mean,
// amax, amin; gradients for all of them.
template <Expression X, Expression S>
auto scatter_reduce(const X& x, int dim, const Tensor<std::int64_t, X::rank>& index, const S& src,
                    std::string_view reduce, bool include_self = true) {
  static_assert(S::rank == X::rank, "ft::scatter_reduce: index, self and src must have the same rank");
  constexpr int R = X::rank;
  dim = wrap_dim(dim, R, "scatter_reduce");
  const ScatterMode mode = indexing::parse_reduce(reduce);
  if constexpr (autograd::detail::any_var_v<X, S>) {
    auto vx = autograd::to_var(x);
    auto vs = autograd::to_var(src);
    using T = typename decltype(vx)::value_type;
    Tensor<T, R> out =
        indexing::scatter_along("scatter_reduce", vx.value(), dim, index, vs.value(), mode, include_self);
    auto bwd = [vx, vs, dim, index, mode, include_self, out](const Tensor<T, R>& g) {
      const char* op = "scatter_reduce";
      const Shape<R> is = index.shape();
      if (mode == ScatterMode::prod)
        return indexing::scatter_prod_backward(op, vx, vs, dim, index, include_self, out, g);
      if (mode == ScatterMode::sum) {
        if (vx.requires_grad()) {
          if (include_self)
            vx.state().accumulate(g);
          else
            vx.state().accumulate(indexing::scatter_along(op, g, dim, index, Scalar<T>{0}, ScatterMode::replace, true));
        }
        autograd::detail::accumulate_leading(vs, is, gather(g, dim, index));
        return;
      }
      auto groups = indexing::group_along_dim(op, vx.shape(), dim, index, is);
      Tensor<T, R> n(vx.shape(), g.device());
      if (mode == ScatterMode::mean) {
        // N: the sources at each element (+1 with self), at least 1
        n = ft::maximum(Generator<indexing::GroupCount<T>, R>({groups.offsets.data(), include_self ? 1 : 0}, vx.shape(),
                                                              g.device()),
                        T(1));
      } else {
        // amax / amin: N = the elements equal to the result (self and sources), the gradient split among them
        auto self_is = cast<T>(vx.value() == out);
        auto src_is = cast<T>(indexing::leading(vs.value(), is) == gather(out, dim, index));
        n = Scattered<decltype(self_is), decltype(src_is), R, R>(self_is, src_is, vx.shape(), is, groups, 0, R,
                                                                 ScatterMode::sum, true);
      }
      Tensor<T, R> gn = g / n;
      if (vx.requires_grad()) {
        // (a new tensor: assigning to a copy of gn's handle would overwrite gn)
        const Tensor<T, R> gx = mode == ScatterMode::mean ? gn : Tensor<T, R>(cast<T>(vx.value() == out) * gn);
        if (include_self)
          vx.state().accumulate(gx);
        else
          vx.state().accumulate(indexing::scatter_along(op, gx, dim, index, Scalar<T>{0}, ScatterMode::replace, true));
      }
      if (vs.requires_grad()) {
        if (mode == ScatterMode::mean)
          autograd::detail::accumulate_leading(vs, is, gather(gn, dim, index));
        else
          autograd::detail::accumulate_leading(
              vs, is, cast<T>(indexing::leading(vs.value(), is) == gather(out, dim, index)) * gather(gn, dim, index));
      }
    };
    return autograd::record("scatter_reduce", out, std::move(bwd), vx, vs);
  } else {
    return indexing::scatter_along("scatter_reduce", x, dim, index, src, mode, include_self);
  }
}

// torch.scatter_add(x, dim, index, src) = scatter_reduce(…, "sum").
template <Expression X, Expression S>
auto scatter_add(const X& x, int dim, const Tensor<std::int64_t, X::rank>& index, const S& src) {
  static_assert(S::rank == X::rank, "ft::scatter_add: index, self and src must have the same rank");
  dim = wrap_dim(dim, X::rank, "scatter_add");
  if constexpr (autograd::detail::any_var_v<X, S>) {
    auto vx = autograd::to_var(x);
    auto vs = autograd::to_var(src);
    auto out = indexing::scatter_along("scatter_add", vx.value(), dim, index, vs.value(), ScatterMode::sum, true);
    using T = typename decltype(out)::value_type;
    auto bwd = [vx, vs, dim, index](const Tensor<T, X::rank>& g) {
      autograd::accumulate(vx, g);
      autograd::detail::accumulate_leading(vs, index.shape(), gather(g, dim, index));
    };
    return autograd::record("scatter_add", out, std::move(bwd), vx, vs);
  } else {
    return indexing::scatter_along("scatter_add", x, dim, index, src, ScatterMode::sum, true);
  }
}

// torch.index_add(x, dim, index, source, alpha): x with alpha·source's slices added at index
// (a vector) along dim; duplicates add in index order.
template <Expression X, Expression S, class A = int>
auto index_add(const X& x, int dim, const Tensor<std::int64_t, 1>& index, const S& source, A alpha = 1) {
  constexpr int R = X::rank;
  static_assert(S::rank == R, "ft::index_add: source must have self's rank");
  using T = typename X::value_type;
  dim = wrap_dim(dim, R, "index_add");
  Shape<R> ss = x.shape();
  ss[dim] = index.numel();
  check(source.shape() == ss, "index_add", "source ", to_string(source.shape()), " does not match self ",
        to_string(x.shape()), " with ", index.numel(), " indices along dimension ", dim);
  auto impl = [&](const auto& xv, const auto& sv) {
    ft::detail::common_device("index_add", ft::detail::device_of(xv), index.device());
    auto g =
        indexing::group_select("index_add", index, x.shape()[dim], dim,
                               ft::detail::concat("index ", to_string(index.shape()), ", self ", to_string(x.shape())));
    if (alpha == A(1))
      return indexing::run<std::decay_t<decltype(xv)>, std::decay_t<decltype(sv)>, R, R>(xv, sv, ss, std::move(g), dim,
                                                                                         1, ScatterMode::sum, true);
    auto scaled = sv * static_cast<T>(alpha);
    return indexing::run<std::decay_t<decltype(xv)>, decltype(scaled), R, R>(xv, scaled, ss, std::move(g), dim, 1,
                                                                             ScatterMode::sum, true);
  };
  if constexpr (autograd::detail::any_var_v<X, S>) {
    auto vx = autograd::to_var(x);
    auto vs = autograd::to_var(source);
    Tensor<T, R> out = impl(vx.value(), vs.value());
    auto bwd = [vx, vs, dim, index, alpha](const Tensor<T, R>& g) {
      autograd::accumulate(vx, g);
      if (vs.requires_grad()) {
        if (alpha == A(1))
          vs.state().accumulate(index_select(g, dim, index));
        else
          vs.state().accumulate(index_select(g, dim, index) * static_cast<T>(alpha));
      }
    };
    return autograd::record("index_add", out, std::move(bwd), vx, vs);
  } else {
    return impl(x, source);
  }
}

// torch.index_put(x, indices, values, accumulate): x with values written (added, with
// accumulate) at x[i0, …, i(K−1)]: K ≥ 1 int64 index tensors (broadcast together) over the
// leading K dims; values broadcast to [index shape…, x.shape[K:]…]. Without accumulate,
// the last of duplicate destinations wins (row-major order of the indices). Negative indices
// count from the end (a bool mask: the overload below; index tensors after a slice are not
// supported).
template <Expression X, int B, std::size_t K, Expression V>
auto index_put(const X& x, const std::array<Tensor<std::int64_t, B>, K>& indices, const V& values,
               bool accumulate = false) {
  constexpr int R = X::rank, NK = static_cast<int>(K), RS = B + R - NK;
  static_assert(K >= 1 && NK <= R, "ft::index_put: between 1 and rank(x) index tensors");
  static_assert(V::rank <= RS, "ft::index_put: values has a higher rank than x[indices]");
  using T = typename X::value_type;
  const Shape<B> b = indexing::broadcast_indices("index_put", indices);
  const auto idx = indexing::expand_indices(indices, b);
  Shape<RS> ss;
  for (int d = 0; d < B; ++d) ss[d] = b[d];
  for (int d = NK; d < R; ++d) ss[B + d - NK] = x.shape()[d];
  check(ft::detail::broadcast_shapes("index_put", values.shape(), ss) == ss, "index_put", "values ",
        to_string(values.shape()), " cannot be broadcast to the indexed shape ", to_string(ss));
  const ScatterMode mode = accumulate ? ScatterMode::sum : ScatterMode::replace;
  auto impl = [&](const auto& xv, const auto& vv) {
    for (const auto& t : idx) ft::detail::common_device("index_put", ft::detail::device_of(xv), t.device());
    auto g = indexing::group_indices("index_put", x.shape(), idx, b);
    return indexing::run<std::decay_t<decltype(xv)>, std::decay_t<decltype(vv)>, R, RS>(xv, vv, ss, std::move(g), 0, NK,
                                                                                        mode, true);
  };
  if constexpr (autograd::detail::any_var_v<X, V>) {
    auto vx = autograd::to_var(x);
    auto vv = autograd::to_var(values);
    Tensor<T, R> out = impl(vx.value(), vv.value());
    auto bwd = [vx, vv, idx, b, ss, accumulate](const Tensor<T, R>& g) {
      if (vx.requires_grad()) {
        if (accumulate) {
          vx.state().accumulate(g);
        } else {
          auto groups = indexing::group_indices("index_put", vx.shape(), idx, b);
          vx.state().accumulate(indexing::run<Tensor<T, R>, Scalar<T>, R, RS>(g, Scalar<T>{0}, ss, std::move(groups), 0,
                                                                              NK, ScatterMode::replace, true));
        }
      }
      if (vv.requires_grad())
        vv.state().accumulate(sum_to(IndexGather<Tensor<T, R>, NK, B>("index_put", g, idx, b), vv.shape()));
    };
    return autograd::record("index_put", out, std::move(bwd), vx, vv);
  } else {
    return impl(x, values);
  }
}
template <Expression X, int B, Expression V>
auto index_put(const X& x, const Tensor<std::int64_t, B>& index, const V& values, bool accumulate = false) {
  return index_put(x, std::array<Tensor<std::int64_t, B>, 1>{index}, values, accumulate);
}
// x[mask] = values (torch.index_put with a bool mask): mask over x's M leading dims, of their
// shape; values broadcast to [number of trues, x.shape[M:]…], written (added, with
// accumulate) in the trues' row-major order (one host wait, as PyTorch's boolean indexing).
template <Expression X, int M, Expression V>
auto index_put(const X& x, const Tensor<bool, M>& mask, const V& values, bool accumulate = false) {
  return index_put(x, indexing::mask_indices("index_put", mask, x.shape()), values, accumulate);
}

}  // namespace ft::inline FT_ABI

// ---- adjoints of the gather nodes: grouped sums of the upstream gradient ----
namespace ft::inline FT_ABI::autograd {

template <class E>
struct Adjoint<Gather<E>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Gather<E>& n, const G& g, F&& f, Cont&& k) {
    constexpr int R = E::rank;
    using T = typename G::value_type;
    const Shape<R> in = n.operand().shape();
    const Device dev = n.device();
    indexing::KeyAlongDim<R> key{
        n.index().data(), ft::detail::read_strides(n.index()), n.shape(), in, n.dim(), cuda::report_word(dev), 1};
    auto groups = ft::detail::group_by_key(key, n.shape().numel(), in.numel(), dev, n.op());
    return backprop(
        n.operand(),
        Scattered<Scalar<T>, G, R, R>(Scalar<T>{0}, g, in, n.shape(), std::move(groups), 0, R, ScatterMode::sum, false),
        f, k);
  }
};

template <class E, int K, int B>
struct Adjoint<IndexGather<E, K, B>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const IndexGather<E, K, B>& n, const G& g, F&& f, Cont&& k) {
    constexpr int R = E::rank;
    using T = typename G::value_type;
    const Shape<R> in = n.operand().shape();
    Shape<B> b;
    for (int d = 0; d < B; ++d) b[d] = n.shape()[d];
    auto groups = indexing::group_indices(n.op(), in, n.indices(), b);
    return backprop(n.operand(),
                    Scattered<Scalar<T>, G, R, IndexGather<E, K, B>::rank>(
                        Scalar<T>{0}, g, in, n.shape(), std::move(groups), 0, K, ScatterMode::sum, false),
                    f, k);
  }
};

template <class E, int R>
struct Adjoint<FlatTake<E, R>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const FlatTake<E, R>& n, const G& g, F&& f, Cont&& k) {
    return backprop(n.operand(), detail::fit(FlatPut<G, R>(g, n.positions(), n.full_shape()), n.operand().shape()), f,
                    k);
  }
};

}  // namespace ft::inline FT_ABI::autograd
