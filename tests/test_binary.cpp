// Binary ops, scalars, type promotion, where() and compound assignment against references
// computed in double, on every device, one launch per statement. The ops sit in tables, one
// per family, so that a missing op is visible at a glance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
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
using ft::test::to_double;
using ft::test::tolerance;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInff = std::numeric_limits<float>::infinity();

// Where an operand's values come from: uniform in [lo, hi), rounded down to a multiple of
// `grid` when it is nonzero (so that comparisons meet ties), and pushed away from zero to at
// least `min_abs` (divisors). Integer dtypes take the floor; bool is true above the middle.
struct Domain {
  double lo = -2, hi = 2, grid = 0, min_abs = 0;
};

template <class T>
std::vector<T> host_values(index_t n, unsigned seed, Domain d) {
  if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>) d.lo = std::max(d.lo, 0.0);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(d.lo, d.hi);
  std::vector<T> v;
  for (index_t i = 0; i < n; ++i) {
    double x = dist(gen);
    if (d.grid > 0) x = std::floor(x / d.grid) * d.grid;
    if (std::is_integral_v<T>) x = std::floor(x);
    if (std::fabs(x) < d.min_abs) x = x < 0 ? -d.min_abs - std::fabs(x) : d.min_abs + std::fabs(x);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)  // in range: the conversion is defined
      x = std::clamp(x, double(std::numeric_limits<T>::lowest()), double(std::numeric_limits<T>::max()));
    if constexpr (std::is_same_v<T, bool>)
      v.push_back(x > 0.5 * (d.lo + d.hi));
    else
      v.push_back(static_cast<T>(std::is_integral_v<T> ? std::floor(x) : x));
  }
  return v;
}

template <class T, std::size_t R>
ft::Tensor<T, static_cast<int>(R)> make(const index_t (&shape)[R], ft::Device dev, unsigned seed, Domain d = {}) {
  index_t n = 1;
  for (index_t s : shape) n *= s;
  return ft::from_vector<T>(host_values<T>(n, seed, d), shape, dev);
}

// Marks a row whose result dtype is the table's (by default the input dtype).
struct TableDtype {};

// One row of an op table: name, fusedtensor expression (a generic lambda of two tensors;
// rows with a scalar ignore the second), reference in double, operand domains and the
// result dtype the row must have.
template <class Want, class Expr, class Ref>
struct BinaryOp {
  using want = Want;
  const char* name;
  Expr expr;
  Ref ref;
  Domain a, b;
};
template <class Want = TableDtype, class Expr, class Ref>
BinaryOp<Want, Expr, Ref> binary(const char* name, Expr expr, Ref ref, Domain a = {}, Domain b = {}) {
  return {name, expr, ref, a, b};
}

// `Tensor<V, R> y = e;`: `launches` launches (1, or 0 for an empty tensor).
template <class E>
auto eval_counted(ft::Device dev, const E& e, std::int64_t launches = 1) {
  ft::stats::reset();
  ft::Tensor<typename E::value_type, E::rank> y = e;
  expect_launches(dev, launches);
  return y;
}

// Runs `f` (one statement): exactly one launch.
template <class F>
void once(ft::Device dev, F&& f) {
  ft::stats::reset();
  f();
  expect_launches(dev, 1);
}

template <class Ref, class A, class B>
std::vector<double> reference(const Ref& ref, const A& a, const B& b) {
  auto x = to_double(a), y = to_double(b);
  std::vector<double> r;
  for (std::size_t i = 0; i < x.size(); ++i) r.push_back(static_cast<double>(ref(x[i], y[i])));
  return r;
}

using ft::test::assign;
using ft::test::evaluate;
using ft::test::Outcome;
using ft::test::verify;

// Runs one row on operand dtypes TA and TB: contiguous operands of sizes 1, 7 and 1027,
// strided operand views, a strided destination view, empty operands (no launch) and, for
// floating operands, NaN in either position.
template <class TA, class TB, class TableWant, class Op>
void check_row(const Op& op, ft::Device dev) {
  using V = typename decltype(op.expr(std::declval<const ft::Tensor<TA, 1>&>(),
                                      std::declval<const ft::Tensor<TB, 1>&>()))::value_type;
  using Want = std::conditional_t<std::is_same_v<typename Op::want, TableDtype>, TableWant, typename Op::want>;
  static_assert(std::is_same_v<V, Want>, "unexpected result dtype");
  std::vector<Outcome> out;
  unsigned seed = 100;
  for (index_t n : {1, 7, 1027}) {
    const std::string at = ", n = " + std::to_string(n);
    auto a = make<TA>({n}, dev, ++seed, op.a);
    auto b = make<TB>({n}, dev, ++seed, op.b);
    out.push_back(evaluate(dev, "contiguous operands" + at, op.expr(a, b), reference(op.ref, a, b)));

    auto a_big = make<TA>({2 * n}, dev, ++seed, op.a);
    auto b_big = make<TB>({3 * n}, dev, ++seed, op.b);
    auto a_s = a_big.slice(0, 1, 2 * n, 2);
    auto b_s = b_big.slice(0, 0, 3 * n, 3);
    out.push_back(evaluate(dev, "strided operands" + at, op.expr(a_s, b_s), reference(op.ref, a_s, b_s)));
    out.push_back(evaluate(dev, "contiguous and strided" + at, op.expr(a, b_s), reference(op.ref, a, b_s)));

    auto out_big = ft::zeros<V>({2 * n + 1}, dev);
    auto dst = out_big.slice(0, 1, 2 * n + 1, 2);
    out.push_back(assign(dev, "strided destination" + at, dst, op.expr(a, b), reference(op.ref, a, b)));
    auto rest = out_big.slice(0, 0, 2 * n + 1, 2);
    out.push_back({"elements between the strided destination's" + at, to_double(rest),
                   std::vector<double>(static_cast<std::size_t>(n + 1), 0.0), 0, 0, 0});
  }
  auto ea = ft::empty<TA>({0}, dev);
  auto eb = ft::empty<TB>({0}, dev);
  out.push_back(evaluate(dev, "empty operands", op.expr(ea, eb), {}, 0));
  if constexpr (std::is_floating_point_v<TA> && std::is_floating_point_v<TB>) {
    auto a = ft::from_vector<TA>({TA(kNaN), TA(1.5), TA(kNaN), TA(-kNaN)}, {4}, dev);
    auto b = ft::from_vector<TB>({TB(1.25), TB(kNaN), TB(kNaN), TB(-2)}, {4}, dev);
    out.push_back(evaluate(dev, "NaN operands", op.expr(a, b), reference(op.ref, a, b)));
  }
  auto [rtol, atol] = tolerance<V>();
  verify(std::string("op ") + op.name + " on " + ft::dtype_name(ft::dtype_of<TA>()) + " and " +
             ft::dtype_name(ft::dtype_of<TB>()),
         dev, out, rtol, atol);
}

