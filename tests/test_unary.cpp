// Every unary op against a reference computed in double with <cmath> on the same input
// values, on every device, one launch per statement. The ops sit in tables, one per family,
// so that a missing op is visible at a glance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.hpp"

namespace {

using ft::index_t;
using ft::test::check_close;
using ft::test::expect_launches;
using ft::test::random_tensor;
using ft::test::to_double;
using ft::test::tolerance;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// One row of an op table: the op's name, the fusedtensor expression (a generic lambda, so it
// is instantiated per input dtype), the reference in double (which also says what a NaN input
// gives), the input domain and the float tolerance.
template <class Expr, class Ref>
struct UnaryOp {
  const char* name;
  Expr expr;
  Ref ref;
  double lo, hi;
  double float_rtol;
};
template <class Expr, class Ref>
UnaryOp<Expr, Ref> unary(const char* name, Expr expr, Ref ref, double lo, double hi, double float_rtol = 1e-5) {
  return {name, expr, ref, lo, hi, float_rtol};
}

// torch.round: halfway cases go to the even neighbour. Written without rint/nearbyint so that
// it does not share the library's implementation.
double round_half_even(double v) {
  double f = std::floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

template <class Op, class T, int R>
std::vector<double> reference(const Op& op, const ft::Tensor<T, R>& x) {
  std::vector<double> r;
  for (double v : to_double(x)) r.push_back(static_cast<double>(op.ref(v)));
  return r;
}

// `y = e` into a defined tensor (a view, say): exactly one launch.
template <class T, int R, class E>
void assign_once(ft::Device dev, const ft::Tensor<T, R>& y, const E& e) {
  ft::stats::reset();
  ft::Tensor<T, R> dst = y;
  dst = e;
  expect_launches(dev, 1);
}

// `Tensor<V, R> y = e;`: `launches` launches (1, or 0 for an empty tensor).
template <class E>
auto eval_counted(ft::Device dev, const E& e, std::int64_t launches = 1) {
  ft::stats::reset();
  ft::Tensor<typename E::value_type, E::rank> y = e;
  expect_launches(dev, launches);
  return y;
}

using ft::test::assign;
using ft::test::evaluate;
using ft::test::Outcome;
using ft::test::verify;

// Runs one table row on input dtype T: contiguous inputs of each size in `sizes` (and an
// empty one, which launches nothing), a strided input view, a strided destination view and,
// for floating inputs, NaN. `Want` is the result dtype the row must have (void: not checked).
template <class T, class Want = void, class Op>
void check_op(const Op& op, ft::Device dev, std::vector<index_t> sizes = {1, 7, 1027}) {
  using V = typename decltype(op.expr(std::declval<const ft::Tensor<T, 1>&>()))::value_type;
  if constexpr (!std::is_void_v<Want>) static_assert(std::is_same_v<V, Want>, "unexpected result dtype");
  std::vector<Outcome> out;
  unsigned seed = 17;
  for (index_t n : sizes) {
    const std::string at = ", n = " + std::to_string(n);
    auto x = random_tensor<T>({n}, dev, ++seed, op.lo, op.hi);
    out.push_back(evaluate(dev, "contiguous input" + at, op.expr(x), reference(op, x)));

    // every third element of a longer tensor, starting off the 16-byte boundary
    auto x_big = random_tensor<T>({3 * n}, dev, ++seed, op.lo, op.hi);
    auto x_strided = x_big.slice(0, 2, 3 * n, 3);
    out.push_back(evaluate(dev, "strided input" + at, op.expr(x_strided), reference(op, x_strided)));

    // into every other element of a destination; the rest keeps its zeros
    auto out_big = ft::zeros<V>({2 * n + 1}, dev);
    auto dst = out_big.slice(0, 1, 2 * n + 1, 2);
    out.push_back(assign(dev, "strided destination" + at, dst, op.expr(x), reference(op, x)));
    auto rest = out_big.slice(0, 0, 2 * n + 1, 2);
    out.push_back({"elements between the strided destination's" + at, to_double(rest),
                   std::vector<double>(static_cast<std::size_t>(n + 1), 0.0), 0, 0, 0});
  }
  auto empty = ft::empty<T>({0}, dev);
  out.push_back(evaluate(dev, "empty input", op.expr(empty), {}, 0));
  if constexpr (std::is_floating_point_v<T>) {
    auto x = ft::from_vector<T>({T(kNaN), T(0.5 * (op.lo + op.hi)), T(-kNaN)}, {3}, dev);
    out.push_back(evaluate(dev, "NaN input", op.expr(x), reference(op, x)));
  }
  auto [rtol, atol] = tolerance<V>(op.float_rtol);
  verify(std::string("op ") + op.name + " on " + ft::dtype_name(ft::dtype_of<T>()) + " input", dev, out, rtol, atol);
}

template <class T, class Want = void, class Table>
void check_table(const Table& table, ft::Device dev) {
  std::apply([&](const auto&... op) { (check_op<T, Want>(op, dev), ...); }, table);
}

}  // namespace

TEST_CASE("exp, exp2, log, log2, log1p and expm1 match <cmath> in float and double") {
  // clang-format off
  const auto table = std::tuple{
      unary("exp", [](const auto& x) { return ft::exp(x); }, [](double v) { return std::exp(v); }, -10, 10),
      unary("exp2", [](const auto& x) { return ft::exp2(x); }, [](double v) { return std::exp2(v); }, -10, 10),
      unary("log", [](const auto& x) { return ft::log(x); }, [](double v) { return std::log(v); }, 0.01, 50),
      unary("log2", [](const auto& x) { return ft::log2(x); }, [](double v) { return std::log2(v); }, 0.01, 50),
      unary("log1p", [](const auto& x) { return ft::log1p(x); }, [](double v) { return std::log1p(v); }, -0.99, 10),
      unary("expm1", [](const auto& x) { return ft::expm1(x); }, [](double v) { return std::expm1(v); }, -5, 5),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float, float>(table, dev);
    check_table<double, double>(table, dev);
  }
}

TEST_CASE("neg, abs, sqrt, rsqrt, square and reciprocal match the reference in float and double") {
  // clang-format off
  const auto table = std::tuple{
      unary("neg", [](const auto& x) { return ft::neg(x); }, [](double v) { return -v; }, -5, 5),
      unary("operator-", [](const auto& x) { return -x; }, [](double v) { return -v; }, -5, 5),
      unary("abs", [](const auto& x) { return ft::abs(x); }, [](double v) { return std::fabs(v); }, -5, 5),
      unary("sqrt", [](const auto& x) { return ft::sqrt(x); }, [](double v) { return std::sqrt(v); }, 0, 100),
      unary("rsqrt", [](const auto& x) { return ft::rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }, 0.01, 100),
      unary("square", [](const auto& x) { return ft::square(x); }, [](double v) { return v * v; }, -10, 10),
      unary("reciprocal", [](const auto& x) { return ft::reciprocal(x); }, [](double v) { return 1 / v; }, -4, 4),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float, float>(table, dev);
    check_table<double, double>(table, dev);
  }
}

TEST_CASE("sin, cos, tan, tanh and erf match <cmath> in float and double") {
  // clang-format off
  const auto table = std::tuple{
      unary("sin", [](const auto& x) { return ft::sin(x); }, [](double v) { return std::sin(v); }, -7, 7),
      unary("cos", [](const auto& x) { return ft::cos(x); }, [](double v) { return std::cos(v); }, -7, 7),
      unary("tan", [](const auto& x) { return ft::tan(x); }, [](double v) { return std::tan(v); }, -1.5, 1.5, 5e-5),
      unary("tanh", [](const auto& x) { return ft::tanh(x); }, [](double v) { return std::tanh(v); }, -6, 6),
      unary("erf", [](const auto& x) { return ft::erf(x); }, [](double v) { return std::erf(v); }, -4, 4, 5e-5),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float, float>(table, dev);
    check_table<double, double>(table, dev);
  }
}

// The CPU's float sin/cos/tanh are inline polynomials (expr/math.hpp): ulp-accurate over a
// wide range, signed zeros kept, NaN (not a meaningless value) beyond |x| = 2^40.
TEST_CASE("float sin, cos and tanh on the CPU: large arguments, signed zeros, the NaN limit") {
  const std::vector<float> xs{-0.0f, 0.0f, 1e-30f, 0.3f, -0.62f, 0.63f, 3.14159265f, 1e3f, -12345.678f, 6.0e6f, 1e9f};
  auto x = ft::from_vector<float>(xs, {static_cast<index_t>(xs.size())});
  const auto s = ft::eval(ft::sin(x)).to_vector(), c = ft::eval(ft::cos(x)).to_vector(),
             t = ft::eval(ft::tanh(x)).to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CAPTURE(xs[i]);
    const double abs_tol = std::fabs(xs[i]) > 1e7f ? 2e-7 : 1e-12;  // the reduction's error at 1e9
    CHECK(std::fabs(s[i] - std::sin(double(xs[i]))) <=
          2 * std::ldexp(1.0, -24) * std::fabs(std::sin(double(xs[i]))) + abs_tol);
    CHECK(std::fabs(c[i] - std::cos(double(xs[i]))) <=
          2 * std::ldexp(1.0, -24) * std::fabs(std::cos(double(xs[i]))) + abs_tol);
    CHECK(std::fabs(t[i] - std::tanh(double(xs[i]))) <=
          2 * std::ldexp(1.0, -24) * std::fabs(std::tanh(double(xs[i]))) + 1e-12);
  }
  CHECK(std::signbit(s[0]));
  CHECK(std::signbit(t[0]));
  auto big = ft::from_vector<float>({2e12f, -3e38f}, {2});
  for (float v : ft::eval(ft::sin(big)).to_vector()) CHECK(std::isnan(v));
  for (float v : ft::eval(ft::cos(big)).to_vector()) CHECK(std::isnan(v));
}

