// The LibTorch peer of bench_autograd (CPU): the same 10-op statement, forward + backward, in
// LibTorch's eager mode. Compiled as C++17 (LibTorch 1.13's headers) and linked into
// bench_autograd when configured with -DFT_BENCH_LIBTORCH=ON.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

template <bool Transcendental>
void BM_libtorch(benchmark::State& state) {
  const std::int64_t n = std::int64_t(1) << 24;
  torch::manual_seed(1);
  auto x = (torch::rand({n}) * 2 - 1).requires_grad_(true);
  auto w = (torch::rand({n}) * 2 - 1).requires_grad_(true);
  auto seed = torch::ones({n});
  auto body = [&] {
    x.mutable_grad().reset();
    w.mutable_grad().reset();
    auto y = Transcendental ? torch::tanh(x * w + torch::sin(x)) * torch::sigmoid(w) - torch::exp(x * 0.5) + w
                            : torch::sigmoid(x * w + x) * w - torch::exp(x * 0.5) + (w * x) * 2.0;
    y.backward(seed);
  };
  body();
  for (auto _ : state) {
    body();
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (3.0 + 2 * 4.0) * n * 4));
  state.counters["threads"] = torch::get_num_threads();
}
BENCHMARK(BM_libtorch<false>)
    ->Name("cpu/fwd_bwd_10op/exp_family/libtorch")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_libtorch<true>)
    ->Name("cpu/fwd_bwd_10op/transcendental/libtorch")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