template <class TA, class TB = TA, class Want = std::common_type_t<TA, TB>, class Table>
void check_table(const Table& table, ft::Device dev) {
  std::apply([&](const auto&... op) { (check_row<TA, TB, Want>(op, dev), ...); }, table);
}

// Reference semantics, written out in double.
double py_remainder(double a, double b) {  // Python's %, torch.remainder: the sign of the divisor
  double r = std::fmod(a, b);
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
double nan_max(double a, double b) { return std::isnan(a) || std::isnan(b) ? kNaN : (a > b ? a : b); }
double nan_min(double a, double b) { return std::isnan(a) || std::isnan(b) ? kNaN : (a < b ? a : b); }
double truth(double v) { return v != 0 ? 1.0 : 0.0; }  // NaN is true, as in C++ and torch

constexpr Domain kNonzero{-4, 4, 0, 0.25};
constexpr Domain kTies{-3, 3, 0.5, 0};  // multiples of 0.5: many equal pairs
constexpr Domain kSmallInts{-10, 10, 0, 0};
constexpr Domain kNonzeroInts{-6, 6, 0, 1};

}  // namespace

TEST_CASE("+ - * / and add, sub, mul, div match the reference in float and double") {
  // clang-format off
  const auto table = std::tuple{
      binary("a + b", [](const auto& a, const auto& b) { return a + b; }, [](double a, double b) { return a + b; }),
      binary("a - b", [](const auto& a, const auto& b) { return a - b; }, [](double a, double b) { return a - b; }),
      binary("a * b", [](const auto& a, const auto& b) { return a * b; }, [](double a, double b) { return a * b; }),
      binary("a / b", [](const auto& a, const auto& b) { return a / b; }, [](double a, double b) { return a / b; },
             Domain{}, kNonzero),
      binary("add", [](const auto& a, const auto& b) { return ft::add(a, b); },
             [](double a, double b) { return a + b; }),
      binary("sub", [](const auto& a, const auto& b) { return ft::sub(a, b); },
             [](double a, double b) { return a - b; }),
      binary("mul", [](const auto& a, const auto& b) { return ft::mul(a, b); },
             [](double a, double b) { return a * b; }),
      binary("div", [](const auto& a, const auto& b) { return ft::div(a, b); },
             [](double a, double b) { return a / b; }, Domain{}, kNonzero),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float>(table, dev);
    check_table<double>(table, dev);
  }
}

TEST_CASE("maximum, minimum, pow, atan2, fmod and remainder match <cmath> in float and double") {
  // clang-format off
  const auto table = std::tuple{
      binary("maximum", [](const auto& a, const auto& b) { return ft::maximum(a, b); }, nan_max, kTies, kTies),
      binary("minimum", [](const auto& a, const auto& b) { return ft::minimum(a, b); }, nan_min, kTies, kTies),
      binary("pow", [](const auto& a, const auto& b) { return ft::pow(a, b); },
             [](double a, double b) { return std::pow(a, b); }, Domain{0.05, 4}, Domain{-3, 3}),
      binary("atan2", [](const auto& a, const auto& b) { return ft::atan2(a, b); },
             [](double a, double b) { return std::atan2(a, b); }),
      binary("fmod", [](const auto& a, const auto& b) { return ft::fmod(a, b); },
             [](double a, double b) { return std::fmod(a, b); }, Domain{-10, 10}, kNonzero),
      binary("remainder", [](const auto& a, const auto& b) { return ft::remainder(a, b); }, py_remainder,
             Domain{-10, 10}, kNonzero),
      binary("a % b", [](const auto& a, const auto& b) { return a % b; }, py_remainder, Domain{-10, 10}, kNonzero),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float>(table, dev);
    check_table<double>(table, dev);
  }
}