// The CPU's float erf is an inline polynomial pair (expr/math.hpp), fitted here: within 2 ulp of
// erf in double everywhere (swept finely over the range where it is not ±1), signed zero, ±1
// at the ends, NaN kept.
TEST_CASE("float erf on the CPU: within 2 ulp over a fine sweep, signed zero, the ends and NaN") {
  std::vector<float> xs;
  for (float v = 1e-30f; v < 5.0f; v *= 1.0001f) xs.push_back(v);  // ~300k points: tiny to saturated
  for (float v = 0.90f; v < 0.95f; v += 1e-5f) xs.push_back(v);    // both sides of the switch
  const std::size_t n = xs.size();
  for (std::size_t i = 0; i < n; ++i) xs.push_back(-xs[i]);
  auto x = ft::from_vector<float>(xs, {static_cast<index_t>(xs.size())});
  const auto e = ft::eval(ft::erf(x)).to_vector();
  float worst = 0, at = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double ref = std::erf(double(xs[i]));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(ref)) - 23);
    const auto err = static_cast<float>(std::fabs(e[i] - ref) / ulp);
    if (err > worst) worst = err, at = xs[i];
  }
  CAPTURE(at);
  CHECK(worst <= 2.0f);
  const float kInf = std::numeric_limits<float>::infinity();
  auto special = ft::from_vector<float>(
      {-0.0f, 0.0f, 4.0f, -7.5f, 1e30f, -kInf, kInf, std::numeric_limits<float>::quiet_NaN()}, {8});
  const auto s = ft::eval(ft::erf(special)).to_vector();
  CHECK((s[0] == 0.0f && std::signbit(s[0])));
  CHECK((s[1] == 0.0f && !std::signbit(s[1])));
  CHECK(s[2] == 1.0f);
  CHECK(s[3] == -1.0f);
  CHECK(s[4] == 1.0f);
  CHECK(s[5] == -1.0f);
  CHECK(s[6] == 1.0f);
  CHECK(std::isnan(s[7]));
}

