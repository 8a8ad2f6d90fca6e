// Training in half and bfloat16: gradients of two-byte Vars against the same program in float,
// layers, optimizers with fp32 master weights (one launch a step), gradient clipping.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "ft/ft.hpp"
#include "golden/golden.hpp"

using namespace ft;
using ft::test::devices;

namespace {

// |got − want| within `ulps` units in the last place of H at want (plus an absolute floor for
// values near 0, where a sum of rounded terms cancels).
template <class H>
void check_near(const std::vector<double>& got, const std::vector<double>& want, double ulps, double floor,
                const char* what) {
  REQUIRE(got.size() == want.size());
  constexpr int mant = std::is_same_v<H, ft::half> ? 10 : 7;
  for (std::size_t i = 0; i < got.size(); ++i) {
    int e = 0;
    std::frexp(want[i], &e);
    const double ulp = std::ldexp(1.0, e - 1 - mant);
    CHECK_MESSAGE(std::fabs(got[i] - want[i]) <= ulps * ulp + floor, std::string(what), " element ", i, ": got ",
                  got[i], ", want ", want[i]);
  }
}

// x rounded to H, and the same values in float.
template <class H, int R>
std::pair<Tensor<H, R>, Tensor<float, R>> rounded(const Tensor<float, R>& x) {
  Tensor<H, R> h = cast<H>(x);
  return {h, Tensor<float, R>(cast<float>(h))};
}

}  // namespace

TEST_CASE_TEMPLATE("two-byte Vars: a statement's gradients are the float program's, rounded once", H, ft::half,
                   bfloat16) {
  for (Device dev : devices()) {
    CAPTURE(dev);
    auto [xh, xf] = rounded<H>(randn<float>({6, 40}, dev, 1));
    auto [yh, yf] = rounded<H>(randn<float>({6, 40}, dev, 11));
    auto [wh, wf] = rounded<H>(randn<float>({40}, dev, 2));
    Var<H, 2> x(xh, requires_grad), y(yh, requires_grad);
    Var<H, 1> w(wh, requires_grad);
    Var<float, 2> x32(xf, requires_grad), y32(yf, requires_grad);
    Var<float, 1> w32(wf, requires_grad);
    const auto l0 = stats::launches(dev);
    Var<H, 0> loss = sum(tanh(x * w) * exp(y));
    loss.backward();
    const auto half_launches = stats::launches(dev) - l0;
    const auto l1 = stats::launches(dev);
    Var<float, 0> loss32 = sum(tanh(x32 * w32) * exp(y32));
    loss32.backward();
    CHECK(half_launches == stats::launches(dev) - l1);  // the same kernels, in another type
    static_assert(std::is_same_v<std::decay_t<decltype(x.grad())>, Tensor<H, 2>>);
    // each Var occurs once: its gradient is the float program's, rounded once (w's sums over the
    // batch in float)
    for (auto [got, want] : {std::pair{test::to_double(x.grad().to(kCPU)), test::to_double(x32.grad().to(kCPU))},
                             std::pair{test::to_double(y.grad().to(kCPU)), test::to_double(y32.grad().to(kCPU))}})
      check_near<H>(got, want, 0.5, 0, "dx, dy");
    check_near<H>(test::to_double(w.grad().to(kCPU)), test::to_double(w32.grad().to(kCPU)), 0.5, 0, "dw");
    // x three times: each occurrence's share is added into the two-byte gradient with a rounding
    // (PyTorch's eager backward rounds every intermediate gradient too): d(x·x + x) = x + x + 1
    Var<H, 0> l2 = sum(x * x + x);
    Var<float, 0> l2_32 = sum(x32 * x32 + x32);
    x.zero_grad();
    x32.zero_grad();
    l2.backward();
    l2_32.backward();
    const auto got = test::to_double(x.grad().to(kCPU)), want = test::to_double(x32.grad().to(kCPU)),
               xs = test::to_double(xh.to(kCPU));
    constexpr double eps = std::is_same_v<H, ft::half> ? 0x1p-11 : 0x1p-8;  // half an ulp at 1
    for (std::size_t i = 0; i < got.size(); ++i)
      CHECK(std::fabs(got[i] - want[i]) <= 3 * eps * std::max({std::fabs(xs[i]), std::fabs(want[i]), 1.0}));
  }
}

