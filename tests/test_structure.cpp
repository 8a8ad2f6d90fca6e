// Structure ops (ft/ops/structure.hpp): values and gradients against PyTorch 1.13
// (tests/golden/structure.txt, written by tests/golden/make_structure.py), fusion into the
// consuming statement, in-place safety, integer dtypes, empty tensors and errors.
#include <omp.h>

#include <array>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/nn/layers.hpp"
#include "ft/ops/structure.hpp"
#include "golden/golden.hpp"

namespace {

using ft::index_t;

const ft::test::Golden& golden() {
  static const ft::test::Golden g("structure.txt");
  return g;
}

template <class T, int R>
void check_close(const ft::Tensor<T, R>& got, const std::string& name, double tol = 1e-12) {
  const auto& rec = golden().record(name);
  REQUIRE(static_cast<int>(rec.shape.size()) == R);
  for (int d = 0; d < R; ++d) REQUIRE(got.shape()[d] == rec.shape[static_cast<std::size_t>(d)]);
  const auto v = got.to_vector();
  for (std::size_t i = 0; i < v.size(); ++i)
    REQUIRE(static_cast<double>(v[i]) == doctest::Approx(rec.values[i]).epsilon(tol));
}

// The forward of `f` on the case's input and the gradient of sum(out · r), both in double.
template <int RI, int RO, class Fn>
void golden_case(const std::string& name, ft::Device dev, Fn f) {
  CAPTURE(name);
  ft::Var<double, RI> x(golden().tensor<double, RI>(name + ".in0", dev), ft::requires_grad);
  ft::Var<double, RO> out = f(x);
  check_close(out.value(), name + ".out");
  ft::Var<double, 0> loss = ft::sum(out * golden().tensor<double, RO>(name + ".r", dev));
  loss.backward();
  check_close(x.grad(), name + ".grad0");
}

}  // namespace

// The GPU copy (nvcc) compiles a representative subset: every node kind and map type once,
// the other cases differ only in run-time parameters of the same device code.
#ifdef __CUDACC__
#define FT_CPU_ONLY(...)
#else
#define FT_CPU_ONLY(...) __VA_ARGS__
#endif

