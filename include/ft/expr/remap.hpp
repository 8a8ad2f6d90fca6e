// Nodes that read their operand at other coordinates, so that structure ops fuse into the
// statement that consumes them (ops/structure.hpp: flip, roll, repeat, pad, pixel_shuffle,
// diagonal, interpolate, cat …):
//   Remap<E, M>        element `out` of the result is E at M(out), or a fill value where M says
//                      none (constant padding, an off-diagonal element);
//   PreimageSum<G, M>  the adjoint of a separable Remap: element `in` is the sum of G over every
//                      output coordinate that reads `in` (repeat, reflect padding …), in a fixed
//                      order, so the gradient is deterministic without atomics;
//   Resample<E>        linear interpolation along some dimensions (and ResampleGrad, its adjoint);
//   CatList<E>         parts of one type joined along a dimension.
// Their leaves are reported as `remapped`: the executor then never reads them by the output's
// linear index and never writes a statement in place over a tensor it reads this way.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/math.hpp"
#include "ft/expr/temporaries.hpp"

namespace ft::inline FT_ABI {

template <class Op, class A>
class Unary;
template <class Op, class A, class B>
class Binary;
template <class C, class A, class B>
class Where;

namespace detail {
// The context an operand of a remapping node is evaluated in: no linear index is shared with
// the statement's output, so every reader below uses coordinates.
inline EvalContext remapped_context() {
  EvalContext c;
  c.numel = -1;
  return c;
}

// This node's coordinates from the statement's index: the last R coordinates, 0 along a
// dimension of size 1 (the node broadcast there); from the linear index when the statement is
// dense (never, as the leaves are remapped, but the dense kernels are compiled too).
template <int R, class I, int OR, bool D>
FT_HD FT_INLINE Array<I, R> node_coords(const Index<I, OR, D>& ix, const Array<index_t, R>& shape) {
  Array<I, R> c{};
  if constexpr (D) {
    I rest = ix.linear;
    for (int d = R - 1; d >= 0; --d) {
      c[d] = rest % static_cast<I>(shape[d]);
      rest /= static_cast<I>(shape[d]);
    }
  } else {
    for (int d = 0; d < R; ++d) c[d] = shape[d] == 1 ? I(0) : ix.coord[OR - R + d];
  }
  return c;
}

// N consecutive elements by their linear indices (the dense kernels' vector load; a remapping
// node is never read densely, but those kernels are compiled too).
template <int N, class T, int R, class Ev, class I>
FT_HD FT_INLINE Vec<T, N> load_by_index(const Ev& ev, I i) {
  Vec<T, N> r;
  for (int k = 0; k < N; ++k) r.v[k] = ev(Index<I, R, true>{static_cast<I>(i + k)});
  return r;
}

template <class F>
void for_each_remapped_leaf(const auto& e, F& f) {
  e.for_each_leaf([&](const LeafInfo& l) {
    LeafInfo r = l;
    r.remapped = true;
    f(r);
  });
}
}  // namespace detail

// What the one-operand remapping nodes share: the operand (read at other coordinates, so its
// leaves are reported remapped), the parameters P their evaluator carries, and the shape.
template <class E, class P, int R>
class RemapNode {
 public:
  RemapNode(E e, const P& params, const Shape<R>& shape) : e_(std::move(e)), params_(params), shape_(shape) {}
  const Shape<R>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return detail::device_of(e_); }
  Device device() const { return device_opt().value_or(kCPU); }
  template <class F>
  void for_each_leaf(F&& f) const {
    detail::for_each_remapped_leaf(e_, f);
  }
  const E& operand() const { return e_; }
  const P& params() const { return params_; }

 protected:
  auto operand_eval() const { return e_.evaluator(detail::remapped_context()); }

 private:
  E e_;
  P params_;
  Shape<R> shape_;
};

// ---- Remap ----
// M: a trivially copyable map with `in_rank`, `out_rank`, `name`, and
//   template <class I> FT_HD bool operator()(const Array<I, out_rank>& out, Array<I, in_rank>& in) const;
// (false: the element is the fill value).
template <class E, class M>
class Remap : public RemapNode<E, M, M::out_rank> {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  using map_type = M;
  static constexpr int rank = M::out_rank;
  static_assert(M::in_rank == E::rank, "ft: a remapping's input rank differs from its operand's");

