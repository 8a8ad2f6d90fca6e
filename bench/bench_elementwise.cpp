// Elementwise fusion (issue #2): a fused statement against the same work done one op at a
// time, against a plain copy of the same bytes, and against Eigen's Tensor module (CPU) or
// cub::DeviceTransform (GPU: the same op as one CCCL call on the same operands).
//
//   1. expr:      out = a * b + c * sigmoid(d) - e      (5 reads + 1 write an element; also on
//                 bfloat16 and half operands: fused_bf16, fused_fp16, half the bytes)
//   2. bcast:     out = x + row, x [4096, 4096], row [4096]
//   3. transpose: out = x.transpose(0, 1) * 2 + 1       (the strided path)
//
// Every benchmark reports bytes/s of the case's logical traffic (inputs read once + output
// written once, the same for every variant of a case, so the figures compare directly),
// launches_per_iter (ft::stats), and of_copy_bw: its bytes/s over the copy bandwidth
// measured in main() before any benchmark runs. Results: docs/benchmarks.md.
// The same file compiled by nvcc adds the GPU benches, which register only when a GPU exists.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ft/tensor.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if FT_CUDA_KERNELS
#include <cub/device/device_transform.cuh>
#endif

#if defined(FT_BENCH_HAVE_EIGEN) && FT_BENCH_HAVE_EIGEN && !FT_CUDA_ENABLED
#define FT_BENCH_EIGEN 1
#define EIGEN_USE_THREADS
#include <unsupported/Eigen/CXX11/Tensor>
#else
#define FT_BENCH_EIGEN 0
#endif

namespace {

using Vec = ft::Tensor<float, 1>;
using Mat = ft::Tensor<float, 2>;
using ft::index_t;

constexpr index_t kSide = 4096;  // the [4096, 4096] matrix of cases 2 and 3: 64 MiB
constexpr double kBytesPerFloat = sizeof(float);

// Copy bandwidth in bytes/s (read + written), measured in main() before the benchmarks.
double g_cpu_copy_bw = 0;
[[maybe_unused]] double g_gpu_copy_bw = 0;  // set only when a GPU exists

int omp_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The counters every benchmark reports. of_copy_bw is a rate counter: Google Benchmark divides
// it by the same time it divides bytes by (real or manual), so it is (bytes/s) / copy_bw.
void report(benchmark::State& state, double bytes_per_iter, std::int64_t launches, double copy_bw) {
  const double iters = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(iters * bytes_per_iter));
  state.counters["launches_per_iter"] = iters > 0 ? static_cast<double>(launches) / iters : 0.0;
  if (copy_bw > 0)
    state.counters["of_copy_bw"] = benchmark::Counter(iters * bytes_per_iter / copy_bw, benchmark::Counter::kIsRate);
}

void sync(ft::Device d) {
  if (d.is_cuda()) ft::cuda::synchronize();
}

// ---- operands, allocated once per (device, size) and kept for the whole run ----

struct ExprOperands {
  Vec a, b, c, d, e, out;
  Vec t1, t2, t3, t4;  // the five-statement version's temporaries, preallocated
};

ExprOperands& expr_operands(index_t n, ft::Device dev) {
  static std::map<std::pair<int, index_t>, std::unique_ptr<ExprOperands>> cache;
  auto& slot = cache[{dev.is_cuda() ? 1 + dev.index : 0, n}];
  if (!slot) {
    slot = std::make_unique<ExprOperands>();
    auto& o = *slot;
    o.a = ft::uniform<float>({n}, -1.f, 1.f, dev);
    o.b = ft::uniform<float>({n}, -1.f, 1.f, dev);
    o.c = ft::uniform<float>({n}, -1.f, 1.f, dev);
    o.d = ft::uniform<float>({n}, -4.f, 4.f, dev);  // where sigmoid is neither 0 nor 1
    o.e = ft::uniform<float>({n}, -1.f, 1.f, dev);
    for (Vec* t : {&o.out, &o.t1, &o.t2, &o.t3, &o.t4}) *t = ft::zeros<float>({n}, dev);  // touch every page now
    sync(dev);
  }
  return *slot;
}

