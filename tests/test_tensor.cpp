// Specifications of ft::Tensor itself: handle semantics, dtypes, factories, copies and
// transfers, 0-size and rank-0 tensors, AnyTensor and PyTorch-style printing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "generator_bits.hpp"

using ft::index_t;

namespace {

// The elements of a host tensor in row-major order, read by a plain strided loop: the
// reference that to_vector, clone and contiguous are checked against.
template <class T, int R>
std::vector<double> strided_values(const ft::Tensor<T, R>& h) {
  REQUIRE(h.device().is_cpu());
  std::vector<double> r;
  r.reserve(static_cast<std::size_t>(h.numel()));
  for (index_t i = 0; i < h.numel(); ++i) {
    index_t rem = i, off = 0;
    for (int d = R - 1; d >= 0; --d) {
      off += (rem % h.shape()[d]) * h.strides()[d];
      rem /= h.shape()[d];
    }
    r.push_back(static_cast<double>(h.data()[off]));
  }
  return r;
}

template <class T, int R>
std::string printed(const ft::Tensor<T, R>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

// Calls f(T{}) for every element type a tensor may hold.
template <class F>
void for_each_dtype(F&& f) {
  f(float{});
  f(double{});
  f(std::int32_t{});
  f(std::int64_t{});
  f(std::uint8_t{});
  f(bool{});
}

template <class T>
ft::Tensor<T, 1> host_vector(const std::vector<double>& v) {
  auto t = ft::empty<T>({static_cast<index_t>(v.size())});
  for (std::size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<T>(v[i]);
  return t;
}

template <class T, int R>
bool aligned64(const ft::Tensor<T, R>& t) {
  return reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0;
}

}  // namespace

// ---------------------------------------------------------------- handle semantics

TEST_CASE("CPU blocks are cache-line aligned, large ones huge-page aligned") {
  const ft::Tensor<float, 1> small = ft::zeros<float>({1000});
  CHECK(reinterpret_cast<std::uintptr_t>(small.data()) % ft::kCpuAlignment == 0);
  // 40 MB: at least kHugeBlock, so on a 2 MB boundary (and advised for huge pages on Linux)
  const ft::index_t n = 10 << 20;
  REQUIRE(static_cast<std::size_t>(n) * sizeof(float) >= ft::kHugeBlock);
  ft::Tensor<float, 1> big = ft::arange<float>(0, static_cast<float>(n), 1);
  CHECK(reinterpret_cast<std::uintptr_t>(big.data()) % ft::kHugePage == 0);
  big = big * 2.0f + 1.0f;
  const auto v = big.to_vector();
  CHECK(v.front() == 1.0f);
  CHECK(v[12345] == 24691.0f);
  CHECK(v.back() == static_cast<float>(2 * (n - 1) + 1));
}

TEST_CASE("a freed large CPU block is kept for the next tensor of its size, up to the cache's limit") {
  ft::empty_cpu_cache();
  const std::size_t limit = ft::CpuBlockCache::instance().limit();  // 0 under AddressSanitizer
  ft::set_cpu_cache_limit(std::size_t(64) << 20);
  const float* first = nullptr;
  {
    ft::Tensor<float, 2> a = ft::full<float>({1000, 1000}, 3.0f);  // 4 MB
    first = a.data();
  }
  const std::size_t rounded = ft::CpuBlockCache::rounded(4'000'000);
  CHECK(rounded % ft::CpuBlockCache::kGranule == 0);
  CHECK(ft::cpu_cache_bytes() == rounded);
  {
    ft::Tensor<float, 2> b({2000, 500});  // the same rounded size: the same block, no new pages
    CHECK(b.data() == first);
    CHECK(ft::cpu_cache_bytes() == 0);
    b = 1.0f;
    CHECK(ft::sum(b).item() == 1e6f);
    ft::Tensor<float, 1> small = ft::zeros<float>({1000});  // small blocks are not kept
  }
  CHECK(ft::cpu_cache_bytes() == rounded);
  ft::empty_cpu_cache();
  CHECK(ft::cpu_cache_bytes() == 0);
  ft::set_cpu_cache_limit(0);  // off: a freed block goes back at once
  { ft::Tensor<float, 2> c({1000, 1000}); }
  CHECK(ft::cpu_cache_bytes() == 0);
  ft::set_cpu_cache_limit(std::size_t(64) << 20);
  {
    ft::Tensor<double, 3> d = ft::zeros<double>({4, 1024, 1024});  // 32 MB: huge-page aligned, also kept
    CHECK(reinterpret_cast<std::uintptr_t>(d.data()) % ft::kHugePage == 0);
  }
  ft::Tensor<double, 3> e({4, 1024, 1024});
  CHECK(reinterpret_cast<std::uintptr_t>(e.data()) % ft::kHugePage == 0);
  CHECK(ft::cpu_cache_bytes() == 0);
  ft::set_cpu_cache_limit(limit);
}

TEST_CASE("a copy of a tensor shares its storage") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7}, dev, 1);
    ft::Tensor<float, 2> b = a;  // copy construction
    CHECK(b.data() == a.data());
    CHECK(b.storage() == a.storage());
    CHECK(b.shape() == a.shape());
    CHECK(b.strides() == a.strides());
    b = 5.0f;                                                 // writes through b ...
    for (double v : ft::test::to_double(a)) CHECK(v == 5.0);  // ... and a sees it
    ft::Tensor<float, 2> c;
    c = a;  // copy assignment
    CHECK(c.data() == a.data());
    CHECK(ft::test::launches_of(dev, [&] {
            ft::Tensor<float, 2> d = a;
            (void)d;
          }) == 0);
  }
}

