// Matrix products: ft::matmul, ft::linear and the strided-batched GEMM under them, each
// checked against a plain double-precision loop, with launch and allocation counts.
#include <cmath>
#include <limits>
#include <random>

#include "common.hpp"

using ft::index_t;
using ft::test::launches_of;
using ft::test::random_tensor;
using ft::test::to_double;

namespace {

// An operand as a batch of rows×cols matrices, as torch.matmul sees it (a rank-1 operand is
// a row on the left and a column on the right).
struct Dims {
  index_t batch = 1, rows = 1, cols = 1;
};
template <int R>
Dims dims_of(const ft::Shape<R>& s, bool left) {
  Dims d;
  if constexpr (R == 1) {
    (left ? d.cols : d.rows) = s[0];
  } else {
    d.rows = s[R - 2];
    d.cols = s[R - 1];
    if constexpr (R == 3) d.batch = s[0];
  }
  return d;
}

// Σ_p A[i][p]·B[p][j] for each batch in double, and Σ_p |A[i][p]|·|B[p][j]|, the scale of
// the rounding error. A batch of one is broadcast.
struct Ref {
  std::vector<double> value, scale;
};
Ref ref_product(const std::vector<double>& a, Dims da, const std::vector<double>& b, Dims db) {
  const index_t batch = da.batch == 1 ? db.batch : da.batch, m = da.rows, k = da.cols, n = db.cols;
  Ref r{std::vector<double>(static_cast<std::size_t>(batch * m * n)),
        std::vector<double>(static_cast<std::size_t>(batch * m * n))};
  for (index_t q = 0; q < batch; ++q) {
    const double* A = a.data() + (da.batch == 1 ? 0 : q) * m * k;
    const double* B = b.data() + (db.batch == 1 ? 0 : q) * k * n;
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        double s = 0, t = 0;
        for (index_t p = 0; p < k; ++p) {
          s += A[i * k + p] * B[p * n + j];
          t += std::fabs(A[i * k + p] * B[p * n + j]);
        }
        r.value[(q * m + i) * n + j] = s;
        r.scale[(q * m + i) * n + j] = t;
      }
  }
  return r;
}

// |got − want| ≤ (4·√k + 4)·eps·Σ|a||b|: the growth of a float sum's rounding error with k.
template <class T>
void check_product(const std::vector<double>& got, const Ref& ref, index_t k, double eps_scale = 1.0) {
  REQUIRE(got.size() == ref.value.size());
  const double eps = std::numeric_limits<T>::epsilon() * eps_scale;
  const double factor = 4.0 * std::sqrt(static_cast<double>(k)) + 4.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double tol = factor * eps * ref.scale[i] + 1e-300;
    if (!(std::fabs(got[i] - ref.value[i]) <= tol))
      FAIL("element " << i << ": got " << got[i] << ", want " << ref.value[i] << " (tolerance " << tol << ")");
  }
}

// What one call launched and allocated on its device.
struct Counts {
  std::int64_t launches, allocations;
  bool operator==(const Counts&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Counts& c) {
  return os << "{launches " << c.launches << ", allocations " << c.allocations << "}";
}

// matmul(a, b) against the reference, for tensors `a` and `b` in any layout; also checks the
// result's shape against torch.matmul's. Returns the counts of the matmul call alone.
template <class T, int RA, int RB>
Counts check_matmul(const ft::Tensor<T, RA>& a, const ft::Tensor<T, RB>& b) {
  CAPTURE(to_string(a.shape()));
  CAPTURE(to_string(b.shape()));
  ft::stats::reset();
  auto c = ft::matmul(a, b);
  const Counts counts{ft::stats::launches(a.device()), ft::stats::allocations(a.device())};
  const Dims da = dims_of(a.shape(), true), db = dims_of(b.shape(), false);
  std::vector<index_t> want_shape;
  if (RA == 3 || RB == 3) want_shape.push_back(da.batch == 1 ? db.batch : da.batch);
  if (RA > 1) want_shape.push_back(da.rows);
  if (RB > 1) want_shape.push_back(db.cols);
  CHECK(std::vector<index_t>(c.shape().begin(), c.shape().end()) == want_shape);
  CHECK(c.device() == a.device());
  check_product<T>(to_double(c), ref_product(to_double(a), da, to_double(b), db), da.cols);
  return counts;
}

}  // namespace