// The activations, with torch.nn.functional's definitions written out in double.
TEST_CASE("the activations match torch's definitions (and the compositions hardtanh … mish)") {
  const double s2pi = std::sqrt(2.0 / 3.14159265358979323846);
  // clang-format off
  const auto table = std::tuple{
      unary("sigmoid", [](const auto& x) { return ft::sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); },
            -20, 20),
      unary("relu", [](const auto& x) { return ft::relu(x); }, [](double v) { return v < 0 ? 0.0 : v; }, -3, 3),
      unary("leaky_relu (slope 0.01)", [](const auto& x) { return ft::leaky_relu(x); },
            [](double v) { return v < 0 ? 0.01 * v : v; }, -3, 3),
      unary("leaky_relu (slope 0.2)", [](const auto& x) { return ft::leaky_relu(x, 0.2); },
            [](double v) { return v < 0 ? 0.2 * v : v; }, -3, 3),
      unary("elu (alpha 1)", [](const auto& x) { return ft::elu(x); },
            [](double v) { return v > 0 ? v : std::expm1(v); }, -5, 3),
      unary("elu (alpha 1.5)", [](const auto& x) { return ft::elu(x, 1.5); },
            [](double v) { return v > 0 ? v : 1.5 * std::expm1(v); }, -5, 3),
      unary("gelu", [](const auto& x) { return ft::gelu(x); },
            [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, -6, 6, 5e-5),
      unary("gelu (approximate tanh)", [](const auto& x) { return ft::gelu(x, "tanh"); },
            [s2pi](double v) { return 0.5 * v * (1 + std::tanh(s2pi * (v + 0.044715 * v * v * v))); }, -6, 6, 5e-5),
      unary("silu", [](const auto& x) { return ft::silu(x); }, [](double v) { return v / (1 + std::exp(-v)); },
            -20, 20),
      // the default threshold 20 lies inside the domain: linear above it
      unary("softplus", [](const auto& x) { return ft::softplus(x); },
            [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); }, -30, 30),
      unary("softplus (beta 2, threshold 5)", [](const auto& x) { return ft::softplus(x, 2.0, 5.0); },
            [](double v) { return 2 * v > 5 ? v : std::log1p(std::exp(2 * v)) / 2; }, -5, 5),
      // compositions (ops/composite.hpp)
      unary("hardtanh", [](const auto& x) { return ft::hardtanh(x); },
            [](double v) { return std::clamp(v, -1.0, 1.0); }, -3, 3),
      unary("hardtanh (-0.5, 2)", [](const auto& x) { return ft::hardtanh(x, -0.5, 2.0); },
            [](double v) { return std::clamp(v, -0.5, 2.0); }, -3, 3),
      unary("relu6", [](const auto& x) { return ft::relu6(x); }, [](double v) { return std::clamp(v, 0.0, 6.0); },
            -3, 9),
      unary("hardsigmoid", [](const auto& x) { return ft::hardsigmoid(x); },
            [](double v) { return std::clamp(v + 3, 0.0, 6.0) / 6; }, -5, 5),
      unary("hardswish", [](const auto& x) { return ft::hardswish(x); },
            [](double v) { return v * std::clamp(v + 3, 0.0, 6.0) / 6; }, -5, 5),
      unary("mish", [](const auto& x) { return ft::mish(x); },
            [](double v) { return v * std::tanh(v > 20 ? v : std::log1p(std::exp(v))); }, -20, 30),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float, float>(table, dev);
    check_table<double, double>(table, dev);
  }
}

