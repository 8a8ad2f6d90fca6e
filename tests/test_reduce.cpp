// Reductions: values against double loops, along every dim and over everything, fused with
// their producers (one launch), deterministic, and inside larger expressions (two launches).
#include <omp.h>

#include "common.hpp"

using ft::index_t;
using ft::test::check_close;
using ft::test::launches_of;
using ft::test::random_tensor;
using ft::test::to_double;

namespace {

// Reference: reduce v (shape [A, B, C] row-major) along dim (or all when dim < 0) with f.
template <class F>
std::vector<double> ref_reduce(const std::vector<double>& v, std::array<index_t, 3> s, int dim, F f) {
  std::vector<double> out;
  if (dim < 0) {
    out.push_back(f(v));
    return out;
  }
  index_t outer = 1, K = s[dim], inner = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  for (int d = dim + 1; d < 3; ++d) inner *= s[d];
  for (index_t o = 0; o < outer; ++o)
    for (index_t i = 0; i < inner; ++i) {
      std::vector<double> row;
      for (index_t k = 0; k < K; ++k) row.push_back(v[(o * K + k) * inner + i]);
      out.push_back(f(row));
    }
  return out;
}

double ref_sum(const std::vector<double>& r) {
  double s = 0;
  for (double x : r) s += x;
  return s;
}
double ref_mean(const std::vector<double>& r) { return ref_sum(r) / r.size(); }
double ref_var(const std::vector<double>& r, double correction) {
  double m = ref_mean(r), s = 0;
  for (double x : r) s += (x - m) * (x - m);
  return s / (r.size() - correction);
}

}  // namespace

