// Reductions and row-wise composites (issue #3):
//   1. sum(a * b) over 2^26 floats: fused (one launch) vs materialise-then-reduce (t = a * b;
//      sum(t)) vs, on a GPU, cub::DeviceReduce::Sum over the precomputed product; all against
//      the copy bandwidth measured in the same run (of_copy_bw).
//   2. softmax(x, 1) and cross_entropy(x, t) on [8192, 32768] and [65536, 1024] (GPU), and on
//      [1024, 32768] and [8192, 1024] on the CPU (the 2-core CI machine).
//   3. bias gradients (issue #16): sum_to(where(z + b > 0, g, 0), [N]) of [256, 1024] (Linear +
//      ReLU; [8192, 1024] on a GPU), and sum_to of [64, 16, 32, 32] to [1, 16, 1, 1] (a conv bias).
// Bytes are the logical traffic: each input read once, each output written once.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "bench_common.hpp"
#include "ft/tensor.hpp"

#if FT_CUDA_ENABLED
#include <cub/device/device_reduce.cuh>
#endif

namespace {

using ft::index_t;
using namespace ft::bench;

struct SumOperands {
  ft::Tensor<float, 1> a, b, prod;
  ft::Tensor<float, 0> out;
};
SumOperands& sum_operands(ft::Device dev, index_t n) {
  static std::map<int, std::unique_ptr<SumOperands>> cache;
  auto& s = cache[dev.is_cuda() ? 1 : 0];
  if (!s) {
    s = std::make_unique<SumOperands>();
    s->a = ft::uniform<float>({n}, -1.f, 1.f, dev, 1);
    s->b = ft::uniform<float>({n}, -1.f, 1.f, dev, 2);
    s->prod = ft::eval(s->a * s->b);
    s->out = ft::zeros<float>(ft::Shape<0>{}, dev);
  }
  return *s;
}

constexpr index_t kSumN = index_t(1) << 26;

void BM_sum_fused(benchmark::State& state) {
  auto dev = device_of(state);
  auto& s = sum_operands(dev, kSumN);
  timed_loop(state, dev, 2.0 * kSumN * 4, [&] { s.out = ft::sum(s.a * s.b); });
}
void BM_sum_materialised(benchmark::State& state) {
  auto dev = device_of(state);
  auto& s = sum_operands(dev, kSumN);
  ft::Tensor<float, 1> t = ft::zeros<float>({kSumN}, dev);
  timed_loop(state, dev, 2.0 * kSumN * 4, [&] {
    t = s.a * s.b;
    s.out = ft::sum(t);
  });
}
void BM_copy(benchmark::State& state) {
  auto dev = device_of(state);
  auto& s = sum_operands(dev, kSumN);
  ft::Tensor<float, 1> dst = ft::zeros<float>({kSumN}, dev);
  timed_loop(state, dev, 2.0 * kSumN * 4, [&] { copy(dst.data(), s.a.data(), kSumN, dev); });
}
#if FT_CUDA_ENABLED
void BM_sum_cub_precomputed(benchmark::State& state) {
  ft::Device dev(ft::kCUDA);
  auto& s = sum_operands(dev, kSumN);
  std::size_t temp_bytes = 0;
  cub::DeviceReduce::Sum(nullptr, temp_bytes, s.prod.data(), s.out.data(), static_cast<int>(kSumN));
  ft::Tensor<std::uint8_t, 1> temp = ft::empty<std::uint8_t>({static_cast<index_t>(temp_bytes)}, dev);
  timed_loop(state, dev, 1.0 * kSumN * 4, [&] {
    cub::DeviceReduce::Sum(temp.data(), temp_bytes, s.prod.data(), s.out.data(), static_cast<int>(kSumN),
                           ft::cuda::current_stream());
  });
}
#endif

struct RowOperands {
  ft::Tensor<float, 2> x, out;
  ft::Tensor<std::int64_t, 1> t;
  ft::Tensor<float, 0> loss;
};
RowOperands& row_operands(ft::Device dev, index_t rows, index_t cols) {
  static std::map<std::tuple<int, index_t, index_t>, std::unique_ptr<RowOperands>> cache;
  auto& r = cache[{dev.is_cuda() ? 1 : 0, rows, cols}];
  if (!r) {
    r = std::make_unique<RowOperands>();
    r->x = ft::randn<float>({rows, cols}, dev, 3);
    r->out = ft::zeros<float>({rows, cols}, dev);
    r->t = ft::randint<std::int64_t>(0, cols, {rows}, dev, 4);
  }
  return *r;
}
void BM_softmax(benchmark::State& state) {
  auto dev = device_of(state);
  const index_t rows = state.range(1), cols = state.range(2);
  auto& r = row_operands(dev, rows, cols);
  timed_loop(state, dev, 2.0 * rows * cols * 4, [&] { r.out = ft::softmax(r.x, 1); });
}
void BM_cross_entropy(benchmark::State& state) {
  auto dev = device_of(state);
  const index_t rows = state.range(1), cols = state.range(2);
  auto& r = row_operands(dev, rows, cols);
  timed_loop(state, dev, 1.0 * rows * cols * 4 + rows * 8.0, [&] { r.loss = ft::cross_entropy(r.x, r.t); });
}

struct BiasOperands {
  ft::Tensor<float, 2> z, g;
  ft::Tensor<float, 1> b, db;
  ft::Tensor<float, 4> y;
  ft::Tensor<float, 4> dc;
};
BiasOperands& bias_operands(ft::Device dev, index_t rows) {
  static std::map<int, std::unique_ptr<BiasOperands>> cache;
  auto& r = cache[dev.is_cuda() ? 1 : 0];
  if (!r) {
    r = std::make_unique<BiasOperands>();
    r->z = ft::randn<float>({rows, 1024}, dev, 5);
    r->g = ft::randn<float>({rows, 1024}, dev, 6);
    r->b = ft::randn<float>({1024}, dev, 7);
    r->db = ft::zeros<float>({1024}, dev);
    r->y = ft::randn<float>({64, 16, 32, 32}, dev, 8);
    r->dc = ft::zeros<float>({1, 16, 1, 1}, dev);
  }
  return *r;
}
void BM_bias_grad_linear(benchmark::State& state) {
  auto dev = device_of(state);
  const index_t rows = state.range(1);
  auto& r = bias_operands(dev, rows);
  timed_loop(state, dev, 8.0 * rows * 1024,
             [&] { r.db = ft::sum_to(ft::where(r.z + r.b > 0.f, r.g, 0.f), ft::Shape<1>{1024}); });
}
void BM_bias_grad_conv(benchmark::State& state) {
  auto dev = device_of(state);
  auto& r = bias_operands(dev, 256);
  timed_loop(state, dev, 4.0 * r.y.numel(), [&] { r.dc = ft::sum_to(r.y * 1.f, ft::Shape<4>{1, 16, 1, 1}); });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<int> devs{0};
  if (ft::cuda::is_available()) devs.push_back(1);
  for (int d : devs) {
    g_copy_bw[d] = measure_copy_bw(d ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU), kSumN);
    std::printf("copy bandwidth on %s: %.1f GB/s (read + written)\n", d ? "cuda:0" : "cpu", g_copy_bw[d] / 1e9);
    const char* dn = d ? "gpu" : "cpu";
    auto reg = [&](std::string name, auto fn) {
      auto* b = benchmark::RegisterBenchmark((std::string(dn) + "/" + name).c_str(), fn)->Unit(benchmark::kMillisecond);
      if (d)
        b->UseManualTime();
      else
        b->UseRealTime();
      return b;
    };
    reg("sum_ab/fused", BM_sum_fused)->Args({d});
    reg("sum_ab/materialised", BM_sum_materialised)->Args({d});
    reg("copy", BM_copy)->Args({d});
#if FT_CUDA_ENABLED
    if (d) reg("sum_ab/cub_on_precomputed_product", BM_sum_cub_precomputed)->Args({d});
#endif
    std::vector<std::pair<index_t, index_t>> shapes =
        d ? std::vector<std::pair<index_t, index_t>>{{8192, 32768}, {65536, 1024}}
          : std::vector<std::pair<index_t, index_t>>{{1024, 32768}, {8192, 1024}};
    for (auto [rows, cols] : shapes) {
      reg("softmax", BM_softmax)->Args({d, rows, cols});
      reg("cross_entropy", BM_cross_entropy)->Args({d, rows, cols});
    }
    reg("bias_grad/linear", BM_bias_grad_linear)->Args({d, d ? 8192 : 256});
    reg("bias_grad/conv", BM_bias_grad_conv)->Args({d});
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
