// Matrix multiplication (issue #3): ft::matmul against the libraries it calls and a peer.
//
//   CPU, 1024³ fp32 (C = A·B, all row-major):
//     ft_matmul          ft::matmul(a, b): a new result tensor each call (the CPU BLAS when
//                        the build found one, else the blocked kernel)
//     openblas           cblas_sgemm on the same buffers, into a preallocated C
//     eigen              Eigen 3 row-major Matrix product, c.noalias() = a * b (OpenMP threads)
//     ft_blocked         ft's own blocked kernel (gemm_blocked), the path when there is no BLAS
//     *_1thread          the same on one thread: per-core speed, less exposed to other load
//     ft_matmul_bf16     ft::matmul on bfloat16 operands, float accumulation (oneDNN on AMX where
//                        the CPU has it, else OpenBLAS's sbgemm if exported, else widened for sgemm)
//     ft_matmul_fp16     ft::matmul on half operands (widened to float for sgemm)
//     openblas_sbgemm    cblas_sbgemm on the same bfloat16 buffers into a preallocated float C
//   GPU, 4096³ fp32 (registered only when a GPU is present):
//     ft_matmul          ft::matmul(a, b), result allocated from the stream-ordered pool
//     cublas             cublasSgemm on the same buffers into a preallocated C
//     ft_matmul_bf16     ft::matmul on bfloat16 operands (tensor cores, float accumulation)
//     cublas_bf16        cublasGemmEx, bfloat16 in and out, CUBLAS_COMPUTE_32F
//
// Counters: FLOPS (2·m·n·k per call, per second) and launches_per_iter (ft::stats).
// Results: docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ft/tensor.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(FT_BENCH_HAVE_EIGEN) && FT_BENCH_HAVE_EIGEN && !FT_CUDA_ENABLED
#define FT_BENCH_EIGEN 1
#include <Eigen/Dense>
#else
#define FT_BENCH_EIGEN 0
#endif

