// ft::einsum<"ij,jk->ik">(a, b): torch.einsum for one or two operands, with the subscripts
// parsed at compile time (so the result's rank is known and a typo is a compile error).
//
// Two operands are one batched GEMM: labels only one operand has and the output lacks are summed
// out of it first (one reduction launch each); the rest are batch labels (both operands and the
// output), contracted labels (both operands, not the output) and free labels (one operand and the
// output). Each operand is permuted to [batch, free, contracted] / [batch, contracted, free] and
// viewed as a 3-D batch (a copy only where the permuted view is not contiguous enough), one
// ft::matmul runs (cuBLAS / the CPU GEMM; transposed views without copies), and its result is
// viewed and permuted into the output's order. One operand is a permutation and sums. On Vars
// the gradient flows through the views, the sums and matmul's rule.
//
// An ellipsis ("...ij,...jk->...ik") stands for an operand's dims beyond its letters, aligned
// from the right across the operands as torch does (a missing leading dim is a dim only one
// operand has). Not supported (static_assert): a label repeated within one operand (diagonals:
// use ft::diagonal), more than two operands (chain ft::einsum calls). A label's sizes (an
// ellipsis dim's too) must be equal in both operands (torch also broadcasts a size of 1):
// otherwise an ft::Error.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/ops/reduction.hpp"

