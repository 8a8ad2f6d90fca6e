// Autograd on every device: the example against a double reference, one launch a
// statement forward and one fused kernel a leaf backward (launch and allocation counts), and
// CPU/GPU agreement. The tape's semantics are tested in test_autograd_tape.cpp.

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

TEST_CASE("a statement is one forward launch and one tape node; its backward is one multi-output kernel") {
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
    // the three same-shaped leaves' gradients: one kernel
    CHECK(ft::test::launches_of(dev, [&] { y.backward(seed); }) == 1);
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
    // a leaf broadcast from [N] into [M, N]: its gradient is one fused reduction (the sum runs
    // straight into the gradient, no temporary), beside the kernel of the two others
    ft::Var<float, 2> y2 = ft::tanh(a * b + c1);
    CHECK(ft::test::launches_of(dev, [&] { y2.backward(seed); }) == 2);
    std::vector<double> dc1(32, 0.0), c1v = to_double(c1.value());
    for (index_t i = 0; i < 64; ++i)
      for (index_t j = 0; j < 32; ++j) {
        double t = std::tanh(av[i * 32 + j] * bv[i * 32 + j] + c1v[j]);
        dc1[j] += g[i * 32 + j] * (1 - t * t);
      }
    check_close(c1.grad(), dc1, 1e-4, 1e-4);
  }
}

TEST_CASE("leaves used several times in a statement accumulate, in the multi-output kernel and outside it") {
  // large enough for the parallel, vectorised CPU loop
  const index_t m = 256, n = 300;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(random_tensor<float>({m, n}, dev, 1), ft::requires_grad);
    ft::Var<float, 2> w(random_tensor<float>({m, n}, dev, 2), ft::requires_grad);
    ft::Var<float, 2> b(random_tensor<float>({1, n}, dev, 3), ft::requires_grad);
    auto xv = to_double(x.value()), wv = to_double(w.value()), bv = to_double(b.value());
    const auto ones = ft::ones<float>({m, n}, dev);
    // x three times, w three times; run twice: the second backward adds to existing gradients
    for (int round = 1; round <= 2; ++round) {
      ft::Var<float, 2> y = x * w + ft::sin(x) * x - w * w * 0.5f;
      CHECK(ft::test::launches_of(dev, [&] { y.backward(ones); }) == 1);
      std::vector<double> dx(xv.size()), dw(xv.size());
      for (std::size_t i = 0; i < xv.size(); ++i) {
        dx[i] = round * (wv[i] + std::cos(xv[i]) * xv[i] + std::sin(xv[i]));
        dw[i] = round * (xv[i] - wv[i]);
      }
      check_close(x.grad(), dx, 1e-4, 1e-5);
      check_close(w.grad(), dw, 1e-4, 1e-5);
    }
    // a same-rank leaf broadcast along a dimension ([1, N]) and a top-rank leaf that needs no
    // gradient: one launch an occurrence instead, same values
    x.zero_grad();
    w.set_requires_grad(false);
    ft::Var<float, 2> y = x * b + x * w + x;
    CHECK(ft::test::launches_of(dev, [&] { y.backward(ones); }) == 4);
    std::vector<double> dx(xv.size()), db(n, 0.0);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        dx[i * n + j] = bv[j] + wv[i * n + j] + 1;
        db[j] += xv[i * n + j];
      }
    check_close(x.grad(), dx, 1e-4, 1e-5);
    check_close(b.grad(), db, 1e-4, 1e-3);
  }
}

// x·Wᵀ + b then an activation: the product's gradient and the bias's are the same expression
// (the adjoint of the sum), the bias's summed over rows. The bias sums the product's freshly
// written gradient; where that gradient was added to an earlier one it computes its own.
TEST_CASE("a broadcast bias sums the gradient its dense partner wrote, fresh or accumulated") {
  const index_t m = 300, n = 200;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> z(random_tensor<float>({m, n}, dev, 1, -3, 3), ft::requires_grad);
    ft::Var<float, 1> b(random_tensor<float>({n}, dev, 2), ft::requires_grad);
    auto seed = random_tensor<float>({m, n}, dev, 3);
    const auto zv = to_double(z.value()), bv = to_double(b.value()), g = to_double(seed);
    std::vector<double> dz(zv.size()), db(n, 0.0);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        const double v = zv[i * n + j] + bv[j];
        const double d = g[i * n + j] * (0.5 * (1 + std::erf(v / std::sqrt(2.0))) +
                                         v * std::exp(-0.5 * v * v) / std::sqrt(2 * 3.14159265358979323846));
        dz[i * n + j] = d;
        db[j] += d;
      }
    for (int round = 1; round <= 2; ++round) {  // round 2 adds to the gradients of round 1
      CAPTURE(round);
      ft::Var<float, 2> y = ft::gelu(z + b);
      CHECK(ft::test::launches_of(dev, [&] { y.backward(seed); }) == 2);
      std::vector<double> dzr(dz), dbr(db);
      for (double& v : dzr) v *= round;
      for (double& v : dbr) v *= round;
      check_close(z.grad(), dzr, 1e-4, 1e-5);
      check_close(b.grad(), dbr, 1e-4, 1e-3);
    }
    // the same through a sigmoid, where z's gradient existed before but b's did not
    b.zero_grad();
    ft::Var<float, 2> y = ft::sigmoid(z + b) * 2.0f;
    y.backward(seed);
    std::vector<double> dbs(n, 0.0);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        const double s = 1 / (1 + std::exp(-(zv[i * n + j] + bv[j])));
        dbs[j] += g[i * n + j] * 2 * s * (1 - s);
      }
    check_close(b.grad(), dbs, 1e-4, 1e-3);
  }
}

