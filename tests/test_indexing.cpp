// Indexing ops (ft/ops/indexing.hpp): values and gradients against PyTorch 1.13
// (tests/golden/indexing.txt, written by tests/golden/make_indexing.py), integer and bool
// dtypes, empty and non-contiguous inputs, bad indices, determinism of the scatters with
// duplicate destinations, and launch counts (a gather fuses into its consumer).
#include <omp.h>

#include <array>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/ops/indexing.hpp"
#include "golden/golden.hpp"

namespace {

using ft::index_t;
using I64 = std::int64_t;
template <int R>
using Idx = ft::Tensor<I64, R>;
using V1 = ft::Var<double, 1>;
using V2 = ft::Var<double, 2>;
using V3 = ft::Var<double, 3>;

const ft::test::Golden& golden() {
  static const ft::test::Golden g("indexing.txt");
  return g;
}

// got against the golden record `name`: shape and values (doubles to 1e-12, integers exactly).
void check_values(const std::vector<index_t>& shape, const std::vector<double>& values, const std::string& name) {
  CAPTURE(name);
  const auto& rec = golden().record(name);
  REQUIRE(shape == rec.shape);
  ft::test::check_close(values, rec.values, 1e-12, 1e-12);
}
template <class T, int R>
void check_golden(const ft::Tensor<T, R>& got, const std::string& name) {
  check_values(std::vector<index_t>(got.shape().begin(), got.shape().end()), ft::test::to_double(got), name);
}

template <class T, int R>
ft::Tensor<T, R> in(const std::string& name, ft::Device dev) {
  return golden().tensor<T, R>(name, dev);
}

// out = f(inputs…) against <name>.out, then the gradients of sum(out · r) against <name>.grad<k>.
template <int RO, class F, class... Vs>
void grad_case(const std::string& name, F f, const Vs&... xs) {
  CAPTURE(name);
  ft::Var<double, RO> out = f(xs...);
  check_golden(out.value(), name + ".out");
  ft::Var<double, 0> loss = ft::sum(out * in<double, RO>(name + ".r", out.device()));
  loss.backward();
  int k = 0;
  ((check_golden(xs.grad(), name + ".grad" + std::to_string(k++))), ...);
}

template <int R>
ft::Var<double, R> leaf(const std::string& name, int k, ft::Device dev) {
  return {in<double, R>(name + ".in" + std::to_string(k), dev), ft::requires_grad};
}
template <int R>
Idx<R> idx(const std::string& name, int k, ft::Device dev) {
  return in<I64, R>(name + ".idx" + std::to_string(k), dev);
}

}  // namespace

TEST_CASE("gathers match PyTorch, values and gradients") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    grad_case<3>(
        "index_select", [&](const V3& x) { return ft::index_select(x, 1, idx<1>("index_select", 0, dev)); },
        leaf<3>("index_select", 0, dev));
    grad_case<2>(
        "index_select_neg", [&](const V2& x) { return ft::index_select(x, -1, idx<1>("index_select_neg", 0, dev)); },
        leaf<2>("index_select_neg", 0, dev));
    grad_case<2>(
        "gather", [&](const V2& x) { return ft::gather(x, 1, idx<2>("gather", 0, dev)); }, leaf<2>("gather", 0, dev));
    grad_case<2>(
        "gather_dim0", [&](const V2& x) { return ft::gather(x, -2, idx<2>("gather_dim0", 0, dev)); },
        leaf<2>("gather_dim0", 0, dev));
    for (std::string name : {"take_along_dim", "take_along_dim_bcast"})
      grad_case<2>(
          name, [&](const V2& x) { return ft::take_along_dim(x, idx<2>(name, 0, dev), 1); }, leaf<2>(name, 0, dev));
    grad_case<1>(
        "take_along_dim_flat",
        [&](const V2& x) { return ft::take_along_dim(x, idx<2>("take_along_dim_flat", 0, dev)); },
        leaf<2>("take_along_dim_flat", 0, dev));
    grad_case<3>(
        "index",
        [&](const V3& x) {
          return ft::index(x, std::array{idx<2>("index", 0, dev), idx<1>("index", 1, dev).unsqueeze(0)});
        },
        leaf<3>("index", 0, dev));
    grad_case<2>(
        "masked_fill",
        [&](const V2& x) { return ft::masked_fill(x, ft::cast<bool>(idx<1>("masked_fill", 0, dev)), 0.5); },
        leaf<2>("masked_fill", 0, dev));
    grad_case<2>(
        "index_mask", [&](const V3& x) { return ft::index(x, ft::eval(ft::cast<bool>(idx<2>("index_mask", 0, dev)))); },
        leaf<3>("index_mask", 0, dev));
    for (std::string name : {"masked_select", "masked_select_bcast"})
      grad_case<1>(
          name, [&](const V2& x) { return ft::masked_select(x, ft::cast<bool>(idx<2>(name, 0, dev))); },
          leaf<2>(name, 0, dev));
  }
}