TEST_CASE("floor, ceil, round, trunc and sign match the reference in float and double") {
  // clang-format off
  const auto table = std::tuple{
      unary("floor", [](const auto& x) { return ft::floor(x); }, [](double v) { return std::floor(v); }, -10, 10),
      unary("ceil", [](const auto& x) { return ft::ceil(x); }, [](double v) { return std::ceil(v); }, -10, 10),
      unary("round", [](const auto& x) { return ft::round(x); }, [](double v) { return round_half_even(v); }, -10, 10),
      unary("trunc", [](const auto& x) { return ft::trunc(x); }, [](double v) { return std::trunc(v); }, -10, 10),
      // torch.sign(nan) is 0: (0 < x) - (x < 0)
      unary("sign", [](const auto& x) { return ft::sign(x); },
            [](double v) { return static_cast<double>((0 < v) - (v < 0)); }, -3, 3),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float, float>(table, dev);
    check_table<double, double>(table, dev);
  }
}

TEST_CASE("round rounds halfway cases to even, as torch.round") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const std::vector<double> in{0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 0.49999997, -7.5, 8388609.0, 0.0};
    const std::vector<double> want{0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 4.0, 0.0, -8.0, 8388609.0, 0.0};
    std::vector<float> fin(in.begin(), in.end());
    auto xf = ft::from_vector<float>(fin, {static_cast<index_t>(fin.size())}, dev);
    auto xd = ft::from_vector<double>(in, {static_cast<index_t>(in.size())}, dev);
    auto yf = to_double(eval_counted(dev, ft::round(xf)));
    auto yd = to_double(eval_counted(dev, ft::round(xd)));
    check_close(yf, want, 0, 0);
    check_close(yd, want, 0, 0);
    CHECK(std::signbit(yf[3]));  // -0.5 rounds to -0, as torch
    CHECK(std::signbit(yd[3]));
    // 2^52 + 1 is an integer in double: unchanged
    auto big = ft::from_vector<double>({4503599627370497.0, -4503599627370497.0}, {2}, dev);
    check_close(eval_counted(dev, ft::round(big)), {4503599627370497.0, -4503599627370497.0}, 0, 0);
  }
}

TEST_CASE("sign of a signed zero is 0 and of an infinity is 1 or -1") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::from_vector<float>({-2.5f, -0.0f, 0.0f, 1e-30f, -1e-30f, float(kInf), float(-kInf)}, {7}, dev);
    check_close(eval_counted(dev, ft::sign(x)), {-1, 0, 0, 1, -1, 1, -1}, 0, 0);
  }
}

TEST_CASE("clamp limits each element to [min, max] and passes NaN through") {
  // clang-format off
  const auto table = std::tuple{
      unary("clamp(-0.5, 0.5)", [](const auto& x) { return ft::clamp(x, -0.5, 0.5); },
            [](double v) { return v < -0.5 ? -0.5 : (v > 0.5 ? 0.5 : v); }, -2, 2),
      unary("clamp(0, inf)", [](const auto& x) { return ft::clamp(x, 0.0, kInf); },
            [](double v) { return v < 0 ? 0.0 : v; }, -2, 2),
      unary("clamp(1, 1)", [](const auto& x) { return ft::clamp(x, 1.0, 1.0); },
            [](double v) { return std::isnan(v) ? v : 1.0; }, -2, 2),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float, float>(table, dev);
    check_table<double, double>(table, dev);
    // integer tensors with integer bounds stay integral
    auto xi = random_tensor<std::int32_t>({100}, dev, 3, -20, 20);
    auto yi = eval_counted(dev, ft::clamp(xi, -5, 7));
    static_assert(std::is_same_v<decltype(yi)::value_type, std::int32_t>);
    std::vector<double> want;
    for (double v : to_double(xi)) want.push_back(v < -5 ? -5 : (v > 7 ? 7 : v));
    check_close(yi, want, 0, 0);
  }
}

