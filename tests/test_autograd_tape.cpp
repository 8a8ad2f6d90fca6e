// The tape's semantics (CPU; the code is the same on every device): dynamic control flow and
// rebinding, gradient accumulation, retain_graph, detach, NoGradGuard, anomaly detection,
// in-place checks, misuse errors, and user-defined functions and ops.
#include <thread>

#include "common.hpp"

using ft::test::check_close;
using ft::test::to_double;

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

TEST_CASE("a retained gradient does not leak into the next backward (torch's retain_grad)") {
  ft::Var<double, 1> x(ft::from_vector<double>({1, 2}, {2}), ft::requires_grad);
  ft::Var<double, 1> h = x * 3.0;
  h.retain_grad();
  ft::Var<double, 0> l = ft::sum(h * h);
  l.backward({.retain_graph = true});
  check_close(h.grad(), {6, 12}, 0, 0);
  l.backward();
  check_close(x.grad(), {36, 72}, 0, 0);  // torch: tensor([36., 72.])
  check_close(h.grad(), {12, 24}, 0, 0);  // the retained gradient accumulates

  // two losses sharing h: torch gives x.grad = [21, 39], h.grad = [7, 13]
  ft::Var<double, 1> x2(ft::from_vector<double>({1, 2}, {2}), ft::requires_grad);
  ft::Var<double, 1> h2 = x2 * 3.0;
  h2.retain_grad();
  ft::Var<double, 0> l1 = ft::sum(h2);
  l1.backward({.retain_graph = true});
  ft::Var<double, 0> l2 = ft::sum(h2 * h2);
  l2.backward();
  check_close(x2.grad(), {21, 39}, 0, 0);
  check_close(h2.grad(), {7, 13}, 0, 0);

  // a retained root: the seed is passed on once, and the root's own gradient accumulates
  ft::Var<double, 1> x3(ft::from_vector<double>({1, 2}, {2}), ft::requires_grad);
  ft::Var<double, 0> l3 = ft::sum(x3 * x3);
  l3.retain_grad();
  l3.backward({.retain_graph = true});
  l3.backward();
  check_close(x3.grad(), {4, 8}, 0, 0);
  CHECK(l3.grad().item() == 2.0);
}
