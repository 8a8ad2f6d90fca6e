// Max, average, adaptive average and adaptive max pooling over NCHW tensors (torch.nn.functional's semantics)
// and their backward passes. Each call is one launch: one OpenMP loop on the CPU or one kernel
// on a GPU, running the same per-element body. The backward passes are gathers: every input
// element sums the gradients of the windows that read it, in a fixed order — deterministic,
// no atomics.
//
// The file ends with the pooling ops on Vars: one tape node each, whose backward is the gather.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/fast_divmod.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/nchw.hpp"
#include "ft/ops/common.hpp"

namespace ft::inline FT_ABI {

// max_pool2d_with_indices' result: the pooled values and, for each, the flat index h·W + w of
// its maximum in its input plane (PyTorch's return_indices), which max_pool2d_backward reads.
template <class T>
struct MaxPool2dResult {
  Tensor<T, 4> output;
  Tensor<std::int64_t, 4> indices;
};

namespace linalg::detail {

// Sizes and window of one pooling, checked once; the per-element bodies read them from here.
struct PoolGeometry {
  index_t n, c, h, w;  // input
  index_t oh, ow;      // output
  Pair kernel, stride, padding, dilation;

  Shape<4> in_shape() const { return {n, c, h, w}; }
  Shape<4> out_shape() const { return {n, c, oh, ow}; }
};

// torch's pooling_output_shape: floor((in + 2p − d(k−1) − 1 [+ s − 1 in ceil mode]) / s) + 1,
// and in ceil mode the last window must start inside the input or its left padding.
inline index_t pool_out_size(index_t in, index_t k, index_t s, index_t p, index_t d, bool ceil_mode) {
  const index_t span = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  index_t out = (span >= 0 ? span / s : -((-span + s - 1) / s)) + 1;  // floor division
  if (ceil_mode && out > 0 && (out - 1) * s >= in + p) --out;
  return out;
}

enum class PoolKind { max, avg };

inline PoolGeometry pool_geometry(const char* op, PoolKind kind, const Shape<4>& x, Pair kernel, Pair stride,
                                  Pair padding, Pair dilation, bool ceil_mode) {
  check(kernel.h > 0 && kernel.w > 0, op, "kernel size must be positive, got ", kernel);
  check(stride.h > 0 && stride.w > 0, op, "stride must be positive, got ", stride);
  check(dilation.h > 0 && dilation.w > 0, op, "dilation must be positive, got ", dilation);
  check(padding.h >= 0 && padding.w >= 0, op, "padding must be non-negative, got ", padding);
  check(x[0] >= 0 && x[1] > 0 && x[2] > 0 && x[3] > 0, op, "input ", x,
        " must have non-zero channels, height and width");
  const index_t eff_h = dilation.h * (kernel.h - 1) + 1, eff_w = dilation.w * (kernel.w - 1) + 1;
  // torch's rule, so that every window holds at least one input element.
  const index_t half_h = (kind == PoolKind::max ? eff_h : kernel.h) / 2;
  const index_t half_w = (kind == PoolKind::max ? eff_w : kernel.w) / 2;
  check(padding.h <= half_h && padding.w <= half_w, op, "padding ", padding, " should be at most half of the ",
        kind == PoolKind::max ? "(dilated) " : "", "kernel ",
        hw(kind == PoolKind::max ? eff_h : kernel.h, kind == PoolKind::max ? eff_w : kernel.w));
  PoolGeometry g{x[0], x[1], x[2], x[3], 0, 0, kernel, stride, padding, dilation};
  g.oh = pool_out_size(g.h, kernel.h, stride.h, padding.h, dilation.h, ceil_mode);
  g.ow = pool_out_size(g.w, kernel.w, stride.w, padding.w, dilation.w, ceil_mode);
  check(g.oh > 0 && g.ow > 0, op, "input ", x, " is too small for the kernel ", hw(eff_h, eff_w), " (padding ", padding,
        "): the output would be ", hw(g.oh, g.ow));
  return g;
}

template <class E, class T>
constexpr bool pool_operand_ok() {
  static_assert(E::rank == 4, "ft pooling: tensors must be rank 4 [N, C, H, W]; unsqueeze(0) a single image");
  static_assert(is_floating_v<T>, "ft pooling: tensors must be floating (float, double, half, bfloat16)");
  return E::rank == 4 && is_floating_v<T>;
}

inline void check_grad_shape(const char* op, const char* what, const Shape<4>& got, const Shape<4>& want,
                             const Shape<4>& x_shape) {
  check(got == want, op, what, " ", got, " should have shape ", want, ", the pooled shape of input ", x_shape);
}

// Linear index → (plane, row, column) without hardware division.
struct PlaneCoords {
  FastDivmod<index_t> cols, rows;
  PlaneCoords(index_t h, index_t w) : cols(w), rows(h) {}
  FT_HD FT_INLINE void operator()(index_t i, index_t& plane, index_t& y, index_t& x) const {
    index_t rest;
    cols.divmod(i, rest, x);
    rows.divmod(rest, plane, y);
  }
};

// The first output o with o·s + off + span ≥ pos, i.e. the first window [o·s + off, o·s + off + span]
// that can reach pos, given 0 ≤ pos: ceil((pos − off − span) / s), at least 0.
FT_HD FT_INLINE index_t first_window(index_t pos, index_t off, index_t span, index_t s) {
  const index_t t = pos - off - span;
  return t <= 0 ? 0 : (t + s - 1) / s;
}

// ---- the per-element bodies: trivially copyable, run by for_each_element ----

// The first maximum of a window of a plane `w` wide — rows y0, y0 + sy, … below y1, columns x0,
// x0 + sx, … below x1 — and its flat index; a NaN wins (and the last NaN), as torch's loop.
template <class T>
struct WindowMax {
  T value;
  index_t index;
};
template <class T>
FT_HD FT_INLINE WindowMax<T> window_max(const T* in, index_t w, index_t y0, index_t y1, index_t sy, index_t x0,
                                        index_t x1, index_t sx) {
  WindowMax<T> r{-std::numeric_limits<T>::infinity(), y0 * w + x0};
  for (index_t iy = y0; iy < y1; iy += sy)
    for (index_t ix = x0; ix < x1; ix += sx) {
      const T v = in[iy * w + ix];
      if (v > r.value || v != v) r = {v, iy * w + ix};
    }
  return r;
}

template <class T>
struct MaxPoolForward {
  const T* x;
  T* y;
  std::int64_t* indices;  // may be null: max_pool2d without indices
  PoolGeometry g;
  PlaneCoords out;