  Remap(E e, M m, const Shape<rank>& shape, value_type fill = value_type{})
      : RemapNode<E, M, rank>(std::move(e), m, shape), fill_(fill) {}

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    M m;
    Array<index_t, rank> shape;
    compute_type fill;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      const Array<I, rank> out = detail::node_coords<rank>(ix, shape);
      CoordIndex<I, E::rank> in{};
      if (!m(out, in.coord)) return fill;
      return e(in);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, rank>(*this, i);
    }
  };

  Eval evaluator(const EvalContext&) const { return {this->operand_eval(), this->params(), this->shape(), fill_}; }
  const M& map() const { return this->params(); }
  const M& op() const { return this->params(); }
  value_type fill() const { return fill_; }
  static constexpr const char* op_name() { return M::name; }

 private:
  value_type fill_;
};

// ---- separable maps: each input dimension read from one output dimension ----
// A run of output positions: first, first + step, … (count of them).
template <class I>
struct Run {
  I first, count, step;
};

enum class AxisKind : std::uint8_t {
  keep,           // in = out
  flip,           // in = n − 1 − out
  roll,           // in = (out − shift) mod n
  wrap,           // in = out mod n (repeat, tile)
  pad_constant,   // in = out − before, the fill value outside [0, n) (negative before crops)
  pad_reflect,    // mirrored at the edges, the edge not repeated
  pad_replicate,  // the edge repeated
  pad_circular,   // wrapped around
};

// How one input dimension (of size n) is read from its output dimension (of size out_n).
struct AxisMap {
  AxisKind kind = AxisKind::keep;
  index_t n = 1, out_n = 1;
  index_t a = 0;  // roll: shift in [0, n); pad: elements before

  template <class I>
  FT_HD FT_INLINE bool forward(I o, I& i) const {
    const I N = static_cast<I>(n);
    switch (kind) {
      case AxisKind::keep:
        i = o;
        return true;
      case AxisKind::flip:
        i = N - 1 - o;
        return true;
      case AxisKind::roll:
        i = o - static_cast<I>(a);
        i += i < 0 ? N : I(0);
        return true;
      case AxisKind::wrap:
        i = o % N;
        return true;
      case AxisKind::pad_constant:
        i = o - static_cast<I>(a);
        return i >= 0 && i < N;
      case AxisKind::pad_reflect:
        i = o - static_cast<I>(a);
        i = i < 0 ? -i : (i >= N ? 2 * (N - 1) - i : i);
        return true;
      case AxisKind::pad_replicate:
        i = o - static_cast<I>(a);
        i = i < 0 ? I(0) : (i >= N ? N - 1 : i);
        return true;
      case AxisKind::pad_circular:
        i = o - static_cast<I>(a);
        i = i < 0 ? i + N : (i >= N ? i - N : i);
        return true;
    }
    return false;
  }

  // The output positions that read input position i, as at most three runs in increasing order.
  template <class I>
  FT_HD FT_INLINE int preimages(I i, Run<I> (&runs)[3]) const {
    const I N = static_cast<I>(n), M = static_cast<I>(out_n), before = static_cast<I>(a);
    int k = 0;
    auto point = [&](I o) {
      if (o >= 0 && o < M) runs[k++] = {o, 1, 1};
    };
    switch (kind) {
      case AxisKind::keep:
        point(i);
        break;
      case AxisKind::flip:
        point(N - 1 - i);
        break;
      case AxisKind::roll:
        point(i + before >= N ? i + before - N : i + before);
        break;
      case AxisKind::wrap:
        if (i < M) runs[k++] = {i, (M - i + N - 1) / N, N};
        break;
      case AxisKind::pad_constant:
        point(i + before);
        break;
      case AxisKind::pad_reflect:  // left mirror (before − i), the element, right mirror
        if (i >= 1) point(before - i);
        point(i + before);
        if (i <= N - 2) point(before + 2 * (N - 1) - i);
        break;
      case AxisKind::pad_replicate: {
        I lo = i == 0 ? I(0) : i + before, hi = i == N - 1 ? M : i + before + 1;
        lo = lo < 0 ? I(0) : lo;
        hi = hi > M ? M : hi;
        if (lo < hi) runs[k++] = {lo, hi - lo, 1};
        break;
      }
      case AxisKind::pad_circular:  // the left pad's copy, the element, the right pad's copy
        point(i + before - N);
        point(i + before);
        point(i + before + N);
        break;
    }
    return k;
  }
};

