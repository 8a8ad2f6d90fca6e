// ft::einsum<"ij,jk->ik">(a, b): torch.einsum, with the subscripts parsed at compile time (so
// the result's rank is known and a typo is a compile error).
//
// Two operands are one batched GEMM: labels only one operand has and the output lacks are summed
// out of it first (one reduction launch each); the rest are batch labels (both operands and the
// output), contracted labels (both operands, not the output) and free labels (one operand and the
// output). Each operand is permuted to [batch, free, contracted] / [batch, contracted, free] and
// viewed as a 3-D batch (a copy only where the permuted view is not contiguous enough), one
// ft::matmul runs (cuBLAS / the CPU GEMM; transposed views without copies), and its result is
// viewed and permuted into the output's order. One operand is a permutation and sums. Three or
// more (up to 8) contract from the left, as torch does without opt_einsum: the first two into
// the labels still needed, then that with the next. On Vars the gradient flows through the
// views, the diagonals, the sums and matmul's rule.
//
// A label repeated within one operand ("ii->i", "bii,bj->bij", "ii" the trace) takes that
// operand's diagonal first (ft::diagonal, one small launch; the sizes must agree). An ellipsis
// ("...ij,...jk->...ik") stands for an operand's dims beyond its letters, aligned from the right
// across the operands as torch does (a missing leading dim is a dim only one operand has). A
// label of size 1 in one operand and n in another broadcasts (an expanded view), as in torch;
// other size mismatches are an ft::Error naming the label and both shapes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/ops/reduction.hpp"
#include "ft/ops/structure.hpp"

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

inline constexpr int kMaxOperands = 8;

struct Plan {
  int operands = 0;
  int rank[kMaxOperands] = {};
  char label[kMaxOperands][kMaxRank] = {};
  int out_rank = 0;
  char out[kMaxRank] = {};
  const char* error = nullptr;  // the first problem found, for the static_assert
};