  // torch's loop: the first maximum wins, a NaN wins (and the last NaN).
  FT_HD void operator()(index_t i) const {
    index_t plane, oy, ox;
    out(i, plane, oy, ox);
    const T* in = x + plane * g.h * g.w;
    index_t y0 = oy * g.stride.h - g.padding.h, x0 = ox * g.stride.w - g.padding.w;
    const index_t y1 = std::min(y0 + (g.kernel.h - 1) * g.dilation.h + 1, g.h);
    const index_t x1 = std::min(x0 + (g.kernel.w - 1) * g.dilation.w + 1, g.w);
    while (y0 < 0) y0 += g.dilation.h;
    while (x0 < 0) x0 += g.dilation.w;
    const WindowMax<T> r = window_max(in, g.w, y0, y1, g.dilation.h, x0, x1, g.dilation.w);
    y[i] = r.value;
    if (indices) indices[i] = r.index;
  }
};

template <class T>
struct MaxPoolBackward {
  const T* dy;
  const std::int64_t* indices;
  T* dx;
  PoolGeometry g;
  PlaneCoords in;

  // dx[p] = Σ dy over the windows whose recorded maximum is p, in (row, column) window order.
  FT_HD void operator()(index_t i) const {
    index_t plane, iy, ix;
    in(i, plane, iy, ix);
    const index_t me = iy * g.w + ix;
    const index_t oy0 = first_window(iy, -g.padding.h, (g.kernel.h - 1) * g.dilation.h, g.stride.h);
    const index_t oy1 = std::min((iy + g.padding.h) / g.stride.h + 1, g.oh);
    const index_t ox0 = first_window(ix, -g.padding.w, (g.kernel.w - 1) * g.dilation.w, g.stride.w);
    const index_t ox1 = std::min((ix + g.padding.w) / g.stride.w + 1, g.ow);
    const index_t base = plane * g.oh * g.ow;
    T acc = 0;
    for (index_t oy = oy0; oy < oy1; ++oy)
      for (index_t ox = ox0; ox < ox1; ++ox)
        if (indices[base + oy * g.ow + ox] == me) acc += dy[base + oy * g.ow + ox];
    dx[i] = acc;
  }
};

// max_pool2d's backward on the CPU: a plane a thread, each window's dy added at its recorded
// index, windows in row-major order — for each dx element the same sums in the same order as
// the GPU's gather (MaxPoolBackward), without its four divisions an element. An index outside
// its plane (not one max_pool2d_with_indices gave) is an ft::Error.
// The CPU's pooling backward passes: one launch, a plane a thread, each dx plane zeroed and then
// scatter(p, d) adding plane p's windows into it. True when a plane's scatter returned true (a
// bad index).
template <class T, class Scatter>
bool scatter_planes(T* dx, index_t planes, index_t in_plane, [[maybe_unused]] index_t work, const Scatter& scatter) {
  if (planes * in_plane == 0) return false;  // nothing to compute: no launch
  stats::detail::record_launch(kCPU);
  bool bad = false;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (work > exec::cpu::kParallelGrain)
  for (index_t p = 0; p < planes; ++p) {
    T* d = dx + p * in_plane;
    for (index_t i = 0; i < in_plane; ++i) d[i] = T(0);
    bad = scatter(p, d) || bad;
  }
  return bad;
}

template <class T>
void max_pool_backward_cpu(const T* dy, const std::int64_t* indices, T* dx, index_t planes, const PoolGeometry& g,
                           const char* op) {
  const index_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const bool bad = scatter_planes(dx, planes, in_plane, planes * (in_plane + out_plane), [&](index_t p, T* d) {
    const T* gy = dy + p * out_plane;
    const std::int64_t* at = indices + p * out_plane;
    bool outside = false;
    for (index_t o = 0; o < out_plane; ++o) {
      const std::int64_t m = at[o];
      if (m < 0 || m >= in_plane) {
        outside = true;
        continue;
      }
      d[m] += gy[o];
    }
    return outside;
  });
  check(!bad, op, "an index is outside its input plane of ", g.h, "x", g.w,
        " (the indices must be those max_pool2d_with_indices returned for this input)");
}

// The divisor of average-pooling window (oy, ox), as torch computes it; 0 for a window that lies
// wholly in the ceil-mode overhang.
FT_HD FT_INLINE index_t avg_divisor(const PoolGeometry& g, index_t oy, index_t ox, bool count_include_pad) {
  index_t y0 = oy * g.stride.h - g.padding.h, x0 = ox * g.stride.w - g.padding.w;
  index_t y1 = std::min(y0 + g.kernel.h, g.h + g.padding.h), x1 = std::min(x0 + g.kernel.w, g.w + g.padding.w);
  const index_t padded = (y1 - y0) * (x1 - x0);
  y0 = std::max<index_t>(y0, 0);
  x0 = std::max<index_t>(x0, 0);
  y1 = std::min(y1, g.h);
  x1 = std::min(x1, g.w);
  if (y0 >= y1 || x0 >= x1) return 0;
  return count_include_pad ? padded : (y1 - y0) * (x1 - x0);
}

template <class T>
struct AvgPoolForward {
  const T* x;
  T* y;
  PoolGeometry g;
  PlaneCoords out;
  bool count_include_pad;