TEST_CASE("matmul of rank-1/2/3 operands follows torch.matmul, in float and double") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    unsigned seed = 1;
    // 2·2 over odd sizes: every edge of the register tiles and cache blocks.
    for (index_t m : {1, 7, 33, 257})
      for (index_t k : {1, 7, 33, 257})
        for (index_t n : {1, 7, 33, 257}) {
          CHECK(check_matmul(random_tensor<float>({m, k}, dev, seed), random_tensor<float>({k, n}, dev, seed + 1)) ==
                Counts{1, 1});
          seed += 2;
        }
    auto forms = [&]<class T>(T) {
      CHECK(check_matmul(random_tensor<T>({33}, dev, 1), random_tensor<T>({33}, dev, 2)) ==
            Counts{1, 1});  // dot: rank 0
      CHECK(check_matmul(random_tensor<T>({7, 33}, dev, 3), random_tensor<T>({33}, dev, 4)) ==
            Counts{1, 1});  // matrix·vector
      CHECK(check_matmul(random_tensor<T>({33}, dev, 5), random_tensor<T>({33, 7}, dev, 6)) ==
            Counts{1, 1});  // vector·matrix
      CHECK(check_matmul(random_tensor<T>({33, 257}, dev, 7), random_tensor<T>({257, 7}, dev, 8)) ==
            Counts{1, 1});  // 2·2
      CHECK(check_matmul(random_tensor<T>({3, 7, 33}, dev, 9), random_tensor<T>({3, 33, 5}, dev, 10)) ==
            Counts{1, 1});  // batched
      CHECK(check_matmul(random_tensor<T>({3, 7, 33}, dev, 11), random_tensor<T>({33, 5}, dev, 12)) ==
            Counts{1, 1});  // 3·2
      CHECK(check_matmul(random_tensor<T>({7, 33}, dev, 13), random_tensor<T>({3, 33, 5}, dev, 14)) ==
            Counts{1, 1});  // 2·3
      CHECK(check_matmul(random_tensor<T>({33}, dev, 15), random_tensor<T>({3, 33, 5}, dev, 16)) ==
            Counts{1, 1});  // 1·3
      CHECK(check_matmul(random_tensor<T>({3, 7, 33}, dev, 17), random_tensor<T>({33}, dev, 18)) ==
            Counts{1, 1});  // 3·1
    };
    forms(float{});
    forms(double{});
    auto v = random_tensor<double>({4}, dev, 19);
    auto dot = ft::matmul(v, ft::ones<double>({4}, dev));
    static_assert(decltype(dot)::rank == 0);
    auto vv = to_double(v);
    CHECK(dot.item() == doctest::Approx(vv[0] + vv[1] + vv[2] + vv[3]));
  }
}

TEST_CASE("transposed, sliced and permuted views go to the GEMM as they are: no copy, one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto at = random_tensor<float>({33, 7}, dev, 1);    // read as [7, 33] through a transpose
    auto bt = random_tensor<float>({257, 33}, dev, 2);  // read as [33, 257]
    auto big = random_tensor<float>({40, 300}, dev, 3);
    auto rows = big.slice(0, 3, 36).slice(1, 5, 262);   // [33, 257] with row stride 300
    auto x = random_tensor<float>({7, 3, 33}, dev, 4);  // [m, batch, k] permuted to [batch, m, k]
    auto w = random_tensor<float>({3, 5, 33}, dev, 5);  // [batch, n, k] read as [batch, k, n]
    const Counts gemm_only{1, 1};                       // one launch; the result is the only allocation
    CHECK(check_matmul(at.transpose(0, 1), bt.transpose(0, 1)) == gemm_only);
    CHECK(check_matmul(at.transpose(0, 1), rows) == gemm_only);
    CHECK(check_matmul(rows.transpose(0, 1), at) == gemm_only);
    CHECK(check_matmul(x.permute({1, 0, 2}), w.transpose(1, 2)) == gemm_only);
    CHECK(check_matmul(x.permute({1, 0, 2}), bt.transpose(0, 1).slice(1, 0, 5)) == gemm_only);
    CHECK(check_matmul(at.select(1, 2), bt.transpose(0, 1)) == gemm_only);  // a strided vector
    // Neither of the last two strides is 1: that operand is copied first (one more launch).
    auto every_other = big.slice(1, 0, 66, 2);  // [40, 33], strides [300, 2]
    CHECK(check_matmul(at.transpose(0, 1), every_other.transpose(0, 1).slice(1, 0, 5)) == Counts{2, 2});
  }
}

