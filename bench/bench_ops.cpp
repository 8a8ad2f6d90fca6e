// The ops of issue #15 against their floor and, with -DFT_BENCH_LIBTORCH=ON, LibTorch 1.13 in the
// same binary (bench_ops_torch.cpp):
//   cat4_relu   relu(cat({a, b, c, d}, 0) * 2) of 4 × [4096, 1024]: the cat fuses into its
//               consumer (one pass; LibTorch: cat, mul, relu)
//   gather      gather(x [4096, 1024], 1, idx [4096, 256]) with random indices
//   topk5       topk(x [4096, 1000], 5, 1)
//   cumsum      cumsum of 2^24 floats
//   sort        sort of 2^24 floats
//   attention   scaled_dot_product_attention forward and backward, q, k, v [8, 4, 512, 64]
//               (batch 8, 4 heads, 512 tokens), causal: the fused kernels (ft), the composed
//               path (ft_composed: batched GEMM, masked softmax, batched GEMM) and LibTorch
//               1.13's explicit softmax(q·kᵀ/8 + causal mask)·v (it has no fused SDPA); on a
//               GPU also in half: cuDNN's fused attention (attention_half/cudnn) against the
//               library's row kernels (attention_half/ft_kernels)
//   resize_aa   ft::vision::resize of 16 float images [3, 375, 500] to [224, 298], antialiased
//               bilinear (torchvision's Resize(224)); LibTorch: interpolate(antialias = true)
//   interpolate_aa, interpolate_aa_bicubic
//               ft::interpolate(x, {224, 298}, mode, antialias = true) of the same images (the
//               fused Resample expression, differentiable); LibTorch: interpolate(antialias = true)
// of_copy_bw is the logical traffic (each input read once, each output written once) over the
// copy bandwidth measured in the same run: the memory floor is 1.0.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "bench_common.hpp"
#include "ft/autograd.hpp"
#include "ft/nn/attention.hpp"
#include "ft/tensor.hpp"
#include "ft/vision/transforms.hpp"

#if FT_BENCH_HAVE_LIBTORCH
// Defined in bench_ops_torch.cpp (C++17, LibTorch's headers).
namespace ft_bench_torch_ops {
void register_benches(int threads);
}
#endif