// torch.clamp: "If min is greater than max, sets all elements in input to the value of max."
TEST_CASE("clamp with min greater than max sets every element to max, as torch.clamp") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({9}, dev, 5);
    ft::Tensor<float, 1> y;
    try {
      y = ft::clamp(x, 1.0, -1.0);
    } catch (const ft::Error& e) {
      FAIL_CHECK("clamp(x, 1, -1) threw: " << std::string(e.what()));
      continue;
    }
    check_close(y, std::vector<double>(9, -1.0), 0, 0);
  }
}

// torch.clamp promotes with its bounds: clamp(int tensor, 0.5, 2.5) is a float tensor.
TEST_CASE("clamp of an integer tensor with fractional bounds gives float values, as torch.clamp") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::from_vector<std::int32_t>({0, 1, 2, 3, 4, 5}, {6}, dev);
    auto y = eval_counted(dev, ft::clamp(x, 0.5, 2.5));
    CHECK(std::is_floating_point_v<decltype(y)::value_type>);
    check_close(y, {0.5, 1.0, 2.0, 2.5, 2.5, 2.5}, 0, 0);
  }
}

TEST_CASE("logical_not is true exactly where the input is zero, for every input dtype") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto check_not = [&](const auto& x) {
      auto y = eval_counted(dev, ft::logical_not(x));
      auto y_op = eval_counted(dev, !x);
      static_assert(std::is_same_v<typename decltype(y)::value_type, bool>);
      static_assert(std::is_same_v<typename decltype(y_op)::value_type, bool>);
      std::vector<double> want;
      for (double v : to_double(x)) want.push_back(v == 0 ? 1.0 : 0.0);  // NaN is true, so not NaN is false
      check_close(y, want, 0, 0);
      check_close(y_op, want, 0, 0);
    };
    check_not(ft::from_vector<float>({0.0f, -0.0f, 1.5f, -3.0f, float(kNaN), float(kInf), 1e-40f}, {7}, dev));
    check_not(ft::from_vector<double>({0.0, -0.0, 1.5, -3.0, kNaN, -kInf, 1e-310}, {7}, dev));
    check_not(random_tensor<std::int32_t>({1000}, dev, 7, -2, 2));
    check_not(random_tensor<std::int64_t>({7}, dev, 8, -2, 2));
    check_not(random_tensor<std::uint8_t>({7}, dev, 9, 0, 3));
    check_not(random_tensor<bool>({1000}, dev, 10));
  }
}

// PyTorch computes exp, log, sqrt ... of an integral tensor in float32.
TEST_CASE("floating ops on integer tensors are computed in float") {
  // One row per code path: the ops written with FT_FLOAT_UNARY share their promotion, so a
  // few of them stand for the rest; gelu, leaky_relu, elu and softplus each have their own.
  // clang-format off
  const auto table = std::tuple{
      unary("exp", [](const auto& x) { return ft::exp(x); }, [](double v) { return std::exp(v); }, -10, 10),
      unary("log", [](const auto& x) { return ft::log(x); }, [](double v) { return std::log(v); }, 1, 1000),
      unary("sqrt", [](const auto& x) { return ft::sqrt(x); }, [](double v) { return std::sqrt(v); }, 0, 1000),
      unary("rsqrt", [](const auto& x) { return ft::rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }, 1, 1000),
      unary("reciprocal", [](const auto& x) { return ft::reciprocal(x); }, [](double v) { return 1 / v; }, 1, 50),
      unary("sin", [](const auto& x) { return ft::sin(x); }, [](double v) { return std::sin(v); }, -50, 50),
      unary("tanh", [](const auto& x) { return ft::tanh(x); }, [](double v) { return std::tanh(v); }, -5, 5),
      unary("sigmoid", [](const auto& x) { return ft::sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); },
            -20, 20),
      unary("erf", [](const auto& x) { return ft::erf(x); }, [](double v) { return std::erf(v); }, -4, 4),
      unary("gelu", [](const auto& x) { return ft::gelu(x); },
            [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, -6, 6, 5e-5),
      unary("leaky_relu", [](const auto& x) { return ft::leaky_relu(x, 0.2); },
            [](double v) { return v < 0 ? 0.2 * v : v; }, -5, 5),
      unary("elu", [](const auto& x) { return ft::elu(x); }, [](double v) { return v > 0 ? v : std::expm1(v); }, -5, 5),
      unary("softplus", [](const auto& x) { return ft::softplus(x); },
            [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); }, -30, 30),
  };
  // the other integral dtypes
  const auto others = std::tuple{
      unary("exp", [](const auto& x) { return ft::exp(x); }, [](double v) { return std::exp(v); }, 0, 10),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<std::int32_t, float>(table, dev);
    check_table<std::int64_t, float>(others, dev);
    check_table<std::uint8_t, float>(others, dev);
    check_table<bool, float>(others, dev);
  }
}