TEST_CASE("Tensor = Tensor rebinds the handle and leaves the old storage alone") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({4, 5}, dev, 2);
    auto b = ft::test::random_tensor<float>({2, 3}, dev, 3);
    auto b_old = b;  // keeps b's first storage alive
    std::vector<double> b_values = ft::test::to_double(b);
    std::vector<double> a_values = ft::test::to_double(a);
    std::int64_t n = ft::test::launches_of(dev, [&] { b = a; });
    CHECK(n == 0);
    CHECK(b.data() == a.data());
    CHECK(b.shape() == ft::Shape<2>{4, 5});  // the shape comes along: no broadcast, no copy
    CHECK(ft::test::to_double(b_old) == b_values);
    CHECK(ft::test::to_double(b) == a_values);
  }
}

TEST_CASE("Tensor = expression writes into the existing storage in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({7, 5}, dev, 4);
    auto row = ft::test::random_tensor<float>({5}, dev, 5);
    auto b = ft::empty<float>({7, 5}, dev);
    auto alias = b;
    float* p = b.data();
    CHECK(ft::test::launches_of(dev, [&] { b = a * 2.0f + row; }) == 1);
    CHECK(b.data() == p);
    std::vector<double> av = ft::test::to_double(a), rv = ft::test::to_double(row), want(35);
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 5; ++j) want[i * 5 + j] = 2.0 * av[i * 5 + j] + rv[j];
    ft::test::check_close(alias, want);  // the other handle sees the new values

    // A tensor of another dtype is an expression: it is converted and written in place.
    auto d = ft::test::random_tensor<double>({7, 5}, dev, 6);
    CHECK(ft::test::launches_of(dev, [&] { b = d; }) == 1);
    CHECK(b.data() == p);
    std::vector<double> dv = ft::test::to_double(d);
    for (double& v : dv) v = static_cast<double>(static_cast<float>(v));
    ft::test::check_close(alias, dv, 0, 0);

    // A broadcast scalar writes every element.
    b = -1.5f;
    for (double v : ft::test::to_double(alias)) CHECK(v == -1.5);
  }
}

TEST_CASE("an undefined tensor assigned an expression allocates it on the expression's device") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({7}, dev, 7);
    ft::Tensor<float, 1> u;
    CHECK_FALSE(u.defined());
    u = a + 1.0f;
    REQUIRE(u.defined());
    CHECK(u.device() == dev);
    CHECK(u.data() != a.data());
    std::vector<double> want = ft::test::to_double(a);
    for (double& v : want) v += 1.0;
    ft::test::check_close(u, want);
  }
}

// ---------------------------------------------------------------- dtypes

TEST_CASE("tensors of every dtype hold their values and report their dtype") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for_each_dtype([&](auto tag) {
      using T = decltype(tag);
      CAPTURE(ft::dtype_of<T>());
      double lo = std::is_unsigned_v<T> ? 0.0 : -100.0;
      auto h = ft::test::random_tensor<T>({3, 7}, ft::kCPU, 8, lo, 100.0);
      auto t = h.to(dev);
      CHECK(t.dtype() == ft::dtype_of<T>());
      CHECK(t.device() == dev);
      std::vector<T> got = t.to_vector();
      REQUIRE(got.size() == 21u);
      for (std::size_t i = 0; i < got.size(); ++i) CHECK(static_cast<T>(got[i]) == h.data()[i]);
      CHECK(t.select(0, 2).select(0, 6).item() == h.data()[20]);
      // Elementwise evaluation keeps the dtype.
      ft::Tensor<T, 2> c = t;
      ft::Tensor<T, 2> e = ft::where(t == t, t, t);
      CHECK(e.to_vector() == got);
      CHECK(c.to_vector() == got);
    });
    CHECK(ft::Tensor<float, 1>::dtype() == ft::DType::Float32);
    CHECK(ft::Tensor<double, 1>::dtype() == ft::DType::Float64);
    CHECK(ft::Tensor<std::int32_t, 1>::dtype() == ft::DType::Int32);
    CHECK(ft::Tensor<std::int64_t, 1>::dtype() == ft::DType::Int64);
    CHECK(ft::Tensor<std::uint8_t, 1>::dtype() == ft::DType::UInt8);
    CHECK(ft::Tensor<bool, 1>::dtype() == ft::DType::Bool);
  }
}

TEST_CASE("integer dtypes keep their full range") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto i64 = ft::from_vector<std::int64_t>(
        {std::numeric_limits<std::int64_t>::min(), -1, 0, std::numeric_limits<std::int64_t>::max()}, {4}, dev);
    CHECK(i64.clone().to_vector() == std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), -1, 0,
                                                               std::numeric_limits<std::int64_t>::max()});
    auto i32 = ft::from_vector<std::int32_t>(
        {std::numeric_limits<std::int32_t>::min(), 7, std::numeric_limits<std::int32_t>::max()}, {3}, dev);
    CHECK(i32.clone().to_vector() == std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), 7,
                                                               std::numeric_limits<std::int32_t>::max()});
    auto u8 = ft::from_vector<std::uint8_t>({0, 1, 128, 255}, {4}, dev);
    CHECK(u8.clone().to_vector() == std::vector<std::uint8_t>{0, 1, 128, 255});
    auto b = ft::from_vector<bool>({true, false, false, true, true, false, true}, {7}, dev);
    CHECK(b.clone().to_vector() == std::vector<bool>{true, false, false, true, true, false, true});
  }
}

// ---------------------------------------------------------------- factories

