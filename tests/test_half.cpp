// The two-byte floating types, ft::half and ft::bfloat16: conversions bit for bit, promotion,
// fused statements that compute in float and round once, reductions that accumulate in float,
// against PyTorch's results (tests/golden/half.txt, from make_half.py) on every device.
#include <bit>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "ft/ft.hpp"
#include "golden/golden.hpp"

// A named namespace, not `using namespace ft;` at file scope: CUB's sort and scan kernels in this
// file make nvcc's generated stub name `cuda::std::…` at global scope, which ft::cuda would make
// ambiguous.
namespace half_tests {
using namespace ft;
using ft::test::devices;

namespace {

const test::Golden& golden() {
  static const test::Golden g("half.txt");
  return g;
}

template <class H>
std::string prefix() {
  return std::is_same_v<H, ft::half> ? "f16." : "bf16.";
}

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

// The value of bit pattern b, computed from the format's definition in double.
template <class H>
double reference_value(std::uint16_t b) {
  constexpr int mant = std::is_same_v<H, ft::half> ? 10 : 7, bias = std::is_same_v<H, ft::half> ? 15 : 127;
  constexpr int emax = (1 << (15 - mant)) - 1;
  const int e = (b >> mant) & emax, m = b & ((1 << mant) - 1);
  const double sign = (b & 0x8000) ? -1.0 : 1.0;
  if (e == emax) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, 1 - bias - mant);
  return sign * std::ldexp((1 << mant) + m, e - bias - mant);
}

std::uint32_t fnv1a32(const std::vector<std::uint32_t>& words) {
  std::uint32_t h = 0x811c9dc5u;
  for (std::uint32_t w : words)
    for (int k = 0; k < 4; ++k) {
      h ^= (w >> (8 * k)) & 0xffu;
      h *= 0x01000193u;
    }
  return h;
}

// All 65536 values of H in bit-pattern order.
template <class H>
Tensor<H, 1> every_pattern() {
  Tensor<H, 1> t(Shape<1>{65536});
  for (std::uint32_t b = 0; b < 65536; ++b) t.data()[b] = H::from_bits(static_cast<std::uint16_t>(b));
  return t;
}

// Within `ulps` units in the last place of H at the wanted value (NaN matches NaN).
template <class H>
void check_ulps(const std::vector<double>& got, const std::vector<double>& want, int ulps, const std::string& what) {
  REQUIRE(got.size() == want.size());
  constexpr int mant = std::is_same_v<H, ft::half> ? 10 : 7;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]) || std::isinf(want[i])) {
      CHECK_MESSAGE((std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i]), what, " element ", i);
      continue;
    }
    int e = 0;
    std::frexp(want[i], &e);
    const double ulp = std::ldexp(1.0, std::max(e - 1, std::is_same_v<H, ft::half> ? -14 : -126) - mant);
    CHECK_MESSAGE(std::fabs(got[i] - want[i]) <= ulps * ulp, what, " element ", i, ": got ", got[i], ", want ",
                  want[i]);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("half types: every bit pattern reads as the format defines and as PyTorch reads it", H, ft::half,
                   bfloat16) {
  std::vector<std::uint32_t> table(65536);
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = static_cast<float>(H::from_bits(static_cast<std::uint16_t>(b)));
    table[b] = std::isnan(f) ? 0x7fc00000u : bits(f);  // NaN payloads aside
    const double want = reference_value<H>(static_cast<std::uint16_t>(b));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(f));
    } else {
      REQUIRE_MESSAGE(static_cast<double>(f) == want, "pattern ", b);
      REQUIRE(std::signbit(f) == static_cast<bool>(b & 0x8000));
      REQUIRE(H(f).x == b);  // and back
    }
  }
  CHECK(fnv1a32(table) == static_cast<std::uint32_t>(golden().scalar(prefix<H>() + "table_hash")));
}

TEST_CASE_TEMPLATE("half types: float converts by rounding to nearest even, as PyTorch does, on every device", H,
                   ft::half, bfloat16) {
  const auto& in = golden().values(prefix<H>() + "from_float.in");
  const auto& want = golden().values(prefix<H>() + "from_float.out");
  Tensor<float, 1> x(Shape<1>{static_cast<index_t>(in.size())});
  for (std::size_t i = 0; i < in.size(); ++i) x.data()[i] = std::bit_cast<float>(static_cast<std::uint32_t>(in[i]));
  for (Device dev : devices()) {
    CAPTURE(dev);
    Tensor<H, 1> h = cast<H>(x.to(dev));
    const auto got = h.to_vector();
    for (std::size_t i = 0; i < in.size(); ++i) {
      CAPTURE(static_cast<std::uint32_t>(in[i]));
      if (std::isnan(x.data()[i]))
        REQUIRE(std::isnan(static_cast<float>(got[i])));  // NaN payloads aside
      else
        REQUIRE(got[i].x == static_cast<std::uint16_t>(want[i]));
    }
  }
}