TEST_CASE("scatters match PyTorch, values and gradients") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto two = [&](const std::string& name, auto f) {
      grad_case<2>(name, f, leaf<2>(name, 0, dev), leaf<2>(name, 1, dev));
    };
    two("scatter", [&](const V2& x, const V2& s) { return ft::scatter(x, 1, idx<2>("scatter", 0, dev), s); });
    grad_case<2>(
        "scatter_value", [&](const V2& x) { return ft::scatter(x, 1, idx<2>("scatter_value", 0, dev), 1.5); },
        leaf<2>("scatter_value", 0, dev));
    two("scatter_add",
        [&](const V2& x, const V2& s) { return ft::scatter_add(x, 1, idx<2>("scatter_add", 0, dev), s); });
    two("scatter_add_dim0",
        [&](const V2& x, const V2& s) { return ft::scatter_add(x, 0, idx<2>("scatter_add_dim0", 0, dev), s); });
    two("index_add",
        [&](const V2& x, const V2& s) { return ft::index_add(x, 0, idx<1>("index_add", 0, dev), s, 2.0); });
    two("index_add_dim1",
        [&](const V2& x, const V2& s) { return ft::index_add(x, -1, idx<1>("index_add_dim1", 0, dev), s); });
    const auto mask = [&](const std::string& name) { return ft::eval(ft::cast<bool>(idx<2>(name, 0, dev))); };
    const auto mask1 = ft::eval(ft::cast<bool>(idx<1>("index_put_mask", 0, dev)));
    two("index_put_mask", [&](const V2& x, const V2& v) { return ft::index_put(x, mask1, v); });
    grad_case<3>(
        "index_put_mask_acc_bcast",
        [&](const V3& x, const V1& v) { return ft::index_put(x, mask("index_put_mask_acc_bcast"), v, true); },
        leaf<3>("index_put_mask_acc_bcast", 0, dev), leaf<1>("index_put_mask_acc_bcast", 1, dev));
    // a mask whose shape differs from the dims it indexes
    CHECK_THROWS_WITH_AS(
        ft::index_put(leaf<2>("index_put_mask", 0, dev).value(), mask("index_mask"), ft::ones<double>({1}, dev)),
        doctest::Contains("the shape of the mask [3, 4] at index 0 does not match"), ft::Error);
    two("index_put_acc",
        [&](const V2& x, const V2& v) { return ft::index_put(x, idx<1>("index_put_acc", 0, dev), v, true); });
    grad_case<3>(
        "index_put_two",
        [&](const V3& x, const V1& v) {
          return ft::index_put(x, std::array{idx<1>("index_put_two", 0, dev), idx<1>("index_put_two", 1, dev)}, v);
        },
        leaf<3>("index_put_two", 0, dev), leaf<1>("index_put_two", 1, dev));
    for (std::string reduce : {"sum", "mean", "amax", "amin", "prod"})
      for (bool include_self : {true, false}) {
        const std::string name = "scatter_reduce_" + reduce + (include_self ? "_self" : "_noself");
        two(name, [&](const V2& x, const V2& s) {
          return ft::scatter_reduce(x, 1, idx<2>(name, 0, dev), s, reduce, include_self);
        });
      }
  }
}