TEST_CASE("every reduction along every dim, with and without keepdim, matches a double loop") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const std::array<index_t, 3> s{7, 13, 5};
    auto a = random_tensor<float>({7, 13, 5}, dev, 1, 0.5, 2.0);  // positive: prod stays moderate
    auto v = to_double(a);
    const ft::Tensor<float, 3> a_view = ft::eval(a.transpose(0, 2)).transpose(0, 2);
    REQUIRE(!a_view.is_contiguous());
    using Fn = std::function<double(const std::vector<double>&)>;
    struct Row {
      const char* name;
      Fn ref;
    };
    std::vector<Row> table{
        {"sum", ref_sum},
        {"mean", ref_mean},
        {"prod",
         [](const auto& r) {
           double p = 1;
           for (double x : r) p *= x;
           return p;
         }},
        {"max", [](const auto& r) { return *std::max_element(r.begin(), r.end()); }},
        {"min", [](const auto& r) { return *std::min_element(r.begin(), r.end()); }},
        {"var", [](const auto& r) { return ref_var(r, 1); }},
        {"std", [](const auto& r) { return std::sqrt(ref_var(r, 1)); }},
        {"logsumexp",
         [](const auto& r) {
           double s = 0;
           for (double x : r) s += std::exp(x);
           return std::log(s);
         }},
        {"norm1",
         [](const auto& r) {
           double s = 0;
           for (double x : r) s += std::fabs(x);
           return s;
         }},
        {"norm2",
         [](const auto& r) {
           double s = 0;
           for (double x : r) s += x * x;
           return std::sqrt(s);
         }},
        {"norminf",
         [](const auto& r) {
           double m = 0;
           for (double x : r) m = std::max(m, std::fabs(x));
           return m;
         }},
    };
    auto run = [&](const ft::Tensor<float, 3>& x, const std::string& n, int dim, bool keep) -> ft::Tensor<float, 3> {
      // every result reshaped to rank 3 [*, *, *] for comparison; one launch each
      auto go = [&](auto&& node) {
        ft::Tensor<float, std::remove_cvref_t<decltype(node)>::rank> t;
        CHECK(launches_of(dev, [&] { t = node; }) == 1);
        return ft::eval(t.flatten()).reshape({1, 1, -1});
      };
      if (n == "sum") return dim < 0 ? go(ft::sum(x)) : keep ? go(ft::sum(x, dim, ft::keepdim)) : go(ft::sum(x, dim));
      if (n == "mean")
        return dim < 0 ? go(ft::mean(x)) : keep ? go(ft::mean(x, dim, ft::keepdim)) : go(ft::mean(x, dim));
      if (n == "prod")
        return dim < 0 ? go(ft::prod(x)) : keep ? go(ft::prod(x, dim, ft::keepdim)) : go(ft::prod(x, dim));
      if (n == "max") return dim < 0 ? go(ft::max(x)) : keep ? go(ft::max(x, dim, ft::keepdim)) : go(ft::max(x, dim));
      if (n == "min") return dim < 0 ? go(ft::min(x)) : keep ? go(ft::min(x, dim, ft::keepdim)) : go(ft::min(x, dim));
      if (n == "var") return dim < 0 ? go(ft::var(x)) : keep ? go(ft::var(x, dim, ft::keepdim)) : go(ft::var(x, dim));
      if (n == "std") return dim < 0 ? go(ft::std(x)) : keep ? go(ft::std(x, dim, ft::keepdim)) : go(ft::std(x, dim));
      if (n == "logsumexp")
        return dim < 0 ? go(ft::logsumexp(x))
               : keep  ? go(ft::logsumexp(x, dim, ft::keepdim))
                       : go(ft::logsumexp(x, dim));
      double p = n == "norm1" ? 1 : n == "norm2" ? 2 : INFINITY;
      return dim < 0 ? go(ft::norm(x, p)) : keep ? go(ft::norm(x, p, dim, ft::keepdim)) : go(ft::norm(x, p, dim));
    };
    for (const auto& row : table) {
      for (int dim = -1; dim < 3; ++dim) {
        for (bool keep : {false, true}) {
          if (dim < 0 && keep) continue;
          CAPTURE(row.name);
          CAPTURE(dim);
          CAPTURE(keep);
          check_close(run(a, row.name, dim, keep), ref_reduce(v, s, dim, row.ref), 2e-5, 1e-5);
          // the same values through a transposed view: the CPU reads them by stepped coordinates
          check_close(run(a_view, row.name, dim, keep), ref_reduce(v, s, dim, row.ref), 2e-5, 1e-5);
        }
      }
    }
    // shapes: keepdim keeps a 1, otherwise the dim is dropped
    CHECK(ft::sum(a, 1).shape() == ft::Shape<2>{7, 5});
    CHECK(ft::sum(a, -1, ft::keepdim).shape() == ft::Shape<3>{7, 13, 1});
  }
}

TEST_CASE("a reduction reads its fused producer once: one launch, no temporary") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({64, 33}, dev, 2);
    auto b = random_tensor<float>({64, 33}, dev, 3);
    ft::Tensor<float, 1> s;
    ft::stats::reset();
    s = ft::sum(a * b, 1);
    CHECK(ft::stats::launches(dev) == 1);
    CHECK(ft::stats::allocations(dev) == 1);  // only s itself: no temporary for a * b
    auto av = to_double(a), bv = to_double(b);
    std::vector<double> want(64, 0.0);
    for (int i = 0; i < 64; ++i)
      for (int j = 0; j < 33; ++j) want[i] += av[i * 33 + j] * bv[i * 33 + j];
    check_close(s, want, 1e-5, 1e-5);
    ft::Tensor<float, 0> mse;
    CHECK(launches_of(dev, [&] { mse = ft::mean(ft::square(a - b)); }) == 1);
    ft::Tensor<float, 0> linf;
    CHECK(launches_of(dev, [&] { linf = ft::max(ft::abs(a - b)); }) == 1);
    double m = 0, l = 0;
    for (int i = 0; i < 64 * 33; ++i) {
      m += (av[i] - bv[i]) * (av[i] - bv[i]);
      l = std::max(l, std::fabs(av[i] - bv[i]));
    }
    CHECK(mse.item() == doctest::Approx(m / (64 * 33)).epsilon(1e-5));
    CHECK(linf.item() == doctest::Approx(l).epsilon(1e-6));
  }
}