TEST_CASE("comparisons return bool tensors, false against NaN except !=") {
  // clang-format off
  const auto operators = std::tuple{
      binary<bool>("a == b", [](const auto& a, const auto& b) { return a == b; },
                   [](double a, double b) { return a == b; }, kTies, kTies),
      binary<bool>("a != b", [](const auto& a, const auto& b) { return a != b; },
                   [](double a, double b) { return a != b; }, kTies, kTies),
      binary<bool>("a < b", [](const auto& a, const auto& b) { return a < b; },
                   [](double a, double b) { return a < b; }, kTies, kTies),
      binary<bool>("a <= b", [](const auto& a, const auto& b) { return a <= b; },
                   [](double a, double b) { return a <= b; }, kTies, kTies),
      binary<bool>("a > b", [](const auto& a, const auto& b) { return a > b; },
                   [](double a, double b) { return a > b; }, kTies, kTies),
      binary<bool>("a >= b", [](const auto& a, const auto& b) { return a >= b; },
                   [](double a, double b) { return a >= b; }, kTies, kTies),
  };
  const auto functions = std::tuple{
      binary<bool>("eq", [](const auto& a, const auto& b) { return ft::eq(a, b); },
                   [](double a, double b) { return a == b; }, kTies, kTies),
      binary<bool>("ne", [](const auto& a, const auto& b) { return ft::ne(a, b); },
                   [](double a, double b) { return a != b; }, kTies, kTies),
      binary<bool>("lt", [](const auto& a, const auto& b) { return ft::lt(a, b); },
                   [](double a, double b) { return a < b; }, kTies, kTies),
      binary<bool>("le", [](const auto& a, const auto& b) { return ft::le(a, b); },
                   [](double a, double b) { return a <= b; }, kTies, kTies),
      binary<bool>("gt", [](const auto& a, const auto& b) { return ft::gt(a, b); },
                   [](double a, double b) { return a > b; }, kTies, kTies),
      binary<bool>("ge", [](const auto& a, const auto& b) { return ft::ge(a, b); },
                   [](double a, double b) { return a >= b; }, kTies, kTies),
  };
  // mixed dtypes are compared in the promoted type: int64 values beyond int32, uint8 without wrap-around
  const auto mixed = std::tuple{
      binary<bool>("a < b", [](const auto& a, const auto& b) { return a < b; },
                   [](double a, double b) { return a < b; }, Domain{-3e9, 3e9, 1e9}, kTies),
      binary<bool>("a == b", [](const auto& a, const auto& b) { return a == b; },
                   [](double a, double b) { return a == b; }, kTies, kTies),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float>(operators, dev);
    check_table<double>(operators, dev);
    check_table<std::int32_t>(operators, dev);
    check_table<float>(functions, dev);
    check_table<std::int64_t, std::int32_t>(mixed, dev);
    check_table<std::uint8_t, std::int32_t>(mixed, dev);
    check_table<float, std::int32_t>(mixed, dev);
  }
}

TEST_CASE("logical_and and logical_or treat nonzero (and NaN) as true and return bool") {
  const Domain with_zeros{-2, 2, 1, 0};
  // clang-format off
  const auto table = std::tuple{
      binary<bool>("logical_and", [](const auto& a, const auto& b) { return ft::logical_and(a, b); },
                   [](double a, double b) { return truth(a) * truth(b); }, with_zeros, with_zeros),
      binary<bool>("logical_or", [](const auto& a, const auto& b) { return ft::logical_or(a, b); },
                   [](double a, double b) { return truth(truth(a) + truth(b)); }, with_zeros, with_zeros),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float>(table, dev);
    check_table<bool>(table, dev);
    check_table<std::int32_t, bool>(table, dev);
  }
}

TEST_CASE("integer +, -, *, maximum, minimum, fmod, remainder and pow stay integral and exact") {
  // clang-format off
  const auto table = std::tuple{
      binary("a + b", [](const auto& a, const auto& b) { return a + b; }, [](double a, double b) { return a + b; },
             Domain{-1e6, 1e6}, Domain{-1e6, 1e6}),
      binary("a - b", [](const auto& a, const auto& b) { return a - b; }, [](double a, double b) { return a - b; },
             Domain{-1e6, 1e6}, Domain{-1e6, 1e6}),
      binary("a * b", [](const auto& a, const auto& b) { return a * b; }, [](double a, double b) { return a * b; },
             Domain{-3e4, 3e4}, Domain{-3e4, 3e4}),
      binary("maximum", [](const auto& a, const auto& b) { return ft::maximum(a, b); }, nan_max, kSmallInts,
             kSmallInts),
      binary("minimum", [](const auto& a, const auto& b) { return ft::minimum(a, b); }, nan_min, kSmallInts,
             kSmallInts),
      binary("fmod", [](const auto& a, const auto& b) { return ft::fmod(a, b); },
             [](double a, double b) { return std::fmod(a, b); }, Domain{-100, 100}, kNonzeroInts),
      binary("remainder", [](const auto& a, const auto& b) { return ft::remainder(a, b); }, py_remainder,
             Domain{-100, 100}, kNonzeroInts),
      binary("a % b", [](const auto& a, const auto& b) { return a % b; }, py_remainder, Domain{-100, 100},
             kNonzeroInts),
      binary("pow", [](const auto& a, const auto& b) { return ft::pow(a, b); },
             [](double a, double b) { return std::pow(a, b); }, Domain{-6, 7}, Domain{0, 8}),
  };
  // int64: the same code at another width; values beyond int32's range
  const auto wide = std::tuple{
      binary("a * b", [](const auto& a, const auto& b) { return a * b; }, [](double a, double b) { return a * b; },
             Domain{-3e6, 3e6}, Domain{-3e6, 3e6}),
      binary("a % b", [](const auto& a, const auto& b) { return a % b; }, py_remainder, Domain{-1e12, 1e12},
             Domain{-1e10, 1e10, 0, 1}),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<std::int32_t>(table, dev);
    check_table<std::int64_t>(wide, dev);
  }
}

// torch.div is true division: integer operands give a float result.
TEST_CASE("dividing integer tensors gives float, as torch.div") {
  // clang-format off
  const auto table = std::tuple{
      binary<float>("a / b", [](const auto& a, const auto& b) { return a / b; },
                    [](double a, double b) { return a / b; }, kSmallInts, kNonzeroInts),
      binary<float>("div", [](const auto& a, const auto& b) { return ft::div(a, b); },
                    [](double a, double b) { return a / b; }, kSmallInts, kNonzeroInts),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<std::int32_t>(table, dev);
    check_table<std::int64_t, std::int32_t>(table, dev);
    check_table<std::uint8_t>(table, dev);
    auto a = ft::from_vector<std::int32_t>({7, -7, 1, 0, -3}, {5}, dev);
    auto b = ft::from_vector<std::int32_t>({2, 2, 0, 0, 0}, {5}, dev);
    check_close(eval_counted(dev, a / b), {3.5, -3.5, kInf, kNaN, -kInf}, 0, 0);
  }
}