TEST_CASE("batch dimensions of size one, and rank-2 operands, broadcast against the other batch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a1 = random_tensor<double>({1, 7, 33}, dev, 1);
    auto b5 = random_tensor<double>({5, 33, 9}, dev, 2);
    auto a5 = random_tensor<double>({5, 7, 33}, dev, 3);
    auto b1 = random_tensor<double>({1, 33, 9}, dev, 4);
    auto b2 = random_tensor<double>({33, 9}, dev, 5);
    const Counts gemm_only{1, 1};
    CHECK(check_matmul(a1, b5) == gemm_only);
    CHECK(check_matmul(a5, b1) == gemm_only);
    CHECK(check_matmul(a5, b2) == gemm_only);  // folded into one [35, 33]·[33, 9]
    CHECK(check_matmul(b2.transpose(0, 1), b5) == gemm_only);
    CHECK(check_matmul(a1.expand({5, -1, -1}), b5) == gemm_only);  // batch stride 0
    CHECK(check_matmul(a5.transpose(1, 2).transpose(1, 2), b1) == gemm_only);
    auto b5t = random_tensor<double>({9, 5, 33}, dev, 6).permute({1, 2, 0});  // [5, 33, 9], not foldable
    CHECK(check_matmul(a1, b5t) == gemm_only);
    CHECK(check_matmul(a5.permute({1, 0, 2}).contiguous().permute({1, 0, 2}), b2) == gemm_only);  // not foldable
  }
}

TEST_CASE("k = 0 gives zeros; an empty result launches nothing") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::empty<float>({3, 0}, dev);
    auto b = ft::empty<float>({0, 4}, dev);
    ft::Tensor<float, 2> c;
    CHECK(launches_of(dev, [&] { c = ft::matmul(a, b); }) == 1);
    CHECK(c.shape() == ft::Shape<2>{3, 4});
    CHECK(c.to_vector() == std::vector<float>(12, 0.0f));
    auto dot = ft::matmul(ft::empty<double>({0}, dev), ft::empty<double>({0}, dev));
    CHECK(dot.item() == 0.0);
    CHECK(
        launches_of(dev, [&] {
          CHECK(ft::matmul(ft::empty<float>({0, 5}, dev), ft::empty<float>({4, 5}, dev).transpose(0, 1)).numel() == 0);
        }) == 0);
    ft::Tensor<float, 3> e;
    CHECK(launches_of(dev, [&] {
            e = ft::matmul(ft::empty<float>({2, 3, 5}, dev), ft::empty<float>({2, 5, 0}, dev));
          }) == 0);
    CHECK(e.shape() == ft::Shape<3>{2, 3, 0});
    CHECK(launches_of(dev, [&] {
            e = ft::matmul(ft::empty<float>({0, 3, 5}, dev), ft::empty<float>({5, 2}, dev));
          }) == 0);
    CHECK(e.shape() == ft::Shape<3>{0, 3, 2});
  }
}

TEST_CASE("expression operands are evaluated first: one fused launch each, then the GEMM") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = random_tensor<float>({33, 7}, dev, 1);
    auto b = random_tensor<float>({7, 9}, dev, 2);
    auto w = random_tensor<float>({9, 7}, dev, 3);
    ft::Tensor<float, 2> c;
    CHECK(launches_of(dev, [&] { c = ft::matmul(a * 2.0f, b); }) == 2);
    Ref ref = ref_product(to_double(ft::eval(a * 2.0f)), {1, 33, 7}, to_double(b), {1, 7, 9});
    check_product<float>(to_double(c), ref, 7);
    CHECK(launches_of(dev, [&] { c = ft::matmul(a - 1.0f, ft::exp(w.transpose(0, 1))); }) == 3);
    ref = ref_product(to_double(ft::eval(a - 1.0f)), {1, 33, 7}, to_double(ft::eval(ft::exp(w.transpose(0, 1)))),
                      {1, 7, 9});
    check_product<float>(to_double(c), ref, 7);
  }
}