TEST_CASE_TEMPLATE("two-byte Linear: forward and gradients agree with float on the same values", H, ft::half,
                   bfloat16) {
  for (Device dev : devices()) {
    CAPTURE(dev);
    nn::Linear<H> fc(32, 16, true, dev);
    nn::Linear<float> fc32(32, 16, true, dev);
    fc32.weight.data() = cast<float>(fc.weight.value());
    fc32.bias.data() = cast<float>(fc.bias.value());
    auto [xh, xf] = rounded<H>(randn<float>({8, 32}, dev, 3));
    Var<H, 2> y = relu(fc.forward(xh));
    Var<float, 2> y32 = relu(fc32.forward(xf));
    check_near<H>(test::to_double(y.value().to(kCPU)), test::to_double(y32.value().to(kCPU)), 2, 1e-2, "forward");
    Var<H, 0> loss = mean(y * y);
    Var<float, 0> loss32 = mean(y32 * y32);
    loss.backward();
    loss32.backward();
    check_near<H>(test::to_double(fc.weight.grad().to(kCPU)), test::to_double(fc32.weight.grad().to(kCPU)), 4, 1e-3,
                  "dW");
    check_near<H>(test::to_double(fc.bias.grad().to(kCPU)), test::to_double(fc32.bias.grad().to(kCPU)), 4, 1e-3, "db");
  }
}

TEST_CASE_TEMPLATE("a float model's state dict loads into a two-byte model and back (PyTorch's model.to(dtype))", H,
                   ft::half, bfloat16) {
  using Net = nn::Sequential<nn::Linear<float>, nn::ReLU, nn::Linear<float>>;
  using NetH = nn::Sequential<nn::Linear<H>, nn::ReLU, nn::Linear<H>>;
  Net net(nn::Linear<float>(12, 8), nn::ReLU(), nn::Linear<float>(8, 3));
  NetH half_net(nn::Linear<H>(12, 8), nn::ReLU(), nn::Linear<H>(8, 3));
  half_net.load_state_dict(net.state_dict());  // each entry rounded to H
  const auto w = test::to_double(net.get<0>().weight.value());
  const auto wh = test::to_double(half_net.template get<0>().weight.value());
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(wh[i] == static_cast<double>(static_cast<float>(H(float(w[i])))));
  const Tensor<float, 2> x = randn<float>({4, 12}, kCPU, 8);
  const Tensor<H, 2> xh = cast<H>(x);
  const Var<float, 2> y32 = net(x);
  const Var<H, 2> y16 = half_net(xh);
  const auto y = test::to_double(y32.value()), yh = test::to_double(y16.value());
  constexpr double eps = std::is_same_v<H, ft::half> ? 0x1p-10 : 0x1p-7;
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(std::fabs(yh[i] - y[i]) <= 16 * eps * (1 + std::fabs(y[i])));
  // and back: the two-byte values widen exactly
  Net back(nn::Linear<float>(12, 8), nn::ReLU(), nn::Linear<float>(8, 3));
  back.load_state_dict(half_net.state_dict());
  CHECK(test::to_double(back.get<0>().weight.value()) == wh);
  // a shape, or a floating/integer mismatch, is still an error naming the entry
  nn::StateDict bad = net.state_dict();
  bad.insert("0.bias", Tensor<std::int64_t, 1>(Shape<1>{8}));
  CHECK_THROWS_WITH_AS(half_net.load_state_dict(bad), doctest::Contains("\"0.bias\": the loaded tensor is int64"),
                       ft::Error);
}

