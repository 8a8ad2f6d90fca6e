// Ordering and scans (ft/ops/ordering.hpp): values, indices and gradients against PyTorch 1.13
// (tests/golden/ordering.txt, written by tests/golden/make_ordering.py), ties in stable order,
// NaN, integer dtypes, empty tensors, non-contiguous and fused inputs, launch counts, errors
// and bit-identical repeats.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/ops/ordering.hpp"
#include "golden/golden.hpp"

namespace {

using ft::index_t;
using I64 = std::vector<std::int64_t>;

const ft::test::Golden& golden() {
  static const ft::test::Golden g("ordering.txt");
  return g;
}

// got against the record `name`: same shape, values within tol (NaN where the record has NaN).
void check_record(const std::vector<index_t>& shape, const std::vector<double>& got, const std::string& name,
                  double tol = 1e-12) {
  CAPTURE(name);
  const auto& rec = golden().record(name);
  REQUIRE(shape == rec.shape);
  ft::test::check_close(got, rec.values, tol, tol);
}
template <class T, int R>
void check_golden(const ft::Tensor<T, R>& got, const std::string& name, double tol = 1e-12) {
  check_record(std::vector<index_t>(got.shape().begin(), got.shape().end()), ft::test::to_double(got), name, tol);
}

template <int R>
ft::Var<double, R> input(const std::string& name, ft::Device dev) {
  return {golden().tensor<double, R>(name + ".in", dev), ft::requires_grad};
}

// The values of case `name` and the gradient of Σ out·r with respect to x.
template <int R, int RO>
void check_case(const std::string& name, const ft::Var<double, R>& x, const ft::Var<double, RO>& values) {
  check_golden(values.value(), name + ".out");
  ft::Var<double, 0> loss = ft::sum(values * golden().tensor<double, RO>(name + ".r", x.device()));
  loss.backward();
  check_golden(x.grad(), name + ".grad");
}
// The same with the indices of a (values, indices) result.
template <int R, int RO>
void check_case(const std::string& name, const ft::Var<double, R>& x, const ft::SortResult<double, RO, ft::Var>& res) {
  check_golden(res.indices, name + ".idx");
  check_case(name, x, res.values);
}

template <class T, int R>
std::vector<T> host(const ft::Tensor<T, R>& t) {
  return t.to_vector();
}

}  // namespace

TEST_CASE("sort, topk and kthvalue match PyTorch: values, indices, gradients") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    {
      auto x = input<2>("sort_ties", dev);
      auto [v, i] = ft::sort(x, 1, false, true);  // structured bindings, as torch's named tuple
      check_case("sort_ties", x, ft::SortResult<double, 2, ft::Var>{v, i});
    }
    {
      auto x = input<2>("sort_desc_dim0", dev);
      check_case("sort_desc_dim0", x, ft::sort(x, -2, true));
    }
    {
      auto x = input<3>("sort_3d", dev);
      check_case("sort_3d", x, ft::sort(x, 1));
    }
    {
      auto x = input<2>("topk", dev);
      check_case("topk", x, ft::topk(x, 3, 1));
    }
    {
      auto x = input<2>("topk_smallest_dim0", dev);
      check_case("topk_smallest_dim0", x, ft::topk(x, 2, 0, false));
    }
    {
      auto x = input<2>("kthvalue", dev);
      check_case("kthvalue", x, ft::kthvalue(x, 2, 1));
    }
    {
      auto x = input<2>("kthvalue_keepdim", dev);
      check_case("kthvalue_keepdim", x, ft::kthvalue(x, 3, 0, ft::keepdim));
    }
  }
}

