// Convolution and pooling (NCHW): conv2d and its backward primitives, conv1d and
// conv_transpose2d (with their Var gradients) against direct double-precision loops and their
// adjoints (and finite differences), pooling forward/backward against plain loops, determinism,
// launch counts and errors.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common.hpp"

using ft::index_t;
using ft::Pair;
using ft::Shape;
using ft::test::check_close;
using ft::test::error_of;
using ft::test::launches_of;
using ft::test::random_tensor;
using ft::test::to_double;

namespace {

// ---------------------------------------------------------------------------------------
// Reference convolution: the seven loops of the definition, visiting every (output, input,
// weight) triple that meets; forward and both adjoints are accumulations over the same visit.
// ---------------------------------------------------------------------------------------

struct ConvCase {
  index_t n, c, h, w, o, kh, kw;
  ft::Conv2dOptions opt;
  bool bias;
};

index_t ref_out(index_t in, index_t k, index_t s, index_t p, index_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

Shape<4> ref_out_shape(const ConvCase& k) {
  return {k.n, k.o, ref_out(k.h, k.kh, k.opt.stride.h, k.opt.padding.h, k.opt.dilation.h),
          ref_out(k.w, k.kw, k.opt.stride.w, k.opt.padding.w, k.opt.dilation.w)};
}

// f(y_index, x_index, w_index) for each term x[...]·w[...] of y[...].
void for_each_term(const ConvCase& k, const std::function<void(std::size_t, std::size_t, std::size_t)>& f) {
  const Shape<4> ys = ref_out_shape(k);
  const index_t cg = k.c / k.opt.groups, og = k.o / k.opt.groups;
  for (index_t n = 0; n < k.n; ++n)
    for (index_t o = 0; o < k.o; ++o)
      for (index_t oy = 0; oy < ys[2]; ++oy)
        for (index_t ox = 0; ox < ys[3]; ++ox)
          for (index_t ci = 0; ci < cg; ++ci)
            for (index_t i = 0; i < k.kh; ++i)
              for (index_t j = 0; j < k.kw; ++j) {
                const index_t iy = oy * k.opt.stride.h - k.opt.padding.h + i * k.opt.dilation.h;
                const index_t ix = ox * k.opt.stride.w - k.opt.padding.w + j * k.opt.dilation.w;
                if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                const index_t c = (o / og) * cg + ci;
                f(static_cast<std::size_t>(((n * k.o + o) * ys[2] + oy) * ys[3] + ox),
                  static_cast<std::size_t>(((n * k.c + c) * k.h + iy) * k.w + ix),
                  static_cast<std::size_t>(((o * cg + ci) * k.kh + i) * k.kw + j));
              }
}

std::vector<double> ref_conv(const ConvCase& k, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>& b) {
  const Shape<4> ys = ref_out_shape(k);
  std::vector<double> y(static_cast<std::size_t>(ys.numel()), 0.0);
  const index_t plane = ys[2] * ys[3];
  if (!b.empty())
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = b[(i / plane) % k.o];
  for_each_term(k, [&](std::size_t yi, std::size_t xi, std::size_t wi) { y[yi] += x[xi] * w[wi]; });
  return y;
}

std::vector<double> ref_backward_data(const ConvCase& k, const std::vector<double>& gy, const std::vector<double>& w) {
  std::vector<double> dx(static_cast<std::size_t>(k.n * k.c * k.h * k.w), 0.0);
  for_each_term(k, [&](std::size_t yi, std::size_t xi, std::size_t wi) { dx[xi] += gy[yi] * w[wi]; });
  return dx;
}

std::vector<double> ref_backward_weight(const ConvCase& k, const std::vector<double>& x,
                                        const std::vector<double>& gy) {
  std::vector<double> dw(static_cast<std::size_t>(k.o * (k.c / k.opt.groups) * k.kh * k.kw), 0.0);
  for_each_term(k, [&](std::size_t yi, std::size_t xi, std::size_t wi) { dw[wi] += gy[yi] * x[xi]; });
  return dw;
}

std::vector<double> ref_backward_bias(const ConvCase& k, const std::vector<double>& gy) {
  const Shape<4> ys = ref_out_shape(k);
  std::vector<double> db(static_cast<std::size_t>(k.o), 0.0);
  for (std::size_t i = 0; i < gy.size(); ++i) db[(i / static_cast<std::size_t>(ys[2] * ys[3])) % k.o] += gy[i];
  return db;
}

template <class T>
double tol(ft::Device dev) {
  if constexpr (std::is_same_v<T, double>) return 1e-10;
  return dev.is_cpu() ? 2e-5 : 1e-3;  // cuDNN may pick Winograd or FFT, less exact in fp32
}

// conv2d and the three backward primitives for one case, against the reference.
template <class T>
void check_conv_case(ft::Device dev, const ConvCase& k, unsigned seed) {
  CAPTURE(k.n);
  CAPTURE(k.c);
  CAPTURE(k.h);
  CAPTURE(k.w);
  CAPTURE(k.o);
  CAPTURE(k.kh);
  CAPTURE(k.kw);
  CAPTURE(k.opt.stride);
  CAPTURE(k.opt.padding);
  CAPTURE(k.opt.dilation);
  CAPTURE(k.opt.groups);
  CAPTURE(k.bias);
  const index_t cg = k.c / k.opt.groups;
  auto x = random_tensor<T>({k.n, k.c, k.h, k.w}, dev, seed, -1, 1);
  auto w = random_tensor<T>({k.o, cg, k.kh, k.kw}, dev, seed + 1, -1, 1);
  auto b = random_tensor<T>({k.o}, dev, seed + 2, -1, 1);
  const Shape<4> ys = ref_out_shape(k);
  auto gy = random_tensor<T>({ys[0], ys[1], ys[2], ys[3]}, dev, seed + 3, -1, 1);
  auto xv = to_double(x), wv = to_double(w), bv = to_double(b), gv = to_double(gy);
  const double t = tol<T>(dev);

  ft::Tensor<T, 4> y = k.bias ? ft::conv2d(x, w, b, k.opt) : ft::conv2d(x, w, k.opt);
  CHECK(y.shape() == ys);
  CHECK(y.device() == dev);
  check_close(y, ref_conv(k, xv, wv, k.bias ? bv : std::vector<double>{}), t, t);

  ft::Tensor<T, 4> dx = ft::conv2d_backward_data(gy, w, x.shape(), k.opt);
  CHECK(dx.shape() == x.shape());
  check_close(dx, ref_backward_data(k, gv, wv), t, t);

  ft::Tensor<T, 4> dw = ft::conv2d_backward_weight(x, gy, w.shape(), k.opt);
  CHECK(dw.shape() == w.shape());
  check_close(dw, ref_backward_weight(k, xv, gv), t, t * 10);

  ft::Tensor<T, 1> db = ft::conv2d_backward_bias(gy);
  check_close(db, ref_backward_bias(k, gv), t, t * 10);
}

// oneDNN's convolutions off (the im2col + GEMM path alone) while alive, where the build has them.
struct Im2colOnly {
  bool saved = ft::linalg::testing::onednn_conv.exchange(false);
  ~Im2colOnly() { ft::linalg::testing::onednn_conv = saved; }
};

// Cases with each of stride, padding, dilation, groups ≠ 1, pairs, odd sizes, batch 1 and 3.
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {2, 3, 7, 7, 4, 3, 3, {.padding = 1}, true},                                              // "same" 3x3
      {3, 3, 13, 13, 5, 3, 3, {.stride = 2, .padding = 1}, false},                              // the example
      {1, 2, 9, 11, 3, 3, 2, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {2, 1}}, true},  // pairs
      {3, 3, 13, 13, 6, 3, 3, {.padding = 2, .dilation = 2, .groups = 3}, true},  // depthwise, multiplier 2
      {1, 6, 7, 7, 4, 3, 3, {.stride = {1, 2}, .groups = 2}, false},              // more groups than samples
      {2, 4, 5, 7, 6, 1, 1, {.groups = 2}, true},                                 // pointwise: no im2col
      {1, 3, 13, 13, 2, 5, 5, {.stride = 3}, false},                              // kernel 5, stride 3
      {3, 2, 7, 7, 3, 7, 7, {}, true},                                            // kernel = input: 1x1 output
      // more input channels: oneDNN's data gradient too (from 6 a group) where the build has it
      {2, 8, 9, 9, 6, 3, 3, {.padding = 1}, true},                                          // "same" 3x3
      {3, 8, 11, 10, 8, 3, 3, {.stride = 2, .padding = {1, 2}, .dilation = {2, 1}}, true},  // pairs, dilation
      {2, 8, 9, 9, 8, 3, 3, {.padding = 1, .groups = 2}, false},                            // groups of 4
      {1, 12, 9, 9, 6, 3, 3, {.padding = 1, .groups = 2}, true},                            // groups of 6
      {1, 5, 13, 13, 7, 5, 5, {.stride = 3}, false},                                        // kernel 5, stride 3
  };
  return cases;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------

TEST_CASE("conv2d and its backward primitives match a direct double-precision loop (float)") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    unsigned seed = 100;
    for (const ConvCase& k : conv_cases()) check_conv_case<float>(dev, k, seed += 10);
    if (dev.is_cpu()) {  // the same cases on the im2col path alone (oneDNN's where it has them, above)
      Im2colOnly im2col;
      for (const ConvCase& k : conv_cases()) check_conv_case<float>(dev, k, seed += 10);
    }
  }
}

