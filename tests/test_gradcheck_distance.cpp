// gradcheck of the norms and distances (ft/linalg/distance.hpp, ft::norm's general p) and of the
// losses built on them or added with them (class weights, probability targets, kl_div, ranking,
// embedding and triplet losses), registered into the one table that tests/test_gradcheck.cpp runs.
#include "ft/linalg/distance.hpp"
#include "ft/linalg/einsum.hpp"
#include "ft/nn/loss.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
std::vector<Case> distance_cases() {
  using namespace ft;
  namespace F = ft::nn::functional;
  using V1 = Var<double, 1>;
  using V2 = Var<double, 2>;
  const index_t s3x4[] = {3, 4}, s4[] = {4};
  std::vector<Case> c;
  c.push_back(general("norm_p", {3, 4},
                      [](const V2& x) { return V1(norm(x, 3.0, 1) + norm(x * x, 0.5, 1) + norm(x, 0.0, 1)); }));
  c.push_back(general("normalize", {3, 4}, [](const V2& x) { return V2(normalize(x) + normalize(x, 1.0, 0) * x); }));
  c.push_back(binary("pairwise_distance", s3x4, s3x4, [](const auto& a, const auto& b) {
    return pairwise_distance(a, b) + pairwise_distance(a, b * 2, 3.0);
  }));
  c.push_back(binary("cosine_similarity", s3x4, s3x4, [](const auto& a, const auto& b) {
    return cosine_similarity(a, b) + cosine_similarity(a, exp(b), 1, 0.1);
  }));
  c.push_back(binary("outer", s4, s3x4, [](const auto& a, const auto& b) { return matmul(b, outer(a, a * 3)); }));
  c.push_back(binary("cdist", s3x4, s3x4, [](const auto& a, const auto& b) {
    // the direct form's kernel is the same for every p (p = 3 here; the golden tests cover 0, 1, 2, inf)
    return Var<double, 2>(cdist(a, b, 3.0) + cdist(a, b, 2.0, CdistMode::Mm));
  }));
  c.push_back(binary("einsum", s3x4, s3x4, [](const auto& a, const auto& b) {
    return Var<double, 2>(einsum<"ij,kj->ik">(a, b) + einsum<"ij,kj->ki">(b * 2, a) + einsum<"ij,ij->i">(a, b) +
                          einsum<"ij->">(a * a));
  }));
  c.push_back(binary("einsum diagonal, broadcast, three operands", s3x4, s3x4, [](const auto& a, const auto& b) {
    // a square [3, 3] from each, a size-1 label broadcast, a chain of three
    auto sq = einsum<"ij,kj->ik">(a, b);
    const Var<double, 1> rows = sum(a, 1);
    return Var<double, 1>(einsum<"ii->i">(sq) + einsum<"ii,ij->i">(sq, a) * einsum<"ij,ij,ij->i">(a, b, a) +
                          einsum<"ij,ij->i">(rows.unsqueeze(1), b) + einsum<"ii">(sq));
  }));
  c.push_back(general("cross_entropy_weighted", {5, 4}, [](const V2& x) {
    auto t = ft::from_vector<std::int64_t>({0, 3, -100, 1, 2}, {5});
    auto w = ft::from_vector<double>({0.5, 1, 2, 3}, {4});
    Tensor<double, 2> probs =
        softmax(from_vector<double>({1, 2, 3, 4, 0, 1, 0, 2, 3, 1, 1, 1, 2, 0, 4, 1, 3, 2, 1, 0}, {5, 4}), 1);
    return Var<double, 0>(F::cross_entropy(x, t, w, {.label_smoothing = 0.2}) + F::nll_loss<Reduction::Sum>(x, t, w) +
                          F::cross_entropy(x * 2, probs, w) + F::cross_entropy(x, probs, {.label_smoothing = 0.1}));
  }));
  c.push_back(binary(
      "kl_div", s3x4, s3x4,
      [](const auto& x, const auto& t) {
        return F::kl_div(x, t) + F::kl_div(x, t, Reduction::BatchMean) + F::kl_div<Reduction::Sum>(x, log(t), true);
      },
      -2, 2, 0.1, 1.0));
  c.push_back(general("margin_ranking_loss", {6}, [](const V1& x) {
    auto y = ft::from_vector<double>({1, -1, 1, -1, 1, -1}, {6});
    return Var<double, 0>(F::margin_ranking_loss(x, flip(x, {0}) * 0.5, y, Reduction::Sum, 0.3));
  }));
  c.push_back(binary("cosine_embedding_loss", s3x4, s3x4, [](const auto& a, const auto& b) {
    auto y = ft::from_vector<double>({1, -1, -1}, {3});
    return F::cosine_embedding_loss(a, b, y, Reduction::Sum, -0.5);
  }));
  c.push_back(binary("triplet_margin_loss", s3x4, s3x4, [](const auto& a, const auto& p) {
    return F::triplet_margin_loss(a, p, a * 0.5, Reduction::Sum, {.margin = 3.0}) +
           F::triplet_margin_loss(a, p, p * -1, Reduction::Mean, {.margin = 3.0, .p = 3.0, .swap = true});
  }));
  return c;
}
const bool registered = [] {
  for (auto& k : distance_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace
