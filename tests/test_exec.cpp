// Execution: one launch per statement, laziness, aliasing, the index paths.
#include "common.hpp"

using ft::index_t;
using ft::test::check_close;
using ft::test::launches_of;
using ft::test::random_tensor;
using ft::test::to_double;

TEST_CASE("the issue's snippet is one launch and matches a reference loop") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::randn<float>({1000, 37}, dev, 1);
    auto b = ft::randn<float>({37}, dev, 2);
    ft::stats::reset();
    ft::Tensor<float, 2> y = ft::relu(a * 2.0f + b) - ft::exp(-a);
    CHECK(ft::stats::launches(dev) == 1);
    auto av = to_double(a), bv = to_double(b);
    std::vector<double> want(av.size());
    for (index_t i = 0; i < 1000; ++i)
      for (index_t j = 0; j < 37; ++j) {
        double x = av[i * 37 + j];
        want[i * 37 + j] = std::max(x * 2 + bv[j], 0.0) - std::exp(-x);
      }
    check_close(y, want);
    ft::Tensor<float, 2> t = a.transpose(0, 1).contiguous();
    CHECK(t.shape() == ft::Shape<2>{37, 1000});
    CHECK(t.to_vector()[1] == a.to_vector()[37]);
  }
}

TEST_CASE("building an expression launches nothing; evaluating it launches once") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({7, 5}, dev, 1);
    auto b = random_tensor<float>({5}, dev, 2);
    CHECK(launches_of(dev, [&] {
            auto e = ft::tanh(a * b + 1.0f) * ft::sigmoid(b);
            (void)e;
          }) == 0);
    auto e = ft::tanh(a * b + 1.0f) * ft::sigmoid(b);
    CHECK(launches_of(dev, [&] { ft::Tensor<float, 2> y = e; }) == 1);
    CHECK(launches_of(dev, [&] { auto y = ft::eval(e); }) == 1);
    ft::Tensor<float, 2> out = ft::zeros<float>({7, 5}, dev);
    CHECK(launches_of(dev, [&] { out = e; }) == 1);
  }
}

TEST_CASE("a kept expression owns its leaves: no dangling after the tensors go out of scope") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto make = [&] {
      auto a = random_tensor<float>({11}, dev, 3);
      auto b = random_tensor<float>({11}, dev, 4);
      return std::make_tuple(a * b + 2.0f, to_double(a), to_double(b));
    };
    auto [e, av, bv] = make();
    auto junk = ft::full<float>({11}, 99.0f, dev);  // reuse freed memory if any leaked
    std::vector<double> want(11);
    for (int i = 0; i < 11; ++i) want[i] = av[i] * bv[i] + 2.0;
    ft::Tensor<float, 1> y = e;
    check_close(y, want);
  }
}

TEST_CASE("elementwise self-assignment runs in place in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({33, 17}, dev, 5);
    auto before = to_double(a);
    float* storage = a.data();
    CHECK(launches_of(dev, [&] { a = a * 2.0f + 1.0f; }) == 1);
    CHECK(a.data() == storage);
    std::vector<double> want(before.size());
    for (std::size_t i = 0; i < want.size(); ++i) want[i] = before[i] * 2 + 1;
    check_close(a, want);
    CHECK(ft::stats::allocations(dev) == 0);
  }
}

TEST_CASE("a right-hand side reading the destination through another index map goes through a temporary") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t n = 37;
    auto a = random_tensor<float>({n, n}, dev, 6);
    auto before = to_double(a);
    // 2 launches: the expression into a temporary, then the temporary into `a`.
    CHECK(launches_of(dev, [&] { a = a.transpose(0, 1) + a; }) == 2);
    std::vector<double> want(before.size());
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) want[i * n + j] = before[j * n + i] + before[i * n + j];
    check_close(a, want);

    // A shifted overlapping view: x[1:] = x[:-1] * 1 must read the old values.
    auto x = random_tensor<float>({1001}, dev, 7);
    auto xv = to_double(x);
    x.slice(0, 1, 1001) = x.slice(0, 0, 1000) * 1.0f;
    std::vector<double> wx(xv);
    for (int i = 1; i < 1001; ++i) wx[i] = xv[i - 1];
    check_close(x, wx);

    // A broadcast read of the destination's first row.
    auto m = random_tensor<float>({5, 6}, dev, 8);
    auto mv = to_double(m);
    m = m - m.slice(0, 0, 1);
    std::vector<double> wm(mv.size());
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 6; ++j) wm[i * 6 + j] = mv[i * 6 + j] - mv[j];
    check_close(m, wm);
  }
}