TEST_CASE("integer and bool dtypes") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_golden(Idx<3>(ft::one_hot(idx<2>("one_hot", 0, dev), 5)), "one_hot.out");
    const auto classes = idx<2>("one_hot_infer", 0, dev);  // loading a golden input to a GPU is a host copy
    ft::stats::reset();
    const Idx<3> hot = ft::one_hot(classes);
    CHECK(ft::stats::host_syncs(dev) == 1);  // the max, for num_classes = −1
    check_golden(hot, "one_hot_infer.out");
    const auto nz_in = idx<2>("nonzero", 0, dev);
    ft::stats::reset();
    const Idx<2> nz = ft::nonzero(nz_in);
    CHECK(ft::stats::host_syncs(dev) == 1);
    check_golden(nz, "nonzero.out");
    const auto w = ft::where(ft::cast<bool>(idx<2>("nonzero", 0, dev)));
    CHECK(w[0].to_vector() == nz.select(1, 0).to_vector());
    CHECK(w[1].to_vector() == nz.select(1, 1).to_vector());
    check_golden(Idx<2>(ft::gather(idx<2>("gather_int", 0, dev), 1, idx<2>("gather_int", 1, dev))), "gather_int.out");
    const std::string sa = "scatter_add_int";
    check_golden(ft::scatter_add(idx<2>(sa, 0, dev), 1, idx<2>(sa, 1, dev), idx<2>(sa, 2, dev)), sa + ".out");
    for (std::string name : {"scatter_mean_int", "scatter_mean_int_neg"})
      check_golden(ft::scatter_reduce(idx<2>(name, 0, dev), 1, idx<2>(name, 1, dev), idx<2>(name, 2, dev), "mean",
                                      name == "scatter_mean_int"),
                   name + ".out");
    // bool: gathers, masked_fill and scatter of a bool tensor
    const ft::Tensor<bool, 2> b = ft::from_vector<bool>({true, false, false, true, true, false}, {2, 3}, dev);
    CHECK(ft::Tensor<bool, 2>(ft::index_select(b, 1, ft::from_vector<I64>({2, 0}, {2}, dev))).to_vector() ==
          std::vector<bool>{false, true, false, true});
    CHECK(ft::Tensor<bool, 2>(ft::masked_fill(b, ft::from_vector<bool>({true, false, false}, {3}, dev), true))
              .to_vector() == std::vector<bool>{true, false, false, true, true, false});
    CHECK(ft::scatter(b, 1, ft::from_vector<I64>({1, 0}, {2, 1}, dev), true).to_vector() ==
          std::vector<bool>{true, true, false, true, true, false});
    CHECK(Idx<1>(ft::masked_select(ft::arange<I64>(6, dev).reshape({2, 3}), b)).to_vector() ==
          std::vector<I64>{0, 3, 4});
  }
}

TEST_CASE("a gather fuses into the statement that reads it: one launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto x = ft::test::random_tensor<float>({4, 6}, dev, 1);
    const auto w = ft::test::random_tensor<float>({4, 3}, dev, 2);
    const Idx<2> i = ft::from_vector<I64>({0, 5, 5, 1, 2, 3, 4, 4, 4, 0, 1, 2}, {4, 3}, dev);
    const Idx<1> rows = ft::from_vector<I64>({3, 0, 3}, {3}, dev);
    ft::Tensor<float, 2> y;
    CHECK(ft::test::launches_of(dev, [&] { y = ft::relu(ft::gather(x, 1, i) * w); }) == 1);
    CHECK(y.to_vector()[1] == std::max(0.f, x.to_vector()[5] * w.to_vector()[1]));
    ft::Tensor<float, 2> r;
    CHECK(ft::test::launches_of(dev, [&] { r = ft::index_select(x * 2.f, 0, rows) + 1.f; }) == 1);
    CHECK(r.to_vector()[0] == x.to_vector()[18] * 2.f + 1.f);
    CHECK(ft::test::launches_of(dev, [&] { y = ft::take_along_dim(ft::exp(x), i, -1) - w; }) == 1);
    const auto m = ft::from_vector<bool>({true, false, true, false, false, true}, {6}, dev);
    ft::Tensor<float, 2> z;
    CHECK(ft::test::launches_of(dev, [&] { z = ft::masked_fill(x, m, 0.f) * 2.f; }) == 1);
    CHECK(z.to_vector()[0] == 0.f);
    Idx<3> oh;
    CHECK(ft::test::launches_of(dev, [&] { oh = ft::one_hot(i, 6); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { r = ft::index(x, rows) * 3.f; }) == 1);
    CHECK(r.to_vector()[7] == x.to_vector()[1] * 3.f);
    // the scatters: one launch on the CPU; on a GPU keys, positions, sort, offsets and the result
    ft::Tensor<float, 2> s;
    CHECK(ft::test::launches_of(dev, [&] { s = ft::scatter_add(x, 1, i, w * 2.f); }) == (dev.is_cpu() ? 1 : 5));
    CHECK(ft::stats::host_syncs(dev) == 0);
    // with a Var: the forward is one launch, and neither pass waits for the host
    ft::Var<float, 2> xv(x, ft::requires_grad), wv(w, ft::requires_grad);
    {  // the first float backward on a device keeps a 1 there for every later seed (one host copy)
      ft::Var<float, 0> warm = ft::sum(xv);
      warm.backward();
      xv.zero_grad();
    }
    ft::stats::reset();
    ft::Var<float, 2> h = ft::relu(ft::gather(xv, 1, i) * wv);
    CHECK(ft::stats::launches(dev) == 1);
    ft::Var<float, 2> sa = ft::scatter_add(xv, 1, i, h);
    ft::Var<float, 0> loss = ft::sum(sa * sa);
    loss.backward();
    CHECK(ft::stats::host_syncs(dev) == 0);
    CHECK(xv.grad().numel() == 24);
  }
}