struct MatOperands {
  Mat x, out;
  Vec row;
};

MatOperands& mat_operands(ft::Device dev) {
  static std::map<int, std::unique_ptr<MatOperands>> cache;
  auto& slot = cache[dev.is_cuda() ? 1 + dev.index : 0];
  if (!slot) {
    slot = std::make_unique<MatOperands>();
    slot->x = ft::uniform<float>({kSide, kSide}, -1.f, 1.f, dev);
    slot->row = ft::uniform<float>({kSide}, -1.f, 1.f, dev);
    slot->out = ft::zeros<float>({kSide, kSide}, dev);
    sync(dev);
  }
  return *slot;
}

struct CopyBuffers {
  Vec src, dst;
};

CopyBuffers& copy_buffers(index_t n, ft::Device dev) {
  static std::map<std::pair<int, index_t>, std::unique_ptr<CopyBuffers>> cache;
  auto& slot = cache[{dev.is_cuda() ? 1 + dev.index : 0, n}];
  if (!slot) {
    slot = std::make_unique<CopyBuffers>();
    slot->src = ft::uniform<float>({n}, -1.f, 1.f, dev);
    slot->dst = ft::zeros<float>({n}, dev);
    sync(dev);
  }
  return *slot;
}

// Logical bytes of each case: every input read once, the output written once.
double expr_bytes(index_t n) { return 6.0 * static_cast<double>(n) * kBytesPerFloat; }
double bcast_bytes() { return (2.0 * kSide * kSide + kSide) * kBytesPerFloat; }
double transpose_bytes() { return 2.0 * kSide * kSide * kBytesPerFloat; }

template <class A>
auto the_expr(const A& a, const A& b, const A& c, const A& d, const A& e) {
  return a * b + c * ft::sigmoid(d) - e;
}

// ---- CPU copies: the bandwidth yardstick ----

void copy_memcpy(float* dst, const float* src, index_t n) {
  std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
}

// One contiguous chunk a thread, each copied with memcpy (which streams large copies).
void copy_omp(float* dst, const float* src, index_t n) {
#pragma omp parallel
  {
#if defined(_OPENMP)
    const index_t parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
    const index_t parts = 1, part = 0;
#endif
    const index_t begin = n * part / parts, end = n * (part + 1) / parts;
    std::memcpy(dst + begin, src + begin, static_cast<std::size_t>(end - begin) * sizeof(float));
  }
}

// Bytes/s (read + written) of `copy`: the median of `slices` timed loops of at least
// `seconds` each, so that a moment of interference from other processes does not set it.
template <class F>
double time_cpu_copy(F copy, float* dst, const float* src, index_t n, double seconds, int slices = 5) {
  using clock = std::chrono::steady_clock;
  copy(dst, src, n);  // warm up: page tables, OpenMP threads
  std::vector<double> bw;
  for (int s = 0; s < slices; ++s) {
    std::int64_t reps = 0;
    const auto start = clock::now();
    double elapsed = 0;
    do {
      copy(dst, src, n);
      benchmark::ClobberMemory();
      ++reps;
      elapsed = std::chrono::duration<double>(clock::now() - start).count();
    } while (elapsed < seconds);
    bw.push_back(2.0 * static_cast<double>(n) * kBytesPerFloat * static_cast<double>(reps) / elapsed);
  }
  std::nth_element(bw.begin(), bw.begin() + slices / 2, bw.end());
  return bw[slices / 2];
}

// ---- hand-written loops: what the fused statement should compile to ----

// The library's vectorisable exp (expr/math.hpp): what the fused loop calls for sigmoid.
inline float vector_expf(float x) { return ft::math::exp(x); }