TEST_CASE("structure ops match PyTorch, values and gradients") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    golden_case<3, 3>("flip", dev, [](const auto& x) { return ft::flip(x, {0, 2}); });
    FT_CPU_ONLY(golden_case<2, 2>("roll", dev, [](const auto& x) { return ft::roll(x, {1, -2}, {0, 1}); }));
    golden_case<2, 2>("roll_flat", dev, [](const auto& x) { return ft::roll(x, 5); });
    golden_case<2, 3>("repeat", dev, [](const auto& x) { return ft::repeat(x, {2, 1, 3}); });
    FT_CPU_ONLY(golden_case<2, 2>("tile", dev, [](const auto& x) { return ft::tile(x, {2}); }));
    FT_CPU_ONLY(golden_case<3, 3>("pad_constant", dev, [](const auto& x) {
      return ft::pad(x, {1, 2, 0, 1}, "constant", 0.5);
    }));
    FT_CPU_ONLY(golden_case<3, 3>("pad_crop", dev, [](const auto& x) { return ft::pad(x, {-1, 1, 2, -1}); }));
    golden_case<4, 4>("pad_reflect", dev, [](const auto& x) { return ft::pad(x, {2, 1, 1, 3}, "reflect"); });
    golden_case<4, 4>("pad_replicate", dev, [](const auto& x) { return ft::pad(x, {2, 3, 1, 2}, "replicate"); });
    golden_case<4, 4>("pad_circular", dev, [](const auto& x) { return ft::pad(x, {1, 2, 3, 0}, "circular"); });
    golden_case<4, 4>("pixel_shuffle", dev, [](const auto& x) { return ft::pixel_shuffle(x, 2); });
    golden_case<4, 4>("pixel_unshuffle", dev, [](const auto& x) { return ft::pixel_unshuffle(x, 2); });
    golden_case<4, 4>("nearest", dev, [](const auto& x) { return ft::interpolate(x, {7, 4}); });
    FT_CPU_ONLY(golden_case<4, 4>("nearest_exact", dev, [](const auto& x) {
      return ft::interpolate(x, {5, 8}, "nearest-exact");
    }));
    FT_CPU_ONLY(golden_case<4, 4>("nearest_scale", dev, [](const auto& x) { return ft::interpolate(x, {2.0, 1.5}); }));
    golden_case<4, 4>("bilinear", dev, [](const auto& x) { return ft::interpolate(x, {7, 4}, "bilinear"); });
    golden_case<4, 4>("bilinear_align", dev, [](const auto& x) {
      return ft::interpolate(x, {4, 9}, "bilinear", true);
    });
    FT_CPU_ONLY(golden_case<4, 4>("bilinear_scale", dev, [](const auto& x) {
      return ft::interpolate(x, {1.75, 0.6}, "bilinear");
    }));
    FT_CPU_ONLY(golden_case<3, 3>("linear", dev, [](const auto& x) { return ft::interpolate(x, {8}, "linear"); }));
    FT_CPU_ONLY(golden_case<5, 5>("trilinear", dev, [](const auto& x) {
      return ft::interpolate(x, {3, 5, 2}, "trilinear");
    }));
    golden_case<4, 4>("bicubic", dev, [](const auto& x) { return ft::interpolate(x, {7, 4}, "bicubic"); });
    golden_case<4, 4>("bicubic_align", dev, [](const auto& x) { return ft::interpolate(x, {4, 9}, "bicubic", true); });
    FT_CPU_ONLY(golden_case<4, 4>("bicubic_scale", dev, [](const auto& x) {
      return ft::interpolate(x, {1.75, 0.6}, "bicubic");
    }));
    FT_CPU_ONLY(golden_case<4, 4>("bicubic_one", dev, [](const auto& x) {
      return ft::interpolate(x, {3, 2}, "bicubic", true);
    }));
    golden_case<4, 4>("aa_bilinear", dev, [](const auto& x) {
      return ft::interpolate(x, {4, 3}, "bilinear", false, true);
    });
    FT_CPU_ONLY(golden_case<4, 4>("aa_bilinear_up", dev, [](const auto& x) {
      return ft::interpolate(x, {7, 9}, "bilinear", false, true);
    }));
    FT_CPU_ONLY(golden_case<4, 4>("aa_bilinear_align", dev, [](const auto& x) {
      return ft::interpolate(x, {4, 3}, "bilinear", true, true);
    }));
    FT_CPU_ONLY(golden_case<4, 4>("aa_bilinear_big", dev, [](const auto& x) {
      return ft::interpolate(x, {5, 4}, "bilinear", false, true);
    }));
    golden_case<4, 4>("aa_bicubic", dev, [](const auto& x) {
      return ft::interpolate(x, {4, 3}, "bicubic", false, true);
    });
    FT_CPU_ONLY(golden_case<4, 4>("aa_bicubic_mixed", dev, [](const auto& x) {
      return ft::interpolate(x, {8, 3}, "bicubic", false, true);
    }));
    FT_CPU_ONLY(golden_case<4, 4>("aa_bicubic_scale", dev, [](const auto& x) {
      return ft::interpolate(x, {0.4, 0.7}, "bicubic", false, true);
    }));
    FT_CPU_ONLY(golden_case<4, 4>("aa_bicubic_align", dev, [](const auto& x) {
      return ft::interpolate(x, {4, 3}, "bicubic", true, true);
    }));
    golden_case<3, 3>("tril", dev, [](const auto& x) { return ft::tril(x, 1); });
    FT_CPU_ONLY(golden_case<3, 3>("triu", dev, [](const auto& x) { return ft::triu(x, -1); }));
    golden_case<3, 2>("diagonal", dev, [](const auto& x) { return ft::diagonal(x, 1, 0, 2); });
    golden_case<1, 2>("diag_vector", dev, [](const auto& x) { return ft::diag(x, -1); });
    FT_CPU_ONLY(golden_case<2, 1>("diag_matrix", dev, [](const auto& x) { return ft::diag(x, 2); }));
    FT_CPU_ONLY(golden_case<2, 0>("trace", dev, [](const auto& x) { return ft::trace(x); }));
    check_close(ft::eye<double>(3, 5, dev), "eye");
  }
}

