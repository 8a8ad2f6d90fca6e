// NumPy/PyTorch broadcasting in every pattern, against a reference loop that reads each
// operand with the broadcast rule written out independently: align shapes from the right,
// a missing or size-1 dimension repeats. Every statement is one launch, on every device.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.hpp"

namespace {

using ft::index_t;
using ft::test::check_close;
using ft::test::random_tensor;
using ft::test::to_double;

// An operand read back to the host: its shape and row-major values.
struct Host {
  std::vector<index_t> shape;
  std::vector<double> values;
};

template <class T, int R>
Host host(const ft::Tensor<T, R>& t) {
  Host h;
  for (int d = 0; d < R; ++d) h.shape.push_back(t.shape()[d]);
  h.values = to_double(t);
  return h;
}
Host number(double x) { return {{}, {x}}; }  // a C++ number next to tensors: rank 0

// The broadcast shape of `shapes`, or nothing when two sizes differ and neither is 1.
std::optional<std::vector<index_t>> broadcast_shape(const std::vector<std::vector<index_t>>& shapes) {
  std::size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<index_t> out(rank, 1);
  for (const auto& s : shapes) {
    for (std::size_t k = 0; k < s.size(); ++k) {
      index_t& o = out[rank - s.size() + k];
      if (s[k] == 1) continue;
      if (o != 1 && o != s[k]) return std::nullopt;
      o = s[k];
    }
  }
  return out;
}

// The element of `h` that output coordinate `coord` reads: dimensions aligned from the right,
// size-1 dimensions read index 0.
double at(const Host& h, const std::vector<index_t>& coord) {
  std::size_t r = h.shape.size(), R = coord.size();
  index_t offset = 0, stride = 1;
  for (std::size_t k = r; k-- > 0;) {
    index_t i = h.shape[k] == 1 ? 0 : coord[R - r + k];
    offset += i * stride;
    stride *= h.shape[k];
  }
  return h.values[static_cast<std::size_t>(offset)];
}

using Fn = std::function<double(const double*)>;  // one output element from the operands' elements

std::vector<double> reference(const std::vector<index_t>& shape, const std::vector<Host>& ops, const Fn& f) {
  index_t n = 1;
  for (index_t s : shape) n *= s;
  std::vector<double> out, args(ops.size());
  std::vector<index_t> coord(shape.size(), 0);
  for (index_t i = 0; i < n; ++i) {
    index_t rest = i;
    for (std::size_t d = shape.size(); d-- > 0;) {
      coord[d] = rest % shape[d];
      rest /= shape[d];
    }
    for (std::size_t k = 0; k < ops.size(); ++k) args[k] = at(ops[k], coord);
    out.push_back(f(args.data()));
  }
  return out;
}

double add(const double* v) { return v[0] + v[1]; }
double sub(const double* v) { return v[0] - v[1]; }
double mul(const double* v) { return v[0] * v[1]; }
double first(const double* v) { return v[0]; }

// Checks one evaluated statement (not a template: the assertions compile once).
void verify(const std::string& what, ft::Device dev, const std::vector<index_t>& got_shape,
            const std::vector<double>& got, std::int64_t launches, std::int64_t cpu_launches,
            std::int64_t expected_launches, const std::vector<Host>& ops, const Fn& f, double rtol) {
  INFO(what);
  std::vector<std::vector<index_t>> shapes;
  for (const Host& h : ops) shapes.push_back(h.shape);
  auto want_shape = broadcast_shape(shapes);
  REQUIRE(want_shape.has_value());
  CHECK(got_shape == *want_shape);
  CHECK(launches == expected_launches);
  if (dev.is_cuda()) CHECK(cpu_launches == 0);
  check_close(got, reference(*want_shape, ops, f), rtol, 1e-6);
}

// `Tensor<V, R> y = e;` checked against f applied to the broadcast operands `ops`.
template <class E>
void check(ft::Device dev, const std::string& what, const E& e, const std::vector<Host>& ops, const Fn& f,
           std::int64_t expected_launches = 1, double rtol = 1e-6) {
  ft::stats::reset();
  ft::Tensor<typename E::value_type, E::rank> y = e;
  std::int64_t launches = ft::stats::launches(dev), cpu = ft::stats::launches(ft::kCPU);
  verify(what, dev, host(y).shape, to_double(y), launches, cpu, expected_launches, ops, f, rtol);
}

// `dst = e;` into an existing tensor, checked against f broadcast to dst's shape.
template <class T, int R, class E>
void check_assign(ft::Device dev, const std::string& what, const ft::Tensor<T, R>& dst, const E& e,
                  const std::vector<Host>& ops, const Fn& f, std::int64_t expected_launches = 1) {
  ft::stats::reset();
  ft::Tensor<T, R> d = dst;
  d = e;
  std::int64_t launches = ft::stats::launches(dev), cpu = ft::stats::launches(ft::kCPU);
  // the destination's shape joins the operands: every operand repeats to fill it
  std::vector<Host> with_dst = ops;
  Host shape_only = host(dst);
  for (double& v : shape_only.values) v = 0;
  with_dst.push_back(shape_only);
  verify(what, dev, host(d).shape, to_double(d), launches, cpu, expected_launches, with_dst, f, 1e-6);
}

// A rank-0 tensor holding one random value.
ft::Tensor<float, 0> scalar_tensor(ft::Device dev, unsigned seed) {
  return random_tensor<float>({1}, dev, seed).select(0, 0);
}

}  // namespace