TEST_CASE("non-contiguous inputs and indices") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto base = ft::test::random_tensor<double>({4, 5}, dev, 3);
    const auto xt = base.transpose(0, 1);  // [5, 4], strides (1, 5)
    const Idx<2> ifull = ft::from_vector<I64>({0, 3, 1, 2, 2, 1, 1, 0, 3, 3, 2, 2, 0, 0, 1}, {3, 5}, dev);
    const Idx<2> it = ifull.transpose(0, 1);  // [5, 3]
    const auto src = ft::test::random_tensor<double>({3, 5}, dev, 4).transpose(0, 1);
    using T2 = ft::Tensor<double, 2>;
    CHECK(T2(ft::gather(xt, 1, it)).to_vector() == T2(ft::gather(xt.clone(), 1, it.clone())).to_vector());
    // the plain statement's CPU loop of its own (the last dim, a contiguous index and result):
    // x's rows at unit and other strides, a permuted rank-3 x — against the fused kernel (`* 1.0`)
    CHECK(T2(ft::gather(xt, 1, it.clone())).to_vector() == T2(ft::gather(xt, 1, it.clone()) * 1.0).to_vector());
    const auto x3 = ft::test::random_tensor<double>({3, 4, 5}, dev, 5).permute({2, 0, 1});  // [5, 3, 4]
    const Idx<3> i3 = ft::test::random_tensor<I64>({5, 3, 6}, dev, 6, 0, 4);
    using T3 = ft::Tensor<double, 3>;
    const std::vector<double> fused = T3(ft::gather(x3, -1, i3) * 1.0).to_vector();
    CHECK(T3(ft::gather(x3, -1, i3)).to_vector() == fused);
    CHECK(T3(ft::gather(x3.contiguous(), 2, i3)).to_vector() == fused);
    using F3 = ft::Tensor<float, 3>;
    CHECK(F3(ft::gather(x3, 2, i3)).to_vector() == F3(ft::gather(x3, 2, i3) * 1.0).to_vector());  // stored as float
    CHECK(ft::scatter_add(xt, 1, it, src).to_vector() ==
          ft::scatter_add(xt.clone(), 1, it.clone(), src.clone()).to_vector());
    CHECK(ft::scatter_reduce(xt, 1, it, src, "amax", false).to_vector() ==
          ft::scatter_reduce(xt.clone(), 1, it.clone(), src.clone(), "amax", false).to_vector());
    const Idx<1> every_other = ft::from_vector<I64>({3, 9, 0, 9, 3, 9}, {6}, dev).slice(0, 0, 6, 2);  // {3, 0, 3}
    CHECK(T2(ft::index_select(xt, 1, every_other)).to_vector() ==
          T2(ft::index_select(xt, 1, every_other.clone())).to_vector());
    CHECK(ft::index_add(xt, 0, every_other, xt.slice(0, 1, 4)).to_vector() ==
          ft::index_add(xt.clone(), 0, every_other.clone(), xt.slice(0, 1, 4).clone()).to_vector());
    CHECK(ft::index_put(xt, every_other, src.slice(1, 0, 1).slice(0, 0, 3), true).to_vector() ==
          ft::index_put(xt.clone(), every_other.clone(), src.slice(1, 0, 1).slice(0, 0, 3).clone(), true).to_vector());
  }
}