TEST_CASE("cat and stack match PyTorch; Var parts are one tape node") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto in = [&](const std::string& n) {
      return ft::Var<double, 2>(golden().tensor<double, 2>(n, dev), ft::requires_grad);
    };
    {
      auto a = in("cat0.in0"), b = in("cat0.in1"), c = in("cat0.in2");
      ft::Var<double, 2> out = ft::cat({a, b, c}, 0);
      check_close(out.value(), "cat0.out");
      ft::Var<double, 0> loss = ft::sum(out * golden().tensor<double, 2>("cat0.r", dev));
      loss.backward();
      check_close(a.grad(), "cat0.grad0");
      check_close(b.grad(), "cat0.grad1");
      check_close(c.grad(), "cat0.grad2");
    }
    {
      auto a = in("cat_last.in0"), b = in("cat_last.in1");
      ft::Var<double, 2> out = ft::cat({a * 1.0, b * 1.0}, -1);  // expressions over Vars: recorded, then joined
      check_close(out.value(), "cat_last.out");
      ft::Var<double, 0> loss = ft::sum(out * golden().tensor<double, 2>("cat_last.r", dev));
      loss.backward();
      check_close(a.grad(), "cat_last.grad0");
      check_close(b.grad(), "cat_last.grad1");
    }
    {
      auto a = in("stack.in0"), b = in("stack.in1"), c = in("stack.in2");
      ft::Var<double, 3> out = ft::stack({a, b, c}, 1);
      check_close(out.value(), "stack.out");
      ft::Var<double, 0> loss = ft::sum(out * golden().tensor<double, 3>("stack.r", dev));
      loss.backward();
      check_close(a.grad(), "stack.grad0");
      check_close(c.grad(), "stack.grad2");
      // tensors: the same values as an expression
      check_close(ft::eval(ft::stack({a.value(), b.value(), c.value()}, 1)), "stack.out");
    }
  }
}

TEST_CASE("structure ops fuse into the statement that reads them") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::randn<float>({64, 32}, dev, 1), b = ft::randn<float>({64, 16}, dev, 2);
    auto w = ft::randn<float>({48}, dev, 3);
    ft::Tensor<float, 2> out({64, 48}, dev);
    CHECK(ft::test::launches_of(dev, [&] { out = ft::relu(ft::cat({a, b}, 1) * w); }) == 1);
    const auto va = a.to_vector(), vb = b.to_vector(), vw = w.to_vector(), vo = out.to_vector();
    for (index_t i = 0; i < 64; ++i)
      for (index_t j = 0; j < 48; ++j) {
        const float x = j < 32 ? va[i * 32 + j] : vb[i * 16 + j - 32];
        REQUIRE(vo[i * 48 + j] == std::max(0.0f, x * vw[j]));
      }
    // a chain of remappings, a reduction over one and a broadcast: still one launch each
    ft::Tensor<float, 2> chain({66, 36}, dev);
    CHECK(ft::test::launches_of(dev, [&] { chain = ft::pad(ft::flip(a, {1}), {2, 2, 1, 1}, "reflect") + 1.0f; }) == 1);
    CHECK(chain.slice(0, 1, 65).slice(1, 2, 34).to_vector() == ft::eval(ft::flip(a, {1}) + 1.0f).to_vector());
    // a Var statement through a remapping: the forward and each leaf's gradient one launch
    ft::Var<float, 2> x(a, ft::requires_grad);
    ft::Var<float, 3> y;
    CHECK(ft::test::launches_of(dev, [&] { y = ft::repeat(ft::tanh(x), {2, 1, 3}); }) == 1);
    ft::Var<float, 0> loss = ft::sum(y);
    CHECK(ft::test::launches_of(dev, [&] { loss.backward(); }) <= 3);
    const auto g = x.grad().to_vector();
    for (std::size_t i = 0; i < g.size(); ++i)
      REQUIRE(g[i] == doctest::Approx(6.0 * (1.0 - std::tanh(va[i]) * std::tanh(va[i]))).epsilon(1e-5));
  }
}