TEST_CASE("a statement of more leaves than the executor keeps inline: plan and alias checks see all of them") {
  // exec::LeafList keeps 16 leaves inline and the rest apart: here the one transposed leaf and
  // the one reading the destination come after the sixteenth.
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t n = 19;
    auto a = random_tensor<float>({n, n}, dev, 20);
    auto d = random_tensor<float>({n, n}, dev, 21);
    const auto av = to_double(a), dv0 = to_double(d);
    // 16 dense leaves, then a transposed one: the statement runs by strides, still one launch
    auto sum16 = [&] { return a + a + a + a + a + a + a + a + a + a + a + a + a + a + a + a; };
    ft::Tensor<float, 2> y(ft::Shape<2>{n, n}, dev);
    CHECK(launches_of(dev, [&] { y = sum16() + a.transpose(0, 1); }) == 1);
    std::vector<double> want(av.size());
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) want[i * n + j] = 16 * av[i * n + j] + av[j * n + i];
    check_close(y, want, 1e-5);
    // ... then the destination read transposed: through a temporary (two launches), old values read
    CHECK(launches_of(dev, [&] { d = sum16() + d.transpose(0, 1); }) == 2);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) want[i * n + j] = 16 * av[i * n + j] + dv0[j * n + i];
    check_close(d, want, 1e-5);
  }
}

TEST_CASE("a non-contiguous destination is written through its strides") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto base = ft::zeros<float>({6, 9}, dev);
    auto b = random_tensor<float>({3, 6}, dev, 9);
    auto view = base.slice(1, 0, 9, 3).transpose(0, 1);  // [3, 6], strides [3, 9]
    CHECK(!view.is_contiguous());
    CHECK(launches_of(dev, [&] { view = b * 3.0f; }) == 1);
    auto bv = to_double(b);
    std::vector<double> want(54, 0.0);  // base[i][3k] = 3·b[k][i], the rest untouched
    for (int i = 0; i < 6; ++i)
      for (int k = 0; k < 3; ++k) want[i * 9 + k * 3] = 3.0 * bv[k * 6 + i];
    check_close(base, want);
  }
}

TEST_CASE("the 32-bit and 64-bit index paths agree, dense and strided") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({129, 65}, dev, 10);
    auto r = random_tensor<float>({65}, dev, 11);
    auto dense = [&] { return ft::eval(a * 3.0f - ft::sin(a)); };
    auto strided = [&] { return ft::eval(a.transpose(0, 1) * 2.0f + r.unsqueeze(1)); };
    auto d32 = dense().to_vector(), s32 = strided().to_vector();
    ft::exec::testing::force_int64_index = true;
    auto d64 = dense().to_vector(), s64 = strided().to_vector();
    ft::exec::testing::force_int64_index = false;
    CHECK(d32 == d64);
    CHECK(s32 == s64);
    auto av = to_double(a), rv = to_double(r);
    std::vector<double> want(65 * 129);
    for (int i = 0; i < 65; ++i)
      for (int j = 0; j < 129; ++j) want[i * 129 + j] = av[j * 65 + i] * 2 + rv[i];
    check_close(std::vector<double>(s64.begin(), s64.end()), want);
  }
}

TEST_CASE("odd and large sizes, and 0-size tensors, which launch nothing") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t n : {index_t(1), index_t(7), index_t(1000003)}) {
      CAPTURE(n);
      auto a = ft::randn<float>({n}, dev, 12);
      auto b = ft::randn<float>({n}, dev, 13);
      ft::Tensor<float, 1> y;
      CHECK(launches_of(dev, [&] { y = a * b - 0.5f * a; }) == 1);
      auto av = to_double(a), bv = to_double(b);
      std::vector<double> want(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i) want[i] = av[i] * bv[i] - 0.5 * av[i];
      check_close(y, want);
      // an odd offset defeats 16-byte alignment: the scalar path must agree
      ft::Tensor<float, 1> z = a.slice(0, 1, n) * b.slice(0, 1, n) - 0.5f * a.slice(0, 1, n);
      check_close(z, std::vector<double>(want.begin() + 1, want.end()));
    }
    auto e = ft::empty<float>({0, 5}, dev);
    CHECK(launches_of(dev, [&] {
            ft::Tensor<float, 2> y = e * 2.0f + 1.0f;
            CHECK(y.numel() == 0);
          }) == 0);
  }
}