// RO − RI new leading output dimensions (repeat's), then one AxisMap per input dimension.
template <int RI, int RO = RI>
struct SeparableMap {
  static constexpr int in_rank = RI, out_rank = RO, lead = RO - RI;
  static_assert(RO >= RI);
  static constexpr const char* name = "remap";
  Array<AxisMap, RI> axes;
  Array<index_t, RO> out_shape;

  template <class I>
  FT_HD FT_INLINE bool operator()(const Array<I, RO>& out, Array<I, RI>& in) const {
    bool ok = true;
    for (int d = 0; d < RI; ++d) ok = axes[d].forward(out[lead + d], in[d]) && ok;
    return ok;
  }
};

// ---- PreimageSum: the adjoint of a separable remapping ----
template <class G, int RI, int RO>
class PreimageSum : public RemapNode<G, SeparableMap<RI, RO>, RI> {
 public:
  using value_type = typename G::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = RI;
  static_assert(G::rank == RO, "ft: a remapping's gradient has the remapping's rank");

  PreimageSum(G g, const SeparableMap<RI, RO>& m, const Shape<RI>& in_shape)
      : RemapNode<G, SeparableMap<RI, RO>, RI>(std::move(g), m, in_shape) {}

  struct Eval {
    decltype(std::declval<const G&>().evaluator(EvalContext{})) g;
    SeparableMap<RI, RO> m;
    Array<index_t, RI> shape;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      const Array<I, RI> in = detail::node_coords<RI>(ix, shape);
      constexpr int L = RO - RI;
      Run<I> runs[RO > 0 ? RO : 1][3];
      int count[RO > 0 ? RO : 1];
      for (int d = 0; d < L; ++d) {
        runs[d][0] = {0, static_cast<I>(m.out_shape[d]), 1};
        count[d] = 1;
      }
      for (int d = 0; d < RI; ++d) {
        count[L + d] = m.axes[d].preimages(in[d], runs[L + d]);
        if (count[L + d] == 0) return compute_type(0);
      }
      // every combination of one position a dimension, the last dimension fastest
      int r[RO > 0 ? RO : 1] = {};
      I k[RO > 0 ? RO : 1] = {};
      CoordIndex<I, RO> out{};
      compute_type acc = 0;
      while (true) {
        for (int d = 0; d < RO; ++d) out.coord[d] = runs[d][r[d]].first + k[d] * runs[d][r[d]].step;
        acc += static_cast<compute_type>(g(out));
        int d = RO - 1;
        for (; d >= 0; --d) {
          if (++k[d] < runs[d][r[d]].count) break;
          k[d] = 0;
          if (++r[d] < count[d]) break;
          r[d] = 0;
        }
        if (d < 0) break;
      }
      return acc;
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, RI>(*this, i);
    }
  };

  Eval evaluator(const EvalContext&) const { return {this->operand_eval(), this->params(), this->shape()}; }
};

// ---- resampling (interpolate: nearest, nearest-exact, linear, bilinear, trilinear, bicubic) ----
enum class ResampleKind : std::uint8_t { keep, nearest, nearest_exact, linear, cubic, linear_aa, cubic_aa };

// One dimension of a resampling: output o reads up to four inputs (taps), each with a weight:
// one (keep, nearest) with weight 1; two (linear) i0 and i1 with 1 − λ and λ; four (cubic)
// ⌊s⌋ − 1 … ⌊s⌋ + 2, clamped to the dim, with Keys' cubic convolution weights (a = −0.75) of
// s − ⌊s⌋. The source positions s follow PyTorch's nearest_idx and
// area_pixel_compute_source_index (nearest in float, linear and cubic in double; cubic not
// clamped at 0). The antialiased kinds (PyTorch's _upsample_bilinear2d_aa / _bicubic2d_aa, as
// PIL) read a window instead: the inputs within `support` of the centre scale · (o + ½), where
// support is the filter's (1: triangle; 2: Keys' cubic with a = −0.5) times the scale when it
// shrinks, each weighted by the filter at its distance (scaled down likewise), the weights
// normalised to sum to 1 (so the borders need no clamp). Windows may hold any number of inputs.
struct ResampleAxis {
  static constexpr int kMaxTaps = 4;
  ResampleKind kind = ResampleKind::keep;
  bool align_corners = false;
  index_t n = 1, out_n = 1;
  double scale = 1;  // input elements per output element (align_corners: (n − 1) / (out_n − 1))

