// Structure ops: joining and splitting (cat, stack, hstack, vstack, split, chunk, unbind,
// meshgrid), rearranging (flip, roll, repeat, tile, pad, pixel_shuffle, pixel_unshuffle,
// interpolate "nearest"), triangles and diagonals (tril, triu, diagonal, diag, trace, eye).
//
// Each is an expression (expr/remap.hpp, or a where over a generated mask), so it fuses into
// the statement that reads it: `ft::relu(ft::cat({a, b}, 1) * w)` is one launch. Their
// gradients are expressions too: the inverse remapping for the one-to-one ops (flip, roll,
// pixel_shuffle, diagonal, constant pad), a fixed-order sum over the output elements that read
// an input element for the others (repeat, reflect/replicate/circular pad, interpolate),
// so they are deterministic without atomics. cat and stack of Vars are one tape node (a
// boundary): the number of parts is only known at run time.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/factories.hpp"
#include "ft/expr/generator.hpp"
#include "ft/expr/remap.hpp"
#include "ft/ops/elementwise.hpp"
#include "ft/ops/reduction.hpp"

namespace ft::inline FT_ABI {

// ---- maps that are not separable by dimension ----

// roll without dims: the flattened tensor rolled by `shift` ∈ [0, n), same shape.
template <int R>
struct RollFlatMap {
  static constexpr int in_rank = R, out_rank = R;
  static constexpr const char* name = "roll";
  Array<index_t, R> shape;
  index_t n, shift;
  template <class I>
  FT_HD FT_INLINE bool operator()(const Array<I, R>& out, Array<I, R>& in) const {
    I lin = 0;
    for (int d = 0; d < R; ++d) lin = lin * static_cast<I>(shape[d]) + out[d];
    lin -= static_cast<I>(shift);
    lin += lin < 0 ? static_cast<I>(n) : I(0);
    for (int d = R - 1; d >= 0; --d) {
      in[d] = lin % static_cast<I>(shape[d]);
      lin /= static_cast<I>(shape[d]);
    }
    return true;
  }
  RollFlatMap inverse() const { return {shape, n, shift == 0 ? 0 : n - shift}; }
};

template <int R>
struct PixelUnshuffleMap;

// pixel_shuffle: out [..., C, H·r, W·r] reads in [..., C·r², H, W].
template <int R>
struct PixelShuffleMap {
  static constexpr int in_rank = R, out_rank = R;
  static constexpr const char* name = "pixel_shuffle";
  index_t r;
  template <class I>
  FT_HD FT_INLINE bool operator()(const Array<I, R>& out, Array<I, R>& in) const {
    const I f = static_cast<I>(r);
    for (int d = 0; d < R - 3; ++d) in[d] = out[d];
    const I h = out[R - 2], w = out[R - 1];
    in[R - 3] = out[R - 3] * f * f + (h % f) * f + w % f;
    in[R - 2] = h / f;
    in[R - 1] = w / f;
    return true;
  }
  PixelUnshuffleMap<R> inverse() const { return {r}; }
};

// pixel_unshuffle: out [..., C·r², H, W] reads in [..., C, H·r, W·r].
template <int R>
struct PixelUnshuffleMap {
  static constexpr int in_rank = R, out_rank = R;
  static constexpr const char* name = "pixel_unshuffle";
  index_t r;
  template <class I>
  FT_HD FT_INLINE bool operator()(const Array<I, R>& out, Array<I, R>& in) const {
    const I f = static_cast<I>(r), c = out[R - 3];
    for (int d = 0; d < R - 3; ++d) in[d] = out[d];
    in[R - 3] = c / (f * f);
    in[R - 2] = out[R - 2] * f + (c / f) % f;
    in[R - 1] = out[R - 1] * f + c % f;
    return true;
  }
  PixelShuffleMap<R> inverse() const { return {r}; }
};

template <int R>
struct DiagEmbedMap;

// diagonal(offset, d1, d2): out has the other dims in order, then the diagonal (rank R − 1).
template <int R>
struct DiagonalMap {
  static constexpr int in_rank = R, out_rank = R - 1;
  static constexpr const char* name = "diagonal";
  int d1, d2;
  index_t offset;
  template <class I>
  FT_HD FT_INLINE bool operator()(const Array<I, R - 1>& out, Array<I, R>& in) const {
    for (int d = 0, j = 0; d < R; ++d)
      if (d != d1 && d != d2) in[d] = out[j++];
    const I t = out[R - 2];
    in[d1] = t + (offset < 0 ? static_cast<I>(-offset) : I(0));
    in[d2] = t + (offset > 0 ? static_cast<I>(offset) : I(0));
    return true;
  }
  DiagEmbedMap<R> inverse() const { return {d1, d2, offset}; }
};

// The adjoint of diagonal (and diag of a vector): the diagonal's elements placed on it, the
// fill value elsewhere (rank R from rank R − 1).
template <int R>
struct DiagEmbedMap {
  static constexpr int in_rank = R - 1, out_rank = R;
  static constexpr const char* name = "diag_embed";
  int d1, d2;
  index_t offset;
  template <class I>
  FT_HD FT_INLINE bool operator()(const Array<I, R>& out, Array<I, R - 1>& in) const {
    if (out[d2] - out[d1] != static_cast<I>(offset)) return false;
    for (int d = 0, j = 0; d < R; ++d)
      if (d != d1 && d != d2) in[j++] = out[d];
    in[R - 2] = offset >= 0 ? out[d1] : out[d2];
    return true;
  }
  DiagonalMap<R> inverse() const { return {d1, d2, offset}; }
};

namespace detail {
template <class E, class M, int RO = M::out_rank>
auto remap(const E& e, const M& m, const Shape<RO>& shape, typename E::value_type fill = {}) {
  return Remap<E, M>(e, m, shape, fill);
}

// The separable map that reads every dimension as it is, and the shape it gives.
template <int R>
SeparableMap<R> identity_map(const Shape<R>& s) {
  SeparableMap<R> m{};
  for (int d = 0; d < R; ++d) m.axes[d] = AxisMap{AxisKind::keep, s[d], s[d], 0};
  m.out_shape = s;
  return m;
}

template <int R, std::size_t N>
std::array<int, N> wrap_dims(const int (&dims)[N], const char* op) {
  std::array<int, N> r{};
  for (std::size_t i = 0; i < N; ++i) {
    r[i] = wrap_dim(dims[i], R, op);
    for (std::size_t j = 0; j < i; ++j)
      if (r[j] == r[i]) fail(op, "dim ", r[i], " appears more than once");
  }
  return r;
}
}  // namespace detail

// ---- rearranging ----

// torch.flip(x, dims): the order of the elements reversed along each of `dims`.
template <Expression E, std::size_t N>
auto flip(const E& e, const int (&dims)[N]) {
  constexpr int R = E::rank;
  auto m = detail::identity_map(e.shape());
  for (int d : detail::wrap_dims<R>(dims, "flip")) m.axes[d].kind = AxisKind::flip;
  return detail::remap(e, m, e.shape());
}

// torch.roll(x, shifts, dims): elements shifted along each dim, wrapping around.
template <Expression E, std::size_t N>
auto roll(const E& e, const index_t (&shifts)[N], const int (&dims)[N]) {
  constexpr int R = E::rank;
  auto m = detail::identity_map(e.shape());
  const auto ds = detail::wrap_dims<R>(dims, "roll");
  for (std::size_t i = 0; i < N; ++i) {
    const index_t n = e.shape()[ds[i]];
    if (n == 0) continue;
    m.axes[ds[i]].kind = AxisKind::roll;
    m.axes[ds[i]].a = ((shifts[i] % n) + n) % n;
  }
  return detail::remap(e, m, e.shape());
}
template <Expression E>
auto roll(const E& e, index_t shift, int dim) {
  const index_t shifts[1] = {shift};
  const int dims[1] = {dim};
  return roll(e, shifts, dims);
}
// torch.roll(x, shift) without dims: the flattened elements shifted, the shape kept.
template <Expression E>
auto roll(const E& e, index_t shift) {
  constexpr int R = E::rank;
  const index_t n = e.shape().numel();
  RollFlatMap<R> m{e.shape(), n, n == 0 ? 0 : ((shift % n) + n) % n};
  return detail::remap(e, m, e.shape());
}

// torch.Tensor.repeat(*sizes): the tensor tiled sizes[d] times along each dim; sizes may have
// more entries than x has dims (new leading dims).
template <Expression E, std::size_t N>
auto repeat(const E& e, const index_t (&sizes)[N]) {
  constexpr int R = E::rank, RO = static_cast<int>(N);
  static_assert(RO >= R, "ft::repeat: give at least as many repeats as the input has dims (torch's rule)");
  SeparableMap<R, RO> m{};
  Shape<RO> out;
  for (int d = 0; d < RO; ++d) {
    check(sizes[d] >= 0, "repeat", "repeats must be non-negative, got ", sizes[d], " at dim ", d);
    const index_t n = d < RO - R ? 1 : e.shape()[d - (RO - R)];
    out[d] = n * sizes[d];
  }
  for (int d = 0; d < R; ++d) {
    const index_t n = e.shape()[d];
    m.axes[d] = AxisMap{AxisKind::wrap, n, out[RO - R + d], 0};
  }
  m.out_shape = out;
  return detail::remap(e, m, out);
}

// torch.tile(x, dims): repeat, with dims padded by leading 1s when x has more dims.
template <Expression E, std::size_t N>
auto tile(const E& e, const index_t (&dims)[N]) {
  constexpr int R = E::rank, RO = static_cast<int>(N) > R ? static_cast<int>(N) : R;
  index_t full[RO];
  for (int d = 0; d < RO; ++d) full[d] = d < RO - static_cast<int>(N) ? 1 : dims[d - (RO - static_cast<int>(N))];
  return repeat(e, full);
}

// How pad fills the new elements (torch.nn.functional.pad's mode).
enum class PadMode { constant, reflect, replicate, circular };

inline PadMode pad_mode(std::string_view mode) {
  if (mode == "constant") return PadMode::constant;
  if (mode == "reflect") return PadMode::reflect;
  if (mode == "replicate") return PadMode::replicate;
  if (mode == "circular") return PadMode::circular;
  fail("pad", "mode must be 'constant', 'reflect', 'replicate' or 'circular', got '", mode, "'");
}

// torch.nn.functional.pad(x, pad, mode, value): pad = (before, after) of the last dim, then of
// the one before it, …; negative amounts crop (constant mode).
template <Expression E>
auto pad(const E& e, std::initializer_list<index_t> amounts, PadMode mode = PadMode::constant, double value = 0.0) {
  constexpr int R = E::rank;
  const std::vector<index_t> p(amounts);
  check(p.size() % 2 == 0 && static_cast<int>(p.size()) / 2 <= R, "pad", "the padding of ", to_string(e.shape()),
        " needs pairs (before, after) for at most ", R, " dims, got ", p.size(), " numbers");
  auto m = detail::identity_map(e.shape());
  Shape<R> out = e.shape();
  for (std::size_t k = 0; k < p.size() / 2; ++k) {
    const int d = R - 1 - static_cast<int>(k);
    const index_t n = e.shape()[d], before = p[2 * k], after = p[2 * k + 1];
    out[d] = n + before + after;
    check(out[d] >= 0, "pad", "padding (", before, ", ", after, ") of dim ", d, " of ", to_string(e.shape()),
          " leaves a negative size");
    if (mode != PadMode::constant) {
      check(before >= 0 && after >= 0, "pad", "negative padding needs mode 'constant'");
      check(n > 0, "pad", "cannot pad an empty dim ", d, " of ", to_string(e.shape()), " in a non-constant mode");
    }
    if (mode == PadMode::reflect)
      check(before < n && after < n, "pad", "reflect padding (", before, ", ", after, ") of dim ", d,
            " must be less than its size ", n);
    if (mode == PadMode::circular)
      check(before <= n && after <= n, "pad", "circular padding (", before, ", ", after, ") of dim ", d,
            " must be at most its size ", n);
    const AxisKind kinds[] = {AxisKind::pad_constant, AxisKind::pad_reflect, AxisKind::pad_replicate,
                              AxisKind::pad_circular};
    m.axes[d] = AxisMap{kinds[static_cast<int>(mode)], n, out[d], before};
  }
  m.out_shape = out;
  return detail::remap(e, m, out, static_cast<typename E::value_type>(value));
}
template <Expression E>
auto pad(const E& e, std::initializer_list<index_t> amounts, std::string_view mode, double value = 0.0) {
  return pad(e, amounts, pad_mode(mode), value);
}

// torch.nn.functional.pixel_shuffle(x, r): [..., C·r², H, W] → [..., C, H·r, W·r].
template <Expression E>
auto pixel_shuffle(const E& e, index_t r) {
  constexpr int R = E::rank;
  static_assert(R >= 3, "ft::pixel_shuffle: the input needs at least 3 dims (C, H, W)");
  Shape<R> out = e.shape();
  check(r > 0 && e.shape()[R - 3] % (r * r) == 0, "pixel_shuffle", "the channels of ", to_string(e.shape()),
        " must be divisible by upscale_factor² = ", r * r);
  out[R - 3] /= r * r;
  out[R - 2] *= r;
  out[R - 1] *= r;
  return detail::remap(e, PixelShuffleMap<R>{r}, out);
}
// torch.nn.functional.pixel_unshuffle(x, r): [..., C, H·r, W·r] → [..., C·r², H, W].
template <Expression E>
auto pixel_unshuffle(const E& e, index_t r) {
  constexpr int R = E::rank;
  static_assert(R >= 3, "ft::pixel_unshuffle: the input needs at least 3 dims (C, H, W)");
  Shape<R> out = e.shape();
  check(r > 0 && e.shape()[R - 2] % r == 0 && e.shape()[R - 1] % r == 0, "pixel_unshuffle", "the height and width of ",
        to_string(e.shape()), " must be divisible by downscale_factor ", r);
  out[R - 3] *= r * r;
  out[R - 2] /= r;
  out[R - 1] /= r;
  return detail::remap(e, PixelUnshuffleMap<R>{r}, out);
}

namespace detail {
// The resampling of the dims after [N, C] to `size`; `scale` (when given) is PyTorch's
// scale_factor, whose inverse then gives the source positions.
template <Expression E, std::size_t N>
auto resample(const E& e, const index_t (&size)[N], const double* scale, std::string_view mode, bool align_corners,
              bool antialias) {
  constexpr int R = E::rank;
  static_assert(static_cast<int>(N) + 2 == R, "ft::interpolate: give one size or scale per spatial dim (after N, C)");
  ResampleKind kind = ResampleKind::linear;
  if (mode == "nearest")
    kind = ResampleKind::nearest;
  else if (mode == "nearest-exact")
    kind = ResampleKind::nearest_exact;
  else if (mode == "bicubic" && N == 2)
    kind = ResampleKind::cubic;
  else
    check((mode == "linear" && N == 1) || (mode == "bilinear" && N == 2) || (mode == "trilinear" && N == 3),
          "interpolate", "mode '", mode, "' does not fit an input of rank ", R,
          " (nearest, nearest-exact; linear for 3-D, bilinear or bicubic for 4-D, trilinear for 5-D input)");
  check(kind == ResampleKind::linear || kind == ResampleKind::cubic || !align_corners, "interpolate",
        "align_corners only applies to the linear and cubic modes");
  if (antialias) {
    check(N == 2 && (kind == ResampleKind::linear || kind == ResampleKind::cubic), "interpolate",
          "antialias is only supported for the bilinear and bicubic modes (4-D input), got mode '", mode, "' on ",
          to_string(e.shape()));
    kind = kind == ResampleKind::linear ? ResampleKind::linear_aa : ResampleKind::cubic_aa;
  }
  Array<ResampleAxis, R> axes{};
  Shape<R> out = e.shape();
  for (int d = 0; d < R; ++d) axes[d] = ResampleAxis{ResampleKind::keep, false, e.shape()[d], e.shape()[d], 1.0};
  for (int k = 0; k < static_cast<int>(N); ++k) {
    const int d = k + 2;
    const index_t n = e.shape()[d];
    check(size[k] > 0 && n > 0, "interpolate", "sizes must be positive: ", to_string(e.shape()), " to ", size[k],
          " at dim ", d);
    out[d] = size[k];
    double sc = scale ? 1.0 / scale[k] : static_cast<double>(n) / static_cast<double>(size[k]);
    if (align_corners) sc = size[k] > 1 ? static_cast<double>(n - 1) / static_cast<double>(size[k] - 1) : 0.0;
    axes[d] = ResampleAxis{kind, align_corners, n, size[k], sc};
  }
  return Resample<E>(e, axes, out);
}
}  // namespace detail

namespace detail {
// One resampled dim's taps as a table: output o reads `count[o]` inputs idx[o·K + k] with weights
// w[o·K + k] (K: the most taps of any output).
template <class C>
struct ResampleTable {
  index_t K = 1;
  std::vector<index_t> count, idx;
  std::vector<C> w;
};
template <class C>
ResampleTable<C> resample_table(const ResampleAxis& a) {
  ResampleTable<C> t;
  const index_t n = a.out_n;
  std::vector<ResampleAxis::Window<index_t>> windows;
  if (a.antialiased()) {
    windows.resize(static_cast<std::size_t>(n));
    for (index_t o = 0; o < n; ++o) {
      windows[static_cast<std::size_t>(o)] = a.window(o);
      t.K = std::max(t.K, windows[static_cast<std::size_t>(o)].count);
    }
  } else {
    t.K = ResampleAxis::kMaxTaps;
  }
  t.count.assign(static_cast<std::size_t>(n), 0);
  t.idx.assign(static_cast<std::size_t>(n * t.K), 0);
  t.w.assign(static_cast<std::size_t>(n * t.K), C(0));
  for (index_t o = 0; o < n; ++o) {
    index_t* idx = t.idx.data() + o * t.K;
    C* w = t.w.data() + o * t.K;
    if (a.antialiased()) {
      const auto& win = windows[static_cast<std::size_t>(o)];
      t.count[static_cast<std::size_t>(o)] = win.count;
      for (index_t k = 0; k < win.count; ++k) {
        idx[k] = win.first + k;
        w[k] = static_cast<C>(a.aa_raw(win.first + k, win.center) * win.inv_total);
      }
    } else {
      index_t at[ResampleAxis::kMaxTaps];
      double wt[ResampleAxis::kMaxTaps];
      const int c = a.taps(o, at, wt);
      t.count[static_cast<std::size_t>(o)] = c;
      for (int k = 0; k < c; ++k) idx[k] = at[k], w[k] = static_cast<C>(wt[k]);
    }
  }
  return t;
}
// One pass: x [outer, n, inner] (contiguous) resampled along its middle dim into y [outer, out_n,
// inner]. The rows of y in parallel; along the middle dim an output row is a weighted sum of
// input rows (vectorised over inner), along the last (inner 1) a short dot product.
template <class C>
void resample_pass(const C* x, C* y, index_t outer, index_t n, index_t inner, const ResampleTable<C>& t) {
  const index_t out_n = static_cast<index_t>(t.count.size()), rows = outer * out_n;
  const index_t* counts = t.count.data();
  const index_t* idx = t.idx.data();
  const C* w = t.w.data();
  const index_t K = t.K;
#pragma omp parallel for schedule(static) if (rows * inner * K > exec::cpu::kParallelGrain)
  for (index_t r = 0; r < rows; ++r) {
    const index_t b = r / out_n, o = r - b * out_n, c = counts[o];
    const index_t* at = idx + o * K;
    const C* wt = w + o * K;
    const C* src = x + b * n * inner;
    C* dst = y + r * inner;
    if (inner == 1) {
      C acc = 0;
      for (index_t k = 0; k < c; ++k) acc += wt[k] * src[at[k]];
      dst[0] = acc;
    } else {
      const C* s0 = src + at[0] * inner;
      for (index_t j = 0; j < inner; ++j) dst[j] = wt[0] * s0[j];
      for (index_t k = 1; k < c; ++k) {
        const C* sk = src + at[k] * inner;
        const C wk = wt[k];
        for (index_t j = 0; j < inner; ++j) dst[j] += wk * sk[j];
      }
    }
  }
}
// The transposed pass: g [outer, out_n, inner] spread back into y [outer, n, inner] (zeros
// first): input row i gets Σ w · g over the outputs that read it. Units of (outer, a block of
// inner) in parallel: each writes its own part of y.
template <class C>
void resample_pass_transposed(const C* g, C* y, index_t outer, index_t n, index_t inner, const ResampleTable<C>& t) {
  const index_t out_n = static_cast<index_t>(t.count.size()), K = t.K;
  const index_t block = inner == 1 ? 1 : 512, blocks = (inner + block - 1) / block, units = outer * blocks;
#pragma omp parallel for schedule(static) if (outer * out_n * inner * K > exec::cpu::kParallelGrain)
  for (index_t u = 0; u < units; ++u) {
    const index_t b = u / blocks, j0 = (u - b * blocks) * block, j1 = std::min(inner, j0 + block);
    const C* gb = g + b * out_n * inner;
    C* yb = y + b * n * inner;
    for (index_t o = 0; o < out_n; ++o) {
      const index_t* at = t.idx.data() + o * K;
      const C* wt = t.w.data() + o * K;
      const C* go = gb + o * inner;
      for (index_t k = 0; k < t.count[static_cast<std::size_t>(o)]; ++k) {
        C* yi = yb + at[k] * inner;
        const C wk = wt[k];
        for (index_t j = j0; j < j1; ++j) yi[j] += wk * go[j];
      }
    }
  }
}

// A pass along dim d of `s`: the extents before it and after it.
template <int R>
std::pair<index_t, index_t> outer_inner(const Shape<R>& s, int d) {
  index_t outer = 1, inner = 1;
  for (int k = 0; k < d; ++k) outer *= s[k];
  for (int k = d + 1; k < R; ++k) inner *= s[k];
  return {outer, inner};
}

// The resampled dims in the order of the dim-by-dim passes, and how many; 0 when a fused
// per-element pass does less work (the dims' taps do not multiply to more than 1.5× their sum).
template <int R>
int separable_order(const Array<ResampleAxis, R>& ax, int (&order)[R > 0 ? R : 1]) {
  double product = 1, sum = 0;
  int m = 0;
  for (int d = 0; d < R; ++d) {
    if (ax[d].kind == ResampleKind::keep) continue;
    order[m++] = d;
    const double taps = ax[d].antialiased()                  ? 2 * ax[d].aa_support() + 1
                        : ax[d].kind == ResampleKind::cubic  ? 4.0
                        : ax[d].kind == ResampleKind::linear ? 2.0
                                                             : 1.0;
    product *= taps;
    sum += taps;
  }
  if (m < 2 || product <= 1.5 * sum) return 0;
  // the shrinking dims first (the later passes have less to read), among them the last dim
  // last (its pass is a dot product an output, the others' are vectorised over the rows)
  auto rank_of = [&](int d) {
    const double ratio = static_cast<double>(ax[d].out_n) / static_cast<double>(ax[d].n);
    return std::tuple(ratio >= 1, ratio < 1 && d == R - 1, ratio);
  };
  std::stable_sort(order, order + m, [&](int a, int b) { return rank_of(a) < rank_of(b); });
  return m;
}
}  // namespace detail

template <class E>
template <class T>
bool Resample<E>::separable_backward(const Tensor<T, rank>& g) const {
  constexpr int R = rank;
  constexpr bool floating = std::is_same_v<T, float> || std::is_same_v<T, double>;
  if constexpr (floating && ft::detail::is_var<E>::value && std::is_same_v<typename E::value_type, T>) {
    const Array<ResampleAxis, R>& ax = axes();
    int order[R > 0 ? R : 1];
    const int m = g.device().is_cpu() && g.numel() > 0 ? detail::separable_order<R>(ax, order) : 0;
    if (m == 0) return false;
    if (!input().requires_grad()) return true;
    Tensor<T, R> cur = g.is_contiguous() ? g : g.contiguous();
    for (int p = m - 1; p >= 0; --p) {  // the forward's passes, transposed, in reverse
      const int d = order[p];
      Shape<R> s = cur.shape();
      const auto [outer, inner] = detail::outer_inner(s, d);
      s[d] = ax[d].n;
      Tensor<T, R> next = zeros<T>(s, kCPU);
      stats::detail::record_launch(kCPU);
      detail::resample_pass_transposed(cur.data(), next.data(), outer, ax[d].n, inner,
                                       detail::resample_table<T>(ax[d]));
      cur = next;
    }
    input().state().accumulate(cur);
    return true;
  }
  return false;
}

template <class E>
template <class T>
void Resample<E>::materialize_into(const Tensor<T, rank>& dst) const {
  constexpr int R = rank;
  const Array<ResampleAxis, R>& ax = axes();
  constexpr bool floating = std::is_same_v<T, float> || std::is_same_v<T, double>;
  if constexpr (floating && std::is_same_v<typename E::value_type, T>) {
    int order[R > 0 ? R : 1];
    const int m = dst.device().is_cpu() && dst.numel() > 0 ? detail::separable_order<R>(ax, order) : 0;
    if (m > 0) {
      // the input's values, contiguous: a tensor's or a Var's own (copied only when strided), an
      // expression evaluated once (one launch)
      auto contiguous = [](const Tensor<T, R>& t) { return t.is_contiguous() ? t : t.contiguous(); };
      Tensor<T, R> cur;
      if constexpr (std::is_same_v<E, Tensor<T, R>>) {
        cur = contiguous(input());
      } else if constexpr (ft::detail::is_var<E>::value) {
        cur = contiguous(input().value());
      } else {
        cur = Tensor<T, R>(input().shape(), kCPU);
        cur = input();
      }
      for (int p = 0; p < m; ++p) {
        const int d = order[p];
        Shape<R> s = cur.shape();
        const auto [outer, inner] = detail::outer_inner(s, d);
        s[d] = ax[d].out_n;
        Tensor<T, R> next = p + 1 == m ? dst : Tensor<T, R>(s, kCPU);
        stats::detail::record_launch(kCPU);
        detail::resample_pass(cur.data(), next.data(), outer, ax[d].n, inner, detail::resample_table<T>(ax[d]));
        cur = next;
      }
      return;
    }
  }
  exec::run(dst, *this, exec::leaves_of(*this));  // every output from its taps, in one pass
}

// torch.nn.functional.interpolate(x, size, mode, align_corners, antialias) over the dims after
// [N, C]: mode "nearest" (⌊o · in/out⌋, in float as PyTorch), "nearest-exact", "linear" (3-D
// input), "bilinear" or "bicubic" (4-D; bicubic: Keys' a = −0.75 over 4×4 inputs, clamped at the
// borders, as PyTorch), "trilinear" (5-D). antialias (bilinear, bicubic): a shrinking dim is
// low-pass filtered, each output reading a window of about 2 · scale (bilinear) or 4 · scale
// (bicubic) inputs, as PyTorch and PIL. An expression; its gradient is the fixed-order sum over
// the outputs that read each input element.
template <Expression E, std::size_t N>
auto interpolate(const E& e, const index_t (&size)[N], std::string_view mode = "nearest", bool align_corners = false,
                 bool antialias = false) {
  return detail::resample(e, size, nullptr, mode, align_corners, antialias);
}
// With scale_factor: output size ⌊in · scale⌋, source positions from 1 / scale as PyTorch does.
template <Expression E, std::floating_point S, std::size_t N>
auto interpolate(const E& e, const S (&scale_factor)[N], std::string_view mode = "nearest", bool align_corners = false,
                 bool antialias = false) {
  index_t size[N];
  double scale[N];
  for (int k = 0; k < static_cast<int>(N); ++k) {
    check(scale_factor[k] > 0, "interpolate", "scale factors must be positive, got ", scale_factor[k]);
    scale[k] = static_cast<double>(scale_factor[k]);
    size[k] = static_cast<index_t>(std::floor(static_cast<double>(e.shape()[k + 2]) * scale[k]));
  }
  return detail::resample(e, size, scale, mode, align_corners, antialias);
}

// ---- triangles and diagonals ----
namespace gen {
// The mask of torch.tril (lower) / torch.triu over [rows, cols]: j − i ≤ k, or ≥ k.
struct Triangle {
  index_t cols, k;
  bool lower;
  FT_HD FT_INLINE bool operator()(index_t lin) const {
    const index_t i = lin / cols, j = lin - i * cols;
    return lower ? j - i <= k : j - i >= k;
  }
};
// 1 on the main diagonal of [rows, cols].
template <class T>
struct Eye {
  index_t cols;
  FT_HD FT_INLINE T operator()(index_t lin) const {
    const index_t q = lin / (cols + 1);  // element (q, q) when lin = q·(cols + 1) and q < cols
    return lin == q * (cols + 1) && q < cols ? T(1) : T(0);
  }
};
}  // namespace gen

namespace detail {
template <Expression E>
auto triangle(const E& e, index_t k, bool lower, const char* op) {
  constexpr int R = E::rank;
  static_assert(R >= 2, "ft::tril / ft::triu: the input needs at least 2 dims");
  (void)op;
  const index_t rows = e.shape()[R - 2], cols = e.shape()[R - 1];
  Generator<gen::Triangle, 2> mask({cols > 0 ? cols : 1, k, lower}, Shape<2>{rows, cols},
                                   detail::device_of(e).value_or(kCPU));
  return where(mask, e, typename E::value_type(0));
}
}  // namespace detail

// torch.tril(x, diagonal): the elements on and below the k-th diagonal of the last two dims.
template <Expression E>
auto tril(const E& e, index_t diagonal = 0) {
  return detail::triangle(e, diagonal, true, "tril");
}
// torch.triu(x, diagonal): the elements on and above the k-th diagonal of the last two dims.
template <Expression E>
auto triu(const E& e, index_t diagonal = 0) {
  return detail::triangle(e, diagonal, false, "triu");
}

// torch.eye(n, m): the identity matrix (rows n, cols m = n by default).
template <class T = float>
Tensor<T, 2> eye(index_t n, std::optional<index_t> m = std::nullopt, Device device = kCPU) {
  const index_t cols = m.value_or(n);
  check(n >= 0 && cols >= 0, "eye", "sizes must be non-negative, got ", n, " x ", cols);
  Tensor<T, 2> out(Shape<2>{n, cols}, device);
  if (out.numel() > 0) detail::assign(out, Generator<gen::Eye<T>, 2>({cols}, Shape<2>{n, cols}, device), "eye");
  return out;
}

// torch.diagonal(x, offset, dim1, dim2): the diagonal as the last dim of the result, the other
// dims kept in order. An expression (torch's is a view; write through ft::diag_embed-free code).
template <Expression E>
auto diagonal(const E& e, index_t offset = 0, int dim1 = 0, int dim2 = 1) {
  constexpr int R = E::rank;
  static_assert(R >= 2, "ft::diagonal: the input needs at least 2 dims");
  const int d1 = wrap_dim(dim1, R, "diagonal"), d2 = wrap_dim(dim2, R, "diagonal");
  check(d1 != d2, "diagonal", "dim1 and dim2 must differ, both are ", d1);
  Shape<R - 1> out;
  for (int d = 0, j = 0; d < R; ++d)
    if (d != d1 && d != d2) out[j++] = e.shape()[d];
  const index_t n1 = e.shape()[d1] - (offset < 0 ? -offset : 0), n2 = e.shape()[d2] - (offset > 0 ? offset : 0);
  out[R - 2] = std::max<index_t>(0, std::min(n1, n2));
  return detail::remap(e, DiagonalMap<R>{d1, d2, offset}, out);
}

// torch.diag(x, diagonal): of a vector, the square matrix with it on the k-th diagonal; of a
// matrix, its k-th diagonal.
template <Expression E>
auto diag(const E& e, index_t k = 0) {
  static_assert(E::rank == 1 || E::rank == 2, "ft::diag: the input must be a vector or a matrix");
  if constexpr (E::rank == 1) {
    const index_t n = e.shape()[0] + (k < 0 ? -k : k);
    return detail::remap(e, DiagEmbedMap<2>{0, 1, k}, Shape<2>{n, n});
  } else {
    return diagonal(e, k);
  }
}

// torch.trace(x): the sum of a matrix's main diagonal (a reduction: fuses as sum does).
template <Expression E>
auto trace(const E& e) {
  static_assert(E::rank == 2, "ft::trace: the input must be a matrix");
  return sum(diagonal(e));
}

// ---- joining ----
namespace detail {
template <class E>
Shape<E::rank> cat_shape(const std::vector<E>& parts, int dim, const char* op) {
  constexpr int R = E::rank;
  check(!parts.empty(), op, "expects a non-empty list of tensors");
  Shape<R> s = parts[0].shape();
  index_t total = 0;
  const auto dev = device_of(parts[0]);
  for (std::size_t p = 0; p < parts.size(); ++p) {
    const auto& q = parts[p].shape();
    for (int d = 0; d < R; ++d)
      if (d != dim && q[d] != s[d])
        fail(op, "sizes of tensors must match except in dim ", dim, ": part 0 is ", to_string(s), ", part ", p, " is ",
             to_string(q));
    if (auto dp = device_of(parts[p]); dp && dev && !(*dp == *dev))
      fail(op, "all parts must be on one device: part 0 on ", *dev, ", part ", p, " on ", *dp);
    total += q[dim];
  }
  s[dim] = total;
  return s;
}
}  // namespace detail

template <class E>
template <class T>
void CatList<E>::write_into(const Tensor<T, rank>& dst) const {
  index_t at = 0;
  for (std::size_t first = 0; first < parts_.size(); first += kCatFused) {
    const std::size_t last = std::min(parts_.size(), first + kCatFused);
    std::vector<E> group(parts_.begin() + static_cast<std::ptrdiff_t>(first),
                         parts_.begin() + static_cast<std::ptrdiff_t>(last));
    const Shape<rank> s = detail::cat_shape(group, dim_, "cat");
    detail::assign(dst.slice(dim_, at, at + s[dim_]), CatList<E>(std::move(group), dim_, s, device_), "cat");
    at += s[dim_];
  }
}
template <class E>
const Tensor<typename CatList<E>::value_type, CatList<E>::rank>& CatList<E>::joined() const {
  return detail::temporary<Tensor<value_type, rank>>(id_, "cat", [&] {
    Tensor<value_type, rank> t(shape_, device());
    write_into(t);
    return t;
  });
}

namespace detail {
// The Var of a cat's value `out`: with its tape node when a part needs a gradient.
template <class T, int R>
Var<T, R> cat_var_node(const std::vector<Var<T, R>>& parts, int dim, Tensor<T, R> out) {
  if (!autograd::is_grad_enabled() ||
      std::none_of(parts.begin(), parts.end(), [](const auto& p) { return p.requires_grad(); }))
    return Var<T, R>(std::move(out));
  std::vector<std::shared_ptr<autograd::VarState>> in;
  std::vector<const StorageImpl*> saved;
  for (const auto& p : parts) {
    if (p.requires_grad()) in.push_back(p.state_ptr());
    saved.push_back(p.value().storage().get());
  }
  auto bwd = [parts, dim](const Tensor<T, R>& g) {
    index_t at = 0;
    for (const auto& p : parts) {
      const index_t n = p.shape()[dim];
      autograd::accumulate(p, g.slice(dim, at, at + n));
      at += n;
    }
  };
  auto node =
      std::make_shared<autograd::FunctionNode<T, R, decltype(bwd)>>("cat", std::move(bwd), std::move(in), saved);
  return Var<T, R>::from_node(std::move(out), std::move(node));
}
// cat of Vars: the joined value, and a backward that hands each part its slice of the gradient.
template <class T, int R>
Var<T, R> cat_vars(const std::vector<Var<T, R>>& parts, int dim) {
  std::vector<Tensor<T, R>> values;
  values.reserve(parts.size());
  for (const auto& p : parts) values.push_back(p.value());
  const Shape<R> s = cat_shape(values, dim, "cat");
  Tensor<T, R> out(s, values[0].device());
  CatList<Tensor<T, R>>(values, dim, s, values[0].device()).write_into(out);
  Var<T, R> result = cat_var_node(parts, dim, std::move(out));
  autograd::trace::when_traced([&](autograd::trace::Sink& sink) {
    std::vector<std::string> in;
    for (const auto& p : parts) in.push_back(autograd::trace::name(sink, p));
    autograd::trace::boundary(sink, "Concat", in, result, {autograd::trace::Attribute::integer("axis", dim)});
  });
  return result;
}
}  // namespace detail

// torch.cat(parts, dim): the parts joined along dim (their other sizes equal). Parts that are
// tensors or expressions give an expression read in the consumer's kernel (up to kCatFused = 8
// parts; more are first joined into a temporary); Var parts give a Var (one tape node).
template <Expression E>
auto cat(const std::vector<E>& parts, int dim = 0) {
  constexpr int R = E::rank;
  static_assert(R > 0, "ft::cat: zero-dimensional tensors cannot be concatenated");
  check(!parts.empty(), "cat", "expects a non-empty list of tensors");
  dim = wrap_dim(dim, R, "cat");
  if constexpr (ft::detail::has_var_v<E>) {
    using T = typename E::value_type;
    std::vector<Var<T, R>> vars;
    for (const auto& p : parts) vars.push_back(autograd::to_var(p));
    return detail::cat_vars(vars, dim);
  } else {
    const Shape<R> s = detail::cat_shape(parts, dim, "cat");
    return CatList<E>(parts, dim, s, detail::device_of(parts[0]));
  }
}
template <Expression E>
auto cat(std::initializer_list<E> parts, int dim = 0) {
  return cat(std::vector<E>(parts), dim);
}

// torch.stack(parts, dim): the parts (of one shape) joined along a new dim.
template <Expression E>
auto stack(const std::vector<E>& parts, int dim = 0) {
  constexpr int R = E::rank;
  check(!parts.empty(), "stack", "expects a non-empty list of tensors");
  dim = wrap_dim(dim, R + 1, "stack");
  for (std::size_t p = 1; p < parts.size(); ++p)
    check(parts[p].shape() == parts[0].shape(), "stack", "expects each tensor to be equal size, but got ",
          to_string(parts[0].shape()), " at entry 0 and ", to_string(parts[p].shape()), " at entry ", p);
  if constexpr (ft::detail::is_var<E>::value || std::is_same_v<E, Tensor<typename E::value_type, R>>) {
    std::vector<std::decay_t<decltype(parts[0].unsqueeze(dim))>> up;  // views (a Var's records a node)
    for (const auto& p : parts) up.push_back(p.unsqueeze(dim));
    return cat(up, dim);
  } else {
    std::vector<Unsqueeze<E>> up;
    for (const auto& p : parts) up.push_back(Unsqueeze<E>(p, dim));
    return cat(up, dim);
  }
}
template <Expression E>
auto stack(std::initializer_list<E> parts, int dim = 0) {
  return stack(std::vector<E>(parts), dim);
}

// torch.hstack: cat along dim 1 (dim 0 for vectors).
template <Expression E>
auto hstack(const std::vector<E>& parts) {
  return cat(parts, E::rank == 1 ? 0 : 1);
}
// torch.vstack: vectors stacked as rows; higher ranks joined along dim 0.
template <Expression E>
auto vstack(const std::vector<E>& parts) {
  if constexpr (E::rank == 1)
    return stack(parts, 0);
  else
    return cat(parts, 0);
}

// ---- splitting: views of a Tensor, slices of a Var ----
namespace detail {
template <class X>
concept Sliceable = requires(const X& x) {
  x.slice(0, 0, 1);
};

// x as something slices and reshapes can be taken of: itself (a tensor or a Var), else evaluated
// (a Var when it reads one: one launch).
template <Expression X>
auto sliceable(const X& x) {
  if constexpr (Sliceable<X>)
    return x;
  else if constexpr (has_var_v<X>)
    return autograd::to_var(x);
  else
    return Tensor<typename X::value_type, X::rank>(x);
}
}  // namespace detail

// torch.split(x, split_size, dim): pieces of split_size along dim (the last may be smaller).
template <detail::Sliceable X>
std::vector<X> split(const X& x, index_t split_size, int dim = 0) {
  dim = wrap_dim(dim, X::rank, "split");
  check(split_size > 0 || (split_size == 0 && x.shape()[dim] == 0), "split", "split_size must be positive, got ",
        split_size);
  std::vector<X> out;
  const index_t n = x.shape()[dim];
  for (index_t at = 0; at < n; at += split_size) out.push_back(x.slice(dim, at, std::min(n, at + split_size)));
  if (n == 0) out.push_back(x);
  return out;
}
// torch.split(x, sizes, dim): pieces of the given sizes, which must add up to the dim's size.
template <detail::Sliceable X>
std::vector<X> split(const X& x, const std::vector<index_t>& sizes, int dim = 0) {
  dim = wrap_dim(dim, X::rank, "split");
  index_t total = 0;
  for (index_t s : sizes) {
    check(s >= 0, "split", "sizes must be non-negative, got ", s);
    total += s;
  }
  check(total == x.shape()[dim], "split", "sizes add up to ", total, " but dim ", dim, " of ", to_string(x.shape()),
        " has ", x.shape()[dim]);
  std::vector<X> out;
  index_t at = 0;
  for (index_t s : sizes) {
    out.push_back(x.slice(dim, at, at + s));
    at += s;
  }
  return out;
}
// torch.chunk(x, chunks, dim): pieces of ⌈size / chunks⌉ (so possibly fewer than chunks).
template <detail::Sliceable X>
std::vector<X> chunk(const X& x, index_t chunks, int dim = 0) {
  check(chunks > 0, "chunk", "chunks must be positive, got ", chunks);
  dim = wrap_dim(dim, X::rank, "chunk");
  const index_t n = x.shape()[dim];
  return split(x, n == 0 ? index_t(0) : (n + chunks - 1) / chunks, dim);
}
// torch.unbind(x, dim): the slices along dim, that dim removed.
template <detail::Sliceable X>
auto unbind(const X& x, int dim = 0) {
  dim = wrap_dim(dim, X::rank, "unbind");
  std::vector<std::decay_t<decltype(x.select(dim, 0))>> out;
  for (index_t i = 0; i < x.shape()[dim]; ++i) out.push_back(x.select(dim, i));
  return out;
}

// torch.meshgrid(a, b, …, indexing = "ij"): vectors expanded into one grid each (views).
template <detail::Sliceable... X>
auto meshgrid(const X&... xs) {
  constexpr int R = static_cast<int>(sizeof...(X));
  static_assert(((X::rank == 1) && ...), "ft::meshgrid: every input must be a vector");
  index_t sizes[R] = {xs.shape()[0]...};
  int k = 0;
  auto grid = [&](const auto& x) {
    index_t shape[R];
    for (int d = 0; d < R; ++d) shape[d] = d == k ? sizes[d] : 1;
    ++k;
    return x.reshape(shape).expand(sizes);
  };
  return std::tuple{grid(xs)...};
}

}  // namespace ft::inline FT_ABI

// ---- adjoints ----
namespace ft::inline FT_ABI::autograd {

template <class E>
struct Adjoint<Resample<E>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Resample<E>& n, const G& g, F&& f, Cont&& k) {
    return backprop(n.operand(), ResampleGrad<G>(g, n.axes(), n.operand().shape()), f, k);
  }
};

template <class E, class M>
struct Adjoint<Remap<E, M>> {
  template <class G, class F, class Cont>
  static decltype(auto) apply(const Remap<E, M>& n, const G& g, F&& f, Cont&& k) {
    const auto& in = n.operand();
    if constexpr (requires { n.map().inverse(); })
      return backprop(in, Remap<G, decltype(n.map().inverse())>(g, n.map().inverse(), in.shape()), f, k);
    else
      return backprop(in, PreimageSum<G, M::in_rank, M::out_rank>(g, n.map(), in.shape()), f, k);
  }
};

}  // namespace ft::inline FT_ABI::autograd