TEST_CASE("mixed element types in one statement") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto i = ft::arange<std::int32_t>(0, 1000, 1, dev);
    auto f = random_tensor<float>({1000}, dev, 14);
    auto d = random_tensor<double>({1000}, dev, 15);
    ft::Tensor<double, 1> y;
    CHECK(launches_of(dev, [&] { y = i * f + d; }) == 1);
    auto fv = to_double(f), dv = to_double(d);
    std::vector<double> want(1000);
    for (int k = 0; k < 1000; ++k) want[k] = k * static_cast<double>(static_cast<float>(fv[k])) + dv[k];
    check_close(y, want, 1e-6);
    ft::Tensor<std::uint8_t, 1> mask = f > 0.0f;
    auto mv = mask.to_vector();
    for (int k = 0; k < 1000; ++k) CHECK(mv[k] == (fv[k] > 0 ? 1 : 0));
  }
}

namespace {
// Copies and fills of one dtype against a host reference: layouts that coalesce to one row,
// transposes, broadcasts, rank 0 and rank 8, sizes above the CPU's parallel grain, each one launch.
template <class T>
void check_copies(ft::Device dev) {
  INFO("dtype ", static_cast<int>(ft::dtype_of<T>()));
  auto value = [](index_t i) {  // distinct values of T (in its range: no UB conversion)
    if constexpr (std::is_same_v<T, bool>)
      return static_cast<T>(i % 3 == 1);
    else if constexpr (std::is_same_v<T, std::uint8_t>)
      return static_cast<T>(i % 97);
    else
      return static_cast<T>(static_cast<float>(i % 97) - 40.0f);
  };
  auto bits = [](const T& v) {
    std::uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
  };
  std::vector<T> host(2 * 3 * 50000);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = value(static_cast<index_t>(i));
  const auto src = ft::from_vector(host, {2, 3, 50000}, dev);  // 300000 elements

  // a permuted copy (strided on both sides of each row), above the parallel grain; a named
  // tensor rebinds on `t = u`, so the copies below assign through std::move(t) = u
  ft::Tensor<T, 3> t = ft::empty<T>({50000, 2, 3}, dev);
  CHECK(launches_of(dev, [&] { std::move(t) = src.permute({2, 0, 1}); }) == 1);
  auto tv = t.to_vector();
  bool same = true;
  for (index_t k = 0; k < 50000; ++k)
    for (index_t i = 0; i < 2; ++i)
      for (index_t j = 0; j < 3; ++j)
        same = same && bits(tv[(k * 2 + i) * 3 + j]) == bits(host[(i * 3 + j) * 50000 + k]);
  CHECK(same);

  // a contiguous copy into a strided destination, and back: a clone and a contiguous() of a view
  auto big = ft::zeros<T>({2, 3, 100000}, dev);
  auto half_view = big.slice(2, 1, 100000, 2);  // [2, 3, 50000], every second element
  CHECK(launches_of(dev, [&] { std::move(half_view) = src; }) == 1);
  CHECK(launches_of(dev, [&] { CHECK(half_view.contiguous().to_vector() == host); }) == 1);
  auto bv = big.to_vector();
  for (std::size_t i = 0; i < bv.size(); i += 4999) CHECK(bits(bv[i]) == bits(i % 2 ? host[i / 2] : T{}));

  // a broadcast row and column, and a fill, into a transposed destination
  const auto row = ft::from_vector(std::vector<T>{value(1), value(2), value(3)}, {3}, dev);
  auto m = ft::empty<T>({3, 4}, dev).transpose(0, 1);  // [4, 3], strides [1, 4]
  CHECK(launches_of(dev, [&] { m = row; }) == 1);
  auto mv = m.contiguous().to_vector();
  for (int i = 0; i < 12; ++i) CHECK(bits(mv[i]) == bits(value(1 + i % 3)));
  const auto col = ft::from_vector(std::vector<T>{value(5), value(6), value(7), value(8)}, {4, 1}, dev);
  std::move(m) = col;
  mv = m.contiguous().to_vector();
  for (int i = 0; i < 12; ++i) CHECK(bits(mv[i]) == bits(value(5 + i / 3)));
  CHECK(launches_of(dev, [&] { m = value(9); }) == 1);
  mv = m.contiguous().to_vector();
  for (int i = 0; i < 12; ++i) CHECK(bits(mv[i]) == bits(value(9)));

  // rank 0 and rank 8, a self copy, and a transposed self assignment through a temporary
  auto s0 = ft::empty<T>(ft::Shape<0>{}, dev);
  s0 = value(4);
  auto s0b = ft::empty<T>(ft::Shape<0>{}, dev);
  std::move(s0b) = s0;
  CHECK(bits(s0b.item()) == bits(value(4)));
  auto r8 = ft::empty<T>({2, 1, 2, 1, 2, 2, 3, 3}, dev);
  r8 = src.slice(2, 0, 3);  // [2, 3, 3] broadcast over the five leading dimensions
  auto r8v = r8.to_vector();
  for (std::size_t i = 0; i < r8v.size(); ++i) CHECK(bits(r8v[i]) == bits(host[(i % 18) / 3 * 50000 + i % 3]));
  ft::Tensor<T, 3> same_tensor = src.clone();
  std::move(same_tensor) = same_tensor;
  CHECK(same_tensor.to_vector() == host);
  auto sq = ft::from_vector(std::vector<T>(host.begin(), host.begin() + 49), {7, 7}, dev);
  CHECK(launches_of(dev, [&] { std::move(sq) = sq.transpose(0, 1); }) == 2);  // through a temporary
  auto sqv = sq.to_vector();
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 7; ++j) CHECK(bits(sqv[i * 7 + j]) == bits(host[j * 7 + i]));
}
}  // namespace

