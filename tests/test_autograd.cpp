// Autograd behaviour: one launch a statement forward, fused gradient kernels backward (launch
// and allocation counts), the tape (control flow, accumulation, retain_graph, NoGradGuard,
// detach), anomaly detection, in-place checks, user functions, and CPU/GPU agreement.
#include <thread>

#include "common.hpp"

using ft::index_t;
using ft::test::check_close;
using ft::test::random_tensor;
using ft::test::to_double;

TEST_CASE("the issue's example: linear + cross_entropy gradients match a double reference") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> W(ft::randn<float>({10, 784}, dev, 1) * 0.01f, ft::requires_grad);
    ft::Var<float, 1> b(ft::zeros<float>({10}, dev), ft::requires_grad);
    auto x = ft::randn<float>({64, 784}, dev, 2);
    auto y = ft::arange<int64_t>(0, 64, 1, dev) % 10;
    ft::Var<float, 0> loss = ft::cross_entropy(ft::linear(x, W, b), y);
    loss.backward();
    // reference: dL/dlogits = (softmax − onehot) / N; dW = dlogitsᵀ·x, db = Σ dlogits
    auto xv = to_double(x), wv = to_double(W.value());
    std::vector<double> dW(10 * 784, 0.0), db(10, 0.0);
    double l = 0;
    for (int n = 0; n < 64; ++n) {
      double z[10], m = -1e300, s = 0;
      for (int o = 0; o < 10; ++o) {
        z[o] = 0;
        for (int i = 0; i < 784; ++i) z[o] += xv[n * 784 + i] * wv[o * 784 + i];
        m = std::max(m, z[o]);
      }
      for (double v : z) s += std::exp(v - m);
      l += -(z[n % 10] - m - std::log(s)) / 64;
      for (int o = 0; o < 10; ++o) {
        double d = (std::exp(z[o] - m) / s - (o == n % 10)) / 64;
        db[o] += d;
        for (int i = 0; i < 784; ++i) dW[o * 784 + i] += d * xv[n * 784 + i];
      }
    }
    CHECK(loss.item() == doctest::Approx(l).epsilon(1e-5));
    check_close(W.grad(), dW, 1e-3, 1e-6);
    check_close(b.grad(), db, 1e-3, 1e-6);
  }
}

TEST_CASE("a statement is one forward launch and one tape node; its backward fuses per leaf") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> a(random_tensor<float>({64, 32}, dev, 1), ft::requires_grad);
    ft::Var<float, 2> b(random_tensor<float>({64, 32}, dev, 2), ft::requires_grad);
    ft::Var<float, 2> c(random_tensor<float>({64, 32}, dev, 3), ft::requires_grad);
    ft::Var<float, 1> c1(random_tensor<float>({32}, dev, 4), ft::requires_grad);
    ft::Var<float, 2> y;
    CHECK(ft::test::launches_of(dev, [&] { y = ft::tanh(a * b + c); }) == 1);
    CHECK(y.grad_fn_name() == "tanh(add(mul(Var[64, 32], Var[64, 32]), Var[64, 32]))");
    auto seed = random_tensor<float>({64, 32}, dev, 5);
    CHECK(ft::test::launches_of(dev, [&] { y.backward(seed); }) == 3);
    // dA = g·(1 − tanh²)·b
    auto av = to_double(a.value()), bv = to_double(b.value()), cv = to_double(c.value()), g = to_double(seed);
    std::vector<double> da(av.size()), dc(av.size());
    for (std::size_t i = 0; i < av.size(); ++i) {
      double t = std::tanh(av[i] * bv[i] + cv[i]);
      dc[i] = g[i] * (1 - t * t);
      da[i] = dc[i] * bv[i];
    }
    check_close(a.grad(), da, 1e-4, 1e-5);
    check_close(c.grad(), dc, 1e-4, 1e-5);
    // a leaf broadcast from [N] into [M, N]: its gradient is one fused reduction, no extra launch
    ft::Var<float, 2> y2 = ft::tanh(a * b + c1);
    CHECK(ft::test::launches_of(dev, [&] { y2.backward(seed); }) == 3);
    std::vector<double> dc1(32, 0.0), c1v = to_double(c1.value());
    for (index_t i = 0; i < 64; ++i)
      for (index_t j = 0; j < 32; ++j) {
        double t = std::tanh(av[i * 32 + j] * bv[i * 32 + j] + c1v[j]);
        dc1[j] += g[i * 32 + j] * (1 - t * t);
      }
    check_close(c1.grad(), dc1, 1e-4, 1e-4);
  }
}