TEST_CASE_TEMPLATE("half types: every value goes to float and back unchanged on every device", H, ft::half, bfloat16) {
  const auto all = every_pattern<H>();
  for (Device dev : devices()) {
    CAPTURE(dev);
    const Tensor<float, 1> f = cast<float>(all.to(dev));
    const Tensor<H, 1> back = cast<H>(f);
    const auto fv = f.to_vector();
    const auto bv = back.to_vector();
    for (std::uint32_t b = 0; b < 65536; ++b) {
      const float host = static_cast<float>(H::from_bits(static_cast<std::uint16_t>(b)));
      if (std::isnan(host)) {
        REQUIRE(std::isnan(fv[b]));
        continue;
      }
      REQUIRE(bits(fv[b]) == bits(host));  // the same bits as the host's conversion
      REQUIRE(bv[b].x == b);
    }
  }
}

TEST_CASE("half types: promotion follows PyTorch's table") {
  static_assert(std::is_same_v<promote_t<ft::half, ft::half>, ft::half>);
  static_assert(std::is_same_v<promote_t<bfloat16, bfloat16>, bfloat16>);
  static_assert(std::is_same_v<promote_t<ft::half, bfloat16>, float>);
  static_assert(std::is_same_v<promote_t<ft::half, float>, float>);
  static_assert(std::is_same_v<promote_t<bfloat16, double>, double>);
  static_assert(std::is_same_v<promote_t<ft::half, std::int64_t>, ft::half>);
  static_assert(std::is_same_v<promote_t<bool, bfloat16>, bfloat16>);
  Tensor<ft::half, 1> h = ones<ft::half>({3});
  Tensor<bfloat16, 1> b = ones<bfloat16>({3});
  Tensor<float, 1> f = ones<float>({3});
  Tensor<std::int32_t, 1> i = ones<std::int32_t>({3});
  static_assert(std::is_same_v<decltype(h + h)::value_type, ft::half>);
  static_assert(std::is_same_v<decltype(h + b)::value_type, float>);
  static_assert(std::is_same_v<decltype(h * f)::value_type, float>);
  static_assert(std::is_same_v<decltype(h * i)::value_type, ft::half>);
  static_assert(std::is_same_v<decltype(h * 2.5)::value_type, ft::half>);  // a weak scalar keeps the type
  static_assert(std::is_same_v<decltype(i * 2.5)::value_type, float>);
  static_assert(std::is_same_v<decltype(exp(b))::value_type, bfloat16>);
  static_assert(std::is_same_v<decltype(exp(i))::value_type, float>);
  static_assert(std::is_same_v<decltype(h < 1)::value_type, bool>);
  static_assert(std::is_same_v<decltype(sum(b))::value_type, bfloat16>);
  static_assert(std::is_same_v<decltype(argmax(h))::value_type, std::int64_t>);
  static_assert(std::is_same_v<decltype(cast<ft::half>(f))::value_type, ft::half>);
  // a zero-dim float tensor next to a half one is read as half (same category), as torch
  Tensor<float, 0> z(Shape<0>{});
  z = 1.0f;
  static_assert(std::is_same_v<decltype(h + z)::value_type, ft::half>);
  CHECK(dtype_of<ft::half>() == DType::Float16);
  CHECK(dtype_of<bfloat16>() == DType::BFloat16);
  CHECK(dtype_size(DType::BFloat16) == 2);
  CHECK(std::string(dtype_name(DType::Float16)) == "float16");
}