  FT_HD void operator()(index_t i) const {
    index_t plane, oy, ox;
    out(i, plane, oy, ox);
    const index_t divisor = avg_divisor(g, oy, ox, count_include_pad);
    if (divisor == 0) {
      y[i] = T(0);
      return;
    }
    const T* in = x + plane * g.h * g.w;
    const index_t y0 = std::max<index_t>(oy * g.stride.h - g.padding.h, 0);
    const index_t x0 = std::max<index_t>(ox * g.stride.w - g.padding.w, 0);
    const index_t y1 = std::min(oy * g.stride.h - g.padding.h + g.kernel.h, g.h);
    const index_t x1 = std::min(ox * g.stride.w - g.padding.w + g.kernel.w, g.w);
    T sum = 0;
    for (index_t iy = y0; iy < y1; ++iy)
      for (index_t ix = x0; ix < x1; ++ix) sum += in[iy * g.w + ix];
    y[i] = sum / static_cast<T>(divisor);
  }
};

// avg_pool2d's backward on the CPU, as max pool's: a plane a thread, each window's dy / divisor
// added over the window, windows in row-major order — the same sums in the same order as the
// GPU's gather (AvgPoolBackward), with one divisor a window instead of one a (window, element).
template <class T>
void avg_pool_backward_cpu(const T* dy, T* dx, index_t planes, const PoolGeometry& g, bool count_include_pad) {
  const index_t out_plane = g.oh * g.ow;
  const index_t work = planes * (g.h * g.w + out_plane * g.kernel.h * g.kernel.w);
  scatter_planes(dx, planes, g.h * g.w, work, [&](index_t p, T* d) {
    const T* gy = dy + p * out_plane;
    for (index_t oy = 0; oy < g.oh; ++oy)
      for (index_t ox = 0; ox < g.ow; ++ox) {
        const index_t divisor = avg_divisor(g, oy, ox, count_include_pad);
        if (divisor == 0) continue;  // wholly in the ceil-mode overhang: reads no input
        const T v = gy[oy * g.ow + ox] / static_cast<T>(divisor);
        const index_t y0 = std::max<index_t>(oy * g.stride.h - g.padding.h, 0);
        const index_t x0 = std::max<index_t>(ox * g.stride.w - g.padding.w, 0);
        const index_t y1 = std::min(oy * g.stride.h - g.padding.h + g.kernel.h, g.h);
        const index_t x1 = std::min(ox * g.stride.w - g.padding.w + g.kernel.w, g.w);
        for (index_t iy = y0; iy < y1; ++iy)
          for (index_t ix = x0; ix < x1; ++ix) d[iy * g.w + ix] += v;
      }
    return false;
  });
}

template <class T>
struct AvgPoolBackward {
  const T* dy;
  T* dx;
  PoolGeometry g;
  PlaneCoords in;
  bool count_include_pad;

  // dx[p] = Σ dy[window] / divisor[window] over the windows that hold p, in window order.
  FT_HD void operator()(index_t i) const {
    index_t plane, iy, ix;
    in(i, plane, iy, ix);
    const index_t oy0 = first_window(iy, -g.padding.h, g.kernel.h - 1, g.stride.h);
    const index_t oy1 = std::min((iy + g.padding.h) / g.stride.h + 1, g.oh);
    const index_t ox0 = first_window(ix, -g.padding.w, g.kernel.w - 1, g.stride.w);
    const index_t ox1 = std::min((ix + g.padding.w) / g.stride.w + 1, g.ow);
    const T* grad = dy + plane * g.oh * g.ow;
    T acc = 0;
    for (index_t oy = oy0; oy < oy1; ++oy)
      for (index_t ox = ox0; ox < ox1; ++ox)
        acc += grad[oy * g.ow + ox] / static_cast<T>(avg_divisor(g, oy, ox, count_include_pad));
    dx[i] = acc;
  }
};

// Adaptive windows: output o of n_out over n_in inputs reads [floor(o·n_in/n_out), ceil((o+1)·n_in/n_out)).
FT_HD FT_INLINE index_t adaptive_start(index_t o, index_t n_in, index_t n_out) { return o * n_in / n_out; }
FT_HD FT_INLINE index_t adaptive_end(index_t o, index_t n_in, index_t n_out) {
  return ((o + 1) * n_in + n_out - 1) / n_out;
}

template <class T>
struct AdaptiveAvgPoolForward {
  const T* x;
  T* y;
  PoolGeometry g;
  PlaneCoords out;

  FT_HD void operator()(index_t i) const {
    index_t plane, oy, ox;
    out(i, plane, oy, ox);
    const T* in = x + plane * g.h * g.w;
    const index_t y0 = adaptive_start(oy, g.h, g.oh), y1 = adaptive_end(oy, g.h, g.oh);
    const index_t x0 = adaptive_start(ox, g.w, g.ow), x1 = adaptive_end(ox, g.w, g.ow);
    T sum = 0;
    for (index_t iy = y0; iy < y1; ++iy)
      for (index_t ix = x0; ix < x1; ++ix) sum += in[iy * g.w + ix];
    y[i] = sum / static_cast<T>((y1 - y0) * (x1 - x0));
  }
};

template <class T>
struct AdaptiveAvgPoolBackward {
  const T* dy;
  T* dx;
  PoolGeometry g;
  PlaneCoords in;