TEST_CASE("backward of a 20-op statement allocates only the leaves' gradients") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(random_tensor<float>({128, 256}, dev, 1), ft::requires_grad);
    ft::Var<float, 2> w(random_tensor<float>({128, 256}, dev, 2), ft::requires_grad);
    // 20 elementwise ops in one statement, each leaf read once
    using namespace ft;
    ft::Var<float, 2> y =
        abs(tanh(sigmoid(exp(sin(cos(tanh(sqrt(square(sigmoid(x * w + 1.0f)) + 1.0f) * 0.5f) - 0.25f) * 2.0f) * 0.5f)) +
                 1.0f) -
            0.5f) *
        3.0f;
    auto seed = random_tensor<float>({128, 256}, dev, 3);
    ft::stats::reset();
    const auto before = ft::stats::bytes_in_use(dev);
    y.backward(seed);
    CHECK(ft::stats::allocations(dev) == 2);
    CHECK(ft::stats::peak_bytes(dev) - before == 2 * 128 * 256 * static_cast<std::int64_t>(sizeof(float)));
  }
}

TEST_CASE("dynamic control flow, rebinding and a leaf used many times") {
  ft::Var<double, 1> x(ft::from_vector<double>({0.5, 1.0, 2.0}, {3}), ft::requires_grad);
  ft::Var<double, 1> v = x * 1.0;
  int steps = 0;
  while (ft::sum(v.value()).item() < 20) {  // the loop length depends on the data
    v = v * 1.5 + 0.1;
    ++steps;
  }
  ft::Var<double, 0> loss = ft::sum(v * x);  // x read again, in another statement
  loss.backward();
  // v = 1.5^n·x + c, so ∂Σ v·x/∂x = 2·1.5^n·x + c
  const double k = std::pow(1.5, steps);
  auto xv = to_double(x.value()), vv = to_double(v.value());
  std::vector<double> want;
  for (std::size_t i = 0; i < 3; ++i) want.push_back(k * xv[i] + vv[i]);
  check_close(x.grad(), want, 1e-12, 1e-12);
  CHECK(steps == 4);
  // the same leaf three times in one statement: the gradients add up
  x.zero_grad();
  ft::Var<double, 0> l2 = ft::sum(x * x * x);
  l2.backward();
  std::vector<double> w3;
  for (double a : xv) w3.push_back(3 * a * a);
  check_close(x.grad(), w3, 1e-12, 1e-12);
}

TEST_CASE("gradients accumulate until zero_grad; retain_graph; detach") {
  ft::Var<double, 1> x(ft::from_vector<double>({1, 2, 3}, {3}), ft::requires_grad);
  auto run = [&](bool retain) {
    ft::Var<double, 0> l = ft::sum(ft::square(x));
    l.backward({.retain_graph = retain});
    return l;
  };
  run(false);
  run(false);
  check_close(x.grad(), {4, 8, 12});
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
  x.zero_grad(false);  // no gradient yet: stays undefined
  CHECK_FALSE(x.has_grad());
  auto l = run(true);
  l.backward();  // the graph was kept
  check_close(x.grad(), {4, 8, 12});
  CHECK_THROWS_WITH_AS(l.backward(), doctest::Contains("retain_graph"), ft::Error);
  x.zero_grad(false);
  // a detached Var is a constant leaf: no gradient flows through it
  ft::Var<double, 1> d = x.detach();
  CHECK(d.is_leaf());
  CHECK_FALSE(d.requires_grad());
  ft::Var<double, 0> l2 = ft::sum(x * d);
  l2.backward();
  check_close(x.grad(), {1, 2, 3});
}

TEST_CASE("NoGradGuard stops recording on this thread only") {
  ft::Var<float, 1> x(ft::ones<float>({4}), ft::requires_grad);
  {
    ft::NoGradGuard guard;
    ft::Var<float, 1> y = x * 2.0f;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    bool other_thread_records = false;
    std::thread t([&] {
      ft::Var<float, 1> z = x * 2.0f;
      other_thread_records = z.requires_grad();
    });
    t.join();
    CHECK(other_thread_records);
    using L = ft::Var<float, 0>;
    CHECK_THROWS_AS(L(ft::sum(y)).backward(), ft::Error);
  }
  ft::Var<float, 1> y = x * 2.0f;
  CHECK(y.requires_grad());
}