TEST_CASE("empty, zeros, ones and full deduce the rank from the braced shape") {
  static_assert(std::is_same_v<decltype(ft::empty<float>({2, 3})), ft::Tensor<float, 2>>);
  static_assert(std::is_same_v<decltype(ft::zeros<double>({7})), ft::Tensor<double, 1>>);
  static_assert(std::is_same_v<decltype(ft::ones<std::int32_t>({1, 2, 3, 4})), ft::Tensor<std::int32_t, 4>>);
  static_assert(std::is_same_v<decltype(ft::full<bool>({1, 1, 1}, true)), ft::Tensor<bool, 3>>);
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for_each_dtype([&](auto tag) {
      using T = decltype(tag);
      CAPTURE(ft::dtype_of<T>());
      ft::Tensor<T, 3> e, z, o, f;
      CHECK(ft::test::launches_of(dev, [&] { e = ft::empty<T>({3, 1, 7}, dev); }) == 0);
      CHECK(ft::test::launches_of(dev, [&] { z = ft::zeros<T>({3, 1, 7}, dev); }) == 1);
      CHECK(ft::test::launches_of(dev, [&] { o = ft::ones<T>({3, 1, 7}, dev); }) == 1);
      CHECK(ft::test::launches_of(dev, [&] { f = ft::full<T>({3, 1, 7}, T(3), dev); }) == 1);
      for (const auto* t : {&e, &z, &o, &f}) {
        CHECK(t->shape() == ft::Shape<3>{3, 1, 7});
        CHECK(t->strides() == ft::Array<index_t, 3>{{7, 7, 1}});
        CHECK(t->device() == dev);
        CHECK(t->is_contiguous());
      }
      for (T v : z.to_vector()) CHECK(v == T(0));
      for (T v : o.to_vector()) CHECK(v == T(1));
      for (T v : f.to_vector()) CHECK(v == T(3));
    });
    auto big = ft::full<float>({1000003}, -2.25f, dev);
    std::vector<float> bv = big.to_vector();
    CHECK(std::count(bv.begin(), bv.end(), -2.25f) == 1000003);
    auto zero_size = ft::zeros<float>({0, 5}, dev);
    CHECK(zero_size.numel() == 0);
    CHECK(zero_size.shape() == ft::Shape<2>{0, 5});
  }
}

TEST_CASE("arange counts from start towards end by step, as torch.arange") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto check_arange = [&](auto start, auto end, auto step) {
      using T = decltype(start);
      CAPTURE(start);
      CAPTURE(end);
      CAPTURE(step);
      ft::Tensor<T, 1> t;
      index_t n = static_cast<index_t>(
          std::ceil((static_cast<double>(end) - static_cast<double>(start)) / static_cast<double>(step)));
      if (n < 0) n = 0;
      CHECK(ft::test::launches_of(dev, [&] { t = ft::arange<T>(start, end, step, dev); }) == (n > 0 ? 1 : 0));
      CHECK(t.dtype() == ft::dtype_of<T>());
      REQUIRE(t.numel() == n);
      std::vector<double> want;
      for (index_t i = 0; i < n; ++i) want.push_back(static_cast<double>(start) + static_cast<double>(step) * i);
      ft::test::check_close(t, want, std::is_same_v<T, float> ? 1e-6 : 1e-12, 1e-6);
      // Every value is strictly before end in the direction of step.
      for (double v : ft::test::to_double(t))
        CHECK((step > 0 ? v < static_cast<double>(end) : v > static_cast<double>(end)));
    };
    check_arange(std::int64_t{0}, std::int64_t{7}, std::int64_t{1});
    check_arange(std::int64_t{-3}, std::int64_t{11}, std::int64_t{4});
    check_arange(std::int64_t{10}, std::int64_t{0}, std::int64_t{-3});
    check_arange(std::int32_t{5}, std::int32_t{5}, std::int32_t{1});  // empty
    check_arange(0.0f, 1.0f, 0.1f);
    check_arange(1.0f, -1.0f, -0.5f);
    check_arange(-1.0, 1.0, 0.25);
    check_arange(0.5, 7.5, 1.0);
    check_arange(2.0f, -1.7f, -0.3f);

    auto end_only = ft::arange<std::int64_t>(7, dev);
    CHECK(end_only.to_vector() == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6});

    ft::Tensor<std::int64_t, 1> big;
    CHECK(ft::test::launches_of(dev, [&] { big = ft::arange<std::int64_t>(1000003, dev); }) == 1);
    std::vector<std::int64_t> bv = big.to_vector();
    REQUIRE(bv.size() == 1000003u);
    bool ok = true;
    for (std::size_t i = 0; i < bv.size(); ++i) ok = ok && bv[i] == static_cast<std::int64_t>(i);
    CHECK(ok);
  }
}

TEST_CASE("linspace spaces values evenly with exact endpoints, as torch.linspace") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t steps : {index_t{0}, index_t{2}, index_t{7}, index_t{8}, index_t{1000003}}) {
      CAPTURE(steps);
      ft::Tensor<float, 1> f;
      CHECK(ft::test::launches_of(dev, [&] { f = ft::linspace<float>(-1.3, 2.7, steps, dev); }) == (steps > 0 ? 1 : 0));
      auto d = ft::linspace<double>(-1.3, 2.7, steps, dev);
      REQUIRE(f.numel() == steps);
      REQUIRE(d.numel() == steps);
      std::vector<double> want;
      for (index_t i = 0; i < steps; ++i)
        want.push_back(-1.3 + (2.7 - -1.3) * static_cast<double>(i) / static_cast<double>(steps - 1));
      ft::test::check_close(f, want, 1e-6, 1e-6);
      ft::test::check_close(d, want, 1e-13, 1e-13);
      if (steps > 0) {
        std::vector<float> fv = f.to_vector();
        std::vector<double> dv = d.to_vector();
        CHECK(fv.front() == static_cast<float>(-1.3));
        CHECK(fv.back() == static_cast<float>(2.7));
        CHECK(dv.front() == -1.3);
        CHECK(dv.back() == 2.7);
      }
    }
    auto down = ft::linspace<double>(5.0, -5.0, 11, dev);
    ft::test::check_close(down, {5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5}, 1e-14, 1e-14);
  }
}

// torch.linspace(2, 5, 1) is tensor([2.]): a single step gives start.
TEST_CASE("linspace with one step gives start") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = ft::linspace<float>(2.0, 5.0, 1, dev);
    REQUIRE(t.numel() == 1);
    CHECK(t.item() == 2.0f);
  }
}