TEST_CASE("neg, abs, square, sign, relu, clamp and rounding keep an integer tensor's dtype") {
  // clang-format off
  const auto table = std::tuple{
      unary("neg", [](const auto& x) { return ft::neg(x); }, [](double v) { return -v; }, -1000, 1000),
      unary("abs", [](const auto& x) { return ft::abs(x); }, [](double v) { return std::fabs(v); }, -1000, 1000),
      unary("square", [](const auto& x) { return ft::square(x); }, [](double v) { return v * v; }, -1000, 1000),
      unary("sign", [](const auto& x) { return ft::sign(x); },
            [](double v) { return static_cast<double>((0 < v) - (v < 0)); }, -3, 3),
      unary("relu", [](const auto& x) { return ft::relu(x); }, [](double v) { return v < 0 ? 0.0 : v; }, -3, 3),
      unary("floor", [](const auto& x) { return ft::floor(x); }, [](double v) { return v; }, -1000, 1000),
      unary("ceil", [](const auto& x) { return ft::ceil(x); }, [](double v) { return v; }, -1000, 1000),
      unary("round", [](const auto& x) { return ft::round(x); }, [](double v) { return v; }, -1000, 1000),
      unary("trunc", [](const auto& x) { return ft::trunc(x); }, [](double v) { return v; }, -1000, 1000),
  };
  // int64: the ops whose code differs by sign or width
  const auto wide = std::tuple{
      unary("neg", [](const auto& x) { return ft::neg(x); }, [](double v) { return -v; }, -3e12, 3e12),
      unary("abs", [](const auto& x) { return ft::abs(x); }, [](double v) { return std::fabs(v); }, -3e12, 3e12),
      unary("sign", [](const auto& x) { return ft::sign(x); },
            [](double v) { return static_cast<double>((0 < v) - (v < 0)); }, -3, 3),
      unary("round", [](const auto& x) { return ft::round(x); }, [](double v) { return v; }, -3e12, 3e12),
  };
  // unsigned bytes: no negative values, square within 255
  const auto bytes = std::tuple{
      unary("abs", [](const auto& x) { return ft::abs(x); }, [](double v) { return v; }, 0, 256),
      unary("square", [](const auto& x) { return ft::square(x); }, [](double v) { return v * v; }, 0, 16),
      unary("sign", [](const auto& x) { return ft::sign(x); }, [](double v) { return v > 0 ? 1.0 : 0.0; }, 0, 3),
      unary("relu", [](const auto& x) { return ft::relu(x); }, [](double v) { return v; }, 0, 256),
      unary("clamp(3, 200)", [](const auto& x) { return ft::clamp(x, 3, 200); },
            [](double v) { return v < 3 ? 3 : (v > 200 ? 200 : v); }, 0, 256),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<std::int32_t, std::int32_t>(table, dev);
    check_table<std::int64_t, std::int64_t>(wide, dev);
    check_table<std::uint8_t, std::uint8_t>(bytes, dev);
  }
}

namespace {

// A value of type From that converts to To without leaving To's range: to an unsigned byte
// only [0, 256); otherwise [-100, 100). Element 0 is 0 and element 1 is 1 (bool edge cases).
template <class From, class To>
std::vector<From> cast_inputs(index_t n, unsigned seed) {
  std::mt19937 gen(seed);
  double lo = std::is_unsigned_v<To> || std::is_unsigned_v<From> ? 0 : -100;
  double hi = std::is_same_v<From, std::uint8_t> || std::is_same_v<To, std::uint8_t> ? 255.9 : 100;
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<From> v;
  for (index_t i = 0; i < n; ++i) {
    double d = i == 0 ? 0.0 : (i == 1 ? 1.0 : dist(gen));
    if constexpr (std::is_same_v<From, bool>)
      v.push_back(i == 1 || (i > 1 && d > 0.5 * (lo + hi)));
    else if constexpr (std::is_floating_point_v<From>)
      v.push_back(static_cast<From>(d));
    else
      v.push_back(static_cast<From>(std::floor(d)));
  }
  return v;
}

// What torch's .to(dtype) gives for an in-range value: rounding to float, truncation toward
// zero to an integer, != 0 to bool.
template <class To>
double cast_reference(double v) {
  if constexpr (std::is_same_v<To, bool>)
    return v != 0 ? 1.0 : 0.0;
  else if constexpr (std::is_same_v<To, float>)
    return static_cast<double>(static_cast<float>(v));
  else if constexpr (std::is_same_v<To, double>)
    return v;
  else
    return std::trunc(v);
}

template <class From, class To>
void check_cast(ft::Device dev) {
  auto host = cast_inputs<From, To>(1031, 77);
  auto x = ft::from_vector<From>(host, {1031}, dev);
  static_assert(std::is_same_v<typename decltype(ft::cast<To>(x))::value_type, To>);
  std::vector<double> want, want_strided;
  for (From v : host) want.push_back(cast_reference<To>(static_cast<double>(v)));
  for (std::size_t i = 1; i < host.size(); i += 2) want_strided.push_back(want[i]);
  std::vector<Outcome> out;
  out.push_back(evaluate(dev, "contiguous", ft::cast<To>(x), want));
  out.push_back(evaluate(dev, "strided", ft::cast<To>(x.slice(0, 1, 1031, 2)), want_strided));
  verify(std::string("cast from ") + ft::dtype_name(ft::dtype_of<From>()) + " to " + ft::dtype_name(ft::dtype_of<To>()),
         dev, out, 0, 0);
}

template <class From>
void check_casts_from(ft::Device dev) {
  check_cast<From, float>(dev);
  check_cast<From, double>(dev);
  check_cast<From, std::int32_t>(dev);
  check_cast<From, std::int64_t>(dev);
  check_cast<From, std::uint8_t>(dev);
  check_cast<From, bool>(dev);
}

}  // namespace

