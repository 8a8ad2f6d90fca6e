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

// cross_entropy of logits v [N, C] against targets t (-100 ignored), with label smoothing eps, in
// double: the mean over the rows counted, or the sum
double ref_cross_entropy(const std::vector<double>& v, const std::vector<std::int64_t>& t, index_t N, index_t C,
                         double eps, bool mean) {
  double total = 0, count = 0;
  for (index_t r = 0; r < N; ++r) {
    if (t[r] == -100) continue;
    double m = -INFINITY, s = 0, sx = 0;
    for (index_t c = 0; c < C; ++c) m = std::max(m, v[r * C + c]);
    for (index_t c = 0; c < C; ++c) s += std::exp(v[r * C + c] - m), sx += v[r * C + c];
    const double lse = m + std::log(s);
    total += (1 - eps) * (lse - v[r * C + t[r]]) + eps / C * (C * lse - sx);
    count += 1;
  }
  return mean ? total / count : total;
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
      ft::Tensor<float, 0> mean_loss, sum_loss;
      CHECK(launches_of(dev, [&] { mean_loss = ft::cross_entropy(logits, target, {.label_smoothing = eps}); }) == 1);
      sum_loss = ft::cross_entropy(logits, target, {.label_smoothing = eps, .reduction = ft::Reduction::Sum});
      CHECK(mean_loss.item() == doctest::Approx(ref_cross_entropy(lv, tv, N, C, eps, true)).epsilon(1e-5));
      CHECK(sum_loss.item() == doctest::Approx(ref_cross_entropy(lv, tv, N, C, eps, false)).epsilon(1e-5));
    }
    // determinism
    auto l0 = ft::cross_entropy(logits, target).item();
    CHECK(ft::cross_entropy(logits, target).item() == l0);
    CHECK_THROWS_AS(ft::cross_entropy(logits, ft::zeros<std::int64_t>({N + 1}, dev)), ft::Error);
    if (dev.is_cpu()) CHECK_THROWS_AS(ft::cross_entropy(logits, ft::full<std::int64_t>({N}, C, dev)), ft::Error);
  }
}

TEST_CASE("softmax and cross_entropy with 10, 1000 and 5000 classes: one launch, the same bits every run") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t N = 37;
    for (index_t C : {10, 1000, 5000}) {  // a warp a row on a GPU up to 1024, then a block a row
      CAPTURE(C);
      auto x = random_tensor<float>({N, C}, dev, static_cast<unsigned>(20 + C), -6, 6);
      auto xv = to_double(x);
      ft::Tensor<float, 2> p, lp;
      CHECK(launches_of(dev, [&] { p = ft::softmax(x, 1); }) == 1);
      CHECK(launches_of(dev, [&] { lp = ft::log_softmax(x, 1); }) == 1);
      check_close(p, ref_softmax(xv, N, C, 1, false), 1e-5, 1e-7);
      check_close(lp, ref_softmax(xv, N, C, 1, true), 1e-5, 1e-5);
      CHECK(ft::softmax(x, 1).to_vector() == p.to_vector());
      CHECK(ft::log_softmax(x, 1).to_vector() == lp.to_vector());

      auto tv = ft::randint<std::int64_t>(0, C, {N}, dev, 21).to_vector();
      tv[3] = tv[30] = -100;  // ignored rows
      auto target = ft::from_vector<std::int64_t>(tv, {N}, dev);
      for (double eps : {0.0, 0.1}) {
        CAPTURE(eps);
        ft::Tensor<float, 0> mean_loss, sum_loss;
        CHECK(launches_of(dev, [&] { mean_loss = ft::cross_entropy(x, target, {.label_smoothing = eps}); }) == 1);
        CHECK(launches_of(dev, [&] {
                sum_loss = ft::cross_entropy(x, target, {.label_smoothing = eps, .reduction = ft::Reduction::Sum});
              }) == 1);
        CHECK(mean_loss.item() == doctest::Approx(ref_cross_entropy(xv, tv, N, C, eps, true)).epsilon(1e-5));
        CHECK(sum_loss.item() == doctest::Approx(ref_cross_entropy(xv, tv, N, C, eps, false)).epsilon(1e-5));
        CHECK(ft::cross_entropy(x, target, {.label_smoothing = eps}).item() == mean_loss.item());
      }
    }
    // a long row along a non-last dim: [2, 3000, 3] along dim 1 (rows strided by 3)
    auto y = random_tensor<float>({2, 3000, 3}, dev, 22, -6, 6);
    ft::Tensor<float, 3> py;
    CHECK(launches_of(dev, [&] { py = ft::softmax(y, 1); }) == 1);
    check_close(py, ref_softmax(to_double(y), 2, 3000, 3, false), 1e-5, 1e-7);
  }
}