TEST_CASE("relu(matmul(x, W) + b) is the GEMM plus one fused kernel") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({64, 33}, dev, 1);
    auto W = random_tensor<float>({33, 17}, dev, 2);
    auto b = random_tensor<float>({17}, dev, 3);
    ft::Tensor<float, 2> y;
    CHECK(launches_of(dev, [&] { y = ft::relu(ft::matmul(x, W) + b); }) == 2);
    Ref ref = ref_product(to_double(x), {1, 64, 33}, to_double(W), {1, 33, 17});
    auto bv = to_double(b);
    for (std::size_t i = 0; i < ref.value.size(); ++i) {
      ref.value[i] = std::max(ref.value[i] + bv[i % 17], 0.0);
      ref.scale[i] += std::fabs(bv[i % 17]);
    }
    check_product<float>(to_double(y), ref, 33);
  }
}

TEST_CASE("linear is x·Wᵀ + b with W of shape [out, in]; W is read transposed in place") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto W = random_tensor<float>({9, 33}, dev, 1);
    auto b = random_tensor<float>({9}, dev, 2);
    auto x2 = random_tensor<float>({7, 33}, dev, 3);
    auto x3 = random_tensor<float>({2, 7, 33}, dev, 4);
    auto x1 = random_tensor<float>({33}, dev, 5);
    auto Wt = to_double(W.transpose(0, 1));
    auto bv = to_double(b);
    auto with_bias = [&](Ref r) {
      for (std::size_t i = 0; i < r.value.size(); ++i) {
        r.value[i] += bv[i % 9];
        r.scale[i] += std::fabs(bv[i % 9]);
      }
      return r;
    };
    ft::Tensor<float, 2> y2;
    ft::stats::reset();
    y2 = ft::linear(x2, W);
    CHECK(ft::stats::launches(dev) == 1);
    CHECK(ft::stats::allocations(dev) == 1);
    Ref r2 = ref_product(to_double(x2), {1, 7, 33}, Wt, {1, 33, 9});
    check_product<float>(to_double(y2), r2, 33);
    CHECK(launches_of(dev, [&] { y2 = ft::linear(x2, W, b); }) == 2);  // the GEMM + the bias add
    check_product<float>(to_double(y2), with_bias(r2), 33);
    CHECK(launches_of(dev, [&] { y2 = ft::relu(ft::linear(x2, W, b)); }) == 2);  // the add fuses with relu
    Ref relu_ref = with_bias(r2);
    for (double& v : relu_ref.value) v = std::max(v, 0.0);
    check_product<float>(to_double(y2), relu_ref, 33);

    ft::Tensor<float, 3> y3 = ft::linear(x3, W, b);
    CHECK(y3.shape() == ft::Shape<3>{2, 7, 9});
    check_product<float>(to_double(y3), with_bias(ref_product(to_double(x3), {1, 14, 33}, Wt, {1, 33, 9})), 33);
    ft::Tensor<float, 1> y1 = ft::linear(x1, W, b);
    CHECK(y1.shape() == ft::Shape<1>{9});
    check_product<float>(to_double(y1), with_bias(ref_product(to_double(x1), {1, 1, 33}, Wt, {1, 33, 9})), 33);
    ft::Tensor<float, 1> z1 = ft::linear(x1, W);
    check_product<float>(to_double(z1), ref_product(to_double(x1), {1, 1, 33}, Wt, {1, 33, 9}), 33);
  }
}