TEST_CASE("from_vector copies row-major values to the device without a kernel") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto h = ft::test::random_tensor<float>({3, 7}, ft::kCPU, 9);
    std::vector<float> values(h.data(), h.data() + 21);
    ft::Tensor<float, 2> t;
    CHECK(ft::test::launches_of(dev, [&] { t = ft::from_vector<float>(values, {3, 7}, dev); }) == 0);
    CHECK(t.shape() == ft::Shape<2>{3, 7});
    CHECK(t.device() == dev);
    CHECK(t.is_contiguous());
    CHECK(t.to_vector() == values);
    CHECK(t.select(0, 1).select(0, 4).item() == values[11]);
    auto e = ft::from_vector<std::int64_t>({}, {0, 3}, dev);
    CHECK(e.numel() == 0);
    CHECK(e.shape() == ft::Shape<2>{0, 3});
  }
}

// ---------------------------------------------------------------- facts

TEST_CASE("shape, size, dim and numel report the extents; size takes negative dims") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = ft::empty<float>({2, 7, 1, 3}, dev);
    CHECK(t.shape() == ft::Shape<4>{2, 7, 1, 3});
    CHECK(t.dim() == 4);
    CHECK(decltype(t)::rank == 4);
    CHECK(t.numel() == 42);
    CHECK(t.size(0) == 2);
    CHECK(t.size(1) == 7);
    CHECK(t.size(3) == 3);
    CHECK(t.size(-1) == 3);
    CHECK(t.size(-2) == 1);
    CHECK(t.size(-4) == 2);
    CHECK(t.stride(0) == 21);
    CHECK(t.stride(-1) == 1);
    auto z = ft::empty<float>({3, 0, 2}, dev);
    CHECK(z.numel() == 0);
    CHECK(z.size(1) == 0);
  }
}

TEST_CASE("device and to(device) move the data and keep the values") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto h = ft::test::random_tensor<float>({7, 3}, ft::kCPU, 10);
    auto t = h.to(dev);
    CHECK(t.device() == dev);
    CHECK(h.device() == ft::Device(ft::kCPU));
    auto same = t.to(dev);  // to the tensor's own device: the same handle, no copy
    CHECK(same.data() == t.data());
    auto back = t.to(ft::kCPU);
    CHECK(back.device() == ft::Device(ft::kCPU));
    CHECK(ft::test::to_double(back) == strided_values(h));
    if (dev.is_cuda()) CHECK(back.data() != h.data());
    // A non-contiguous view moves as its values in row-major order.
    auto tv = t.transpose(0, 1);
    auto moved = tv.to(ft::kCPU);
    CHECK(moved.shape() == ft::Shape<2>{3, 7});
    CHECK(strided_values(moved) == strided_values(h.transpose(0, 1)));
  }
}

TEST_CASE("clone copies into independent storage in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t n : {index_t{1}, index_t{7}, index_t{1000003}}) {
      CAPTURE(n);
      auto a = ft::randn<float>({n}, dev);
      ft::Tensor<float, 1> c;
      CHECK(ft::test::launches_of(dev, [&] { c = a.clone(); }) == 1);
      CHECK(c.data() != a.data());
      CHECK(c.storage() != a.storage());
      CHECK(c.device() == dev);
      std::vector<double> before = ft::test::to_double(a);
      CHECK(ft::test::to_double(c) == before);
      c = 0.0f;
      CHECK(ft::test::to_double(a) == before);  // the original is untouched
    }
    // The clone of a view is contiguous with the view's values.
    auto h = ft::test::random_tensor<double>({5, 7}, ft::kCPU, 11);
    auto v = h.to(dev).transpose(0, 1).slice(0, 1, 7, 2);
    ft::Tensor<double, 2> c;
    CHECK(ft::test::launches_of(dev, [&] { c = v.clone(); }) == 1);
    CHECK(c.is_contiguous());
    CHECK(c.shape() == ft::Shape<2>{3, 5});
    CHECK(ft::test::to_double(c) == strided_values(h.transpose(0, 1).slice(0, 1, 7, 2)));
  }
}

TEST_CASE("contiguous is free for a contiguous tensor and one launch otherwise") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto h = ft::test::random_tensor<float>({7, 1, 5}, ft::kCPU, 12);
    auto a = h.to(dev);
    ft::Tensor<float, 3> c;
    CHECK(ft::test::launches_of(dev, [&] { c = a.contiguous(); }) == 0);
    CHECK(c.data() == a.data());
    auto t = a.transpose(0, 2);
    CHECK_FALSE(t.is_contiguous());
    CHECK(ft::test::launches_of(dev, [&] { c = t.contiguous(); }) == 1);
    CHECK(c.is_contiguous());
    CHECK(c.data() != a.data());
    CHECK(c.shape() == ft::Shape<3>{5, 1, 7});
    CHECK(ft::test::to_double(c) == strided_values(h.transpose(0, 2)));
  }
}

TEST_CASE("is_contiguous is true for row-major layouts whatever the strides of size-1 dims") {
  auto a = ft::empty<float>({4, 6, 5});
  CHECK(a.is_contiguous());
  CHECK(a.slice(0, 1, 3).is_contiguous());        // a block of whole rows
  CHECK_FALSE(a.slice(2, 0, 3).is_contiguous());  // part of each row
  CHECK_FALSE(a.slice(0, 0, 4, 2).is_contiguous());
  CHECK_FALSE(a.transpose(1, 2).is_contiguous());
  CHECK(a.unsqueeze(1).is_contiguous());
  CHECK(a.unsqueeze(3).is_contiguous());
  CHECK(a.select(0, 2).unsqueeze(0).is_contiguous());                     // [1, 6, 5]
  CHECK_FALSE(a.select(1, 2).select(1, 3).unsqueeze(0).is_contiguous());  // [1, 4], stride 30
  CHECK_FALSE(a.slice(2, 1, 2).is_contiguous());                          // [4, 6, 1], strides [30, 5, 1]
  CHECK_FALSE(a.select(1, 2).is_contiguous());
  CHECK(a.slice(1, 2, 3).slice(0, 1, 2).is_contiguous());  // [1, 1, 5]
  auto e = ft::empty<float>({3, 1}).expand({3, 4});
  CHECK_FALSE(e.is_contiguous());
}