template <bool VectorExp>
void hand_expr(float* __restrict out, const float* __restrict a, const float* __restrict b, const float* __restrict c,
               const float* __restrict d, const float* __restrict e, index_t n) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) {
    const float ex = VectorExp ? vector_expf(-d[i]) : std::exp(-d[i]);
    out[i] = a[i] * b[i] + c[i] * (1.0f / (1.0f + ex)) - e[i];
  }
}

// ---- case 1: out = a * b + c * sigmoid(d) - e ----

void BM_cpu_expr_fused(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), ft::kCPU);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    o.out = the_expr(o.a, o.b, o.c, o.d, o.e);
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(state.range(0)), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

// The same statement on two-byte operands (issue #17): half the bytes, computed in float, one
// rounding at the store; of_copy_bw against the same copy bandwidth.
template <class H>
struct LowOperands {
  ft::Tensor<H, 1> a, b, c, d, e, out;
};
template <class H>
LowOperands<H>& low_operands(index_t n, ft::Device dev) {
  static std::map<std::pair<int, index_t>, std::unique_ptr<LowOperands<H>>> cache;
  auto& slot = cache[{dev.is_cuda() ? 1 + dev.index : 0, n}];
  if (!slot) {
    auto& f = expr_operands(n, dev);
    slot = std::make_unique<LowOperands<H>>();
    auto& o = *slot;
    o.a = ft::cast<H>(f.a), o.b = ft::cast<H>(f.b), o.c = ft::cast<H>(f.c), o.d = ft::cast<H>(f.d),
    o.e = ft::cast<H>(f.e), o.out = ft::cast<H>(f.out);
    sync(dev);
  }
  return *slot;
}
template <class H>
void BM_cpu_expr_fused_low(benchmark::State& state) {
  auto& o = low_operands<H>(state.range(0), ft::kCPU);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    o.out = the_expr(o.a, o.b, o.c, o.d, o.e);
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(state.range(0)) / 2, ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

// The fused statement on one OpenMP thread: the like-for-like peer of Eigen's DefaultDevice.
void BM_cpu_expr_fused_1thread(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), ft::kCPU);
  const int saved = omp_threads();
#if defined(_OPENMP)
  omp_set_num_threads(1);
#endif
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    o.out = the_expr(o.a, o.b, o.c, o.d, o.e);
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(state.range(0)), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
  (void)saved;
}

// PyTorch eager's way: one statement an op, into preallocated temporaries (9 reads + 5 writes).
void BM_cpu_expr_five_stmt(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), ft::kCPU);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    o.t1 = o.a * o.b;
    o.t2 = ft::sigmoid(o.d);
    o.t3 = o.c * o.t2;
    o.t4 = o.t1 + o.t3;
    o.out = o.t4 - o.e;
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(state.range(0)), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

// The same with a fresh tensor a statement, as eager code allocates (no caching allocator on CPU).
void BM_cpu_expr_five_stmt_alloc(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), ft::kCPU);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    Vec t1 = o.a * o.b;
    Vec t2 = ft::sigmoid(o.d);
    Vec t3 = o.c * t2;
    Vec t4 = t1 + t3;
    o.out = t4 - o.e;
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(state.range(0)), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

template <bool VectorExp>
void BM_cpu_expr_hand(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), ft::kCPU);
  const index_t n = state.range(0);
  for (auto _ : state) {
    hand_expr<VectorExp>(o.out.data(), o.a.data(), o.b.data(), o.c.data(), o.d.data(), o.e.data(), n);
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(n), 0, g_cpu_copy_bw);
}

#if FT_BENCH_EIGEN
using EigenVec = Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor, Eigen::Index>>;