TEST_CASE("a reduction inside a larger expression: the reduction, then the outer kernel") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({9, 31}, dev, 4);
    ft::Tensor<float, 2> y;
    // exactly two launches: max into a temporary, then x − that temporary
    CHECK(launches_of(dev, [&] { y = x - ft::max(x, 1, ft::keepdim); }) == 2);
    auto xv = to_double(x);
    std::vector<double> want(xv.size());
    for (int i = 0; i < 9; ++i) {
      double m = -1e300;
      for (int j = 0; j < 31; ++j) m = std::max(m, xv[i * 31 + j]);
      for (int j = 0; j < 31; ++j) want[i * 31 + j] = xv[i * 31 + j] - m;
    }
    check_close(y, want, 1e-6, 1e-6);
    // in place: x = x - max(x) reads x for the reduction before the outer kernel writes it
    x = x - ft::max(x, 1, ft::keepdim);
    check_close(x, want, 1e-6, 1e-6);
  }
}

TEST_CASE("reductions are bit-identical run after run, and a 10^7-element float sum is accurate") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t n = 10000000;
    auto a = ft::randn<float>({n}, dev, 5);
    auto first = ft::eval(ft::sum(a)).item();
    for (int r = 0; r < 3; ++r) CHECK(ft::eval(ft::sum(a)).item() == first);
    auto av = a.to_vector();
    long double exact = 0;
    for (float v : av) exact += v;
    double abs_sum = 0;
    for (float v : av) abs_sum += std::fabs(v);
    double err = std::fabs(static_cast<double>(first) - static_cast<double>(exact));
    MESSAGE("sum of 1e7 randn floats on " << dev << ": error " << err << " = " << err / abs_sum
                                          << " of sum|x| (float eps 6e-8)");
    CHECK(err / abs_sum < 1e-7);
    auto m = ft::randn<float>({1000, 1000}, dev, 6);
    auto c0 = ft::eval(ft::var(m, 0)).to_vector();
    CHECK(ft::eval(ft::var(m, 0)).to_vector() == c0);
  }
}

TEST_CASE("argmax and argmin return the first index of the extreme; NaN wins, as torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = ft::from_vector<float>({1, 5, 5, -2, 5, -2}, {2, 3}, dev);
    CHECK(ft::eval(ft::argmax(t)).item() == 1);
    CHECK(ft::eval(ft::argmin(t)).item() == 3);
    CHECK(ft::eval(ft::argmax(t, 1)).to_vector() == std::vector<std::int64_t>{1, 1});
    CHECK(ft::eval(ft::argmin(t, 0)).to_vector() == std::vector<std::int64_t>{1, 0, 1});  // a tie keeps row 0
    auto n = ft::from_vector<float>({1, NAN, 7}, {3}, dev);
    CHECK(ft::eval(ft::argmax(n)).item() == 1);
    CHECK(std::isnan(ft::eval(ft::max(n)).item()));
    CHECK(std::isnan(ft::eval(ft::min(n)).item()));
    auto r = random_tensor<float>({37, 211}, dev, 7);
    auto rv = to_double(r);
    auto am = ft::eval(ft::argmax(r.transpose(0, 1), 1)).to_vector();  // non-contiguous input
    for (int j = 0; j < 211; ++j) {
      int best = 0;
      for (int i = 1; i < 37; ++i)
        if (rv[i * 211 + j] > rv[best * 211 + j]) best = i;
      REQUIRE(am[j] == best);
    }
  }
}