TEST_CASE("scans match PyTorch: values, indices, gradients (cumprod with zeros)") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    {
      auto x = input<2>("cumsum", dev);
      check_case("cumsum", x, ft::Var<double, 2>(ft::cumsum(x, 1)));
    }
    {
      auto x = input<3>("cumsum_dim0", dev);
      check_case("cumsum_dim0", x, ft::cumsum(x, -3));
    }
    for (const char* name : {"cumprod", "cumprod_zeros"}) {
      auto x = input<2>(name, dev);
      check_case(name, x, ft::cumprod(x, 1));
    }
    {
      auto x = input<2>("cummax", dev);
      check_case("cummax", x, ft::cummax(x, 1));
    }
    {
      auto x = input<2>("cummin_dim0", dev);
      check_case("cummin_dim0", x, ft::cummin(x, 0));
    }
    {
      auto x = input<2>("logcumsumexp", dev);
      check_case("logcumsumexp", x, ft::logcumsumexp(x, 1));
    }
    {
      auto x = input<2>("logcumsumexp_dim0", dev);
      check_case("logcumsumexp_dim0", x, ft::logcumsumexp(x, 0));
    }
    check_golden(ft::logcumsumexp(golden().tensor<double, 2>("logcumsumexp_inf.in", dev), 1), "logcumsumexp_inf.out");
  }
}