// fmod keeps the sign of the dividend (C's fmod); remainder and % the sign of the divisor (Python's %).
TEST_CASE("fmod takes the dividend's sign and remainder the divisor's, for negative ints and floats") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const std::vector<double> a{-7, 7, -7, 7, 0, 6, -6, 1};
    const std::vector<double> b{3, -3, -3, 3, 5, -3, 3, -5};
    const std::vector<double> fmod_want{-1, 1, -1, 1, 0, 0, 0, 1};
    const std::vector<double> rem_want{2, -2, -1, 1, 0, 0, 0, -4};
    auto ai = ft::from_vector<std::int32_t>(std::vector<std::int32_t>(a.begin(), a.end()), {8}, dev);
    auto bi = ft::from_vector<std::int32_t>(std::vector<std::int32_t>(b.begin(), b.end()), {8}, dev);
    check_close(eval_counted(dev, ft::fmod(ai, bi)), fmod_want, 0, 0);
    check_close(eval_counted(dev, ft::remainder(ai, bi)), rem_want, 0, 0);
    check_close(eval_counted(dev, ai % bi), rem_want, 0, 0);
    check_close(eval_counted(dev, ai % 3), {2, 1, 2, 1, 0, 0, 0, 1}, 0, 0);
    check_close(eval_counted(dev, ai % -3), {-1, -2, -1, -2, 0, 0, 0, -2}, 0, 0);
    check_close(eval_counted(dev, -7 % bi), {2, -1, -1, 2, 3, -1, 2, -2}, 0, 0);

    auto af = ft::from_vector<float>({-7.5f, 7.5f, -7.5f, 7.5f, -0.5f, 5.0f}, {6}, dev);
    auto bf = ft::from_vector<float>({2.0f, -2.0f, -2.0f, 2.0f, 4.0f, 0.0f}, {6}, dev);
    check_close(eval_counted(dev, ft::fmod(af, bf)), {-1.5, 1.5, -1.5, 1.5, -0.5, kNaN}, 0, 0);
    check_close(eval_counted(dev, af % bf), {0.5, -0.5, -1.5, 1.5, 3.5, kNaN}, 0, 0);
    check_close(eval_counted(dev, af % 2.5f), {0.0, 0.0, 0.0, 0.0, 2.0, 0.0}, 0, 0);
  }
}

TEST_CASE("pow: integer powers by squaring, negative exponents as torch's integer pow, float pow of negative bases") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::from_vector<std::int64_t>({2, -3, 0, 5, 1, -1, -1, 2, 3}, {9}, dev);
    auto b = ft::from_vector<std::int64_t>({10, 3, 0, 0, -5, -3, -4, -1, 39}, {9}, dev);
    auto y = eval_counted(dev, ft::pow(a, b)).to_vector();
    const std::vector<std::int64_t> want{1024, -27, 1, 1, 1, -1, 1, 0, 4052555153018976267};  // 3^39 exactly
    CHECK(y == want);

    auto x = ft::from_vector<float>({-2.0f, -1.5f, -3.0f, -2.0f, 0.0f, kNaNf, 1.0f}, {7}, dev);
    auto e = ft::from_vector<float>({3.0f, 2.0f, -1.0f, 0.5f, 0.0f, 0.0f, kNaNf}, {7}, dev);
    // pow(x, 0) = 1 and pow(1, y) = 1 even for NaN, as std::pow and torch.pow
    check_close(eval_counted(dev, ft::pow(x, e)), {-8.0, 2.25, -1.0 / 3.0, kNaN, 1.0, 1.0, 1.0}, 1e-6);
    check_close(eval_counted(dev, ft::pow(x, 2)), {4.0, 2.25, 9.0, 4.0, 0.0, kNaN, 1.0}, 1e-6);
    check_close(eval_counted(dev, ft::pow(2.0f, e)), {8.0, 4.0, 0.5, std::sqrt(2.0), 1.0, 1.0, kNaN}, 1e-6);
  }
}

TEST_CASE("maximum and minimum propagate NaN from either side, as torch.maximum") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::from_vector<float>({kNaNf, 1.0f, 2.0f, kNaNf, -kInff}, {5}, dev);
    auto b = ft::from_vector<float>({0.0f, kNaNf, 3.0f, kNaNf, 1.0f}, {5}, dev);
    check_close(eval_counted(dev, ft::maximum(a, b)), {kNaN, kNaN, 3.0, kNaN, 1.0}, 0, 0);
    check_close(eval_counted(dev, ft::minimum(a, b)), {kNaN, kNaN, 2.0, kNaN, -kInf}, 0, 0);
    check_close(eval_counted(dev, ft::maximum(a, 1.5f)), {kNaN, 1.5, 2.0, kNaN, 1.5}, 0, 0);
    check_close(eval_counted(dev, ft::minimum(0.0, b)), {0.0, kNaN, 0.0, kNaN, 0.0}, 0, 0);
  }
}

TEST_CASE("atan2 covers all four quadrants and the axes") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const std::vector<double> y{1, 1, -1, -1, 0, 1, 0, -1};
    const std::vector<double> x{1, -1, -1, 1, 1, 0, -1, 0};
    std::vector<double> want;
    for (std::size_t i = 0; i < y.size(); ++i) want.push_back(std::atan2(y[i], x[i]));
    auto yd = ft::from_vector<double>(y, {8}, dev);
    auto xd = ft::from_vector<double>(x, {8}, dev);
    check_close(eval_counted(dev, ft::atan2(yd, xd)), want, 1e-15, 1e-15);
    // integers are computed in float
    auto yi = ft::from_vector<std::int32_t>(std::vector<std::int32_t>(y.begin(), y.end()), {8}, dev);
    auto xi = ft::from_vector<std::int32_t>(std::vector<std::int32_t>(x.begin(), x.end()), {8}, dev);
    auto r = eval_counted(dev, ft::atan2(yi, xi));
    static_assert(std::is_same_v<decltype(r)::value_type, float>);
    check_close(r, want, 1e-6);
  }
}