  FT_HD FT_INLINE bool antialiased() const { return kind == ResampleKind::linear_aa || kind == ResampleKind::cubic_aa; }

  // i0: the first input output o reads (cubic: ⌊s⌋, before the clamp; non-decreasing in o),
  // i1 the second (linear), λ the fraction.
  template <class I>
  FT_HD FT_INLINE void source(I o, I& i0, I& i1, double& lambda) const {
    lambda = 0;
    const I last = static_cast<I>(n) - 1;
    switch (kind) {
      case ResampleKind::keep:
      case ResampleKind::linear_aa:
      case ResampleKind::cubic_aa:  // windows: see window()
        i0 = i1 = o;
        return;
      case ResampleKind::nearest:
      case ResampleKind::nearest_exact: {
        const float f = static_cast<float>(scale);
        const float x = kind == ResampleKind::nearest ? static_cast<float>(o) * f : (static_cast<float>(o) + 0.5f) * f;
        i0 = static_cast<I>(math::floor(x));
        i0 = i0 < last ? i0 : last;
        i1 = i0;
        return;
      }
      case ResampleKind::linear:
      case ResampleKind::cubic: {
        double src = align_corners ? scale * static_cast<double>(o) : scale * (static_cast<double>(o) + 0.5) - 0.5;
        if (kind == ResampleKind::cubic) {
          const double f = math::floor(src);
          i0 = i1 = static_cast<I>(f);
          lambda = src - f;
          return;
        }
        if (src < 0) src = 0;
        i0 = static_cast<I>(src);
        i0 = i0 < last ? i0 : last;
        i1 = i0 < last ? i0 + 1 : i0;
        lambda = src - static_cast<double>(i0);
        lambda = lambda < 1 ? lambda : 1;
        return;
      }
    }
  }
  // Keys' cubic convolution kernel (PyTorch's get_cubic_upsample_coefficients: a = −0.75; its
  // antialiased filter: a = −0.5) at distance x: |x| ≤ 1, and 1 < |x| < 2.
  static constexpr double kCubicA = -0.75, kCubicAaA = -0.5;
  FT_HD FT_INLINE static double cubic_near(double x, double a = kCubicA) { return ((a + 2) * x - (a + 3)) * x * x + 1; }
  FT_HD FT_INLINE static double cubic_far(double x, double a = kCubicA) {
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  }
  // The inputs output o reads and their weights; returns how many (not for the antialiased kinds).
  template <class I>
  FT_HD FT_INLINE int taps(I o, I (&at)[kMaxTaps], double (&w)[kMaxTaps]) const {
    I i0 = 0, i1 = 0;
    double l = 0;
    source(o, i0, i1, l);
    at[0] = i0;
    w[0] = 1;
    if (kind == ResampleKind::linear) {
      at[1] = i1;
      w[0] = 1 - l;
      w[1] = l;
      return 2;
    }
    if (kind != ResampleKind::cubic) return 1;
    w[0] = cubic_far(l + 1);
    w[1] = cubic_near(l);
    w[2] = cubic_near(1 - l);
    w[3] = cubic_far(2 - l);
    const I last = static_cast<I>(n) - 1;
    for (int k = 0; k < 4; ++k) {
      const I i = i0 - 1 + k;
      at[k] = i < 0 ? 0 : i > last ? last : i;
    }
    return 4;
  }

