// Included by a test file built at the default flags (test_tensor.cpp) and by one built at -O2
// -march=x86-64-v4 (test_options.cpp): the generators round a product and a sum once (an fma)
// in every build, so their values are the same bits in each CPU clone and on a GPU (nvcc
// contracts `a + b*c` into an fma; g++ may or may not, depending on -march and -ffp-contract).
#pragma once

#include <cmath>
#include <cstdint>

#include "common.hpp"

TEST_CASE("arange, linspace, uniform and randn<double> round once (fma): the same bits in every build") {
  const std::int64_t n = 1000;
  const auto a = ft::arange<double>(0.1, 0.1 + 0.37 * n - 0.1, 0.37).to_vector();
  REQUIRE(a.size() == static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    REQUIRE(a[static_cast<std::size_t>(i)] == std::fma(0.37, static_cast<double>(i), 0.1));

  const auto l = ft::linspace<double>(-1.3, 2.9, n).to_vector();
  const double step = (2.9 - -1.3) / static_cast<double>(n - 1);
  for (std::int64_t i = 0; i < n; ++i) {
    const double want =
        i < n / 2 ? std::fma(step, static_cast<double>(i), -1.3) : std::fma(-step, static_cast<double>(n - 1 - i), 2.9);
    REQUIRE(l[static_cast<std::size_t>(i)] == want);
  }

  const std::uint64_t seed = 1234;
  const auto u = ft::uniform<double>({n}, -2.0, 5.0, ft::kCPU, seed).to_vector();
  const auto z = ft::randn<double>({n}, ft::kCPU, seed).to_vector();
  const ft::gen::Uniform<double> ug{seed, -2.0, 5.0};
  const ft::gen::Normal<double> ng{seed, 0.0, 1.0};
  for (std::int64_t i = 0; i < n; ++i) {  // the fused (vectorised, multiversioned) loop = one element at a time
    REQUIRE(u[static_cast<std::size_t>(i)] == ug(i));
    REQUIRE(z[static_cast<std::size_t>(i)] == ng(i));
  }
}