TEST_CASE("a reduction of an operand broadcast along the reduced dimensions counts every copy") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto a = random_tensor<double>({4, 3}, dev, 1);
    ft::Var<double, 1> b(ft::zeros<double>({3}, dev), ft::requires_grad);
    ft::Var<double, 2> c(ft::zeros<double>({4, 1}, dev), ft::requires_grad);
    ft::Var<double, 2> w(random_tensor<double>({3, 3}, dev, 2), ft::requires_grad);
    auto grad_of = [&](auto&& loss_fn, const auto& v) {
      b.zero_grad();
      c.zero_grad();
      ft::Var<double, 0> loss = loss_fn();
      loss.backward();
      return v.grad().to_vector();
    };
    // the summed copies: 4 rows of b; 3 columns of c
    CHECK(grad_of([&] { return ft::sum(a + b); }, b) == std::vector<double>(3, 4.0));
    CHECK(grad_of([&] { return ft::sum(a - c); }, c) == std::vector<double>(4, -3.0));
    CHECK(grad_of([&] { return ft::mean(a + b + c); }, b) == std::vector<double>(3, 1.0 / 3));
    CHECK(grad_of([&] { return ft::sum(ft::sum(a + b, 0) * 2.0); }, b) == std::vector<double>(3, 8.0));
    CHECK(grad_of([&] { return ft::sum(ft::mean(a + c, 1, ft::keepdim)); }, c) == std::vector<double>(4, 1.0));
    // a linear layer's output read by the loss in the same statement (bias gradient = batch size)
    CHECK(grad_of([&] { return ft::sum(ft::linear(a, w, b)); }, b) == std::vector<double>(3, 4.0));
  }
}