  // An antialiased kind's window of output o: inputs [first, first + count), the centre, and
  // 1 / (the sum of the filter over the window) (PyTorch's _compute_weights_aa).
  template <class I>
  struct Window {
    I first = 0, count = 0;
    double center = 0, inv_total = 0;
  };
  FT_HD FT_INLINE double aa_support() const {
    const double half = kind == ResampleKind::cubic_aa ? 2.0 : 1.0;
    return scale >= 1 ? half * scale : half;
  }
  FT_HD FT_INLINE double aa_filter(double x) const {  // at distance x (already scaled)
    x = x < 0 ? -x : x;
    if (kind == ResampleKind::linear_aa) return x < 1 ? 1 - x : 0.0;
    return x < 1 ? cubic_near(x, kCubicAaA) : x < 2 ? cubic_far(x, kCubicAaA) : 0.0;
  }
  // The filter's unnormalised weight of input i for a window centred at `center`.
  template <class I>
  FT_HD FT_INLINE double aa_raw(I i, double center) const {
    const double invscale = scale >= 1 ? 1 / scale : 1.0;
    return aa_filter((static_cast<double>(i) - center + 0.5) * invscale);
  }
  template <class I>
  FT_HD FT_INLINE Window<I> window(I o) const {
    Window<I> w;
    w.center = scale * (static_cast<double>(o) + 0.5);
    const double support = aa_support();
    const I lo = static_cast<I>(w.center - support + 0.5), hi = static_cast<I>(w.center + support + 0.5);
    w.first = lo > 0 ? lo : I(0);
    w.count = (hi < static_cast<I>(n) ? hi : static_cast<I>(n)) - w.first;
    double total = 0;
    for (I j = 0; j < w.count; ++j) total += aa_raw(w.first + j, w.center);
    w.inv_total = total != 0 ? 1 / total : 1.0;
    return w;
  }

  // The weight with which output o reads input i (0 when it does not; the sum of its taps that
  // a clamp put on i).
  template <class I>
  FT_HD FT_INLINE double weight(I o, I i) const {
    if (antialiased()) {
      const Window<I> w = window(o);
      return i >= w.first && i < w.first + w.count ? aa_raw(i, w.center) * w.inv_total : 0.0;
    }
    I at[kMaxTaps];
    double w[kMaxTaps];
    const int count = taps(o, at, w);
    double sum = 0;
    for (int k = 0; k < count; ++k) sum += at[k] == i ? w[k] : 0.0;
    return sum;
  }
  // The outputs [lo, hi) that read input i: i0 is non-decreasing in o, and an output reads i
  // when i0 is i (or i − 1, linear; i − 2 … i + 1, cubic, and any i0 that the clamp puts on
  // the first or last input). A window's first and end are non-decreasing in o too.
  template <class I>
  FT_HD FT_INLINE void readers(I i, I& lo, I& hi) const {
    if (kind == ResampleKind::keep) {
      lo = i;
      hi = i + 1;
      return;
    }
    if (antialiased()) {
      lo = first_at_least(i + 1, true);   // the first window ending after i
      hi = first_at_least(i + 1, false);  // the first window starting after i
      return;
    }
    if (kind == ResampleKind::cubic) {
      lo = i == 0 ? I(0) : first_at_least(i - 2);
      hi = i == static_cast<I>(n) - 1 ? static_cast<I>(out_n) : first_at_least(i + 2);
      return;
    }
    lo = first_at_least(kind == ResampleKind::linear ? i - 1 : i);
    hi = first_at_least(i + 1);
  }
  // The first o with i0(o) ≥ v (a window's: its end when `end`, else its first), by bisection.
  template <class I>
  FT_HD FT_INLINE I first_at_least(I v, bool end = false) const {
    I a = 0, b = static_cast<I>(out_n);
    while (a < b) {
      const I mid = a + (b - a) / 2;
      I i0 = 0;
      if (antialiased()) {
        const double center = scale * (static_cast<double>(mid) + 0.5), support = aa_support();
        if (end) {
          const I e = static_cast<I>(center + support + 0.5);
          i0 = e < static_cast<I>(n) ? e : static_cast<I>(n);
        } else {
          const I f = static_cast<I>(center - support + 0.5);
          i0 = f > 0 ? f : I(0);
        }
      } else {
        I i1 = 0;
        double l = 0;
        source(mid, i0, i1, l);
      }
      if (i0 >= v)
        b = mid;
      else
        a = mid + 1;
    }
    return a;
  }
};

template <class E>
class Resample : public RemapNode<E, Array<ResampleAxis, E::rank>, E::rank> {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = E::rank;