TEST_CASE("anomaly detection names the statement; in-place writes after the forward are caught") {
  ft::Var<double, 1> x(ft::from_vector<double>({-1.0, 0.0, 4.0}, {3}), ft::requires_grad);
  ft::set_detect_anomaly(true);
  using V1 = ft::Var<double, 1>;
  CHECK_THROWS_WITH_AS(V1(ft::log(x) * 2.0), doctest::Contains("mul(log(Var[3]), 2)"), ft::Error);
  ft::Var<double, 1> ok = x * 1.0;
  ft::Var<double, 0> l = ft::sum(ft::sqrt(ft::abs(ok)));  // finite forward, infinite gradient at 0
  CHECK_THROWS_WITH_AS(l.backward(), doctest::Contains("sqrt(abs(Var[3]))"), ft::Error);
  ft::set_detect_anomaly(false);

  ft::Var<double, 1> y(ft::from_vector<double>({1.0, 2.0}, {2}), ft::requires_grad);
  ft::Var<double, 0> s = ft::sum(ft::exp(y));
  y.data() += 1.0;  // recomputing exp(y) now would give the wrong gradient
  CHECK_THROWS_WITH_AS(s.backward(), doctest::Contains("modified in place"), ft::Error);
}

TEST_CASE("misuse is a clear ft::Error") {
  ft::Var<float, 1> c(ft::ones<float>({3}));
  using L = ft::Var<float, 0>;
  CHECK_THROWS_WITH_AS(L(ft::sum(c)).backward(), doctest::Contains("does not require grad"), ft::Error);
  ft::Var<float, 1> x(ft::ones<float>({3}), ft::requires_grad);
  ft::Var<float, 1> y = x * 2.0f;
  CHECK_THROWS_WITH_AS(y.backward(ft::ones<float>({4})), doctest::Contains("does not match"), ft::Error);
  CHECK_THROWS_WITH_AS(y.set_requires_grad(false), doctest::Contains("only a leaf"), ft::Error);
}

namespace {
// A user function with its own backward, as torch.autograd.Function.
struct Cube {
  static constexpr const char* name = "cube";
  template <class X>
  static auto forward(const X& x) {
    return x * x * x;
  }
  template <class G, class X, class Y>
  static auto backward(const G& g, const X& x, const Y&) {
    return std::tuple{g * x * x * 3.0};
  }
};
// A user elementwise op: an op functor plus its adjoint rule, fused like the library's own.
struct Softsign {
  static constexpr const char* name = "softsign";
  template <class T>
  FT_HD FT_INLINE T operator()(T x) const {
    return x / (T(1) + (x < T(0) ? -x : x));
  }
};
}  // namespace

template <>
struct ft::autograd::UnaryGrad<Softsign> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A>
  static auto grad(const Softsign&, const G& g, const A& a) {
    return g / ft::square(ft::abs(a) + 1);
  }
};

TEST_CASE("user-defined differentiable functions and ops") {
  ft::Var<double, 1> x(ft::from_vector<double>({-1.5, 0.5, 2.0}, {3}), ft::requires_grad);
  ft::Var<double, 1> y = ft::autograd::apply<Cube>(x);
  CHECK(y.grad_fn_name() == "cube");
  ft::Var<double, 0>(ft::sum(y)).backward();
  check_close(x.grad(), {3 * 2.25, 3 * 0.25, 12});
  auto r = ft::gradcheck([](const auto& v) { return ft::Var<double, 1>(ft::make_unary(Softsign{}, v * 2.0) + v); }, x);
  CHECK_MESSAGE(r.ok, r.report);
  auto r2 = ft::gradcheck([](const auto& v) { return ft::autograd::apply<Cube>(ft::tanh(v)); }, x);
  CHECK_MESSAGE(r2.ok, r2.report);
}

FT_GPU_TEST_CASE("CPU and GPU gradients agree") {
  auto run = [](ft::Device dev) {
    ft::Var<float, 2> W1(random_tensor<float>({32, 16}, dev, 1, -0.5, 0.5), ft::requires_grad);
    ft::Var<float, 1> b1(random_tensor<float>({32}, dev, 2), ft::requires_grad);
    ft::Var<float, 2> W2(random_tensor<float>({10, 32}, dev, 3, -0.5, 0.5), ft::requires_grad);
    auto x = random_tensor<float>({8, 16}, dev, 4);
    auto t = ft::from_vector<std::int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8}, dev);
    ft::Var<float, 2> h = ft::gelu(ft::linear(x, W1, b1));
    ft::Var<float, 2> z = ft::layer_norm(ft::softmax(ft::linear(h, W2), 1) * 3.0f + ft::max(h, 1, ft::keepdim), 1);
    ft::Var<float, 0> loss = ft::cross_entropy(z, t) + ft::mean(ft::square(W1)) * 0.1f;
    loss.backward();
    return std::vector{to_double(W1.grad()), to_double(b1.grad()), to_double(W2.grad())};
  };
  auto cpu = run(ft::kCPU);
  auto gpu = run(ft::Device(ft::kCUDA, 0));
  for (std::size_t i = 0; i < cpu.size(); ++i) check_close(gpu[i], cpu[i], 1e-3, 1e-5);
}