// The per-element reverse sweep (autograd/sweep.hpp): the forward values once, then every
// occurrence's adjoint from them, in one kernel — through where with a Var condition, an op
// without a gradient (floor), a tensor read, a strided leaf and a leaf of another dtype.
TEST_CASE("a statement's backward is one reverse sweep over every elementwise node kind") {
  const index_t m = 96, n = 257;  // rows of 257: vectorised loops with a remainder
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(random_tensor<float>({m, n}, dev, 1), ft::requires_grad);
    ft::Var<float, 2> w(random_tensor<float>({n, m}, dev, 2).transpose(0, 1));  // a strided leaf
    w.set_requires_grad(true);
    const auto t = random_tensor<float>({m, n}, dev, 3);
    const auto seed = random_tensor<float>({m, n}, dev, 4);
    ft::Var<float, 2> y = ft::where(x > w, ft::tanh(x * w) * x, ft::sigmoid(x) * ft::floor(w * 2.0f)) +
                          ft::exp(x * 0.5f) / (t * t + 1.0f) - ft::pow(w, 2.0f);
    CHECK(ft::test::launches_of(dev, [&] { y.backward(seed); }) == 1);
    const auto xv = to_double(x.value()), wv = to_double(w.value().contiguous()), tv = to_double(t),
               g = to_double(seed);
    std::vector<double> dx(xv.size()), dw(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) {
      const double a = xv[i], b = wv[i], th = std::tanh(a * b), s = 1 / (1 + std::exp(-a));
      const bool c = static_cast<float>(a) > static_cast<float>(b);
      dx[i] = g[i] * ((c ? (1 - th * th) * b * a + th : s * (1 - s) * std::floor(2 * b)) +
                      0.5 * std::exp(0.5 * a) / (tv[i] * tv[i] + 1));
      dw[i] = g[i] * ((c ? (1 - th * th) * a * a : 0.0) - 2 * b);
    }
    check_close(x.grad(), dx, 1e-4, 1e-5);
    check_close(w.grad(), dw, 1e-4, 1e-5);

    // a float and a double leaf in one statement: each gradient in its leaf's dtype
    ft::Var<double, 2> d(random_tensor<double>({m, n}, dev, 5), ft::requires_grad);
    x.zero_grad();
    ft::Var<double, 2> z = ft::sin(x) * d + d;
    const auto seed64 = random_tensor<double>({m, n}, dev, 6);
    CHECK(ft::test::launches_of(dev, [&] { z.backward(seed64); }) == 1);
    const auto dv = to_double(d.value()), g64 = to_double(seed64);
    std::vector<double> dxd(xv.size()), dd(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) {
      dxd[i] = g64[i] * std::cos(xv[i]) * dv[i];
      dd[i] = g64[i] * (std::sin(xv[i]) + 1);
    }
    check_close(x.grad(), dxd, 1e-4, 1e-5);
    check_close(d.grad(), dd, 1e-6, 1e-6);

    // a lower-rank leaf first in the walk: the sweep stores occurrences 1 and 2, the bias's
    // gradient is its own reduction
    ft::Var<float, 1> bias(random_tensor<float>({n}, dev, 7), ft::requires_grad);
    x.zero_grad();
    ft::Var<float, 2> u = bias + ft::tanh(x) * x;
    CHECK(ft::test::launches_of(dev, [&] { u.backward(seed); }) == 2);
    std::vector<double> dxu(xv.size()), db(n, 0.0);
    for (std::size_t i = 0; i < xv.size(); ++i) {
      const double th = std::tanh(xv[i]);
      dxu[i] = g[i] * ((1 - th * th) * xv[i] + th);
      db[i % n] += g[i];
    }
    check_close(x.grad(), dxu, 1e-4, 1e-5);
    check_close(bias.grad(), db, 1e-4, 1e-4);

    // an empty statement: its gradient exists, empty, and nothing is launched
    ft::Var<float, 2> e(ft::zeros<float>({0, 5}, dev), ft::requires_grad);
    ft::Var<float, 2> ye = ft::tanh(e) * e;
    CHECK(ft::test::launches_of(dev, [&] { ye.backward(ft::zeros<float>({0, 5}, dev)); }) == 0);
    CHECK(e.grad().shape() == ft::Shape<2>{0, 5});
  }
}