TEST_CASE("on the CPU a float convolution's forward, and its data gradient from 6 channels, is one oneDNN call") {
  auto x = random_tensor<float>({3, 8, 8, 8}, ft::kCPU, 51);
  auto w = random_tensor<float>({6, 8, 3, 3}, ft::kCPU, 52);
  auto b = random_tensor<float>({6}, ft::kCPU, 53);
  auto gy = random_tensor<float>({3, 6, 8, 8}, ft::kCPU, 54);
  const ft::Conv2dOptions opt{.padding = 1};
  const auto g = ft::linalg::detail::conv_geometry("conv2d", x.shape(), w.shape(), opt);
  const bool fwd = ft::linalg::detail::conv_uses_onednn(g, false), data = ft::linalg::detail::conv_uses_onednn(g, true);
#if defined(FT_HAVE_DNNL)
  CHECK(fwd);
  CHECK(data);
  // fewer than 6 input channels a group: the data gradient stays im2col's (oneDNN's was slower)
  CHECK(!ft::linalg::detail::conv_uses_onednn(
      ft::linalg::detail::conv_geometry("conv2d", Shape<4>{3, 4, 8, 8}, Shape<4>{6, 4, 3, 3}, opt), true));
#else
  CHECK(!fwd);
  CHECK(!data);
#endif
  // oneDNN: one call (its reorders inside); im2col + GEMM otherwise; the bias adds its fill
  CHECK(launches_of(ft::kCPU, [&] { (void)ft::conv2d(x, w, opt); }) == (fwd ? 1 : 2));
  CHECK(launches_of(ft::kCPU, [&] { (void)ft::conv2d(x, w, b, opt); }) == (fwd ? 2 : 3));
  CHECK(launches_of(ft::kCPU, [&] { (void)ft::conv2d_backward_data(gy, w, x.shape(), opt); }) == (data ? 1 : 2));
  // the weight gradient stays ft's one kernel (the same bits for any thread count)
  CHECK(launches_of(ft::kCPU, [&] { (void)ft::conv2d_backward_weight(x, gy, w.shape(), opt); }) == 1);
  // run after run, the same bits
  CHECK(ft::conv2d(x, w, b, opt).to_vector() == ft::conv2d(x, w, b, opt).to_vector());
  CHECK(ft::conv2d_backward_data(gy, w, x.shape(), opt).to_vector() ==
        ft::conv2d_backward_data(gy, w, x.shape(), opt).to_vector());
}

TEST_CASE("conv2d options: one number or a pair, PyTorch's defaults") {
  ft::Conv2dOptions d;
  CHECK(d.stride == Pair(1, 1));
  CHECK(d.padding == Pair(0, 0));
  CHECK(d.dilation == Pair(1, 1));
  CHECK(d.groups == 1);
  ft::Conv2dOptions o{.stride = 2, .padding = {1, 2}};
  CHECK(o.stride == Pair(2, 2));
  CHECK(o.padding.h == 1);
  CHECK(o.padding.w == 2);
  CHECK(o.dilation == Pair(1));
}

TEST_CASE("conv2d gradients agree with central finite differences of the forward") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const ConvCase k{1, 2, 5, 6, 4, 3, 2, {.stride = {2, 1}, .padding = 1, .dilation = {1, 2}, .groups = 2}, true};
    auto x = random_tensor<double>({1, 2, 5, 6}, dev, 11, -1, 1);
    auto w = random_tensor<double>({4, 1, 3, 2}, dev, 12, -1, 1);
    auto b = random_tensor<double>({4}, dev, 13, -1, 1);
    const Shape<4> ys = ref_out_shape(k);
    auto gy = random_tensor<double>({ys[0], ys[1], ys[2], ys[3]}, dev, 14, -1, 1);
    const auto gv = gy.to_vector();
    // L = Σ gy ⊙ conv2d(x, w, b), so ∂L/∂θ is what the backward primitives return for dy = gy.
    auto loss = [&](const ft::Tensor<double, 4>& xx, const ft::Tensor<double, 4>& ww, const ft::Tensor<double, 1>& bb) {
      auto y = ft::conv2d(xx, ww, bb, k.opt).to_vector();
      double s = 0;
      for (std::size_t i = 0; i < y.size(); ++i) s += gv[i] * y[i];
      return s;
    };
    auto numeric = [&](auto& param, auto eval_loss) {
      auto host = param.to(ft::kCPU).clone();
      std::vector<double> grad(static_cast<std::size_t>(host.numel()));
      const double h = 1e-3;  // L is linear in each parameter: the central difference is exact up to rounding
      for (index_t i = 0; i < host.numel(); ++i) {
        const double v = host.data()[i];
        host.data()[i] = v + h;
        const double up = eval_loss(host.to(dev));
        host.data()[i] = v - h;
        const double down = eval_loss(host.to(dev));
        host.data()[i] = v;
        grad[static_cast<std::size_t>(i)] = (up - down) / (2 * h);
      }
      return grad;
    };
    auto dx_fd = numeric(x, [&](const ft::Tensor<double, 4>& p) { return loss(p, w, b); });
    auto dw_fd = numeric(w, [&](const ft::Tensor<double, 4>& p) { return loss(x, p, b); });
    auto db_fd = numeric(b, [&](const ft::Tensor<double, 1>& p) { return loss(x, w, p); });
    check_close(ft::conv2d_backward_data(gy, w, x.shape(), k.opt), dx_fd, 1e-6, 1e-7);
    check_close(ft::conv2d_backward_weight(x, gy, w.shape(), k.opt), dw_fd, 1e-6, 1e-7);
    check_close(ft::conv2d_backward_bias(gy), db_fd, 1e-6, 1e-7);
  }
}

TEST_CASE("conv2d reads non-contiguous views and expressions, and its result is a leaf") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const ConvCase k{2, 3, 7, 9, 4, 3, 3, {.stride = 2, .padding = {1, 0}}, true};
    auto xt = random_tensor<float>({2, 3, 9, 7}, dev, 21, -1, 1);
    auto x = xt.transpose(2, 3);  // [2, 3, 7, 9], strided
    REQUIRE(!x.is_contiguous());
    auto wbig = random_tensor<float>({4, 6, 3, 3}, dev, 22, -1, 1);
    auto w = wbig.slice(1, 0, 6, 2);  // [4, 3, 3, 3], strided
    REQUIRE(!w.is_contiguous());
    auto b = random_tensor<float>({4}, dev, 23, -1, 1);
    auto xv = to_double(x), wv = to_double(w), bv = to_double(b);
    auto want = ref_conv(k, xv, wv, bv);
    const double t = dev.is_cpu() ? 2e-4 : 1e-3;
    check_close(ft::conv2d(x, w, b, k.opt), want, t, t);

    // An expression operand is evaluated first (fused, one launch); the result feeds an expression.
    std::vector<double> x2(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) x2[i] = 2 * xv[i] + 1;
    auto want2 = ref_conv(k, x2, wv, bv);
    for (double& v : want2) v = std::max(v, 0.0);
    ft::Tensor<float, 4> y2 = ft::relu(ft::conv2d(x * 2.0f + 1.0f, w, b, k.opt));
    check_close(y2, want2, t, t);
  }
}

TEST_CASE("conv2d counts its launches: im2col, one GEMM per group batch, and the bias fill") {
  Im2colOnly im2col;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const bool cpu = dev.is_cpu();
    auto x = random_tensor<float>({3, 4, 8, 8}, dev, 31);
    auto w = random_tensor<float>({6, 4, 3, 3}, dev, 32);
    auto b = random_tensor<float>({6}, dev, 33);
    const ft::Conv2dOptions opt{.padding = 1};
    // CPU: im2col + 1 GEMM over the batch; CUDA: one cuDNN call. A bias adds its broadcast fill.
    CHECK(launches_of(dev, [&] { (void)ft::conv2d(x, w, opt); }) == (cpu ? 2 : 1));
    CHECK(launches_of(dev, [&] { (void)ft::conv2d(x, w, b, opt); }) == (cpu ? 3 : 2));
    auto w1 = random_tensor<float>({6, 4, 1, 1}, dev, 34);
    CHECK(launches_of(dev, [&] { (void)ft::conv2d(x, w1); }) == 1);  // pointwise: the GEMM alone on CPU
    auto gy = random_tensor<float>({3, 6, 8, 8}, dev, 35);
    CHECK(launches_of(dev, [&] { (void)ft::conv2d_backward_data(gy, w, x.shape(), opt); }) == (cpu ? 2 : 1));
    // CPU: one kernel (pieces of samples, each im2col'd and summed by a GEMM, on each thread).
    CHECK(launches_of(dev, [&] { (void)ft::conv2d_backward_weight(x, gy, w.shape(), opt); }) == 1);
    CHECK(launches_of(dev, [&] { (void)ft::conv2d_backward_bias(gy); }) == 1);
    // Groups: one GEMM per group when the groups are fewer than the samples, else one per sample.
    auto wg = random_tensor<float>({6, 2, 3, 3}, dev, 36);
    CHECK(launches_of(dev, [&] { (void)ft::conv2d(x, wg, {.padding = 1, .groups = 2}); }) == (cpu ? 3 : 1));
    auto wd = random_tensor<float>({4, 1, 3, 3}, dev, 37);
    CHECK(launches_of(dev, [&] { (void)ft::conv2d(x, wd, {.padding = 1, .groups = 4}); }) == (cpu ? 4 : 1));
    // An empty batch launches nothing.
    auto x0 = random_tensor<float>({0, 4, 8, 8}, dev, 38);
    CHECK(launches_of(dev, [&] { CHECK(ft::conv2d(x0, w, b, opt).shape() == Shape<4>{0, 6, 8, 8}); }) == 0);
  }
}

TEST_CASE("on the CPU a large batch is processed in chunks of samples, with the same results") {
  struct Budget {  // one sample a chunk, restored on exit
    std::size_t saved = ft::linalg::testing::im2col_bytes.exchange(1);
    ~Budget() { ft::linalg::testing::im2col_bytes = saved; }
  } budget;
  Im2colOnly im2col;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_conv_case<float>(dev, conv_cases()[1], 700);  // groups = 1: one GEMM over each chunk
    check_conv_case<float>(dev, conv_cases()[3], 710);  // groups = 3 > 1 sample: one GEMM a sample
    auto x = random_tensor<float>({3, 4, 8, 8}, dev, 720);
    auto w = random_tensor<float>({6, 4, 3, 3}, dev, 721);
    auto gy = random_tensor<float>({3, 6, 8, 8}, dev, 722);
    const ft::Conv2dOptions opt{.padding = 1};
    const bool cpu = dev.is_cpu();
    CHECK(launches_of(dev, [&] { (void)ft::conv2d(x, w, opt); }) == (cpu ? 6 : 1));  // 3 × (im2col + GEMM)
    CHECK(launches_of(dev, [&] { (void)ft::conv2d_backward_data(gy, w, x.shape(), opt); }) == (cpu ? 6 : 1));
    CHECK(launches_of(dev, [&] { (void)ft::conv2d_backward_weight(x, gy, w.shape(), opt); }) == 1);
  }
}

