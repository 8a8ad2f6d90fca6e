// Random numbers: Philox4x32-10 known answers, distributions, seeds, CPU/GPU identity.
#include "common.hpp"

using ft::index_t;
using ft::test::to_double;

TEST_CASE("Philox4x32-10 reproduces the Random123 known-answer vectors") {
  using ft::philox::U32x4;
  auto run = [](U32x4 c, std::uint32_t k0, std::uint32_t k1) { return ft::philox::philox4x32_10(c, k0, k1); };
  U32x4 r = run({{0, 0, 0, 0}}, 0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  r = run({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(r.v[0] == 0x408f276du);
  CHECK(r.v[1] == 0x41c83b0eu);
  CHECK(r.v[2] == 0xa20bc7c6u);
  CHECK(r.v[3] == 0x6d5451fdu);
  r = run({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK(r.v[0] == 0xd16cfe09u);
  CHECK(r.v[1] == 0x94fdccebu);
  CHECK(r.v[2] == 0x5001e420u);
  CHECK(r.v[3] == 0x24126ea1u);
}

TEST_CASE("the deterministic log and cos used by randn are accurate") {
  double worst_log = 0, worst_cos = 0;
  std::mt19937 gen(1);
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t x = gen();
    float u = static_cast<float>((x >> 8) + 1u) * 0x1p-24f;
    double l = ft::philox::det_log(u), lw = std::log(static_cast<double>(u));
    worst_log = std::max(worst_log, std::fabs(l - lw) / std::max(std::fabs(lw), 1e-30));
    double c = ft::philox::det_cos_2pi(x), cw = std::cos(6.283185307179586 * (x * 0x1p-32));
    worst_cos = std::max(worst_cos, std::fabs(c - cw));
  }
  MESSAGE("det_log worst relative error " << worst_log << ", det_cos_2pi worst absolute error " << worst_cos);
  CHECK(worst_log < 4e-7);
  CHECK(worst_cos < 4e-7);
}

TEST_CASE("rand is uniform on [0, 1) and randn is standard normal") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t n = 1000003;
    for (auto u : {to_double(ft::rand<float>({n}, dev, 5)), to_double(ft::rand<double>({n}, dev, 5))}) {
      double mean = 0, var = 0, lo = 1, hi = 0;
      for (double v : u) mean += v, lo = std::min(lo, v), hi = std::max(hi, v);
      mean /= n;
      for (double v : u) var += (v - mean) * (v - mean);
      var /= n;
      CHECK(lo >= 0.0);
      CHECK(hi < 1.0);
      CHECK(mean == doctest::Approx(0.5).epsilon(0.003));
      CHECK(var == doctest::Approx(1.0 / 12).epsilon(0.01));
    }
    for (auto z : {to_double(ft::randn<float>({n}, dev, 6)), to_double(ft::randn<double>({n}, dev, 6))}) {
      double mean = 0, var = 0, kurt = 0, within1 = 0;
      for (double v : z) mean += v;
      mean /= n;
      for (double v : z) {
        var += (v - mean) * (v - mean);
        kurt += std::pow(v - mean, 4);
        within1 += std::fabs(v) < 1.0;
      }
      var /= n;
      kurt /= n * var * var;
      CHECK(std::fabs(mean) < 0.005);
      CHECK(var == doctest::Approx(1.0).epsilon(0.01));
      CHECK(kurt == doctest::Approx(3.0).epsilon(0.02));
      CHECK(within1 / n == doctest::Approx(0.682689).epsilon(0.005));
    }
  }
}

TEST_CASE("the same seed gives the same numbers, another seed different ones") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::randn<float>({1000}, dev, 42).to_vector();
    auto b = ft::randn<float>({1000}, dev, 42).to_vector();
    auto c = ft::randn<float>({1000}, dev, 43).to_vector();
    CHECK(a == b);
    CHECK(a != c);
    // the value of element i depends only on (seed, i), not on the shape
    auto m = ft::randn<float>({10, 100}, dev, 42).to_vector();
    CHECK(m == a);
    // unseeded calls draw fresh seeds; manual_seed makes them reproducible
    ft::manual_seed(7);
    auto s1 = ft::rand<float>({8}, dev).to_vector();
    auto s2 = ft::rand<float>({8}, dev).to_vector();
    ft::manual_seed(7);
    CHECK(ft::rand<float>({8}, dev).to_vector() == s1);
    CHECK(s1 != s2);
  }
}

TEST_CASE("randint and uniform stay in range; each factory is one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Tensor<std::int64_t, 2> r;
    CHECK(ft::test::launches_of(dev, [&] { r = ft::randint<std::int64_t>(-3, 5, {100, 37}, dev, 1); }) == 1);
    std::vector<int> counts(8, 0);
    for (auto v : r.to_vector()) {
      REQUIRE(v >= -3);
      REQUIRE(v < 5);
      counts[static_cast<std::size_t>(v + 3)]++;
    }
    for (int c : counts) CHECK(c > 300);  // 3700 draws over 8 values: ~462 each
    auto u = ft::uniform<double>({5000}, -2.0, 3.0, dev, 2).to_vector();
    for (double v : u) REQUIRE((v >= -2.0 && v < 3.0));
  }
}

FT_GPU_TEST_CASE("randn gives bit-identical floats on the CPU and the GPU") {
  auto cpu = ft::randn<float>({1000003}, ft::kCPU, 9).to_vector();
  auto gpu = ft::randn<float>({1000003}, ft::kCUDA, 9).to_vector();
  CHECK(cpu == gpu);
  CHECK(ft::rand<float>({4097}, ft::kCPU, 3).to_vector() == ft::rand<float>({4097}, ft::kCUDA, 3).to_vector());
  CHECK(ft::rand<double>({4097}, ft::kCPU, 3).to_vector() == ft::rand<double>({4097}, ft::kCUDA, 3).to_vector());
  auto dc = to_double(ft::randn<double>({10007}, ft::kCPU, 4));
  auto dg = to_double(ft::randn<double>({10007}, ft::kCUDA, 4));
  ft::test::check_close(dg, dc, 1e-14, 1e-15);  // double normals: platform log/cos, equal to an ulp or two
}