// torch.empty(3, 0).is_contiguous() is True: a tensor with no elements is contiguous.
TEST_CASE("a 0-size tensor is contiguous whatever its shape") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK(ft::empty<float>({0}, dev).is_contiguous());
    CHECK(ft::empty<float>({0, 3}, dev).is_contiguous());
    CHECK(ft::empty<float>({3, 0}, dev).is_contiguous());
    CHECK(ft::empty<float>({2, 0, 3}, dev).is_contiguous());
    auto z = ft::empty<float>({3, 0}, dev);
    CHECK(z.contiguous().data() == z.data());
  }
}

TEST_CASE("item returns the single element of any rank") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto h = ft::test::random_tensor<float>({3, 7}, ft::kCPU, 13);
    auto t = h.to(dev);
    CHECK(t.select(0, 2).select(0, 5).item() == h.data()[2 * 7 + 5]);      // rank 0
    CHECK(t.slice(0, 1, 2).slice(1, 6, 7).item() == h.data()[1 * 7 + 6]);  // rank 2, [1, 1]
    CHECK(t.transpose(0, 1).slice(0, 3, 4).slice(1, 2, 3).item() == h.data()[2 * 7 + 3]);
    CHECK(ft::full<std::int64_t>({1, 1, 1}, -9, dev).item() == -9);
    CHECK(ft::full<bool>({1}, true, dev).item() == true);
  }
}

TEST_CASE("to_vector returns the values in row-major order, free for a contiguous CPU tensor") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto h = ft::test::random_tensor<float>({7, 1, 13}, ft::kCPU, 14);
    auto t = h.to(dev);
    std::vector<float> v;
    std::int64_t n = ft::test::launches_of(dev, [&] { v = t.to_vector(); });
    if (dev.is_cpu()) CHECK(n == 0);
    CHECK(v == std::vector<float>(h.data(), h.data() + h.numel()));
    auto tv = t.transpose(0, 2);
    CHECK(ft::test::launches_of(dev, [&] { v = tv.to_vector(); }) == 1);
    std::vector<double> want = strided_values(h.transpose(0, 2));
    REQUIRE(v.size() == want.size());
    for (std::size_t i = 0; i < v.size(); ++i) CHECK(static_cast<double>(v[i]) == want[i]);
  }
}

TEST_CASE("data points at the first element of the tensor or view") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::empty<double>({5, 7}, dev);
    CHECK(a.data() == static_cast<double*>(a.storage()->data()));
    CHECK(a.slice(0, 2, 5).data() == a.data() + 14);
    CHECK(a.slice(1, 3, 7).data() == a.data() + 3);
    CHECK(a.select(0, -1).data() == a.data() + 28);
    CHECK(a.transpose(0, 1).data() == a.data());
  }
}

TEST_CASE("CPU storage is 64-byte aligned") {
  std::vector<ft::Tensor<std::uint8_t, 1>> keep;  // interleave small allocations
  for (index_t n : {index_t{0}, index_t{1}, index_t{3}, index_t{7}, index_t{65}, index_t{1000003}}) {
    CAPTURE(n);
    keep.push_back(ft::empty<std::uint8_t>({n}));
    CHECK(aligned64(keep.back()));
    CHECK(aligned64(ft::empty<float>({n})));
    CHECK(aligned64(ft::empty<double>({n, 1})));
    CHECK(aligned64(ft::zeros<std::int32_t>({1, n})));
    CHECK(aligned64(ft::ones<std::int64_t>({n})));
    CHECK(aligned64(ft::full<bool>({n}, true)));
  }
  auto a = ft::test::random_tensor<float>({7, 13}, ft::kCPU, 15);
  CHECK(aligned64(a));
  CHECK(aligned64(a.transpose(0, 1).contiguous()));
  CHECK(aligned64(a.slice(1, 1, 5).clone()));
  CHECK(aligned64(a.transpose(0, 1).reshape({-1})));  // a copy
  ft::Tensor<float, 2> e = a * 3.0f;
  CHECK(aligned64(e));
  CHECK(aligned64(ft::from_vector<std::uint8_t>({1, 2, 3}, {3})));
}

// ---------------------------------------------------------------- 0-size and rank-0

TEST_CASE("0-size tensors have a shape, no elements and need no launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::zeros<float>({3, 0, 7}, dev);
    CHECK(a.numel() == 0);
    CHECK(a.shape() == ft::Shape<3>{3, 0, 7});
    CHECK(a.size(1) == 0);
    CHECK(a.to_vector().empty());
    ft::Tensor<float, 3> c;
    CHECK(ft::test::launches_of(dev, [&] { c = a.clone(); }) == 0);
    CHECK(c.numel() == 0);
    CHECK(c.shape() == a.shape());
    ft::Tensor<float, 3> e;
    CHECK(ft::test::launches_of(dev, [&] { e = a * 2.0f + 1.0f; }) == 0);
    CHECK(e.shape() == a.shape());
    CHECK(ft::test::launches_of(dev, [&] { a = 5.0f; }) == 0);
    auto r = ft::arange<float>(3.0f, 3.0f, 1.0f, dev);
    CHECK(r.numel() == 0);
    CHECK(ft::zeros<std::int64_t>({0}, dev).to_vector().empty());
    // A 0-size row broadcasts against [0] rows.
    auto row = ft::test::random_tensor<float>({7}, dev, 16);
    ft::Tensor<float, 3> b = a + row;
    CHECK(b.shape() == ft::Shape<3>{3, 0, 7});
  }
}

