// A convolution's options (Conv2dOptions, Conv1dOptions, ConvTranspose2dOptions) and sizes
// (ConvGeometry, checked once), read by every back-end of linalg/conv.hpp; conv1d and
// conv_transpose2d are expressed as conv2d geometries here.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <type_traits>

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

// torch.nn.functional.conv1d's options: ft::conv1d(x, w, b, {.stride = 2, .padding = 1}).
struct Conv1dOptions {
  index_t stride = 1;
  index_t padding = 0;
  index_t dilation = 1;
  index_t groups = 1;
};

// torch.nn.functional.conv_transpose2d's options, in its argument order; each Pair takes one
// number or {height, width}: ft::conv_transpose2d(x, w, b, {.stride = 2, .padding = 1, .output_padding = 1}).
struct ConvTranspose2dOptions {
  Pair stride = 1;
  Pair padding = 0;
  Pair output_padding = 0;
  index_t groups = 1;
  Pair dilation = 1;
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
  static_assert(is_floating_v<typename X::value_type>,
                "ft::conv2d: the operands must be floating (float, double, half, bfloat16); convert with ft::cast<T>");
  return X::rank == 4 && W::rank == 4 && std::is_same_v<typename X::value_type, typename W::value_type>;
}

// ---- conv1d: a conv2d of height 1 ----

// The conv2d that computes a conv1d on [N, C, 1, L] and a weight [O, C / groups, 1, K].
inline Conv2dOptions conv1d_as_conv2d(const Conv1dOptions& o) {
  return Conv2dOptions{
      .stride = {1, o.stride}, .padding = {0, o.padding}, .dilation = {1, o.dilation}, .groups = o.groups};
}

// conv1d's checks on its own 3-D shapes (conv2d's messages, one dimension fewer).
inline void check_conv1d(const char* op, const Shape<3>& x, const Shape<3>& w, const Conv1dOptions& opt) {
  const index_t s = opt.stride, p = opt.padding, d = opt.dilation, groups = opt.groups;
  check(s > 0, op, "stride must be positive, got ", s);
  check(d > 0, op, "dilation must be positive, got ", d);
  check(p >= 0, op, "padding must be non-negative, got ", p);
  check(groups > 0, op, "groups must be positive, got ", groups);
  check(x[1] % groups == 0, op, "groups = ", groups, " does not divide the ", x[1], " channels of input ", x);
  check(w[0] % groups == 0, op, "groups = ", groups, " does not divide the ", w[0], " output channels of weight ", w);
  check(x[1] == w[1] * groups, op, "input ", x, " has ", x[1], " channels but weight ", w, " expects ", w[1] * groups,
        " (groups = ", groups, ")");
  check(w[2] > 0, op, "weight ", w, " has an empty kernel");
  const index_t eff = d * (w[2] - 1) + 1, padded = x[2] + 2 * p;
  check(eff <= padded, op, "the kernel ", w[2], " (", eff, " with dilation ", d, ") is larger than the padded input ",
        padded, " (input ", x, ", weight ", w, ", padding ", p, ")");
}

template <class X, class W>
constexpr bool conv1d_operands_ok() {
  static_assert(X::rank == 3, "ft::conv1d: the input must be rank 3 [N, C, L]; unsqueeze(0) a single sequence");
  static_assert(W::rank == 3, "ft::conv1d: the weight must be rank 3 [out_channels, in_channels / groups, kernel]");
  static_assert(std::is_same_v<typename X::value_type, typename W::value_type>,
                "ft::conv1d: the operands must have the same element type; convert one with ft::cast<T>");
  static_assert(std::is_same_v<typename X::value_type, float> || std::is_same_v<typename X::value_type, double>,
                "ft::conv1d: only float and double tensors are supported");
  return X::rank == 3 && W::rank == 3 && std::is_same_v<typename X::value_type, typename W::value_type>;
}

// ---- conv_transpose2d: the data gradient of a conv2d ----

// conv_transpose2d(x, w) is conv2d_backward_data of the conv2d with these options whose input
// has the transposed convolution's output shape and whose weight is w [C_in, C_out / groups, kH, kW].
inline Conv2dOptions conv_transpose2d_as_conv2d(const ConvTranspose2dOptions& o) {
  return Conv2dOptions{.stride = o.stride, .padding = o.padding, .dilation = o.dilation, .groups = o.groups};
}

// Checks conv_transpose2d's operands and returns its output shape [N, C_out, oH, oW] with
// oH = (H − 1)·stride − 2·padding + dilation·(kH − 1) + output_padding + 1 (same for the width).
inline Shape<4> conv_transpose2d_shape(const char* op, const Shape<4>& x, const Shape<4>& w,
                                       const ConvTranspose2dOptions& opt) {
  const Pair s = opt.stride, p = opt.padding, out_pad = opt.output_padding, d = opt.dilation;
  const index_t groups = opt.groups;
  check(s.h > 0 && s.w > 0, op, "stride must be positive, got ", s);
  check(d.h > 0 && d.w > 0, op, "dilation must be positive, got ", d);
  check(p.h >= 0 && p.w >= 0, op, "padding must be non-negative, got ", p);
  check(out_pad.h >= 0 && out_pad.w >= 0, op, "output_padding must be non-negative, got ", out_pad);
  check(groups > 0, op, "groups must be positive, got ", groups);
  // torch's rule: output_padding < max(stride, dilation), in each dimension
  check(out_pad.h < std::max(s.h, d.h) && out_pad.w < std::max(s.w, d.w), op, "output_padding ", out_pad,
        " must be smaller than either stride ", s, " or dilation ", d);
  check(x[1] % groups == 0, op, "groups = ", groups, " does not divide the ", x[1], " channels of input ", x);
  check(x[1] == w[0], op, "input ", x, " has ", x[1], " channels but weight ", w, " expects ", w[0],
        " (a transposed convolution's weight is [in_channels, out_channels / groups, kH, kW])");
  check(w[2] > 0 && w[3] > 0, op, "weight ", w, " has an empty kernel");
  check(x[2] > 0 && x[3] > 0, op, "input ", x, " has an empty image");
  const index_t oh = (x[2] - 1) * s.h - 2 * p.h + d.h * (w[2] - 1) + out_pad.h + 1;
  const index_t ow = (x[3] - 1) * s.w - 2 * p.w + d.w * (w[3] - 1) + out_pad.w + 1;
  check(oh > 0 && ow > 0, op, "the output would be ", hw(oh, ow), " (input ", x, ", weight ", w, ", stride ", s,
        ", padding ", p, ", dilation ", d, ", output_padding ", out_pad, "): the padding is too large");
  return {x[0], w[1] * groups, oh, ow};
}

template <class X, class W>
constexpr bool conv_transpose2d_operands_ok() {
  static_assert(X::rank == 4, "ft::conv_transpose2d: the input must be rank 4 [N, C, H, W]; unsqueeze(0) an image");
  static_assert(W::rank == 4,
                "ft::conv_transpose2d: the weight must be rank 4 [in_channels, out_channels / groups, kH, kW]");
  static_assert(std::is_same_v<typename X::value_type, typename W::value_type>,
                "ft::conv_transpose2d: the operands must have the same element type; convert one with ft::cast<T>");
  static_assert(std::is_same_v<typename X::value_type, float> || std::is_same_v<typename X::value_type, double>,
                "ft::conv_transpose2d: only float and double tensors are supported");
  return X::rank == 4 && W::rank == 4 && std::is_same_v<typename X::value_type, typename W::value_type>;
}

}  // namespace linalg::detail

}  // namespace ft::inline FT_ABI