TEST_CASE("empty tensors") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto x = ft::test::random_tensor<double>({3, 4}, dev, 5);
    const Idx<1> none(ft::Shape<1>{0}, dev);
    V2 xv(x, ft::requires_grad);
    V2 y = ft::index_select(xv, 1, none);
    CHECK(y.shape() == ft::Shape<2>{3, 0});
    ft::Var<double, 0> loss = ft::sum(y);
    loss.backward();
    CHECK(xv.grad().to_vector() == std::vector<double>(12, 0.0));
    const Idx<2> none2(ft::Shape<2>{3, 0}, dev);
    CHECK(ft::Tensor<double, 2>(ft::gather(x, 1, none2)).numel() == 0);
    CHECK(ft::scatter_add(x, 1, none2, ft::Tensor<double, 2>(ft::Shape<2>{3, 0}, dev)).to_vector() == x.to_vector());
    CHECK(ft::index_put(x, none, ft::Tensor<double, 1>(ft::Shape<1>{4}, dev)).to_vector() == x.to_vector());
    CHECK(ft::nonzero(ft::zeros<double>({2, 3}, dev)).shape() == ft::Shape<2>{0, 2});
    CHECK(ft::Tensor<double, 1>(ft::masked_select(x, x > 100.0)).numel() == 0);
    const auto e = ft::Tensor<double, 2>(ft::Shape<2>{0, 4}, dev);
    CHECK(ft::Tensor<double, 2>(ft::index_select(e, 0, none)).shape() == ft::Shape<2>{0, 4});
    CHECK(ft::one_hot(Idx<1>(ft::Shape<1>{0}, dev), 3).shape() == ft::Shape<2>{0, 3});
  }
}

TEST_CASE("duplicate destinations: scatter and index_put keep the last source, prod multiplies") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto x = ft::full<double>({1, 3}, 2.0, dev);
    const Idx<2> i = ft::from_vector<I64>({1, 1, 1}, {1, 3}, dev);
    const auto s = ft::from_vector<double>({1, 2, 3}, {1, 3}, dev);
    CHECK(ft::scatter(x, 1, i, s).to_vector() == std::vector<double>{2, 3, 2});
    CHECK(ft::index_put(x.flatten(), i.flatten(), s.flatten()).to_vector() == std::vector<double>{2, 3, 2});
    const Idx<2> j = ft::from_vector<I64>({0, 0, 1}, {1, 3}, dev);
    const auto p = ft::from_vector<double>({3, 4, 5}, {1, 3}, dev);
    CHECK(ft::scatter_reduce(x, 1, j, p, "prod").to_vector() == std::vector<double>{24, 10, 2});
    CHECK(ft::scatter_reduce(x, 1, j, p, "prod", false).to_vector() == std::vector<double>{12, 5, 2});
  }
}