TEST_CASE("rank-0 tensors hold one element") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto s = ft::zeros<float>(ft::Shape<0>{}, dev);
    CHECK(s.dim() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.is_contiguous());
    CHECK(s.item() == 0.0f);
    auto h = ft::test::random_tensor<float>({7}, ft::kCPU, 17);
    auto x = h.to(dev).select(0, 3);  // a rank-0 view
    static_assert(decltype(x)::rank == 0);
    CHECK(x.item() == h.data()[3]);
    CHECK(x.to_vector() == std::vector<float>{h.data()[3]});
    ft::Tensor<float, 0> c;
    CHECK(ft::test::launches_of(dev, [&] { c = x.clone(); }) == 1);
    CHECK(c.item() == h.data()[3]);
    ft::Tensor<float, 0> y = x * 2.0f + s;
    CHECK(y.item() == 2.0f * h.data()[3]);
    s = x;  // rebinds
    CHECK(s.data() == x.data());
    auto u = x.unsqueeze(0);
    CHECK(u.shape() == ft::Shape<1>{1});
    CHECK(u.item() == h.data()[3]);
    // A rank-0 tensor broadcasts against any shape.
    auto m = ft::test::random_tensor<float>({2, 3}, dev, 18);
    ft::Tensor<float, 2> z = m * x;
    std::vector<double> want = ft::test::to_double(m);
    for (double& v : want) v *= static_cast<double>(h.data()[3]);
    ft::test::check_close(z, want);
  }
}

// ---------------------------------------------------------------- AnyTensor

TEST_CASE("AnyTensor keeps the dtype, rank, shape and storage of the typed tensor") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7}, dev, 19);
    auto b = ft::arange<std::int64_t>(7, dev);
    auto c = ft::full<bool>({2, 1, 3}, true, dev);
    auto d = ft::zeros<std::uint8_t>({0, 4}, dev);
    auto e = ft::zeros<double>(ft::Shape<0>{}, dev);
    ft::AnyTensor any_a = a, any_b = b, any_c = c, any_d = d, any_e = e;
    CHECK(any_a.dtype() == ft::DType::Float32);
    CHECK(any_b.dtype() == ft::DType::Int64);
    CHECK(any_c.dtype() == ft::DType::Bool);
    CHECK(any_d.dtype() == ft::DType::UInt8);
    CHECK(any_e.dtype() == ft::DType::Float64);
    CHECK(any_a.dim() == 2);
    CHECK(any_c.dim() == 3);
    CHECK(any_e.dim() == 0);
    CHECK(any_a.shape() == std::vector<index_t>{3, 7});
    CHECK(any_c.shape() == std::vector<index_t>{2, 1, 3});
    CHECK(any_e.shape().empty());
    CHECK(any_a.numel() == 21);
    CHECK(any_d.numel() == 0);
    CHECK(any_e.numel() == 1);
    CHECK(any_a.nbytes() == 84u);
    CHECK(any_a.device() == dev);
    CHECK(any_a.data() == static_cast<void*>(a.data()));
    CHECK(any_a.storage() == a.storage());
    CHECK(ft::AnyTensor(ft::test::random_tensor<std::int32_t>({7}, dev, 20)).dtype() == ft::DType::Int32);
    CHECK_FALSE(ft::AnyTensor().defined());
    // A view keeps its strides.
    ft::AnyTensor any_t = a.transpose(0, 1);
    CHECK(any_t.shape() == std::vector<index_t>{7, 3});
    CHECK(any_t.strides() == std::vector<index_t>{1, 7});
  }
}

TEST_CASE("AnyTensor::permute is a view; contiguous_on copies only when it must") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<double>({2, 3, 4}, dev, 22);
    ft::AnyTensor p = ft::AnyTensor(a).permute({2, 0, -2});
    CHECK(p.shape() == std::vector<index_t>{4, 2, 3});
    CHECK(p.strides() == std::vector<index_t>{1, 12, 4});
    CHECK(p.data() == static_cast<void*>(a.data()));
    CHECK(ft::test::to_double(p.as<double, 3>()) == ft::test::to_double(a.permute({2, 0, 1})));
    CHECK_THROWS_WITH(ft::AnyTensor(a).permute({0, 1}), doctest::Contains("2 entries for a tensor of rank 3"));
    CHECK_THROWS_WITH(ft::AnyTensor(a).permute({0, 1, -3}), doctest::Contains("repeats"));

    const ft::AnyTensor same = ft::contiguous_on(ft::AnyTensor(a), dev);  // already contiguous there
    CHECK(same.data() == static_cast<void*>(a.data()));
    const ft::AnyTensor c = ft::contiguous_on(p, dev);
    CHECK(c.data() != p.data());
    CHECK(c.strides() == std::vector<index_t>{6, 3, 1});
    CHECK(ft::test::to_double(c.as<double, 3>()) == ft::test::to_double(a.permute({2, 0, 1})));
    const ft::AnyTensor host = ft::contiguous_on(ft::AnyTensor(ft::full<bool>({3}, true, dev)), ft::kCPU);
    CHECK(host.device() == ft::Device(ft::kCPU));
    CHECK(host.as<bool, 1>().to_vector() == std::vector<bool>{true, true, true});
    CHECK(ft::contiguous_on(ft::AnyTensor(ft::zeros<float>(ft::Shape<0>{}, dev)), ft::kCPU).dim() == 0);
  }
}

