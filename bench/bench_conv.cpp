// Convolution (issue #3): the ResNet layer 64 → 64 channels, 56×56, 3×3, stride 1, padding 1, float.
//
//   GPU, N = 64: ft::conv2d against a bare cuDNN call made with the algorithm ft chose (its own
//                handle and descriptors, workspace allocated once), both timed by CUDA events
//                around each call; the goal is ft within 5 % of the bare call.
//   CPU, N = 8:  ft::conv2d against the same im2col + sgemm written directly (an OpenMP im2col
//                over the (sample, channel) planes into a preallocated buffer, then cblas_sgemm a
//                sample — or the library's blocked kernel where no BLAS was found).
// The backward primitives (data, weight, bias) run on both devices for the record.
//
// Counters: FLOP/s = 2·N·O·C·kH·kW·oH·oW per conv (the bias gradient is credited N·O·oH·oW adds),
// launches_per_iter (ft::stats). Results: docs/benchmarks.md. The same file compiled by nvcc adds
// the GPU benches, which register only when a GPU exists.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ft/tensor.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using ft::index_t;
using Tensor4 = ft::Tensor<float, 4>;

// The layer: x [N, 64, 56, 56], w [64, 64, 3, 3], padding 1 → y [N, 64, 56, 56].
constexpr index_t kC = 64, kO = 64, kH = 56, kW = 56, kK = 3, kPad = 1;
constexpr index_t kCpuBatch = 8, kGpuBatch = 64;
const ft::Conv2dOptions kOpt{.padding = kPad};

double conv_flops(index_t n) { return 2.0 * n * kO * kC * kK * kK * kH * kW; }

int omp_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void report(benchmark::State& state, double flops_per_iter, std::int64_t launches) {
  const double iters = static_cast<double>(state.iterations());
  state.counters["FLOP/s"] = benchmark::Counter(iters * flops_per_iter, benchmark::Counter::kIsRate);
  state.counters["launches_per_iter"] = iters > 0 ? static_cast<double>(launches) / iters : 0.0;
}

struct Operands {
  Tensor4 x, w, gy;
  ft::Tensor<float, 1> b;
};

Operands make_operands(index_t n, ft::Device dev) {
  Operands o;
  o.x = ft::uniform<float>({n, kC, kH, kW}, -1.f, 1.f, dev, 1);
  o.w = ft::uniform<float>({kO, kC, kK, kK}, -0.1f, 0.1f, dev, 2);
  o.gy = ft::uniform<float>({n, kO, kH, kW}, -1.f, 1.f, dev, 3);
  o.b = ft::uniform<float>({kO}, -1.f, 1.f, dev, 4);
  return o;
}

Operands& cpu_operands() {
  static Operands o = make_operands(kCpuBatch, ft::kCPU);
  return o;
}

// ---- CPU: the direct im2col + sgemm the library's CPU path is measured against ----

// col[n][(c·3 + i)·3 + j][oh·56 + ow] = x[n][c][oh − 1 + i][ow − 1 + j] (0 outside): stride 1.
void direct_im2col(const float* x, float* col, index_t n) {
  constexpr index_t P = kH * kW;
#pragma omp parallel for schedule(static)
  for (index_t q = 0; q < n * kC; ++q) {
    const float* src = x + q * P;
    float* dst = col + q * kK * kK * P;
    for (index_t i = 0; i < kK; ++i)
      for (index_t j = 0; j < kK; ++j, dst += P)
        for (index_t oh = 0; oh < kH; ++oh) {
          const index_t ih = oh - kPad + i;
          float* row = dst + oh * kW;
          if (ih < 0 || ih >= kH) {
            std::fill(row, row + kW, 0.f);
            continue;
          }
          const index_t ow0 = std::max<index_t>(0, kPad - j), ow1 = std::min<index_t>(kW, kW + kPad - j);
          std::fill(row, row + ow0, 0.f);
          std::copy(src + ih * kW + ow0 - kPad + j, src + ih * kW + ow1 - kPad + j, row + ow0);
          std::fill(row + ow1, row + kW, 0.f);
        }
  }
}