template <class Device>
void eigen_expr_loop(benchmark::State& state, const Device& device) {
  auto& o = expr_operands(state.range(0), ft::kCPU);
  const Eigen::Index n = state.range(0);
  EigenVec a(o.a.data(), n), b(o.b.data(), n), c(o.c.data(), n), d(o.d.data(), n), e(o.e.data(), n);
  EigenVec out(o.out.data(), n);
  for (auto _ : state) {
    out.device(device) = a * b + c * d.sigmoid() - e;
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  report(state, expr_bytes(n), 0, g_cpu_copy_bw);
}

void BM_cpu_expr_eigen_1thread(benchmark::State& state) { eigen_expr_loop(state, Eigen::DefaultDevice{}); }

void BM_cpu_expr_eigen_2threads(benchmark::State& state) {
  static Eigen::ThreadPool pool(2);
  static Eigen::ThreadPoolDevice device(&pool, 2);
  eigen_expr_loop(state, device);
}
#endif

// ---- the CPU copy benches: N floats read and N written ----

template <void (*Copy)(float*, const float*, index_t)>
void BM_cpu_copy(benchmark::State& state) {
  const index_t n = state.range(0);
  auto& buf = copy_buffers(n, ft::kCPU);
  for (auto _ : state) {
    Copy(buf.dst.data(), buf.src.data(), n);
    benchmark::DoNotOptimize(buf.dst.data());
    benchmark::ClobberMemory();
  }
  report(state, 2.0 * static_cast<double>(n) * kBytesPerFloat, 0, g_cpu_copy_bw);
}

// ---- case 2: out = x + row ----

void BM_cpu_bcast_fused(benchmark::State& state) {
  auto& m = mat_operands(ft::kCPU);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    m.out = m.x + m.row;
    benchmark::DoNotOptimize(m.out.data());
    benchmark::ClobberMemory();
  }
  report(state, bcast_bytes(), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

void BM_cpu_bcast_hand(benchmark::State& state) {
  auto& m = mat_operands(ft::kCPU);
  float* __restrict out = m.out.data();
  const float* __restrict x = m.x.data();
  const float* __restrict row = m.row.data();
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < kSide; ++i) {
#pragma omp simd
      for (index_t j = 0; j < kSide; ++j) out[i * kSide + j] = x[i * kSide + j] + row[j];
    }
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  report(state, bcast_bytes(), 0, g_cpu_copy_bw);
}

// ---- case 3: out = x.transpose(0, 1) * 2 + 1 ----

void BM_cpu_transpose_fused(benchmark::State& state) {
  auto& m = mat_operands(ft::kCPU);
  const Mat xt = m.x.transpose(0, 1);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    m.out = xt * 2.0f + 1.0f;
    benchmark::DoNotOptimize(m.out.data());
    benchmark::ClobberMemory();
  }
  report(state, transpose_bytes(), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

// The same statement without the transpose: the dense path, for the strided path's cost.
void BM_cpu_transpose_dense_ref(benchmark::State& state) {
  auto& m = mat_operands(ft::kCPU);
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) {
    m.out = m.x * 2.0f + 1.0f;
    benchmark::DoNotOptimize(m.out.data());
    benchmark::ClobberMemory();
  }
  report(state, transpose_bytes(), ft::stats::launches(ft::kCPU) - l0, g_cpu_copy_bw);
}

// A hand-written tiled transpose: 32x32 tiles (4 KiB read, 4 KiB written) stay in L1.
void BM_cpu_transpose_hand_tiled(benchmark::State& state) {
  auto& m = mat_operands(ft::kCPU);
  float* __restrict out = m.out.data();
  const float* __restrict x = m.x.data();
  constexpr index_t kTile = 32;
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (index_t i0 = 0; i0 < kSide; i0 += kTile) {
      for (index_t j0 = 0; j0 < kSide; j0 += kTile) {
        for (index_t i = i0; i < i0 + kTile; ++i) {
#pragma omp simd
          for (index_t j = j0; j < j0 + kTile; ++j) out[i * kSide + j] = x[j * kSide + i] * 2.0f + 1.0f;
        }
      }
    }
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  report(state, transpose_bytes(), 0, g_cpu_copy_bw);
}

// ---- GPU benches: timed with CUDA events on the library's stream ----
#if FT_CUDA_ENABLED

const ft::Device kGPU(ft::kCUDA, 0);

class EventTimer {
 public:
  EventTimer() {
    FT_CUDA_CHECK(cudaEventCreate(&start_));
    FT_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Seconds that `f`'s work takes on the current stream, waiting for it to finish.
  template <class F>
  double time(F&& f) {
    cudaStream_t s = ft::cuda::current_stream();
    FT_CUDA_CHECK(cudaEventRecord(start_, s));
    f();
    FT_CUDA_CHECK(cudaEventRecord(stop_, s));
    FT_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    FT_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaEvent_t start_{}, stop_{};
};

// Runs `body` once a benchmark iteration, timed by events; reports launches on the GPU.
template <class F>
void gpu_loop(benchmark::State& state, double bytes_per_iter, F&& body) {
  EventTimer timer;
  body();  // warm up: the first launch of a kernel loads its module
  ft::cuda::synchronize();
  const auto l0 = ft::stats::launches(kGPU);
  for (auto _ : state) state.SetIterationTime(timer.time(body));
  const auto launches = ft::stats::launches(kGPU) - l0;
  report(state, bytes_per_iter, launches, g_gpu_copy_bw);
}

void BM_gpu_expr_fused(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), kGPU);
  gpu_loop(state, expr_bytes(state.range(0)), [&] { o.out = the_expr(o.a, o.b, o.c, o.d, o.e); });
}

template <class H>
void BM_gpu_expr_fused_low(benchmark::State& state) {
  auto& o = low_operands<H>(state.range(0), kGPU);
  gpu_loop(state, expr_bytes(state.range(0)) / 2, [&] { o.out = the_expr(o.a, o.b, o.c, o.d, o.e); });
}

void BM_gpu_expr_five_stmt(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), kGPU);
  gpu_loop(state, expr_bytes(state.range(0)), [&] {
    o.t1 = o.a * o.b;
    o.t2 = ft::sigmoid(o.d);
    o.t3 = o.c * o.t2;
    o.t4 = o.t1 + o.t3;
    o.out = o.t4 - o.e;
  });
}