TEST_CASE("AnyTensor::as returns the typed tensor sharing storage, or throws naming both types") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7}, dev, 21);
    ft::AnyTensor any = a.transpose(0, 1);
    CHECK(any.is<float, 2>());
    CHECK_FALSE(any.is<double, 2>());
    CHECK_FALSE(any.is<float, 3>());
    auto t = any.as<float, 2>();
    CHECK(t.data() == a.data());
    CHECK(t.shape() == ft::Shape<2>{7, 3});
    CHECK(t.strides() == ft::Array<index_t, 2>{{1, 7}});
    CHECK(ft::test::to_double(t) == ft::test::to_double(a.transpose(0, 1)));
    t = 4.0f;  // writes are visible through the original
    for (double v : ft::test::to_double(a)) CHECK(v == 4.0);

    CHECK_THROWS_AS((any.as<double, 2>()), ft::Error);
    CHECK_THROWS_WITH((any.as<double, 2>()), doctest::Contains("float32"));
    CHECK_THROWS_WITH((any.as<double, 2>()), doctest::Contains("float64"));
    CHECK_THROWS_WITH((any.as<std::int32_t, 1>()), doctest::Contains("int32 of rank 1"));
    CHECK_THROWS_WITH((any.as<std::int32_t, 1>()), doctest::Contains("float32 of rank 2"));
    CHECK_THROWS_AS((any.as<float, 1>()), ft::Error);
  }
}

TEST_CASE("ft::visit calls the function with the typed tensor") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    std::vector<ft::AnyTensor> list{
        ft::test::random_tensor<float>({3, 7}, dev, 22), ft::arange<std::int64_t>(7, dev),
        ft::full<bool>({2, 1, 3}, false, dev),           ft::zeros<std::uint8_t>({1, 1, 1, 1, 1}, dev),
        ft::zeros<double>(ft::Shape<0>{}, dev),          ft::ones<std::int32_t>({1, 2, 1, 2, 1, 2, 1, 2}, dev)};
    for (const ft::AnyTensor& any : list) {
      CAPTURE(any);
      index_t n = ft::visit(any, [](const auto& t) -> index_t { return t.numel(); });
      CHECK(n == any.numel());
      int rank = -1;
      ft::DType dt = ft::DType::Float32;
      const void* p = nullptr;
      ft::visit(any, [&](const auto& t) {
        using TT = std::remove_cvref_t<decltype(t)>;
        rank = TT::rank;
        dt = TT::dtype();
        p = t.data();
      });
      CHECK(rank == any.dim());
      CHECK(dt == any.dtype());
      CHECK(p == any.data());
    }
  }
}

// ---------------------------------------------------------------- printing (PyTorch's format)

TEST_CASE("print: floats show 4 decimals right-aligned, as PyTorch") {
  CHECK(printed(ft::from_vector<float>({1, 2.5, -3}, {3})) == "tensor([ 1.0000,  2.5000, -3.0000])");
  CHECK(printed(ft::from_vector<float>({0.25f, 0.125f}, {2})) == "tensor([0.2500, 0.1250])");
  CHECK(printed(ft::from_vector<float>({-0.5f, 12.75f, 0.0f}, {3})) == "tensor([-0.5000, 12.7500,  0.0000])");
  CHECK(printed(ft::from_vector<float>({NAN, 1.5f, -INFINITY}, {3})) == "tensor([   nan, 1.5000,   -inf])");
}

TEST_CASE("print: integer-valued floats print with a trailing dot, as PyTorch") {
  CHECK(printed(ft::from_vector<float>({1, 2}, {2})) == "tensor([1., 2.])");
  CHECK(printed(ft::from_vector<float>({-1, 2, 10}, {3})) == "tensor([-1.,  2., 10.])");
  CHECK(printed(ft::zeros<float>({3})) == "tensor([0., 0., 0.])");
  CHECK(printed(ft::from_vector<float>({1, 1000}, {2})) == "tensor([   1., 1000.])");
}

TEST_CASE("print: tiny, huge or wide-ranging values switch to scientific notation, as PyTorch") {
  CHECK(printed(ft::from_vector<float>({1e-5f, 1.0f}, {2})) == "tensor([1.0000e-05, 1.0000e+00])");
  CHECK(printed(ft::from_vector<float>({1.5e9f, 2.5f}, {2})) == "tensor([1.5000e+09, 2.5000e+00])");
  CHECK(printed(ft::from_vector<float>({0.5f, -1234.5f}, {2})) == "tensor([ 5.0000e-01, -1.2345e+03])");
  CHECK(printed(ft::from_vector<double>({2e9, 1}, {2})) == "tensor([2.0000e+09, 1.0000e+00], dtype=float64)");
}

TEST_CASE("print: int64 and bool show no dtype, as PyTorch") {
  CHECK(printed(ft::from_vector<std::int64_t>({1, 2, 3}, {3})) == "tensor([1, 2, 3])");
  CHECK(printed(ft::from_vector<std::int64_t>({-1, 20, 3}, {3})) == "tensor([-1, 20,  3])");
  CHECK(printed(ft::from_vector<bool>({true, false}, {2})) == "tensor([ True, False])");
  CHECK(printed(ft::from_vector<bool>({true, true}, {2})) == "tensor([True, True])");
}

// PyTorch writes `dtype=torch.int32`; fusedtensor names the dtype without the module.
TEST_CASE("print: other dtypes name their dtype after the values") {
  CHECK(printed(ft::from_vector<std::int32_t>({1, 2, 3}, {3})) == "tensor([1, 2, 3], dtype=int32)");
  CHECK(printed(ft::from_vector<double>({0.5, 1.25}, {2})) == "tensor([0.5000, 1.2500], dtype=float64)");
  CHECK(printed(ft::from_vector<std::uint8_t>({0, 255}, {2})) == "tensor([  0, 255], dtype=uint8)");
}

