// softmax, log_softmax, layer_norm, cross_entropy: one launch each, stable, against double loops.
#include "common.hpp"

using ft::index_t;
using ft::test::check_close;
using ft::test::launches_of;
using ft::test::random_tensor;
using ft::test::to_double;

namespace {
// softmax (or log_softmax) of v viewed as [outer, K, inner] along K, in double
std::vector<double> ref_softmax(const std::vector<double>& v, index_t outer, index_t K, index_t inner, bool log) {
  std::vector<double> out(v.size());
  for (index_t o = 0; o < outer; ++o)
    for (index_t i = 0; i < inner; ++i) {
      double m = -INFINITY, s = 0;
      for (index_t k = 0; k < K; ++k) m = std::max(m, v[(o * K + k) * inner + i]);
      for (index_t k = 0; k < K; ++k) s += std::exp(v[(o * K + k) * inner + i] - m);
      for (index_t k = 0; k < K; ++k) {
        double x = v[(o * K + k) * inner + i] - m;
        out[(o * K + k) * inner + i] = log ? x - std::log(s) : std::exp(x) / s;
      }
    }
  return out;
}
}  // namespace

TEST_CASE("softmax and log_softmax along every dim match a double loop in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({4, 7, 5}, dev, 1, -5, 5);
    auto v = to_double(a);
    const index_t s[3] = {4, 7, 5};
    for (int dim = 0; dim < 3; ++dim) {
      CAPTURE(dim);
      index_t outer = 1, inner = 1;
      for (int d = 0; d < dim; ++d) outer *= s[d];
      for (int d = dim + 1; d < 3; ++d) inner *= s[d];
      ft::Tensor<float, 3> p, lp;
      CHECK(launches_of(dev, [&] { p = ft::softmax(a, dim); }) == 1);
      CHECK(launches_of(dev, [&] { lp = ft::log_softmax(a, dim); }) == 1);
      check_close(p, ref_softmax(v, outer, s[dim], inner, false), 1e-5, 1e-7);
      check_close(lp, ref_softmax(v, outer, s[dim], inner, true), 1e-5, 1e-5);
    }
    // a fused input expression and a transposed view
    ft::Tensor<float, 2> q;
    auto m = random_tensor<float>({6, 9}, dev, 2);
    CHECK(launches_of(dev, [&] { q = ft::softmax(m.transpose(0, 1) * 2.0f, -1); }) == 1);
    auto mv = to_double(m);
    std::vector<double> t(54);
    for (int i = 0; i < 9; ++i)
      for (int j = 0; j < 6; ++j) t[i * 6 + j] = 2 * mv[j * 9 + i];
    check_close(q, ref_softmax(t, 9, 6, 1, false), 1e-5, 1e-7);
  }
}

TEST_CASE("softmax is stable for huge logits, rows of length 1 and of length 10^6") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto big = ft::from_vector<float>({1e4f, 1e4f - 1, -1e4f, -INFINITY}, {1, 4}, dev);
    auto p = ft::softmax(big, 1).to_vector();
    double e1 = std::exp(-1.0);
    CHECK(p[0] == doctest::Approx(1 / (1 + e1)));
    CHECK(p[1] == doctest::Approx(e1 / (1 + e1)));
    CHECK(p[2] == 0.0f);
    CHECK(p[3] == 0.0f);
    auto lp = ft::log_softmax(big, 1).to_vector();
    CHECK(lp[0] == doctest::Approx(-std::log1p(e1)));
    CHECK(lp[3] == -INFINITY);
    auto one = ft::softmax(random_tensor<float>({5, 1}, dev, 3), 1).to_vector();
    for (float x : one) CHECK(x == 1.0f);
    auto row = ft::randn<float>({1, 1000000}, dev, 4);
    auto rv = to_double(row);
    check_close(ft::softmax(row, 1), ref_softmax(rv, 1, 1000000, 1, false), 1e-4, 1e-10);
    check_close(ft::log_softmax(row, 1), ref_softmax(rv, 1, 1000000, 1, true), 1e-5, 1e-5);
    auto allinf = ft::full<float>({2, 3}, -INFINITY, dev);
    for (float x : ft::softmax(allinf, 1).to_vector()) CHECK(std::isnan(x));  // 0/0, as torch
  }
}