// A number next to a tensor is a weak scalar: it takes the tensor's dtype, except that a
// floating number next to an integer tensor gives float (PyTorch's rule for Python scalars).
TEST_CASE("scalars on either side take the tensor's dtype, a floating scalar with an integer tensor gives float") {
  // clang-format off
  const auto on_float = std::tuple{
      binary("2.0f * a", [](const auto& a, const auto&) { return 2.0f * a; }, [](double a, double) { return 2 * a; }),
      binary("a * 2.0f", [](const auto& a, const auto&) { return a * 2.0f; }, [](double a, double) { return 2 * a; }),
      binary("a - 1", [](const auto& a, const auto&) { return a - 1; }, [](double a, double) { return a - 1; }),
      binary("1 - a", [](const auto& a, const auto&) { return 1 - a; }, [](double a, double) { return 1 - a; }),
      binary("1 / a", [](const auto& a, const auto&) { return 1 / a; }, [](double a, double) { return 1 / a; },
             kNonzero),
      binary("a / 4", [](const auto& a, const auto&) { return a / 4; }, [](double a, double) { return a / 4; }),
      binary("a + 0.25 (double)", [](const auto& a, const auto&) { return a + 0.25; },
             [](double a, double) { return a + 0.25; }),
      binary("a % 1.5", [](const auto& a, const auto&) { return a % 1.5; },
             [](double a, double) { return py_remainder(a, 1.5); }),
      binary("pow(a, 2)", [](const auto& a, const auto&) { return ft::pow(a, 2); },
             [](double a, double) { return a * a; }),
      binary("pow(2, a)", [](const auto& a, const auto&) { return ft::pow(2, a); },
             [](double a, double) { return std::exp2(a); }),
      binary("maximum(a, 0)", [](const auto& a, const auto&) { return ft::maximum(a, 0); },
             [](double a, double) { return nan_max(a, 0); }),
      binary("atan2(1, a)", [](const auto& a, const auto&) { return ft::atan2(1, a); },
             [](double a, double) { return std::atan2(1, a); }),
      binary<bool>("a > 0.5", [](const auto& a, const auto&) { return a > 0.5; },
                   [](double a, double) { return a > 0.5; }),
      binary<bool>("0 == a", [](const auto& a, const auto&) { return 0 == a; },
                   [](double a, double) { return a == 0; }, kTies),
  };
  const auto on_int = std::tuple{
      binary<float>("a * 0.5", [](const auto& a, const auto&) { return a * 0.5; },
                    [](double a, double) { return a * 0.5; }, kSmallInts),
      binary<float>("a - 0.5f", [](const auto& a, const auto&) { return a - 0.5f; },
                    [](double a, double) { return a - 0.5; }, kSmallInts),
      binary<float>("1 / a", [](const auto& a, const auto&) { return 1 / a; }, [](double a, double) { return 1 / a; },
                    kNonzeroInts),
      binary<float>("a / 2", [](const auto& a, const auto&) { return a / 2; }, [](double a, double) { return a / 2; },
                    kSmallInts),
      binary<float>("pow(a, 0.5)", [](const auto& a, const auto&) { return ft::pow(a, 0.5); },
                    [](double a, double) { return std::sqrt(a); }, Domain{0, 100}),
      binary("a + 1", [](const auto& a, const auto&) { return a + 1; }, [](double a, double) { return a + 1; },
             kSmallInts),
      binary("2 - a", [](const auto& a, const auto&) { return 2 - a; }, [](double a, double) { return 2 - a; },
             kSmallInts),
      binary("3 * a", [](const auto& a, const auto&) { return 3 * a; }, [](double a, double) { return 3 * a; },
             kSmallInts),
      binary("a % 3", [](const auto& a, const auto&) { return a % 3; },
             [](double a, double) { return py_remainder(a, 3); }, kSmallInts),
      binary<bool>("a == 2", [](const auto& a, const auto&) { return a == 2; },
                   [](double a, double) { return a == 2; }, Domain{0, 4}),
      binary<bool>("a < 1.5", [](const auto& a, const auto&) { return a < 1.5; },
                   [](double a, double) { return a < 1.5; }, Domain{0, 4}),
  };
  // int64 follows the same rule: a float scalar gives float, an int scalar keeps int64
  const auto on_int64 = std::tuple{
      binary<float>("a * 0.5", [](const auto& a, const auto&) { return a * 0.5; },
                    [](double a, double) { return a * 0.5; }, kSmallInts),
      binary("a + 1", [](const auto& a, const auto&) { return a + 1; }, [](double a, double) { return a + 1; },
             Domain{-3e12, 3e12}),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<float>(on_float, dev);
    check_table<std::int32_t>(on_int, dev);
    check_table<std::int64_t>(on_int64, dev);
  }
}

TEST_CASE("a double scalar next to a float tensor is rounded to float, as a Python float is") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::from_vector<float>({0.0f, 1.0f}, {2}, dev);
    auto y = eval_counted(dev, a + 0.1);
    static_assert(std::is_same_v<decltype(y)::value_type, float>);
    check_close(y, {static_cast<double>(0.1f), static_cast<double>(1.0f + 0.1f)}, 0, 0);
    // a uint8 tensor with an int scalar stays uint8 and wraps, as torch
    auto u = ft::from_vector<std::uint8_t>({250, 3}, {2}, dev);
    auto w = eval_counted(dev, u + 10);
    static_assert(std::is_same_v<decltype(w)::value_type, std::uint8_t>);
    check_close(w, {4, 13}, 0, 0);
  }
}