void direct_gemm(const float* w, const float* col, float* y, index_t n) {
  constexpr index_t P = kH * kW, K = kC * kK * kK;
#if defined(FT_HAVE_CBLAS)
  for (index_t s = 0; s < n; ++s)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(kO), static_cast<int>(P),
                static_cast<int>(K), 1.f, w, static_cast<int>(K), col + s * K * P, static_cast<int>(P), 0.f,
                y + s * kO * P, static_cast<int>(P));
#else
  ft::linalg::detail::gemm_blocked<float>(false, false, kO, P, K, 1.f, w, K, 0, col, P, K * P, 0.f, y, P, kO * P, n);
#endif
}

struct DirectBuffers {
  std::vector<float> col, y;
};

DirectBuffers& direct_buffers() {
  static DirectBuffers d{std::vector<float>(static_cast<std::size_t>(kCpuBatch * kC * kK * kK * kH * kW)),
                         std::vector<float>(static_cast<std::size_t>(kCpuBatch * kO * kH * kW))};
  return d;
}

void BM_cpu_conv_ft(benchmark::State& state) {
  auto& o = cpu_operands();
  ft::stats::reset();
  for (auto _ : state) {
    Tensor4 y = ft::conv2d(o.x, o.w, kOpt);
    benchmark::DoNotOptimize(y.data());
  }
  report(state, conv_flops(kCpuBatch), ft::stats::launches(ft::kCPU));
}

void BM_cpu_conv_ft_bias(benchmark::State& state) {
  auto& o = cpu_operands();
  ft::stats::reset();
  for (auto _ : state) {
    Tensor4 y = ft::conv2d(o.x, o.w, o.b, kOpt);
    benchmark::DoNotOptimize(y.data());
  }
  report(state, conv_flops(kCpuBatch), ft::stats::launches(ft::kCPU));
}

void BM_cpu_conv_direct(benchmark::State& state) {
  auto& o = cpu_operands();
  auto& d = direct_buffers();
  for (auto _ : state) {
    direct_im2col(o.x.data(), d.col.data(), kCpuBatch);
    direct_gemm(o.w.data(), d.col.data(), d.y.data(), kCpuBatch);
    benchmark::DoNotOptimize(d.y.data());
  }
  report(state, conv_flops(kCpuBatch), 0);
}

void BM_cpu_backward_data(benchmark::State& state) {
  auto& o = cpu_operands();
  ft::stats::reset();
  for (auto _ : state) {
    Tensor4 dx = ft::conv2d_backward_data(o.gy, o.w, o.x.shape(), kOpt);
    benchmark::DoNotOptimize(dx.data());
  }
  report(state, conv_flops(kCpuBatch), ft::stats::launches(ft::kCPU));
}

void BM_cpu_backward_weight(benchmark::State& state) {
  auto& o = cpu_operands();
  ft::stats::reset();
  for (auto _ : state) {
    Tensor4 dw = ft::conv2d_backward_weight(o.x, o.gy, o.w.shape(), kOpt);
    benchmark::DoNotOptimize(dw.data());
  }
  report(state, conv_flops(kCpuBatch), ft::stats::launches(ft::kCPU));
}