  // The windows holding row iy are oy = floor(iy·oh/h), … while start(oy) ≤ iy (ends only grow).
  FT_HD void operator()(index_t i) const {
    index_t plane, iy, ix;
    in(i, plane, iy, ix);
    const T* grad = dy + plane * g.oh * g.ow;
    T acc = 0;
    for (index_t oy = iy * g.oh / g.h; oy < g.oh && adaptive_start(oy, g.h, g.oh) <= iy; ++oy) {
      const index_t rows = adaptive_end(oy, g.h, g.oh) - adaptive_start(oy, g.h, g.oh);
      for (index_t ox = ix * g.ow / g.w; ox < g.ow && adaptive_start(ox, g.w, g.ow) <= ix; ++ox) {
        const index_t cols = adaptive_end(ox, g.w, g.ow) - adaptive_start(ox, g.w, g.ow);
        acc += grad[oy * g.ow + ox] / static_cast<T>(rows * cols);
      }
    }
    dx[i] = acc;
  }
};

// The first maximum of each adaptive window (a NaN wins, and the last NaN), as torch's loop.
template <class T>
struct AdaptiveMaxPoolForward {
  const T* x;
  T* y;
  std::int64_t* indices;
  PoolGeometry g;
  PlaneCoords out;

  FT_HD void operator()(index_t i) const {
    index_t plane, oy, ox;
    out(i, plane, oy, ox);
    const T* in = x + plane * g.h * g.w;
    const index_t y0 = adaptive_start(oy, g.h, g.oh), y1 = adaptive_end(oy, g.h, g.oh);
    const index_t x0 = adaptive_start(ox, g.w, g.ow), x1 = adaptive_end(ox, g.w, g.ow);
    const WindowMax<T> r = window_max(in, g.w, y0, y1, 1, x0, x1, 1);
    y[i] = r.value;
    indices[i] = r.index;
  }
};

// dx[p] = Σ dy over the adaptive windows whose recorded maximum is p, in (row, column) order (the
// GPU's gather; the CPU scatters by index, max_pool_backward_cpu).
template <class T>
struct AdaptiveMaxPoolBackward {
  const T* dy;
  const std::int64_t* indices;
  T* dx;
  PoolGeometry g;
  PlaneCoords in;

  FT_HD void operator()(index_t i) const {
    index_t plane, iy, ix;
    in(i, plane, iy, ix);
    const index_t me = iy * g.w + ix, base = plane * g.oh * g.ow;
    T acc = 0;
    for (index_t oy = iy * g.oh / g.h; oy < g.oh && adaptive_start(oy, g.h, g.oh) <= iy; ++oy)
      for (index_t ox = ix * g.ow / g.w; ox < g.ow && adaptive_start(ox, g.w, g.ow) <= ix; ++ox)
        if (indices[base + oy * g.ow + ox] == me) acc += dy[base + oy * g.ow + ox];
    dx[i] = acc;
  }
};

// Work per element, to decide whether a CPU loop is worth a parallel region.
inline index_t window_cost(const PoolGeometry& g) { return g.kernel.h * g.kernel.w; }

// One tap of max pooling over a row of windows: window ox reads in[base + ox·S]; a compare and a
// select per window, no branch, so that the compiler vectorises it (S = 1 and 2 known at compile
// time, 0 for any other stride, read from s).
template <index_t S, class T>
FT_INLINE void max_pool_tap(const T* __restrict__ in, T* __restrict__ m, std::int64_t* __restrict__ best, index_t lo,
                            index_t hi, index_t s, index_t base) {
  const index_t step = S > 0 ? S : s;
  for (index_t ox = lo; ox < hi; ++ox) {
    const index_t at = base + ox * step;
    const T v = in[at], old = m[ox];
    const bool take = (v > old) | (v != v);
    m[ox] = take ? v : old;
    best[ox] = take ? at : best[ox];
  }
}

// The CPU forward, a row of windows at a time: each tap (window row, window column) is one pass
// over the row's windows (max_pool_tap) instead of a loop over each window's taps, which
// branches on every compare. Each window still visits its taps in (row, column) order, so the
// first maximum wins and a NaN wins, as in torch.
template <class T>
FT_CPU_MULTIVERSION FT_CPU_STRIDED_LOOP void max_pool2d_forward_cpu(const T* x, T* y, std::int64_t* indices,
                                                                    const PoolGeometry g) {
  stats::detail::record_launch(kCPU);
  const index_t rows = g.n * g.c * g.oh, ow = g.ow, h = g.h, w = g.w, oh = g.oh;
  const index_t kh = g.kernel.h, kw = g.kernel.w, sh = g.stride.h, sw = g.stride.w;
  const index_t ph = g.padding.h, pw = g.padding.w, dh = g.dilation.h, dw = g.dilation.w;
  // Per column of windows, its first element inside the input; per tap column, the windows
  // that read inside the input, [lo, hi): the same for every row.
  std::vector<index_t> first(static_cast<std::size_t>(ow)), lo(static_cast<std::size_t>(kw)), hi(lo.size());
  for (index_t ox = 0; ox < ow; ++ox) {
    index_t x0 = ox * sw - pw;
    while (x0 < 0) x0 += dw;
    first[static_cast<std::size_t>(ox)] = x0;
  }
  for (index_t kx = 0; kx < kw; ++kx)
    valid_range(w, ow, sw, kx * dw - pw, lo[static_cast<std::size_t>(kx)], hi[static_cast<std::size_t>(kx)]);
#pragma omp parallel if (rows * ow * window_cost(g) > exec::cpu::kParallelGrain)
  {
    std::vector<std::int64_t> scratch(indices ? 0 : static_cast<std::size_t>(ow));
#pragma omp for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      const index_t oy = r % oh;
      const T* in = x + (r / oh) * h * w;
      T* m = y + r * ow;
      std::int64_t* best = indices ? indices + r * ow : scratch.data();
      index_t y0 = oy * sh - ph;
      const index_t y1 = std::min(y0 + (kh - 1) * dh + 1, h);
      while (y0 < 0) y0 += dh;
      for (index_t ox = 0; ox < ow; ++ox) {  // -inf at the window's first element inside the input
        m[ox] = -std::numeric_limits<T>::infinity();
        best[ox] = y0 * w + first[static_cast<std::size_t>(ox)];
      }
      for (index_t iy = y0; iy < y1; iy += dh)
        for (index_t kx = 0; kx < kw; ++kx) {
          const index_t base = iy * w + kx * dw - pw, l = lo[static_cast<std::size_t>(kx)],
                        u = hi[static_cast<std::size_t>(kx)];
          if (sw == 2)
            max_pool_tap<2>(in, m, best, l, u, sw, base);
          else if (sw == 1)
            max_pool_tap<1>(in, m, best, l, u, sw, base);
          else
            max_pool_tap<0>(in, m, best, l, u, sw, base);
        }
    }
  }
}

template <class T>
MaxPool2dResult<T> max_pool2d_impl(const Tensor<T, 4>& x, Pair kernel, Pair stride, Pair padding, Pair dilation,
                                   bool ceil_mode, bool with_indices) {
  const char* op = with_indices ? "max_pool2d_with_indices" : "max_pool2d";
  const PoolGeometry g = pool_geometry(op, PoolKind::max, x.shape(), kernel, stride, padding, dilation, ceil_mode);
  MaxPool2dResult<T> r{Tensor<T, 4>(g.out_shape(), x.device()), {}};
  if (with_indices) r.indices = Tensor<std::int64_t, 4>(g.out_shape(), x.device());
  if (x.device().is_cpu()) {
    if (r.output.numel() > 0)
      max_pool2d_forward_cpu<T>(x.data(), r.output.data(), with_indices ? r.indices.data() : nullptr, g);
    return r;
  }
  for_each_element(x.device(), r.output.numel(),
                   MaxPoolForward<T>{x.data(), r.output.data(), with_indices ? r.indices.data() : nullptr, g,
                                     PlaneCoords(g.oh, g.ow)},
                   window_cost(g));
  return r;
}

// compiled once in the library (core/config.hpp)
FT_COMPILED_INSTANCE(MaxPool2dResult<float> max_pool2d_impl<float>(const Tensor<float, 4>&, Pair, Pair, Pair, Pair,
                                                                   bool, bool))
}  // namespace linalg::detail