TEST_CASE_TEMPLATE("two-byte LayerNorm, softmax and log_softmax: outputs and gradients agree with float", H, ft::half,
                   bfloat16) {
  for (Device dev : devices()) {
    CAPTURE(dev);
    nn::LayerNorm<H> ln(48, 1e-5, true, true, dev);
    nn::LayerNorm<float> ln32(48, 1e-5, true, true, dev);
    auto [wh, wf] = rounded<H>(Tensor<float, 1>(randn<float>({48}, dev, 4) * 0.5f + 1.0f));
    auto [bh, bf] = rounded<H>(randn<float>({48}, dev, 5));
    ln.weight.data() = wh, ln.bias.data() = bh;
    ln32.weight.data() = wf, ln32.bias.data() = bf;
    auto [xh, xf] = rounded<H>(Tensor<float, 3>(randn<float>({3, 5, 48}, dev, 6) * 2.0f + 0.5f));
    auto [rh, rf] = rounded<H>(randn<float>({3, 5, 48}, dev, 7));
    Var<H, 3> x(xh, requires_grad);
    Var<float, 3> x32(xf, requires_grad);
    auto run = [](auto& layer, const auto& xv, const auto& r) {
      auto y = layer(xv);
      using T = typename decltype(y)::value_type;
      Var<T, 0> loss = sum(softmax(y, -1) * r) + sum(log_softmax(y, 1) * r) * 0.5;
      loss.backward();
      return y;
    };
    const auto y = run(ln, x, rh);
    const auto y32 = run(ln32, x32, rf);
    // each output is the float result rounded once (the statistics are kept in float)
    check_near<H>(test::to_double(y.value().to(kCPU)), test::to_double(y32.value().to(kCPU)), 1, 1e-6, "layer_norm");
    // gradients: a few roundings of intermediate two-byte tensors (softmax's, the gradient's)
    constexpr double eps = std::is_same_v<H, ft::half> ? 0x1p-10 : 0x1p-7;
    auto close = [&](const auto& got, const auto& want, const char* what) {
      CAPTURE(what);
      const auto g = test::to_double(got.to(kCPU)), f = test::to_double(want.to(kCPU));
      double scale = 0;
      for (double v : f) scale = std::max(scale, std::fabs(v));
      for (std::size_t i = 0; i < g.size(); ++i) CHECK(std::fabs(g[i] - f[i]) <= 8 * eps * scale);
    };
    close(x.grad(), x32.grad(), "dx");
    close(ln.weight.grad(), ln32.weight.grad(), "dw");
    close(ln.bias.grad(), ln32.bias.grad(), "db");
  }
}

