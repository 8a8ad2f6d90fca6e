// The main demo for now: shows what fusion buys on this machine. The same statement runs
// fused (one launch) and as five separate statements (five launches and four temporaries,
// as an eager framework runs it); the demo checks they agree and reports both timings.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ft/ft.hpp>

template <class F>
double best_ms(ft::Device dev, F&& f, int reps = 5) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    if (dev.is_cuda()) ft::cuda::synchronize();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = ms < best ? ms : best;
  }
  return best;
}

int main() {
  ft::Device dev = ft::cuda::is_available() ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU);
  const ft::index_t n = 1 << 24;
  std::printf("fusedtensor %d.%d.%d on %s, %lld floats per tensor\n", FT_VERSION_MAJOR, FT_VERSION_MINOR,
              FT_VERSION_PATCH, dev.is_cuda() ? "cuda:0" : "cpu", static_cast<long long>(n));
  auto a = ft::randn<float>({n}, dev, 1), b = ft::randn<float>({n}, dev, 2), c = ft::randn<float>({n}, dev, 3);
  auto d = ft::randn<float>({n}, dev, 4), e = ft::randn<float>({n}, dev, 5);
  auto out = ft::empty<float>({n}, dev);

  ft::stats::reset();
  out = a * b + c * ft::sigmoid(d) - e;
  std::printf("fused statement:      %lld launch\n", static_cast<long long>(ft::stats::launches(dev)));
  double fused = best_ms(dev, [&] { out = a * b + c * ft::sigmoid(d) - e; });

  ft::Tensor<float, 1> t1, t2, t3, t4, unfused;
  auto five = [&] {
    t1 = ft::eval(a * b);
    t2 = ft::eval(ft::sigmoid(d));
    t3 = ft::eval(c * t2);
    t4 = ft::eval(t1 + t3);
    unfused = ft::eval(t4 - e);
  };
  ft::stats::reset();
  five();
  std::printf("five statements:      %lld launches\n", static_cast<long long>(ft::stats::launches(dev)));
  double eager = best_ms(dev, five);

  auto diff = ft::eval(ft::abs(out - unfused)).to_vector();
  float max_diff = 0;
  for (float v : diff) max_diff = std::fmax(max_diff, v);
  double gbs = 6.0 * n * sizeof(float) / (fused * 1e6);
  std::printf("fused %.2f ms (%.1f GB/s), five statements %.2f ms: fusion is %.1fx faster; max |diff| = %g\n", fused,
              gbs, eager, eager / fused, max_diff);
  // Structure ops are readers too: joining, padding and flipping fuse into the consumer.
  auto left = ft::randn<float>({256, 64}, dev, 6), right = ft::randn<float>({256, 32}, dev, 7);
  auto w = ft::randn<float>({96}, dev, 8);
  ft::stats::reset();
  ft::Tensor<float, 2> joined = ft::relu(ft::cat({left, right}, 1) * w);
  ft::Tensor<float, 2> framed = ft::pad(ft::flip(left, {1}), {1, 1, 2, 2}, "reflect") * 0.5f;
  std::printf("cat + relu, pad(flip): %lld launches for %lld statements (shapes [%lld, %lld] and [%lld, %lld])\n",
              static_cast<long long>(ft::stats::launches(dev)), 2LL, static_cast<long long>(joined.size(0)),
              static_cast<long long>(joined.size(1)), static_cast<long long>(framed.size(0)),
              static_cast<long long>(framed.size(1)));
  return max_diff <= 1e-6f && ft::stats::launches(dev) == 2 ? 0 : 1;
}