TEST_CASE("cast<U> converts between every pair of float, double, int32, int64, uint8 and bool") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_casts_from<float>(dev);
    check_casts_from<double>(dev);
    check_casts_from<std::int32_t>(dev);
    check_casts_from<std::int64_t>(dev);
    check_casts_from<std::uint8_t>(dev);
    check_casts_from<bool>(dev);
  }
}

TEST_CASE("cast to an integer truncates toward zero and cast to bool is true for NaN") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::from_vector<float>({-2.9f, -0.5f, 0.5f, 2.9f, -0.0f}, {5}, dev);
    check_close(eval_counted(dev, ft::cast<std::int32_t>(x)), {-2, 0, 0, 2, 0}, 0, 0);
    check_close(eval_counted(dev, ft::cast<std::int64_t>(x)), {-2, 0, 0, 2, 0}, 0, 0);
    auto b = ft::from_vector<double>({kNaN, 0.0, -0.0, 1e-300, -kInf}, {5}, dev);
    check_close(eval_counted(dev, ft::cast<bool>(b)), {1, 0, 0, 1, 1}, 0, 0);
    // int64 beyond float's 24-bit mantissa rounds to nearest
    auto big = ft::from_vector<std::int64_t>({16777217, (std::int64_t(1) << 40) + 1}, {2}, dev);
    check_close(eval_counted(dev, ft::cast<double>(big)), {16777217.0, 1099511627777.0}, 0, 0);
    check_close(eval_counted(dev, ft::cast<float>(big)), {16777216.0, 1099511627776.0}, 0, 0);
  }
}

// Past the 32768-element grain the CPU loop runs in parallel; on a GPU, many blocks.
TEST_CASE("unary ops on 1000003 elements, contiguous and strided, match the reference") {
  // clang-format off
  const auto table = std::tuple{
      unary("exp", [](const auto& x) { return ft::exp(x); }, [](double v) { return std::exp(v); }, -10, 10),
      unary("relu", [](const auto& x) { return ft::relu(x); }, [](double v) { return v < 0 ? 0.0 : v; }, -3, 3),
      unary("sigmoid", [](const auto& x) { return ft::sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); },
            -20, 20),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    std::apply([&](const auto&... op) { (check_op<float, float>(op, dev, {1000003}), ...); }, table);
    std::apply([&](const auto&... op) { (check_op<double, double>(op, dev, {1000003}), ...); }, table);
  }
}

TEST_CASE("unary ops read transposed and sliced inputs and write into transposed destinations") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto run = [&](auto tag) {
      using T = decltype(tag);
      auto x = random_tensor<T>({5, 9}, dev, 31, -3, 3);
      auto xt = x.transpose(0, 1);  // [9, 5], strides (1, 9)
      auto ref = [&](const auto& view, auto f) {
        std::vector<double> r;
        for (double v : to_double(view)) r.push_back(f(v));
        return r;
      };
      auto expd = [](double v) { return std::exp(v); };
      auto absd = [](double v) { return std::fabs(v); };
      check_close(eval_counted(dev, ft::exp(xt)), ref(xt, expd), 1e-6);
      check_close(eval_counted(dev, ft::abs(xt)), ref(xt, absd), 0, 0);
      auto xs = x.slice(1, 1, 9, 3);  // [5, 3], columns 1, 4, 7
      check_close(eval_counted(dev, ft::exp(xs)), ref(xs, expd), 1e-6);
      auto xts = xt.slice(0, 0, 9, 2).slice(1, 1, 5, 2);  // [5, 2] of the transpose
      check_close(eval_counted(dev, ft::abs(xts)), ref(xts, absd), 0, 0);

      // destination: the transpose of a contiguous [5, 9] tensor
      auto out = ft::zeros<T>({5, 9}, dev);
      auto out_t = out.transpose(0, 1);
      auto src = random_tensor<T>({9, 5}, dev, 32, -3, 3);
      assign_once(dev, out_t, ft::exp(src));
      check_close(out_t, ref(src, expd), 1e-6);
      // a transposed input into a transposed destination
      assign_once(dev, out_t, ft::abs(xt));
      check_close(out, ref(x, absd), 0, 0);
    };
    run(float{});
    run(double{});
  }
}