TEST_CASE("a long row is scanned a chunk at a time: the sequential result, on any thread count") {
  // K covers groups of kScanLanes whole chunks, a whole chunk left over and a partial last one;
  // rows along dim 1 of [2, K] and, strided, along dim 0 of [K, 3]
  const index_t K = 2 * ft::ordering::cpu::kScanLong + ft::ordering::cpu::kScanChunk + 77;
  REQUIRE(K >= ft::ordering::cpu::kScanLong);
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto x = ft::test::random_tensor<float>({2, K}, dev, 11);
    const auto hx = host(x);
    // integers in [-3, 3]: exact int64 sums, and many ties for cummax
    const ft::Tensor<std::int64_t, 2> xi = ft::cast<std::int64_t>(ft::round(x * 1.5f));
    const auto hi = host(xi);
    ft::Tensor<float, 2> cs, rev;
    ft::Tensor<std::int64_t, 2> csi;
    CHECK(ft::test::launches_of(dev, [&] { cs = ft::cumsum(x, 1); }) == 1);
    csi = ft::cumsum(xi, 1);
    const auto cm = ft::cummax(xi, 1);
    const auto lse = ft::logcumsumexp(x, 1);
    ft::Var<float, 2> v(x, ft::requires_grad);
    ft::Var<float, 0> loss = ft::sum(ft::cumsum(v, 1) * x);  // the gradient is x's reversed cumsum
    loss.backward();
    std::vector<double> want_cs, want_lse, want_rev(hx.size());
    std::vector<std::int64_t> want_csi, want_max, want_arg;
    for (index_t r = 0; r < 2; ++r) {
      double s = 0, l = -INFINITY, back = 0;
      std::int64_t si = 0, best = 0, arg = 0;
      for (index_t k = 0; k < K; ++k) {
        const auto at = static_cast<std::size_t>(r * K + k);
        s += hx[at];
        l = std::max(l, double(hx[at])) + std::log1p(std::exp(-std::abs(l - hx[at])));
        si += hi[at];
        if (k == 0 || hi[at] >= best) best = hi[at], arg = k;
        want_cs.push_back(s), want_lse.push_back(l), want_csi.push_back(si), want_max.push_back(best),
            want_arg.push_back(arg);
      }
      for (index_t k = K - 1; k >= 0; --k) want_rev[r * K + k] = back += hx[r * K + k];
    }
    ft::test::check_close(cs, want_cs, 1e-6, 1e-6);
    ft::test::check_close(lse, want_lse, 1e-5, 1e-5);
    ft::test::check_close(v.grad(), want_rev, 1e-6, 1e-6);
    CHECK(host(csi) == want_csi);
    CHECK(host(cm.values) == want_max);
    CHECK(host(cm.indices) == want_arg);
    // strided rows: dim 0 of [K, 3]
    const ft::Tensor<float, 2> xt = ft::Tensor<float, 2>(ft::cat({x, x, x}, 0)).transpose(0, 1);
    const auto ct = host(ft::Tensor<float, 2>(ft::cumsum(xt, 0)));
    std::vector<double> got_col, want_col;
    for (index_t k = 0; k < K; ++k) {
      got_col.push_back(ct[static_cast<std::size_t>(k * 6 + 3)]);  // column 3 = row 1 of x
      want_col.push_back(want_cs[static_cast<std::size_t>(K + k)]);
    }
    ft::test::check_close(got_col, want_col, 1e-6, 1e-6);
    // bit-identical on another thread count (the chunks do not depend on it)
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const ft::Tensor<float, 2> cs1 = ft::cumsum(x, 1);
    omp_set_num_threads(threads);
    CHECK(std::memcmp(host(cs1).data(), host(cs).data(), hx.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("a long row is sorted by every thread: the stable sort's result, ties and NaN included") {
  const index_t K = ft::ordering::cpu::kLongSort + 4321;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // few distinct values (ties), and a NaN every 1000th element
    ft::Tensor<float, 1> x = ft::round(ft::test::random_tensor<float>({K}, dev, 12) * 3.0f);
    auto hx = host(x);
    for (index_t k = 0; k < K; k += 1000) hx[static_cast<std::size_t>(k)] = NAN;
    x = ft::from_vector(hx, {K}, dev);
    for (bool descending : {false, true}) {
      CAPTURE(descending);
      std::vector<std::int64_t> want(static_cast<std::size_t>(K));
      for (index_t k = 0; k < K; ++k) want[k] = k;
      const auto key = [&](std::int64_t k) {  // NaN largest
        const float v = hx[static_cast<std::size_t>(k)];
        const double d = std::isnan(v) ? INFINITY : v;
        return descending ? -d : d;
      };
      std::stable_sort(want.begin(), want.end(), [&](auto a, auto b) { return key(a) < key(b); });
      for (int threads : {2, 3, 1}) {
        CAPTURE(threads);
        const int before = omp_get_max_threads();
        omp_set_num_threads(threads);
        ft::Var<float, 1> v(x, ft::requires_grad);
        const auto s = ft::sort(v, 0, descending);
        ft::Var<float, 0> loss = ft::sum(s.values * ft::arange<float>(0, static_cast<float>(K), 1, dev));
        loss.backward();
        omp_set_num_threads(before);
        CHECK(host(s.indices) == want);
        const auto got = host(s.values.value()), grad = host(v.grad());
        index_t wrong = 0;
        for (index_t j = 0; j < K; ++j) {
          const float w = hx[static_cast<std::size_t>(want[j])];
          wrong += !(got[j] == w || (std::isnan(got[j]) && std::isnan(w))) ||
                   grad[static_cast<std::size_t>(want[j])] != static_cast<float>(j);  // the inverse positions
        }
        CHECK(wrong == 0);
      }
    }
  }
}

TEST_CASE("NaN sorts as the largest value, -0 equals +0, ties keep their order") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto x = golden().tensor<double, 2>("sort_nan.in", dev);
    auto asc = ft::sort(x, 1);
    check_golden(asc.values, "sort_nan.out");
    check_golden(asc.indices, "sort_nan.idx");
    auto desc = ft::sort(golden().tensor<double, 2>("sort_nan_desc.in", dev), 1, true);
    check_golden(desc.values, "sort_nan_desc.out");
    check_golden(desc.indices, "sort_nan_desc.idx");
    auto cm = ft::cummax(golden().tensor<double, 2>("cummax_nan.in", dev), 1);
    check_golden(cm.values, "cummax_nan.out");
    check_golden(cm.indices, "cummax_nan.idx");
    // -0 keeps its sign bit through the sort (values are read back, not rebuilt from keys)
    const double neg_zero = asc.values.to_vector()[6];
    CHECK((neg_zero == 0.0 && std::signbit(neg_zero)));
    // float32: the same order as double; topk and kthvalue see NaN as the largest too
    auto xf = ft::eval(ft::cast<float>(x));
    CHECK(ft::argsort(xf, 1).to_vector() == asc.indices.to_vector());
    CHECK(ft::topk(xf, 2, 1).indices.to_vector() == I64{1, 4, 0, 4});
    CHECK(ft::kthvalue(xf, 6, 1).indices.to_vector() == I64{4, 0});
  }
}

