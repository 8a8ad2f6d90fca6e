// Semantics that must hold however an expression is kept or combined: a kept expression reads
// its leaves' current values on every evaluation, zero-dim tensors promote as in PyTorch,
// integer and bool edge cases, conversions, and writes through overlapping views. Each case
// is a regression test for a defect found by the differential test against PyTorch 1.13.
#include <limits>
#include <string>

#include "common.hpp"

using ft::test::check_close;
using ft::test::to_double;

namespace {
ft::Tensor<float, 2> grid() { return ft::from_vector<float>({1, -2, 3, 4, 0.5f, 6}, {2, 3}); }

template <class T>
ft::Tensor<T, 0> zero_dim(T v) {
  ft::Tensor<T, 0> t(ft::Shape<0>{}, ft::kCPU);
  t = v;
  return t;
}

// Evaluates `kept` (a lazy expression built once), adds `delta` to x in place, evaluates it
// again: the second value must be the value for the new x, equal to a freshly built expression.
template <class Make>
void check_kept(const std::string& what, Make make) {
  CAPTURE(what);
  auto x = grid();
  auto kept = make(x);
  auto before = to_double(ft::eval(kept));
  x *= ft::from_vector<float>({-1, 2, -0.5f, 1, 3, -2}, {2, 3});
  auto after = to_double(ft::eval(kept));
  auto fresh = to_double(ft::eval(make(x)));
  check_close(after, fresh, 0, 0);
  bool changed = false;
  for (std::size_t i = 0; i < before.size(); ++i) changed = changed || before[i] != after[i];
  CHECK(changed);
}
}  // namespace

TEST_CASE("a kept reduction is evaluated anew each time: every reduction, whole and along a dim") {
  check_kept("sum", [](const auto& x) { return ft::sum(x); });
  check_kept("mean", [](const auto& x) { return ft::mean(x, 1); });
  check_kept("prod", [](const auto& x) { return ft::prod(x, 0, ft::keepdim); });
  check_kept("max", [](const auto& x) { return ft::max(x, 1); });
  check_kept("min", [](const auto& x) { return ft::min(x); });
  check_kept("norm", [](const auto& x) { return ft::norm(x, 2, 1); });
  check_kept("var", [](const auto& x) { return ft::var(x * x, 1); });
  check_kept("std", [](const auto& x) { return ft::std(x * x); });
  check_kept("logsumexp", [](const auto& x) { return ft::logsumexp(x, 0); });
  check_kept("argmax", [](const auto& x) { return ft::argmax(x); });
  check_kept("argmin", [](const auto& x) { return ft::argmin(x, 1); });
  check_kept("all", [](const auto& x) { return ft::all(x > 0.0f, 1); });
  check_kept("any", [](const auto& x) { return ft::any(x > 5.5f); });
  // inside larger expressions: the reduction's temporary belongs to one evaluation
  check_kept("x - max(x)", [](const auto& x) { return x - ft::max(x, 1, ft::keepdim); });
  check_kept("nested", [](const auto& x) { return ft::sum(x - ft::mean(x, 0, ft::keepdim), 1) * ft::max(x); });
  check_kept("sum_to", [](const auto& x) { return ft::sum_to(x * 2.0f, ft::Shape<2>{1, 3}); });
}

TEST_CASE("a kept reduction's item() and row-wise composites over it see the current values") {
  auto x = grid();
  auto s = ft::sum(x);
  CHECK(s.item() == doctest::Approx(12.5));
  x += 1.0f;
  CHECK(s.item() == doctest::Approx(18.5));
  auto centred = x - ft::mean(x, 1, ft::keepdim);
  auto p1 = to_double(ft::softmax(centred, 1));
  x *= 2.0f;
  auto p2 = to_double(ft::softmax(centred, 1));
  check_close(p2, to_double(ft::softmax(x - ft::mean(x, 1, ft::keepdim), 1)), 1e-6, 1e-7);
  CHECK(p1 != p2);
}

TEST_CASE("a reduction read twice in one statement is computed once") {
  auto x = grid();
  auto m = ft::max(x, 1, ft::keepdim);
  ft::Tensor<float, 2> y(x.shape(), ft::kCPU);
  ft::stats::reset();
  y = (x - m) * (x + m);  // m: one reduction launch shared by both reads, then the outer kernel
  CHECK(ft::stats::launches(ft::kCPU) == 2);
  check_close(y, {1 - 9, 4 - 9, 0, 16 - 36, 0.25 - 36, 0}, 1e-6, 1e-6);
}

TEST_CASE("reading a reduction node outside an evaluation is an ft::Error, not a dangling read") {
  auto s = ft::sum(grid());
  CHECK_THROWS_WITH_AS(s.evaluator(ft::EvalContext{}), doctest::Contains("outside an evaluation"), ft::Error);
}