TEST_CASE("a statement that is only a resampling runs dim by dim on the CPU, and equals the fused form") {
  auto x = ft::randn<float>({2, 3, 37, 41}, ft::kCPU, 9);
  const auto xt = ft::randn<float>({2, 3, 41, 37}, ft::kCPU, 10).transpose(2, 3);  // a strided input
  for (const char* mode : {"bilinear", "bicubic"})
    for (bool aa : {false, true})
      for (auto size : {std::array<index_t, 2>{9, 11}, std::array<index_t, 2>{50, 13}}) {
        CAPTURE(mode);
        CAPTURE(aa);
        CAPTURE(size[0]);
        for (const auto& in : {x, xt}) {
          ft::Tensor<float, 4> separable, fused;
          const auto n = ft::test::launches_of(ft::kCPU, [&] {
            separable = ft::interpolate(in, {size[0], size[1]}, mode, false, aa);
          });
          CHECK(ft::test::launches_of(ft::kCPU, [&] {
                  fused = ft::interpolate(in, {size[0], size[1]}, mode, false, aa) * 1.0f;
                }) == 1);
          // dim by dim where the taps multiply to more work than they add (bicubic, antialiased)
          CHECK(n == (std::string(mode) == "bilinear" && !aa ? 1 : in.is_contiguous() ? 2 : 3));
          ft::test::check_close(separable, ft::test::to_double(fused), 1e-5, 1e-5);
          // the backward: the transposed passes (a statement that is only the resampling of a
          // Var) against the fused per-element adjoint
          const auto r = ft::randn<float>({2, 3, size[0], size[1]}, ft::kCPU, 11);
          ft::Var<float, 4> a(in, ft::requires_grad), b(in, ft::requires_grad);
          ft::Var<float, 4> ya = ft::interpolate(a, {size[0], size[1]}, mode, false, aa);
          ft::Var<float, 4> yb = ft::interpolate(b, {size[0], size[1]}, mode, false, aa) * 1.0f;
          ft::Var<float, 0> la = ft::sum(ya * r), lb = ft::sum(yb * r);
          la.backward();
          lb.backward();
          ft::test::check_close(a.grad(), ft::test::to_double(b.grad()), 1e-4, 1e-5);
        }
      }
}

TEST_CASE("a cat read by an elementwise statement: views, expressions, broadcasts and thread splits") {
  // On the CPU the kernel runs such a statement a part at a time (exec/cpu.hpp: each_cat_part);
  // the parts here straddle the threads' shares and one of them is empty.
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::randn<float>({7, 13, 401}, dev, 1);
    auto bt = ft::randn<float>({7, 401, 27}, dev, 2);  // read transposed: a strided view
    auto c = ft::randn<float>({7, 1, 401}, dev, 3);
    auto e = ft::zeros<float>({7, 0, 401}, dev);
    auto w = ft::randn<float>({41, 1}, dev, 4);
    ft::Tensor<float, 3> out({7, 41, 401}, dev);
    const auto b = bt.transpose(1, 2);
    CHECK(ft::test::launches_of(dev, [&] {
            out = ft::where(w > 0.f, ft::cat({a * 1.f, e * 1.f, b * 1.f, c * 2.f}, 1) + w, -1.f);
          }) == 1);
    const auto va = a.to_vector(), vb = ft::eval(b).to_vector(), vc = c.to_vector(), vw = w.to_vector();
    const auto vo = out.to_vector();
    auto joined = [&](index_t i, index_t j, index_t k) {
      return j < 13 ? va[(i * 13 + j) * 401 + k] : j < 40 ? vb[(i * 27 + j - 13) * 401 + k] : vc[i * 401 + k] * 2.f;
    };
    for (index_t i = 0; i < 7; ++i)
      for (index_t j = 0; j < 41; ++j)
        for (index_t k = 0; k < 401; ++k)
          REQUIRE(vo[(i * 41 + j) * 401 + k] == (vw[j] > 0.f ? joined(i, j, k) + vw[j] : -1.f));
    // tensor parts into a strided destination; along the last dimension; two cats in one statement
    ft::Tensor<float, 2> wide = ft::zeros<float>({401, 30}, dev);
    auto a2 = a.select(0, 2).transpose(0, 1);  // [401, 13]
    auto b2 = ft::randn<float>({401, 17}, dev, 5);
    ft::Tensor<float, 2> tall = wide.transpose(0, 1);  // [30, 401], a view of `wide`
    CHECK(ft::test::launches_of(dev, [&] { tall = ft::cat({a.select(0, 2), b2.transpose(0, 1)}, 0); }) == 1);
    const auto va2 = ft::eval(a2).to_vector(), vb2 = b2.to_vector();
    auto vwide = wide.to_vector();
    for (index_t i = 0; i < 401; ++i)
      for (index_t j = 0; j < 30; ++j) REQUIRE(vwide[i * 30 + j] == (j < 13 ? va2[i * 13 + j] : vb2[i * 17 + j - 13]));
    CHECK(ft::test::launches_of(dev, [&] { wide = ft::cat({a2, b2}, 1) * 2.f; }) == 1);  // the last dimension
    vwide = wide.to_vector();
    for (index_t i = 0; i < 401; ++i)
      for (index_t j = 0; j < 30; ++j)
        REQUIRE(vwide[i * 30 + j] == 2.f * (j < 13 ? va2[i * 13 + j] : vb2[i * 17 + j - 13]));
    CHECK(ft::test::launches_of(dev, [&] { wide = ft::cat({a2, b2}, 1) - ft::cat({b2, a2}, 1); }) == 1);
    vwide = wide.to_vector();
    for (index_t i = 0; i < 401; ++i)
      for (index_t j = 0; j < 30; ++j) {
        const float l = j < 13 ? va2[i * 13 + j] : vb2[i * 17 + j - 13];
        const float r = j < 17 ? vb2[i * 17 + j] : va2[i * 13 + j - 17];
        REQUIRE(vwide[i * 30 + j] == l - r);
      }
    // a cat of extent 1 broadcast along its own dimension
    ft::Tensor<float, 2> rows({5, 401}, dev);
    rows = ft::cat({c.select(0, 0)}, 0) + 0.f;
    const auto vrows = rows.to_vector();
    for (index_t i = 0; i < 5; ++i)
      for (index_t k = 0; k < 401; ++k) REQUIRE(vrows[i * 401 + k] == vc[k]);
  }
}