TEST_CASE_TEMPLATE("half types: ops match PyTorch's on every device", H, ft::half, bfloat16) {
  const auto& g = golden();
  const std::string p = prefix<H>();
  for (Device dev : devices()) {
    CAPTURE(dev);
    const auto a = g.tensor<H, 2>(p + "a", dev);
    const auto b = g.tensor<H, 2>(p + "b", dev);
    auto check_op = [&](const std::string& op, const auto& e, int ulps) {
      CAPTURE(op);
      using E = std::decay_t<decltype(e)>;
      static_assert(std::is_same_v<typename E::value_type, H>);
      const Tensor<H, E::rank> t = e;
      check_ulps<H>(test::to_double(t.to(kCPU)), g.values(p + op), ulps, op);
    };
    // torch's half kernels compute each op in float and round: the same bits as here
    check_op("add", a + b, 0);
    check_op("mul", a * b, 0);
    check_op("div", a / b, 0);
    check_op("relu", relu(a), 0);
    check_op("sqrt_abs", sqrt(abs(a)), 0);
    // a weak scalar stays float, unrounded (PyTorch's CUDA kernels; torch 1.13's CPU rounds it)
    check_op("sub_scalar", a - 0.3, 0);
    check_op("mul_scalar", a * 2.5, 0);
    // transcendental: float libraries differ in the last float bit, which can move a rounding
    check_op("exp", exp(a), 1);
    check_op("tanh", tanh(a), 1);
    check_op("sigmoid", sigmoid(a), 1);
    // reductions accumulate in float (torch's too), in another order
    check_op("sum1", sum(a, 1), 1);
    check_op("mean1", mean(a, 1), 1);
    check_op("max1", max(a, 1), 0);
    check_op("sum", sum(a), 1);
    check_op("mean", mean(a), 1);
    CHECK(Tensor<std::int64_t, 1>(argmax(a, 1)).to_vector() == g.tensor<std::int64_t, 1>(p + "argmax1").to_vector());
    // one statement computes in float and rounds once, at its store: one launch
    const auto before = stats::launches(dev);
    const Tensor<H, 2> fused = relu(a * b + a);
    CHECK(stats::launches(dev) - before == 1);
    check_ulps<H>(test::to_double(fused.to(kCPU)), g.values(p + "fused"), 0, "fused");
    // casts: to the other two-byte type, to int64 (truncating), from int64 (overflow to inf)
    using Other = std::conditional_t<std::is_same_v<H, ft::half>, bfloat16, ft::half>;
    const Tensor<Other, 2> other = cast<Other>(a);
    check_ulps<Other>(test::to_double(other.to(kCPU)), g.values(p + "to_other"), 0, "to_other");
    const Tensor<H, 2> scaled = a * 100;
    CHECK(Tensor<std::int64_t, 2>(cast<std::int64_t>(scaled)).to(kCPU).to_vector() ==
          g.tensor<std::int64_t, 2>(p + "to_int").to_vector());
    // the inputs of make_half.py's "from_int"
    const std::vector<std::int64_t> from{65519, 65520, 70000, -65520, 257, 2049, 16777217};
    Tensor<std::int64_t, 1> src(Shape<1>{7});
    for (int k = 0; k < 7; ++k) src.data()[k] = from[static_cast<std::size_t>(k)];
    const Tensor<H, 1> conv = cast<H>(src.to(dev));
    check_ulps<H>(test::to_double(conv.to(kCPU)), g.values(p + "from_int"), 0, "from_int");
  }
}

TEST_CASE_TEMPLATE("half types: row-wise composites, sorting and scans match PyTorch's on every device", H, ft::half,
                   bfloat16) {
  const auto& g = golden();
  const std::string p = prefix<H>();
  for (Device dev : devices()) {
    CAPTURE(dev);
    const auto a = g.tensor<H, 2>(p + "a", dev);
    auto check = [&](const std::string& op, const auto& t, int ulps) {
      CAPTURE(op);
      static_assert(std::is_same_v<typename std::decay_t<decltype(t)>::value_type, H>);
      check_ulps<H>(test::to_double(t.to(kCPU)), g.values(p + op), ulps, op);
    };
    // softmax, log_softmax, layer_norm, cross_entropy: computed in float, rounded once; one launch each
    auto before = stats::launches(dev);
    const Tensor<H, 2> sm1 = softmax(a * 1, 1), lsm1 = log_softmax(a, 1), sm0 = softmax(a, 0);
    CHECK(stats::launches(dev) - before == 3);
    check("softmax1", sm1, 1);
    check("log_softmax1", lsm1, 1);
    check("softmax0", sm0, 1);
    const auto ln = layer_norm(a, 1, g.tensor<H, 1>(p + "w", dev), g.tensor<H, 1>(p + "bb", dev));
    static_assert(std::is_same_v<typename decltype(ln.rstd)::value_type, float>, "statistics kept in float");
    check("layer_norm", ln.output, 1);
    const Tensor<H, 0> ce = cross_entropy(a, g.tensor<std::int64_t, 1>(p + "target", dev), {.label_smoothing = 0.1});
    check("cross_entropy", ce, 1);
    // ordering compares the values exactly; scans accumulate in double (cumsum) or float
    const auto sorted = sort(a, 1, true, true);
    check("sort1.values", sorted.values, 0);
    CHECK(sorted.indices.to(kCPU).to_vector() == g.tensor<std::int64_t, 2>(p + "sort1.indices").to_vector());
    check("topk1.values", topk(a, 5, 1).values, 0);
    check("cumsum1", cumsum(a, 1), 0);
    check("logcumsumexp1", logcumsumexp(a, 1), 1);
    check("cummax1.values", cummax(a, 1).values, 0);
    const auto u = unique(a, true, false, true);
    check("unique.values", u.values, 0);
    CHECK(u.counts.to(kCPU).to_vector() == g.tensor<std::int64_t, 1>(p + "unique.counts").to_vector());
  }
}