// Fresh temporaries from the stream-ordered pool: PyTorch eager with its caching allocator.
void BM_gpu_expr_five_stmt_alloc(benchmark::State& state) {
  auto& o = expr_operands(state.range(0), kGPU);
  gpu_loop(state, expr_bytes(state.range(0)), [&] {
    Vec t1 = o.a * o.b;
    Vec t2 = ft::sigmoid(o.d);
    Vec t3 = o.c * t2;
    Vec t4 = t1 + t3;
    o.out = t4 - o.e;
  });
}

#if FT_CUDA_KERNELS
// The library-free anchor of gpu/expr/fused: the same five-input op (the library's sigmoid
// functor, so the arithmetic is the same) as one cub::DeviceTransform::Transform call, CCCL's
// tuned elementwise kernel, over the same operands.
struct ExprOp {
  ft::op::Sigmoid sigmoid;
  __device__ float operator()(float a, float b, float c, float d, float e) const { return a * b + c * sigmoid(d) - e; }
};

void cub_expr(const float* a, const float* b, const float* c, const float* d, const float* e, float* out, index_t n) {
  // int items: 32-bit offsets, as the fused kernel's 32-bit index path at these sizes
  FT_CUDA_CHECK(cub::DeviceTransform::Transform(::cuda::std::make_tuple(a, b, c, d, e), out, static_cast<int>(n),
                                                ExprOp{}, ft::cuda::current_stream()));
}