// Saved derivatives (autograd/saved_derivatives.hpp): on the CPU a compute-heavy statement's
// forward kernel also stores ∂y/∂x and ∂y/∂w (summed over each Var's occurrences), and its
// backward is one kernel of g·∂y/∂leaf; elsewhere, or when told to recompute, nothing is kept.
TEST_CASE("a compute-heavy statement on the CPU saves its derivatives in its forward kernel") {
  using ft::autograd::StatementDerivatives;
  const index_t m = 128, n = 257;  // ≥ kSaveMinElements; rows with a vector remainder
  const std::int64_t bytes = m * n * static_cast<std::int64_t>(sizeof(float));
  const auto restore = ft::autograd::statement_derivatives();
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(random_tensor<float>({m, n}, dev, 1), ft::requires_grad);
    ft::Var<float, 2> w(random_tensor<float>({m, n}, dev, 2), ft::requires_grad);
    const auto seed = random_tensor<float>({m, n}, dev, 3);
    const auto xv = to_double(x.value()), wv = to_double(w.value()), g = to_double(seed);
    std::vector<double> yr(xv.size()), dx(xv.size()), dw(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) {
      const double a = xv[i], b = wv[i], t = std::tanh(a * b + std::sin(a)), s = 1 / (1 + std::exp(-b)),
                   e = std::exp(0.5 * a), dc = (1 - t * t) * s;
      yr[i] = t * s - e + b;
      dx[i] = g[i] * (dc * (b + std::cos(a)) - 0.5 * e);
      dw[i] = g[i] * (dc * a + t * s * (1 - s) + 1);
    }
    // x and w three times each: each Var's derivative is the sum over its occurrences
    auto statement = [&] { return ft::tanh(x * w + ft::sin(x)) * ft::sigmoid(w) - ft::exp(x * 0.5f) + w; };
    for (auto policy : {StatementDerivatives::automatic, StatementDerivatives::save, StatementDerivatives::recompute}) {
      CAPTURE(static_cast<int>(policy));
      ft::autograd::set_statement_derivatives(policy);
      x.zero_grad();
      w.zero_grad();
      const auto before = ft::stats::bytes_in_use(dev);
      ft::Var<float, 2> y;
      CHECK(ft::test::launches_of(dev, [&] { y = statement(); }) == 1);
      const bool saves = dev.is_cpu() && policy != StatementDerivatives::recompute;
      CHECK(ft::stats::bytes_in_use(dev) - before == (saves ? 3 : 1) * bytes);  // y, and ∂y/∂x, ∂y/∂w
      check_close(y.value(), yr, 1e-5, 1e-6);
      CHECK(ft::test::launches_of(dev, [&] { y.backward(seed, {.retain_graph = true}); }) == 1);
      check_close(x.grad(), dx, 1e-4, 1e-5);
      check_close(w.grad(), dw, 1e-4, 1e-5);
      // a second backward accumulates onto the gradients
      CHECK(ft::test::launches_of(dev, [&] { y.backward(seed); }) == 1);
      std::vector<double> dx2(dx), dw2(dw);
      for (auto& v : dx2) v *= 2;
      for (auto& v : dw2) v *= 2;
      check_close(x.grad(), dx2, 1e-4, 1e-5);
      check_close(w.grad(), dw2, 1e-4, 1e-5);
      // the derivatives are freed with the graph
      y = ft::Var<float, 2>();
      CHECK(ft::stats::bytes_in_use(dev) - before == 2 * bytes);  // the two gradients
    }
    // not eligible, so recomputed even when told to save: a Var that does not require grad,
    // a broadcast Var (its gradient is a reduction)
    ft::autograd::set_statement_derivatives(StatementDerivatives::save);
    const ft::Var<float, 2> c(random_tensor<float>({m, n}, dev, 4));
    ft::Var<float, 1> bias(random_tensor<float>({n}, dev, 5), ft::requires_grad);
    for (int k = 0; k < 2; ++k) {
      x.zero_grad();
      const auto before = ft::stats::bytes_in_use(dev);
      ft::Var<float, 2> y = k == 0 ? ft::Var<float, 2>(ft::tanh(x * c) * ft::exp(c) + ft::sin(x))
                                   : ft::Var<float, 2>(ft::tanh(x * bias) * ft::exp(bias) + ft::sin(x));
      CHECK(ft::stats::bytes_in_use(dev) - before == bytes);
      y.backward(seed);
      const auto cv = k == 0 ? to_double(c.value()) : to_double(bias.value());
      std::vector<double> d(xv.size());
      for (std::size_t i = 0; i < xv.size(); ++i) {
        const double cc = k == 0 ? cv[i] : cv[i % n], t = std::tanh(xv[i] * cc);
        d[i] = g[i] * ((1 - t * t) * cc * std::exp(cc) + std::cos(xv[i]));
      }
      check_close(x.grad(), d, 1e-4, 1e-5);
    }
  }
  // the saved derivatives' gradient against finite differences, in double
  ft::autograd::set_statement_derivatives(StatementDerivatives::save);
  ft::Var<double, 2> a(ft::randn<double>({5, 7}, ft::kCPU, 11), ft::requires_grad);
  ft::Var<double, 2> b(ft::randn<double>({5, 7}, ft::kCPU, 12), ft::requires_grad);
  auto r = ft::gradcheck(
      [](const auto& a, const auto& b) {
        return ft::Var<double, 2>(ft::where(a > b, ft::exp(a) * ft::sin(b), ft::log(b * b + 1.0) * a) +
                                  ft::pow(ft::sigmoid(a), b));
      },
      a, b);
  CHECK_MESSAGE(r.ok, r.report);
  ft::autograd::set_statement_derivatives(restore);
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

FT_GPU_TEST_CASE("CPU and GPU gradients agree") {
  auto run = [](ft::Device dev) {
    ft::Var<float, 2> W1(random_tensor<float>({32, 16}, dev, 1, -0.5, 0.5), ft::requires_grad);
    ft::Var<float, 1> b1(random_tensor<float>({32}, dev, 2), ft::requires_grad);
    ft::Var<float, 2> W2(random_tensor<float>({10, 32}, dev, 3, -0.5, 0.5), ft::requires_grad);
    auto x = random_tensor<float>({8, 16}, dev, 4);
    auto t = ft::from_vector<std::int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8}, dev);
    ft::Var<float, 2> h = ft::tanh(ft::linear(x, W1, b1));
    ft::Var<float, 0> loss =
        ft::cross_entropy(ft::layer_norm(ft::linear(h, W2), 1), t) + ft::mean(ft::square(W1)) * 0.1f;
    loss.backward();
    return std::vector{to_double(W1.grad()), to_double(b1.grad()), to_double(W2.grad())};
  };
  auto cpu = run(ft::kCPU);
  auto gpu = run(ft::Device(ft::kCUDA, 0));
  for (std::size_t i = 0; i < cpu.size(); ++i) check_close(gpu[i], cpu[i], 1e-3, 1e-5);
}