TEST_CASE("tensor type promotion: wider and floating win, as torch.result_type") {
  // promote_t is one rule for every op: + stands for the others
  // clang-format off
  const auto table = std::tuple{
      binary("a + b", [](const auto& a, const auto& b) { return a + b; }, [](double a, double b) { return a + b; },
             Domain{-100, 100}, Domain{-100, 100}),
  };
  // clang-format on
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_table<std::int32_t, std::int64_t, std::int64_t>(table, dev);
    check_table<std::int64_t, std::int32_t, std::int64_t>(table, dev);
    check_table<std::int32_t, float, float>(table, dev);
    check_table<float, std::int64_t, float>(table, dev);
    check_table<float, double, double>(table, dev);
    check_table<double, float, double>(table, dev);
    check_table<std::int64_t, double, double>(table, dev);
    check_table<std::uint8_t, std::int32_t, std::int32_t>(table, dev);
    check_table<bool, std::int32_t, std::int32_t>(table, dev);
    check_table<bool, float, float>(table, dev);

    // int64 values beyond int32's range survive int32 + int64
    auto a = ft::from_vector<std::int32_t>({1, -2}, {2}, dev);
    auto b = ft::from_vector<std::int64_t>({3000000000LL, -3000000000LL}, {2}, dev);
    check_close(eval_counted(dev, a + b), {3000000001.0, -3000000002.0}, 0, 0);
    // float + double is computed in double: no rounding to float
    auto f = ft::from_vector<float>({0.1f}, {1}, dev);
    auto d = ft::from_vector<double>({0.2}, {1}, dev);
    check_close(eval_counted(dev, f + d), {static_cast<double>(0.1f) + 0.2}, 0, 0);
    // uint8 with int32 compares in int32: 200 is not -56 (which wraps to 200 in uint8)
    auto u200 = ft::from_vector<std::uint8_t>({200, 200}, {2}, dev);
    auto m56 = ft::from_vector<std::int32_t>({-56, 200}, {2}, dev);
    check_close(eval_counted(dev, u200 == m56), {0, 1}, 0, 0);
    check_close(eval_counted(dev, u200 > m56), {1, 0}, 0, 0);
    // uint8 + uint8 stays uint8 and wraps, as torch
    auto u = ft::from_vector<std::uint8_t>({200, 10}, {2}, dev);
    auto v = ft::from_vector<std::uint8_t>({100, 20}, {2}, dev);
    auto uv = eval_counted(dev, u + v);
    static_assert(std::is_same_v<decltype(uv)::value_type, std::uint8_t>);
    check_close(uv, {44, 30}, 0, 0);
    // bool + bool is logical or, bool * bool logical and: bool results, as torch
    auto p = ft::from_vector<bool>({true, true, false, false}, {4}, dev);
    auto q = ft::from_vector<bool>({true, false, true, false}, {4}, dev);
    auto sum = eval_counted(dev, p + q);
    static_assert(std::is_same_v<decltype(sum)::value_type, bool>);
    check_close(sum, {1, 1, 1, 0}, 0, 0);
    check_close(eval_counted(dev, p * q), {1, 0, 0, 0}, 0, 0);
  }
}

// torch.result_type(uint8 tensor, bool tensor) is uint8: bool promotes to the other operand's type.
TEST_CASE("uint8 with bool promotes to uint8, as torch.result_type") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto u = ft::from_vector<std::uint8_t>({250, 3}, {2}, dev);
    auto b = ft::from_vector<bool>({true, false}, {2}, dev);
    auto y = eval_counted(dev, u + b);
    CHECK_MESSAGE((std::is_same_v<decltype(y)::value_type, std::uint8_t>),
                  "uint8 + bool gave " << std::string(ft::dtype_name(ft::dtype_of<decltype(y)::value_type>())));
    check_close(y, {251, 3}, 0, 0);
  }
}

TEST_CASE("where(cond, a, b) with tensor and scalar branches selects elementwise and promotes") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t n : {1, 7, 1027}) {
      CAPTURE(n);
      auto c = make<bool>({n}, dev, 1);
      auto a = make<float>({n}, dev, 2);
      auto b = make<float>({n}, dev, 3);
      auto ai = make<std::int32_t>({n}, dev, 4, kSmallInts);
      auto bd = make<double>({n}, dev, 5);
      auto cv = to_double(c), av = to_double(a), bv = to_double(b), aiv = to_double(ai), bdv = to_double(bd);
      auto pick = [&](const std::vector<double>& x, const std::vector<double>& y) {
        std::vector<double> r;
        for (std::size_t i = 0; i < cv.size(); ++i) r.push_back(cv[i] != 0 ? x[i] : y[i]);
        return r;
      };
      const std::vector<double> twos(cv.size(), 2.0), halves(cv.size(), -0.5), sevens(cv.size(), 7.0);

      auto y = eval_counted(dev, ft::where(c, a, b));
      check_close(y, pick(av, bv), 0, 0);
      auto ys = eval_counted(dev, ft::where(c, a, 2.0f));
      check_close(ys, pick(av, twos), 0, 0);
      auto ys2 = eval_counted(dev, ft::where(c, -0.5, b));
      static_assert(std::is_same_v<decltype(ys2)::value_type, float>);  // weak scalar takes the tensor's dtype
      check_close(ys2, pick(halves, bv), 0, 0);
      auto both = eval_counted(dev, ft::where(c, 7, 2));
      check_close(both, pick(sevens, twos), 0, 0);
      auto mixed = eval_counted(dev, ft::where(c, ai, bd));
      static_assert(std::is_same_v<decltype(mixed)::value_type, double>);
      check_close(mixed, pick(aiv, bdv), 0, 0);
      auto int_float = eval_counted(dev, ft::where(c, ai, -0.5));
      static_assert(std::is_same_v<decltype(int_float)::value_type, float>);  // float scalar, int tensor
      check_close(int_float, pick(aiv, halves), 0, 0);
      // a condition computed in the same kernel
      auto fused = eval_counted(dev, ft::where(a > b, a - b, b * 2.0f));
      std::vector<double> want;
      for (std::size_t i = 0; i < av.size(); ++i)
        want.push_back(av[i] > bv[i] ? double(float(av[i] - bv[i])) : double(float(bv[i] * 2)));
      check_close(fused, want, 1e-6);
      // strided operands
      auto a_big = make<float>({2 * n}, dev, 6);
      auto a_s = a_big.slice(0, 0, 2 * n, 2);
      check_close(eval_counted(dev, ft::where(c, a_s, b)), pick(to_double(a_s), bv), 0, 0);
    }
    auto e = ft::empty<bool>({0}, dev);
    CHECK(eval_counted(dev, ft::where(e, 1.0f, 0.0f), 0).numel() == 0);
  }
}