TEST_CASE("print: rank 2 and 3 use PyTorch's newline and indent layout") {
  CHECK(printed(ft::from_vector<float>({1, -0.5, 2, 3}, {2, 2})) ==
        "tensor([[ 1.0000, -0.5000],\n"
        "        [ 2.0000,  3.0000]])");
  CHECK(printed(ft::arange<std::int64_t>(8).reshape({2, 2, 2})) ==
        "tensor([[[0, 1],\n"
        "         [2, 3]],\n"
        "\n"
        "        [[4, 5],\n"
        "         [6, 7]]])");
  // A transposed view prints its own order.
  CHECK(printed(ft::arange<std::int64_t>(6).reshape({2, 3}).transpose(0, 1)) ==
        "tensor([[0, 3],\n"
        "        [1, 4],\n"
        "        [2, 5]])");
  CHECK(printed(ft::from_vector<std::int32_t>({1, 2}, {1, 2})) == "tensor([[1, 2]], dtype=int32)");
}

TEST_CASE("print: rank-0 tensors print the bare value") {
  CHECK(printed(ft::from_vector<float>({3.5f}, {1}).select(0, 0)) == "tensor(3.5000)");
  CHECK(printed(ft::from_vector<float>({2}, {1}).select(0, 0)) == "tensor(2.)");
  CHECK(printed(ft::from_vector<std::int64_t>({-7}, {1}).select(0, 0)) == "tensor(-7)");
  CHECK(printed(ft::from_vector<std::int32_t>({5}, {1}).select(0, 0)) == "tensor(5, dtype=int32)");
  CHECK(printed(ft::from_vector<bool>({false}, {1}).select(0, 0)) == "tensor(False)");
}

// torch.arange(30): rows wrap at PRINT_OPTS.linewidth = 80 columns, after the indent.
TEST_CASE("print: long rows wrap at 80 columns like PyTorch") {
  CHECK(printed(ft::arange<std::int64_t>(30)) ==
        "tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n"
        "        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29])");
  CHECK(printed(ft::arange<std::int64_t>(60).reshape({2, 30})) ==
        "tensor([[ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n"
        "         18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29],\n"
        "        [30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,\n"
        "         48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]])");
  // Eight float columns of width 7 fit on a line: (80 - 7) / (7 + 2).
  std::string s = printed(ft::linspace<float>(-1.5, 1.5, 9));
  CHECK(s ==
        "tensor([-1.5000, -1.1250, -0.7500, -0.3750,  0.0000,  0.3750,  0.7500,  1.1250,\n"
        "         1.5000])");
}

TEST_CASE("print: empty and undefined tensors") {
  CHECK(printed(ft::zeros<float>({0})) == "tensor([])");
  CHECK(printed(ft::Tensor<float, 2>()) == "tensor(undefined)");
}

TEST_CASE("print: more than 1000 elements are summarised with ... and 3 items at each end") {
  std::string s = printed(ft::arange<std::int64_t>(2000));
  CHECK(s.find("...") != std::string::npos);
  CHECK(s.starts_with("tensor([   0,    1,    2,"));
  CHECK(s.ends_with("1997, 1998, 1999])"));
  CHECK(s.find("   3,") == std::string::npos);

  std::string full = printed(ft::arange<std::int64_t>(1000));  // the threshold itself: all shown
  CHECK(full.find("...") == std::string::npos);
  CHECK(full.find("500") != std::string::npos);

  // The column width comes from the shown values only.
  auto v = ft::zeros<std::int64_t>({1001});
  v.slice(0, 500, 501) = std::int64_t{123456};
  CHECK(printed(v).find("[0, 0, 0,") != std::string::npos);

  // Rows are summarised too, with "..." on its own line.
  std::string m = printed(ft::arange<std::int64_t>(2000).reshape({100, 20}));
  CHECK(m.starts_with("tensor([[   0,    1,    2,"));
  CHECK(m.find(",\n        ...,\n        [1940, 1941, 1942,") != std::string::npos);
  CHECK(m.ends_with("1997, 1998, 1999]])"));
}

TEST_CASE("print: a CUDA tensor names its device") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    if (!dev.is_cuda()) continue;
    std::ostringstream want;
    want << "tensor([1., 2.], device='" << dev << "')";
    CHECK(printed(ft::from_vector<float>({1, 2}, {2}, dev)) == want.str());
    std::ostringstream want_i32;
    want_i32 << "tensor([1, 2], device='" << dev << "', dtype=int32)";
    CHECK(printed(ft::from_vector<std::int32_t>({1, 2}, {2}, dev)) == want_i32.str());
  }
}

// ---- where print.hpp departs from PyTorch's _tensor_str (expected strings are PyTorch's)

// torch.arange(2000): a summarised row is joined with ", " around " ...", so two spaces.
TEST_CASE("print: a summarised vector spaces its ellipsis like PyTorch") {
  CHECK(printed(ft::arange<std::int64_t>(2000)) == "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
}

// torch.tensor([1., 1001.]): integer-valued floats spanning more than 1000x use sci mode.
TEST_CASE("print: integer-valued floats spanning more than 1000x use scientific notation like PyTorch") {
  CHECK(printed(ft::from_vector<float>({1, 1001}, {2})) == "tensor([1.0000e+00, 1.0010e+03])");
}

// torch.zeros(2, 0) and torch.zeros(0, 3): "[]" and the size as a tuple.
TEST_CASE("print: an empty tensor of rank > 1 prints [] and its size like PyTorch") {
  CHECK(printed(ft::zeros<float>({2, 0})) == "tensor([], size=(2, 0))");
  CHECK(printed(ft::zeros<float>({0, 3})) == "tensor([], size=(0, 3))");
}

// torch.tensor([1., float('inf')]): the width counts only the finite nonzero values.
TEST_CASE("print: non-finite values do not widen the columns, as PyTorch") {
  CHECK(printed(ft::from_vector<float>({1, INFINITY}, {2})) == "tensor([1., inf])");
  CHECK(printed(ft::from_vector<float>({0, NAN}, {2})) == "tensor([0., nan])");
}