TEST_CASE_TEMPLATE("optimizers step two-byte parameters in float on fp32 master weights, in one launch", H, ft::half,
                   bfloat16) {
  for (Device dev : devices()) {
    CAPTURE(dev);
    auto [p1h, p1f] = rounded<H>(randn<float>({300}, dev, 4));
    auto [p2h, p2f] = rounded<H>(randn<float>({7, 11}, dev, 5));
    Var<H, 1> a(p1h, requires_grad);
    Var<H, 2> b(p2h, requires_grad);
    Var<float, 1> a32(p1f, requires_grad);
    Var<float, 2> b32(p2f, requires_grad);
    optim::AdamW opt({a, b}, {.lr = 1e-2});
    optim::AdamW ref({a32, b32}, {.lr = 1e-2});
    for (int step = 0; step < 5; ++step) {
      // the same gradients for both: values of H
      auto [g1h, g1f] = rounded<H>(randn<float>({300}, dev, 10 + static_cast<std::uint64_t>(step)));
      auto [g2h, g2f] = rounded<H>(randn<float>({7, 11}, dev, 20 + static_cast<std::uint64_t>(step)));
      Var<H, 0> la = sum(a * g1h) + sum(b * g2h);
      la.backward();
      Var<float, 0> lf = sum(a32 * g1f) + sum(b32 * g2f);
      lf.backward();
      const auto l0 = stats::launches(dev);
      opt.step();
      CHECK(stats::launches(dev) - l0 == 1);  // both two-byte parameters in one launch
      ref.step();
      opt.zero_grad();
      ref.zero_grad();
    }
    // the master copies follow the float optimizer exactly; the parameters are them rounded
    const auto ma = opt.master(a).template as<float, 1>();
    CHECK(ma.to(kCPU).to_vector() == a32.value().to(kCPU).to_vector());
    const Tensor<H, 1> rounded_a = cast<H>(a32.value());
    CHECK(test::to_double(a.value().to(kCPU)) == test::to_double(rounded_a.to(kCPU)));
    const Tensor<H, 2> rounded_b = cast<H>(b32.value());
    CHECK(test::to_double(b.value().to(kCPU)) == test::to_double(rounded_b.to(kCPU)));
    // the state dict carries the master copies; a fresh optimizer continues from it
    const auto sd = opt.state_dict();
    CHECK(sd.contains("state.0.master_param"));
    CHECK(sd.at("state.0.exp_avg").dtype() == DType::Float32);
    optim::AdamW again({a, b}, {.lr = 1e-2});
    again.load_state_dict(sd);
    CHECK(again.master(a).template as<float, 1>().to(kCPU).to_vector() == ma.to(kCPU).to_vector());
  }
}

TEST_CASE_TEMPLATE("without master weights an optimizer rounds each update into the parameter", H, ft::half, bfloat16) {
  auto [ph, pf] = rounded<H>(randn<float>({64}, kCPU, 6));
  Var<H, 1> p(ph, requires_grad);
  optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
  opt.set_master_weights(false);
  auto [gh, gf] = rounded<H>(randn<float>({64}, kCPU, 7));
  Var<H, 0> l = sum(p * gh);
  l.backward();
  opt.step();
  CHECK(!opt.master(p).defined());
  // first step: buf = g; p ← p − lr·g, computed in float and rounded
  const Tensor<H, 1> want = cast<H>(pf - 0.1f * gf);
  CHECK(test::to_double(p.value()) == test::to_double(want));
}

TEST_CASE_TEMPLATE("clip_grad_norm_ covers two-byte gradients", H, ft::half, bfloat16) {
  auto [gh, gf] = rounded<H>(randn<float>({1000}, kCPU, 8));
  Var<H, 1> p(zeros<H>({1000}), requires_grad);
  Var<H, 0> l = sum(p * gh);
  l.backward();
  const double want = std::sqrt(Tensor<double, 0>(sum(cast<double>(gf) * cast<double>(gf))).item());
  const Tensor<double, 0> total = nn::clip_grad_norm_(nn::ParameterList{nn::Parameter(p)}, 1.0);
  CHECK(total.item() == doctest::Approx(want).epsilon(1e-6));
  const double after = std::sqrt(Tensor<double, 0>(sum(cast<double>(p.grad()) * cast<double>(p.grad()))).item());
  CHECK(after == doctest::Approx(1.0).epsilon(std::is_same_v<H, ft::half> ? 2e-3 : 1e-2));
}