TEST_CASE("on the CPU the weight gradient sums each piece of samples in one GEMM, in one kernel") {
  // Case 3 (depthwise, 3 samples, padding and dilation) and case 5 (pointwise, groups 2) with
  // room for two samples' im2col matrices: pieces of 2 and 1 samples, on two lanes.
  for (int c : {3, 5}) {
    CAPTURE(c);
    const ConvCase& k = conv_cases()[static_cast<std::size_t>(c)];
    const Shape<4> ys = ref_out_shape(k);
    struct Budget {
      std::size_t saved;
      ~Budget() { ft::linalg::testing::im2col_bytes = saved; }
    } budget{ft::linalg::testing::im2col_bytes.exchange(
        static_cast<std::size_t>(2 * k.c * k.kh * k.kw * ys[2] * ys[3]) * sizeof(float))};
    for (ft::Device dev : ft::test::devices()) {
      CAPTURE(dev);
      check_conv_case<float>(dev, k, 730);
      check_conv_case<double>(dev, k, 740);
    }
    auto x = random_tensor<float>({k.n, k.c, k.h, k.w}, ft::kCPU, 750);
    auto gy = random_tensor<float>({ys[0], ys[1], ys[2], ys[3]}, ft::kCPU, 751);
    const Shape<4> ws{k.o, k.c / k.opt.groups, k.kh, k.kw};
    CHECK(launches_of(ft::kCPU, [&] { (void)ft::conv2d_backward_weight(x, gy, ws, k.opt); }) == 1);
  }
}

TEST_CASE("on the CPU the weight gradient has the same bits for any thread count") {
  // 40 samples of 2×28×28, 5×5 kernel: many pieces, summed in lanes that are added in a fixed order
  const ConvCase k{40, 2, 28, 28, 6, 5, 5, {.padding = 2}, false};
  auto x = random_tensor<float>({k.n, k.c, k.h, k.w}, ft::kCPU, 760, -1, 1);
  auto gy = random_tensor<float>({k.n, k.o, k.h, k.w}, ft::kCPU, 761, -1, 1);
  const Shape<4> ws{k.o, k.c, k.kh, k.kw};
  struct Threads {  // restored on exit
    int saved = omp_get_max_threads();
    ~Threads() { omp_set_num_threads(saved); }
  } threads;
  std::vector<std::vector<float>> got;
  for (int t : {1, 2, 3}) {
    omp_set_num_threads(t);
    got.push_back(ft::conv2d_backward_weight(x, gy, ws, k.opt).to_vector());
  }
  CHECK(got[0] == got[1]);
  CHECK(got[0] == got[2]);
  std::vector<double> dw(got[0].begin(), got[0].end());
  check_close(dw, ref_backward_weight(k, to_double(x), to_double(gy)), 1e-5, 1e-4);
}

TEST_CASE("conv2d and its gradients are bit-identical run after run") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({4, 8, 15, 15}, dev, 41);
    auto w = random_tensor<float>({16, 8, 3, 3}, dev, 42);
    auto gy = random_tensor<float>({4, 16, 8, 8}, dev, 43);
    const ft::Conv2dOptions opt{.stride = 2, .padding = 1};
    CHECK(ft::conv2d(x, w, opt).to_vector() == ft::conv2d(x, w, opt).to_vector());
    CHECK(ft::conv2d_backward_data(gy, w, x.shape(), opt).to_vector() ==
          ft::conv2d_backward_data(gy, w, x.shape(), opt).to_vector());
    CHECK(ft::conv2d_backward_weight(x, gy, w.shape(), opt).to_vector() ==
          ft::conv2d_backward_weight(x, gy, w.shape(), opt).to_vector());
    CHECK(ft::conv2d_backward_bias(gy).to_vector() == ft::conv2d_backward_bias(gy).to_vector());
  }
}

TEST_CASE("bad conv2d arguments throw an ft::Error naming the op and the shapes, before any launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({2, 3, 8, 8}, dev, 51);
    auto w = random_tensor<float>({4, 2, 3, 3}, dev, 52);
    auto w3 = random_tensor<float>({4, 3, 3, 3}, dev, 53);
    auto b5 = random_tensor<float>({5}, dev, 54);
    std::int64_t launched = launches_of(dev, [&] {
      CHECK(error_of([&] { (void)ft::conv2d(x, w); }) ==
            "conv2d: input [2, 3, 8, 8] has 3 channels but weight [4, 2, 3, 3] expects 2 (groups = 1)");
      CHECK(error_of([&] { (void)ft::conv2d(x, w, {.groups = 2}); }) ==
            "conv2d: groups = 2 does not divide the 3 channels of input [2, 3, 8, 8]");
      CHECK(error_of([&] { (void)ft::conv2d(x, w3, {.groups = 3}); }) ==
            "conv2d: groups = 3 does not divide the 4 output channels of weight [4, 3, 3, 3]");
      auto big = random_tensor<float>({4, 3, 11, 3}, dev, 55);
      CHECK(error_of([&] { (void)ft::conv2d(x, big, {.padding = 1}); }) ==
            "conv2d: the kernel 11x3 (11x3 with dilation (1, 1)) is larger than the padded input 10x10 "
            "(input [2, 3, 8, 8], weight [4, 3, 11, 3], padding (1, 1))");
      CHECK(error_of([&] {
              (void)ft::conv2d(x, w3, {.dilation = {5, 1}});
            }) ==
            "conv2d: the kernel 3x3 (11x3 with dilation (5, 1)) is larger than the padded input 8x8 "
            "(input [2, 3, 8, 8], weight [4, 3, 3, 3], padding (0, 0))");
      CHECK(error_of([&] { (void)ft::conv2d(x, w3, {.stride = 0}); }) == "conv2d: stride must be positive, got (0, 0)");
      CHECK(error_of([&] {
              (void)ft::conv2d(x, w3, {.stride = {1, -2}});
            }) == "conv2d: stride must be positive, got (1, -2)");
      CHECK(error_of([&] { (void)ft::conv2d(x, w3, {.padding = -1}); }) ==
            "conv2d: padding must be non-negative, got (-1, -1)");
      CHECK(error_of([&] { (void)ft::conv2d(x, w3, {.dilation = 0}); }) ==
            "conv2d: dilation must be positive, got (0, 0)");
      CHECK(error_of([&] { (void)ft::conv2d(x, w3, {.groups = 0}); }) == "conv2d: groups must be positive, got 0");
      CHECK(error_of([&] { (void)ft::conv2d(x, w3, b5); }) ==
            "conv2d: bias [5] has 5 elements but weight [4, 3, 3, 3] has 4 output channels");
      auto gy = random_tensor<float>({2, 4, 5, 5}, dev, 56);
      CHECK(error_of([&] { (void)ft::conv2d_backward_data(gy, w3, x.shape()); }) ==
            "conv2d_backward_data: grad_out [2, 4, 5, 5] should have shape [2, 4, 6, 6], the output of input "
            "[2, 3, 8, 8] and weight [4, 3, 3, 3] (stride (1, 1), padding (0, 0), dilation (1, 1))");
      CHECK(error_of([&] { (void)ft::conv2d_backward_weight(x, gy, w.shape()); }) ==
            "conv2d_backward_weight: input [2, 3, 8, 8] has 3 channels but weight [4, 2, 3, 3] expects 2 "
            "(groups = 1)");
    });
    CHECK(launched == 0);
    if (ft::test::has_gpu()) {
      auto other = dev.is_cpu() ? ft::Device(ft::kCUDA, 0) : ft::Device(ft::kCPU);
      auto wo = w3.to(other);
      CHECK(error_of([&] { (void)ft::conv2d(x, wo); }) ==
            ft::detail::concat("conv2d: input on ", dev, " but weight on ", other, "; move one with .to(device)"));
    }
  }
}

// ---------------------------------------------------------------------------------------
// conv1d and conv_transpose2d: direct loops of their own definitions (not conv2d's), their
// adjoints for the Var gradients, and finite differences
// ---------------------------------------------------------------------------------------

