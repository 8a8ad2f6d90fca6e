// Norms and distances over a dimension, written as the compositions torch defines them:
// ft::normalize (torch.nn.functional.normalize), pairwise_distance, cosine_similarity, outer and
// cdist. normalize, pairwise_distance, cosine_similarity and outer are lazy expressions (they fuse
// into the statement that reads them; their reductions are evaluated first, as any reduction
// inside an expression) and are differentiated through their parts. cdist is a boundary: one
// fused reduction over the broadcast differences, or, for the Euclidean distance between many
// points, one GEMM and one fused elementwise pass (torch's "use_mm_for_euclid_dist" path).
// The same names are in ft::nn::functional.
#pragma once

#include <cmath>
#include <string_view>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/ops/elementwise.hpp"
#include "ft/ops/reduction.hpp"

namespace ft::inline FT_ABI {

namespace linalg::detail {
template <class A, class B>
void check_same_device(const char* op, const A& a, const B& b) {
  auto da = ft::detail::device_of(a), db = ft::detail::device_of(b);
  if (da && db && !(*da == *db))
    fail(op, "x1 ", to_string(a.shape()), " on ", *da, " and x2 ", to_string(b.shape()), " on ", *db,
         " must be on the same device");
}
}  // namespace linalg::detail

// x / max(‖x‖_p, eps) along `dim` (torch.nn.functional.normalize; any p ≥ 0 or inf). A lazy
// expression: the norms are one launch, the division fuses into the consumer.
template <Expression X>
auto normalize(const X& x, double p = 2.0, int dim = 1, double eps = 1e-12) {
  static_assert(X::rank >= 1, "ft::normalize: the input needs at least one dimension");
  return x / maximum(norm(x, p, dim, keepdim), eps);
}

// ‖x1 − x2 + eps‖_p over the last dimension (torch.nn.functional.pairwise_distance); x1 and x2
// broadcast. A lazy reduction (rank − 1, or the same rank with ft::keepdim).
template <Expression A, Expression B>
auto pairwise_distance(const A& x1, const B& x2, double p = 2.0, double eps = 1e-6) {
  linalg::detail::check_same_device("pairwise_distance", x1, x2);
  constexpr int R = A::rank > B::rank ? A::rank : B::rank;
  static_assert(R >= 1, "ft::pairwise_distance: the inputs need at least one dimension");
  return norm(x1 - x2 + eps, p, R - 1);
}
template <Expression A, Expression B>
auto pairwise_distance(const A& x1, const B& x2, double p, double eps, KeepDim) {
  linalg::detail::check_same_device("pairwise_distance", x1, x2);
  constexpr int R = A::rank > B::rank ? A::rank : B::rank;
  static_assert(R >= 1, "ft::pairwise_distance: the inputs need at least one dimension");
  return norm(x1 - x2 + eps, p, R - 1, keepdim);
}

// Σ x1·x2 / sqrt(max(Σ x1² · Σ x2², eps²)) along `dim` (torch.nn.functional.cosine_similarity);
// x1 and x2 broadcast. A lazy expression of rank − 1.
template <Expression A, Expression B>
auto cosine_similarity(const A& x1, const B& x2, int dim = 1, double eps = 1e-8) {
  linalg::detail::check_same_device("cosine_similarity", x1, x2);
  return sum(x1 * x2, dim) / sqrt(maximum(sum(square(x1), dim) * sum(square(x2), dim), eps * eps));
}

// a ⊗ b: [n] and [m] → [n, m] (torch.outer). A lazy expression over views of a and b (an
// operand that is an expression is evaluated first).
template <Expression A, Expression B>
auto outer(const A& a, const B& b) {
  static_assert(A::rank == 1 && B::rank == 1, "ft::outer: both operands must be vectors (rank 1)");
  linalg::detail::check_same_device("outer", a, b);
  return linalg::detail::as_leaf(a).unsqueeze(1) * linalg::detail::as_leaf(b).unsqueeze(0);
}

// How cdist computes the Euclidean distance (torch.cdist's compute_mode).
enum class CdistMode {
  MmIfNecessary,  // "use_mm_for_euclid_dist_if_necessary": the GEMM form when p = 2 and P or R > 25
  Mm,             // "use_mm_for_euclid_dist": the GEMM form whenever p = 2
  NoMm,           // "donot_use_mm_for_euclid_dist"
};

// The p-norm distances between the rows of x1 [.., P, M] and of x2 [.., R, M]: [.., P, R]
// (torch.cdist; batch dimensions broadcast). Directly, one fused launch reading x1 and x2 (any
// p ≥ 0 or inf); for p = 2 with many points, torch's GEMM form sqrt(max(|a|² + |b|² − 2a·bᵀ,
// 1e-30)): one GEMM, two row-norm launches and one elementwise pass, faster and a little less
// exact. Gradients through either form (0 where a distance is 0, as torch). A Var when an
// operand reads a Var, else a tensor.
template <Expression A, Expression B>
auto cdist(const A& x1, const B& x2, double p = 2.0, CdistMode mode = CdistMode::MmIfNecessary) {
  static_assert(A::rank == B::rank && A::rank >= 2 && A::rank <= 3,
                "ft::cdist: x1 and x2 must both be [P, M] or both [B, P, M]");
  constexpr int R = A::rank;
  constexpr const char* op = "cdist";
  using T = float_promote_t<promote_t<typename A::value_type, typename B::value_type>>;
  using Result = std::conditional_t<autograd::detail::any_var_v<A, B>, Var<T, R>, Tensor<T, R>>;
  check(p >= 0 && !std::isnan(p), op, "p must be a non-negative number or inf, got ", p);
  linalg::detail::check_same_device(op, x1, x2);
  if (x1.shape()[R - 1] != x2.shape()[R - 1])
    fail(op, "x1 ", to_string(x1.shape()), " and x2 ", to_string(x2.shape()),
         " must have the same number of columns (the last dimension)");
  if constexpr (R == 3)
    if (x1.shape()[0] != x2.shape()[0] && x1.shape()[0] != 1 && x2.shape()[0] != 1)
      fail(op, "the batch sizes of x1 ", to_string(x1.shape()), " and x2 ", to_string(x2.shape()), " do not broadcast");
  auto a = linalg::detail::as_leaf(x1);
  auto b = linalg::detail::as_leaf(x2);
  const index_t P = x1.shape()[R - 2], Q = x2.shape()[R - 2];
  const bool mm = p == 2 && (mode == CdistMode::Mm || (mode == CdistMode::MmIfNecessary && (P > 25 || Q > 25)));
  if (mm) {
    auto bt = b.transpose(R - 2, R - 1);
    auto ab = matmul(a, bt);
    return Result(sqrt(maximum(sum(square(a), R - 1, keepdim) + sum(square(bt), R - 2, keepdim) - 2 * ab, 1e-30)));
  }
  return Result(norm(a.unsqueeze(R - 1) - b.unsqueeze(R - 2), p, R));
}
inline CdistMode cdist_mode(std::string_view name) {
  if (name == "use_mm_for_euclid_dist_if_necessary") return CdistMode::MmIfNecessary;
  if (name == "use_mm_for_euclid_dist") return CdistMode::Mm;
  if (name == "donot_use_mm_for_euclid_dist") return CdistMode::NoMm;
  fail("cdist", "unknown compute_mode '", name,
       "' (use_mm_for_euclid_dist_if_necessary, use_mm_for_euclid_dist or donot_use_mm_for_euclid_dist)");
}
template <Expression A, Expression B>
auto cdist(const A& x1, const B& x2, double p, std::string_view compute_mode) {
  return cdist(x1, x2, p, cdist_mode(compute_mode));
}

namespace nn::functional {
using ft::cosine_similarity;
using ft::normalize;
using ft::pairwise_distance;
}  // namespace nn::functional

}  // namespace ft::inline FT_ABI