TEST_CASE("copies and fills of every dtype: layouts, broadcasts, ranks 0 to 8, one launch each") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_copies<float>(dev);
    check_copies<double>(dev);
    check_copies<std::int32_t>(dev);
    check_copies<std::int64_t>(dev);
    check_copies<std::uint8_t>(dev);
    check_copies<bool>(dev);
    check_copies<ft::half>(dev);
    check_copies<ft::bfloat16>(dev);
  }
}

TEST_CASE("a half tensor's copy keeps its bits: NaN payloads, signed zeros, subnormals") {
  std::vector<ft::half> h;
  for (std::uint16_t b : {0x7e01, 0xfc01, 0x8000, 0x0001, 0x7c00}) h.push_back(ft::half::from_bits(b));
  const auto src = ft::from_vector(h, {5});
  ft::Tensor<ft::half, 1> dst = src.clone();
  auto v = dst.to_vector();
  for (std::size_t i = 0; i < h.size(); ++i) CHECK(v[i].x == h[i].x);
}

TEST_CASE("FastDivmod divides exactly for every divisor and dividend tried") {
  std::mt19937_64 gen(42);
  for (int trial = 0; trial < 2000; ++trial) {
    std::int32_t d32 = static_cast<std::int32_t>(trial < 1000 ? trial + 1 : (gen() % 0x7fffffff) + 1);
    std::int64_t d64 = trial < 1000 ? trial + 1 : static_cast<std::int64_t>(gen() % 0x7fffffffffffffffull) + 1;
    ft::FastDivmod<std::int32_t> f32(d32);
    ft::FastDivmod<std::int64_t> f64(d64);
    for (int k = 0; k < 200; ++k) {
      std::int32_t n32 = k < 100 ? k : static_cast<std::int32_t>(gen() % 0x80000000ull);
      if (k == 199) n32 = 0x7fffffff;
      std::int64_t n64 = k < 100 ? k : static_cast<std::int64_t>(gen() % 0x8000000000000000ull);
      if (k == 199) n64 = 0x7fffffffffffffffll;
      std::int32_t q32, r32;
      std::int64_t q64, r64;
      f32.divmod(n32, q32, r32);
      f64.divmod(n64, q64, r64);
      if (q32 != n32 / d32 || r32 != n32 % d32) FAIL("32-bit " << n32 << " / " << d32 << " gave " << q32);
      if (q64 != n64 / d64 || r64 != n64 % d64) FAIL("64-bit " << n64 << " / " << d64 << " gave " << q64);
    }
  }
}