namespace {

struct Conv1dCase {
  index_t n, c, l, o, k;
  ft::Conv1dOptions opt;
  bool bias;
};

index_t ref_out1d(const Conv1dCase& k) {
  return (k.l + 2 * k.opt.padding - k.opt.dilation * (k.k - 1) - 1) / k.opt.stride + 1;
}

// f(y_index, x_index, w_index) for each term x[n, c, ol·s − p + j·d]·w[o, c mod C/g, j] of y[n, o, ol].
void for_each_term_1d(const Conv1dCase& k, const std::function<void(std::size_t, std::size_t, std::size_t)>& f) {
  const index_t ol = ref_out1d(k), cg = k.c / k.opt.groups, og = k.o / k.opt.groups;
  for (index_t n = 0; n < k.n; ++n)
    for (index_t o = 0; o < k.o; ++o)
      for (index_t oy = 0; oy < ol; ++oy)
        for (index_t ci = 0; ci < cg; ++ci)
          for (index_t j = 0; j < k.k; ++j) {
            const index_t ix = oy * k.opt.stride - k.opt.padding + j * k.opt.dilation;
            if (ix < 0 || ix >= k.l) continue;
            const index_t c = (o / og) * cg + ci;
            f(static_cast<std::size_t>((n * k.o + o) * ol + oy), static_cast<std::size_t>((n * k.c + c) * k.l + ix),
              static_cast<std::size_t>((o * cg + ci) * k.k + j));
          }
}

struct ConvTCase {
  index_t n, cin, h, w, cout, kh, kw;
  ft::ConvTranspose2dOptions opt;
  bool bias;
};

Shape<4> ref_transpose_shape(const ConvTCase& k) {
  const auto& o = k.opt;
  return {k.n, k.cout, (k.h - 1) * o.stride.h - 2 * o.padding.h + o.dilation.h * (k.kh - 1) + o.output_padding.h + 1,
          (k.w - 1) * o.stride.w - 2 * o.padding.w + o.dilation.w * (k.kw - 1) + o.output_padding.w + 1};
}

// The transposed convolution as a scatter: input pixel (iy, ix) of channel ci adds x·w[ci, co, i, j]
// to output pixel (iy·s − p + i·d, ix·s − p + j·d) of each output channel co of ci's group.
void for_each_term_transpose(const ConvTCase& k, const std::function<void(std::size_t, std::size_t, std::size_t)>& f) {
  const Shape<4> ys = ref_transpose_shape(k);
  const index_t cin_g = k.cin / k.opt.groups, cout_g = k.cout / k.opt.groups;
  const auto& o = k.opt;
  for (index_t n = 0; n < k.n; ++n)
    for (index_t ci = 0; ci < k.cin; ++ci)
      for (index_t iy = 0; iy < k.h; ++iy)
        for (index_t ix = 0; ix < k.w; ++ix)
          for (index_t cl = 0; cl < cout_g; ++cl)
            for (index_t i = 0; i < k.kh; ++i)
              for (index_t j = 0; j < k.kw; ++j) {
                const index_t oy = iy * o.stride.h - o.padding.h + i * o.dilation.h;
                const index_t ox = ix * o.stride.w - o.padding.w + j * o.dilation.w;
                if (oy < 0 || oy >= ys[2] || ox < 0 || ox >= ys[3]) continue;
                const index_t co = (ci / cin_g) * cout_g + cl;
                f(static_cast<std::size_t>(((n * k.cout + co) * ys[2] + oy) * ys[3] + ox),
                  static_cast<std::size_t>(((n * k.cin + ci) * k.h + iy) * k.w + ix),
                  static_cast<std::size_t>(((ci * cout_g + cl) * k.kh + i) * k.kw + j));
              }
}

// y = Σ x·w (+ b), dx = Σ gy·w, dw = Σ gy·x and db = Σ gy over one visit of the terms.
struct RefConv {
  std::vector<double> y, dx, dw, db;
};
RefConv ref_from_terms(
    const std::function<void(const std::function<void(std::size_t, std::size_t, std::size_t)>&)>& visit, std::size_t ny,
    std::size_t plane, const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
    const std::vector<double>& gy) {
  RefConv r{std::vector<double>(ny, 0.0), std::vector<double>(x.size(), 0.0), std::vector<double>(w.size(), 0.0),
            std::vector<double>(b.size(), 0.0)};
  for (std::size_t i = 0; i < ny; ++i) {
    if (!b.empty()) {
      r.y[i] = b[(i / plane) % b.size()];
      r.db[(i / plane) % b.size()] += gy[i];
    }
  }
  visit([&](std::size_t yi, std::size_t xi, std::size_t wi) {
    r.y[yi] += x[xi] * w[wi];
    r.dx[xi] += gy[yi] * w[wi];
    r.dw[wi] += gy[yi] * x[xi];
  });
  return r;
}

// conv1d on tensors and on Vars (one tape node; gradients of Σ gy ⊙ y) against the loops.
template <class T>
void check_conv1d_case(ft::Device dev, const Conv1dCase& k, unsigned seed) {
  CAPTURE(k.opt.stride);
  CAPTURE(k.opt.padding);
  CAPTURE(k.opt.dilation);
  CAPTURE(k.opt.groups);
  CAPTURE(k.bias);
  const index_t ol = ref_out1d(k);
  auto x = random_tensor<T>({k.n, k.c, k.l}, dev, seed, -1, 1);
  auto w = random_tensor<T>({k.o, k.c / k.opt.groups, k.k}, dev, seed + 1, -1, 1);
  auto b = random_tensor<T>({k.o}, dev, seed + 2, -1, 1);
  auto gy = random_tensor<T>({k.n, k.o, ol}, dev, seed + 3, -1, 1);
  const RefConv r = ref_from_terms([&](const auto& f) { for_each_term_1d(k, f); },
                                   static_cast<std::size_t>(k.n * k.o * ol), static_cast<std::size_t>(ol), to_double(x),
                                   to_double(w), k.bias ? to_double(b) : std::vector<double>{}, to_double(gy));
  const double t = tol<T>(dev);
  ft::Tensor<T, 3> y = k.bias ? ft::conv1d(x, w, b, k.opt) : ft::conv1d(x, w, k.opt);
  CHECK(y.shape() == Shape<3>{k.n, k.o, ol});
  check_close(y, r.y, t, t);

  ft::Var<T, 3> vx(x, ft::requires_grad), vw(w, ft::requires_grad);
  ft::Var<T, 1> vb(b, ft::requires_grad);
  ft::Var<T, 3> vy = k.bias ? ft::conv1d(vx, vw, vb, k.opt) : ft::conv1d(vx, vw, k.opt);
  CHECK(vy.grad_fn_name() == "conv1d");
  check_close(vy.value(), r.y, t, t);
  vy.backward(gy);
  check_close(vx.grad(), r.dx, t, t);
  check_close(vw.grad(), r.dw, t, t * 10);
  if (k.bias) check_close(vb.grad(), r.db, t, t * 10);
}

template <class T>
void check_conv_transpose_case(ft::Device dev, const ConvTCase& k, unsigned seed) {
  CAPTURE(k.opt.stride);
  CAPTURE(k.opt.padding);
  CAPTURE(k.opt.output_padding);
  CAPTURE(k.opt.dilation);
  CAPTURE(k.opt.groups);
  CAPTURE(k.bias);
  const Shape<4> ys = ref_transpose_shape(k);
  auto x = random_tensor<T>({k.n, k.cin, k.h, k.w}, dev, seed, -1, 1);
  auto w = random_tensor<T>({k.cin, k.cout / k.opt.groups, k.kh, k.kw}, dev, seed + 1, -1, 1);
  auto b = random_tensor<T>({k.cout}, dev, seed + 2, -1, 1);
  auto gy = random_tensor<T>({ys[0], ys[1], ys[2], ys[3]}, dev, seed + 3, -1, 1);
  const RefConv r =
      ref_from_terms([&](const auto& f) { for_each_term_transpose(k, f); }, static_cast<std::size_t>(ys.numel()),
                     static_cast<std::size_t>(ys[2] * ys[3]), to_double(x), to_double(w),
                     k.bias ? to_double(b) : std::vector<double>{}, to_double(gy));
  const double t = tol<T>(dev);
  ft::Tensor<T, 4> y = k.bias ? ft::conv_transpose2d(x, w, b, k.opt) : ft::conv_transpose2d(x, w, k.opt);
  CHECK(y.shape() == ys);
  CHECK(y.device() == dev);
  check_close(y, r.y, t, t);

  ft::Var<T, 4> vx(x, ft::requires_grad), vw(w, ft::requires_grad);
  ft::Var<T, 1> vb(b, ft::requires_grad);
  ft::Var<T, 4> vy = k.bias ? ft::conv_transpose2d(vx, vw, vb, k.opt) : ft::conv_transpose2d(vx, vw, k.opt);
  CHECK(vy.grad_fn_name() == "conv_transpose2d");
  check_close(vy.value(), r.y, t, t);
  vy.backward(gy);
  check_close(vx.grad(), r.dx, t, t);
  check_close(vw.grad(), r.dw, t, t * 10);
  if (k.bias) check_close(vb.grad(), r.db, t, t * 10);
}

const std::vector<Conv1dCase>& conv1d_cases() {
  static const std::vector<Conv1dCase> cases = {
      {2, 4, 9, 6, 3, {.stride = 2, .padding = 1, .groups = 2}, true},   // torch's golden case
      {2, 3, 10, 4, 3, {.dilation = 2}, false},                          // dilation
      {3, 3, 11, 6, 5, {.stride = 3, .padding = 2, .groups = 3}, true},  // depthwise, multiplier 2
      {1, 2, 7, 3, 1, {}, true},                                         // pointwise: no im2col
  };
  return cases;
}

const std::vector<ConvTCase>& conv_transpose_cases() {
  static const std::vector<ConvTCase> cases = {
      {2, 3, 4, 5, 4, 3, 3, {.stride = 2, .padding = 1, .output_padding = 1}, true},    // the 2x upsampler
      {2, 4, 3, 4, 6, 3, 2, {.stride = {1, 2}, .groups = 2}, false},                    // groups, pairs
      {1, 2, 4, 4, 3, 3, 3, {.padding = 1, .output_padding = 1, .dilation = 2}, true},  // output_padding ≥ stride
      {3, 4, 5, 3, 2, 1, 1, {}, true},                                                  // pointwise: the GEMM alone
      {1, 6, 3, 3, 6, 3, 3, {.stride = 3, .padding = {0, 1}, .groups = 6}, false},      // depthwise, no overlap
      {2, 2, 3, 5, 3, 2, 4, {.stride = {2, 3}, .padding = {1, 2}, .output_padding = {1, 2}, .dilation = {1, 2}}, true},
  };
  return cases;
}

}  // namespace

TEST_CASE("conv1d and its gradients match a direct double-precision loop") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    unsigned seed = 800;
    for (const Conv1dCase& k : conv1d_cases()) check_conv1d_case<float>(dev, k, seed += 10);
    for (const Conv1dCase& k : conv1d_cases()) check_conv1d_case<double>(dev, k, seed += 10);
  }
}

TEST_CASE("conv_transpose2d and its gradients match a direct double-precision loop") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    unsigned seed = 900;
    for (const ConvTCase& k : conv_transpose_cases()) check_conv_transpose_case<float>(dev, k, seed += 10);
    for (const ConvTCase& k : conv_transpose_cases()) check_conv_transpose_case<double>(dev, k, seed += 10);
  }
}