TEST_CASE("matmul and linear backward write each GEMM straight into .grad: no temporary, no copy") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // linear: dW = gᵀ·x (a fresh gradient, then accumulated) and dx = g·W.
    auto x = random_tensor<float>({2, 7, 33}, dev, 1);
    ft::Var<float, 2> W(random_tensor<float>({9, 33}, dev, 2), ft::requires_grad);
    ft::Var<float, 3> xv(x, ft::requires_grad);
    auto seed = random_tensor<float>({2, 7, 9}, dev, 3);
    const Ref dW = ref_product(to_double(seed.reshape({14, 9}).transpose(0, 1)), {1, 9, 14}, to_double(x), {1, 14, 33});
    const Ref dx = ref_product(to_double(seed), {1, 14, 9}, to_double(W.value()), {1, 9, 33});
    for (int round = 1; round <= 2; ++round) {
      CAPTURE(round);
      ft::Var<float, 3> y = ft::linear(xv, W);
      ft::stats::reset();
      y.backward(seed);
      CHECK(ft::stats::launches(dev) == 2);                        // the two GEMMs
      CHECK(ft::stats::allocations(dev) == (round == 1 ? 2 : 0));  // the two gradients, once
      Ref want_w = dW, want_x = dx;
      for (auto* r : {&want_w, &want_x})
        for (std::size_t i = 0; i < r->value.size(); ++i) {
          r->value[i] *= round;
          r->scale[i] *= round;
        }
      check_product<float>(to_double(W.grad()), want_w, 14);
      check_product<float>(to_double(xv.grad()), want_x, 9);
    }
    // matmul of a batch by a shared matrix: B's gradient is one GEMM over the folded batch
    // (Σ_b A_bᵀ·G_b = A₂ᵀ·G₂), not a batch of products and their sum.
    ft::Var<float, 2> B(random_tensor<float>({33, 9}, dev, 4), ft::requires_grad);
    ft::Var<float, 3> z = ft::matmul(x, B);
    ft::stats::reset();
    z.backward(seed);
    CHECK(ft::stats::launches(dev) == 1);
    CHECK(ft::stats::allocations(dev) == 1);
    check_product<float>(to_double(B.grad()),
                         ref_product(to_double(x.reshape({14, 33}).transpose(0, 1)), {1, 33, 14},
                                     to_double(seed.reshape({14, 9})), {1, 14, 9}),
                         14);
  }
}

TEST_CASE("bfloat16 GEMMs on the CPU (oneDNN on AMX, else widened to float): alpha, beta, transposes, batches") {
  // Each product of two bfloat16 values is exact in float, so every path equals the double sum
  // of the widened products up to float accumulation: |error| ≤ k·2⁻²³·Σ|terms| (and beta·C).
  using ft::bfloat16;
  INFO("the CPU's bfloat16 GEMM runs in bfloat16: ", ft::linalg::detail::cpu_bf16_gemm());
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  struct Case {
    index_t batch, m, n, k;
    bool ta, tb;
    float alpha, beta;
    bool broadcast_a, broadcast_b;
  };
  for (const Case& t : {Case{1, 37, 29, 61, false, false, 1.0f, 0.0f, false, false},
                        Case{1, 64, 48, 96, true, false, 0.5f, 0.0f, false, false},
                        Case{1, 33, 17, 70, false, true, 1.0f, 1.0f, false, false},
                        Case{3, 20, 40, 33, true, true, -2.0f, 0.25f, false, false},
                        Case{4, 16, 24, 40, false, true, 1.0f, 0.0f, true, false},
                        Case{4, 16, 24, 40, false, false, 1.0f, 0.0f, false, true},
                        Case{2, 256, 192, 320, false, false, 1.0f, 0.0f, false, false}}) {
    CAPTURE(t.batch);
    CAPTURE(t.m);
    CAPTURE(t.ta);
    CAPTURE(t.tb);
    // row-major with a padded leading dimension (3 extra columns), as a slice of a wider tensor
    const index_t a_rows = t.ta ? t.k : t.m, a_cols = t.ta ? t.m : t.k;
    const index_t b_rows = t.tb ? t.n : t.k, b_cols = t.tb ? t.k : t.n;
    const index_t lda = a_cols + 3, ldb = b_cols + 3;
    const index_t stride_a = t.broadcast_a ? 0 : a_rows * lda, stride_b = t.broadcast_b ? 0 : b_rows * ldb;
    std::vector<bfloat16> a(static_cast<std::size_t>(std::max<index_t>(stride_a * t.batch, a_rows * lda)));
    std::vector<bfloat16> b(static_cast<std::size_t>(std::max<index_t>(stride_b * t.batch, b_rows * ldb)));
    for (auto& v : a) v = bfloat16(dist(gen));
    for (auto& v : b) v = bfloat16(dist(gen));
    std::vector<float> c(static_cast<std::size_t>(t.batch * t.m * t.n));
    for (auto& v : c) v = dist(gen);
    const std::vector<float> c0 = c;
    ft::linalg::detail::gemm<bfloat16, float>(ft::kCPU, t.ta, t.tb, t.m, t.n, t.k, t.alpha, a.data(), lda, stride_a,
                                              b.data(), ldb, stride_b, t.beta, c.data(), t.n, t.m * t.n, t.batch);
    bool within = true;
    for (index_t q = 0; q < t.batch; ++q)
      for (index_t i = 0; i < t.m; ++i)
        for (index_t j = 0; j < t.n; ++j) {
          double sum = 0, mag = 0;
          for (index_t kk = 0; kk < t.k; ++kk) {
            const double x = static_cast<float>(a[q * stride_a + (t.ta ? kk * lda + i : i * lda + kk)]);
            const double y = static_cast<float>(b[q * stride_b + (t.tb ? j * ldb + kk : kk * ldb + j)]);
            sum += x * y;
            mag += std::abs(x * y);
          }
          const std::size_t at = static_cast<std::size_t>((q * t.m + i) * t.n + j);
          const double want = t.alpha * sum + t.beta * c0[at];
          const double tol = 2.0 * t.k * 0x1p-23 * (std::abs(t.alpha) * mag + std::abs(t.beta * c0[at])) + 1e-30;
          if (std::abs(c[at] - want) > tol) {
            within = false;
            CHECK(c[at] == doctest::Approx(want));
          }
        }
    CHECK(within);
  }
}