TEST_CASE("operands of the same shape combine elementwise") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({5, 7}, dev, 1);
    auto b = random_tensor<float>({5, 7}, dev, 2);
    check(dev, "[5, 7] + [5, 7]", a + b, {host(a), host(b)}, add);
    auto c = random_tensor<float>({2, 3, 4}, dev, 3);
    auto d = random_tensor<float>({2, 3, 4}, dev, 4);
    check(dev, "[2, 3, 4] * [2, 3, 4]", c * d, {host(c), host(d)}, mul);
  }
}

TEST_CASE("a rank-0 tensor broadcasts against every rank") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto s = scalar_tensor(dev, 10);
    auto t = scalar_tensor(dev, 11);
    auto x1 = random_tensor<float>({7}, dev, 12);
    auto x2 = random_tensor<float>({3, 5}, dev, 13);
    auto x3 = random_tensor<float>({2, 3, 4}, dev, 14);
    auto x4 = random_tensor<float>({2, 1, 3, 5}, dev, 15);
    check(dev, "[] + []", s + t, {host(s), host(t)}, add);
    check(dev, "[] * [7]", s * x1, {host(s), host(x1)}, mul);
    check(dev, "[3, 5] - []", x2 - s, {host(x2), host(s)}, sub);
    check(dev, "[] + [2, 3, 4]", s + x3, {host(s), host(x3)}, add);
    check(dev, "[2, 1, 3, 5] * []", x4 * s, {host(x4), host(s)}, mul);
  }
}

TEST_CASE("[N] broadcasts along the rows of [M, N], on either side") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto m = random_tensor<float>({6, 9}, dev, 20);
    auto v = random_tensor<float>({9}, dev, 21);
    check(dev, "[6, 9] + [9]", m + v, {host(m), host(v)}, add);
    check(dev, "[9] - [6, 9]", v - m, {host(v), host(m)}, sub);
  }
}

TEST_CASE("[M, 1] with [1, N] gives the outer-product shape [M, N]") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto col = random_tensor<float>({6, 1}, dev, 30);
    auto row = random_tensor<float>({1, 9}, dev, 31);
    auto vec = random_tensor<float>({9}, dev, 32);
    check(dev, "[6, 1] * [1, 9]", col * row, {host(col), host(row)}, mul);
    check(dev, "[1, 9] - [6, 1]", row - col, {host(row), host(col)}, sub);
    // fused: both broadcasts and a third operand in one kernel
    check(dev, "([6, 1] + [1, 9]) * [9]", (col + row) * vec, {host(col), host(row), host(vec)},
          [](const double* x) { return (x[0] + x[1]) * x[2]; });
    // mixed dtypes: int32 column with a double row gives double
    auto icol = random_tensor<std::int32_t>({6, 1}, dev, 33, -10, 10);
    auto drow = random_tensor<double>({9}, dev, 34);
    auto mixed = icol * drow;
    static_assert(std::is_same_v<decltype(mixed)::value_type, double>);
    check(dev, "int32 [6, 1] * double [9]", mixed, {host(icol), host(drow)}, mul);
  }
}

TEST_CASE("[M, 1] and [1, N] broadcast with [M, N]") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto m = random_tensor<float>({6, 9}, dev, 40);
    auto col = random_tensor<float>({6, 1}, dev, 41);
    auto row = random_tensor<float>({1, 9}, dev, 42);
    check(dev, "[6, 9] - [6, 1]", m - col, {host(m), host(col)}, sub);
    check(dev, "[6, 1] * [6, 9]", col * m, {host(col), host(m)}, mul);
    check(dev, "[6, 9] + [1, 9]", m + row, {host(m), host(row)}, add);
    check(dev, "[1, 9] - [6, 9]", row - m, {host(row), host(m)}, sub);
  }
}