TEST_CASE("conv_transpose2d is conv2d's data gradient, and conv1d is conv2d on a height of 1") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<double>({2, 4, 5, 6}, dev, 951, -1, 1);
    auto w = random_tensor<double>({4, 3, 3, 3}, dev, 952, -1, 1);
    const ft::ConvTranspose2dOptions topt{.stride = 2, .padding = 1, .output_padding = {1, 0}, .groups = 2};
    ft::Tensor<double, 4> y = ft::conv_transpose2d(x, w, topt);
    CHECK(y.shape() == Shape<4>{2, 6, 10, 11});
    const ft::Conv2dOptions copt{.stride = 2, .padding = 1, .groups = 2};
    check_close(y, to_double(ft::conv2d_backward_data(x, w, y.shape(), copt)), 1e-12, 1e-12);
    auto s = random_tensor<double>({2, 4, 9}, dev, 953, -1, 1);
    auto k = random_tensor<double>({6, 2, 3}, dev, 954, -1, 1);
    check_close(ft::conv1d(s, k, {.stride = 2, .padding = 1, .dilation = 2, .groups = 2}),
                to_double(ft::conv2d(s.unsqueeze(2), k.unsqueeze(2),
                                     {.stride = {1, 2}, .padding = {0, 1}, .dilation = {1, 2}, .groups = 2})),
                1e-12, 1e-12);
  }
}

TEST_CASE("conv1d and conv_transpose2d gradients on Vars agree with central finite differences") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // Central differences of L(p) = Σ gy ⊙ f(p) for each element of p; L is linear in each element,
    // so they are exact up to rounding.
    auto numeric = [&](const auto& param, auto loss) {
      auto host = param.to(ft::kCPU).clone();
      std::vector<double> grad(static_cast<std::size_t>(host.numel()));
      const double h = 1e-3;
      for (index_t i = 0; i < host.numel(); ++i) {
        const double v = host.data()[i];
        host.data()[i] = v + h;
        const double up = loss(host.to(dev));
        host.data()[i] = v - h;
        const double down = loss(host.to(dev));
        host.data()[i] = v;
        grad[static_cast<std::size_t>(i)] = (up - down) / (2 * h);
      }
      return grad;
    };
    auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
      double s = 0;
      for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
      return s;
    };
    {  // conv_transpose2d with groups, pairs, dilation and output_padding ≥ stride in the height
      const ft::ConvTranspose2dOptions opt{
          .stride = {1, 2}, .padding = 1, .output_padding = {1, 1}, .groups = 2, .dilation = {2, 1}};
      auto x = random_tensor<double>({2, 4, 3, 4}, dev, 961, -1, 1);
      auto w = random_tensor<double>({4, 3, 3, 2}, dev, 962, -1, 1);
      auto b = random_tensor<double>({6}, dev, 963, -1, 1);
      ft::Var<double, 4> vx(x, ft::requires_grad), vw(w, ft::requires_grad);
      ft::Var<double, 1> vb(b, ft::requires_grad);
      ft::Var<double, 4> y = ft::conv_transpose2d(vx, vw, vb, opt);
      auto gy = random_tensor<double>({y.size(0), y.size(1), y.size(2), y.size(3)}, dev, 964, -1, 1);
      const auto gv = gy.to_vector();
      y.backward(gy);
      auto loss = [&](const ft::Tensor<double, 4>& xx, const ft::Tensor<double, 4>& ww,
                      const ft::Tensor<double, 1>& bb) {
        return dot(gv, ft::conv_transpose2d(xx, ww, bb, opt).to_vector());
      };
      check_close(vx.grad(), numeric(x, [&](const ft::Tensor<double, 4>& p) { return loss(p, w, b); }), 1e-6, 1e-7);
      check_close(vw.grad(), numeric(w, [&](const ft::Tensor<double, 4>& p) { return loss(x, p, b); }), 1e-6, 1e-7);
      check_close(vb.grad(), numeric(b, [&](const ft::Tensor<double, 1>& p) { return loss(x, w, p); }), 1e-6, 1e-7);
    }
    {  // conv1d with stride, padding, dilation and groups
      const ft::Conv1dOptions opt{.stride = 2, .padding = 2, .dilation = 2, .groups = 2};
      auto x = random_tensor<double>({2, 4, 11}, dev, 971, -1, 1);
      auto w = random_tensor<double>({6, 2, 3}, dev, 972, -1, 1);
      auto b = random_tensor<double>({6}, dev, 973, -1, 1);
      ft::Var<double, 3> vx(x, ft::requires_grad), vw(w, ft::requires_grad);
      ft::Var<double, 1> vb(b, ft::requires_grad);
      ft::Var<double, 3> y = ft::conv1d(vx, vw, vb, opt);
      auto gy = random_tensor<double>({y.size(0), y.size(1), y.size(2)}, dev, 974, -1, 1);
      const auto gv = gy.to_vector();
      y.backward(gy);
      auto loss = [&](const ft::Tensor<double, 3>& xx, const ft::Tensor<double, 3>& ww,
                      const ft::Tensor<double, 1>& bb) { return dot(gv, ft::conv1d(xx, ww, bb, opt).to_vector()); };
      check_close(vx.grad(), numeric(x, [&](const ft::Tensor<double, 3>& p) { return loss(p, w, b); }), 1e-6, 1e-7);
      check_close(vw.grad(), numeric(w, [&](const ft::Tensor<double, 3>& p) { return loss(x, p, b); }), 1e-6, 1e-7);
      check_close(vb.grad(), numeric(b, [&](const ft::Tensor<double, 1>& p) { return loss(x, w, p); }), 1e-6, 1e-7);
    }
  }
}

TEST_CASE("conv1d and conv_transpose2d read views and expressions, and take Vars mixed with tensors") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const double t = dev.is_cpu() ? 2e-5 : 1e-3;
    auto xt = random_tensor<float>({2, 5, 3, 4}, dev, 981, -1, 1);
    auto x = xt.transpose(1, 2);  // [2, 3, 5, 4], strided
    REQUIRE(!x.is_contiguous());
    auto w = random_tensor<float>({3, 2, 3, 3}, dev, 982, -1, 1);
    const ft::ConvTranspose2dOptions opt{.stride = 2, .padding = 1};
    auto want = to_double(ft::conv_transpose2d(x.contiguous(), w, opt));
    check_close(ft::conv_transpose2d(x, w, opt), want, t, t);
    ft::Tensor<float, 4> y2 = ft::relu(ft::conv_transpose2d(x * 2.0f, w, opt));
    auto want2 = to_double(ft::conv_transpose2d(ft::eval(x * 2.0f), w, opt));
    for (double& v : want2) v = std::max(v, 0.0);
    check_close(y2, want2, t, t);
    // a tensor input and a Var weight: only the weight gets a gradient
    ft::Var<float, 4> vw(w, ft::requires_grad);
    ft::Var<float, 0> lw = ft::sum(ft::conv_transpose2d(x, vw, opt));
    lw.backward();
    CHECK(vw.has_grad());
    CHECK(vw.grad().shape() == w.shape());

    auto s = random_tensor<float>({2, 3, 8}, dev, 983, -1, 1);
    auto kbig = random_tensor<float>({4, 6, 3}, dev, 984, -1, 1);
    auto k = kbig.slice(1, 0, 6, 2);  // [4, 3, 3], strided
    REQUIRE(!k.is_contiguous());
    check_close(ft::conv1d(s * 2.0f + 1.0f, k, {.padding = 1}),
                to_double(ft::conv1d(ft::eval(s * 2.0f + 1.0f), k.contiguous(), {.padding = 1})), t, t);
    ft::Var<float, 3> vs(s, ft::requires_grad);
    ft::Var<float, 0> l1 = ft::sum(ft::conv1d(vs * 2.0f, k, {.padding = 1}));  // vs * 2 is recorded first
    l1.backward();
    CHECK(vs.grad().shape() == s.shape());
  }
}

TEST_CASE("conv1d and conv_transpose2d count their launches: conv2d's primitives, nothing more") {
  Im2colOnly im2col;
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const bool cpu = dev.is_cpu();
    auto x = random_tensor<float>({3, 4, 16}, dev, 991);
    auto w = random_tensor<float>({6, 4, 3}, dev, 992);
    auto b = random_tensor<float>({6}, dev, 993);
    // conv1d as conv2d: im2col + 1 GEMM on the CPU, one cuDNN call; a bias adds its fill.
    CHECK(launches_of(dev, [&] { (void)ft::conv1d(x, w, {.padding = 1}); }) == (cpu ? 2 : 1));
    CHECK(launches_of(dev, [&] { (void)ft::conv1d(x, w, b, {.padding = 1}); }) == (cpu ? 3 : 2));

    auto xt = random_tensor<float>({3, 4, 8, 8}, dev, 994);
    auto wt = random_tensor<float>({4, 6, 3, 3}, dev, 995);
    const ft::ConvTranspose2dOptions up{.stride = 2, .padding = 1, .output_padding = 1};
    // conv2d's backward-data: 1 GEMM + col2im on the CPU, one cuDNN call; a bias adds one launch.
    CHECK(launches_of(dev, [&] {
            CHECK(ft::conv_transpose2d(xt, wt, up).shape() == Shape<4>{3, 6, 16, 16});
          }) == (cpu ? 2 : 1));
    CHECK(launches_of(dev, [&] { (void)ft::conv_transpose2d(xt, wt, b, up); }) == (cpu ? 3 : 2));
    auto w1 = random_tensor<float>({4, 6, 1, 1}, dev, 996);
    CHECK(launches_of(dev, [&] { (void)ft::conv_transpose2d(xt, w1); }) == 1);  // pointwise: the GEMM alone on CPU
    auto wg = random_tensor<float>({4, 3, 3, 3}, dev, 997);
    CHECK(launches_of(dev, [&] { (void)ft::conv_transpose2d(xt, wg, {.padding = 1, .groups = 2}); }) ==
          (cpu ? 3 : 1));  // one GEMM per group (fewer groups than samples) + col2im
    // output_padding ≥ stride: the input is first extended by zeros (a fill and a copy)
    CHECK(launches_of(dev, [&] {
            (void)ft::conv_transpose2d(xt, wt, {.padding = 1, .output_padding = 1, .dilation = 2});
          }) == (cpu ? 4 : 3));
    auto x0 = random_tensor<float>({0, 4, 8, 8}, dev, 998);
    CHECK(launches_of(dev, [&] { CHECK(ft::conv_transpose2d(x0, wt, b, up).shape() == Shape<4>{0, 6, 16, 16}); }) == 0);
  }
}

