// The LibTorch peer of bench_ops (CPU): the same ops on the same shapes, in LibTorch's
// eager mode. Compiled as C++17 (LibTorch 1.13's headers) and linked into bench_ops when
// configured with -DFT_BENCH_LIBTORCH=ON; bench_ops.cpp calls register_benches().
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>

namespace ft_bench_torch_ops {

void register_benches(int threads);

namespace {

constexpr std::int64_t kCatRows = 4096, kCatCols = 1024;
constexpr std::int64_t kGatherRows = 4096, kGatherCols = 1024, kGatherK = 256;
constexpr std::int64_t kTopkRows = 4096, kTopkCols = 1000, kTopk = 5;
constexpr std::int64_t kScanN = std::int64_t(1) << 24;
constexpr std::int64_t kAttN = 8, kAttH = 4, kAttL = 512, kAttE = 64;
constexpr std::int64_t kResizeN = 16, kResizeH = 375, kResizeW = 500, kResizeOH = 224, kResizeOW = 298;

template <class F>
void loop(benchmark::State& state, F&& body) {
  body();  // warm up
  for (auto _ : state) {
    body();
    benchmark::ClobberMemory();
  }
}

void BM_cat4_relu(benchmark::State& state) {
  torch::manual_seed(1);
  auto a = torch::rand({kCatRows, kCatCols}) * 2 - 1, b = torch::rand({kCatRows, kCatCols}) * 2 - 1;
  auto c = torch::rand({kCatRows, kCatCols}) * 2 - 1, d = torch::rand({kCatRows, kCatCols}) * 2 - 1;
  torch::Tensor out;
  loop(state, [&] { out = torch::relu(torch::cat({a, b, c, d}, 0) * 2); });
}

void BM_gather(benchmark::State& state) {
  torch::manual_seed(2);
  auto x = torch::rand({kGatherRows, kGatherCols});
  auto idx = torch::randint(kGatherCols, {kGatherRows, kGatherK}, torch::kLong);
  torch::Tensor out;
  loop(state, [&] { out = torch::gather(x, 1, idx); });
}

void BM_topk5(benchmark::State& state) {
  torch::manual_seed(3);
  auto x = torch::rand({kTopkRows, kTopkCols});
  loop(state, [&] {
    auto r = torch::topk(x, kTopk, 1);
    benchmark::DoNotOptimize(std::get<0>(r).data_ptr());
  });
}

void BM_cumsum(benchmark::State& state) {
  torch::manual_seed(4);
  auto x = torch::rand({kScanN});
  torch::Tensor out;
  loop(state, [&] { out = torch::cumsum(x, 0); });
}

void BM_sort(benchmark::State& state) {
  torch::manual_seed(5);
  auto x = torch::rand({kScanN});
  loop(state, [&] {
    auto r = torch::sort(x, 0);
    benchmark::DoNotOptimize(std::get<0>(r).data_ptr());
  });
}

void resize_aa(benchmark::State& state, bool bicubic) {
  torch::manual_seed(7);
  auto x = torch::rand({kResizeN, 3, kResizeH, kResizeW});
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions()
                     .size(std::vector<std::int64_t>{kResizeOH, kResizeOW})
                     .align_corners(false)
                     .antialias(true);
  if (bicubic)
    options.mode(torch::kBicubic);
  else
    options.mode(torch::kBilinear);
  loop(state, [&] {
    auto y = F::interpolate(x, options);
    benchmark::DoNotOptimize(y.data_ptr());
  });
}
void BM_resize_aa(benchmark::State& state) { resize_aa(state, false); }
void BM_resize_aa_bicubic(benchmark::State& state) { resize_aa(state, true); }

// softmax(q·kᵀ/8 + causal mask)·v, forward and backward, as bench_ops.cpp's attention.
void BM_attention(benchmark::State& state) {
  torch::manual_seed(6);
  auto q = torch::randn({kAttN, kAttH, kAttL, kAttE}).requires_grad_(true);
  auto k = torch::randn({kAttN, kAttH, kAttL, kAttE}).requires_grad_(true);
  auto v = torch::randn({kAttN, kAttH, kAttL, kAttE}).requires_grad_(true);
  auto g = torch::randn({kAttN, kAttH, kAttL, kAttE});
  auto masked = torch::ones({kAttL, kAttL}, torch::kBool).tril().logical_not();
  loop(state, [&] {
    for (auto* x : {&q, &k, &v}) x->mutable_grad() = torch::Tensor();
    auto s = torch::matmul(q, k.transpose(-2, -1)) * 0.125;
    auto o = torch::matmul(torch::softmax(s.masked_fill(masked, -INFINITY), -1), v);
    o.backward(g);
  });
}

}  // namespace

void register_benches(int threads) {
  torch::set_num_threads(threads);
  for (auto [name, fn] :
       {std::pair{"cpu/cat4_relu/libtorch", BM_cat4_relu}, std::pair{"cpu/gather/libtorch", BM_gather},
        std::pair{"cpu/topk5/libtorch", BM_topk5}, std::pair{"cpu/cumsum/libtorch", BM_cumsum},
        std::pair{"cpu/sort/libtorch", BM_sort}, std::pair{"cpu/attention/libtorch", BM_attention},
        std::pair{"cpu/resize_aa/libtorch", BM_resize_aa}, std::pair{"cpu/interpolate_aa/libtorch", BM_resize_aa},
        std::pair{"cpu/interpolate_aa_bicubic/libtorch", BM_resize_aa_bicubic}})
    benchmark::RegisterBenchmark(name, fn)->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace ft_bench_torch_ops
