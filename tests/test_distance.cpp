// Norms, distances and einsum (ft/linalg/distance.hpp, einsum.hpp, ft::norm's general p): values and gradients
// against PyTorch's (golden/distance.txt, written by golden/make_distance.py) on every device,
// their launch counts, and bad input.

#include <cmath>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "common.hpp"
#include "ft/linalg/distance.hpp"
#include "ft/linalg/einsum.hpp"
#include "golden/golden.hpp"

using ft::test::check_close;

namespace {

const ft::test::Golden& golden() {
  static const ft::test::Golden g("distance.txt");
  return g;
}

template <int R>
ft::Var<float, R> leaf(const std::string& name, ft::Device dev) {
  return ft::Var<float, R>(golden().tensor<float, R>(name, dev), ft::requires_grad);
}

// fn(inputs...) against torch's `<name>.out`, and each input's gradient of sum(out · r).
template <class Fn, class... X>
void check_case(const std::string& name, ft::Device dev, Fn fn, const X&... xs) {
  INFO(name);
  auto out = fn(xs...);
  using O = decltype(out);
  static_assert(std::is_same_v<O, ft::Var<float, O::rank>>, "a distance of Vars is a Var");
  CHECK(out.device() == dev);
  check_close(out.value(), golden().values(name + ".out"), 1e-4, 1e-5);
  ft::Var<float, 0> loss = ft::sum(out * golden().tensor<float, O::rank>(name + ".r", dev));
  loss.backward();
  int i = 0;
  ((check_close(xs.grad(), golden().values(name + ".grad" + std::to_string(i++)), 1e-4, 1e-5)), ...);
}

// f throws an ft::Error whose message holds each of `parts`.
template <class F>
void check_throws_with(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
    FAIL("no ft::Error thrown");
  } catch (const ft::Error& e) {
    const std::string what = e.what();
    for (const char* p : parts) CHECK_MESSAGE(what.find(p) != std::string::npos, what, " lacks ", p);
  }
}

}  // namespace

// The nvcc copy (ft_nn_tests_cuda) keeps cdist (the general-p norm kernels and the GEMM form),
// the fused forms and the errors: the golden cases of the lazy compositions and einsum, whose GPU
// code is that of the elementwise, reduction and matmul suites, run in the CPU suite only (each
// Var statement is another nvcc kernel: about two minutes of CI's compile time).
#ifndef __CUDACC__
TEST_CASE("ft::norm with any p (0, 1, 2, 3, inf) and its gradient match torch.linalg.vector_norm") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (const char* p : {"0", "1", "2", "3", "inf"}) {
      const double pv = std::string(p) == "inf" ? INFINITY : std::stod(p);
      auto x = leaf<2>("x", dev);
      check_case(
          std::string("norm_p") + p, dev, [&](const auto& a) { return ft::Var<float, 1>(ft::norm(a, pv, 1)); }, x);
    }
  }
}

TEST_CASE("normalize, pairwise_distance, cosine_similarity and outer match torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto fresh = [&](const char* n) { return leaf<2>(n, dev); };
    check_case(
        "normalize", dev, [](const auto& a) { return ft::Var<float, 2>(ft::normalize(a)); }, fresh("x"));
    check_case(
        "normalize_p1_d0", dev, [](const auto& a) { return ft::Var<float, 2>(ft::normalize(a, 1.0, 0)); }, fresh("x"));
    check_case(
        "normalize_p3", dev, [](const auto& a) { return ft::Var<float, 2>(ft::normalize(a, 3.0)); }, fresh("x"));
    check_case(
        "pairwise", dev, [](const auto& a, const auto& b) { return ft::Var<float, 1>(ft::pairwise_distance(a, b)); },
        fresh("x"), fresh("y"));
    check_case(
        "pairwise_p1", dev,
        [](const auto& a, const auto& b) { return ft::Var<float, 1>(ft::pairwise_distance(a, b, 1.0, 1e-3)); },
        fresh("x"), fresh("y"));
    // torch's inputs were x + 0.5 and y
    auto shifted = [&] { return ft::Var<float, 2>(golden().tensor<float, 2>("x", dev) + 0.5f, ft::requires_grad); };
    check_case(
        "cosine", dev, [](const auto& a, const auto& b) { return ft::Var<float, 1>(ft::cosine_similarity(a, b)); },
        shifted(), fresh("y"));
    check_case(
        "cosine_d0", dev,
        [](const auto& a, const auto& b) { return ft::Var<float, 1>(ft::nn::functional::cosine_similarity(a, b, 0)); },
        shifted(), fresh("y"));
    check_case(
        "outer", dev, [](const auto& a, const auto& b) { return ft::Var<float, 2>(ft::outer(a, b)); },
        leaf<1>("u", dev), leaf<1>("v", dev));
  }
}

#endif  // __CUDACC__