TEST_CASE("conv2d's and max_pool2d's gradients become .grad with no copy, and accumulate after") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const bool cpu = dev.is_cpu();
    auto x = random_tensor<float>({3, 4, 8, 8}, dev, 1011);
    auto w = random_tensor<float>({6, 4, 3, 3}, dev, 1012);
    auto b = random_tensor<float>({6}, dev, 1013);
    auto gy = random_tensor<float>({3, 6, 4, 4}, dev, 1014);
    const ft::Conv2dOptions opt{.padding = 1};
    // The backward's primitives alone: what y.backward may launch, and no more (no copies into
    // .grad): the pooling scatter, backward-data (CPU: GEMM + col2im, or one oneDNN call),
    // backward-weight (one kernel) and the bias sum.
    auto fwd = ft::max_pool2d_with_indices(ft::conv2d(x, w, b, opt), 2);
    const auto primitives = launches_of(dev, [&] {
      auto g = ft::max_pool2d_backward(gy, fwd.indices, Shape<4>{3, 6, 8, 8}, 2, 2);
      (void)ft::conv2d_backward_data(g, w, x.shape(), opt);
      (void)ft::conv2d_backward_weight(x, g, w.shape(), opt);
      (void)ft::conv2d_backward_bias(g);
    });
    const bool dnn = ft::linalg::detail::conv_uses_onednn(
        ft::linalg::detail::conv_geometry("conv2d", x.shape(), w.shape(), opt), true);  // backward data: one call
    CHECK(primitives == (cpu ? 1 + (dnn ? 1 : 2) + 1 + 1 : 4));
    ft::Var<float, 4> vx(x, ft::requires_grad), vw(w, ft::requires_grad);
    ft::Var<float, 1> vb(b, ft::requires_grad);
    ft::Var<float, 4> y = ft::max_pool2d(ft::conv2d(vx, vw, vb, opt), 2);
    CHECK(launches_of(dev, [&] { y.backward(gy); }) == primitives);
    const auto dx = vx.grad().to_vector(), dw = vw.grad().to_vector(), db = vb.grad().to_vector();
    // A second backward adds onto the first (the gradients own their memory).
    ft::Var<float, 4> y2 = ft::max_pool2d(ft::conv2d(vx, vw, vb, opt), 2);
    y2.backward(gy);
    auto doubled = [](std::vector<float> v) {
      for (float& e : v) e *= 2;
      return v;
    };
    CHECK(vx.grad().to_vector() == doubled(dx));
    CHECK(vw.grad().to_vector() == doubled(dw));
    CHECK(vb.grad().to_vector() == doubled(db));
  }
}

TEST_CASE("bad conv1d and conv_transpose2d arguments throw an ft::Error naming the op, before any launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({2, 3, 8}, dev, 1001);
    auto w = random_tensor<float>({4, 2, 3}, dev, 1002);
    auto w3 = random_tensor<float>({4, 3, 3}, dev, 1003);
    auto b5 = random_tensor<float>({5}, dev, 1004);
    auto xt = random_tensor<float>({2, 3, 8, 8}, dev, 1005);
    auto wt = random_tensor<float>({3, 4, 3, 3}, dev, 1006);
    std::int64_t launched = launches_of(dev, [&] {
      CHECK(error_of([&] { (void)ft::conv1d(x, w); }) ==
            "conv1d: input [2, 3, 8] has 3 channels but weight [4, 2, 3] expects 2 (groups = 1)");
      CHECK(error_of([&] { (void)ft::conv1d(x, w, {.groups = 2}); }) ==
            "conv1d: groups = 2 does not divide the 3 channels of input [2, 3, 8]");
      auto big = random_tensor<float>({4, 3, 11}, dev, 1007);
      CHECK(error_of([&] { (void)ft::conv1d(x, big, {.padding = 1}); }) ==
            "conv1d: the kernel 11 (11 with dilation 1) is larger than the padded input 10 (input [2, 3, 8], weight "
            "[4, 3, 11], padding 1)");
      CHECK(error_of([&] { (void)ft::conv1d(x, w3, {.stride = 0}); }) == "conv1d: stride must be positive, got 0");
      CHECK(error_of([&] { (void)ft::conv1d(x, w3, {.padding = -1}); }) ==
            "conv1d: padding must be non-negative, got -1");
      CHECK(error_of([&] { (void)ft::conv1d(x, w3, {.dilation = 0}); }) == "conv1d: dilation must be positive, got 0");
      CHECK(error_of([&] { (void)ft::conv1d(x, w3, b5); }) ==
            "conv1d: bias [5] has 5 elements but weight [4, 3, 3] has 4 output channels");
      ft::Var<float, 3> vx(x, ft::requires_grad);
      CHECK(error_of([&] { (void)ft::conv1d(vx, w); }) ==
            "conv1d: input [2, 3, 8] has 3 channels but weight [4, 2, 3] expects 2 (groups = 1)");

      CHECK(error_of([&] {
              (void)ft::conv_transpose2d(xt, w3.reshape({4, 3, 1, 3}));
            }) ==
            "conv_transpose2d: input [2, 3, 8, 8] has 3 channels but weight [4, 3, 1, 3] expects 4 (a transposed "
            "convolution's weight is [in_channels, out_channels / groups, kH, kW])");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.groups = 2}); }) ==
            "conv_transpose2d: groups = 2 does not divide the 3 channels of input [2, 3, 8, 8]");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.stride = 2, .output_padding = 2}); }) ==
            "conv_transpose2d: output_padding (2, 2) must be smaller than either stride (2, 2) or dilation (1, 1)");
      CHECK(error_of([&] {
              (void)ft::conv_transpose2d(xt, wt, {.output_padding = {0, 1}});
            }) ==
            "conv_transpose2d: output_padding (0, 1) must be smaller than either stride (1, 1) or dilation (1, 1)");
      CHECK(error_of([&] {
              (void)ft::conv_transpose2d(xt, wt, {.stride = {0, 1}});
            }) == "conv_transpose2d: stride must be positive, got (0, 1)");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.padding = -1}); }) ==
            "conv_transpose2d: padding must be non-negative, got (-1, -1)");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.output_padding = -1}); }) ==
            "conv_transpose2d: output_padding must be non-negative, got (-1, -1)");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.dilation = 0}); }) ==
            "conv_transpose2d: dilation must be positive, got (0, 0)");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.groups = 0}); }) ==
            "conv_transpose2d: groups must be positive, got 0");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, {.padding = 9}); }) ==
            "conv_transpose2d: the output would be -8x-8 (input [2, 3, 8, 8], weight [3, 4, 3, 3], stride (1, 1), "
            "padding (9, 9), dilation (1, 1), output_padding (0, 0)): the padding is too large");
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, b5); }) ==
            "conv_transpose2d: bias [5] has 5 elements but weight [3, 4, 3, 3] has 4 output channels (groups = 1)");
      auto we = random_tensor<float>({3, 4, 0, 3}, dev, 1008);
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, we); }) ==
            "conv_transpose2d: weight [3, 4, 0, 3] has an empty kernel");
      ft::Var<float, 4> vxt(xt, ft::requires_grad);
      CHECK_THROWS_WITH_AS((void)ft::conv_transpose2d(vxt, wt, b5), doctest::Contains("conv_transpose2d"), ft::Error);
    });
    CHECK(launched == 0);
    if (ft::test::has_gpu()) {
      auto other = dev.is_cpu() ? ft::Device(ft::kCUDA, 0) : ft::Device(ft::kCPU);
      CHECK(error_of([&] { (void)ft::conv1d(x, w3.to(other)); }) ==
            ft::detail::concat("conv1d: input on ", dev, " but weight on ", other, "; move one with .to(device)"));
      CHECK(error_of([&] { (void)ft::conv_transpose2d(xt, wt, b5.to(other)); }) ==
            ft::detail::concat("conv_transpose2d: input on ", dev, " but bias on ", other,
                               "; move one with .to(device)"));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Pooling: plain loops over each window, and scatter-form adjoints (the library gathers)
// ---------------------------------------------------------------------------------------

namespace {

struct PoolCase {
  index_t n, c, h, w;
  Pair kernel, stride, padding, dilation;
  bool ceil_mode;
  bool count_include_pad;
};

index_t ref_pool_out(index_t in, index_t k, index_t s, index_t p, index_t d, bool ceil_mode) {
  const index_t eff = d * (k - 1) + 1;
  index_t num = in + 2 * p - eff;
  index_t out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;  // num ≥ 0 in every case below
  if (ceil_mode && (out - 1) * s >= in + p) --out;  // the last window must start inside the input or left pad
  return out;
}

Shape<4> ref_pool_shape(const PoolCase& k) {
  return {k.n, k.c, ref_pool_out(k.h, k.kernel.h, k.stride.h, k.padding.h, k.dilation.h, k.ceil_mode),
          ref_pool_out(k.w, k.kernel.w, k.stride.w, k.padding.w, k.dilation.w, k.ceil_mode)};
}

// f(output index, window origin y, window origin x, plane) for every output.
template <class F>
void for_each_window(const PoolCase& k, F&& f) {
  const Shape<4> ys = ref_pool_shape(k);
  for (index_t pl = 0; pl < k.n * k.c; ++pl)
    for (index_t oy = 0; oy < ys[2]; ++oy)
      for (index_t ox = 0; ox < ys[3]; ++ox)
        f(static_cast<std::size_t>((pl * ys[2] + oy) * ys[3] + ox), oy * k.stride.h - k.padding.h,
          ox * k.stride.w - k.padding.w, pl);
}

void ref_max_pool(const PoolCase& k, const std::vector<double>& x, std::vector<double>& y, std::vector<double>& idx) {
  const Shape<4> ys = ref_pool_shape(k);
  y.assign(static_cast<std::size_t>(ys.numel()), 0.0);
  idx.assign(y.size(), -1.0);
  for_each_window(k, [&](std::size_t o, index_t y0, index_t x0, index_t pl) {
    double best = -std::numeric_limits<double>::infinity();
    for (index_t i = 0; i < k.kernel.h; ++i)
      for (index_t j = 0; j < k.kernel.w; ++j) {
        const index_t iy = y0 + i * k.dilation.h, ix = x0 + j * k.dilation.w;
        if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
        const double v = x[static_cast<std::size_t>((pl * k.h + iy) * k.w + ix)];
        if (idx[o] < 0 || v > best) {  // the first maximum in row-major window order
          best = v;
          idx[o] = static_cast<double>(iy * k.w + ix);
        }
      }
    y[o] = best;
  });
}

// The elements of an average window inside the input, and torch's divisor for it.
template <class F>
void avg_window(const PoolCase& k, index_t y0, index_t x0, F&& visit, double& divisor) {
  const index_t ye = std::min(y0 + k.kernel.h, k.h + k.padding.h), xe = std::min(x0 + k.kernel.w, k.w + k.padding.w);
  const index_t padded = (ye - y0) * (xe - x0);
  index_t inside = 0;
  for (index_t iy = std::max<index_t>(y0, 0); iy < std::min(ye, k.h); ++iy)
    for (index_t ix = std::max<index_t>(x0, 0); ix < std::min(xe, k.w); ++ix, ++inside) visit(iy, ix);
  divisor = static_cast<double>(k.count_include_pad ? padded : inside);
}

std::vector<double> ref_avg_pool(const PoolCase& k, const std::vector<double>& x) {
  std::vector<double> y(static_cast<std::size_t>(ref_pool_shape(k).numel()), 0.0);
  for_each_window(k, [&](std::size_t o, index_t y0, index_t x0, index_t pl) {
    double s = 0, div = 0;
    avg_window(
        k, y0, x0, [&](index_t iy, index_t ix) { s += x[static_cast<std::size_t>((pl * k.h + iy) * k.w + ix)]; }, div);
    y[o] = s / div;
  });
  return y;
}

std::vector<double> ref_avg_pool_backward(const PoolCase& k, const std::vector<double>& gy) {
  std::vector<double> dx(static_cast<std::size_t>(k.n * k.c * k.h * k.w), 0.0);
  for_each_window(k, [&](std::size_t o, index_t y0, index_t x0, index_t pl) {
    std::vector<std::size_t> cells;
    double div = 0;
    avg_window(
        k, y0, x0,
        [&](index_t iy, index_t ix) { cells.push_back(static_cast<std::size_t>((pl * k.h + iy) * k.w + ix)); }, div);
    for (std::size_t c : cells) dx[c] += gy[o] / div;
  });
  return dx;
}

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {2, 3, 8, 8, 2, 2, 0, 1, false, true},                      // the classic 2x2 / 2
      {3, 2, 13, 13, 3, 2, 1, 1, false, true},                    // overlapping 3x3 / 2, padded (ResNet's stem)
      {1, 3, 7, 7, 3, 2, 1, 1, true, false},                      // ceil mode, count_include_pad off
      {2, 2, 11, 9, {3, 2}, {2, 3}, {1, 0}, {2, 1}, true, true},  // pairs, dilation, ceil mode
      {1, 1, 6, 6, 4, 3, 2, 1, true, true},                       // ceil mode with a window in the overhang
  };
  return cases;
}