namespace {

using Mat = ft::Tensor<float, 2>;
using ft::index_t;

constexpr index_t kCpuSide = 1024;
constexpr index_t kGpuSide = 4096;

int omp_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Limits OpenMP (and OpenBLAS) to one thread for the scope.
class OneThread {
 public:
  OneThread() : previous_(omp_threads()) { set(1); }
  ~OneThread() { set(previous_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  static void set([[maybe_unused]] int n) {
#if defined(_OPENMP)
    omp_set_num_threads(n);
#endif
#if defined(FT_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    openblas_set_num_threads(n);
#endif
  }
  int previous_;
};

void report(benchmark::State& state, index_t side, std::int64_t launches) {
  const double iters = static_cast<double>(state.iterations());
  const double flops = 2.0 * static_cast<double>(side) * static_cast<double>(side) * static_cast<double>(side);
  state.counters["FLOPS"] = benchmark::Counter(iters * flops, benchmark::Counter::kIsRate);
  state.counters["launches_per_iter"] = iters > 0 ? static_cast<double>(launches) / iters : 0.0;
}

struct Operands {
  Mat a, b, c;
  ft::Tensor<ft::bfloat16, 2> a16, b16, c16;  // the same values rounded to bfloat16
  ft::Tensor<ft::half, 2> ah, bh;
};
Operands& operands(index_t side, ft::Device dev) {
  static Operands cpu, gpu;
  Operands& o = dev.is_cpu() ? cpu : gpu;
  if (!o.a.defined()) {
    o.a = ft::uniform<float>({side, side}, -1.0f, 1.0f, dev, 1);
    o.b = ft::uniform<float>({side, side}, -1.0f, 1.0f, dev, 2);
    o.c = ft::zeros<float>({side, side}, dev);
    o.a16 = ft::cast<ft::bfloat16>(o.a);
    o.b16 = ft::cast<ft::bfloat16>(o.b);
    o.c16 = ft::cast<ft::bfloat16>(o.c);
    o.ah = ft::cast<ft::half>(o.a);
    o.bh = ft::cast<ft::half>(o.b);
  }
  return o;
}

// ---- CPU ----

template <class F>
void cpu_loop(benchmark::State& state, F&& body) {
  body();  // warm up: first touch of the result, thread pools started
  const auto l0 = ft::stats::launches(ft::kCPU);
  for (auto _ : state) body();
  report(state, kCpuSide, ft::stats::launches(ft::kCPU) - l0);
}

void ft_matmul_cpu(Operands& o) {
  Mat c = ft::matmul(o.a, o.b);
  benchmark::DoNotOptimize(c.data());
}
void ft_blocked_cpu(Operands& o) {
  const index_t n = kCpuSide;
  ft::linalg::detail::gemm_blocked<float>(false, false, n, n, n, 1.0f, o.a.data(), n, 0, o.b.data(), n, 0, 0.0f,
                                          o.c.data(), n, 0, 1);
  benchmark::ClobberMemory();
}

void BM_cpu_ft_matmul(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  cpu_loop(state, [&] { ft_matmul_cpu(o); });
}
void BM_cpu_ft_matmul_1thread(benchmark::State& state) {
  OneThread one;
  BM_cpu_ft_matmul(state);
}
void BM_cpu_ft_blocked(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  cpu_loop(state, [&] { ft_blocked_cpu(o); });
}
void BM_cpu_ft_blocked_1thread(benchmark::State& state) {
  OneThread one;
  BM_cpu_ft_blocked(state);
}

void BM_cpu_ft_matmul_bf16(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  cpu_loop(state, [&] {
    ft::Tensor<ft::bfloat16, 2> c = ft::matmul(o.a16, o.b16);
    benchmark::DoNotOptimize(c.data());
  });
}
void BM_cpu_ft_matmul_fp16(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  cpu_loop(state, [&] {
    ft::Tensor<ft::half, 2> c = ft::matmul(o.ah, o.bh);
    benchmark::DoNotOptimize(c.data());
  });
}

#if defined(FT_HAVE_CBLAS)
void BM_cpu_openblas_sbgemm(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  const auto sbgemm = ft::linalg::detail::cblas_sbgemm_fn();
  if (!sbgemm) {
    state.SkipWithError("this BLAS has no cblas_sbgemm");
    return;
  }
  const int n = static_cast<int>(kCpuSide);
  cpu_loop(state, [&] {
    sbgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f,
           reinterpret_cast<const std::uint16_t*>(o.a16.data()), n,
           reinterpret_cast<const std::uint16_t*>(o.b16.data()), n, 0.0f, o.c.data(), n);
    benchmark::ClobberMemory();
  });
}

void openblas_cpu(Operands& o) {
  const int n = static_cast<int>(kCpuSide);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, o.a.data(), n, o.b.data(), n, 0.0f, o.c.data(),
              n);
  benchmark::ClobberMemory();
}
void BM_cpu_openblas(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  cpu_loop(state, [&] { openblas_cpu(o); });
}
void BM_cpu_openblas_1thread(benchmark::State& state) {
  OneThread one;
  BM_cpu_openblas(state);
}
#endif

#if FT_BENCH_EIGEN
using EigenMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using EigenMap = Eigen::Map<EigenMat, Eigen::Aligned64>;
void BM_cpu_eigen(benchmark::State& state) {
  auto& o = operands(kCpuSide, ft::kCPU);
  EigenMap a(o.a.data(), kCpuSide, kCpuSide), b(o.b.data(), kCpuSide, kCpuSide), c(o.c.data(), kCpuSide, kCpuSide);
  Eigen::setNbThreads(omp_threads());
  cpu_loop(state, [&] {
    c.noalias() = a * b;
    benchmark::ClobberMemory();
  });
}
void BM_cpu_eigen_1thread(benchmark::State& state) {
  OneThread one;
  BM_cpu_eigen(state);
}
#endif

// ---- GPU: timed with CUDA events on the library's stream ----
#if FT_CUDA_ENABLED

const ft::Device kGPU(ft::kCUDA, 0);

// Runs `body` once an iteration and sets the iteration's time from CUDA events around it.
template <class F>
void gpu_loop(benchmark::State& state, F&& body) {
  cudaEvent_t start, stop;
  FT_CUDA_CHECK(cudaEventCreate(&start));
  FT_CUDA_CHECK(cudaEventCreate(&stop));
  body();  // warm up: cuBLAS handle, kernel modules, the pool's first block
  ft::cuda::synchronize();
  const auto l0 = ft::stats::launches(kGPU);
  cudaStream_t s = ft::cuda::current_stream();
  for (auto _ : state) {
    FT_CUDA_CHECK(cudaEventRecord(start, s));
    body();
    FT_CUDA_CHECK(cudaEventRecord(stop, s));
    FT_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    FT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(static_cast<double>(ms) * 1e-3);
  }
  report(state, kGpuSide, ft::stats::launches(kGPU) - l0);
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
}

void BM_gpu_ft_matmul(benchmark::State& state) {
  auto& o = operands(kGpuSide, kGPU);
  gpu_loop(state, [&] {
    Mat c = ft::matmul(o.a, o.b);
    benchmark::DoNotOptimize(c.data());
  });
}

void BM_gpu_ft_matmul_bf16(benchmark::State& state) {
  auto& o = operands(kGpuSide, kGPU);
  gpu_loop(state, [&] {
    ft::Tensor<ft::bfloat16, 2> c = ft::matmul(o.a16, o.b16);
    benchmark::DoNotOptimize(c.data());
  });
}

void BM_gpu_cublas_bf16(benchmark::State& state) {
  auto& o = operands(kGpuSide, kGPU);
  cublasHandle_t h;
  FT_CUBLAS_CHECK(cublasCreate(&h));
  FT_CUBLAS_CHECK(cublasSetStream(h, ft::cuda::current_stream()));
  const int n = static_cast<int>(kGpuSide);
  const float one = 1.0f, zero = 0.0f;
  gpu_loop(state, [&] {
    FT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, o.b16.data(), CUDA_R_16BF, n, o.a16.data(),
                                 CUDA_R_16BF, n, &zero, o.c16.data(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
  });
  FT_CUBLAS_CHECK(cublasDestroy(h));
}

void BM_gpu_cublas(benchmark::State& state) {
  auto& o = operands(kGpuSide, kGPU);
  cublasHandle_t h;
  FT_CUBLAS_CHECK(cublasCreate(&h));
  FT_CUBLAS_CHECK(cublasSetStream(h, ft::cuda::current_stream()));
  const int n = static_cast<int>(kGpuSide);
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: the operands swap places.
  gpu_loop(state, [&] {
    FT_CUBLAS_CHECK(
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, o.b.data(), n, o.a.data(), n, &zero, o.c.data(), n));
  });
  FT_CUBLAS_CHECK(cublasDestroy(h));
}

#endif

// The products agree before anything is timed (a wrong fast kernel is not a result).
void verify() {
  const index_t m = 67, k = 129, n = 45;
  Mat a = ft::uniform<float>({m, k}, -1.0f, 1.0f, ft::kCPU, 3),
      b = ft::uniform<float>({k, n}, -1.0f, 1.0f, ft::kCPU, 4);
  Mat c = ft::matmul(a, b), d = ft::zeros<float>({m, n});
  ft::linalg::detail::gemm_blocked<float>(false, false, m, n, k, 1.0f, a.data(), k, 0, b.data(), n, 0, 0.0f, d.data(),
                                          n, 0, 1);
  double worst = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t p = 0; p < k; ++p) s += double(a.data()[i * k + p]) * b.data()[p * n + j];
      worst = std::max({worst, std::fabs(s - c.data()[i * n + j]), std::fabs(s - d.data()[i * n + j])});
    }
  if (worst > 1e-4) {
    std::fprintf(stderr, "verify: matmul differs from the reference by %g\n", worst);
    std::exit(1);
  }
}