TEST_CASE("GradScaler: growth and backoff follow PyTorch's update rule; skipped steps change nothing") {
  amp::GradScaler scaler({.init_scale = 1024.0, .growth_factor = 2.0, .backoff_factor = 0.5, .growth_interval = 3});
  Var<float, 1> p(Tensor<float, 1>(linspace<float>(-1.0, 1.0, 50)), requires_grad);
  optim::Adam opt({p}, {.lr = 0.1});
  // the reference: torch.cuda.amp.GradScaler.update (_amp_update_scale_), a plain loop
  double scale = 1024.0;
  std::int64_t tracker = 0;
  const std::vector<int> inf_steps{2, 3, 9, 17, 18, 25};
  for (int step = 0; step < 30; ++step) {
    CAPTURE(step);
    const bool inject = std::find(inf_steps.begin(), inf_steps.end(), step) != inf_steps.end();
    Var<float, 0> loss = sum(p * p) * (inject ? INFINITY : 1.0f);
    Var<float, 0> scaled = scaler.scale(loss);
    if (!inject) CHECK(scaled.value().item() == doctest::Approx(loss.value().item() * scale));
    scaled.backward();
    const std::vector<float> before = p.value().to_vector();
    const auto state_before =
        opt.state(p) ? opt.state(p)->exp_avg.as<float, 1>().clone().to_vector() : std::vector<float>{};
    const auto l0 = stats::launches(kCPU);
    scaler.unscale_(opt);
    CHECK(stats::launches(kCPU) - l0 == 1);  // unscale and inf check: one launch
    if (!inject) {                           // the unscaled gradient is the true one: 2p
      const auto g = p.grad().to_vector();
      for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == doctest::Approx(2 * before[i]));
    }
    const bool stepped = scaler.step(opt);
    CHECK(stepped == !inject);
    if (inject) {
      CHECK(p.value().to_vector() == before);  // parameters and state untouched
      if (!state_before.empty()) CHECK(opt.state(p)->exp_avg.as<float, 1>().to_vector() == state_before);
    } else {
      CHECK(p.value().to_vector() != before);
    }
    scaler.update();
    if (inject) {
      scale *= 0.5;
      tracker = 0;
    } else if (++tracker == 3) {
      scale *= 2.0;
      tracker = 0;
    }
    CHECK(scaler.get_scale() == scale);
    CHECK(scaler.growth_tracker() == tracker);
    opt.zero_grad();
  }
  const auto sd = scaler.state_dict();
  CHECK(sd.at("scale").as<double, 0>().item() == scale);
  CHECK(sd.at("_growth_tracker").as<double, 0>().item() == static_cast<double>(tracker));
  amp::GradScaler other;
  other.load_state_dict(sd);
  CHECK(other.get_scale() == scale);
  CHECK(test::error_of([&] { scaler.update(); }).find("no inf checks") != std::string::npos);
}

TEST_CASE_TEMPLATE("GradScaler unscales two-byte gradients and finds their overflows", H, ft::half, bfloat16) {
  Var<H, 1> p(cast<H>(ones<float>({64})), requires_grad);
  optim::SGD opt({p}, {.lr = 0.5});
  amp::GradScaler scaler({.init_scale = 256.0});
  Var<H, 0> loss = sum(p * 0.25);
  Var<H, 0> scaled = scaler.scale(loss);
  scaled.backward();
  for (double g : test::to_double(p.grad())) CHECK(g == 64.0);  // 0.25 · 256
  CHECK(scaler.step(opt));
  for (double v : test::to_double(p.value())) CHECK(v == 0.875);  // 1 − 0.5 · 0.25
  scaler.update();
  // a gradient beyond the type's range: skipped, and the scale backs off
  Var<H, 0> big = sum(p * 3e38);
  Var<H, 0> big_scaled = scaler.scale(big);
  big_scaled.backward();
  CHECK(!scaler.step(opt));
  scaler.update();
  CHECK(scaler.get_scale() == 128.0);
  for (double v : test::to_double(p.value())) CHECK(v == 0.875);
}