TEST_CASE("cdist matches torch: p = 0, 1, 2, 3, inf, the GEMM form, a batch, a zero distance") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (const char* p : {"0", "1", "2", "3", "inf"}) {
      const double pv = std::string(p) == "inf" ? INFINITY : std::stod(p);
      check_case(
          std::string("cdist_p") + p, dev, [&](const auto& a, const auto& b) { return ft::cdist(a, b, pv); },
          leaf<2>("a", dev), leaf<2>("b", dev));
    }
    check_case(
        "cdist_mm", dev, [](const auto& a, const auto& b) { return ft::cdist(a, b); }, leaf<2>("big_a", dev),
        leaf<2>("big_b", dev));
    check_case(
        "cdist_batch", dev, [](const auto& a, const auto& b) { return ft::cdist(a, b); }, leaf<3>("ba", dev),
        leaf<3>("bb", dev));
    check_case(
        "cdist_batch_mm", dev,
        [](const auto& a, const auto& b) { return ft::cdist(a, b, 2.0, "use_mm_for_euclid_dist"); }, leaf<3>("ba", dev),
        leaf<3>("bb", dev));
    // the direct form agrees with the GEMM form
    auto a = golden().tensor<float, 2>("big_a", dev), b = golden().tensor<float, 2>("big_b", dev);
    ft::Tensor<float, 2> direct = ft::cdist(a, b, 2.0, ft::CdistMode::NoMm);
    check_close(direct, golden().values("cdist_mm.out"), 1e-4, 1e-5);
  }
}

#ifndef __CUDACC__
TEST_CASE("einsum matches torch: bmm, transposed and implicit outputs, dot, outer, attention, summed labels") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto in = [&]<int R>(const char* name, int i) {
      return leaf<R>(std::string("einsum_") + name + ".in" + std::to_string(i), dev);
    };
#define FT_EINSUM2(name, eq, RA, RB)                                                          \
  check_case(                                                                                 \
      "einsum_" name, dev, [](const auto& a, const auto& b) { return ft::einsum<eq>(a, b); }, \
      in.template operator()<RA>(name, 0), in.template operator()<RB>(name, 1))
#define FT_EINSUM3(name, eq, RA, RB, RC)                                                                        \
  check_case(                                                                                                   \
      "einsum_" name, dev, [](const auto& a, const auto& b, const auto& c) { return ft::einsum<eq>(a, b, c); }, \
      in.template operator()<RA>(name, 0), in.template operator()<RB>(name, 1), in.template operator()<RC>(name, 2))
#define FT_EINSUM1(name, eq, RA) \
  check_case(                    \
      "einsum_" name, dev, [](const auto& a) { return ft::einsum<eq>(a); }, in.template operator()<RA>(name, 0))
    FT_EINSUM2("bmm", "bij,bjk->bik", 3, 3);
    FT_EINSUM2("mm_t", "ij,jk->ki", 2, 2);
    FT_EINSUM2("dot", "i,i->", 1, 1);
    FT_EINSUM2("outer", "i,j->ij", 1, 1);
    FT_EINSUM2("attn", "bhqd,bhkd->bhqk", 4, 4);
    FT_EINSUM2("mv", "ij,j->i", 2, 1);
    FT_EINSUM2("contract2", "ijk,ik->j", 3, 2);
    FT_EINSUM2("sum_first", "ij,jk->k", 2, 2);
    FT_EINSUM2("implicit", "ij,kj", 2, 2);
    FT_EINSUM2("batch_free", "bi,bj->bij", 2, 2);
    FT_EINSUM1("transpose", "ij->ji", 2);
    FT_EINSUM1("total", "ij->", 2);
    FT_EINSUM1("sum_perm", "ijk->ki", 3);
    FT_EINSUM2("ell_bmm", "...ij,...jk->...ik", 4, 4);
    FT_EINSUM2("ell_rank", "...ij,jk->...ik", 3, 2);
    FT_EINSUM2("ell_implicit", "b...i,b...j", 3, 3);
    FT_EINSUM2("ell_sum", "...i,...i->", 2, 2);
    FT_EINSUM1("ell_one", "i...->...i", 3);
    FT_EINSUM1("diag", "ii->i", 2);
    FT_EINSUM1("trace", "ii", 2);
    FT_EINSUM2("diag_batch", "bii,bj->bij", 3, 2);
    FT_EINSUM1("diag_mid", "iji->j", 3);
    FT_EINSUM2("diag_contract", "ii,ij->j", 2, 2);
    FT_EINSUM2("bcast", "ij,ij->ij", 2, 2);
    FT_EINSUM2("bcast_con", "ij,jk->ik", 2, 2);
    FT_EINSUM2("bcast_ell", "...ij,...jk->...ik", 4, 4);
    FT_EINSUM3("chain3", "ij,jk,kl->il", 2, 2, 2);
    FT_EINSUM3("dot3", "i,i,i->", 1, 1, 1);
    FT_EINSUM3("ell3", "...ij,...jk,...k->...i", 3, 3, 2);
    FT_EINSUM3("diag3", "ii,ij,j", 2, 2, 1);
    check_case(
        "einsum_four", dev,
        [](const auto& a, const auto& b, const auto& c, const auto& d) {
          return ft::einsum<"bi,bj,bk,b->bijk">(a, b, c, d);
        },
        in.template operator()<2>("four", 0), in.template operator()<2>("four", 1),
        in.template operator()<2>("four", 2), in.template operator()<1>("four", 3));
