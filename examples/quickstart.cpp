// The README's fifteen lines, built and run in CI so the README stays true.
#include <ft/ft.hpp>
#include <iostream>

int main() {
  ft::Device dev = ft::cuda::is_available() ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU);
  auto x = ft::randn<float>({4, 5}, dev, /*seed=*/1);  // same numbers on CPU and GPU
  auto bias = ft::linspace<float>(-1, 1, 5, dev);

  auto h = ft::gelu(x * 0.5f + bias);  // lazy: nothing has run yet
  ft::stats::reset();
  ft::Tensor<float, 2> y = ft::where(h > 0.0f, h, 0.1f * h) - ft::exp(-ft::square(x));
  std::cout << y << "\nlaunches: " << ft::stats::launches(dev) << "\n";  // 1

  y += 1.0f;                                    // in place, one launch
  auto col = y.transpose(0, 1).slice(0, 0, 2);  // a view: no copy, no launch
  std::cout << col << "\n";
}