TEST_CASE("missing leading dimensions broadcast across ranks 1 to 4") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a315 = random_tensor<float>({3, 1, 5}, dev, 50);
    auto b45 = random_tensor<float>({4, 5}, dev, 51);
    check(dev, "[3, 1, 5] + [4, 5]", a315 + b45, {host(a315), host(b45)}, add);
    auto a2131 = random_tensor<float>({2, 1, 3, 1}, dev, 52);
    auto b514 = random_tensor<float>({5, 1, 4}, dev, 53);
    check(dev, "[2, 1, 3, 1] * [5, 1, 4]", a2131 * b514, {host(a2131), host(b514)}, mul);
    auto v4 = random_tensor<float>({4}, dev, 54);
    auto x2354 = random_tensor<float>({2, 3, 5, 4}, dev, 55);
    check(dev, "[4] - [2, 3, 5, 4]", v4 - x2354, {host(v4), host(x2354)}, sub);
    auto m31 = random_tensor<float>({3, 1}, dev, 56);
    auto x2134 = random_tensor<float>({2, 1, 3, 4}, dev, 57);
    check(dev, "[2, 1, 3, 4] + [3, 1]", x2134 + m31, {host(x2134), host(m31)}, add);
    auto v5 = random_tensor<float>({5}, dev, 58);
    check(dev, "[3, 1, 5] * [5]", a315 * v5, {host(a315), host(v5)}, mul);
  }
}

TEST_CASE("size-1 dimensions on both sides broadcast each other") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({1, 4, 1, 6}, dev, 60);
    auto b = random_tensor<float>({3, 1, 5, 1}, dev, 61);
    check(dev, "[1, 4, 1, 6] + [3, 1, 5, 1]", a + b, {host(a), host(b)}, add);
    auto c = random_tensor<float>({1, 1}, dev, 62);
    auto d = random_tensor<float>({1, 7}, dev, 63);
    check(dev, "[1, 1] * [1, 7]", c * d, {host(c), host(d)}, mul);
  }
}

TEST_CASE("non-contiguous views broadcast: transposed, sliced with a step and expanded") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto base = random_tensor<float>({6, 9}, dev, 70);
    auto t = base.transpose(0, 1);  // [9, 6], strides (1, 9)
    auto v6 = random_tensor<float>({6}, dev, 71);
    check(dev, "transposed [9, 6] + [6]", t + v6, {host(t), host(v6)}, add);
    auto col9 = random_tensor<float>({9, 1}, dev, 72);
    check(dev, "[9, 1] * transposed [9, 6]", col9 * t, {host(col9), host(t)}, mul);

    auto sliced = base.slice(1, 1, 9, 2);  // [6, 4], columns 1, 3, 5, 7
    auto long_row = random_tensor<float>({12}, dev, 73);
    auto row4 = long_row.slice(0, 0, 12, 3);  // [4], stride 3
    check(dev, "sliced [6, 4] - strided [4]", sliced - row4, {host(sliced), host(row4)}, sub);

    auto expanded = v6.unsqueeze(1).expand({6, 9});  // stride 0 along dim 1
    check(dev, "expanded [6, 9] + transposed-back [6, 9]", expanded + t.transpose(0, 1), {host(expanded), host(base)},
          add);
  }
}

TEST_CASE("where() broadcasts its condition and both branches") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto cond_col = random_tensor<bool>({6, 1}, dev, 80);
    auto a_row = random_tensor<float>({1, 9}, dev, 81);
    auto s = scalar_tensor(dev, 82);
    auto pick = [](const double* x) { return x[0] != 0 ? x[1] : x[2]; };
    check(dev, "where([6, 1], [1, 9], [])", ft::where(cond_col, a_row, s), {host(cond_col), host(a_row), host(s)},
          pick);
    check(dev, "where([6, 1], [1, 9], 0.5)", ft::where(cond_col, a_row, 0.5f),
          {host(cond_col), host(a_row), number(0.5)}, pick);
    auto cond_row = random_tensor<bool>({9}, dev, 83);
    auto m = random_tensor<float>({6, 9}, dev, 84);
    auto b_col = random_tensor<float>({6, 1}, dev, 85);
    check(dev, "where([9], [6, 9], [6, 1])", ft::where(cond_row, m, b_col), {host(cond_row), host(m), host(b_col)},
          pick);
    // a condition computed from broadcast operands, in the same kernel
    check(dev, "where([6, 1] > [1, 9], [6, 1], [1, 9])", ft::where(b_col > a_row, b_col, a_row),
          {host(b_col), host(a_row)}, [](const double* x) { return x[0] > x[1] ? x[0] : x[1]; });
  }
}

