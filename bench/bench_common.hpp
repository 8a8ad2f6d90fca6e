// What the benches share: the copy-bandwidth yardstick (of_copy_bw), the per-iteration
// report (bytes/s, launches), the timed loop (CUDA events on a GPU) and the device argument.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "ft/tensor.hpp"

namespace ft::bench {

using ft::index_t;

inline double g_copy_bw[2] = {0, 0};  // bytes/s read + written: [0] CPU, [1] GPU

inline void report(benchmark::State& state, double bytes, std::int64_t launches, ft::Device dev) {
  const double it = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(it * bytes));
  state.counters["launches_per_iter"] = it > 0 ? static_cast<double>(launches) / it : 0;
  double bw = g_copy_bw[dev.is_cuda() ? 1 : 0];
  if (bw > 0) state.counters["of_copy_bw"] = benchmark::Counter(it * bytes / bw, benchmark::Counter::kIsRate);
}

// The copy yardstick: cudaMemcpyAsync on a GPU; on the CPU one memcpy a thread over its share.
inline void copy(float* dst, const float* src, index_t n, ft::Device dev) {
  if (dev.is_cuda()) {
    ft::cuda::copy_bytes(dst, dev, src, dev, static_cast<std::size_t>(n) * 4);
    return;
  }
#pragma omp parallel
  {
#if defined(_OPENMP)
    const index_t parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
    const index_t parts = 1, part = 0;
#endif
    const index_t b = n * part / parts, e = n * (part + 1) / parts;
    std::memcpy(dst + b, src + b, static_cast<std::size_t>(e - b) * 4);
  }
}

// Runs body once an iteration; GPU time from CUDA events on the library's stream.
template <class F>
void timed_loop(benchmark::State& state, ft::Device dev, double bytes, F&& body) {
  body();  // warm up
  if (dev.is_cuda()) ft::cuda::synchronize();
  ft::stats::reset();
#if FT_CUDA_ENABLED
  if (dev.is_cuda()) {
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    for (auto _ : state) {
      cudaEventRecord(start, ft::cuda::current_stream());
      body();
      cudaEventRecord(stop, ft::cuda::current_stream());
      cudaEventSynchronize(stop);
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      state.SetIterationTime(ms / 1e3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    report(state, bytes, ft::stats::launches(dev), dev);
    return;
  }
#endif
  for (auto _ : state) {
    body();
    benchmark::ClobberMemory();
  }
  report(state, bytes, ft::stats::launches(dev), dev);
}

inline ft::Device device_of(const benchmark::State& state) {
  return state.range(0) ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU);
}

// The copy bandwidth every of_copy_bw divides by: the best of a few timed copies of 2^26 floats.
inline double measure_copy_bw(ft::Device dev, index_t n = index_t(1) << 26) {
  auto src = ft::uniform<float>({n}, -1.f, 1.f, dev, 9);
  auto dst = ft::zeros<float>({n}, dev);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    ft::cuda::synchronize();
    auto t0 = std::chrono::steady_clock::now();
    copy(dst.data(), src.data(), n, dev);
    if (dev.is_cuda()) ft::cuda::synchronize();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * 4 / s);
  }
  return best;
}

}  // namespace ft::bench