constexpr bool is_label(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The subscripts as written: each operand's labels (a label may repeat within one: a diagonal)
// and the output's, explicit or torch's implicit one (the labels seen once, sorted).
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
      if (++op >= kMaxOperands) return p.error = "at most 8 operands are supported", p;
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

// An operand's repeated labels taken as diagonals, as torch does: each step takes the diagonal of
// the first repeated label's first two dims (d1, d2), which ft::diagonal moves to the end, until
// no label repeats; `label` is the order left.
struct Diagonals {
  int steps = 0;
  int d1[kMaxRank] = {}, d2[kMaxRank] = {};
  char repeated[kMaxRank] = {};
  int rank = 0;
  char label[kMaxRank] = {};
};
constexpr Diagonals diagonals(const char* labels, int rank) {
  Diagonals g;
  g.rank = rank;
  for (int k = 0; k < rank; ++k) g.label[k] = labels[k];
  for (;;) {
    int i = -1, j = -1;
    for (int a = 0; a < g.rank && i < 0; ++a)
      for (int b = a + 1; b < g.rank; ++b)
        if (g.label[a] == g.label[b]) {
          i = a, j = b;
          break;
        }
    if (i < 0) return g;
    const char c = g.label[i];
    g.d1[g.steps] = i, g.d2[g.steps] = j, g.repeated[g.steps] = c;
    ++g.steps;
    char rest[kMaxRank] = {};
    int n = 0;
    for (int k = 0; k < g.rank; ++k)
      if (k != i && k != j) rest[n++] = g.label[k];
    rest[n++] = c;
    for (int k = 0; k < n; ++k) g.label[k] = rest[k];
    g.rank = n;
  }
}

// The plan with each operand's labels after its diagonals (no label repeats within one).
constexpr Plan distinct(Plan p) {
  for (int o = 0; o < p.operands; ++o) {
    const Diagonals g = diagonals(p.label[o], p.rank[o]);
    p.rank[o] = g.rank;
    for (int k = 0; k < kMaxRank; ++k) p.label[o][k] = k < g.rank ? g.label[k] : '\0';
  }
  return p;
}

template <std::size_t K>
constexpr bool ranks_match(const Plan& p, const int (&ranks)[K]) {
  for (int o = 0; o < p.operands && o < static_cast<int>(K); ++o)
    if (ranks[o] != p.rank[o]) return false;
  return true;
}

template <std::size_t N>
constexpr bool has_ellipsis(const Subscripts<N>& s) {
  for (std::size_t i = 0; i + 1 < N && s.text[i] != '\0'; ++i)
    if (s.text[i] == '.') return true;
  return false;
}

// The subscripts with each operand's ellipsis replaced by labels of its own (ranks[o] minus its
// letters), fresh letters aligned from the right across operands as torch broadcasts them, and
// an output ellipsis by all of them; without an arrow, the implicit output made explicit
// (torch's rule: the ellipsis dims first, then the labels that appear once, sorted). A bad
// string is left for parse() to report, or gets '#' (an ellipsis where the operand's rank leaves
// no room, or not three dots). Room: each of at most K + 1 ellipses grows by at most 5 letters,
// an implicit output adds at most 2 + 8 + N.
template <std::size_t N, std::size_t K>
inline constexpr std::size_t expanded_size = 2 * N + 5 * (K + 1) + 10;
template <std::size_t N, std::size_t K>
constexpr Subscripts<expanded_size<N, K>> expand_ellipsis(const Subscripts<N>& s, const int (&ranks)[K]) {
  constexpr int ops = static_cast<int>(K);
  char text[expanded_size<N, K>]{};
  Subscripts<expanded_size<N, K>> r(text);
  auto bad = [&] {
    Subscripts<expanded_size<N, K>> b(text);
    b.text[0] = '#';
    return b;
  };
  // per operand (the output last): its letters and whether it has an ellipsis
  int letters[K + 1] = {}, op = 0;
  bool has[K + 1] = {}, arrow = false;
  bool used[128] = {};
  for (std::size_t i = 0; i + 1 < N && s.text[i] != '\0'; ++i) {
    const char c = s.text[i];
    if (c == ',') {
      if (++op >= ops) {  // more operands than given: parse() and einsum's count check report it
        for (std::size_t k = 0; k < N; ++k) r.text[k] = s.text[k];
        return r;
      }
    } else if (c == '-' && s.text[i + 1] == '>') {
      arrow = true;
      op = ops;
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
  int dims[K] = {}, most = 0;
  for (int o = 0; o < ops; ++o) {
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
      const int n = op == ops ? most : dims[op];
      for (int k = most - n; k < most; ++k) r.text[j++] = fresh[k];
      i += 2;
      continue;
    }
    if (c == ',') ++op;
    if (c == '-') op = ops;
    if (is_label(c) && op < ops) ++count[static_cast<int>(c)];
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

// Three or more operands contract from the left, as torch does: the first two into the labels
// that a later operand or the output still needs (first_pair: "A,B->K"), then that result with
// the rest (after_pair: "K,C,...->out"). Room: K and the output are at most 8 letters each.
template <std::size_t N>
inline constexpr std::size_t pair_size = N + 3 * kMaxRank + 4;
template <std::size_t N>
constexpr Subscripts<pair_size<N>> pair_step(const Subscripts<N>& s, bool first) {
  const Plan p = parse(s);
  char text[pair_size<N>]{};
  Subscripts<pair_size<N>> r(text);
  // K: the distinct labels of operands 0 and 1, in order, that a later operand or the output has
  char keep[2 * kMaxRank] = {};
  int nk = 0;
  auto later = [&](char c) {
    for (int o = 2; o < p.operands; ++o)
      for (int k = 0; k < p.rank[o]; ++k)
        if (p.label[o][k] == c) return true;
    for (int k = 0; k < p.out_rank; ++k)
      if (p.out[k] == c) return true;
    return false;
  };
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < p.rank[o]; ++k) {
      const char c = p.label[o][k];
      bool seen = false;
      for (int m = 0; m < nk; ++m) seen = seen || keep[m] == c;
      if (!seen && later(c)) keep[nk++] = c;
    }
  std::size_t j = 0;
  auto put = [&](const char* l, int n) {
    for (int k = 0; k < n; ++k) r.text[j++] = l[k];
  };
  if (first) {
    put(p.label[0], p.rank[0]);
    r.text[j++] = ',';
    put(p.label[1], p.rank[1]);
  } else {
    put(keep, nk);
    for (int o = 2; o < p.operands; ++o) {
      r.text[j++] = ',';
      put(p.label[o], p.rank[o]);
    }
  }
  r.text[j++] = '-';
  r.text[j++] = '>';
  if (first)
    put(keep, nk);
  else
    put(p.out, p.out_rank);
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
  constexpr Plan p = distinct(parse(S));
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

// Operand O with its repeated labels' diagonals taken, step by step (diagonals()): one launch
// each (a small one: the diagonal's elements). The repeated dims must have one size.
template <Subscripts S, int O, int Step, class V>
auto undiag(const V& v) {
  constexpr Diagonals g = diagonals(parse(S).label[O], parse(S).rank[O]);
  if constexpr (Step == g.steps) {
    return v;
  } else {
    const index_t n1 = v.shape()[g.d1[Step]], n2 = v.shape()[g.d2[Step]];
    if (n1 != n2)
      fail("einsum", "label '", g.repeated[Step], "' is repeated in operand ", O, " ", to_string(v.shape()),
           " but its sizes differ: ", n1, " != ", n2);
    same_kind_t<V, V::rank - 1> d = ft::diagonal(v, 0, g.d1[Step], g.d2[Step]);
    return undiag<S, O, Step + 1>(d);
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
  static_assert(sizeof...(X) >= 1, "ft::einsum: give at least one operand");
  static constexpr int ranks[] = {X::rank...};
  static constexpr auto S = [] {
    if constexpr (ed::has_ellipsis(S0))
      return ed::expand_ellipsis(S0, ranks);
    else
      return S0;
  }();
  constexpr ed::Plan raw = ed::parse(S);
  static_assert(raw.error == nullptr,
                "ft::einsum: bad subscripts (see the plan's error: a label or arrow typo, an "
                "ellipsis that is not three dots or covers more dims than the operand has, more "
                "than 8 operands or subscripts)");
  static_assert(sizeof...(X) == static_cast<std::size_t>(raw.operands),
                "ft::einsum: the subscripts name a different number of operands");
  static_assert(ed::ranks_match(raw, ranks), "ft::einsum: an operand's rank differs from its number of subscripts");
  static_assert(
      (std::is_same_v<typename std::tuple_element_t<0, std::tuple<X...>>::value_type, typename X::value_type> && ...),
      "ft::einsum: the operands must have the same element type; convert one with ft::cast<T>");
  constexpr ed::Plan p = ed::distinct(raw);
  constexpr int RO = p.out_rank;

  if constexpr (p.operands >= 3) {
    // each label's sizes agree across all operands (or are 1) before anything runs
    index_t sizes[sizeof...(X)][kMaxRank] = {};
    {
      int o = 0;
      ((std::copy_n(xs.shape().begin(), X::rank, sizes[o++])), ...);
    }
    for (int o = 0; o < p.operands; ++o)
      for (int k = 0; k < raw.rank[o]; ++k)
        for (int q = 0; q <= o; ++q)
          for (int j = 0; j < raw.rank[q]; ++j) {
            const index_t s1 = sizes[q][j], s2 = sizes[o][k];
            if (raw.label[q][j] != raw.label[o][k] || (q == o && j >= k) || s1 == s2 ||
                (q != o && (s1 == 1 || s2 == 1)))
              continue;
            auto shape_text = [&](int which) {
              std::string t;
              int i = 0;
              ((t = i++ == which ? to_string(xs.shape()) : t), ...);
              return t;
            };
            fail("einsum", "label '", raw.label[o][k], "' has size ", s1, " in operand ", q, " ", shape_text(q),
                 " but ", s2, " in operand ", o, " ", shape_text(o),
                 q == o ? " (a repeated label)" : " (only a size of 1 broadcasts)");
          }
    static constexpr auto first = ed::pair_step(S, true), rest = ed::pair_step(S, false);
    return [](const auto& x0, const auto& x1, const auto&... more) {
      return einsum<rest>(einsum<first>(x0, x1), more...);
    }(xs...);
  } else {
    auto ops = std::make_tuple(linalg::detail::as_leaf(xs)...);
    using L0 = std::tuple_element_t<0, decltype(ops)>;
    using T = typename L0::value_type;
    if constexpr (p.operands == 1) {
      auto a = ed::prune<S, 0, p.rank[0] - 1>(ed::undiag<S, 0, 0>(std::get<0>(ops)));
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
      using Out = std::conditional_t<autograd::detail::any_var_v<X...>, Var<T, RO>, Tensor<T, RO>>;
      auto a = ed::prune<S, 0, p.rank[0] - 1>(ed::undiag<S, 0, 0>(std::get<0>(ops)));
      auto b = ed::prune<S, 1, p.rank[1] - 1>(ed::undiag<S, 1, 0>(std::get<1>(ops)));
      constexpr ed::Reduced ra = ed::reduced(p, 0), rb = ed::reduced(p, 1);
      constexpr ed::Classes cl = ed::classify(p, ra, rb);
      constexpr int RA = ra.rank, RB = rb.rank;
      // a label of both operands with size 1 in one broadcasts to the other's size (torch's
      // rule): that operand is expanded, a stride-0 view
      auto widen = [](auto& x, const ed::Reduced& rx, const auto& y, const ed::Reduced& ry) {
        constexpr int RX = std::decay_t<decltype(x)>::rank;
        if constexpr (RX > 0) {
          index_t sizes[RX];
          bool grow = false;
          for (int k = 0; k < RX; ++k) {
            const int iy = ed::find(ry.label, ry.rank, rx.label[k]);
            sizes[k] = x.shape()[k];
            if (iy >= 0 && sizes[k] == 1 && y.shape()[iy] != 1) sizes[k] = y.shape()[iy], grow = true;
          }
          if (grow) x = x.expand(sizes);
        }
      };
      widen(a, ra, b, rb);
      widen(b, rb, a, ra);
      // sizes of each label (checked equal between the operands)
      auto size_of = [&](char l) {
        const int ia = ed::find(ra.label, ra.rank, l), ib = ed::find(rb.label, rb.rank, l);
        const index_t sa = ia >= 0 ? a.shape()[ia] : -1, sb = ib >= 0 ? b.shape()[ib] : -1;
        if (sa >= 0 && sb >= 0 && sa != sb)
          fail("einsum", "label '", l, "' has size ", sa, " in operand 0 ", to_string(a.shape()), " but ", sb,
               " in operand 1 ", to_string(b.shape()), " (only a size of 1 broadcasts)");
        return sa >= 0 ? sa : sb;
      };
      index_t nbatch = 1, m = 1, n = 1, k = 1;
      for (int i = 0; i < cl.nb; ++i) nbatch *= size_of(cl.batch[i]);
      for (int i = 0; i < cl.na; ++i) m *= size_of(cl.fa[i]);
      for (int i = 0; i < cl.nf; ++i) n *= size_of(cl.fb[i]);
      for (int i = 0; i < cl.nc; ++i) k *= size_of(cl.con[i]);
      // a → [batch, free a, contracted] as [nbatch, m, k]; b → [batch, contracted, free b] as [nbatch, k, n]
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
}

}  // namespace ft::inline FT_ABI