TEST_CASE("autocast: matmul and its gradients in bfloat16 as torch.autocast, everything else unchanged") {
  const test::Golden g("half.txt");
  for (Device dev : devices()) {
    CAPTURE(dev);
    Var<float, 2> x(g.tensor<float, 2>("autocast.x", dev), requires_grad);
    Var<float, 2> w(g.tensor<float, 2>("autocast.w", dev), requires_grad);
    const auto r = g.tensor<float, 2>("autocast.r", dev);
    CHECK(!amp::autocast_dtype(dev));
    Var<float, 2> y;
    {
      autocast guard(dev.type, kBFloat16);
      CHECK(amp::autocast_dtype(dev) == kBFloat16);
      y = matmul(x, w);
      {
        autocast off(dev.type, std::nullopt, false);  // nested, disabled
        CHECK(!amp::autocast_dtype(dev));
      }
      CHECK(amp::autocast_dtype(dev) == kBFloat16);
      // an elementwise statement is the same one launch inside the guard
      const auto l0 = stats::launches(dev);
      const Tensor<float, 2> z = relu(x.value() * 2.0f + 1.0f);
      CHECK(stats::launches(dev) - l0 == 1);
      CHECK(z.to(kCPU).to_vector() == Tensor<float, 2>(relu(x.value().to(kCPU) * 2.0f + 1.0f)).to_vector());
    }
    CHECK(!amp::autocast_dtype(dev));
    // the product of the operands rounded to bfloat16, accumulated exactly (double) and rounded to
    // bfloat16 once: ours accumulates in float (within an ulp of it). torch 1.13's own CPU kernel
    // (Debian's build) accumulates in bfloat16: within 2⁻⁷·Σ|terms| of it.
    auto check_product = [](const std::vector<double>& got, const Tensor<float, 2>& p, const Tensor<float, 2>& q,
                            const std::vector<double>& torch_result) {
      const index_t m = p.size(0), k = p.size(1), n = q.size(1);
      const auto pv = test::to_double(Tensor<float, 2>(cast<float>(cast<bfloat16>(p.to(kCPU)))));
      const auto qv = test::to_double(Tensor<float, 2>(cast<float>(cast<bfloat16>(q.to(kCPU)))));
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < n; ++j) {
          double exact = 0, size = 0;
          for (index_t t = 0; t < k; ++t) {
            exact += pv[static_cast<std::size_t>(i * k + t)] * qv[static_cast<std::size_t>(t * n + j)];
            size += std::fabs(pv[static_cast<std::size_t>(i * k + t)] * qv[static_cast<std::size_t>(t * n + j)]);
          }
          const double v = got[static_cast<std::size_t>(i * n + j)];
          CHECK(static_cast<double>(static_cast<float>(bfloat16(static_cast<float>(v)))) == v);  // a bfloat16 value
          CHECK(v == doctest::Approx(static_cast<float>(bfloat16(static_cast<float>(exact)))).epsilon(0x1p-8));
          CHECK(std::fabs(v - torch_result[static_cast<std::size_t>(i * n + j)]) <= 0x1p-7 * size);
        }
    };
    check_product(test::to_double(y.value().to(kCPU)), x.value(), w.value(), g.values("autocast.y"));
    // the backward, after the guard's scope, still runs the product's GEMMs in bfloat16
    Var<float, 0> loss = sum(y * r);
    loss.backward();
    check_product(test::to_double(x.grad().to(kCPU)), r, w.value().transpose(0, 1).contiguous(),
                  g.values("autocast.dx"));
    check_product(test::to_double(w.grad().to(kCPU)), x.value().transpose(0, 1).contiguous(), r,
                  g.values("autocast.dw"));
    // outside a guard the same product is float's
    const Tensor<float, 2> y32 = matmul(x.value(), w.value());
    CHECK(y32.to(kCPU).to_vector() != y.value().to(kCPU).to_vector());
  }
  CHECK(test::error_of([] { autocast bad(kCPU, kFloat32); }).find("float16 or bfloat16") != std::string::npos);
}