TEST_CASE("integer, bool and edge-case reductions") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto i = ft::arange<std::int32_t>(1, 11, 1, dev);
    auto si = ft::eval(ft::sum(i));
    static_assert(std::is_same_v<decltype(si)::value_type, std::int64_t>);  // as torch
    CHECK(si.item() == 55);
    CHECK(ft::eval(ft::prod(i)).item() == 3628800);
    CHECK(ft::eval(ft::max(i)).item() == 10);
    CHECK(ft::eval(ft::mean(i)).item() == doctest::Approx(5.5));
    auto b = ft::from_vector<bool>({true, false, true, true}, {2, 2}, dev);
    CHECK(ft::eval(ft::all(b)).item() == false);
    CHECK(ft::eval(ft::any(b)).item() == true);
    CHECK(ft::eval(ft::all(b, 1)).to_vector() == std::vector<bool>{false, true});
    CHECK(ft::eval(ft::sum(b)).item() == 3);
    // an empty reduced dim: sum is 0, prod 1, max is an error
    auto e = ft::empty<float>({3, 0}, dev);
    CHECK(ft::eval(ft::sum(e, 1)).to_vector() == std::vector<float>{0, 0, 0});
    CHECK(ft::eval(ft::prod(e, 1)).to_vector() == std::vector<float>{1, 1, 1});
    CHECK_THROWS_AS(ft::max(e, 1), ft::Error);
    // a 0-size output launches nothing
    auto z = ft::empty<float>({0, 4}, dev);
    CHECK(launches_of(dev, [&] {
            ft::Tensor<float, 1> s = ft::sum(z, 1);
            CHECK(s.numel() == 0);
          }) == 0);
    // var with correction 0 is the population variance; a single element with correction 1 is NaN
    auto v = ft::from_vector<double>({1, 2, 3, 4}, {4}, dev);
    CHECK(ft::eval(ft::var(v, 0.0)).item() == doctest::Approx(1.25));
    CHECK(ft::eval(ft::var(v)).item() == doctest::Approx(5.0 / 3));
    CHECK(std::isnan(ft::eval(ft::var(ft::from_vector<double>({2}, {1}, dev))).item()));
    // logsumexp of -inf is -inf, and large values do not overflow
    auto l = ft::from_vector<float>({-INFINITY, -INFINITY, 1000, 1000}, {2, 2}, dev);
    auto lv = ft::eval(ft::logsumexp(l, 1)).to_vector();
    CHECK(lv[0] == -INFINITY);
    CHECK(lv[1] == doctest::Approx(1000 + std::log(2.0)));
    CHECK_THROWS_AS(ft::sum(i, 1), ft::Error);      // dim out of range
    CHECK_THROWS_AS(ft::norm(i, -1.0), ft::Error);  // p must be ≥ 0 or inf
    CHECK_THROWS_AS(ft::norm(i, NAN), ft::Error);
  }
}

TEST_CASE("long rows and long columns") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto r = ft::randn<float>({3, 1000003}, dev, 8);
    auto rv = to_double(r);
    std::vector<double> want(3, 0.0), want_c(1000003, 0.0);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 1000003; ++j) want[i] += rv[i * 1000003 + j], want_c[j] += rv[i * 1000003 + j];
    check_close(ft::eval(ft::sum(r, 1)), want, 1e-5, 1e-3);
    check_close(ft::eval(ft::sum(r, 0)), want_c, 1e-5, 1e-5);
  }
}

FT_GPU_TEST_CASE("CPU and GPU reductions agree") {
  auto a = ft::randn<float>({513, 257}, ft::kCPU, 9);
  auto g = a.to(ft::kCUDA);
  check_close(to_double(ft::eval(ft::sum(g, 1))), to_double(ft::eval(ft::sum(a, 1))), 1e-5, 1e-5);
  check_close(to_double(ft::eval(ft::var(g, 0))), to_double(ft::eval(ft::var(a, 0))), 1e-5, 1e-6);
  CHECK(ft::eval(ft::argmax(g, 1)).to_vector() == ft::eval(ft::argmax(a, 1)).to_vector());
  CHECK(ft::eval(ft::sum(g)).item() == doctest::Approx(ft::eval(ft::sum(a)).item()).epsilon(1e-5));
}

