// A convolution's options (Conv2dOptions) and sizes (ConvGeometry, checked once), read by every
// back-end of linalg/conv.hpp.
#pragma once

#include <climits>
#include <cstddef>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/tensor.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/nchw.hpp"

namespace ft::inline FT_ABI {

// torch.nn.functional.conv2d's options; each Pair takes one number or {height, width}:
// ft::conv2d(x, w, b, {.stride = 2, .padding = {1, 2}}).
struct Conv2dOptions {
  Pair stride = 1;
  Pair padding = 0;
  Pair dilation = 1;
  index_t groups = 1;
};

namespace linalg::detail {

// The sizes of one convolution, checked once; every back-end reads them from here.
struct ConvGeometry {
  index_t n, c, h, w;     // input [n, c, h, w]
  index_t o, cg, kh, kw;  // weight [o, cg, kh, kw], cg = c / groups
  index_t oh, ow;         // output [n, o, oh, ow]
  index_t groups;
  Pair stride, padding, dilation;

  index_t og() const { return o / groups; }    // output channels of a group
  index_t kg() const { return cg * kh * kw; }  // GEMM depth of a group: rows of its im2col block
  index_t k() const { return c * kh * kw; }    // rows of a sample's im2col matrix
  index_t p() const { return oh * ow; }        // output pixels of a plane: columns of im2col
  Shape<4> in_shape() const { return {n, c, h, w}; }
  Shape<4> weight_shape() const { return {o, cg, kh, kw}; }
  Shape<4> out_shape() const { return {n, o, oh, ow}; }
  // 1x1 kernel, unit stride, no padding: im2col is the identity, so the input is the col matrix.
  bool pointwise() const { return kh == 1 && kw == 1 && stride == Pair(1) && padding == Pair(0) && h == oh && w == ow; }
};

inline ConvGeometry conv_geometry(const char* op, const Shape<4>& x, const Shape<4>& w, const Conv2dOptions& opt) {
  const Pair s = opt.stride, p = opt.padding, d = opt.dilation;
  const index_t groups = opt.groups;
  check(s.h > 0 && s.w > 0, op, "stride must be positive, got ", s);
  check(d.h > 0 && d.w > 0, op, "dilation must be positive, got ", d);
  check(p.h >= 0 && p.w >= 0, op, "padding must be non-negative, got ", p);
  check(groups > 0, op, "groups must be positive, got ", groups);
  for (int i = 0; i < 4; ++i) {
    check(x[i] >= 0, op, "input shape ", x, " has a negative extent");
    check(w[i] >= 0, op, "weight shape ", w, " has a negative extent");
  }
  check(x[1] % groups == 0, op, "groups = ", groups, " does not divide the ", x[1], " channels of input ", x);
  check(w[0] % groups == 0, op, "groups = ", groups, " does not divide the ", w[0], " output channels of weight ", w);
  check(x[1] == w[1] * groups, op, "input ", x, " has ", x[1], " channels but weight ", w, " expects ", w[1] * groups,
        " (groups = ", groups, ")");
  check(w[2] > 0 && w[3] > 0, op, "weight ", w, " has an empty kernel");
  const index_t eff_h = d.h * (w[2] - 1) + 1, eff_w = d.w * (w[3] - 1) + 1;
  const index_t pad_h = x[2] + 2 * p.h, pad_w = x[3] + 2 * p.w;
  check(eff_h <= pad_h && eff_w <= pad_w, op, "the kernel ", hw(w[2], w[3]), " (", hw(eff_h, eff_w), " with dilation ",
        d, ") is larger than the padded input ", hw(pad_h, pad_w), " (input ", x, ", weight ", w, ", padding ", p, ")");
  ConvGeometry g{x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], 0, 0, groups, s, p, d};
  g.oh = (pad_h - eff_h) / s.h + 1;  // torch's rule: floor((H + 2p − d(k−1) − 1) / s) + 1
  g.ow = (pad_w - eff_w) / s.w + 1;
  return g;
}

// A backward primitive's grad_out must have the forward output's shape.
inline void check_grad_out(const char* op, const ConvGeometry& g, const Shape<4>& dy, const Shape<4>& x,
                           const Shape<4>& w) {
  check(dy == g.out_shape(), op, "grad_out ", dy, " should have shape ", g.out_shape(), ", the output of input ", x,
        " and weight ", w, " (stride ", g.stride, ", padding ", g.padding, ", dilation ", g.dilation, ")");
}

inline void check_conv_devices(const char* op, const char* a, Device da, const char* b, Device db) {
  check(da == db, op, a, " on ", da, " but ", b, " on ", db, "; move one with .to(device)");
}

template <class X, class W>
constexpr bool conv_operands_ok() {
  static_assert(X::rank == 4, "ft::conv2d: the input must be rank 4 [N, C, H, W]; unsqueeze(0) a single image");
  static_assert(W::rank == 4, "ft::conv2d: the weight must be rank 4 [out_channels, in_channels / groups, kH, kW]");
  static_assert(std::is_same_v<typename X::value_type, typename W::value_type>,
                "ft::conv2d: the operands must have the same element type; convert one with ft::cast<T>");
  static_assert(std::is_same_v<typename X::value_type, float> || std::is_same_v<typename X::value_type, double>,
                "ft::conv2d: only float and double tensors are supported");
  return X::rank == 4 && W::rank == 4 && std::is_same_v<typename X::value_type, typename W::value_type>;
}

}  // namespace linalg::detail

}  // namespace ft::inline FT_ABI