void BM_cpu_backward_bias(benchmark::State& state) {
  auto& o = cpu_operands();
  ft::stats::reset();
  for (auto _ : state) {
    auto db = ft::conv2d_backward_bias(o.gy);
    benchmark::DoNotOptimize(db.data());
  }
  report(state, static_cast<double>(o.gy.numel()), ft::stats::launches(ft::kCPU));
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

void verify_cpu() {
  auto& o = cpu_operands();
  auto& d = direct_buffers();
  direct_im2col(o.x.data(), d.col.data(), kCpuBatch);
  direct_gemm(o.w.data(), d.col.data(), d.y.data(), kCpuBatch);
  const float diff = max_abs_diff(ft::conv2d(o.x, o.w, kOpt).to_vector(), d.y);
  std::printf("cpu: max |ft::conv2d - direct| = %g\n", static_cast<double>(diff));
  if (!(diff < 1e-4f)) {
    std::fprintf(stderr, "cpu: ft::conv2d disagrees with the direct im2col + sgemm\n");
    std::exit(1);
  }
}

// ---- GPU: ft::conv2d against a bare cuDNN call with the same algorithm ----
#if FT_CUDNN_ENABLED

const ft::Device kGPU(ft::kCUDA, 0);

Operands& gpu_operands() {
  static Operands o = make_operands(kGpuBatch, kGPU);
  return o;
}

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

  // Seconds from before `f` is called to the end of its GPU work: host overhead that keeps the
  // GPU waiting is counted, as it would be in a model's step.
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

template <class F>
void gpu_loop(benchmark::State& state, double flops_per_iter, F&& body) {
  EventTimer timer;
  body();  // warm up: the algorithm choice, module loads, the pool's first blocks
  ft::cuda::synchronize();
  ft::stats::reset();
  for (auto _ : state) state.SetIterationTime(timer.time(body));
  report(state, flops_per_iter, ft::stats::launches(kGPU));
}

// The bare call: its own handle and descriptors, the algorithm and math type ft's plan chose,
// a workspace allocated once, the output preallocated.
class BareCudnn {
 public:
  BareCudnn() {
    using namespace ft::linalg::detail;
    const ConvGeometry g = conv_geometry("bench", gpu_operands().x.shape(), gpu_operands().w.shape(), kOpt);
    const CudnnConvPlan& plan =
        cudnn_conv_plan<float>("bench", ft::cuda::cudnn_handle(kGPU), g, CudnnConvKind::forward, kGPU);
    algo_ = static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo);
    cudnnMathType_t math;
    FT_CUDNN_CHECK(cudnnGetConvolutionMathType(plan.conv, &math));
    FT_CUDNN_CHECK(cudnnCreate(&handle_));
    FT_CUDNN_CHECK(cudnnSetStream(handle_, ft::cuda::current_stream()));
    FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_));
    FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_));
    FT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_));
    FT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_));
    const int n = static_cast<int>(kGpuBatch);
    FT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, kC, kH, kW));
    FT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, kO, kH, kW));
    FT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, kO, kC, kK, kK));
    FT_CUDNN_CHECK(
        cudnnSetConvolution2dDescriptor(conv_, kPad, kPad, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    FT_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, math));
    FT_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle_, x_, w_, conv_, y_, algo_, &ws_bytes_));
    if (ws_bytes_) FT_CUDA_CHECK(cudaMalloc(&ws_, ws_bytes_));
    FT_CUDA_CHECK(cudaMalloc(&y_data_, static_cast<std::size_t>(kGpuBatch * kO * kH * kW) * sizeof(float)));
    std::printf("gpu: cuDNN forward algorithm %d, math type %d, workspace %zu bytes\n", static_cast<int>(algo_),
                static_cast<int>(math), ws_bytes_);
  }
  ~BareCudnn() {
    (void)cudaFree(ws_);
    (void)cudaFree(y_data_);
    (void)cudnnDestroyTensorDescriptor(x_);
    (void)cudnnDestroyTensorDescriptor(y_);
    (void)cudnnDestroyFilterDescriptor(w_);
    (void)cudnnDestroyConvolutionDescriptor(conv_);
    (void)cudnnDestroy(handle_);
  }
  BareCudnn(const BareCudnn&) = delete;
  BareCudnn& operator=(const BareCudnn&) = delete;

  void run(const float* x, const float* w) {
    const float alpha = 1.f, beta = 0.f;
    FT_CUDNN_CHECK(
        cudnnConvolutionForward(handle_, &alpha, x_, x, w_, w, conv_, algo_, ws_, ws_bytes_, &beta, y_, y_data_));
  }
  const float* output() const { return y_data_; }

 private:
  cudnnHandle_t handle_{};
  cudnnTensorDescriptor_t x_{}, y_{};
  cudnnFilterDescriptor_t w_{};
  cudnnConvolutionDescriptor_t conv_{};
  cudnnConvolutionFwdAlgo_t algo_{};
  void* ws_ = nullptr;
  std::size_t ws_bytes_ = 0;
  float* y_data_ = nullptr;
};

BareCudnn& bare() {
  static BareCudnn b;
  return b;
}

void BM_gpu_conv_ft(benchmark::State& state) {
  auto& o = gpu_operands();
  gpu_loop(state, conv_flops(kGpuBatch), [&] {
    Tensor4 y = ft::conv2d(o.x, o.w, kOpt);
    benchmark::DoNotOptimize(y.data());
  });
}

