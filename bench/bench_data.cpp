// DataLoader throughput: one shuffled epoch of an MNIST-sized TensorDataset (60000 images of
// 1×28×28 floats and their labels) in batches of 256, by worker count, pinned or not; and
// the CUDA target (stacking + asynchronous copy) when a GPU is present. bytes/s counts each
// gathered byte read once and written once, so of_copy_bw compares with memcpy.
#include <cstdio>
#include <vector>

#include "bench_common.hpp"
#include "ft/data.hpp"

namespace {

using ft::bench::g_copy_bw;
using ft::bench::report;

auto& mnist_sized() {
  static auto ds = ft::data::TensorDataset(ft::randn<float>({60000, 1, 28, 28}, ft::kCPU, 1),
                                           ft::randint<std::int64_t>(0, 10, {60000}, ft::kCPU, 2));
  return ds;
}

// range(0): device (0 CPU, 1 CUDA), range(1): workers, range(2): pin_memory
void loader_epoch(benchmark::State& state) {
  const ft::Device dev = ft::bench::device_of(state);
  auto& ds = mnist_sized();
  ft::data::DataLoader loader(ds, {.batch_size = 256,
                                   .shuffle = true,
                                   .num_workers = static_cast<int>(state.range(1)),
                                   .pin_memory = state.range(2) != 0,
                                   .device = dev});
  const double bytes = 2.0 * 60000 * (28 * 28 * 4 + 8);
  std::int64_t batches = 0;
  for (auto _ : state) {
    for (auto& [x, y] : loader) {
      benchmark::DoNotOptimize(x.data());
      ++batches;
    }
    if (dev.is_cuda()) ft::cuda::synchronize();
  }
  report(state, bytes, 0, dev);
  state.counters["batches_per_s"] = benchmark::Counter(static_cast<double>(batches), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<int> devs{0};
  if (ft::cuda::is_available()) devs.push_back(1);
  for (int d : devs) {
    g_copy_bw[d] = ft::bench::measure_copy_bw(d ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU));
    std::printf("copy bandwidth on %s: %.1f GB/s (read + written)\n", d ? "cuda:0" : "cpu", g_copy_bw[d] / 1e9);
    for (int workers : {0, 1, 2, 4})
      for (int pin : {0, 1}) {
        if (d == 1 && pin == 0) continue;  // a CUDA target always stacks into pinned memory
        benchmark::RegisterBenchmark(d ? "loader_epoch/gpu" : "loader_epoch/cpu", loader_epoch)
            ->Args({d, workers, pin})
            ->ArgNames({"dev", "workers", "pin"})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