TEST_CASE("a small topk selects what the stable sort puts first: ties, NaN, both directions, gradients") {
  // k ≤ 16 takes the CPU's selection path (ordering.hpp: select_smallest); k = 17 the partial sort
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // few distinct values (many ties), some NaN
    ft::Tensor<float, 2> x = ft::floor(ft::uniform<float>({37, 203}, 0.f, 6.f, dev, 8));
    x = ft::where(ft::uniform<float>({37, 203}, 0.f, 1.f, dev, 9) < 0.03f, std::nanf(""), x);
    for (bool largest : {true, false})
      for (int dim : {0, 1})
        for (index_t k : {1, 2, 5, 16, 17}) {
          CAPTURE(largest);
          CAPTURE(dim);
          CAPTURE(k);
          const auto top = ft::topk(x, k, dim, largest);
          const auto sorted = ft::sort(x, dim, largest);
          CHECK(top.indices.to_vector() == ft::eval(sorted.indices.slice(dim, 0, k)).to_vector());
          const auto tv = top.values.to_vector(), sv = ft::eval(sorted.values.slice(dim, 0, k)).to_vector();
          REQUIRE(tv.size() == sv.size());
          for (std::size_t j = 0; j < tv.size(); ++j)
            REQUIRE((tv[j] == sv[j] || (std::isnan(tv[j]) && std::isnan(sv[j]))));
        }
    // the gradient reaches exactly the selected elements
    ft::Var<float, 2> v(ft::randn<float>({9, 40}, dev, 10), ft::requires_grad);
    const auto sel = ft::topk(v, 4, 1);
    ft::Var<float, 0> loss = ft::sum(sel.values * 3.0f);
    loss.backward();
    const auto g = v.grad().to_vector();
    const auto idx = sel.indices.to_vector();
    for (index_t r = 0; r < 9; ++r)
      for (index_t c = 0; c < 40; ++c) {
        bool chosen = false;
        for (index_t j = 0; j < 4; ++j) chosen = chosen || idx[r * 4 + j] == c;
        REQUIRE(g[r * 40 + c] == (chosen ? 3.0f : 0.0f));
      }
  }
}

TEST_CASE("integer and bool dtypes: sort, topk, scans and unique as torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto xi = golden().tensor<std::int64_t, 2>("argsort_int.in", dev);
    check_golden(ft::argsort(xi, 1), "argsort_int.idx");
    auto tk = ft::topk(golden().tensor<std::int64_t, 2>("topk_int.in", dev), 4);
    check_golden(tk.values, "topk_int.out");
    check_golden(tk.indices, "topk_int.idx");
    ft::Tensor<std::int64_t, 2> cs = ft::cumsum(golden().tensor<std::int64_t, 2>("cumsum_int.in", dev), 1);
    check_golden(cs, "cumsum_int.out");
    check_golden(ft::cumprod(golden().tensor<std::int64_t, 2>("cumprod_int.in", dev), 0), "cumprod_int.out");
    auto cmin = ft::cummin(golden().tensor<std::int64_t, 2>("cummin_int.in", dev), 1);
    check_golden(cmin.values, "cummin_int.out");
    check_golden(cmin.indices, "cummin_int.idx");
    // int32 keeps its type; bool and uint8 sums are int64 (torch's promotion)
    auto x32 = ft::from_vector<std::int32_t>({5, -7, 5, 0, -7, 2}, {6}, dev);
    auto s32 = ft::sort(x32, 0, true);
    CHECK(s32.values.to_vector() == std::vector<std::int32_t>{5, 5, 2, 0, -7, -7});
    CHECK(s32.indices.to_vector() == I64{0, 2, 5, 3, 1, 4});
    auto xb = ft::from_vector<bool>({true, false, true, true, false}, {5}, dev);
    ft::Tensor<std::int64_t, 1> cb = ft::cumsum(xb, 0);
    CHECK(cb.to_vector() == I64{1, 1, 2, 3, 3});
    CHECK(ft::argsort(xb).to_vector() == I64{1, 4, 0, 2, 3});
    CHECK(ft::cummax(xb, 0).indices.to_vector() == I64{0, 0, 2, 3, 3});
    auto xu = ft::from_vector<std::uint8_t>({200, 3, 255, 3, 0}, {5}, dev);
    CHECK(ft::sort(xu).values.to_vector() == std::vector<std::uint8_t>{0, 3, 3, 200, 255});
    ft::Tensor<std::int64_t, 1> cu = ft::cumsum(xu, 0);
    CHECK(cu.to_vector() == I64{200, 203, 458, 461, 461});
    auto ub = ft::unique(xb, true, true, true);
    CHECK(ub.values.to_vector() == std::vector<bool>{false, true});
    CHECK(ub.counts.to_vector() == I64{2, 3});
  }
}