TEST_CASE("reductions of few long rows and of long columns split over blocks: one launch, the same bits every run") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // [3, 2^20] along dim 1: on a GPU each row is cut into pieces whose partials combine in order
    const index_t n = index_t(1) << 20;
    auto r = ft::randn<float>({3, n}, dev, 11);
    auto rv = to_double(r);
    std::vector<double> row_sum(3, 0.0), row_max(3, -INFINITY);
    std::vector<std::int64_t> row_argmax(3, 0);
    for (index_t i = 0; i < 3; ++i)
      for (index_t k = 0; k < n; ++k) {
        const double x = rv[i * n + k];
        row_sum[i] += x;
        if (x > row_max[i]) row_max[i] = x, row_argmax[i] = k;
      }
    ft::Tensor<float, 1> s, m;
    ft::Tensor<std::int64_t, 1> am;
    CHECK(launches_of(dev, [&] { s = ft::sum(r, 1); }) == 1);
    CHECK(launches_of(dev, [&] { m = ft::max(r, 1); }) == 1);
    CHECK(launches_of(dev, [&] { am = ft::argmax(r, 1); }) == 1);
    check_close(s, row_sum, 1e-5, 1e-3);
    check_close(m, row_max, 0, 0);
    CHECK(am.to_vector() == row_argmax);  // the index of a piece's element is its index in the row
    CHECK(ft::eval(ft::sum(r, 1)).to_vector() == s.to_vector());

    // [4096, 64] along dim 0 (a bias gradient), [20000, 3] along dim 0 and [5, 3000, 37] along
    // dim 1: on a GPU the rows are cut into chunks whose partials combine in order
    auto c = random_tensor<float>({4096, 64}, dev, 12);
    auto cv = to_double(c);
    std::vector<double> col_sum(64, 0.0), col_max(64, -INFINITY), col_mean(64, 0.0), col_var(64, 0.0);
    std::vector<std::int64_t> col_argmin(64, 0);
    for (index_t j = 0; j < 64; ++j) {
      double lo = INFINITY;
      for (index_t k = 0; k < 4096; ++k) {
        const double x = cv[k * 64 + j];
        col_sum[j] += x;
        col_max[j] = std::max(col_max[j], x);
        if (x < lo) lo = x, col_argmin[j] = k;
      }
      col_mean[j] = col_sum[j] / 4096;
      for (index_t k = 0; k < 4096; ++k) col_var[j] += (cv[k * 64 + j] - col_mean[j]) * (cv[k * 64 + j] - col_mean[j]);
      col_var[j] /= 4095;
    }
    ft::Tensor<float, 1> cs, cm, cvar;
    ft::Tensor<std::int64_t, 1> cam;
    CHECK(launches_of(dev, [&] { cs = ft::sum(c, 0); }) == 1);
    CHECK(launches_of(dev, [&] { cm = ft::max(c, 0); }) == 1);
    CHECK(launches_of(dev, [&] { cvar = ft::var(c, 0); }) == 1);
    CHECK(launches_of(dev, [&] { cam = ft::argmin(c, 0); }) == 1);
    check_close(cs, col_sum, 1e-5, 1e-4);
    check_close(cm, col_max, 0, 0);
    check_close(cvar, col_var, 1e-5, 1e-6);
    CHECK(cam.to_vector() == col_argmin);
    CHECK(ft::eval(ft::sum(c, 0)).to_vector() == cs.to_vector());
    CHECK(ft::eval(ft::var(c, 0)).to_vector() == cvar.to_vector());

    auto narrow = random_tensor<float>({20000, 3}, dev, 13);
    auto nv = to_double(narrow);
    std::vector<double> narrow_sum(3, 0.0);
    for (index_t k = 0; k < 20000; ++k)
      for (index_t j = 0; j < 3; ++j) narrow_sum[j] += nv[k * 3 + j];
    ft::Tensor<float, 1> ns;
    CHECK(launches_of(dev, [&] { ns = ft::sum(narrow, 0); }) == 1);
    check_close(ns, narrow_sum, 1e-5, 1e-3);
    CHECK(ft::eval(ft::sum(narrow, 0)).to_vector() == ns.to_vector());

    auto mid = random_tensor<float>({5, 3000, 37}, dev, 14);
    auto mv = to_double(mid);
    ft::Tensor<float, 2> ms;
    CHECK(launches_of(dev, [&] { ms = ft::sum(mid, 1); }) == 1);
    check_close(ms, ref_reduce(mv, {5, 3000, 37}, 1, ref_sum), 1e-5, 1e-3);
    CHECK(ft::eval(ft::sum(mid, 1)).to_vector() == ms.to_vector());
  }
}