FT_GPU_TEST_CASE("CPU and GPU agree on a composite statement") {
  auto a = ft::randn<float>({513, 257}, ft::kCPU, 16);
  auto b = ft::randn<float>({257}, ft::kCPU, 17);
  auto f = [](const auto& x, const auto& y) {
    return ft::eval(ft::where(x > y, ft::gelu(x), ft::silu(y)) * ft::exp(-ft::square(x)) + ft::atan2(x, y));
  };
  auto cpu = f(a, b);
  auto gpu = f(a.to(ft::kCUDA), b.to(ft::kCUDA));
  check_close(to_double(gpu), to_double(cpu), 1e-5, 1e-6);
}

#if FT_CUDA_ENABLED
// Issue #14 item 3: one current stream per device, blocks freed on the stream they were
// allocated on after the freeing stream's work, and an exception-safe stream swap.
FT_GPU_TEST_CASE("streams: per-device current stream, ordered frees across streams") {
  const ft::Device g0(ft::kCUDA, 0);
  ft::cuda::DeviceGuard on_g0(g0);
  cudaStream_t side = nullptr, compute = nullptr;
  FT_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  FT_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  {
    ft::cuda::StreamGuard on_side(side);
    CHECK(ft::cuda::current_stream() == side);
    CHECK(ft::cuda::current_stream(g0) == side);
    if (ft::cuda::device_count() > 1) CHECK(ft::cuda::current_stream(ft::Device(ft::kCUDA, 1)) == nullptr);
    auto t = ft::zeros<float>({16}, g0);
    CHECK(t.storage()->stream() == side);
  }
  CHECK(ft::cuda::current_stream(g0) == nullptr);
  CHECK_THROWS_AS(([&] {
                    ft::cuda::StreamGuard on_side(side);
                    throw ft::Error("leave the scope by an exception");
                  }()),
                  ft::Error);
  CHECK(ft::cuda::current_stream(g0) == nullptr);

  // x is allocated on `side`, read by a long statement on `compute` and dropped at once; a new
  // block allocated on `side` (which the pool may hand x's memory) is overwritten at once. The
  // free must wait for the read on `compute`, or y would see 7s.
  constexpr index_t n = index_t{1} << 24;
  for (int round = 0; round < 8; ++round) {
    ft::Tensor<float, 1> y;
    {
      ft::cuda::StreamGuard on_compute(compute);
      ft::Tensor<float, 1> x = [&] {
        ft::cuda::StreamGuard on_side(side);
        return ft::full<float>({n}, 1.0f, g0);
      }();
      FT_CUDA_CHECK(cudaStreamSynchronize(side));                            // x is written before compute reads it
      y = ft::eval(ft::exp(ft::log(ft::sqrt(x * x + 0.0f) + 1.0f)) - 1.0f);  // 1 everywhere
    }  // x freed here, with `compute` current: ordered after y's statement
    {
      ft::cuda::StreamGuard on_side(side);
      auto z = ft::full<float>({n}, 7.0f, g0);
      (void)z;
    }
    FT_CUDA_CHECK(cudaDeviceSynchronize());
    auto v = y.to_vector();
    std::size_t wrong = 0;
    for (float e : v) wrong += std::fabs(e - 1.0f) > 1e-5f;
    REQUIRE(wrong == 0);
  }
  FT_CUDA_CHECK(cudaStreamDestroy(side));
  FT_CUDA_CHECK(cudaStreamDestroy(compute));
}

// Issue #14 item 2: a copy between two GPUs waits for the source's stream and the source's
// stream waits for the copy. Needs two devices.
TEST_CASE("peer copies are ordered both ways" * doctest::skip(ft::cuda::device_count() < 2)) {
  const ft::Device g0(ft::kCUDA, 0), g1(ft::kCUDA, 1);
  constexpr index_t n = index_t{1} << 24;
  for (int round = 0; round < 4; ++round) {
    auto a = ft::full<float>({n}, 1.0f, g0);
    ft::Tensor<float, 1> b = ft::eval(ft::exp(ft::log(a + 1.0f)));  // still running on g0's stream
    auto c = b.to(g1);                                              // must see the 2s
    b = ft::full<float>({n}, 5.0f, g0);                             // must not overtake the copy
    auto v = c.to_vector();
    std::size_t wrong = 0;
    for (float e : v) wrong += std::fabs(e - 2.0f) > 1e-5f;
    REQUIRE(wrong == 0);
  }
}
#endif