namespace ft::inline FT_ABI {

namespace linalg::einsum_detail {

// The subscripts as a template argument: einsum<"ij,jk->ik">.
template <std::size_t N>
struct Subscripts {
  char text[N]{};
  constexpr Subscripts(const char (&s)[N]) {  // NOLINT: implicit, for the template argument
    for (std::size_t i = 0; i < N; ++i) text[i] = s[i];
  }
};

struct Plan {
  int operands = 0;
  int rank[2] = {0, 0};
  char label[2][kMaxRank] = {};
  int out_rank = 0;
  char out[kMaxRank] = {};
  const char* error = nullptr;  // the first problem found, for the static_assert
};

constexpr bool is_label(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

template <std::size_t N>
constexpr Plan parse(const Subscripts<N>& s) {
  Plan p;
  int op = 0;
  bool arrow = false;
  std::size_t i = 0;
  for (; i + 1 < N && s.text[i] != '\0'; ++i) {
    const char c = s.text[i];
    if (c == ' ') continue;
    if (c == '.') return p.error = "a '.' outside an ellipsis (...)", p;
    if (c == ',') {
      if (++op >= 2) return p.error = "at most two operands are supported", p;
      continue;
    }
    if (c == '-') {
      if (i + 2 >= N || s.text[i + 1] != '>') return p.error = "'-' must start '->'", p;
      ++i;
      arrow = true;
      ++i;
      break;
    }
    if (!is_label(c)) return p.error = "subscripts are letters a-z, A-Z", p;
    if (p.rank[op] >= kMaxRank) return p.error = "an operand has more than 8 subscripts", p;
    for (int k = 0; k < p.rank[op]; ++k)
      if (p.label[op][k] == c) return p.error = "a label repeated within one operand (a diagonal) is not supported", p;
    p.label[op][p.rank[op]++] = c;
  }
  p.operands = op + 1;
  auto count = [&](char c) {
    int n = 0;
    for (int o = 0; o < p.operands; ++o)
      for (int k = 0; k < p.rank[o]; ++k) n += p.label[o][k] == c;
    return n;
  };
  if (arrow) {
    for (; i + 1 < N && s.text[i] != '\0'; ++i) {
      const char c = s.text[i];
      if (c == ' ') continue;
      if (!is_label(c)) return p.error = "the output's subscripts are letters a-z, A-Z", p;
      if (count(c) == 0) return p.error = "an output label appears in no operand", p;
      for (int k = 0; k < p.out_rank; ++k)
        if (p.out[k] == c) return p.error = "an output label is repeated", p;
      if (p.out_rank >= kMaxRank) return p.error = "the output has more than 8 subscripts", p;
      p.out[p.out_rank++] = c;
    }
  } else {  // implicit output: the labels that appear once, in alphabetical order (torch's rule)
    for (char c = 'A'; c <= 'z'; ++c)
      if (is_label(c) && count(c) == 1) {
        if (p.out_rank >= kMaxRank) return p.error = "the output has more than 8 subscripts", p;
        p.out[p.out_rank++] = c;
      }
  }
  return p;
}

// The subscripts with each operand's ellipsis replaced by labels of its own (ranks[o] minus its
// letters), fresh letters aligned from the right across operands as torch broadcasts them, and
// an output ellipsis by all of them; without an arrow, the implicit output made explicit
// (torch's rule: the ellipsis dims first, then the labels that appear once, sorted). A string
// without an ellipsis comes back unchanged; a bad one is left for parse() to report, or gets
// '#' (an ellipsis where the operand's rank leaves no room, or not three dots). Room: each of
// at most three ellipses grows by at most 5 letters, an implicit output adds at most 2 + 24.
template <std::size_t N>
inline constexpr std::size_t expanded_size = N + 48;
template <std::size_t N>
constexpr Subscripts<expanded_size<N>> expand_ellipsis(const Subscripts<N>& s, const int (&ranks)[2]) {
  char text[expanded_size<N>]{};
  Subscripts<expanded_size<N>> r(text);
  bool any = false;
  for (std::size_t i = 0; i + 1 < N && s.text[i] != '\0'; ++i) any = any || s.text[i] == '.';
  if (!any) {
    for (std::size_t i = 0; i < N; ++i) r.text[i] = s.text[i];
    return r;
  }
  auto bad = [&] {
    Subscripts<expanded_size<N>> b(text);
    b.text[0] = '#';
    return b;
  };
  // per operand: its letters and whether it has an ellipsis; the output's start
  int letters[3] = {0, 0, 0}, op = 0;
  bool has[3] = {false, false, false}, arrow = false;
  bool used[128] = {};
  for (std::size_t i = 0; i + 1 < N && s.text[i] != '\0'; ++i) {
    const char c = s.text[i];
    if (c == ',') {
      if (++op > 1) return bad();
    } else if (c == '-' && s.text[i + 1] == '>') {
      arrow = true;
      op = 2;
      ++i;
    } else if (c == '.') {
      if (i + 2 >= N || s.text[i + 1] != '.' || s.text[i + 2] != '.' || has[op]) return bad();
      has[op] = true;
      i += 2;
    } else if (is_label(c)) {
      ++letters[op];
      used[static_cast<int>(c)] = true;
    }
  }
  int dims[2] = {0, 0}, most = 0;
  for (int o = 0; o < 2; ++o) {
    if (!has[o]) continue;
    dims[o] = ranks[o] - letters[o];
    if (dims[o] < 0) return bad();
    most = dims[o] > most ? dims[o] : most;
  }
  char fresh[kMaxRank] = {};
  if (most > kMaxRank) return bad();
  for (int k = 0, c = 'A'; k < most; ++c) {
    if (c > 'z') return bad();
    if (is_label(static_cast<char>(c)) && !used[c]) fresh[k++] = static_cast<char>(c);
  }
  std::size_t j = 0;
  op = 0;
  int count[128] = {};
  for (std::size_t i = 0; i + 1 < N && s.text[i] != '\0'; ++i) {
    const char c = s.text[i];
    if (c == '.') {
      const int n = op == 2 ? most : dims[op];
      for (int k = most - n; k < most; ++k) r.text[j++] = fresh[k];
      i += 2;
      continue;
    }
    if (c == ',') ++op;
    if (c == '-') op = 2;
    if (is_label(c) && op < 2) ++count[static_cast<int>(c)];
    r.text[j++] = c;
  }
  if (!arrow) {  // torch's implicit output: the ellipsis dims, then the labels seen once, sorted
    r.text[j++] = '-';
    r.text[j++] = '>';
    for (int k = 0; k < most; ++k) r.text[j++] = fresh[k];
    for (int c = 'A'; c <= 'z'; ++c)
      if (is_label(static_cast<char>(c)) && count[c] == 1) r.text[j++] = static_cast<char>(c);
  }
  return r;
}

constexpr int find(const char* labels, int n, char c) {
  for (int k = 0; k < n; ++k)
    if (labels[k] == c) return k;
  return -1;
}

// An operand with the labels it holds after summing out those in neither the other operand nor
// the output.
struct Reduced {
  int rank = 0;
  char label[kMaxRank] = {};
};
constexpr Reduced reduced(const Plan& p, int o) {
  Reduced r;
  for (int k = 0; k < p.rank[o]; ++k) {
    const char c = p.label[o][k];
    const bool other = p.operands == 2 && find(p.label[1 - o], p.rank[1 - o], c) >= 0;
    if (other || find(p.out, p.out_rank, c) >= 0) r.label[r.rank++] = c;
  }
  return r;
}

template <class L, int R>
using same_kind_t =
    std::conditional_t<ft::detail::is_var<L>::value, Var<typename L::value_type, R>, Tensor<typename L::value_type, R>>;

// The labels of a two-operand plan by class: batch and free in the output's order, contracted
// in the first operand's order.
struct Classes {
  char batch[kMaxRank] = {}, fa[kMaxRank] = {}, fb[kMaxRank] = {}, con[kMaxRank] = {};
  int nb = 0, na = 0, nf = 0, nc = 0;
};
constexpr Classes classify(const Plan& p, const Reduced& ra, const Reduced& rb) {
  Classes c;
  for (int i = 0; i < p.out_rank; ++i) {
    const char l = p.out[i];
    const bool in_a = find(ra.label, ra.rank, l) >= 0, in_b = find(rb.label, rb.rank, l) >= 0;
    if (in_a && in_b)
      c.batch[c.nb++] = l;
    else if (in_a)
      c.fa[c.na++] = l;
    else
      c.fb[c.nf++] = l;
  }
  for (int k = 0; k < ra.rank; ++k)
    if (find(p.out, p.out_rank, ra.label[k]) < 0) c.con[c.nc++] = ra.label[k];
  return c;
}

// Operand O (a Var or tensor) with every label neither the other operand nor the output has
// summed out: one reduction a label, the last dimension first, so the earlier indices stay valid.
template <Subscripts S, int O, int D, class V>
auto prune(const V& v) {
  constexpr Plan p = parse(S);
  constexpr Reduced keep = reduced(p, O);
  if constexpr (D < 0) {
    return v;
  } else if constexpr (find(keep.label, keep.rank, p.label[O][D]) >= 0) {
    return prune<S, O, D - 1>(v);
  } else {
    same_kind_t<V, V::rank - 1> s = ft::sum(v, D);
    return prune<S, O, D - 1>(s);
  }
}

// x with dims permuted by `perm` (out[i] = x[perm[i]]), then viewed as `sizes`.
template <int R, int NR, class L>
auto permute_view(const L& x, const int (&perm)[R > 0 ? R : 1], const index_t (&sizes)[NR]) {
  if constexpr (R == 0)
    return x.reshape(sizes);
  else
    return x.permute(perm).reshape(sizes);
}

}  // namespace linalg::einsum_detail

template <linalg::einsum_detail::Subscripts S0, Expression... X>
auto einsum(const X&... xs) {
  namespace ed = linalg::einsum_detail;
  static constexpr int ranks[2] = {std::tuple_element_t<0, std::tuple<X...>>::rank,
                                   std::tuple_element_t<sizeof...(X) - 1, std::tuple<X...>>::rank};
  static constexpr auto S = ed::expand_ellipsis(S0, ranks);
  constexpr ed::Plan p = ed::parse(S);
  static_assert(p.error == nullptr,
                "ft::einsum: bad subscripts (see the plan's error: a repeated label within an "
                "operand, a label or arrow typo, an ellipsis that is not three dots or covers more "
                "dims than the operand has, or more than two operands)");
  static_assert(sizeof...(X) == static_cast<std::size_t>(p.operands),
                "ft::einsum: the subscripts name a different number of operands");
  constexpr int RO = p.out_rank;
  auto ops = std::make_tuple(linalg::detail::as_leaf(xs)...);
  using L0 = std::tuple_element_t<0, decltype(ops)>;
  using T = typename L0::value_type;
  static_assert(std::tuple_element_t<0, std::tuple<X...>>::rank == p.rank[0],
                "ft::einsum: the first operand's rank differs from its number of subscripts");

  if constexpr (p.operands == 1) {
    const auto& x0 = std::get<0>(ops);
    auto a = ed::prune<S, 0, p.rank[0] - 1>(x0);
    constexpr ed::Reduced ra = ed::reduced(p, 0);
    static_assert(ra.rank == RO);
    if constexpr (RO <= 1) {
      return ed::same_kind_t<L0, RO>(a);
    } else {
      int perm[RO];
      for (int i = 0; i < RO; ++i) perm[i] = ed::find(ra.label, ra.rank, p.out[i]);
      return ed::same_kind_t<L0, RO>(a.permute(perm));
    }
  } else {
    using L1 = std::tuple_element_t<1, decltype(ops)>;
    static_assert(std::is_same_v<T, typename L1::value_type>,
                  "ft::einsum: the operands must have the same element type; convert one with ft::cast<T>");
    static_assert(std::tuple_element_t<1, std::tuple<X...>>::rank == p.rank[1],
                  "ft::einsum: the second operand's rank differs from its number of subscripts");
    using Out = std::conditional_t<autograd::detail::any_var_v<X...>, Var<T, RO>, Tensor<T, RO>>;
    auto a = ed::prune<S, 0, p.rank[0] - 1>(std::get<0>(ops));
    auto b = ed::prune<S, 1, p.rank[1] - 1>(std::get<1>(ops));
    constexpr ed::Reduced ra = ed::reduced(p, 0), rb = ed::reduced(p, 1);
    constexpr ed::Classes cl = ed::classify(p, ra, rb);
    // sizes of each label (checked equal between the operands)
    auto size_of = [&](char l) {
      const int ia = ed::find(ra.label, ra.rank, l), ib = ed::find(rb.label, rb.rank, l);
      const index_t sa = ia >= 0 ? a.shape()[ia] : -1, sb = ib >= 0 ? b.shape()[ib] : -1;
      if (sa >= 0 && sb >= 0 && sa != sb)
        fail("einsum", "label '", l, "' has size ", sa, " in operand 0 ", to_string(a.shape()), " but ", sb,
             " in operand 1 ", to_string(b.shape()));
      return sa >= 0 ? sa : sb;
    };
    index_t nbatch = 1, m = 1, n = 1, k = 1;
    for (int i = 0; i < cl.nb; ++i) nbatch *= size_of(cl.batch[i]);
    for (int i = 0; i < cl.na; ++i) m *= size_of(cl.fa[i]);
    for (int i = 0; i < cl.nf; ++i) n *= size_of(cl.fb[i]);
    for (int i = 0; i < cl.nc; ++i) k *= size_of(cl.con[i]);
    // a → [batch, free a, contracted] as [nbatch, m, k]; b → [batch, contracted, free b] as [nbatch, k, n]
    constexpr int RA = ra.rank, RB = rb.rank;
    int pa[RA > 0 ? RA : 1] = {}, pb[RB > 0 ? RB : 1] = {};
    {
      int j = 0;
      for (int i = 0; i < cl.nb; ++i) pa[j++] = ed::find(ra.label, RA, cl.batch[i]);
      for (int i = 0; i < cl.na; ++i) pa[j++] = ed::find(ra.label, RA, cl.fa[i]);
      for (int i = 0; i < cl.nc; ++i) pa[j++] = ed::find(ra.label, RA, cl.con[i]);
      j = 0;
      for (int i = 0; i < cl.nb; ++i) pb[j++] = ed::find(rb.label, RB, cl.batch[i]);
      for (int i = 0; i < cl.nc; ++i) pb[j++] = ed::find(rb.label, RB, cl.con[i]);
      for (int i = 0; i < cl.nf; ++i) pb[j++] = ed::find(rb.label, RB, cl.fb[i]);
    }
    const index_t sa[3] = {nbatch, m, k}, sb[3] = {nbatch, k, n};
    auto a3 = ed::permute_view<RA, 3>(a, pa, sa);
    auto b3 = ed::permute_view<RB, 3>(b, pb, sb);
    auto c3 = matmul(a3, b3);  // [nbatch, m, n]
    if constexpr (RO == 0) {
      return Out(ft::sum(c3));
    } else {
      // [batch..., free a..., free b...] then the output's order
      index_t sc[RO];
      char order[RO];
      {
        int j = 0;
        for (int i = 0; i < cl.nb; ++i) order[j] = cl.batch[i], sc[j++] = size_of(cl.batch[i]);
        for (int i = 0; i < cl.na; ++i) order[j] = cl.fa[i], sc[j++] = size_of(cl.fa[i]);
        for (int i = 0; i < cl.nf; ++i) order[j] = cl.fb[i], sc[j++] = size_of(cl.fb[i]);
      }
      auto c = c3.reshape(sc);
      int po[RO];
      for (int i = 0; i < RO; ++i) po[i] = ed::find(order, RO, p.out[i]);
      return Out(c.permute(po));
    }
  }
}

}  // namespace ft::inline FT_ABI