// torch.nn.functional.max_pool2d with return_indices: x [N, C, H, W] → output and indices
// [N, C, oH, oW]; oH = floor((H + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1 (rounded
// up in ceil_mode). Padding counts as −∞; a NaN in a window wins, as in torch.
template <Expression X>
MaxPool2dResult<typename X::value_type> max_pool2d_with_indices(const X& x, Pair kernel, Pair stride, Pair padding = 0,
                                                                Pair dilation = 1, bool ceil_mode = false) {
  using T = typename X::value_type;
  if constexpr (is_half_v<T>) {  // the two-byte types: pooled in float (exact for a max), rounded
    auto r = max_pool2d_with_indices(Tensor<float, 4>(cast<float>(x)), kernel, stride, padding, dilation, ceil_mode);
    return {Tensor<T, 4>(cast<T>(r.output)), r.indices};
  } else if constexpr (linalg::detail::pool_operand_ok<X, T>()) {
    auto xc = linalg::detail::contiguous_operand(x, "max_pool2d_with_indices", "input");
    return linalg::detail::max_pool2d_impl<T>(xc, kernel, stride, padding, dilation, ceil_mode, true);
  }
}
// The stride defaults to the kernel size, as in torch.
template <Expression X>
MaxPool2dResult<typename X::value_type> max_pool2d_with_indices(const X& x, Pair kernel) {
  return max_pool2d_with_indices(x, kernel, kernel);
}

// torch.nn.functional.max_pool2d: the pooled values only (no indices are written).
template <Expression X>
Tensor<typename X::value_type, 4> max_pool2d(const X& x, Pair kernel, Pair stride, Pair padding = 0, Pair dilation = 1,
                                             bool ceil_mode = false) {
  using T = typename X::value_type;
  if constexpr (is_half_v<T>) {
    return cast<T>(max_pool2d(Tensor<float, 4>(cast<float>(x)), kernel, stride, padding, dilation, ceil_mode));
  } else if constexpr (linalg::detail::pool_operand_ok<X, T>()) {
    auto xc = linalg::detail::contiguous_operand(x, "max_pool2d", "input");
    return linalg::detail::max_pool2d_impl<T>(xc, kernel, stride, padding, dilation, ceil_mode, false).output;
  }
}
template <Expression X>
Tensor<typename X::value_type, 4> max_pool2d(const X& x, Pair kernel) {
  return max_pool2d(x, kernel, kernel);
}

// ∂L/∂x of max_pool2d given dy = ∂L/∂output and the indices max_pool2d_with_indices returned,
// for an input of shape x_shape pooled with the same kernel, stride, padding and dilation.
// A gather over each input element's windows: deterministic, no atomics.
template <Expression G, Expression I>
Tensor<typename G::value_type, 4> max_pool2d_backward(const G& grad_out, const I& indices, const Shape<4>& x_shape,
                                                      Pair kernel, Pair stride, Pair padding = 0, Pair dilation = 1,
                                                      bool ceil_mode = false) {
  using T = typename G::value_type;
  constexpr const char* op = "max_pool2d_backward";
  static_assert(I::rank == 4 && std::is_same_v<typename I::value_type, std::int64_t>,
                "ft::max_pool2d_backward: indices must be the int64 rank-4 tensor max_pool2d_with_indices returned");
  if constexpr (is_half_v<T>) {  // the sums where windows overlap in float, rounded once
    return cast<T>(max_pool2d_backward(Tensor<float, 4>(cast<float>(grad_out)), indices, x_shape, kernel, stride,
                                       padding, dilation, ceil_mode));
  } else if constexpr (linalg::detail::pool_operand_ok<G, T>() && I::rank == 4) {
    using namespace linalg::detail;
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    auto ix = contiguous_operand(indices, op, "indices");
    check(dy.device() == ix.device(), op, "grad_out on ", dy.device(), " but indices on ", ix.device(),
          "; move one with .to(device)");
    const PoolGeometry g = pool_geometry(op, PoolKind::max, x_shape, kernel, stride, padding, dilation, ceil_mode);
    check_grad_shape(op, "grad_out", dy.shape(), g.out_shape(), x_shape);
    check_grad_shape(op, "indices", ix.shape(), g.out_shape(), x_shape);
    Tensor<T, 4> dx(x_shape, dy.device());
    if (dx.device().is_cpu()) {
      max_pool_backward_cpu(dy.data(), ix.data(), dx.data(), x_shape[0] * x_shape[1], g, op);
      return dx;
    }
    const index_t cost = (g.kernel.h * g.dilation.h / g.stride.h + 1) * (g.kernel.w * g.dilation.w / g.stride.w + 1);
    for_each_element(dx.device(), dx.numel(),
                     MaxPoolBackward<T>{dy.data(), ix.data(), dx.data(), g, PlaneCoords(g.h, g.w)}, cost);
    return dx;
  }
}
template <Expression G, Expression I>
Tensor<typename G::value_type, 4> max_pool2d_backward(const G& grad_out, const I& indices, const Shape<4>& x_shape,
                                                      Pair kernel) {
  return max_pool2d_backward(grad_out, indices, x_shape, kernel, kernel);
}

