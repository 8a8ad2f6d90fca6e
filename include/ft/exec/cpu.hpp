// The CPU executor: one OpenMP parallel loop per statement.
#pragma once

#include "ft/core/config.hpp"
#include "ft/core/stats.hpp"
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
  for (I i = 0; i < n; ++i) out[i] = static_cast<T>(ev(Index<I, R, true>{i}));
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

// Each thread takes a contiguous range of output elements and walks it row by row: the
// coordinates of the outer dimensions change once per row (one division per range), and
// the inner loop over the last dimension is simple enough for the compiler to hoist each
// leaf's row offset and vectorise. body(ix) computes and stores element ix.
template <class I, int R, class Body>
FT_CPU_MULTIVERSION void each_strided(const Body body, I n, const Shape<R> shape) {
  const I inner = R > 0 ? static_cast<I>(shape[R - 1]) : 1;
  const int parts = n > kParallelGrain ? num_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(parts) if (parts > 1) firstprivate(body, shape)
  for (int part = 0; part < parts; ++part) {
    const I begin = static_cast<I>(n / parts * part + (part < n % parts ? part : n % parts));
    const I end = begin + static_cast<I>(n / parts + (part < n % parts ? 1 : 0));
    Index<I, R, false> ix{begin, {}};
    unravel<I, R>(begin, shape, ix.coord);
    I row_start = begin;
    while (row_start < end) {
      const I j0 = R > 0 ? ix.coord[R - 1] : 0;
      const I j1 = (end - row_start) < (inner - j0) ? j0 + (end - row_start) : inner;
      for (I j = j0; j < j1; ++j) {
        if constexpr (R > 0) ix.coord[R - 1] = j;
        ix.linear = row_start + (j - j0);
        body(ix);
      }
      row_start += j1 - j0;
      if constexpr (R > 0) {  // next row: carry into the outer dimensions
        ix.coord[R - 1] = 0;
        for (int d = R - 2; d >= 0; --d) {
          if (++ix.coord[d] < static_cast<I>(shape[d])) break;
          ix.coord[d] = 0;
        }
      }
    }
  }
}

// out[ix] = ev(ix): the body of a one-output strided kernel.
template <class T, int R, class Ev>
struct StoreTo {
  TensorWriter<T, R> out;
  Ev ev;
  template <class Ix>
  FT_INLINE void operator()(const Ix& ix) const {
    out[ix] = static_cast<T>(ev(ix));
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
}

}  // namespace ft::inline FT_ABI::exec::cpu