TEST_CASE("autocast keeps a parameter's lower-precision copy for the guard's scope (PyTorch's autocast cache)") {
  for (Device dev : devices()) {
    CAPTURE(dev);
    Var<float, 2> w(randn<float>({32, 16}, dev, 60), requires_grad);  // a parameter
    const Tensor<float, 2> x = randn<float>({8, 16}, dev, 61);
    Tensor<float, 2> first, again, changed;
    std::int64_t cold = 0, warm = 0;
    {
      autocast guard(dev.type, kBFloat16);
      auto l0 = stats::launches(dev);
      first = linear(Var<float, 2>(x), w).value();  // casts the input and the weight
      cold = stats::launches(dev) - l0;
      l0 = stats::launches(dev);
      again = linear(Var<float, 2>(x), w).value();  // the weight's copy is kept: one cast fewer
      warm = stats::launches(dev) - l0;
      CHECK(warm == cold - 1);
      CHECK(again.to(kCPU).to_vector() == first.to(kCPU).to_vector());
      CHECK(amp::detail::cast_cache(dev.type).entries.size() == 1);  // the weight only, not the input
      {
        NoGradGuard no_grad;
        w.data() = w.value() * 2.0f;  // a write through the library: a new copy
      }
      changed = linear(Var<float, 2>(x), w).value();
      const auto c = changed.to(kCPU).to_vector(), f = first.to(kCPU).to_vector();
      for (std::size_t i = 0; i < c.size(); ++i) CHECK(c[i] == 2 * f[i]);  // 2 w is exact in bfloat16 too
      // an optimizer step inside the guard writes the weight too: the next product reads the new one
      Var<float, 0> loss = sum(linear(Var<float, 2>(x), w));
      loss.backward();
      optim::SGD opt({w}, {.lr = 0.5});
      opt.step();
      const Tensor<float, 2> stepped = linear(Var<float, 2>(x), w).value();
      const Tensor<float, 2> want = linear(Var<float, 2>(x), Var<float, 2>(w.value().clone())).value();
      CHECK(stepped.to(kCPU).to_vector() == want.to(kCPU).to_vector());
    }
    CHECK(amp::detail::cast_cache(dev.type).entries.empty());  // the outermost guard's end empties it
    {
      autocast guard(dev.type, kBFloat16);
      const auto l0 = stats::launches(dev);
      (void)linear(Var<float, 2>(x), w);
      CHECK(stats::launches(dev) - l0 == cold);  // a new scope casts again
    }
  }
}

TEST_CASE_TEMPLATE(
    "conv2d in two-byte types and under autocast: the float convolution of the rounded operands, rounded", H, ft::half,
    bfloat16) {
  for (Device dev : devices()) {
    CAPTURE(dev);
    auto [xh, xf] = rounded<H>(randn<float>({2, 3, 9, 9}, dev, 30));
    auto [wh, wf] = rounded<H>(randn<float>({4, 3, 3, 3}, dev, 31));
    const Conv2dOptions opt{.stride = 2, .padding = 1};
    const Tensor<H, 4> y = conv2d(xh, wh, opt);
    const Tensor<H, 4> want = cast<H>(conv2d(xf, wf, opt));
    check_near<H>(test::to_double(y.to(kCPU)), test::to_double(want.to(kCPU)), 1, 0, "conv2d");
    // a float model under autocast: the same values, and gradients from the rounded operands
    Var<float, 4> w(randn<float>({4, 3, 3, 3}, dev, 31), requires_grad);
    Var<float, 4> out;
    {
      autocast guard(dev.type, dtype_of<H>());
      out = conv2d(randn<float>({2, 3, 9, 9}, dev, 30), w, opt);
    }
    check_near<H>(test::to_double(out.value().to(kCPU)), test::to_double(want.to(kCPU)), 1, 0, "autocast conv2d");
    Var<float, 0> loss = sum(out);
    loss.backward();
    const Tensor<H, 4> ones_h = ones<H>({2, 4, 5, 5}, dev);
    const Tensor<H, 4> dw_want = cast<H>(conv2d_backward_weight(xf, cast<float>(ones_h), wf.shape(), opt));
    check_near<H>(test::to_double(w.grad().to(kCPU)), test::to_double(dw_want.to(kCPU)), 1, 0, "autocast dw");
  }
}