void BM_gpu_conv_ft_bias(benchmark::State& state) {
  auto& o = gpu_operands();
  gpu_loop(state, conv_flops(kGpuBatch), [&] {
    Tensor4 y = ft::conv2d(o.x, o.w, o.b, kOpt);
    benchmark::DoNotOptimize(y.data());
  });
}

void BM_gpu_conv_bare_cudnn(benchmark::State& state) {
  auto& o = gpu_operands();
  gpu_loop(state, conv_flops(kGpuBatch), [&] { bare().run(o.x.data(), o.w.data()); });
}

void BM_gpu_backward_data(benchmark::State& state) {
  auto& o = gpu_operands();
  gpu_loop(state, conv_flops(kGpuBatch), [&] {
    Tensor4 dx = ft::conv2d_backward_data(o.gy, o.w, o.x.shape(), kOpt);
    benchmark::DoNotOptimize(dx.data());
  });
}

void BM_gpu_backward_weight(benchmark::State& state) {
  auto& o = gpu_operands();
  gpu_loop(state, conv_flops(kGpuBatch), [&] {
    Tensor4 dw = ft::conv2d_backward_weight(o.x, o.gy, o.w.shape(), kOpt);
    benchmark::DoNotOptimize(dw.data());
  });
}

void BM_gpu_backward_bias(benchmark::State& state) {
  auto& o = gpu_operands();
  gpu_loop(state, static_cast<double>(o.gy.numel()), [&] {
    auto db = ft::conv2d_backward_bias(o.gy);
    benchmark::DoNotOptimize(db.data());
  });
}

void verify_gpu() {
  auto& o = gpu_operands();
  Tensor4 y = ft::conv2d(o.x, o.w, kOpt);
  bare().run(o.x.data(), o.w.data());
  std::vector<float> b(static_cast<std::size_t>(y.numel()));
  ft::cuda::copy_bytes(b.data(), ft::kCPU, bare().output(), kGPU, b.size() * sizeof(float));
  const float diff = max_abs_diff(y.to_vector(), b);
  std::printf("gpu: max |ft::conv2d - bare cuDNN| = %g\n", static_cast<double>(diff));
  if (!(diff == 0.f)) {
    std::fprintf(stderr, "gpu: ft::conv2d and the bare cuDNN call differ: not the same algorithm?\n");
    std::exit(1);
  }
}

#endif  // FT_CUDNN_ENABLED

void register_benchmarks() {
  using benchmark::RegisterBenchmark;
  // Real time: the work runs on OpenMP (and BLAS) threads, not only the timing thread.
  auto cpu = [](const char* name, void (*fn)(benchmark::State&)) {
    RegisterBenchmark(name, fn)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  cpu("cpu/conv/ft", BM_cpu_conv_ft);
  cpu("cpu/conv/ft_bias", BM_cpu_conv_ft_bias);
  cpu("cpu/conv/direct_im2col_sgemm", BM_cpu_conv_direct);
  cpu("cpu/conv_backward/data", BM_cpu_backward_data);
  cpu("cpu/conv_backward/weight", BM_cpu_backward_weight);
  cpu("cpu/conv_backward/bias", BM_cpu_backward_bias);
#if FT_CUDNN_ENABLED
  if (!ft::cuda::is_available()) return;
  auto gpu = [](const char* name, void (*fn)(benchmark::State&)) {
    RegisterBenchmark(name, fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  gpu("gpu/conv/ft", BM_gpu_conv_ft);
  gpu("gpu/conv/ft_bias", BM_gpu_conv_ft_bias);
  gpu("gpu/conv/bare_cudnn", BM_gpu_conv_bare_cudnn);
  gpu("gpu/conv_backward/data", BM_gpu_backward_data);
  gpu("gpu/conv_backward/weight", BM_gpu_backward_weight);
  gpu("gpu/conv_backward/bias", BM_gpu_backward_bias);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  verify_cpu();
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_threads()));
#if defined(FT_HAVE_CBLAS)
  benchmark::AddCustomContext("cpu_gemm", "cblas");
#else
  benchmark::AddCustomContext("cpu_gemm", std::string("ft blocked ") + ft::linalg::detail::gemm_blocked_isa<float>());
#endif
#if FT_CUDNN_ENABLED
  if (ft::cuda::is_available()) {
    verify_gpu();
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