TEST_CASE("unique matches PyTorch and synchronises with the host once") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (const char* name : {"unique_int", "unique_float"}) {
      CAPTURE(name);
      const std::string n = name;
      if (n == "unique_int") {
        const auto x = golden().tensor<std::int64_t, 2>(n + ".in", dev);
        ft::stats::reset();
        auto u = ft::unique(x, true, true, true);
        CHECK(ft::stats::host_syncs(dev) == 1);
        check_golden(u.values, n + ".out");
        check_golden(u.inverse, n + ".inverse");
        check_golden(u.counts, n + ".counts");
      } else {
        auto u = ft::unique(golden().tensor<double, 2>(n + ".in", dev) * 1.0, true, true, true);
        check_golden(u.values, n + ".out");
        check_golden(u.inverse, n + ".inverse");
        check_golden(u.counts, n + ".counts");
        CHECK(std::signbit(u.values.to_vector()[1]));  // the first of -0 and +0, as torch
      }
    }
    auto nan = std::numeric_limits<float>::quiet_NaN();
    auto u = ft::unique(ft::from_vector<float>({nan, 1, nan, 1}, {4}, dev));
    REQUIRE(u.values.numel() == 3);  // NaNs are each their own value (NaN != NaN), as torch
    CHECK(!u.inverse.defined());
    CHECK(!u.counts.defined());
  }
}