TEST_CASE("a bfloat16 model's parameters, gradients and activations take half a float model's bytes") {
  const Tensor<float, 2> x = randn<float>({64, 512}, kCPU, 40);
  auto footprint = [&]<class T>() {
    const auto before = stats::bytes_in_use(kCPU);
    nn::Linear<T> fc(512, 256);
    const Tensor<T, 2> xt = cast<T>(x);
    Var<T, 2> y = fc(xt);
    Var<T, 0> loss = sum(y);
    loss.backward();
    return stats::bytes_in_use(kCPU) - before;  // weights, bias, input, output, loss, gradients
  };
  const auto f32 = footprint.template operator()<float>();
  const auto bf16 = footprint.template operator()<bfloat16>();
  CHECK(f32 > 2 * 512 * 256 * 4);
  CHECK(bf16 * 2 == f32);
}

TEST_CASE_TEMPLATE("a two-byte CNN and embedding train like the float one: pooling, conv, linear, cross-entropy", H,
                   ft::half, bfloat16) {
  // the same parameters in H and in float (the H values), the same input
  auto [xh, xf] = rounded<H>(randn<float>({4, 2, 8, 8}, kCPU, 50));
  auto [wh, wf] = rounded<H>(Tensor<float, 4>(randn<float>({3, 2, 3, 3}, kCPU, 51) * 0.3f));
  auto [lh, lf] = rounded<H>(Tensor<float, 2>(randn<float>({5, 3 * 2 * 2}, kCPU, 52) * 0.3f));
  auto [eh, ef] = rounded<H>(randn<float>({10, 6}, kCPU, 53));
  const Tensor<std::int64_t, 1> labels = randint<std::int64_t>(0, 5, {4}, kCPU, 54);
  const Tensor<std::int64_t, 1> tokens = randint<std::int64_t>(0, 10, {12}, kCPU, 55);
  Var<H, 4> w(wh, requires_grad);
  Var<H, 2> l(lh, requires_grad), e(eh, requires_grad);
  Var<float, 4> w32(wf, requires_grad);
  Var<float, 2> l32(lf, requires_grad), e32(ef, requires_grad);
  auto loss_of = [&](const auto& x, auto& cw, auto& lw, auto& ew) {
    using T = typename std::decay_t<decltype(x)>::value_type;
    auto h = relu(conv2d(x, cw, {.padding = 1}));  // [4, 3, 8, 8]
    auto p = avg_pool2d(max_pool2d(h, 2), 2);      // [4, 3, 2, 2]
    auto q = adaptive_avg_pool2d(p, {2, 2});       // [4, 3, 2, 2]
    auto logits = matmul(q.reshape({4, 12}), lw.transpose(0, 1));
    Var<T, 0> loss = nn::functional::cross_entropy(logits, labels) + sum(nn::functional::embedding(tokens, ew)) * 0.01;
    return loss;
  };
  Var<H, 0> loss = loss_of(xh, w, l, e);
  Var<float, 0> loss32 = loss_of(xf, w32, l32, e32);
  loss.backward();
  loss32.backward();
  constexpr double eps = std::is_same_v<H, ft::half> ? 0x1p-10 : 0x1p-7;
  CHECK(static_cast<float>(loss.value().item()) == doctest::Approx(loss32.value().item()).epsilon(4 * eps));
  auto close = [&](const auto& got, const auto& want, const char* what) {
    CAPTURE(what);
    const auto g = test::to_double(got), f = test::to_double(want);
    double scale = 0;
    for (double v : f) scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(std::fabs(g[i] - f[i]) <= 8 * eps * scale);
  };
  close(w.grad(), w32.grad(), "conv weight");
  close(l.grad(), l32.grad(), "linear weight");
  close(e.grad(), e32.grad(), "embedding");
}