TEST_CASE("an expression of unary ops is one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({1000}, dev, 41, 0.1, 3);
    auto y = eval_counted(dev, ft::sqrt(ft::exp(ft::neg(ft::log(x)))));
    std::vector<double> want;
    for (double v : to_double(x)) want.push_back(std::sqrt(std::exp(-std::log(v))));
    check_close(y, want, 1e-5);
    // in place: x = f(x) reads and writes the same elements
    auto before = to_double(x);
    assign_once(dev, x, ft::square(x));
    std::vector<double> sq;
    for (double v : before) sq.push_back(v * v);
    check_close(x, sq, 1e-6);
  }
}

TEST_CASE("gelu rejects an unknown approximate argument with ft::Error") {
  auto x = random_tensor<float>({4}, ft::kCPU, 1);
  CHECK_THROWS_AS(ft::gelu(x, "erf"), ft::Error);
  CHECK_NOTHROW(ft::gelu(x, "none"));
  CHECK_NOTHROW(ft::gelu(x, "tanh"));
}

// lerp, addcmul, addcdiv, logaddexp (ops/composite.hpp): torch's definitions in double, one
// launch each, and torch's edge cases.
TEST_CASE("lerp, addcmul, addcdiv and logaddexp match torch's definitions in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({7, 33}, dev, 31, -3, 3);
    auto b = ft::test::random_tensor<float>({7, 33}, dev, 32, -3, 3);
    auto w = ft::test::random_tensor<float>({33}, dev, 33, -0.5, 1.5);
    auto d = ft::test::random_tensor<float>({7, 1}, dev, 34, 0.5, 2);
    const auto av = to_double(a), bv = to_double(b), wv = to_double(w), dv = to_double(d);
    std::vector<double> lerp_t(av.size()), lerp_s(av.size()), cmul(av.size()), cdiv(av.size()), lae(av.size());
    for (std::size_t i = 0; i < av.size(); ++i) {
      const double x = av[i], y = bv[i], t = wv[i % 33], z = dv[i / 33];
      lerp_t[i] = t < 0.5 ? x + t * (y - x) : y - (y - x) * (1 - t);
      lerp_s[i] = y - (y - x) * (1 - 0.75);
      cmul[i] = x + 0.5 * y * z;
      cdiv[i] = x - 2.0 * y / z;
      lae[i] = std::max(x, y) + std::log1p(std::exp(-std::fabs(x - y)));
    }
    ft::Tensor<float, 2> out;
    CHECK(ft::test::launches_of(dev, [&] { out = ft::lerp(a, b, w); }) == 1);
    check_close(out, lerp_t, 1e-5, 1e-6);
    check_close(ft::eval(ft::lerp(a, b, 0.75)), lerp_s, 1e-5, 1e-6);
    CHECK(ft::test::launches_of(dev, [&] { out = ft::addcmul(a, b, d, 0.5); }) == 1);
    check_close(out, cmul, 1e-5, 1e-6);
    check_close(ft::eval(ft::addcdiv(a, b, d, -2.0)), cdiv, 1e-5, 1e-6);
    CHECK(ft::test::launches_of(dev, [&] { out = ft::logaddexp(a, b); }) == 1);
    check_close(out, lae, 1e-5, 1e-6);
    // torch: logaddexp of equal infinities is that infinity; lerp at weight 1 is end exactly
    const float inf = std::numeric_limits<float>::infinity();
    auto e = ft::from_vector<float>({inf, -inf, inf, 1e30f}, {4}, dev);
    auto f = ft::from_vector<float>({inf, -inf, -inf, 1e30f}, {4}, dev);
    const auto l = ft::eval(ft::logaddexp(e, f)).to_vector();
    CHECK(l[0] == inf);
    CHECK(l[1] == -inf);
    CHECK(l[2] == inf);
    CHECK(l[3] == doctest::Approx(1e30f));
    CHECK(ft::eval(ft::lerp(a, b, 1.0)).to_vector() == b.to_vector());
  }
  CHECK_THROWS_AS(ft::hardtanh(ft::zeros<float>({2}), 1.0, -1.0), ft::Error);
}