#undef FT_EINSUM1
#undef FT_EINSUM3
#undef FT_EINSUM2
    // tensors in give a tensor; the contraction is one GEMM (the operands are views)
    auto a = golden().tensor<float, 3>("einsum_bmm.in0", dev), b = golden().tensor<float, 3>("einsum_bmm.in1", dev);
    ft::Tensor<float, 3> c;
    CHECK(ft::test::launches_of(dev, [&] { c = ft::einsum<"bij,bjk->bik">(a, b); }) == 1);
    check_close(c, golden().values("einsum_bmm.out"), 1e-4, 1e-5);
    // three operands: two GEMMs; a diagonal: one small launch before its GEMM
    auto x = golden().tensor<float, 2>("einsum_chain3.in0", dev),
         y = golden().tensor<float, 2>("einsum_chain3.in1", dev),
         z = golden().tensor<float, 2>("einsum_chain3.in2", dev);
    ft::Tensor<float, 2> chain;
    CHECK(ft::test::launches_of(dev, [&] { chain = ft::einsum<"ij,jk,kl->il">(x, y, z); }) == 2);
    check_close(chain, golden().values("einsum_chain3.out"), 1e-4, 1e-5);
    auto sq = golden().tensor<float, 2>("einsum_diag_contract.in0", dev),
         w = golden().tensor<float, 2>("einsum_diag_contract.in1", dev);
    ft::Tensor<float, 1> dc;
    CHECK(ft::test::launches_of(dev, [&] { dc = ft::einsum<"ii,ij->j">(sq, w); }) == 2);
    check_close(dc, golden().values("einsum_diag_contract.out"), 1e-4, 1e-5);
  }
}

#endif  // __CUDACC__

TEST_CASE("the lazy distances fuse: outer into its consumer, normalize as its norm plus one pass") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto u = golden().tensor<float, 1>("u", dev), v = golden().tensor<float, 1>("v", dev);
    auto x = golden().tensor<float, 2>("x", dev), y = golden().tensor<float, 2>("y", dev);
    ft::Tensor<float, 2> o;
    CHECK(ft::test::launches_of(dev, [&] { o = ft::relu(ft::outer(u, v)) * 2.0f; }) == 1);
    ft::Tensor<float, 2> n;
    CHECK(ft::test::launches_of(dev, [&] { n = ft::normalize(x) + y; }) == 2);
    ft::Tensor<float, 1> d;
    CHECK(ft::test::launches_of(dev, [&] { d = ft::pairwise_distance(x, y); }) == 1);
    ft::Tensor<float, 2> c;
    CHECK(ft::test::launches_of(dev, [&] { c = ft::cdist(x, y, 1.0); }) == 1);
  }
}

TEST_CASE("bad distance arguments throw an ft::Error naming the op and the shapes") {
  ft::Tensor<float, 2> a({3, 4}), b({2, 5});
  check_throws_with([&] { (void)ft::cdist(a, b); }, {"cdist", "[3, 4]", "[2, 5]"});
  check_throws_with([&] { (void)ft::cdist(a, a, -1.0); }, {"cdist", "p must be"});
  check_throws_with([&] { (void)ft::cdist(a, a, 2.0, "fast"); }, {"cdist", "compute_mode"});
  check_throws_with([&] { (void)ft::Tensor<float, 1>(ft::norm(a, -2.0, 1)); }, {"norm", "p must be"});
  check_throws_with([&] { (void)ft::einsum<"ij,jk->ik">(a, b); }, {"einsum", "label 'j'", "[3, 4]", "[2, 5]"});
  check_throws_with([&] { (void)ft::einsum<"ii->i">(a); }, {"einsum", "label 'i'", "repeated", "[3, 4]"});
  check_throws_with(
      [&] {
        (void)ft::einsum<"ij,jk,kl->il">(a, ft::Tensor<float, 2>({4, 3}), b);
      },
      {"einsum", "label 'k'", "operand 1 [4, 3]", "operand 2 [2, 5]"});
  ft::Tensor<float, 3> c({2, 3, 4}), d({3, 3, 4});
  check_throws_with([&] { (void)ft::cdist(c, d); }, {"cdist", "batch", "[2, 3, 4]", "[3, 3, 4]"});
}