TEST_CASE("ordering ops read non-contiguous views and fused expressions in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({7, 5}, dev, 3);
    auto at = a.transpose(0, 1);  // [5, 7], not contiguous
    auto c = at.contiguous();
    ft::SortResult<float, 2> s;
    CHECK(ft::test::launches_of(dev, [&] { s = ft::sort(at, 1, true); }) == 1);
    auto sc = ft::sort(c, 1, true);
    CHECK(host(s.values) == host(sc.values));
    CHECK(host(s.indices) == host(sc.indices));
    CHECK(host(ft::sort(at, 0).indices) == host(ft::sort(c, 0).indices));
    ft::Tensor<float, 2> cs;
    CHECK(ft::test::launches_of(dev, [&] { cs = ft::cumsum(at * 2.0f + 1.0f, 0); }) == 1);
    CHECK(host(cs) == host(ft::cumsum(ft::eval(c * 2.0f + 1.0f), 0)));
    CHECK(ft::test::launches_of(dev, [&] { (void)ft::topk(at * 1.0f, 3, 1); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { (void)ft::kthvalue(at, 2, 0); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { (void)ft::cummax(at, 1); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { (void)ft::logcumsumexp(at, 1); }) == 1);
    CHECK(host(ft::cummin(at, 1).indices) == host(ft::cummin(c, 1).indices));
    // the gradient of a sort is one fused gather; a cummax's one fused run sum
    ft::Var<float, 2> x(at, ft::requires_grad);
    auto sv = ft::sort(x, 1).values;
    ft::Var<float, 0> loss = ft::sum(sv * sv);
    CHECK(ft::test::launches_of(dev, [&] { loss.backward(); }) <= 3);
    CHECK(host(x.grad()) == host(ft::eval(at * 2.0f)));
  }
}

TEST_CASE("ordering ops on empty and rank-0 tensors") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto rows0 = ft::zeros<float>({0, 4}, dev), cols0 = ft::zeros<float>({3, 0}, dev);
    CHECK(ft::sort(rows0, 1).values.shape() == ft::Shape<2>{0, 4});
    CHECK(ft::sort(cols0, 1).indices.shape() == ft::Shape<2>{3, 0});
    CHECK(ft::topk(rows0, 2, 1).values.shape() == ft::Shape<2>{0, 2});
    CHECK(ft::topk(cols0, 0, 1).values.shape() == ft::Shape<2>{3, 0});
    CHECK(ft::topk(ft::ones<float>({2, 3}, dev), 0, 1).indices.shape() == ft::Shape<2>{2, 0});
    CHECK(ft::cumsum(cols0, 1).shape() == ft::Shape<2>{3, 0});
    CHECK(ft::cummax(rows0, 0).indices.shape() == ft::Shape<2>{0, 4});
    auto u = ft::unique(rows0, true, true, true);
    CHECK(u.values.numel() == 0);
    CHECK(u.inverse.shape() == ft::Shape<2>{0, 4});
    CHECK(u.counts.numel() == 0);
    ft::Tensor<float, 0> scalar(ft::Shape<0>{}, dev);
    scalar = 2.5f;
    auto s0 = ft::sort(scalar, -1, true);
    CHECK(s0.values.item() == 2.5f);
    CHECK(s0.indices.item() == 0);
    CHECK(ft::cumprod(scalar, 0).item() == 2.5f);
    CHECK(ft::kthvalue(scalar, 1, 0, ft::keepdim).indices.item() == 0);
    ft::Var<float, 2> x(ft::ones<float>({2, 3}, dev), ft::requires_grad);
    ft::Var<float, 0> loss = ft::sum(ft::topk(x, 0, 1).values) + ft::sum(x * 0.0f);
    loss.backward();
    CHECK(host(x.grad()) == std::vector<float>(6, 0.0f));
  }
}

TEST_CASE("bad input is an ft::Error naming the op") {
  auto x = ft::zeros<float>({3, 4});
  CHECK_THROWS_WITH_AS(ft::topk(x, 5, 1), doctest::Contains("topk: k = 5 is out of range"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::topk(x, -1), doctest::Contains("topk"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::kthvalue(x, 0, 1), doctest::Contains("kthvalue: k = 0 is out of range"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::kthvalue(x, 4, 0), doctest::Contains("[3, 4]"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::sort(x, 2), doctest::Contains("sort: dimension 2 is out of range"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::cumsum(x, -3), doctest::Contains("cumsum"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::cummin(x, 5), doctest::Contains("cummin"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::logcumsumexp(x, 2), doctest::Contains("logcumsumexp"), ft::Error);
}

TEST_CASE("ordering ops give the same bits run after run and on any thread count") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::test::random_tensor<float>({48, 1500}, dev, 7);  // above the parallel grain
    auto run = [&] {
      std::vector<float> all;
      auto append = [&](const auto& t) {
        for (auto v : t.to_vector()) all.push_back(static_cast<float>(v));
      };
      append(ft::sort(x, 1).indices);
      append(ft::topk(x, 5, 0).values);
      append(ft::cumsum(x, 1));
      append(ft::cumprod(x * 0.5f + 1.0f, 0));
      append(ft::logcumsumexp(x, 1));
      ft::Var<float, 2> v(x, ft::requires_grad);
      ft::Var<float, 0> loss = ft::sum(ft::logcumsumexp(v, 1) * x) + ft::sum(ft::cumprod(v, 0));
      loss.backward();
      append(v.grad());
      return all;
    };
    const auto first = run();
    const int threads = omp_get_max_threads();
    omp_set_num_threads(3);
    const auto second = run();
    omp_set_num_threads(threads);
    REQUIRE(first.size() == second.size());
    CHECK(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)) == 0);
  }
}