void BM_gpu_expr_cub_transform(benchmark::State& state) {
  const index_t n = state.range(0);
  auto& o = expr_operands(n, kGPU);
  gpu_loop(state, expr_bytes(n),
           [&] { cub_expr(o.a.data(), o.b.data(), o.c.data(), o.d.data(), o.e.data(), o.out.data(), n); });
}
#endif

// Device-to-device copy of N floats: N read and N written.
void BM_gpu_copy(benchmark::State& state) {
  const index_t n = state.range(0);
  auto& buf = copy_buffers(n, kGPU);
  gpu_loop(state, 2.0 * static_cast<double>(n) * kBytesPerFloat, [&] {
    FT_CUDA_CHECK(cudaMemcpyAsync(buf.dst.data(), buf.src.data(), static_cast<std::size_t>(n) * sizeof(float),
                                  cudaMemcpyDeviceToDevice, ft::cuda::current_stream()));
  });
}

void BM_gpu_bcast_fused(benchmark::State& state) {
  auto& m = mat_operands(kGPU);
  gpu_loop(state, bcast_bytes(), [&] { m.out = m.x + m.row; });
}

void BM_gpu_transpose_fused(benchmark::State& state) {
  auto& m = mat_operands(kGPU);
  const Mat xt = m.x.transpose(0, 1);
  gpu_loop(state, transpose_bytes(), [&] { m.out = xt * 2.0f + 1.0f; });
}

void BM_gpu_transpose_dense_ref(benchmark::State& state) {
  auto& m = mat_operands(kGPU);
  gpu_loop(state, transpose_bytes(), [&] { m.out = m.x * 2.0f + 1.0f; });
}

// Device-to-device copy bandwidth (bytes/s, read + written) of 3 * 2^24 floats.
double measure_gpu_copy_bw() {
  const index_t n = index_t(3) << 24;
  auto& buf = copy_buffers(n, kGPU);
  const auto bytes = static_cast<std::size_t>(n) * sizeof(float);
  auto copy = [&] {
    FT_CUDA_CHECK(
        cudaMemcpyAsync(buf.dst.data(), buf.src.data(), bytes, cudaMemcpyDeviceToDevice, ft::cuda::current_stream()));
  };
  for (int i = 0; i < 5; ++i) copy();
  constexpr int kReps = 50;
  EventTimer timer;
  const double seconds = timer.time([&] {
    for (int i = 0; i < kReps; ++i) copy();
  });
  return 2.0 * static_cast<double>(bytes) * kReps / seconds;
}

#endif  // FT_CUDA_ENABLED

// ---- correctness check before timing: a benchmark of wrong results measures nothing ----

template <class T, int R>
float max_abs_diff(const ft::Tensor<T, R>& x, const ft::Tensor<T, R>& y) {
  auto vx = x.to_vector(), vy = y.to_vector();
  float m = 0;
  for (std::size_t i = 0; i < vx.size(); ++i) m = std::max(m, std::abs(vx[i] - vy[i]));
  return m;
}

void expect_close(const char* what, float diff) {
  if (!(diff <= 1e-5f)) {
    std::fprintf(stderr, "bench_elementwise: %s differs from its reference by %g\n", what, diff);
    std::exit(1);
  }
}