// a·b + c for floats, the larger of a and b where the flag is set: four operands of three types
struct MulAddOrMax {
  static constexpr const char* name = "mul_add_or_max";
  FT_HD FT_INLINE float operator()(bool flag, float a, float b, std::int32_t c) const {
    return flag ? (a > b ? a : b) : a * b + static_cast<float>(c);
  }
};

TEST_CASE("make_nary applies a functor of several operands, broadcast and fused, in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t n : {1, 7, 1027}) {
      CAPTURE(n);
      auto flag = make<bool>({3, n}, dev, 1);
      auto a = make<float>({3, n}, dev, 2);
      auto b = make<float>({n}, dev, 3);  // broadcast along the rows
      auto c = make<std::int32_t>({3, 1}, dev, 4, kSmallInts);
      const auto fv = to_double(flag), av = to_double(a), bv = to_double(b), cv = to_double(c);
      auto want_of = [&](const std::vector<double>& as) {
        std::vector<double> r;
        for (index_t i = 0; i < 3; ++i)
          for (index_t j = 0; j < n; ++j) {
            const auto k = static_cast<std::size_t>(i * n + j);
            const float x = static_cast<float>(as[k]), y = static_cast<float>(bv[j]);
            r.push_back(fv[k] != 0 ? std::max(x, y) : double(x * y + static_cast<float>(cv[i])));
          }
        return r;
      };
      auto y = eval_counted(dev, ft::make_nary(MulAddOrMax{}, flag, a, b, c));
      static_assert(std::is_same_v<decltype(y), ft::Tensor<float, 2>>);
      check_close(y, want_of(av), 0, 0);
      // inside a larger statement, with an operand that is itself an expression: still one launch
      auto z = eval_counted(dev, ft::make_nary(MulAddOrMax{}, flag, a * 2.0f, b, c) - 1.0f);
      std::vector<double> a2;
      for (double x : av) a2.push_back(double(float(x) * 2.0f));
      auto w = want_of(a2);
      for (double& x : w) x = double(float(x) - 1.0f);
      check_close(z, w, 0, 0);
      // contiguous operands of one shape take the dense (vectorised) path
      auto d = eval_counted(dev, ft::make_nary(MulAddOrMax{}, flag, a, a, ft::zeros<std::int32_t>({3, n}, dev)));
      std::vector<double> dw;
      for (std::size_t k = 0; k < av.size(); ++k) {
        const float x = static_cast<float>(av[k]);
        dw.push_back(fv[k] != 0 ? x : double(x * x));
      }
      check_close(d, dw, 0, 0);
      // a strided operand
      auto a_big = make<float>({3, 2 * n}, dev, 6);
      auto a_s = a_big.slice(1, 0, 2 * n, 2);
      check_close(eval_counted(dev, ft::make_nary(MulAddOrMax{}, flag, a_s, b, c)), want_of(to_double(a_s)), 0, 0);
    }
    // shapes that do not broadcast: an ft::Error naming the functor, before any launch
    auto p = make<float>({3, 4}, dev, 7);
    auto q = make<float>({5}, dev, 8);
    auto flag = make<bool>({3, 4}, dev, 9);
    auto c = make<std::int32_t>({1}, dev, 10, kSmallInts);
    ft::stats::reset();
    CHECK_THROWS_WITH(ft::make_nary(MulAddOrMax{}, flag, p, q, c), doctest::Contains("mul_add_or_max"));
    expect_launches(dev, 0);
  }
}

TEST_CASE("compound assignment +=, -=, *=, /=, %= runs in place with one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t n : {1, 7, 1027}) {
      CAPTURE(n);
      auto a = make<float>({n}, dev, 11);
      auto b = make<float>({n}, dev, 12, kNonzero);
      auto bv = to_double(b);
      const float* storage = a.data();
      auto step = [&](auto statement, auto ref) {
        auto before = to_double(a);
        once(dev, statement);
        CHECK(a.data() == storage);
        std::vector<double> want;
        for (std::size_t i = 0; i < before.size(); ++i) want.push_back(ref(before[i], bv[i]));
        check_close(a, want, 1e-6);
      };
      step([&] { a += b; }, [](double x, double y) { return x + y; });
      step([&] { a -= b; }, [](double x, double y) { return x - y; });
      step([&] { a *= b; }, [](double x, double y) { return x * y; });
      step([&] { a /= b; }, [](double x, double y) { return x / y; });
      step([&] { a %= b; }, [](double x, double y) { return py_remainder(x, y); });
      step([&] { a += 1; }, [](double x, double) { return x + 1; });
      step([&] { a -= 0.5; }, [](double x, double) { return x - 0.5; });
      step([&] { a *= 2.0f; }, [](double x, double) { return 2 * x; });
      step([&] { a /= 4; }, [](double x, double) { return x / 4; });
      step([&] { a %= 0.75f; }, [](double x, double) { return py_remainder(x, 0.75); });
      step([&] { a += a; }, [](double x, double) { return 2 * x; });
      step([&] { a *= ft::exp(b) - 1.0f; }, [](double x, double y) { return x * std::expm1(y); });

      auto i = make<std::int32_t>({n}, dev, 13, kSmallInts);
      auto j = make<std::int32_t>({n}, dev, 14, kNonzeroInts);
      auto iv = to_double(i), jv = to_double(j);
      once(dev, [&] { i %= j; });
      std::vector<double> want;
      for (std::size_t k = 0; k < iv.size(); ++k) want.push_back(py_remainder(iv[k], jv[k]));
      check_close(i, want, 0, 0);
      once(dev, [&] { i *= -3; });
      for (double& w : want) w *= -3;
      check_close(i, want, 0, 0);
      once(dev, [&] { i %= -4; });
      for (double& w : want) w = py_remainder(w, -4);
      check_close(i, want, 0, 0);
    }
  }
}