TEST_CASE("matmul and linear errors name the op and both shapes, before any launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::zeros<float>({3, 4}, dev);
    auto b = ft::zeros<float>({5, 6}, dev);
    CHECK(launches_of(dev, [&] {
            CHECK_THROWS_WITH_AS((void)ft::matmul(a * 2.0f, b),
                                 "matmul: cannot multiply [3, 4] by [5, 6]: inner dimensions 4 and 5 differ",
                                 ft::Error);
          }) == 0);
    CHECK_THROWS_WITH_AS((void)ft::matmul(ft::zeros<float>({4}, dev), b),
                         "matmul: cannot multiply [4] by [5, 6]: inner dimensions 4 and 5 differ", ft::Error);
    CHECK_THROWS_WITH_AS((void)ft::matmul(ft::zeros<float>({2, 3, 4}, dev), ft::zeros<float>({5, 4, 6}, dev)),
                         "matmul: cannot multiply [2, 3, 4] by [5, 4, 6]: batch dimensions 2 and 5 do not broadcast",
                         ft::Error);
    CHECK_THROWS_WITH_AS((void)ft::linear(a, b),
                         "linear: cannot apply a weight of shape [5, 6] (in_features 6) to an input of shape [3, 4] "
                         "(last dimension 4)",
                         ft::Error);
    CHECK_THROWS_WITH_AS((void)ft::linear(a, ft::zeros<float>({6, 4}, dev), ft::zeros<float>({5}, dev)),
                         "linear: a bias of shape [5] does not match a weight of shape [6, 4] (out_features 6)",
                         ft::Error);
  }
}

FT_GPU_TEST_CASE("matmul of operands on different devices is an error naming both") {
  auto a = ft::zeros<float>({3, 4});
  auto b = ft::zeros<float>({4, 5}, ft::kCUDA);
  CHECK_THROWS_WITH_AS((void)ft::matmul(a, b),
                       "matmul: cannot multiply [3, 4] on cpu by [4, 5] on cuda:0: operands must be on the same "
                       "device; move one with .to(device)",
                       ft::Error);
  CHECK_THROWS_AS((void)ft::linear(a, b.transpose(0, 1)), ft::Error);
}