void register_benchmarks() {
  using benchmark::RegisterBenchmark;
  // Real time: the work runs on OpenMP or BLAS threads, not only the timing thread.
  auto cpu = [](const char* name, void (*fn)(benchmark::State&)) {
    RegisterBenchmark(name, fn)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  cpu("cpu/matmul1024/ft_matmul", BM_cpu_ft_matmul);
#if defined(FT_HAVE_CBLAS)
  cpu("cpu/matmul1024/openblas", BM_cpu_openblas);
#endif
#if FT_BENCH_EIGEN
  cpu("cpu/matmul1024/eigen", BM_cpu_eigen);
#endif
  cpu("cpu/matmul1024/ft_blocked", BM_cpu_ft_blocked);
  cpu("cpu/matmul1024/ft_matmul_1thread", BM_cpu_ft_matmul_1thread);
#if defined(FT_HAVE_CBLAS)
  cpu("cpu/matmul1024/openblas_1thread", BM_cpu_openblas_1thread);
#endif
#if FT_BENCH_EIGEN
  cpu("cpu/matmul1024/eigen_1thread", BM_cpu_eigen_1thread);
#endif
  cpu("cpu/matmul1024/ft_blocked_1thread", BM_cpu_ft_blocked_1thread);
  cpu("cpu/matmul1024/ft_matmul_bf16", BM_cpu_ft_matmul_bf16);
#if defined(FT_HAVE_CBLAS)
  cpu("cpu/matmul1024/openblas_sbgemm", BM_cpu_openblas_sbgemm);
#endif
  cpu("cpu/matmul1024/ft_matmul_fp16", BM_cpu_ft_matmul_fp16);
#if FT_CUDA_ENABLED
  if (!ft::cuda::is_available()) return;
  for (auto* b : {RegisterBenchmark("gpu/matmul4096/ft_matmul", BM_gpu_ft_matmul),
                  RegisterBenchmark("gpu/matmul4096/cublas", BM_gpu_cublas),
                  RegisterBenchmark("gpu/matmul4096/ft_matmul_bf16", BM_gpu_ft_matmul_bf16),
                  RegisterBenchmark("gpu/matmul4096/cublas_bf16", BM_gpu_cublas_bf16)})
    b->UseManualTime()->Unit(benchmark::kMillisecond);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  verify();
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_threads()));
  benchmark::AddCustomContext("cpu_has_avx512_bf16", __builtin_cpu_supports("avx512bf16") ? "yes" : "no");
  benchmark::AddCustomContext("blocked_kernel_isa", ft::linalg::detail::gemm_blocked_isa<float>());
#if defined(FT_HAVE_CBLAS)
  benchmark::AddCustomContext("cpu_blas", "cblas (FT_HAVE_CBLAS)");
#else
  benchmark::AddCustomContext("cpu_blas", "none: ft::matmul runs the blocked kernel");
#endif
#if FT_CUDA_ENABLED
  if (!ft::cuda::is_available()) std::printf("no CUDA device: the GPU benches are not registered\n");
#endif
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