TEST_CASE("bad indices and shapes are ft::Errors naming the op") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    const auto x = ft::test::random_tensor<double>({3, 4}, dev, 6);
    const Idx<2> bad = ft::from_vector<I64>({0, 4, 1, 2, 0, 0}, {3, 2}, dev);
    const Idx<1> neg = ft::from_vector<I64>({0, -1}, {2}, dev);
    using T2 = ft::Tensor<double, 2>;
    if (dev.is_cpu()) {  // thrown as the statement ends (gathers: the kernel checks), naming the value
      auto message = [](auto&& statement) {
        try {
          statement();
        } catch (const ft::Error& e) {
          return std::string(e.what());
        }
        return std::string("no error");
      };
      const std::string g = message([&] { T2 y = ft::gather(x, 1, bad); });
      CHECK(g.find("gather: an index is out of bounds for dimension 1 with size 4 (index [3, 2], input [3, 4])") !=
            std::string::npos);
      CHECK(g.find("the value read: 4") != std::string::npos);
      const std::string s = message([&] { T2 y = ft::index_select(x, 1, neg); });
      CHECK(s.find("index_select: an index is out of bounds") != std::string::npos);
      CHECK(s.find("the value read: -1") != std::string::npos);
      CHECK(message([&] { T2 y = ft::take_along_dim(x, bad, 1) * 2.0; }).find("take_along_dim") != std::string::npos);
      const std::string i = message([&] { T2 y = ft::index(x, ft::from_vector<I64>({1, -4}, {2}, dev)); });
      CHECK(i.find("index: an index is out of bounds for dimension 0 with size 3") != std::string::npos);
      CHECK(i.find("the value read: -4") != std::string::npos);
      // inside a reduction, and the report is consumed: the next statement runs
      CHECK(message([&] { ft::Tensor<double, 0> t = ft::sum(ft::gather(x, 1, bad)); }).find("gather") !=
            std::string::npos);
      CHECK(message([&] { T2 y = ft::gather(x, 1, ft::zeros<I64>({3, 2}, dev)); }) == "no error");
      CHECK_THROWS_WITH_AS(ft::scatter_add(x, 1, bad, x), doctest::Contains("scatter_add: index 4"), ft::Error);
      CHECK_THROWS_WITH_AS(ft::scatter(x, 1, bad, 1.0), doctest::Contains("scatter"), ft::Error);
      CHECK_THROWS_WITH_AS(ft::index_add(x, 0, ft::from_vector<I64>({3}, {1}, dev), x.slice(0, 0, 1)),
                           doctest::Contains("index_add: index 3"), ft::Error);
      CHECK_THROWS_WITH_AS(ft::index_put(x, ft::from_vector<I64>({-4}, {1}, dev), x.slice(0, 0, 1)),
                           doctest::Contains("index_put: index -4"), ft::Error);
      CHECK_THROWS_WITH_AS(ft::one_hot(ft::from_vector<I64>({0, 5}, {2}, dev), 5), doctest::Contains("one_hot"),
                           ft::Error);
    } else {  // reported by the kernel, thrown at the next synchronisation
      T2 y = ft::gather(x, 1, bad);
      CHECK_THROWS_WITH_AS(y.to_vector(), doctest::Contains("gather"), ft::Error);
      T2 z = ft::scatter_add(x, 1, bad, x);
      CHECK_THROWS_WITH_AS(z.to_vector(), doctest::Contains("scatter_add"), ft::Error);
      CHECK(y.to_vector().size() == 6);  // the report was consumed
    }
    const Idx<2> big = ft::zeros<I64>({4, 2}, dev);
    CHECK_THROWS_WITH_AS(ft::gather(x, 1, big), doctest::Contains("gather"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::scatter_add(x, 1, big, x), doctest::Contains("scatter_add"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::scatter(x, 1, ft::zeros<I64>({3, 5}, dev), x), doctest::Contains("scatter"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::index_add(x, 0, neg, x), doctest::Contains("index_add"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::index_put(x, neg, ft::zeros<double>({3}, dev)), doctest::Contains("index_put"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::scatter_reduce(x, 1, big, x, "median"), doctest::Contains("scatter_reduce"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::masked_fill(x, ft::zeros<bool>({2, 4}, dev), 1.0), doctest::Contains("where"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::one_hot(Idx<1>(ft::Shape<1>{0}, dev)), doctest::Contains("one_hot"), ft::Error);
  }
}

TEST_CASE("scatter_add, index_add and a gather's gradient are deterministic with duplicates") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    // 64 Ki destinations (the CPU loop is parallel), 128 Ki sources, each destination hit ~2 times
    const auto x = ft::test::random_tensor<float>({64, 1024}, dev, 7);
    const auto src = ft::test::random_tensor<float>({64, 2048}, dev, 8);
    const auto i = ft::test::random_tensor<I64>({64, 2048}, dev, 9, 0, 1024);
    const Idx<1> rows = ft::test::random_tensor<I64>({200}, dev, 10, 0, 64);
    const auto rsrc = ft::test::random_tensor<float>({200, 1024}, dev, 11);
    auto run = [&] {
      ft::Var<float, 2> xv(x, ft::requires_grad);
      ft::Var<float, 2> g = ft::gather(xv, 1, i) * src;
      ft::Var<float, 0> loss = ft::sum(g);
      loss.backward();
      return std::array{ft::scatter_add(x, 1, i, src).to_vector(), ft::index_add(x, 0, rows, rsrc).to_vector(),
                        xv.grad().to_vector()};
    };
    const auto first = run();
    CHECK(run() == first);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = run();
    omp_set_num_threads(2);
    const auto two = run();
    omp_set_num_threads(threads);
    CHECK(one == first);
    CHECK(two == first);
    // the order is the sources' row-major order: a plain sequential loop gives the same bits
    std::vector<float> want = x.to_vector();
    const auto sv = src.to_vector();
    const auto iv = i.to_vector();
    for (index_t r = 0; r < 64; ++r)
      for (index_t c = 0; c < 2048; ++c) want[r * 1024 + iv[r * 2048 + c]] += sv[r * 2048 + c];
    CHECK(first[0] == want);
  }
}

TEST_CASE("a gather assigned over its own input reads the old values") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}, dev);
    x = ft::index_select(x, 0, ft::from_vector<I64>({2, 0, 1}, {3}, dev));
    CHECK(x.to_vector() == std::vector<double>{7, 8, 9, 1, 2, 3, 4, 5, 6});
    x = ft::gather(x, 1, ft::from_vector<I64>({2, 1, 0, 0, 0, 0, 1, 2, 2}, {3, 3}, dev)) * 2.0;
    CHECK(x.to_vector() == std::vector<double>{18, 16, 14, 2, 2, 2, 10, 12, 12});
  }
}
