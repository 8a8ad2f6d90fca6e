// The CPU executor: one OpenMP parallel loop per statement.
#pragma once

#include "ft/core/config.hpp"
#include "ft/core/stats.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/launch.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ft::inline FT_ABI::exec::cpu {

// Below this many elements the loop runs on the calling thread: a parallel region costs
// a few microseconds, more than the work.
inline constexpr index_t kParallelGrain = 1 << 15;

inline int num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The evaluator is copied into each thread and `out` is restrict, so the compiler keeps the
// leaf pointers in registers and vectorises the loop.
template <class I, class T, int R, class Ev>
FT_CPU_MULTIVERSION void run_dense(T* __restrict__ out, Ev ev, I n) {
#pragma omp parallel for simd schedule(static) firstprivate(ev) if (n > kParallelGrain)
  for (I i = 0; i < n; ++i) store_value(out[i], ev(Index<I, R, true>{i}));
}

// Calls body(ix) for each dense index: the loop of a kernel whose body writes several outputs
// itself (autograd's multi-output gradient kernels).
template <class I, int R, class Body>
FT_CPU_MULTIVERSION void each_dense(const Body& body, I n) {
#pragma omp parallel if (n > kParallelGrain)
  {
    // a thread-local copy whose address does not escape: the stores cannot alias its fields,
    // so the leaf pointers stay in registers and the loop vectorises
    const Body b = body;
#pragma omp for simd schedule(static)
    for (I i = 0; i < n; ++i) b(Index<I, R, true>{i});
  }
}

// Thread `part` of `parts`: its contiguous share [begin, end) of n elements.
template <class I>
FT_INLINE void thread_share(I n, int part, int parts, I& begin, I& end) {
  begin = static_cast<I>(n / parts * part + (part < n % parts ? part : n % parts));
  end = begin + static_cast<I>(n / parts + (part < n % parts ? 1 : 0));
}

// Walks elements [begin, end) of the row-major box `box` placed at `origin` in the output
// (whose row-major strides are `cstrides`), row by row: the coordinates of the outer
// dimensions change once per row, and the inner loop over the last dimension is simple enough
// for the compiler to hoist each leaf's row offset and vectorise. body(ix) computes and stores
// element ix (output coordinates and linear index).
template <class I, int R, class Ix, class Body>
FT_INLINE void walk_box(const Body& shared_body, Ix ix, I begin, I end, const Shape<R>& box, const Array<I, R>& origin,
                        const Array<index_t, R>& cstrides) {
  const Body body = shared_body;  // a copy whose address does not escape: stores cannot alias its fields
  unravel<I, R>(begin, box, ix.coord);
  for (int d = 0; d < R; ++d) ix.coord[d] += origin[d];
  const I first = R > 0 ? origin[R - 1] : 0;
  const I last = R > 0 ? first + static_cast<I>(box[R - 1]) : 1;
  I pos = begin;
  while (pos < end) {
    I row = 0;  // the linear index of this row's element 0
    for (int d = 0; d + 1 < R; ++d) row += ix.coord[d] * static_cast<I>(cstrides[d]);
    const I j0 = R > 0 ? ix.coord[R - 1] : 0;
    const I j1 = (end - pos) < (last - j0) ? j0 + (end - pos) : last;
    for (I j = j0; j < j1; ++j) {
      if constexpr (R > 0) ix.coord[R - 1] = j;
      ix.linear = row + j;
      body(ix);
    }
    pos += j1 - j0;
    if constexpr (R > 0) {  // next row: carry into the outer dimensions
      ix.coord[R - 1] = first;
      for (int d = R - 2; d >= 0; --d) {
        if (++ix.coord[d] < origin[d] + static_cast<I>(box[d])) break;
        ix.coord[d] = origin[d];
      }
    }
  }
}