TEST_CASE("a bias gradient (a column reduction [4096, 64] -> [64]) is one launch and accumulates") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({4096, 64}, dev, 15);
    auto g = random_tensor<float>({4096, 64}, dev, 16);
    auto gv = to_double(g);
    ft::Var<float, 1> b(ft::zeros<float>({64}, dev), ft::requires_grad);
    std::vector<double> col_sum(64, 0.0);
    for (index_t k = 0; k < 4096; ++k)
      for (index_t j = 0; j < 64; ++j) col_sum[j] += gv[k * 64 + j];
    for (int round = 1; round <= 2; ++round) {  // the second backward adds to the gradient
      CAPTURE(round);
      ft::Var<float, 2> y = x + b;
      CHECK(launches_of(dev, [&] { y.backward(g); }) == 1);
      std::vector<double> want(64);
      for (index_t j = 0; j < 64; ++j) want[j] = round * col_sum[j];
      check_close(b.grad(), want, 1e-5, 1e-4);
    }
  }
}

TEST_CASE("sum_to over leading, middle and size-1 dims matches a double loop, the same bits on any thread count") {
  // the CPU's column tiles (kept trailing dims, a tile wrapping the fastest one: [.., 3, 50]),
  // its row path (a conv bias: summed dims after the kept one) and size-1 kept dims
  struct Case {
    std::vector<index_t> in;
    std::vector<index_t> out;  // the same rank: 1 where summed
  };
  const std::vector<Case> cases = {{{37, 3, 50}, {1, 3, 50}},
                                   {{6, 7, 1, 130}, {1, 7, 1, 130}},
                                   {{16, 5, 9, 11}, {1, 5, 1, 1}},
                                   {{4, 1, 200}, {4, 1, 1}},
                                   {{300, 2}, {1, 2}}};
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (const Case& c : cases) {
      ft::Shape<4> si{1, 1, 1, 1}, so{1, 1, 1, 1};
      const int lead = 4 - static_cast<int>(c.in.size());
      for (std::size_t d = 0; d < c.in.size(); ++d) si[lead + d] = c.in[d], so[lead + d] = c.out[d];
      CAPTURE(ft::to_string(si));
      auto x = random_tensor<float>({si[0], si[1], si[2], si[3]}, dev, 21);
      auto m = random_tensor<float>({si[0], si[1], si[2], si[3]}, dev, 22);
      const auto e = ft::where(m > 0.f, x * 2.f, x);  // a `where`: a blend on the CPU, not a branch
      ft::Tensor<float, 4> out(so, dev);
      auto sum_with = [&](int threads) {
        const int before = omp_get_max_threads();
        omp_set_num_threads(threads);
        out = ft::sum_to(e, so);
        omp_set_num_threads(before);
        return out.to_vector();
      };
      const auto one = sum_with(1), two = sum_with(2);
      CHECK(one == two);
      const auto xv = to_double(x);
      const auto mv = to_double(m);
      std::vector<double> want(static_cast<std::size_t>(so.numel()), 0.0);
      for (index_t i = 0; i < si.numel(); ++i) {
        index_t rest = i, o = 0, step = 1;
        for (int d = 3; d >= 0; --d) {
          const index_t coord = rest % si[d];
          rest /= si[d];
          o += (so[d] == 1 ? 0 : coord) * step;
          step *= so[d];
        }
        want[o] += mv[i] > 0 ? 2 * xv[i] : xv[i];
      }
      check_close(out, want, 1e-5, 1e-4);
    }
  }
}