// torch.nn.functional.avg_pool2d: the mean of each window; count_include_pad = false divides by
// the number of input elements in the window instead of the padded window's size.
template <Expression X>
Tensor<typename X::value_type, 4> avg_pool2d(const X& x, Pair kernel, Pair stride, Pair padding = 0,
                                             bool ceil_mode = false, bool count_include_pad = true) {
  using T = typename X::value_type;
  constexpr const char* op = "avg_pool2d";
  if constexpr (is_half_v<T>) {
    return cast<T>(avg_pool2d(Tensor<float, 4>(cast<float>(x)), kernel, stride, padding, ceil_mode, count_include_pad));
  } else if constexpr (linalg::detail::pool_operand_ok<X, T>()) {
    using namespace linalg::detail;
    auto xc = contiguous_operand(x, op, "input");
    const PoolGeometry g = pool_geometry(op, PoolKind::avg, xc.shape(), kernel, stride, padding, 1, ceil_mode);
    Tensor<T, 4> y(g.out_shape(), xc.device());
    for_each_element(y.device(), y.numel(),
                     AvgPoolForward<T>{xc.data(), y.data(), g, PlaneCoords(g.oh, g.ow), count_include_pad},
                     window_cost(g));
    return y;
  }
}
template <Expression X>
Tensor<typename X::value_type, 4> avg_pool2d(const X& x, Pair kernel) {
  return avg_pool2d(x, kernel, kernel);
}

// ∂L/∂x of avg_pool2d given dy = ∂L/∂output, for an input of shape x_shape pooled with the same
// arguments. A gather, deterministic.
template <Expression G>
Tensor<typename G::value_type, 4> avg_pool2d_backward(const G& grad_out, const Shape<4>& x_shape, Pair kernel,
                                                      Pair stride, Pair padding = 0, bool ceil_mode = false,
                                                      bool count_include_pad = true) {
  using T = typename G::value_type;
  constexpr const char* op = "avg_pool2d_backward";
  if constexpr (is_half_v<T>) {
    return cast<T>(avg_pool2d_backward(Tensor<float, 4>(cast<float>(grad_out)), x_shape, kernel, stride, padding,
                                       ceil_mode, count_include_pad));
  } else if constexpr (linalg::detail::pool_operand_ok<G, T>()) {
    using namespace linalg::detail;
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    const PoolGeometry g = pool_geometry(op, PoolKind::avg, x_shape, kernel, stride, padding, 1, ceil_mode);
    check_grad_shape(op, "grad_out", dy.shape(), g.out_shape(), x_shape);
    Tensor<T, 4> dx(x_shape, dy.device());
    if (dx.device().is_cpu()) {
      avg_pool_backward_cpu(dy.data(), dx.data(), x_shape[0] * x_shape[1], g, count_include_pad);
      return dx;
    }
    const index_t cost = (g.kernel.h / g.stride.h + 1) * (g.kernel.w / g.stride.w + 1);
    for_each_element(dx.device(), dx.numel(),
                     AvgPoolBackward<T>{dy.data(), dx.data(), g, PlaneCoords(g.h, g.w), count_include_pad}, cost);
    return dx;
  }
}
template <Expression G>
Tensor<typename G::value_type, 4> avg_pool2d_backward(const G& grad_out, const Shape<4>& x_shape, Pair kernel) {
  return avg_pool2d_backward(grad_out, x_shape, kernel, kernel);
}

// torch.nn.functional.adaptive_avg_pool2d: output_size {oH, oW}; output (i, j) averages rows
// [floor(i·H/oH), ceil((i+1)·H/oH)) and the columns likewise (windows may overlap or differ in size).
template <Expression X>
Tensor<typename X::value_type, 4> adaptive_avg_pool2d(const X& x, Pair output_size) {
  using T = typename X::value_type;
  constexpr const char* op = "adaptive_avg_pool2d";
  if constexpr (is_half_v<T>) {
    return cast<T>(adaptive_avg_pool2d(Tensor<float, 4>(cast<float>(x)), output_size));
  } else if constexpr (linalg::detail::pool_operand_ok<X, T>()) {
    using namespace linalg::detail;
    auto xc = contiguous_operand(x, op, "input");
    const Shape<4>& s = xc.shape();
    check(output_size.h > 0 && output_size.w > 0, op, "output size must be positive, got ", output_size);
    check(s[1] > 0 && s[2] > 0 && s[3] > 0, op, "input ", s, " must have non-zero channels, height and width");
    const PoolGeometry g{s[0], s[1], s[2], s[3], output_size.h, output_size.w, 1, 1, 0, 1};
    Tensor<T, 4> y(g.out_shape(), xc.device());
    const index_t cost = (g.h / g.oh + 1) * (g.w / g.ow + 1);
    for_each_element(y.device(), y.numel(), AdaptiveAvgPoolForward<T>{xc.data(), y.data(), g, PlaneCoords(g.oh, g.ow)},
                     cost);
    return y;
  }
}