TEST_CASE("layer_norm matches a double loop, with and without affine parameters") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<double>({3, 4, 5}, dev, 5, -3, 3);
    auto w = random_tensor<double>({4, 5}, dev, 6);
    auto b = random_tensor<double>({4, 5}, dev, 7);
    auto xv = to_double(x), wv = to_double(w), bv = to_double(b);
    ft::LayerNormResult<double, 3> r;
    CHECK(launches_of(dev, [&] { r = ft::layer_norm(x, 2, w, b, 1e-5); }) == 1);
    std::vector<double> want(60), mean(3), rstd(3), plain(60);
    for (int i = 0; i < 3; ++i) {
      double m = 0, v = 0;
      for (int k = 0; k < 20; ++k) m += xv[i * 20 + k];
      m /= 20;
      for (int k = 0; k < 20; ++k) v += (xv[i * 20 + k] - m) * (xv[i * 20 + k] - m);
      v /= 20;  // biased, as torch
      mean[i] = m;
      rstd[i] = 1 / std::sqrt(v + 1e-5);
      for (int k = 0; k < 20; ++k) {
        plain[i * 20 + k] = (xv[i * 20 + k] - m) * rstd[i];
        want[i * 20 + k] = plain[i * 20 + k] * wv[k] + bv[k];
      }
    }
    check_close(r.output, want, 1e-12, 1e-12);
    check_close(r.mean, mean, 1e-12, 1e-12);
    check_close(r.rstd, rstd, 1e-12, 1e-12);
    check_close(ft::layer_norm(x, 2).output, plain, 1e-12, 1e-12);
    auto f = ft::layer_norm(ft::cast<float>(x) * 2.0f, 1);  // fused input, float
    CHECK(f.mean.shape() == ft::Shape<1>{12});
    CHECK_THROWS_AS(ft::layer_norm(x, 2, random_tensor<double>({5, 4}, dev, 8)), ft::Error);
    CHECK_THROWS_AS(ft::layer_norm(x, 4), ft::Error);
  }
}

TEST_CASE("cross_entropy: mean and sum, ignore_index and label smoothing, as torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t N = 37, C = 11;
    auto logits = random_tensor<float>({N, C}, dev, 9, -4, 4);
    auto target = ft::randint<std::int64_t>(0, C, {N}, dev, 10);
    auto lv = to_double(logits);
    auto tv = target.to_vector();
    tv[3] = -100;  // ignored rows
    tv[20] = -100;
    target = ft::from_vector<std::int64_t>(tv, {N}, dev);
    for (double eps : {0.0, 0.1}) {
      CAPTURE(eps);
      double total = 0, count = 0;
      for (index_t r = 0; r < N; ++r) {
        if (tv[r] == -100) continue;
        double m = -INFINITY, s = 0, sx = 0;
        for (index_t c = 0; c < C; ++c) m = std::max(m, lv[r * C + c]);
        for (index_t c = 0; c < C; ++c) s += std::exp(lv[r * C + c] - m), sx += lv[r * C + c];
        double lse = m + std::log(s);
        total += (1 - eps) * (lse - lv[r * C + tv[r]]) + eps / C * (C * lse - sx);
        count += 1;
      }
      ft::Tensor<float, 0> mean_loss, sum_loss;
      CHECK(launches_of(dev, [&] { mean_loss = ft::cross_entropy(logits, target, {.label_smoothing = eps}); }) == 1);
      sum_loss = ft::cross_entropy(logits, target, {.label_smoothing = eps, .reduction = ft::Reduction::Sum});
      CHECK(mean_loss.item() == doctest::Approx(total / count).epsilon(1e-5));
      CHECK(sum_loss.item() == doctest::Approx(total).epsilon(1e-5));
    }
    // determinism
    auto l0 = ft::cross_entropy(logits, target).item();
    CHECK(ft::cross_entropy(logits, target).item() == l0);
    CHECK_THROWS_AS(ft::cross_entropy(logits, ft::zeros<std::int64_t>({N + 1}, dev)), ft::Error);
    if (dev.is_cpu()) CHECK_THROWS_AS(ft::cross_entropy(logits, ft::full<std::int64_t>({N}, C, dev)), ft::Error);
  }
}

TEST_CASE("the issue's snippet: linear-free part") {
  auto logits = ft::randn<float>({256, 10}, ft::kCPU, 3);
  ft::Tensor<float, 2> p = ft::softmax(logits, 1);
  ft::Tensor<std::int64_t, 1> t = ft::argmax(p, 1);
  float loss = ft::cross_entropy(logits, t).item();
  CHECK(loss > 0);
  CHECK(loss < std::log(10.0f));  // the targets are the argmax: below the uniform loss
  auto x = ft::randn<float>({256, 1000}, ft::kCPU, 3);
  ft::stats::reset();
  ft::Tensor<float, 1> s = ft::sum(x * x, 1);
  CHECK(ft::stats::launches(ft::kCPU) == 1);
}