TEST_CASE("compound assignment into a strided view writes only the view's elements") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto big = make<double>({4, 9}, dev, 21);
    auto before = to_double(big);
    auto view = big.slice(1, 1, 9, 2);  // [4, 4]: columns 1, 3, 5, 7
    auto row = make<double>({4}, dev, 22);
    auto rv = to_double(row);
    once(dev, [&] { view += row; });  // broadcast over the rows
    auto after = to_double(big);
    for (index_t r = 0; r < 4; ++r) {
      for (index_t c = 0; c < 9; ++c) {
        std::size_t k = static_cast<std::size_t>(r * 9 + c);
        double want = c % 2 == 1 ? before[k] + rv[static_cast<std::size_t>((c - 1) / 2)] : before[k];
        CHECK(after[k] == want);
      }
    }
    // a transposed view as the destination
    auto sq = make<double>({5, 5}, dev, 23);
    std::vector<double> doubled;
    for (double v : to_double(sq)) doubled.push_back(2 * v);
    auto t = sq.transpose(0, 1);
    once(dev, [&] { t *= 2.0; });
    check_close(sq, doubled, 0, 0);
  }
}

TEST_CASE("ft::eval evaluates an expression into a new tensor with one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = make<float>({1027}, dev, 31);
    auto b = make<float>({1027}, dev, 32);
    auto av = to_double(a), bv = to_double(b);
    ft::stats::reset();
    auto y = ft::eval(a * b + 1.0f);
    CHECK(ft::stats::launches(dev) == 1);
    static_assert(std::is_same_v<decltype(y), ft::Tensor<float, 1>>);
    CHECK(y.device() == dev);
    CHECK(y.data() != a.data());
    std::vector<double> want;
    for (std::size_t i = 0; i < av.size(); ++i) want.push_back(av[i] * bv[i] + 1);
    check_close(y, want, 1e-6);

    ft::stats::reset();
    auto m = ft::eval(a >= b);
    CHECK(ft::stats::launches(dev) == 1);
    static_assert(std::is_same_v<decltype(m), ft::Tensor<bool, 1>>);
    check_close(m, reference([](double x, double z) { return x >= z; }, a, b), 0, 0);
  }
}

// A tensor is an expression too: eval(t) materialises it like any other, into new storage.
TEST_CASE("ft::eval of a bare tensor view makes a new contiguous tensor with one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = make<float>({4, 6}, dev, 33);
    auto view = a.transpose(0, 1);
    ft::stats::reset();
    auto y = ft::eval(view);
    CHECK(ft::stats::launches(dev) == 1);
    CHECK(y.data() != a.data());
    CHECK(y.is_contiguous());
    check_close(y, to_double(view), 0, 0);
  }
}

FT_GPU_TEST_CASE("an operand on another device is rejected with ft::Error before any launch") {
  auto a = make<float>({4}, ft::kCPU, 1);
  auto b = make<float>({4}, ft::Device(ft::kCUDA, 0), 2);
  ft::stats::reset();
  CHECK_THROWS_AS(ft::eval(a + b), ft::Error);
  auto flag = make<bool>({4}, ft::kCPU, 3);
  auto c = make<std::int32_t>({4}, ft::kCPU, 4, kSmallInts);
  CHECK_THROWS_WITH(ft::make_nary(MulAddOrMax{}, flag, a, b, c), doctest::Contains("same device"));
  CHECK(ft::stats::launches(ft::kCPU) == 0);
  CHECK(ft::stats::launches(ft::Device(ft::kCUDA, 0)) == 0);
}

TEST_CASE("weak scalars without a floating tensor use torch's default dtypes") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto c = ft::test::random_tensor<bool>({9}, dev, 31);
    ft::Tensor<std::int64_t, 1> bi = c + 1;  // bool tensor + int: int64, as torch
    static_assert(std::is_same_v<decltype(c + 1)::value_type, std::int64_t>);
    auto w = ft::eval(ft::where(c, 1.0, 2.0));  // two numbers: float32, torch's default
    static_assert(std::is_same_v<decltype(w)::value_type, float>);
    auto cv = c.to_vector();
    auto bv = bi.to_vector();
    auto wv = w.to_vector();
    for (std::size_t i = 0; i < cv.size(); ++i) {
      CHECK(bv[i] == (cv[i] ? 2 : 1));
      CHECK(wv[i] == (cv[i] ? 1.0f : 2.0f));
    }
  }
}

TEST_CASE("compound assignment on a temporary view updates the base in one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::test::random_tensor<float>({10}, dev, 32);
    auto before = ft::test::to_double(x);
    CHECK(ft::test::launches_of(dev, [&] { x.slice(0, 0, 10, 2) += 1.0f; }) == 1);
    auto after = ft::test::to_double(x);
    for (int i = 0; i < 10; ++i) CHECK(after[i] == doctest::Approx(before[i] + (i % 2 == 0 ? 1.0 : 0.0)));
  }
}