// ∂L/∂x of adaptive_avg_pool2d given dy = ∂L/∂output [N, C, oH, oW], for an input of shape x_shape.
template <Expression G>
Tensor<typename G::value_type, 4> adaptive_avg_pool2d_backward(const G& grad_out, const Shape<4>& x_shape) {
  using T = typename G::value_type;
  constexpr const char* op = "adaptive_avg_pool2d_backward";
  if constexpr (is_half_v<T>) {
    return cast<T>(adaptive_avg_pool2d_backward(Tensor<float, 4>(cast<float>(grad_out)), x_shape));
  } else if constexpr (linalg::detail::pool_operand_ok<G, T>()) {
    using namespace linalg::detail;
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    check(x_shape[1] > 0 && x_shape[2] > 0 && x_shape[3] > 0 && x_shape[0] >= 0, op, "input ", x_shape,
          " must have non-zero channels, height and width");
    const PoolGeometry g{x_shape[0], x_shape[1], x_shape[2], x_shape[3], dy.size(2), dy.size(3), 1, 1, 0, 1};
    check(dy.size(2) > 0 && dy.size(3) > 0, op, "grad_out ", dy.shape(), " has an empty output plane");
    check_grad_shape(op, "grad_out", dy.shape(), g.out_shape(), x_shape);
    Tensor<T, 4> dx(x_shape, dy.device());
    const index_t cost = (g.oh / g.h + 1) * (g.ow / g.w + 1);
    for_each_element(dx.device(), dx.numel(),
                     AdaptiveAvgPoolBackward<T>{dy.data(), dx.data(), g, PlaneCoords(g.h, g.w)}, cost);
    return dx;
  }
}

// torch.nn.functional.adaptive_max_pool2d with return_indices: output (i, j) is the maximum of
// the adaptive window of adaptive_avg_pool2d's (i, j), its index h·W + w in its input plane.
template <Expression X>
MaxPool2dResult<typename X::value_type> adaptive_max_pool2d_with_indices(const X& x, Pair output_size) {
  using T = typename X::value_type;
  constexpr const char* op = "adaptive_max_pool2d";
  if constexpr (is_half_v<T>) {  // pooled in float (exact for a max), rounded
    auto r = adaptive_max_pool2d_with_indices(Tensor<float, 4>(cast<float>(x)), output_size);
    return {Tensor<T, 4>(cast<T>(r.output)), r.indices};
  } else if constexpr (linalg::detail::pool_operand_ok<X, T>()) {
    using namespace linalg::detail;
    auto xc = contiguous_operand(x, op, "input");
    const Shape<4>& s = xc.shape();
    check(output_size.h > 0 && output_size.w > 0, op, "output size must be positive, got ", output_size);
    check(s[1] > 0 && s[2] > 0 && s[3] > 0, op, "input ", s, " must have non-zero channels, height and width");
    const PoolGeometry g{s[0], s[1], s[2], s[3], output_size.h, output_size.w, 1, 1, 0, 1};
    MaxPool2dResult<T> r{Tensor<T, 4>(g.out_shape(), xc.device()), Tensor<std::int64_t, 4>(g.out_shape(), xc.device())};
    const index_t cost = (g.h / g.oh + 1) * (g.w / g.ow + 1);
    for_each_element(
        xc.device(), r.output.numel(),
        AdaptiveMaxPoolForward<T>{xc.data(), r.output.data(), r.indices.data(), g, PlaneCoords(g.oh, g.ow)}, cost);
    return r;
  }
}
// torch.nn.functional.adaptive_max_pool2d: the pooled values.
template <Expression X>
Tensor<typename X::value_type, 4> adaptive_max_pool2d(const X& x, Pair output_size) {
  return adaptive_max_pool2d_with_indices(x, output_size).output;
}

// ∂L/∂x of adaptive_max_pool2d given dy and the indices adaptive_max_pool2d_with_indices returned.
template <Expression G, Expression I>
Tensor<typename G::value_type, 4> adaptive_max_pool2d_backward(const G& grad_out, const I& indices,
                                                               const Shape<4>& x_shape) {
  using T = typename G::value_type;
  constexpr const char* op = "adaptive_max_pool2d_backward";
  static_assert(I::rank == 4 && std::is_same_v<typename I::value_type, std::int64_t>,
                "ft::adaptive_max_pool2d_backward: indices must be the int64 rank-4 tensor "
                "adaptive_max_pool2d_with_indices returned");
  if constexpr (is_half_v<T>) {
    return cast<T>(adaptive_max_pool2d_backward(Tensor<float, 4>(cast<float>(grad_out)), indices, x_shape));
  } else if constexpr (linalg::detail::pool_operand_ok<G, T>() && I::rank == 4) {
    using namespace linalg::detail;
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    auto ix = contiguous_operand(indices, op, "indices");
    check(dy.device() == ix.device(), op, "grad_out on ", dy.device(), " but indices on ", ix.device(),
          "; move one with .to(device)");
    check(x_shape[1] > 0 && x_shape[2] > 0 && x_shape[3] > 0 && x_shape[0] >= 0, op, "input ", x_shape,
          " must have non-zero channels, height and width");
    check(dy.size(2) > 0 && dy.size(3) > 0, op, "grad_out ", dy.shape(), " has an empty output plane");
    const PoolGeometry g{x_shape[0], x_shape[1], x_shape[2], x_shape[3], dy.size(2), dy.size(3), 1, 1, 0, 1};
    check_grad_shape(op, "grad_out", dy.shape(), g.out_shape(), x_shape);
    check_grad_shape(op, "indices", ix.shape(), g.out_shape(), x_shape);
    Tensor<T, 4> dx(x_shape, dy.device());
    if (dx.device().is_cpu()) {
      max_pool_backward_cpu(dy.data(), ix.data(), dx.data(), x_shape[0] * x_shape[1], g, op);
      return dx;
    }
    const index_t cost = (g.oh / g.h + 1) * (g.ow / g.w + 1);
    for_each_element(dx.device(), dx.numel(),
                     AdaptiveMaxPoolBackward<T>{dy.data(), ix.data(), dx.data(), g, PlaneCoords(g.h, g.w)}, cost);
    return dx;
  }
}

}  // namespace ft::inline FT_ABI