namespace {

// One gemm (or gemm_blocked) call on padded, batched buffers against the reference: every
// stored element between and after the matrices must be left as it was.
template <class T>
void check_gemm(ft::Device dev, bool blocked, bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, T beta,
                index_t batch, bool share_b) {
  CAPTURE(blocked);
  CAPTURE(ta);
  CAPTURE(tb);
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(batch);
  const index_t ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
  const index_t lda = ca + 3, ldb = cb + 1, ldc = n + 2;
  const index_t sa = ra * lda + 5, sb = share_b ? 0 : rb * ldb + 2, sc = m * ldc + 1;
  auto A = random_tensor<T>({batch * sa}, dev, 1);
  auto B = random_tensor<T>({share_b ? rb * ldb : batch * sb}, dev, 2);
  // beta = 0: C must not be read (NaN stays out of the result).
  auto C = beta == T(0) ? ft::full<T>({batch * sc}, std::numeric_limits<T>::quiet_NaN(), dev)
                        : random_tensor<T>({batch * sc}, dev, 3);
  auto av = to_double(A), bv = to_double(B), cv = to_double(C);
  if (blocked) {
    ft::linalg::detail::gemm_blocked<T>(ta, tb, m, n, k, alpha, A.data(), lda, sa, B.data(), ldb, sb, beta, C.data(),
                                        ldc, sc, batch);
  } else {
    CHECK(launches_of(dev, [&] {
            ft::linalg::detail::gemm<T>(dev, ta, tb, m, n, k, alpha, A.data(), lda, sa, B.data(), ldb, sb, beta,
                                        C.data(), ldc, sc, batch);
          }) == 1);
  }
  auto got = to_double(C);
  const double eps = std::numeric_limits<T>::epsilon() * (4.0 * std::sqrt(static_cast<double>(k)) + 4.0);
  std::vector<bool> written(got.size(), false);
  for (index_t q = 0; q < batch; ++q)
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        double s = 0, t = 0;
        for (index_t p = 0; p < k; ++p) {
          double x = av[q * sa + (ta ? p * lda + i : i * lda + p)], y = bv[q * sb + (tb ? j * ldb + p : p * ldb + j)];
          s += x * y;
          t += std::fabs(x * y);
        }
        const std::size_t at = static_cast<std::size_t>(q * sc + i * ldc + j);
        const double c0 = beta == T(0) ? 0.0 : cv[at];
        const double want = double(alpha) * s + double(beta) * c0;
        const double tol = eps * (std::fabs(double(alpha)) * t + std::fabs(double(beta) * c0)) + 1e-300;
        if (!(std::fabs(got[at] - want) <= tol))
          FAIL("C[" << q << "][" << i << "][" << j << "] = " << got[at] << ", want " << want);
        written[at] = true;
      }
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!written[i] && !(got[i] == cv[i] || (std::isnan(got[i]) && std::isnan(cv[i]))))
      FAIL("element " << i << " outside C was overwritten");
}

// Each micro-kernel of the blocked CPU kernel that this CPU can run (it normally runs the widest).
std::vector<ft::linalg::detail::blocked::Isa> cpu_isas() {
  std::vector<ft::linalg::detail::blocked::Isa> r;
  for (int i = 0; i <= static_cast<int>(ft::linalg::detail::blocked::best_isa()); ++i)
    r.push_back(static_cast<ft::linalg::detail::blocked::Isa>(i));
  return r;
}
struct ForceIsa {
  explicit ForceIsa(ft::linalg::detail::blocked::Isa isa) {
    ft::linalg::detail::blocked::testing::force_isa = static_cast<int>(isa);
  }
  ~ForceIsa() { ft::linalg::detail::blocked::testing::force_isa = -1; }
  ForceIsa(const ForceIsa&) = delete;
  ForceIsa& operator=(const ForceIsa&) = delete;
};

}  // namespace

TEST_CASE("gemm: transpose flags, leading dimensions, batch strides, alpha and beta") {
  auto cases = [](ft::Device dev, bool blocked) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_gemm<float>(dev, blocked, ta, tb, 33, 7, 257, 1.0f, 0.0f, 1, false);
        check_gemm<double>(dev, blocked, ta, tb, 13, 35, 9, -0.5, 2.0, 3, false);
        check_gemm<float>(dev, blocked, ta, tb, 7, 33, 20, 2.0f, 1.0f, 4, true);  // B shared: stride 0
        check_gemm<double>(dev, blocked, ta, tb, 1, 1, 1, 1.0, 0.5, 2, false);
      }
    check_gemm<float>(dev, blocked, false, false, 5, 6, 0, 1.0f, 0.5f, 2, false);     // k = 0: C = beta·C
    check_gemm<double>(dev, blocked, true, false, 5, 6, 0, 1.0, 0.0, 2, false);       // k = 0, beta = 0: zeros
    check_gemm<float>(dev, blocked, false, true, 4, 5, 6, 0.0f, 3.0f, 2, false);      // alpha = 0
    check_gemm<float>(dev, blocked, false, false, 65, 70, 24, 1.0f, 0.0f, 9, false);  // batch across threads
  };
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    cases(dev, false);  // the device's library: cuBLAS, the CPU BLAS, or the blocked kernel
  }
  for (auto isa : cpu_isas()) {
    CAPTURE(ft::linalg::detail::blocked::isa_name(isa));
    ForceIsa force(isa);
    cases(ft::kCPU, true);
  }
}