template <class T>
void check_pool_case(ft::Device dev, const PoolCase& k, unsigned seed) {
  CAPTURE(k.h);
  CAPTURE(k.w);
  CAPTURE(k.kernel);
  CAPTURE(k.stride);
  CAPTURE(k.padding);
  CAPTURE(k.dilation);
  CAPTURE(k.ceil_mode);
  CAPTURE(k.count_include_pad);
  auto x = random_tensor<T>({k.n, k.c, k.h, k.w}, dev, seed);
  const Shape<4> ys = ref_pool_shape(k);
  auto gy = random_tensor<T>({ys[0], ys[1], ys[2], ys[3]}, dev, seed + 1);
  const auto xv = to_double(x), gv = to_double(gy);

  // max pool: values, indices, and dx[index] += dy (scatter form)
  auto [y, idx] = ft::max_pool2d_with_indices(x, k.kernel, k.stride, k.padding, k.dilation, k.ceil_mode);
  std::vector<double> want_y, want_idx;
  ref_max_pool(k, xv, want_y, want_idx);
  CHECK(y.shape() == ys);
  check_close(y, want_y, 0, 0);
  check_close(idx, want_idx, 0, 0);
  check_close(ft::max_pool2d(x, k.kernel, k.stride, k.padding, k.dilation, k.ceil_mode), want_y, 0, 0);
  std::vector<double> want_dx(xv.size(), 0.0);
  for (std::size_t o = 0; o < gv.size(); ++o)
    want_dx[(o / static_cast<std::size_t>(ys[2] * ys[3])) * static_cast<std::size_t>(k.h * k.w) +
            static_cast<std::size_t>(want_idx[o])] += gv[o];
  check_close(ft::max_pool2d_backward(gy, idx, x.shape(), k.kernel, k.stride, k.padding, k.dilation, k.ceil_mode),
              want_dx, 1e-6, 1e-6);

  // average pool (no dilation in torch's avg_pool2d)
  if (k.dilation == Pair(1)) {
    check_close(ft::avg_pool2d(x, k.kernel, k.stride, k.padding, k.ceil_mode, k.count_include_pad), ref_avg_pool(k, xv),
                1e-6, 1e-6);
    check_close(ft::avg_pool2d_backward(gy, x.shape(), k.kernel, k.stride, k.padding, k.ceil_mode, k.count_include_pad),
                ref_avg_pool_backward(k, gv), 1e-6, 1e-6);
  }
}

// adaptive windows: [floor(i·in/out), ceil((i+1)·in/out))
index_t ad_start(index_t i, index_t in, index_t out) { return static_cast<index_t>(std::floor(double(i) * in / out)); }
index_t ad_end(index_t i, index_t in, index_t out) { return static_cast<index_t>(std::ceil(double(i + 1) * in / out)); }

}  // namespace

TEST_CASE("max and average pooling and their backward passes match plain loops") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    unsigned seed = 500;
    for (const PoolCase& k : pool_cases()) check_pool_case<float>(dev, k, seed += 10);
    check_pool_case<double>(dev, pool_cases()[3], 600);
  }
}

TEST_CASE("pooling with the default stride (= kernel), on views and expressions") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto base = random_tensor<float>({2, 3, 9, 8}, dev, 61);
    auto x = base.transpose(2, 3);  // [2, 3, 8, 9], strided
    const PoolCase k{2, 3, 8, 9, 2, 2, 0, 1, false, true};
    const auto xv = to_double(x);
    std::vector<double> want_y, want_idx;
    ref_max_pool(k, xv, want_y, want_idx);
    check_close(ft::max_pool2d(x, 2), want_y, 0, 0);
    check_close(ft::max_pool2d_with_indices(x, 2).indices, want_idx, 0, 0);
    check_close(ft::avg_pool2d(x, 2), ref_avg_pool(k, xv), 1e-6, 1e-6);
    std::vector<double> neg(want_y.size());
    for (std::size_t i = 0; i < neg.size(); ++i) {
      double m = std::numeric_limits<double>::infinity();  // max of −x = −min of x, so check min via −x
      const index_t pl = static_cast<index_t>(i) / 16, oy = (static_cast<index_t>(i) / 4) % 4,
                    ox = static_cast<index_t>(i) % 4;
      for (index_t a = 0; a < 2; ++a)
        for (index_t b = 0; b < 2; ++b)
          m = std::min(m, xv[static_cast<std::size_t>((pl * 8 + 2 * oy + a) * 9 + 2 * ox + b)]);
      neg[i] = -m;
    }
    check_close(ft::max_pool2d(-x, 2), neg, 0, 0);
  }
}

TEST_CASE("max pooling: ties pick the first maximum, NaN propagates, padding never wins") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto ones = ft::full<float>({1, 1, 4, 4}, 1.0f, dev);
    auto r = ft::max_pool2d_with_indices(ones, 3, 1, 1);
    auto idx = r.indices.to_vector();
    CHECK(idx[0] == 0);    // window rows −1..1, cols −1..1: first valid element (0, 0)
    CHECK(idx[5] == 0);    // window rows 0..2, cols 0..2
    CHECK(idx[15] == 10);  // window rows 2..4, cols 2..4 → (2, 2)
    auto neg = ft::full<float>({1, 1, 3, 3}, -5.0f, dev);
    auto m = ft::max_pool2d(neg, 3, 1, 1).to_vector();
    for (float v : m) CHECK(v == -5.0f);  // −∞ padding does not win
    std::vector<float> vals(16, 0.0f);
    vals[5] = std::numeric_limits<float>::quiet_NaN();
    auto xn = ft::from_vector<float>(vals, {1, 1, 4, 4}, dev);
    auto rn = ft::max_pool2d_with_indices(xn, 2);
    CHECK(std::isnan(rn.output.to_vector()[0]));
    CHECK(rn.indices.to_vector()[0] == 5);
    CHECK(rn.output.to_vector()[1] == 0.0f);
  }
}