// Checks each fused statement against a plain loop (odd sizes, so tails are exercised).
void verify(ft::Device dev) {
  const index_t n = 4099;
  Vec a = ft::uniform<float>({n}, -1.f, 1.f), b = ft::uniform<float>({n}, -1.f, 1.f),
      c = ft::uniform<float>({n}, -1.f, 1.f), d = ft::uniform<float>({n}, -4.f, 4.f),
      e = ft::uniform<float>({n}, -1.f, 1.f);
  Vec ref = ft::zeros<float>({n}), vexp = ft::zeros<float>({n});
  hand_expr<false>(ref.data(), a.data(), b.data(), c.data(), d.data(), e.data(), n);
  hand_expr<true>(vexp.data(), a.data(), b.data(), c.data(), d.data(), e.data(), n);
  expect_close("hand loop with vector_expf", max_abs_diff(vexp, ref));
  Vec fused = the_expr(a.to(dev), b.to(dev), c.to(dev), d.to(dev), e.to(dev));
  expect_close("fused expr", max_abs_diff(fused.to(ft::kCPU), ref));
#if FT_CUDA_KERNELS
  if (dev.is_cuda()) {
    const Vec ad = a.to(dev), bd = b.to(dev), cd = c.to(dev), dd = d.to(dev), ed = e.to(dev);
    Vec out = ft::zeros<float>({n}, dev);
    cub_expr(ad.data(), bd.data(), cd.data(), dd.data(), ed.data(), out.data(), n);
    expect_close("cub::DeviceTransform expr", max_abs_diff(out.to(ft::kCPU), ref));
  }
#endif
#if FT_BENCH_EIGEN
  if (dev.is_cpu()) {
    Vec eig = ft::zeros<float>({n});
    EigenVec ea(a.data(), n), eb(b.data(), n), ec(c.data(), n), ed(d.data(), n), ee(e.data(), n), eo(eig.data(), n);
    eo = ea * eb + ec * ed.sigmoid() - ee;
    expect_close("Eigen expr", max_abs_diff(eig, ref));
  }
#endif

  const index_t rows = 37, cols = 53;
  Mat x = ft::uniform<float>({rows, cols}, -1.f, 1.f);
  Vec row = ft::uniform<float>({cols}, -1.f, 1.f);
  Mat bref = ft::zeros<float>({rows, cols}), tref = ft::zeros<float>({cols, rows});
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      bref.data()[i * cols + j] = x.data()[i * cols + j] + row.data()[j];
      tref.data()[j * rows + i] = x.data()[i * cols + j] * 2.0f + 1.0f;
    }
  Mat xd = x.to(dev);
  Mat bc = xd + row.to(dev);
  expect_close("fused broadcast", max_abs_diff(bc.to(ft::kCPU), bref));
  Mat tr = xd.transpose(0, 1) * 2.0f + 1.0f;
  expect_close("fused transpose", max_abs_diff(tr.to(ft::kCPU), tref));
}