  Resample(E e, const Array<ResampleAxis, rank>& axes, const Shape<rank>& shape)
      : RemapNode<E, Array<ResampleAxis, E::rank>, E::rank>(std::move(e), axes, shape) {}

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    Array<ResampleAxis, rank> axes;
    Array<index_t, rank> shape;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      constexpr int RN = rank > 0 ? rank : 1;
      constexpr int K = ResampleAxis::kMaxTaps;
      const Array<I, rank> out = detail::node_coords<rank>(ix, shape);
      I at[RN][K];
      double w[RN][K];
      ResampleAxis::Window<I> win[RN];
      I count[RN], k[RN];
      for (int d = 0; d < rank; ++d) {
        if (axes[d].antialiased()) {
          win[d] = axes[d].window(out[d]);
          count[d] = win[d].count;
        } else {
          count[d] = axes[d].taps(out[d], at[d], w[d]);
        }
        k[d] = 0;
        if (count[d] == 0) return compute_type(0);
      }
      // every combination of the dims' taps, the last dim's fastest
      double acc = 0;
      while (true) {
        CoordIndex<I, rank> c{};
        double weight = 1;
        for (int d = 0; d < rank; ++d) {
          if (axes[d].antialiased()) {
            c.coord[d] = win[d].first + k[d];
            weight *= axes[d].aa_raw(c.coord[d], win[d].center) * win[d].inv_total;
          } else {
            c.coord[d] = at[d][k[d]];
            weight *= w[d][k[d]];
          }
        }
        acc += weight * static_cast<double>(e(c));
        int d = rank - 1;
        for (; d >= 0; --d) {
          if (++k[d] < count[d]) break;
          k[d] = 0;
        }
        if (d < 0) break;
      }
      return static_cast<compute_type>(acc);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, rank>(*this, i);
    }
  };

  Eval evaluator(const EvalContext&) const { return {this->operand_eval(), this->params(), this->shape()}; }
  const Array<ResampleAxis, rank>& axes() const { return this->params(); }
  static constexpr const char* op_name() { return "interpolate"; }
  // A statement that is only a resampling is written straight into its destination (the
  // boundary hook of detail::assign): on the CPU, when the taps of the dims multiply to more
  // work than they add (bicubic, antialiased), dim by dim (separable, as PyTorch); else as above.
  // Defined in ops/structure.hpp.
  const E& input() const { return this->operand(); }
  template <class T>
  void materialize_into(const Tensor<T, rank>& dst) const;
  // The backward of a statement that is only a resampling of a Var, dim by dim as above (the
  // transposed passes) where that pays, accumulated into the Var's gradient; false: not taken
  // (the statement's fused backward runs instead). Defined in ops/structure.hpp.
  template <class T>
  bool separable_backward(const Tensor<T, rank>& g) const;
};

// The adjoint of Resample: input element i gets Σ over the outputs that read it of weight · g,
// in a fixed order.
template <class G>
class ResampleGrad : public RemapNode<G, Array<ResampleAxis, G::rank>, G::rank> {
 public:
  using value_type = typename G::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = G::rank;

  ResampleGrad(G g, const Array<ResampleAxis, rank>& axes, const Shape<rank>& in_shape)
      : RemapNode<G, Array<ResampleAxis, G::rank>, G::rank>(std::move(g), axes, in_shape) {}

  struct Eval {
    decltype(std::declval<const G&>().evaluator(EvalContext{})) g;
    Array<ResampleAxis, rank> axes;
    Array<index_t, rank> shape;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      constexpr int RN = rank > 0 ? rank : 1;
      constexpr int kCached = 16;  // readers a dim whose weights are computed once, not per combination
      const Array<I, rank> in = detail::node_coords<rank>(ix, shape);
      I lo[RN], hi[RN];
      double cache[RN][kCached];
      bool cached[RN];
      for (int d = 0; d < rank; ++d) {
        axes[d].readers(in[d], lo[d], hi[d]);
        if (lo[d] >= hi[d]) return compute_type(0);
        cached[d] = axes[d].kind != ResampleKind::keep && hi[d] - lo[d] <= kCached;
        if (cached[d])
          for (I o = lo[d]; o < hi[d]; ++o) cache[d][o - lo[d]] = axes[d].weight(o, in[d]);
      }
      CoordIndex<I, rank> out{};
      for (int d = 0; d < rank; ++d) out.coord[d] = lo[d];
      double acc = 0;
      while (true) {
        double w = 1;
        for (int d = 0; d < rank; ++d)
          if (cached[d])
            w *= cache[d][out.coord[d] - lo[d]];
          else if (axes[d].kind != ResampleKind::keep)
            w *= axes[d].weight(out.coord[d], in[d]);
        if (w != 0) acc += w * static_cast<double>(g(out));
        int d = rank - 1;
        for (; d >= 0; --d) {
          if (++out.coord[d] < hi[d]) break;
          out.coord[d] = lo[d];
        }
        if (d < 0) break;
      }
      return static_cast<compute_type>(acc);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, rank>(*this, i);
    }
  };

  Eval evaluator(const EvalContext&) const { return {this->operand_eval(), this->params(), this->shape()}; }
};