TEST_CASE("assigning a smaller expression to a tensor repeats it to the tensor's shape") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto out = ft::zeros<float>({6, 9}, dev);
    auto b = random_tensor<float>({9}, dev, 90);
    check_assign(dev, "[6, 9] = [9]: b in every row", out, b, {host(b)}, first);
    auto col = random_tensor<float>({6, 1}, dev, 91);
    // (a tensor of the destination's own type would rebind the handle, as `out = col` does in Python)
    check_assign(dev, "[6, 9] = [6, 1] * 1", out, col * 1.0f, {host(col)}, first);
    auto s = scalar_tensor(dev, 92);
    check_assign(dev, "[6, 9] = []", out, s, {host(s)}, first);
    check_assign(dev, "[6, 9] = [9] * 2", out, b * 2.0f, {host(b)}, [](const double* x) { return 2 * x[0]; });
    check_assign(dev, "[6, 9] = [6, 1] + [9]", out, col + b, {host(col), host(b)}, add);

    auto out3 = ft::zeros<float>({2, 6, 9}, dev);
    auto m = random_tensor<float>({6, 9}, dev, 93);
    check_assign(dev, "[2, 6, 9] = [6, 9] - [9]", out3, m - b, {host(m), host(b)}, sub);

    // into a transposed destination: every row of the [9, 6] view is c
    auto out_t = out.transpose(0, 1);  // [9, 6]
    auto c = random_tensor<float>({6}, dev, 94);
    check_assign(dev, "transposed [9, 6] = [6]", out_t, c, {host(c)}, first);
    // a destination of another dtype converts
    auto outd = ft::zeros<double>({6, 9}, dev);
    check_assign(dev, "double [6, 9] = float [9]", outd, b, {host(b)}, first);
  }
}

TEST_CASE("a 0-size dimension broadcast with a size-1 dimension gives an empty result and no launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto z01 = ft::empty<float>({0, 1}, dev);
    auto r15 = random_tensor<float>({1, 5}, dev, 100);
    check(dev, "[0, 1] + [1, 5]", z01 + r15, {host(z01), host(r15)}, add, 0);
    auto z30 = ft::empty<float>({3, 0}, dev);
    auto c31 = random_tensor<float>({3, 1}, dev, 101);
    check(dev, "[3, 1] * [3, 0]", c31 * z30, {host(c31), host(z30)}, mul, 0);
    auto z0 = ft::empty<float>({0}, dev);
    auto s = scalar_tensor(dev, 102);
    check(dev, "[0] - []", z0 - s, {host(z0), host(s)}, sub, 0);
    auto out = ft::empty<float>({0, 5}, dev);
    auto v5 = random_tensor<float>({5}, dev, 103);
    check_assign(dev, "[0, 5] = [5]", out, v5, {host(v5)}, first, 0);
  }
}

// Past the 32768-element grain the CPU loop runs in parallel; on a GPU, many blocks.
TEST_CASE("broadcasting over 1000003 elements") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({1000003}, dev, 110);
    auto one = random_tensor<float>({1}, dev, 111);
    auto s = scalar_tensor(dev, 112);
    check(dev, "[1000003] + [1]", x + one, {host(x), host(one)}, add);
    check(dev, "[] * [1000003]", s * x, {host(s), host(x)}, mul);
    auto m = random_tensor<float>({1009, 991}, dev, 113);  // 999919 elements
    auto col = random_tensor<float>({1009, 1}, dev, 114);
    auto row = random_tensor<float>({991}, dev, 115);
    check(dev, "[1009, 991] - [1009, 1] + [991]", m - col + row, {host(m), host(col), host(row)},
          [](const double* v) { return v[0] - v[1] + v[2]; });
    check(dev, "[1009, 1] * [991]", col * row, {host(col), host(row)}, mul);
  }
}

TEST_CASE("shapes that cannot broadcast throw ft::Error before any launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({3}, dev, 120);
    auto b = random_tensor<float>({4}, dev, 121);
    auto m = random_tensor<float>({2, 3}, dev, 122);
    auto out = ft::zeros<float>({2, 4}, dev);
    ft::stats::reset();
    CHECK_THROWS_AS(ft::eval(a + b), ft::Error);
    CHECK_THROWS_AS(ft::eval(ft::where(a > 0.0f, b, 1.0f)), ft::Error);
    CHECK_THROWS_AS(out = m * 2.0f, ft::Error);  // [2, 3] into [2, 4]
    CHECK(ft::stats::launches(dev) == 0);
    CHECK(ft::stats::launches(ft::kCPU) == 0);
  }
}