namespace {

using ft::index_t;
using namespace ft::bench;

constexpr index_t kCatRows = 4096, kCatCols = 1024;
constexpr index_t kGatherRows = 4096, kGatherCols = 1024, kGatherK = 256;
constexpr index_t kTopkRows = 4096, kTopkCols = 1000, kTopk = 5;
constexpr index_t kScanN = index_t(1) << 24;
constexpr index_t kAttN = 8, kAttH = 4, kAttL = 512, kAttE = 64;
constexpr index_t kResizeN = 16, kResizeH = 375, kResizeW = 500, kResizeOH = 224, kResizeOW = 298;

void BM_cat4_relu(benchmark::State& state) {
  const auto dev = device_of(state);
  auto a = ft::uniform<float>({kCatRows, kCatCols}, -1.f, 1.f, dev, 1);
  auto b = ft::uniform<float>({kCatRows, kCatCols}, -1.f, 1.f, dev, 2);
  auto c = ft::uniform<float>({kCatRows, kCatCols}, -1.f, 1.f, dev, 3);
  auto d = ft::uniform<float>({kCatRows, kCatCols}, -1.f, 1.f, dev, 4);
  ft::Tensor<float, 2> out = ft::zeros<float>({4 * kCatRows, kCatCols}, dev);
  timed_loop(state, dev, 2.0 * 4 * kCatRows * kCatCols * 4, [&] { out = ft::relu(ft::cat({a, b, c, d}, 0) * 2.0f); });
}

void BM_gather(benchmark::State& state) {
  const auto dev = device_of(state);
  auto x = ft::uniform<float>({kGatherRows, kGatherCols}, -1.f, 1.f, dev, 5);
  ft::Tensor<std::int64_t, 2> idx =
      ft::cast<std::int64_t>(ft::uniform<float>({kGatherRows, kGatherK}, 0.f, float(kGatherCols) - 0.5f, dev, 6));
  ft::Tensor<float, 2> out = ft::zeros<float>({kGatherRows, kGatherK}, dev);
  // index read (8 B) and value written (4 B) per output, and x read whole: 256 random columns of
  // a 1024-float row touch all but ~2 % of its 64-byte lines
  timed_loop(state, dev, 12.0 * kGatherRows * kGatherK + 4.0 * kGatherRows * kGatherCols,
             [&] { out = ft::gather(x, 1, idx); });
}

void BM_topk5(benchmark::State& state) {
  const auto dev = device_of(state);
  auto x = ft::uniform<float>({kTopkRows, kTopkCols}, -1.f, 1.f, dev, 7);
  timed_loop(state, dev, 4.0 * kTopkRows * kTopkCols, [&] {
    auto r = ft::topk(x, kTopk, 1);
    benchmark::DoNotOptimize(r.values.data());
  });
}

void BM_cumsum(benchmark::State& state) {
  const auto dev = device_of(state);
  auto x = ft::uniform<float>({kScanN}, -1.f, 1.f, dev, 8);
  ft::Tensor<float, 1> out = ft::zeros<float>({kScanN}, dev);
  timed_loop(state, dev, 8.0 * kScanN, [&] { out = ft::cumsum(x, 0); });
}

void BM_sort(benchmark::State& state) {
  const auto dev = device_of(state);
  auto x = ft::uniform<float>({kScanN}, -1.f, 1.f, dev, 9);
  // values and int64 indices written
  timed_loop(state, dev, 16.0 * kScanN, [&] {
    auto r = ft::sort(x, 0);
    benchmark::DoNotOptimize(r.values.data());
  });
}

// Forward and backward; the traffic: q, k, v, the output and its gradient, the three gradients.
template <class T = float>
void attention(benchmark::State& state, bool fused) {
  const auto dev = device_of(state);
  const index_t n = kAttN * kAttH * kAttL * kAttE;
  auto values = [&](std::uint64_t seed) {
    return ft::Tensor<T, 4>(ft::cast<T>(ft::randn<float>({kAttN, kAttH, kAttL, kAttE}, dev, seed)));
  };
  ft::Var<T, 4> q(values(11), ft::requires_grad), k(values(12), ft::requires_grad), v(values(13), ft::requires_grad);
  const ft::Tensor<T, 4> g = values(14);
  timed_loop(state, dev, double(sizeof(T)) * 8 * n, [&] {
    for (auto* x : {&q, &k, &v}) x->zero_grad();
    ft::Var<T, 4> o = fused ? ft::scaled_dot_product_attention(q, k, v, ft::NoMask{}, {.is_causal = true})
                            : ft::attention::composed(q, k, v, ft::NoMask{}, 0.125, {.is_causal = true});
    o.backward(g);
  });
}
void BM_attention(benchmark::State& state) { attention(state, true); }
void BM_attention_composed(benchmark::State& state) { attention(state, false); }
// On a GPU in half: cuDNN's fused attention (cudnn) and the library's row kernels (ft_kernels).
void BM_attention_half_cudnn(benchmark::State& state) { attention<ft::half>(state, true); }
void BM_attention_half_kernels(benchmark::State& state) {
  ft::set_cudnn_sdpa(false);
  attention<ft::half>(state, true);
  ft::set_cudnn_sdpa(true);
}

// Each input read once and each output written once.
void BM_resize_aa(benchmark::State& state) {
  const auto dev = device_of(state);
  auto x = ft::uniform<float>({kResizeN, 3, kResizeH, kResizeW}, 0.f, 1.f, dev, 15);
  timed_loop(state, dev, 4.0 * kResizeN * 3 * (kResizeH * kResizeW + kResizeOH * kResizeOW), [&] {
    auto y = ft::vision::resize(x, {kResizeOH, kResizeOW});
    benchmark::DoNotOptimize(y.data());
  });
}

void interpolate_aa(benchmark::State& state, const char* mode) {
  const auto dev = device_of(state);
  auto x = ft::uniform<float>({kResizeN, 3, kResizeH, kResizeW}, 0.f, 1.f, dev, 15);
  timed_loop(state, dev, 4.0 * kResizeN * 3 * (kResizeH * kResizeW + kResizeOH * kResizeOW), [&] {
    ft::Tensor<float, 4> y = ft::interpolate(x, {kResizeOH, kResizeOW}, mode, false, true);
    benchmark::DoNotOptimize(y.data());
  });
}
void BM_interpolate_aa(benchmark::State& state) { interpolate_aa(state, "bilinear"); }
void BM_interpolate_aa_bicubic(benchmark::State& state) { interpolate_aa(state, "bicubic"); }

void BM_copy(benchmark::State& state) {
  const auto dev = device_of(state);
  auto src = ft::uniform<float>({kScanN}, -1.f, 1.f, dev, 10);
  auto dst = ft::zeros<float>({kScanN}, dev);
  timed_loop(state, dev, 8.0 * kScanN, [&] { copy(dst.data(), src.data(), kScanN, dev); });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<int> devs{0};
  if (ft::cuda::is_available()) devs.push_back(1);
  for (int d : devs) {
    g_copy_bw[d] = measure_copy_bw(d ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU));
    std::printf("copy bandwidth on %s: %.1f GB/s (read + written)\n", d ? "cuda:0" : "cpu", g_copy_bw[d] / 1e9);
    const std::string dn = d ? "gpu/" : "cpu/";
    auto reg = [&](const std::string& name, auto fn) {
      auto* b = benchmark::RegisterBenchmark((dn + name + "/ft").c_str(), fn)->Unit(benchmark::kMillisecond)->Arg(d);
      if (d)
        b->UseManualTime();
      else
        b->UseRealTime();
    };
    reg("cat4_relu", BM_cat4_relu);
    reg("gather", BM_gather);
    reg("topk5", BM_topk5);
    reg("cumsum", BM_cumsum);
    reg("sort", BM_sort);
    reg("copy", BM_copy);
    reg("attention", BM_attention);
    reg("resize_aa", BM_resize_aa);
    reg("interpolate_aa", BM_interpolate_aa);
    reg("interpolate_aa_bicubic", BM_interpolate_aa_bicubic);
    benchmark::RegisterBenchmark((dn + "attention/ft_composed").c_str(), BM_attention_composed)
        ->Unit(benchmark::kMillisecond)
        ->Arg(d)
        ->UseRealTime();
    if (d) {
      using Bench = void (*)(benchmark::State&);
      for (auto [name, fn] :
           {std::pair<const char*, Bench>{"gpu/attention_half/cudnn", BM_attention_half_cudnn},
            std::pair<const char*, Bench>{"gpu/attention_half/ft_kernels", BM_attention_half_kernels}})
        benchmark::RegisterBenchmark(name, fn)->Unit(benchmark::kMillisecond)->Arg(d)->UseManualTime();
    }
  }
#if FT_BENCH_HAVE_LIBTORCH
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  ft_bench_torch_ops::register_benches(threads);
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