// Each thread takes a contiguous range of output elements and walks it (walk_box), with an
// index every tensor leaf reads by strides (StridedIndex: no per-element dense branch).
template <class I, int R, class Body>
FT_CPU_MULTIVERSION FT_CPU_STRIDED_LOOP void each_strided(const Body body, I n, const Shape<R> shape) {
  const int parts = n > kParallelGrain ? num_threads() : 1;
  const Array<index_t, R> cstrides = contiguous_strides(shape);
#pragma omp parallel for schedule(static) num_threads(parts) if (parts > 1) firstprivate(body, shape)
  for (int part = 0; part < parts; ++part) {
    I begin, end;
    thread_share(n, part, parts, begin, end);
    walk_box(body, StridedIndex<I, R>{}, begin, end, shape, Array<I, R>{}, cstrides);
  }
}

// The same loop for a statement whose one cat node splits the output along dimension d
// (CatSplit): each thread walks its share of part p's box, p = 0, 1, …, with the index
// naming the part (PartIndex), so the node reads it without a search.
template <class I, int R, class Body>
FT_CPU_MULTIVERSION FT_CPU_STRIDED_LOOP void each_cat_part(const Body body, const Shape<R> shape, int d,
                                                           const CatSplit split) {
  [[maybe_unused]] const I n = static_cast<I>(shape.numel());  // (read by OpenMP's if clause only)
  const Array<index_t, R> cstrides = contiguous_strides(shape);
#pragma omp parallel if (n > kParallelGrain) firstprivate(body, shape, split)
  {
#if defined(_OPENMP)
    const int me = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int me = 0, team = 1;
#endif
    for (int p = 0; p < split.n; ++p) {
      Shape<R> box = shape;
      box[d] = split.start[p + 1] - split.start[p];
      Array<I, R> origin{};
      origin[d] = static_cast<I>(split.start[p]);
      I begin, end;
      thread_share(static_cast<I>(box.numel()), me, team, begin, end);
      if (begin == end) continue;  // an empty part, or none of it for this thread
      PartIndex<I, R> ix{};
      ix.part = p;
      walk_box(body, ix, begin, end, box, origin, cstrides);
    }
  }
}

// Throws what a check inside the statement's loop reported (a gathered index out of bounds),
// now that the loop has ended: one relaxed load when nothing was reported.
inline void raise_reports() { cuda::check_reports(kCPU); }

// out[ix] = ev(ix): the body of a one-output strided kernel.
template <class T, int R, class Ev>
struct StoreTo {
  TensorWriter<T, R> out;
  Ev ev;
  template <class Ix>
  FT_INLINE void operator()(const Ix& ix) const {
    store_value(out[ix], ev(ix));
  }
};

template <class T, int R, class Ev>
void run(const Tensor<T, R>& dst, const Ev& ev, const Plan& plan) {
  stats::detail::record_launch(kCPU);
  index_t n = dst.numel();
  TensorWriter<T, R> out{dst.data(), dst.strides(), dst.is_contiguous()};
  // 64-bit indices only: on a CPU they cost the same as 32-bit ones, and one index type
  // halves the code each statement instantiates (compile time).
  if (plan.dense)
    run_dense<std::int64_t, T, R>(dst.data(), ev, n);
  else
    each_strided<std::int64_t>(StoreTo<T, R, Ev>{out, ev}, n, dst.shape());
  raise_reports();
}

// A statement whose one cat node `split` describes (found, not broadcast along its dimension),
// run a part at a time. Instantiated only for such statements (exec::run), so the others
// compile one loop, not two.
template <class T, int R, class Ev>
void run_by_part(const Tensor<T, R>& dst, const Ev& ev, const CatSplit& split) {
  stats::detail::record_launch(kCPU);
  TensorWriter<T, R> out{dst.data(), dst.strides(), dst.is_contiguous()};
  each_cat_part<std::int64_t>(StoreTo<T, R, Ev>{out, ev}, dst.shape(), R - split.from_end, split);
  raise_reports();
}

// Runs a multi-output kernel body over `shape` on the CPU: one launch.
template <int R, class Body>
void run_each(const Body& body, const Shape<R>& shape, bool dense) {
  stats::detail::record_launch(kCPU);
  const index_t n = shape.numel();
  if (dense)
    each_dense<std::int64_t, R>(body, n);
  else
    each_strided<std::int64_t>(body, n, shape);
  raise_reports();
}

}  // namespace ft::inline FT_ABI::exec::cpu