TEST_CASE("the blocked CPU kernel is right across its cache blocks and thread splits") {
  // k beyond one k-slice, n beyond one column panel, m beyond one row block; m = 1 splits columns.
  struct Size {
    index_t m, n, k;
  };
  for (auto isa : cpu_isas())
    for (Size size : {Size{200, 4100, 400}, Size{1, 4100, 400}, Size{4100, 1, 400}}) {
      CAPTURE(ft::linalg::detail::blocked::isa_name(isa));
      ForceIsa force(isa);
      const index_t m = size.m, n = size.n, k = size.k;
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      auto a = random_tensor<float>({m, k}, ft::kCPU, 1);
      auto b = random_tensor<float>({k, n}, ft::kCPU, 2);
      auto c = ft::empty<float>({m, n});
      ft::linalg::detail::gemm_blocked<float>(false, false, m, n, k, 1.0f, a.data(), k, 0, b.data(), n, 0, 0.0f,
                                              c.data(), n, 0, 1);
      auto db = ft::empty<double>({k, n});  // the same product in double, through the other transpose
      auto da = ft::empty<double>({m, k});
      for (index_t i = 0; i < k * n; ++i) db.data()[i] = b.data()[i];
      for (index_t i = 0; i < m * k; ++i) da.data()[i] = a.data()[i];
      auto dc = ft::empty<double>({n, m});
      ft::linalg::detail::gemm_blocked<double>(true, true, n, m, k, 1.0, db.data(), n, 0, da.data(), k, 0, 0.0,
                                               dc.data(), m, 0, 1);
      // Reference rows: the first, the last and those around block edges.
      for (index_t i : {index_t(0), std::min<index_t>(m - 1, 95), std::min<index_t>(m - 1, 96),
                        std::min<index_t>(m - 1, 192), m - 1}) {
        for (index_t j = 0; j < n; ++j) {
          double s = 0, t = 0;
          for (index_t p = 0; p < k; ++p) {
            s += double(a.data()[i * k + p]) * b.data()[p * n + j];
            t += std::fabs(double(a.data()[i * k + p]) * b.data()[p * n + j]);
          }
          const double tolf = (4 * std::sqrt(double(k)) + 4) * std::numeric_limits<float>::epsilon() * t;
          const double told = (4 * std::sqrt(double(k)) + 4) * std::numeric_limits<double>::epsilon() * t;
          if (!(std::fabs(c.data()[i * n + j] - s) <= tolf)) FAIL("float C[" << i << "][" << j << "]");
          if (!(std::fabs(dc.data()[j * m + i] - s) <= told)) FAIL("double Cᵀ[" << j << "][" << i << "]");
        }
      }
    }
}

#if defined(FT_HAVE_CBLAS)
TEST_CASE("a BLAS that chose a pre-AVX2 core is bypassed for the blocked kernel where this CPU has AVX2") {
  using ft::linalg::detail::blas_core_outdated;
  using Isa = ft::linalg::detail::blocked::Isa;
  CHECK(blas_core_outdated("Prescott", Isa::avx512));  // OpenBLAS 0.3.21's fallback on Emerald Rapids
  CHECK(blas_core_outdated("Sandybridge", Isa::avx2));
  CHECK_FALSE(blas_core_outdated("Prescott", Isa::simd128));  // nothing better to offer
  CHECK_FALSE(blas_core_outdated("SkylakeX", Isa::avx512));
  CHECK_FALSE(blas_core_outdated("Zen", Isa::avx2));
  CHECK_FALSE(blas_core_outdated("SapphireRapids", Isa::avx512));
  CHECK_FALSE(blas_core_outdated("", Isa::avx512));  // unknown: trust the BLAS
}
#endif

FT_GPU_TEST_CASE("TF32 is off by default and used only when allowed") {
  CHECK_FALSE(ft::allow_tf32());
  auto a = random_tensor<float>({128, 512}, ft::kCUDA, 1);
  auto b = random_tensor<float>({512, 64}, ft::kCUDA, 2);
  Ref ref = ref_product(to_double(a), {1, 128, 512}, to_double(b), {1, 512, 64});
  check_product<float>(to_double(ft::matmul(a, b)), ref, 512);
  ft::set_allow_tf32(true);
  auto tf32 = to_double(ft::matmul(a, b));
  ft::set_allow_tf32(false);
  check_product<float>(tf32, ref, 512, 8192.0);  // 10-bit mantissa inputs: eps 2^-11 instead of 2^-24
  CHECK_FALSE(ft::allow_tf32());
}