TEST_CASE("layer_norm with 64 and 4096 features: one launch, the same bits every run") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t K : {64, 4096}) {  // a warp a row on a GPU, then a block a row
      CAPTURE(K);
      const index_t rows = 50;
      auto x = random_tensor<float>({rows, K}, dev, static_cast<unsigned>(30 + K), -3, 3);
      auto w = random_tensor<float>({K}, dev, 31);
      auto b = random_tensor<float>({K}, dev, 32);
      auto xv = to_double(x), wv = to_double(w), bv = to_double(b);
      ft::LayerNormResult<float, 2> r;
      CHECK(launches_of(dev, [&] { r = ft::layer_norm(x, 1, w, b, 1e-5); }) == 1);
      std::vector<double> want(rows * K), mean(rows), rstd(rows);
      for (index_t i = 0; i < rows; ++i) {
        double m = 0, v = 0;
        for (index_t k = 0; k < K; ++k) m += xv[i * K + k];
        m /= K;
        for (index_t k = 0; k < K; ++k) v += (xv[i * K + k] - m) * (xv[i * K + k] - m);
        mean[i] = m;
        rstd[i] = 1 / std::sqrt(v / K + 1e-5);
        for (index_t k = 0; k < K; ++k) want[i * K + k] = (xv[i * K + k] - m) * rstd[i] * wv[k] + bv[k];
      }
      check_close(r.output, want, 1e-5, 2e-5);
      check_close(r.mean, mean, 1e-5, 1e-5);
      check_close(r.rstd, rstd, 1e-5, 1e-6);
      auto again = ft::layer_norm(x, 1, w, b, 1e-5);
      CHECK(again.output.to_vector() == r.output.to_vector());
      CHECK(again.mean.to_vector() == r.mean.to_vector());
      CHECK(again.rstd.to_vector() == r.rstd.to_vector());
    }
  }
}

namespace {
// layer_norm's gradients over rows of K, in double: dx = rstd·(ĝ − mean ĝ − x̂·mean ĝx̂) with
// ĝ = g·w, dw = Σ g·x̂, db = Σ g over the rows.
struct LayerNormGrads {
  std::vector<double> dx, dw, db;
};
LayerNormGrads ref_layer_norm_backward(const std::vector<double>& x, const std::vector<double>& g,
                                       const std::vector<double>& w, index_t rows, index_t K) {
  LayerNormGrads r{std::vector<double>(x.size()), std::vector<double>(K), std::vector<double>(K)};
  for (index_t i = 0; i < rows; ++i) {
    double m = 0, v = 0;
    for (index_t k = 0; k < K; ++k) m += x[i * K + k];
    m /= K;
    for (index_t k = 0; k < K; ++k) v += (x[i * K + k] - m) * (x[i * K + k] - m);
    const double rs = 1 / std::sqrt(v / K + 1e-5);
    double s1 = 0, s2 = 0;
    for (index_t k = 0; k < K; ++k) {
      const double xh = (x[i * K + k] - m) * rs, gh = g[i * K + k] * w[k];
      s1 += gh, s2 += gh * xh;
      r.dw[k] += g[i * K + k] * xh;
      r.db[k] += g[i * K + k];
    }
    for (index_t k = 0; k < K; ++k) {
      const double xh = (x[i * K + k] - m) * rs;
      r.dx[i * K + k] = rs * (g[i * K + k] * w[k] - s1 / K - xh * s2 / K);
    }
  }
  return r;
}
}  // namespace

TEST_CASE("layer_norm's backward: one pass on the CPU, into new or existing gradients, as a double loop") {
  using V3 = ft::Var<double, 3>;
  using V2 = ft::Var<double, 2>;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const index_t rows = 70, K = 12;  // more rows than the CPU's 64 chunks
    auto x = random_tensor<double>({rows, 3, 4}, dev, 61, -3, 3);
    auto w = random_tensor<double>({3, 4}, dev, 62);
    auto b = random_tensor<double>({3, 4}, dev, 63);
    auto g = random_tensor<double>({rows, 3, 4}, dev, 64);
    const auto ref = ref_layer_norm_backward(to_double(x), to_double(g), to_double(w), rows, K);
    V3 vx(x, ft::requires_grad);
    V2 vw(w, ft::requires_grad), vb(b, ft::requires_grad);
    V3 y = ft::layer_norm(vx, 2, vw, vb);
    const int launches = launches_of(dev, [&] { y.backward(g, {.retain_graph = true}); });
    if (dev.is_cpu()) CHECK(launches == 1);  // dx, dw and db in one pass, written into .grad
    check_close(vx.grad(), ref.dx, 1e-10, 1e-10);
    check_close(vw.grad(), ref.dw, 1e-10, 1e-10);
    check_close(vb.grad(), ref.db, 1e-10, 1e-10);
    y.backward(g);  // onto the gradients there
    auto twice = [](std::vector<double> v) {
      for (double& e : v) e *= 2;
      return v;
    };
    check_close(vx.grad(), twice(ref.dx), 1e-10, 1e-10);
    check_close(vw.grad(), twice(ref.dw), 1e-10, 1e-10);
    check_close(vb.grad(), twice(ref.db), 1e-10, 1e-10);

    // the weight also the bias: one gradient gains both sums; x needing none gets none
    V3 cx(x);
    V2 wb(w, ft::requires_grad);
    ft::layer_norm(cx, 2, wb, wb).backward(g);
    std::vector<double> both(K);
    for (index_t k = 0; k < K; ++k) both[k] = ref.dw[k] + ref.db[k];
    check_close(wb.grad(), both, 1e-10, 1e-10);
    CHECK(!cx.has_grad());

    // a gradient already there that is a transposed view: still added to in place
    V2 tw(w, ft::requires_grad);
    ft::Tensor<double, 2> grad_t = ft::zeros<double>({4, 3}, dev).transpose(0, 1);
    tw.state().grad = grad_t;
    ft::layer_norm(cx, 2, tw).backward(g);
    CHECK(tw.grad().data() == grad_t.data());
    check_close(tw.grad(), ref.dw, 1e-10, 1e-10);
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