void register_benchmarks() {
  using benchmark::RegisterBenchmark;
  const index_t sizes[] = {index_t(1) << 24, index_t(1) << 26};
  // Real time: the work runs on OpenMP or Eigen pool threads, not only the timing thread.
  auto cpu = [&](const char* name, void (*fn)(benchmark::State&), bool sized) {
    auto* b = RegisterBenchmark(name, fn)->UseRealTime()->Unit(benchmark::kMillisecond);
    if (sized)
      for (index_t n : sizes) b->Arg(n);
  };
  cpu("cpu/expr/fused", BM_cpu_expr_fused, true);
  cpu("cpu/expr/fused_bf16", BM_cpu_expr_fused_low<ft::bfloat16>, true);
  cpu("cpu/expr/fused_fp16", BM_cpu_expr_fused_low<ft::half>, true);
  cpu("cpu/expr/five_stmt", BM_cpu_expr_five_stmt, true);
  cpu("cpu/expr/five_stmt_alloc", BM_cpu_expr_five_stmt_alloc, true);
  cpu("cpu/expr/fused_1thread", BM_cpu_expr_fused_1thread, true);
#if FT_BENCH_EIGEN
  cpu("cpu/expr/eigen_1thread", BM_cpu_expr_eigen_1thread, true);
  cpu("cpu/expr/eigen_2threads", BM_cpu_expr_eigen_2threads, true);
#endif
  cpu("cpu/expr/hand_expf", BM_cpu_expr_hand<false>, true);
  cpu("cpu/expr/hand_vector_expf", BM_cpu_expr_hand<true>, true);
  cpu("cpu/bcast/fused", BM_cpu_bcast_fused, false);
  cpu("cpu/bcast/hand", BM_cpu_bcast_hand, false);
  cpu("cpu/transpose/fused", BM_cpu_transpose_fused, false);
  cpu("cpu/transpose/dense_ref", BM_cpu_transpose_dense_ref, false);
  cpu("cpu/transpose/hand_tiled", BM_cpu_transpose_hand_tiled, false);
  // Copies of the same bytes as each case: 3N floats for expr (6N moved), 4096^2 for the others.
  const index_t copies[] = {3 * sizes[0], 3 * sizes[1], kSide * kSide};
  for (auto* b : {RegisterBenchmark("cpu/copy/memcpy", BM_cpu_copy<copy_memcpy>),
                  RegisterBenchmark("cpu/copy/omp", BM_cpu_copy<copy_omp>)}) {
    b->UseRealTime()->Unit(benchmark::kMillisecond);
    for (index_t n : copies) b->Arg(n);
  }

#if FT_CUDA_ENABLED
  if (!ft::cuda::is_available()) return;
  auto gpu = [&](const char* name, void (*fn)(benchmark::State&), bool sized) {
    auto* b = RegisterBenchmark(name, fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
    if (sized)
      for (index_t n : sizes) b->Arg(n);
  };
  gpu("gpu/expr/fused", BM_gpu_expr_fused, true);
  gpu("gpu/expr/fused_bf16", BM_gpu_expr_fused_low<ft::bfloat16>, true);
  gpu("gpu/expr/fused_fp16", BM_gpu_expr_fused_low<ft::half>, true);
#if FT_CUDA_KERNELS
  gpu("gpu/expr/cub_transform", BM_gpu_expr_cub_transform, true);
#endif
  gpu("gpu/expr/five_stmt", BM_gpu_expr_five_stmt, true);
  gpu("gpu/expr/five_stmt_alloc", BM_gpu_expr_five_stmt_alloc, true);
  gpu("gpu/bcast/fused", BM_gpu_bcast_fused, false);
  gpu("gpu/transpose/fused", BM_gpu_transpose_fused, false);
  gpu("gpu/transpose/dense_ref", BM_gpu_transpose_dense_ref, false);
  auto* b = RegisterBenchmark("gpu/copy/d2d", BM_gpu_copy)->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (index_t n : copies) b->Arg(n);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  verify(ft::kCPU);
  // The copy yardstick: the faster of one memcpy and one memcpy a thread (each the median of
  // five 0.1 s slices), on 3 * 2^24 floats.
  {
    auto& buf = copy_buffers(index_t(3) << 24, ft::kCPU);
    const index_t n = buf.src.numel();
    const double bw_memcpy = time_cpu_copy(copy_memcpy, buf.dst.data(), buf.src.data(), n, 0.1);
    const double bw_omp = time_cpu_copy(copy_omp, buf.dst.data(), buf.src.data(), n, 0.1);
    g_cpu_copy_bw = std::max(bw_memcpy, bw_omp);
    std::printf("cpu copy bandwidth (read + write): memcpy %.2f GB/s, omp %d threads %.2f GB/s\n", bw_memcpy * 1e-9,
                omp_threads(), bw_omp * 1e-9);
    benchmark::AddCustomContext("cpu_copy_GBps", std::to_string(g_cpu_copy_bw * 1e-9));
  }
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_threads()));
#if FT_CUDA_ENABLED
  if (ft::cuda::is_available()) {
    verify(kGPU);
    g_gpu_copy_bw = measure_gpu_copy_bw();
    std::printf("gpu d2d copy bandwidth (read + write): %.1f GB/s\n", g_gpu_copy_bw * 1e-9);
    benchmark::AddCustomContext("gpu_copy_GBps", std::to_string(g_gpu_copy_bw * 1e-9));
  } else {
    std::printf("no CUDA device: the GPU benches are not registered\n");
  }
#endif
  std::fflush(stdout);

  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
