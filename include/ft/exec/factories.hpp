// Tensor factories that compute their values: one launch each, on the requested device.
// The rank is deduced from the braced shape: ft::zeros<float>({2, 3}).
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>

#include "ft/core/config.hpp"
#include "ft/exec/assign.hpp"
#include "ft/expr/generator.hpp"

namespace ft::inline FT_ABI {

namespace detail {
template <std::size_t R>
Shape<static_cast<int>(R)> to_shape(const index_t (&s)[R]) {
  Shape<static_cast<int>(R)> r;
  for (std::size_t i = 0; i < R; ++i) r[static_cast<int>(i)] = s[i];
  return r;
}
template <class T, int R, class F>
Tensor<T, R> generate(const char* op, const Shape<R>& shape, Device device, F f) {
  if (device.is_cuda()) cuda::require_device(device, op);
  Tensor<T, R> t(shape, device);
  t = Generator<F, R>(f, shape, device);
  return t;
}
inline std::atomic<std::uint64_t>& seed_counter() {
  static std::atomic<std::uint64_t> s{0x853c49e6748fea9bull};
  return s;
}
}  // namespace detail

// Sets the seed that random factories use when none is passed (as torch.manual_seed).
inline void manual_seed(std::uint64_t seed) { detail::seed_counter() = seed; }
// A fresh seed for each random call that passes none.
inline std::uint64_t next_seed() { return detail::seed_counter().fetch_add(0x9E3779B97F4A7C15ull); }

template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> full(const index_t (&shape)[R], T value, Device device = kCPU) {
  if (device.is_cuda()) cuda::require_device(device, "full");
  auto t = empty<T>(shape, device);
  t = value;
  return t;
}
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> zeros(const index_t (&shape)[R], Device device = kCPU) {
  return full<T>(shape, T(0), device);
}
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> ones(const index_t (&shape)[R], Device device = kCPU) {
  return full<T>(shape, T(1), device);
}
template <class T, int R>
Tensor<T, R> zeros(const Shape<R>& shape, Device device = kCPU) {
  Tensor<T, R> t(shape, device);
  t = T(0);
  return t;
}

// Values uniform in [0, 1) (Philox4x32-10, counter = element index, key = seed).
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> rand(const index_t (&shape)[R], Device device = kCPU, std::uint64_t seed = next_seed()) {
  static_assert(is_floating_v<T>, "ft::rand: T must be float or double; use randint for integers");
  return detail::generate<T>("rand", detail::to_shape(shape), device, gen::Uniform<T>{seed, T(0), T(1)});
}
// Values uniform in [low, high).
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> uniform(const index_t (&shape)[R], T low, T high, Device device = kCPU,
                                       std::uint64_t seed = next_seed()) {
  static_assert(is_floating_v<T>, "ft::uniform: T must be float or double");
  return detail::generate<T>("uniform", detail::to_shape(shape), device, gen::Uniform<T>{seed, low, high});
}
// Standard normal values (Box–Muller on Philox); float results are bit-identical on CPU and GPU.
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> randn(const index_t (&shape)[R], Device device = kCPU,
                                     std::uint64_t seed = next_seed()) {
  static_assert(is_floating_v<T>, "ft::randn: T must be float or double");
  return detail::generate<T>("randn", detail::to_shape(shape), device, gen::Normal<T>{seed, T(0), T(1)});
}
// Integers uniform in [low, high).
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> randint(std::int64_t low, std::int64_t high, const index_t (&shape)[R],
                                       Device device = kCPU, std::uint64_t seed = next_seed()) {
  check(high > low, "randint", "high (", high, ") must be greater than low (", low, ")");
  return detail::generate<T>("randint", detail::to_shape(shape), device,
                             gen::RandInt<T>{seed, low, static_cast<std::uint64_t>(high - low)});
}

// [start, end) in steps of `step`, as torch.arange.
template <class T>
Tensor<T, 1> arange(T start, T end, T step = T(1), Device device = kCPU) {
  check(step != T(0), "arange", "step must be nonzero");
  check(end == start || ((end > start) == (step > T(0))), "arange", "the sign of step (", step, ") cannot reach end (",
        end, ") from start (", start, ")");
  index_t n = static_cast<index_t>(std::ceil(static_cast<double>(end - start) / static_cast<double>(step)));
  if (n < 0) n = 0;
  return detail::generate<T>("arange", Shape<1>{n}, device, gen::Arange<T>{start, step});
}
template <class T>
Tensor<T, 1> arange(T end, Device device = kCPU) {
  return arange<T>(T(0), end, T(1), device);
}

// `steps` values evenly spaced from start to end inclusive, as torch.linspace.
template <class T>
Tensor<T, 1> linspace(double start, double end, index_t steps, Device device = kCPU) {
  check(steps >= 0, "linspace", "number of steps must be non-negative, got ", steps);
  double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
  return detail::generate<T>("linspace", Shape<1>{steps}, device, gen::Linspace<T>{start, end, step, steps});
}

}  // namespace ft::inline FT_ABI