#ifndef __CUDACC__  // host logic, the same on every device: the CPU suite checks it
TEST_CASE("structure ops: views, integers, empty tensors, many parts, in place") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // a transposed (non-contiguous) input
    auto x = ft::arange<std::int64_t>(0, 12, 1, dev).reshape({3, 4});
    CHECK(ft::eval(ft::flip(x.transpose(0, 1), {0})).to_vector() ==
          std::vector<std::int64_t>{3, 7, 11, 2, 6, 10, 1, 5, 9, 0, 4, 8});
    CHECK(ft::eval(ft::tril(x)).to_vector() == std::vector<std::int64_t>{0, 0, 0, 0, 4, 5, 0, 0, 8, 9, 10, 0});
    CHECK(ft::eval(ft::roll(x, 1, 1)).to_vector() == std::vector<std::int64_t>{3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10});
    auto mask = ft::eval(x > 5);
    CHECK(ft::eval(ft::cat({mask, mask}, 0)).shape() == ft::Shape<2>{6, 4});
    // in place through a remapping reads the old values (a temporary)
    auto y = ft::eval(x * 1);
    y = ft::flip(y, {0, 1});
    CHECK(y.to_vector() == std::vector<std::int64_t>{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
    // empty parts and empty results
    auto e = ft::zeros<float>({0, 4}, dev);
    auto f = ft::ones<float>({2, 4}, dev);
    CHECK(ft::eval(ft::cat({e, f, e}, 0)).to_vector() == f.to_vector());
    CHECK(ft::eval(ft::flip(e, {0})).numel() == 0);
    CHECK(ft::eval(ft::repeat(f, {0, 3})).shape() == ft::Shape<2>{0, 12});
    // more parts than one kernel reads: joined through a temporary first
    std::vector<ft::Tensor<float, 1>> parts;
    std::vector<float> want;
    for (int p = 0; p < 11; ++p) {
      parts.push_back(ft::full<float>({p + 1}, static_cast<float>(p), dev));
      for (int k = 0; k <= p; ++k) want.push_back(static_cast<float>(p));
    }
    CHECK(ft::eval(ft::cat(parts) * 1.0f).to_vector() == want);
    // split, chunk, unbind are views; meshgrid expands
    auto s = ft::split(x, 3, 1);
    REQUIRE(s.size() == 2);
    CHECK(s[1].to_vector() == std::vector<std::int64_t>{3, 7, 11});
    CHECK(ft::split(x, std::vector<index_t>{1, 2}, 0)[1].to_vector() ==
          std::vector<std::int64_t>{4, 5, 6, 7, 8, 9, 10, 11});
    CHECK(ft::chunk(x, 3, 1).size() == 2);
    auto rows = ft::unbind(x, 0);
    REQUIRE(rows.size() == 3);
    CHECK(rows[2].to_vector() == std::vector<std::int64_t>{8, 9, 10, 11});
    auto [gi, gj] = ft::meshgrid(ft::arange<float>(0, 2, 1, dev), ft::arange<float>(0, 3, 1, dev));
    CHECK(gi.to_vector() == std::vector<float>{0, 0, 0, 1, 1, 1});
    CHECK(gj.to_vector() == std::vector<float>{0, 1, 2, 0, 1, 2});
    CHECK(ft::eval(ft::eye<std::int64_t>(2, std::nullopt, dev)).to_vector() == std::vector<std::int64_t>{1, 0, 0, 1});
  }
}

