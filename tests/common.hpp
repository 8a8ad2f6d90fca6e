// Helpers shared by the tests: the devices to run on, and references computed in double.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/tensor.hpp"

namespace ft::test {

// The CPU, plus every CUDA device when this file is compiled by nvcc and a GPU is present.
inline std::vector<Device> devices() {
  std::vector<Device> d{kCPU};
  if constexpr (FT_CUDA_ENABLED) {
    for (int i = 0; i < cuda::device_count(); ++i) d.emplace_back(kCUDA, i);
  }
  return d;
}

inline bool has_gpu() { return FT_CUDA_ENABLED && cuda::is_available(); }

// A test that needs a GPU: doctest reports it as skipped (not passed) when there is none.
#define FT_GPU_TEST_CASE(name) TEST_CASE(name* doctest::skip(!ft::test::has_gpu()))

// Values in double for an independent reference.
template <class T, int R>
std::vector<double> to_double(const Tensor<T, R>& t) {
  std::vector<double> r;
  for (T v : t.to_vector()) r.push_back(static_cast<double>(v));
  return r;
}

// Element-wise closeness with NaN == NaN and inf == inf; reports the first mismatch.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want, double rtol = 1e-5,
                        double atol = 1e-6) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    double g = got[i], w = want[i];
    if (std::isnan(w)) {
      if (!std::isnan(g)) FAIL("element " << i << ": got " << g << ", want nan");
      continue;
    }
    if (std::isinf(w)) {
      if (g != w) FAIL("element " << i << ": got " << g << ", want " << w);
      continue;
    }
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w)))
      FAIL("element " << i << ": got " << g << ", want " << w << " (|diff| " << std::fabs(g - w) << ")");
  }
}

template <class T, int R>
void check_close(const Tensor<T, R>& got, const std::vector<double>& want, double rtol = 1e-5, double atol = 1e-6) {
  check_close(to_double(got), want, rtol, atol);
}

// Random values from an independent generator (std::mt19937), copied to `device`.
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> random_tensor(const index_t (&shape)[R], Device device, unsigned seed, double lo = -2.0,
                                             double hi = 2.0) {
  auto t = empty<T>(shape, kCPU);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (index_t i = 0; i < t.numel(); ++i) {
    if constexpr (std::is_floating_point_v<T>)
      t.data()[i] = static_cast<T>(dist(gen));
    else if constexpr (std::is_same_v<T, bool>)
      t.data()[i] = dist(gen) > 0.5 * (lo + hi);
    else
      t.data()[i] = static_cast<T>(std::floor(dist(gen)));
  }
  return t.to(device);
}

// Launches counted on `d` while running f.
template <class F>
std::int64_t launches_of(Device d, F&& f) {
  stats::reset();
  f();
  return stats::launches(d);
}

// Checks the launches since the last stats::reset(): `expected` on `dev`, none on the CPU
// when `dev` is a GPU. Not a template, like every function holding assertions here, so that
// the assertions compile once rather than once per op (these files are also built by nvcc).
inline void expect_launches(Device dev, std::int64_t expected) {
  CHECK(stats::launches(dev) == expected);
  if (dev.is_cuda()) CHECK(stats::launches(kCPU) == 0);
}

// The message of the ft::Error that f() throws, else "no error" or "not an ft::Error: …" (which
// fail the callers' checks of the message).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not an ft::Error: ") + e.what();
  }
  return "no error";
}

// Tolerances (rtol, atol) for a result of type V: float_rtol for float, 1e-12 for double,
// exact for integers and bool.
template <class V>
std::pair<double, double> tolerance(double float_rtol = 1e-5) {
  if constexpr (std::is_same_v<V, float>)
    return {float_rtol, 1e-6};
  else if constexpr (std::is_same_v<V, double>)
    return {1e-12, 1e-12};
  else
    return {0.0, 0.0};
}

// What one statement gave: its result read back, the reference, and the launches it took.
struct Outcome {
  std::string what;
  std::vector<double> got, want;
  std::int64_t launches = 0, cpu_launches = 0, expected_launches = 1;
};

template <class E>
Outcome evaluate(ft::Device dev, std::string what, const E& e, std::vector<double> want, std::int64_t expected = 1) {
  ft::stats::reset();
  ft::Tensor<typename E::value_type, E::rank> y = e;
  Outcome o{std::move(what), {}, std::move(want), ft::stats::launches(dev), ft::stats::launches(ft::kCPU), expected};
  o.got = to_double(y);
  return o;
}

template <class T, int R, class E>
Outcome assign(ft::Device dev, std::string what, const ft::Tensor<T, R>& dst, const E& e, std::vector<double> want) {
  ft::stats::reset();
  ft::Tensor<T, R> d = dst;
  d = e;
  Outcome o{std::move(what), {}, std::move(want), ft::stats::launches(dev), ft::stats::launches(ft::kCPU), 1};
  o.got = to_double(d);
  return o;
}

inline void verify(const std::string& label, ft::Device dev, const std::vector<Outcome>& outcomes, double rtol,
                   double atol) {
  INFO(label);
  for (const Outcome& o : outcomes) {
    INFO(o.what);
    CHECK(o.launches == o.expected_launches);
    if (dev.is_cuda()) CHECK(o.cpu_launches == 0);
    check_close(o.got, o.want, rtol, atol);
  }
}

}  // namespace ft::test