TEST_CASE("adaptive average pooling with non-divisible sizes, and its backward") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    struct Case {
      index_t h, w, oh, ow;
    };
    for (const Case& c : {Case{7, 7, 3, 3}, Case{13, 10, 4, 7}, Case{5, 6, 7, 4}, Case{9, 9, 1, 1}}) {
      CAPTURE(c.h);
      CAPTURE(c.w);
      CAPTURE(c.oh);
      CAPTURE(c.ow);
      auto x = random_tensor<float>({2, 3, c.h, c.w}, dev, 71);
      auto gy = random_tensor<float>({2, 3, c.oh, c.ow}, dev, 72);
      const auto xv = to_double(x), gv = to_double(gy);
      std::vector<double> want(gv.size(), 0.0), want_dx(xv.size(), 0.0);
      for (index_t pl = 0; pl < 6; ++pl)
        for (index_t i = 0; i < c.oh; ++i)
          for (index_t j = 0; j < c.ow; ++j) {
            const index_t y0 = ad_start(i, c.h, c.oh), y1 = ad_end(i, c.h, c.oh);
            const index_t x0 = ad_start(j, c.w, c.ow), x1 = ad_end(j, c.w, c.ow);
            const double cnt = static_cast<double>((y1 - y0) * (x1 - x0));
            const std::size_t o = static_cast<std::size_t>((pl * c.oh + i) * c.ow + j);
            for (index_t a = y0; a < y1; ++a)
              for (index_t b = x0; b < x1; ++b) {
                const std::size_t in = static_cast<std::size_t>((pl * c.h + a) * c.w + b);
                want[o] += xv[in] / cnt;
                want_dx[in] += gv[o] / cnt;
              }
          }
      ft::Tensor<float, 4> y = ft::adaptive_avg_pool2d(x, {c.oh, c.ow});
      CHECK(y.shape() == Shape<4>{2, 3, c.oh, c.ow});
      check_close(y, want, 1e-5, 1e-6);
      check_close(ft::adaptive_avg_pool2d_backward(gy, x.shape()), want_dx, 1e-5, 1e-6);
    }
  }
}

TEST_CASE("pooling is one launch per call and bit-identical run after run") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({4, 8, 32, 32}, dev, 81);
    auto gy = random_tensor<float>({4, 8, 16, 16}, dev, 82);
    ft::MaxPool2dResult<float> r;
    CHECK(launches_of(dev, [&] { r = ft::max_pool2d_with_indices(x, 3, 2, 1); }) == 1);
    CHECK(launches_of(dev, [&] { (void)ft::max_pool2d(x, 3, 2, 1); }) == 1);
    CHECK(launches_of(dev, [&] { (void)ft::avg_pool2d(x, 3, 2, 1); }) == 1);
    CHECK(launches_of(dev, [&] { (void)ft::adaptive_avg_pool2d(x, {5, 3}); }) == 1);
    ft::Tensor<float, 4> dx;
    CHECK(launches_of(dev, [&] { dx = ft::max_pool2d_backward(gy, r.indices, x.shape(), 3, 2, 1); }) == 1);
    CHECK(dx.to_vector() == ft::max_pool2d_backward(gy, r.indices, x.shape(), 3, 2, 1).to_vector());
    CHECK(launches_of(dev, [&] { dx = ft::avg_pool2d_backward(gy, x.shape(), 3, 2, 1); }) == 1);
    CHECK(dx.to_vector() == ft::avg_pool2d_backward(gy, x.shape(), 3, 2, 1).to_vector());
    auto ga = random_tensor<float>({4, 8, 5, 3}, dev, 83);
    CHECK(launches_of(dev, [&] { dx = ft::adaptive_avg_pool2d_backward(ga, x.shape()); }) == 1);
    CHECK(dx.to_vector() == ft::adaptive_avg_pool2d_backward(ga, x.shape()).to_vector());
    auto x0 = random_tensor<float>({0, 8, 32, 32}, dev, 84);
    CHECK(launches_of(dev, [&] { (void)ft::max_pool2d(x0, 2); }) == 0);
  }
}

TEST_CASE("bad pooling arguments throw an ft::Error naming the op and the shapes") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = random_tensor<float>({1, 2, 4, 4}, dev, 91);
    std::int64_t launched = launches_of(dev, [&] {
      CHECK(error_of([&] { (void)ft::max_pool2d(x, 0); }) == "max_pool2d: kernel size must be positive, got (0, 0)");
      CHECK(error_of([&] { (void)ft::max_pool2d(x, 2, {1, 0}); }) == "max_pool2d: stride must be positive, got (1, 0)");
      CHECK(error_of([&] { (void)ft::max_pool2d(x, 3, 1, 2); }) ==
            "max_pool2d: padding (2, 2) should be at most half of the (dilated) kernel 3x3");
      CHECK(error_of([&] {
              (void)ft::avg_pool2d(x, 2, 2, {0, 2});
            }) == "avg_pool2d: padding (0, 2) should be at most half of the kernel 2x2");
      CHECK(error_of([&] { (void)ft::max_pool2d(x, 5); }) ==
            "max_pool2d: input [1, 2, 4, 4] is too small for the kernel 5x5 (padding (0, 0)): the output would be 0x0");
      CHECK(error_of([&] {
              (void)ft::adaptive_avg_pool2d(x, {0, 2});
            }) == "adaptive_avg_pool2d: output size must be positive, got (0, 2)");
      auto gy = random_tensor<float>({1, 2, 3, 3}, dev, 92);
      CHECK(error_of([&] { (void)ft::avg_pool2d_backward(gy, x.shape(), 2); }) ==
            "avg_pool2d_backward: grad_out [1, 2, 3, 3] should have shape [1, 2, 2, 2], the pooled shape of input "
            "[1, 2, 4, 4]");
    });
    CHECK(launched == 0);
    if (dev.is_cpu()) {  // the CPU's backward scatters by the indices: one outside its plane is refused
      auto gy = random_tensor<float>({1, 2, 2, 2}, dev, 93);
      auto bad = ft::from_vector<std::int64_t>({0, 1, 4, 5, 2, 3, 16, 7}, {1, 2, 2, 2}, dev);
      CHECK(error_of([&] { (void)ft::max_pool2d_backward(gy, bad, x.shape(), 2); }) ==
            "max_pool2d_backward: an index is outside its input plane of 4x4 (the indices must be those "
            "max_pool2d_with_indices returned for this input)");
    }
  }
}

FT_GPU_TEST_CASE("GPU and CPU agree on conv2d, conv1d, conv_transpose2d, their gradients and pooling") {
  const ft::Device gpu(ft::kCUDA, 0);
  auto x = random_tensor<float>({3, 6, 17, 17}, ft::kCPU, 101, -1, 1);
  auto w = random_tensor<float>({8, 3, 3, 3}, ft::kCPU, 102, -1, 1);
  auto b = random_tensor<float>({8}, ft::kCPU, 103, -1, 1);
  const ft::Conv2dOptions opt{.stride = 2, .padding = 1, .groups = 2};
  auto y = ft::conv2d(x, w, b, opt);
  check_close(ft::conv2d(x.to(gpu), w.to(gpu), b.to(gpu), opt), to_double(y), 1e-3, 1e-3);
  auto gy = random_tensor<float>({3, 8, 9, 9}, ft::kCPU, 104, -1, 1);
  check_close(ft::conv2d_backward_data(gy.to(gpu), w.to(gpu), x.shape(), opt),
              to_double(ft::conv2d_backward_data(gy, w, x.shape(), opt)), 1e-3, 1e-3);
  check_close(ft::conv2d_backward_weight(x.to(gpu), gy.to(gpu), w.shape(), opt),
              to_double(ft::conv2d_backward_weight(x, gy, w.shape(), opt)), 1e-3, 1e-2);
  // conv1d and conv_transpose2d, forward and Var gradients
  auto s = random_tensor<float>({3, 6, 33}, ft::kCPU, 105, -1, 1);
  auto k = random_tensor<float>({8, 3, 5}, ft::kCPU, 106, -1, 1);
  const ft::Conv1dOptions opt1{.stride = 2, .padding = 2, .dilation = 2, .groups = 2};
  check_close(ft::conv1d(s.to(gpu), k.to(gpu), b.to(gpu), opt1), to_double(ft::conv1d(s, k, b, opt1)), 1e-3, 1e-3);
  auto wt = random_tensor<float>({6, 4, 3, 3}, ft::kCPU, 107, -1, 1);
  const ft::ConvTranspose2dOptions optt{.stride = 2, .padding = 1, .output_padding = 1, .groups = 2};
  auto bt = random_tensor<float>({8}, ft::kCPU, 108, -1, 1);
  check_close(ft::conv_transpose2d(x.to(gpu), wt.to(gpu), bt.to(gpu), optt),
              to_double(ft::conv_transpose2d(x, wt, bt, optt)), 1e-3, 1e-3);
  const ft::ConvTranspose2dOptions optd{.padding = 1, .output_padding = 1, .dilation = 2};  // zero-extended input
  check_close(ft::conv_transpose2d(x.to(gpu), wt.to(gpu), optd), to_double(ft::conv_transpose2d(x, wt, optd)), 1e-3,
              1e-3);
  std::vector<std::vector<double>> cpu_grads;
  for (ft::Device d : {ft::Device(ft::kCPU), gpu}) {
    ft::Var<float, 4> vx(x.to(d), ft::requires_grad), vw(wt.to(d), ft::requires_grad);
    ft::Var<float, 1> vb(bt.to(d), ft::requires_grad);
    ft::Var<float, 0> lt = ft::sum(ft::square(ft::conv_transpose2d(vx, vw, vb, optt)));
    lt.backward();
    ft::Var<float, 3> vs(s.to(d), ft::requires_grad), vk(k.to(d), ft::requires_grad);
    ft::Var<float, 0> l1 = ft::sum(ft::square(ft::conv1d(vs, vk, opt1)));
    l1.backward();
    std::vector<std::vector<double>> grads{to_double(vx.grad()), to_double(vw.grad()), to_double(vb.grad()),
                                           to_double(vs.grad()), to_double(vk.grad())};
    if (d.is_cpu()) {
      cpu_grads = grads;
    } else {
      for (std::size_t i = 0; i < grads.size(); ++i) check_close(grads[i], cpu_grads[i], 1e-3, 1e-2);
    }
  }
  auto r = ft::max_pool2d_with_indices(x, 3, 2, 1);
  auto rg = ft::max_pool2d_with_indices(x.to(gpu), 3, 2, 1);
  CHECK(rg.output.to_vector() == r.output.to_vector());
  CHECK(rg.indices.to_vector() == r.indices.to_vector());
}