TEST_CASE("split and chunk of a Var hand each piece its gradient") {
  ft::Var<double, 2> x(ft::randn<double>({4, 6}, ft::kCPU, 9), ft::requires_grad);
  auto pieces = ft::chunk(x, 3, 1);
  REQUIRE(pieces.size() == 3);
  ft::Var<double, 0> loss = ft::sum(pieces[0] * 1.0) + ft::sum(pieces[2] * 3.0);
  loss.backward();
  const auto g = x.grad().to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) CHECK(g[i * 6 + j] == (j < 2 ? 1.0 : j < 4 ? 0.0 : 3.0));
}

TEST_CASE("the gradient of a many-to-one remapping is the same bits on any thread count") {
  ft::Var<float, 4> x(ft::randn<float>({2, 3, 17, 19}, ft::kCPU, 4), ft::requires_grad);
  auto grad_with = [&](int threads) {
    omp_set_num_threads(threads);
    x.zero_grad();
    ft::Var<float, 4> y = ft::pad(ft::repeat(x, {1, 1, 2, 3}), {5, 4, 3, 6}, "replicate");
    ft::Var<float, 0> loss = ft::sum(y * ft::randn<float>({2, 3, 43, 66}, ft::kCPU, 5));
    loss.backward();
    return x.grad().to_vector();
  };
  const int threads = omp_get_max_threads();
  const auto one = grad_with(1), many = grad_with(threads > 1 ? threads : 2);
  omp_set_num_threads(threads);
  CHECK(one == many);
}

TEST_CASE("structure ops reject bad input with the op's name") {
  auto a = ft::zeros<float>({2, 3});
  auto b = ft::zeros<float>({3, 2});
  CHECK_THROWS_WITH_AS(ft::cat({a, b}, 0), doctest::Contains("cat"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::cat(std::vector<ft::Tensor<float, 2>>{}, 0), doctest::Contains("non-empty"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::stack({a, b}), doctest::Contains("stack"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::pad(a, {3, 0}, "reflect"), doctest::Contains("reflect padding"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::pad(a, {1}, "constant"), doctest::Contains("pad"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::pad(a, {1, 1}, "wrap"), doctest::Contains("mode"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::repeat(a, {2, -1}), doctest::Contains("non-negative"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::pixel_shuffle(ft::zeros<float>({1, 3, 2, 2}), 2), doctest::Contains("pixel_shuffle"),
                       ft::Error);
  CHECK_THROWS_WITH_AS(ft::diagonal(a, 0, 1, -1), doctest::Contains("differ"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::flip(a, {0, -2}), doctest::Contains("more than once"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::split(a, std::vector<index_t>{1, 1}, 1), doctest::Contains("split"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::interpolate(ft::zeros<float>({1, 1, 2}), {3}, "bicubic"),
                       doctest::Contains("does not fit an input of rank 3"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::interpolate(ft::zeros<float>({1, 1, 2, 2}), {3, 3}, "area"),
                       doctest::Contains("interpolate"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::interpolate(ft::zeros<float>({1, 1, 2, 2}), {3, 3}, "nearest", true),
                       doctest::Contains("align_corners"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::interpolate(ft::zeros<float>({1, 1, 2, 2}), {3, 3}, "nearest", false, true),
                       doctest::Contains("antialias is only supported for the bilinear and bicubic"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::interpolate(ft::zeros<float>({1, 1, 2}), {3}, "linear", false, true),
                       doctest::Contains("[1, 1, 2]"), ft::Error);
}

TEST_CASE("nn.PixelShuffle, PixelUnshuffle and Upsample are the functional ops") {
  auto x = ft::randn<float>({2, 8, 3, 5}, ft::kCPU, 11);
  ft::nn::PixelShuffle shuffle(2);
  ft::nn::PixelUnshuffle unshuffle(2);
  CHECK(ft::eval(unshuffle.forward(shuffle.forward(x))).to_vector() == x.to_vector());
  ft::nn::Upsample twice(2.0), to_size(std::array<index_t, 2>{7, 4}, "nearest-exact");
  const ft::Tensor<float, 4> up = twice.forward(x);
  CHECK(up.shape() == ft::Shape<4>{2, 8, 6, 10});
  CHECK(up.to_vector() ==
        ft::eval(ft::repeat(x.unsqueeze(3).unsqueeze(5), {1, 1, 1, 2, 1, 2})).reshape({2, 8, 6, 10}).to_vector());
  CHECK(ft::eval(to_size.forward(x)).to_vector() == ft::eval(ft::interpolate(x, {7, 4}, "nearest-exact")).to_vector());
}
#endif  // __CUDACC__