TEST_CASE_TEMPLATE("half types: a sum accumulates in float, not in the two-byte type", H, ft::half, bfloat16) {
  for (Device dev : devices()) {
    CAPTURE(dev);
    // 0.1 rounded to H, 20000 times: a two-byte accumulator would stall far below the sum
    const Tensor<H, 1> x = full<H>({20000}, H(0.1f), dev);
    const double want = 20000.0 * static_cast<double>(static_cast<float>(H(0.1f)));
    const Tensor<H, 0> s = sum(x);
    check_ulps<H>({static_cast<double>(static_cast<float>(s.to(kCPU).item()))}, {want}, 1, "sum");
    const Tensor<H, 0> m = mean(x);
    CHECK(static_cast<float>(m.to(kCPU).item()) == static_cast<float>(H(0.1f)));
  }
}

TEST_CASE_TEMPLATE("half types: factories, printing and the type-erased tensor", H, ft::half, bfloat16) {
  const Tensor<H, 2> z = zeros<H>({2, 3});
  CHECK(test::to_double(z) == std::vector<double>(6, 0.0));
  const Tensor<H, 1> r = arange<H>(H(0.0f), H(4.0f));
  CHECK(test::to_double(r) == std::vector<double>{0, 1, 2, 3});
  const Tensor<H, 2> u = rand<H>({16, 16});
  for (H v : u.to_vector()) CHECK((static_cast<float>(v) >= 0.0f && static_cast<float>(v) <= 1.0f));
  std::ostringstream os;
  os << Tensor<H, 1>(full<H>({2}, H(1.5f)));
  CHECK(os.str() ==
        std::string("tensor([1.5000, 1.5000], dtype=") + (std::is_same_v<H, ft::half> ? "float16" : "bfloat16") + ")");
  AnyTensor any(u);
  CHECK(any.dtype() == dtype_of<H>());
  CHECK(any.nbytes() == 2 * 256);
  const bool typed =
      visit(any, [](const auto& t) { return std::is_same_v<typename std::decay_t<decltype(t)>::value_type, H>; });
  CHECK(typed);
  CHECK(any.as<H, 2>().data() == u.data());
}

TEST_CASE_TEMPLATE("half types: matmul and linear accumulate in float and round once, on every device", H, ft::half,
                   bfloat16) {
  const auto& g = golden();
  const std::string p = prefix<H>();
  for (Device dev : devices()) {
    CAPTURE(dev);
    const auto a = g.tensor<H, 2>(p + "a", dev);
    const auto b = g.tensor<H, 2>(p + "b", dev);
    // PyTorch's product (bf16: its own fp32-accumulating kernel; f16: computed in float, rounded)
    const Tensor<H, 2> mm = matmul(a, b.transpose(0, 1));
    check_ulps<H>(test::to_double(mm.to(kCPU)), g.values(p + "mm"), 1, "mm");
    // against the float product of the same values, rounded once: shapes, transposes, batches
    const Tensor<float, 3> x = randn<float>({3, 20, 33}, dev, 7);
    const Tensor<float, 2> w = randn<float>({17, 33}, dev, 8);
    const Tensor<float, 1> bias = randn<float>({17}, dev, 9);
    const Tensor<H, 3> xh = cast<H>(x);
    const Tensor<H, 2> wh = cast<H>(w);
    const Tensor<H, 1> bh = cast<H>(bias);
    const Tensor<float, 3> xr = cast<float>(xh);
    const Tensor<float, 2> wr = cast<float>(wh);
    const Tensor<float, 1> br = cast<float>(bh);
    const auto before = stats::launches(dev);
    const Tensor<H, 3> y = relu(linear(xh, wh, bh));  // the GEMM, then one fused epilogue in float
    CHECK(stats::launches(dev) - before == 2);
    const Tensor<H, 3> want = cast<H>(relu(linear(xr, wr, br)));
    check_ulps<H>(test::to_double(y.to(kCPU)), test::to_double(want.to(kCPU)), 1, "linear");
    const Tensor<H, 3> bmm = matmul(xh, xh.transpose(1, 2));
    const Tensor<H, 3> bmm_want = cast<H>(matmul(xr, xr.transpose(1, 2)));
    check_ulps<H>(test::to_double(bmm.to(kCPU)), test::to_double(bmm_want.to(kCPU)), 1, "bmm");
    const Tensor<H, 1> mv = matmul(wh, xh.select(0, 1).select(0, 2));
    const Tensor<H, 1> mv_want = cast<H>(matmul(wr, xr.select(0, 1).select(0, 2)));
    check_ulps<H>(test::to_double(mv.to(kCPU)), test::to_double(mv_want.to(kCPU)), 1, "matrix-vector");
  }
}

}  // namespace half_tests