// ---- on Vars: the backward is the pooling gather ----
namespace ft::inline FT_ABI {

namespace detail {
// An adaptive pool in ONNX, which has the global form (Global<pool>) and pools with one window
// size: an output that divides the input is a plain <pool>; any other is an export error.
template <class V, class O>
void trace_adaptive_pool(autograd::trace::Sink& s, const V& vx, const O& out, const char* op, const std::string& pool) {
  const index_t h = vx.size(2), w = vx.size(3), oh = out.size(2), ow = out.size(3);
  using A = autograd::trace::Attribute;
  if (oh == 1 && ow == 1)
    autograd::trace::boundary(s, "Global" + pool, {autograd::trace::name(s, vx)}, out);
  else if (h % oh == 0 && w % ow == 0)
    autograd::trace::boundary(
        s, pool, {autograd::trace::name(s, vx)}, out,
        {A::integers("kernel_shape", {h / oh, w / ow}), A::integers("strides", {h / oh, w / ow})});
  else
    s.unsupported(std::string(op) + " from " + to_string(vx.shape()) + " to " + to_string(out.shape()) +
                  " (ONNX pools with one window size: the output must divide the input)");
}
}  // namespace detail

// ---- pooling ----
template <Expression X>
requires(ft::detail::has_var_v<X>) auto max_pool2d(const X& x, Pair kernel, Pair stride, Pair padding = 0,
                                                   Pair dilation = 1, bool ceil_mode = false) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto r = max_pool2d_with_indices(vx.value(), kernel, stride, padding, dilation, ceil_mode);
  auto bwd = [vx, idx = r.indices, kernel, stride, padding, dilation, ceil_mode](const Tensor<T, 4>& g) {
    vx.state().accumulate(max_pool2d_backward(g, idx, vx.shape(), kernel, stride, padding, dilation, ceil_mode));
  };
  auto out = autograd::record("max_pool2d", r.output, std::move(bwd), vx);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    using A = autograd::trace::Attribute;
    autograd::trace::boundary(
        s, "MaxPool", {autograd::trace::name(s, vx)}, out,
        {A::integers("kernel_shape", {kernel.h, kernel.w}), A::integers("strides", {stride.h, stride.w}),
         A::integers("pads", {padding.h, padding.w, padding.h, padding.w}),
         A::integers("dilations", {dilation.h, dilation.w}), A::integer("ceil_mode", ceil_mode)});
  });
  return out;
}
template <Expression X>
requires(ft::detail::has_var_v<X>) auto max_pool2d(const X& x, Pair kernel) { return max_pool2d(x, kernel, kernel); }
template <Expression X>
requires(ft::detail::has_var_v<X>) auto avg_pool2d(const X& x, Pair kernel, Pair stride, Pair padding = 0,
                                                   bool ceil_mode = false, bool count_include_pad = true) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto y = avg_pool2d(vx.value(), kernel, stride, padding, ceil_mode, count_include_pad);
  auto bwd = [vx, kernel, stride, padding, ceil_mode, count_include_pad](const Tensor<T, 4>& g) {
    vx.state().accumulate(avg_pool2d_backward(g, vx.shape(), kernel, stride, padding, ceil_mode, count_include_pad));
  };
  auto out = autograd::record("avg_pool2d", y, std::move(bwd), vx);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    using A = autograd::trace::Attribute;
    autograd::trace::boundary(
        s, "AveragePool", {autograd::trace::name(s, vx)}, out,
        {A::integers("kernel_shape", {kernel.h, kernel.w}), A::integers("strides", {stride.h, stride.w}),
         A::integers("pads", {padding.h, padding.w, padding.h, padding.w}), A::integer("ceil_mode", ceil_mode),
         A::integer("count_include_pad", count_include_pad)});
  });
  return out;
}
template <Expression X>
requires(ft::detail::has_var_v<X>) auto avg_pool2d(const X& x, Pair kernel) { return avg_pool2d(x, kernel, kernel); }
template <Expression X>
requires(ft::detail::has_var_v<X>) auto adaptive_avg_pool2d(const X& x, Pair output_size) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto y = adaptive_avg_pool2d(vx.value(), output_size);
  auto bwd = [vx](const Tensor<T, 4>& g) { vx.state().accumulate(adaptive_avg_pool2d_backward(g, vx.shape())); };
  auto out = autograd::record("adaptive_avg_pool2d", y, std::move(bwd), vx);
  autograd::trace::when_traced(
      [&](autograd::trace::Sink& s) { detail::trace_adaptive_pool(s, vx, out, "adaptive_avg_pool2d", "AveragePool"); });
  return out;
}
template <Expression X>
requires(ft::detail::has_var_v<X>) auto adaptive_max_pool2d(const X& x, Pair output_size) {
  auto vx = autograd::to_var(x);
  using T = typename decltype(vx)::value_type;
  auto r = adaptive_max_pool2d_with_indices(vx.value(), output_size);
  auto bwd = [vx, idx = r.indices](const Tensor<T, 4>& g) {
    vx.state().accumulate(adaptive_max_pool2d_backward(g, idx, vx.shape()));
  };
  auto out = autograd::record("adaptive_max_pool2d", r.output, std::move(bwd), vx);
  autograd::trace::when_traced(
      [&](autograd::trace::Sink& s) { detail::trace_adaptive_pool(s, vx, out, "adaptive_max_pool2d", "MaxPool"); });
  return out;
}

}  // namespace ft::inline FT_ABI