TEST_CASE("a zero-dim tensor does not raise the result type within its category, as PyTorch") {
  auto f32 = ft::from_vector<float>({1, 2, 3}, {3});
  auto f64 = zero_dim<double>(1.5);
  auto i32 = ft::from_vector<std::int32_t>({1, 2, 3}, {3});
  auto i64 = zero_dim<std::int64_t>(300);
  auto u8 = ft::from_vector<std::uint8_t>({1, 2, 3}, {3});
  auto b = ft::from_vector<bool>({true, false, true}, {3});
  static_assert(std::is_same_v<decltype(f32 + f64)::value_type, float>);
  static_assert(std::is_same_v<decltype(f64 + f32)::value_type, float>);
  static_assert(std::is_same_v<decltype(i32 + i64)::value_type, std::int32_t>);
  static_assert(std::is_same_v<decltype(u8 * i64)::value_type, std::uint8_t>);
  static_assert(std::is_same_v<decltype(ft::maximum(i32, i64))::value_type, std::int32_t>);
  static_assert(std::is_same_v<decltype(ft::pow(f32, f64))::value_type, float>);
  static_assert(std::is_same_v<decltype(i32 % i64)::value_type, std::int32_t>);
  static_assert(std::is_same_v<decltype(ft::where(b, f32, f64))::value_type, float>);
  static_assert(std::is_same_v<decltype(ft::where(b, f64, i32))::value_type, double>);
  // a higher category decides: its own type (not the default dtype, which is a number's rule)
  static_assert(std::is_same_v<decltype(i32 + f64)::value_type, double>);
  static_assert(std::is_same_v<decltype(b + i64)::value_type, std::int64_t>);
  // two zero-dim tensors, or two dimensioned ones, promote as usual
  static_assert(std::is_same_v<decltype(f64 + ft::sum(f32))::value_type, double>);
  // the values: 300 read as uint8 is 44 (torch: tensor([44, 88, 132], dtype=torch.uint8))
  CHECK(ft::eval(u8 * i64).to_vector() == std::vector<std::uint8_t>{44, 88, 132});
  check_close(ft::eval(f32 + f64), {2.5, 3.5, 4.5});
  check_close(ft::eval(i32 + f64), {2.5, 3.5, 4.5});
}

TEST_CASE("var and std with correction >= N divide by zero: inf, or NaN when the squares sum to 0") {
  auto x = ft::from_vector<double>({1, 2, 3}, {3});
  CHECK(std::isinf(ft::var(x, 3.0).item()));
  CHECK(std::isinf(ft::var(x, 5.0).item()));
  CHECK(std::isinf(ft::std(x, 4.0).item()));
  auto c = ft::from_vector<double>({2, 2}, {2});
  CHECK(std::isnan(ft::var(c, 2.0).item()));
  CHECK(std::isnan(ft::var(ft::from_vector<double>({7}, {1})).item()));  // one element, correction 1: 0/0
  CHECK(ft::var(x).item() == doctest::Approx(1.0));
}

TEST_CASE("square of a bool tensor is int64, as torch.square") {
  auto b = ft::from_vector<bool>({true, false}, {2});
  static_assert(std::is_same_v<decltype(ft::square(b))::value_type, std::int64_t>);
  CHECK(ft::eval(ft::square(b)).to_vector() == std::vector<std::int64_t>{1, 0});
}

TEST_CASE("integer pow by squaring: exact where it fits, wraps where it overflows, no undefined behaviour") {
  auto base = ft::from_vector<std::int64_t>({3, -3, 2, 7, 0, 1, -1}, {7});
  auto e = ft::from_vector<std::int64_t>({39, 39, 62, 1, 0, -3, -3}, {7});
  std::vector<std::int64_t> want{4052555153018976267LL, -4052555153018976267LL, 4611686018427387904LL, 7, 1, 1, -1};
  CHECK(ft::eval(ft::pow(base, e)).to_vector() == want);
  // 3^40 overflows int64: torch wraps to 3^40 mod 2^64 = -6289078614652622815
  CHECK(ft::eval(ft::pow(ft::full<std::int64_t>({1}, 3), std::int64_t{40})).to_vector() ==
        std::vector<std::int64_t>{-6289078614652622815LL});
  auto i32 = ft::from_vector<std::int32_t>({3, 46340, 2}, {3});
  CHECK(ft::eval(ft::pow(i32, 20)).to_vector() ==
        std::vector<std::int32_t>{static_cast<std::int32_t>(3486784401u), 0, 1048576});
}

TEST_CASE("ft::cast from floating to integer types is defined for NaN and out-of-range values") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto x = ft::from_vector<float>({300.0f, -1.0f, nan, 3e9f, -3e9f, 2.7f, -2.7f}, {7});
  // torch 1.13 on x86: .to(torch.int32) and .to(torch.uint8) of the same values
  const std::int32_t lo = std::numeric_limits<std::int32_t>::min();
  CHECK(ft::eval(ft::cast<std::int32_t>(x)).to_vector() == std::vector<std::int32_t>{300, -1, lo, lo, lo, 2, -2});
  CHECK(ft::eval(ft::cast<std::uint8_t>(x)).to_vector() == std::vector<std::uint8_t>{44, 255, 0, 0, 0, 2, 254});
  auto big = ft::from_vector<double>({std::nan(""), 1e19, -1e19, 9.2e18}, {4});
  const std::int64_t lo64 = std::numeric_limits<std::int64_t>::min();
  CHECK(ft::eval(ft::cast<std::int64_t>(big)).to_vector() ==
        std::vector<std::int64_t>{lo64, lo64, lo64, 9200000000000000000LL});
  // filling an integer tensor with a number converts the same way
  ft::Tensor<std::int32_t, 1> t({2}, ft::kCPU);
  t = std::nan("");
  CHECK(t.to_vector() == std::vector<std::int32_t>{lo, lo});
}

TEST_CASE("writing through an expanded view is an ft::Error, as PyTorch refuses it") {
  auto x = ft::from_vector<float>({1, 2}, {2});
  CHECK_THROWS_WITH_AS(x.expand({3, 2}) += 1.0f, doctest::Contains("single memory location"), ft::Error);
  check_close(x, {1, 2});  // untouched
  // a size-1 dimension with stride 0 is fine: one element, one location
  auto col = ft::from_vector<float>({5}, {1});
  col.expand({1}) += 1.0f;
  check_close(col, {6});
}