// ---- CatList: parts of one expression type joined along `dim` ----
// Up to kCatFused parts are read in the consumer's kernel; more are first written into one
// temporary (ceil(n / kCatFused) launches) and read from it. On the CPU a statement whose only
// cat node sits under elementwise nodes alone runs a part at a time (detail::cat_parts below,
// exec/cpu.hpp: each_cat_part), so the node reads its part without a search and the loop
// vectorises.

template <class E>
class CatList {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = E::rank;
  using part_eval = decltype(std::declval<const E&>().evaluator(EvalContext{}));

  CatList(std::vector<E> parts, int dim, const Shape<rank>& shape, std::optional<Device> device)
      : parts_(std::move(parts)), dim_(dim), shape_(shape), device_(device) {}

  struct Eval {
    Array<part_eval, kCatFused> parts;
    Array<index_t, kCatFused + 1> start;  // part p holds [start[p], start[p + 1]) along dim
    int n;                                // parts read here; 0: read `joined` instead
    int dim;
    Array<index_t, rank> shape;
    TensorReader<value_type, rank> joined;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      CoordIndex<I, rank> at{};
      at.coord = detail::node_coords<rank>(ix, shape);
      if (n == 0) return joined(at);
      const I x = at.coord[dim];
      int p = 0;
      while (p + 1 < n && x >= static_cast<I>(start[p + 1])) ++p;
      at.coord[dim] = x - static_cast<I>(start[p]);
      for (int q = 0; q + 1 < kCatFused; ++q)  // constant indices (unrolled): the parts stay in parameter space
        if (q == p) return parts[q](at);
      return parts[kCatFused - 1](at);
    }
    // The CPU kernel that runs part ix.part (a runtime index into the parts: on the host only,
    // marked FT_HD only because the elementwise nodes above it are)
    template <class I, int OR>
    FT_HD FT_INLINE compute_type operator()(const PartIndex<I, OR>& ix) const {
      const Array<I, rank> c = detail::node_coords<rank>(static_cast<const Index<I, OR, false>&>(ix), shape);
      const I s = static_cast<I>(start[ix.part]);
      CoordIndex<I, rank> at{};
      for (int d = 0; d < rank; ++d) at.coord[d] = d == dim ? c[d] - s : c[d];
      return parts[ix.part](at);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return detail::load_by_index<N, compute_type, rank>(*this, i);
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  int dim() const { return dim_; }
  // Where this node splits its consumer's output, when its parts are read in the kernel.
  CatSplit split() const {
    CatSplit s;
    s.found = fused();
    s.from_end = rank - dim_;
    s.n = s.found ? static_cast<int>(parts_.size()) : 0;
    for (int p = 0; p < s.n; ++p) s.start[p + 1] = s.start[p] + parts_[p].shape()[dim_];
    return s;
  }
  const std::vector<E>& parts() const { return parts_; }

  // Writes the parts into `dst` (this shape): one launch each kCatFused parts.
  template <class T>
  void write_into(const Tensor<T, rank>& dst) const;

  Eval evaluator(const EvalContext&) const {
    Eval ev{};
    ev.dim = dim_;
    ev.shape = shape_;
    if (fused()) {
      const CatSplit s = split();
      ev.n = s.n;
      for (int p = 0; p <= s.n; ++p) ev.start[p] = s.start[p];
      for (int p = 0; p < s.n; ++p) ev.parts[p] = parts_[p].evaluator(detail::remapped_context());
    } else {
      ev.n = 0;
      ev.joined = joined().evaluator(detail::remapped_context());
    }
    return ev;
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    if (fused())
      for (const E& p : parts_) detail::for_each_remapped_leaf(p, f);
    else
      detail::for_each_remapped_leaf(joined(), f);
  }
  // True when the consumer's kernel reads the parts itself (at most kCatFused of them).
  bool fused() const { return !parts_.empty() && parts_.size() <= static_cast<std::size_t>(kCatFused); }

 private:
  // More than kCatFused parts: the joined tensor, made once a statement (a temporary).
  const Tensor<value_type, rank>& joined() const;

  std::vector<E> parts_;
  int dim_;
  Shape<rank> shape_;
  std::optional<Device> device_;
  std::uint64_t id_ = detail::next_node_id();
};

namespace detail {
// Whether a statement's CPU kernel may run its cat node a part at a time: `count` cat nodes,
// each reached through elementwise nodes alone (`ok`), which pass the output's index down
// unchanged. Any other node (a remapping, a reduction …) makes `ok` false.
template <class E>
struct cat_parts {
  static constexpr int count = 0;
  static constexpr bool ok = false;
};
template <class T, int R>
struct cat_parts<Tensor<T, R>> {
  static constexpr int count = 0;
  static constexpr bool ok = true;
};
template <class T>
struct cat_parts<Scalar<T>> : cat_parts<Tensor<T, 0>> {};
template <class Op, class A>
struct cat_parts<Unary<Op, A>> : cat_parts<A> {};
template <class Op, class A, class B>
struct cat_parts<Binary<Op, A, B>> {
  static constexpr int count = cat_parts<A>::count + cat_parts<B>::count;
  static constexpr bool ok = cat_parts<A>::ok && cat_parts<B>::ok;
};
template <class C, class A, class B>
struct cat_parts<Where<C, A, B>> {
  static constexpr int count = cat_parts<C>::count + cat_parts<A>::count + cat_parts<B>::count;
  static constexpr bool ok = cat_parts<C>::ok && cat_parts<A>::ok && cat_parts<B>::ok;
};
template <class E>
struct cat_parts<CatList<E>> {
  static constexpr int count = 1;
  static constexpr bool ok = true;
};

// The split of the cat node found under the elementwise nodes of a statement (cat_parts).
// (Declared first: the calls inside find each other by ordinary lookup, not ADL.)
template <class E>
void find_cat(const E&, CatSplit&) {}
template <class Op, class A>
void find_cat(const Unary<Op, A>& e, CatSplit& s);
template <class Op, class A, class B>
void find_cat(const Binary<Op, A, B>& e, CatSplit& s);
template <class C, class A, class B>
void find_cat(const Where<C, A, B>& e, CatSplit& s);
template <class E>
void find_cat(const CatList<E>& e, CatSplit& s);
template <class Op, class A>
void find_cat(const Unary<Op, A>& e, CatSplit& s) {
  find_cat(e.operand(), s);
}
template <class Op, class A, class B>
void find_cat(const Binary<Op, A, B>& e, CatSplit& s) {
  find_cat(e.lhs(), s);
  find_cat(e.rhs(), s);
}
template <class C, class A, class B>
void find_cat(const Where<C, A, B>& e, CatSplit& s) {
  find_cat(e.condition(), s);
  find_cat(e.lhs(), s);
  find_cat(e.rhs(), s);
}
template <class E>
void find_cat(const CatList<E>& e, CatSplit& s) {
  s = e.split();
}

template <class E, class M>
inline constexpr bool is_expression_node_v<Remap<E, M>> = true;
template <class E, class M>
struct has_var<Remap<E, M>> : has_var<E> {};
template <class G, int RI, int RO>
inline constexpr bool is_expression_node_v<PreimageSum<G, RI, RO>> = true;
template <class G, int RI, int RO>
struct has_var<PreimageSum<G, RI, RO>> : has_var<G> {};
template <class E>
inline constexpr bool is_expression_node_v<Resample<E>> = true;
template <class E>
struct has_var<Resample<E>> : has_var<E> {};
template <class G>
inline constexpr bool is_expression_node_v<ResampleGrad<G>> = true;
template <class G>
struct has_var<ResampleGrad<G>> : has_var<G> {};
template <class E>
inline constexpr bool is_expression_node_v<CatList<E>> = true;
template <class E>
struct has_var<CatList<E>> : has_var<E> {};
}  // namespace detail

}  // namespace ft::inline FT_ABI
