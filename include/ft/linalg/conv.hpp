// ft::conv2d (NCHW, torch.nn.functional.conv2d's semantics) and the primitives its backward
// pass needs: conv2d_backward_data (dx), conv2d_backward_weight (dw), conv2d_backward_bias (db);
// ft::conv1d (conv2d of height 1) and ft::conv_transpose2d (conv2d's data gradient) on them.
//
// CPU: im2col (one OpenMP loop over the batch's channel planes) + the strided-batched GEMM of
// linalg/gemm.hpp, the groups as the GEMM's batch; col2im (one loop) for the data gradient.
// CUDA: cuDNN 9's legacy convolution calls; the algorithm comes from cuDNN's heuristics and is
// cached with its workspace size per (shape, options, dtype, device, TF32 flag); the workspace
// comes from the library's stream-ordered allocator.
//
// The file ends with conv2d, conv1d and conv_transpose2d on Vars: one tape node each, whose
// backward runs the three primitives.
#pragma once

#include <algorithm>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/autocast.hpp"
#include "ft/linalg/conv_cpu.hpp"
#include "ft/linalg/conv_cuda.hpp"
#include "ft/linalg/conv_geometry.hpp"
#include "ft/ops/common.hpp"

namespace ft::inline FT_ABI {

namespace linalg::detail {

template <class T>
Tensor<T, 4> conv2d_impl(const Tensor<T, 4>& x, const Tensor<T, 4>& w, const Tensor<T, 1>* bias,
                         const Conv2dOptions& opt, const char* op = "conv2d") {
  if constexpr (std::is_same_v<T, float>) {  // ft::autocast: in the guard's type, the result rounded to it
    auto low = amp::with_autocast_type(x.device(), [&]<class H>() {
      const Tensor<H, 4> xh = cast<H>(x), wh = cast<H>(w);
      Tensor<H, 1> bh;
      if (bias) bh = cast<H>(*bias);
      return Tensor<float, 4>(cast<float>(conv2d_impl<H>(xh, wh, bias ? &bh : nullptr, opt, op)));
    });
    if (low) return *low;
  }
  if constexpr (is_half_v<T>) {  // on the CPU in float (the im2col sums too), rounded once
    if (x.device().is_cpu() && w.device().is_cpu()) {
      const amp::AutocastScope in_float(kCPU, std::nullopt);
      Tensor<float, 1> bf;
      if (bias) bf = cast<float>(*bias);
      return Tensor<T, 4>(cast<T>(conv2d_impl<float>(cast<float>(x), cast<float>(w), bias ? &bf : nullptr, opt, op)));
    }
  }
  const Device device = x.device();
  check_conv_devices(op, "input", device, "weight", w.device());
  if (bias) check_conv_devices(op, "input", device, "bias", bias->device());
  const ConvGeometry g = conv_geometry(op, x.shape(), w.shape(), opt);
  if (bias)
    check(bias->size(0) == g.o, op, "bias ", bias->shape(), " has ", bias->size(0), " elements but weight ", w.shape(),
          " has ", g.o, " output channels");
  Tensor<T, 4> y(g.out_shape(), device);
  if (y.numel() == 0) return y;
  // With a bias, y starts as the broadcast bias (one launch) and the GEMM / cuDNN adds onto it.
  if (bias) ft::detail::assign(y, bias->reshape({1, g.o, 1, 1}), op);
  if (g.kg() == 0) {  // no input channels: the output is the bias alone
    if (!bias) ft::detail::assign(y, T(0), op);
    return y;
  }
  if (device.is_cpu()) {
    if constexpr (!is_half_v<T>)
      conv2d_cpu<T>(g, x.data(), w.data(), y.data(), bias != nullptr);  // two-byte types: in float, above
  } else {
#if FT_CUDNN_ENABLED
    conv2d_cudnn<T>(op, CudnnConvKind::forward, g, device, x.data(), w.data(), nullptr, y.data(), bias != nullptr);
#else
    no_cudnn(op, device);
#endif
  }
  return y;
}

// The float and double convolutions, compiled once in the library (core/config.hpp); the float
// one with the half and bfloat16 paths that ft::autocast takes inside it.
FT_COMPILED_INSTANCE(Tensor<float, 4> conv2d_impl<float>(const Tensor<float, 4>&, const Tensor<float, 4>&,
                                                         const Tensor<float, 1>*, const Conv2dOptions&, const char*))
FT_COMPILED_INSTANCE(Tensor<double, 4> conv2d_impl<double>(const Tensor<double, 4>&, const Tensor<double, 4>&,
                                                           const Tensor<double, 1>*, const Conv2dOptions&, const char*))
}  // namespace linalg::detail

// torch.nn.functional.conv2d: x [N, C, H, W], w [O, C / groups, kH, kW] → [N, O, oH, oW] with
// oH = floor((H + 2·padding − dilation·(kH − 1) − 1) / stride) + 1 (same for the width).
// Operands that are expressions are evaluated first, strided views made contiguous.
template <Expression X, Expression W>
auto conv2d(const X& x, const W& w, const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  if constexpr (linalg::detail::conv_operands_ok<X, W>()) {
    auto xc = linalg::detail::contiguous_operand(x, "conv2d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv2d", "weight");
    return linalg::detail::conv2d_impl<T>(xc, wc, nullptr, options);
  }
}

// The same plus bias [O], added to every output pixel of its channel.
template <Expression X, Expression W, Expression B>
auto conv2d(const X& x, const W& w, const B& bias, const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  static_assert(B::rank == 1, "ft::conv2d: the bias must be rank 1 [out_channels]");
  static_assert(std::is_same_v<typename B::value_type, T>,
                "ft::conv2d: the bias must have the input's element type; convert it with ft::cast<T>");
  if constexpr (linalg::detail::conv_operands_ok<X, W>() && B::rank == 1 && std::is_same_v<typename B::value_type, T>) {
    auto xc = linalg::detail::contiguous_operand(x, "conv2d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv2d", "weight");
    auto bc = linalg::detail::contiguous_operand(bias, "conv2d", "bias");
    return linalg::detail::conv2d_impl<T>(xc, wc, &bc, options);
  }
}

// dx = ∂L/∂x of conv2d given dy = ∂L/∂y (the transposed convolution of dy with w), for an input
// of shape x_shape. Deterministic on both devices.
template <Expression G, Expression W>
Tensor<typename G::value_type, 4> conv2d_backward_data(const G& grad_out, const W& w, const Shape<4>& x_shape,
                                                       const Conv2dOptions& options = {}) {
  using T = typename G::value_type;
  constexpr const char* op = "conv2d_backward_data";
  if constexpr (linalg::detail::conv_operands_ok<G, W>()) {
    using namespace linalg::detail;
    if constexpr (!std::is_same_v<G, Tensor<T, 4>> || !std::is_same_v<W, Tensor<T, 4>>) {
      // operands evaluated first: one instance per dtype (the library's, core/config.hpp)
      return conv2d_backward_data(contiguous_operand(grad_out, op, "grad_out"), contiguous_operand(w, op, "weight"),
                                  x_shape, options);
    } else {
      const Tensor<T, 4> dy = contiguous_operand(grad_out, op, "grad_out"), wc = contiguous_operand(w, op, "weight");
      if constexpr (std::is_same_v<T, float>) {  // ft::autocast, as conv2d
        auto low = amp::with_autocast_type(dy.device(), [&]<class H>() {
          const Tensor<H, 4> dyh = cast<H>(dy), wh = cast<H>(wc);
          return Tensor<float, 4>(cast<float>(conv2d_backward_data(dyh, wh, x_shape, options)));
        });
        if (low) return *low;
      }
      if constexpr (is_half_v<T>) {  // on the CPU in float, rounded once
        if (dy.device().is_cpu() && wc.device().is_cpu()) {
          const amp::AutocastScope in_float(kCPU, std::nullopt);
          return Tensor<T, 4>(cast<T>(conv2d_backward_data(cast<float>(dy), cast<float>(wc), x_shape, options)));
        }
      }
      const Device device = dy.device();
      check_conv_devices(op, "grad_out", device, "weight", wc.device());
      const ConvGeometry g = conv_geometry(op, x_shape, wc.shape(), options);
      check_grad_out(op, g, dy.shape(), x_shape, wc.shape());
      Tensor<T, 4> dx(x_shape, device);
      if (dx.numel() == 0) return dx;
      if (dy.numel() == 0) {  // no output channels: nothing flows back
        ft::detail::assign(dx, T(0), op);
        return dx;
      }
      if (device.is_cpu()) {
        if constexpr (!is_half_v<T>)
          conv2d_backward_data_cpu<T>(g, dy.data(), wc.data(), dx.data());  // two-byte types: in float, above
      } else {
#if FT_CUDNN_ENABLED
        conv2d_cudnn<T>(op, CudnnConvKind::backward_data, g, device, nullptr, wc.data(), dy.data(), dx.data(), false);
#else
        no_cudnn(op, device);
#endif
      }
      return dx;
    }
  }
}

// dw = ∂L/∂w of conv2d given the input x and dy = ∂L/∂y, for a weight of shape w_shape,
// accumulated over the batch in a fixed order (bit-identical run after run).
template <Expression X, Expression G>
Tensor<typename X::value_type, 4> conv2d_backward_weight(const X& x, const G& grad_out, const Shape<4>& w_shape,
                                                         const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  constexpr const char* op = "conv2d_backward_weight";
  if constexpr (linalg::detail::conv_operands_ok<X, G>()) {
    using namespace linalg::detail;
    if constexpr (!std::is_same_v<X, Tensor<T, 4>> || !std::is_same_v<G, Tensor<T, 4>>) {
      // operands evaluated first: one instance per dtype (the library's, core/config.hpp)
      return conv2d_backward_weight(contiguous_operand(x, op, "input"), contiguous_operand(grad_out, op, "grad_out"),
                                    w_shape, options);
    } else {
      const Tensor<T, 4> xc = contiguous_operand(x, op, "input"), dy = contiguous_operand(grad_out, op, "grad_out");
      if constexpr (std::is_same_v<T, float>) {  // ft::autocast, as conv2d
        auto low = amp::with_autocast_type(xc.device(), [&]<class H>() {
          const Tensor<H, 4> xh = cast<H>(xc), dyh = cast<H>(dy);
          return Tensor<float, 4>(cast<float>(conv2d_backward_weight(xh, dyh, w_shape, options)));
        });
        if (low) return *low;
      }
      if constexpr (is_half_v<T>) {  // on the CPU in float, rounded once
        if (xc.device().is_cpu() && dy.device().is_cpu()) {
          const amp::AutocastScope in_float(kCPU, std::nullopt);
          return Tensor<T, 4>(cast<T>(conv2d_backward_weight(cast<float>(xc), cast<float>(dy), w_shape, options)));
        }
      }
      const Device device = xc.device();
      check_conv_devices(op, "input", device, "grad_out", dy.device());
      const ConvGeometry g = conv_geometry(op, xc.shape(), w_shape, options);
      check_grad_out(op, g, dy.shape(), xc.shape(), w_shape);
      Tensor<T, 4> dw(w_shape, device);
      if (dw.numel() == 0) return dw;
      if (dy.numel() == 0 || xc.numel() == 0) {  // an empty batch: the gradient is zero
        ft::detail::assign(dw, T(0), op);
        return dw;
      }
      if (device.is_cpu()) {
        if constexpr (!is_half_v<T>)
          conv2d_backward_weight_cpu<T>(g, xc.data(), dy.data(), dw.data());  // two-byte types: in float, above
      } else {
#if FT_CUDNN_ENABLED
        conv2d_cudnn<T>(op, CudnnConvKind::backward_filter, g, device, xc.data(), nullptr, dy.data(), dw.data(), false);
#else
        no_cudnn(op, device);
#endif
      }
      return dw;
    }
  }
}

// The float and double gradients, compiled once in the library (core/config.hpp); other
// operands reach them through the evaluated tensors.
FT_COMPILED_INSTANCE(Tensor<float, 4> conv2d_backward_data<Tensor<float, 4>, Tensor<float, 4>>(
    const Tensor<float, 4>&, const Tensor<float, 4>&, const Shape<4>&, const Conv2dOptions&))
FT_COMPILED_INSTANCE(Tensor<double, 4> conv2d_backward_data<Tensor<double, 4>, Tensor<double, 4>>(
    const Tensor<double, 4>&, const Tensor<double, 4>&, const Shape<4>&, const Conv2dOptions&))
FT_COMPILED_INSTANCE(Tensor<float, 4> conv2d_backward_weight<Tensor<float, 4>, Tensor<float, 4>>(
    const Tensor<float, 4>&, const Tensor<float, 4>&, const Shape<4>&, const Conv2dOptions&))
FT_COMPILED_INSTANCE(Tensor<double, 4> conv2d_backward_weight<Tensor<double, 4>, Tensor<double, 4>>(
    const Tensor<double, 4>&, const Tensor<double, 4>&, const Shape<4>&, const Conv2dOptions&))

// db = ∂L/∂bias given dy [N, O, oH, oW]: the sum over every axis but the channel. One launch,
// deterministic (a fixed summation order in double on both devices).
template <Expression G>
auto conv2d_backward_bias(const G& grad_out) {
  using T = typename G::value_type;
  constexpr const char* op = "conv2d_backward_bias";
  static_assert(G::rank == 4, "ft::conv2d_backward_bias: grad_out must be rank 4 [N, O, oH, oW]");
  static_assert(is_floating_v<T>,
                "ft::conv2d_backward_bias: grad_out must be floating (float, double, half, bfloat16)");
  if constexpr (G::rank == 4) {
    auto dy = linalg::detail::contiguous_operand(grad_out, op, "grad_out");
    const Device device = dy.device();
    const index_t n = dy.size(0), o = dy.size(1), p = dy.size(2) * dy.size(3);
    Tensor<T, 1> db(Shape<1>{o}, device);
    if (o == 0) return db;
    if (n * p == 0) {
      ft::detail::assign(db, T(0), op);
      return db;
    }
    if (device.is_cpu()) {
      linalg::detail::conv2d_backward_bias_cpu<T>(dy.data(), db.data(), n, o, p);
    } else {
#if FT_CUDA_ENABLED
      linalg::detail::conv2d_backward_bias_cuda<T>(device, dy.data(), db.data(), n, o, p);
#else
      cuda::require_device(device, op);
#endif
    }
    return db;
  }
}

// ---- conv1d: conv2d on [N, C, 1, L] ----

namespace linalg::detail {

template <class T>
Tensor<T, 3> conv1d_impl(const Tensor<T, 3>& x, const Tensor<T, 3>& w, const Tensor<T, 1>* bias,
                         const Conv1dOptions& opt) {
  constexpr const char* op = "conv1d";
  check_conv_devices(op, "input", x.device(), "weight", w.device());
  if (bias) check_conv_devices(op, "input", x.device(), "bias", bias->device());
  check_conv1d(op, x.shape(), w.shape(), opt);
  if (bias)
    check(bias->size(0) == w.size(0), op, "bias ", bias->shape(), " has ", bias->size(0), " elements but weight ",
          w.shape(), " has ", w.size(0), " output channels");
  const Conv2dOptions opt2 = conv1d_as_conv2d(opt);
  return conv2d_impl<T>(x.unsqueeze(2), w.unsqueeze(2), bias, opt2, op).squeeze(2);
}

}  // namespace linalg::detail

// torch.nn.functional.conv1d: x [N, C, L], w [O, C / groups, K] → [N, O, oL] with
// oL = floor((L + 2·padding − dilation·(K − 1) − 1) / stride) + 1; conv2d's back-ends on a
// height of 1 (im2col + GEMM on the CPU, cuDNN on a GPU).
template <Expression X, Expression W>
auto conv1d(const X& x, const W& w, const Conv1dOptions& options = {}) {
  using T = typename X::value_type;
  if constexpr (linalg::detail::conv1d_operands_ok<X, W>()) {
    auto xc = linalg::detail::contiguous_operand(x, "conv1d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv1d", "weight");
    return linalg::detail::conv1d_impl<T>(xc, wc, nullptr, options);
  }
}

// The same plus bias [O], added at every position of its channel.
template <Expression X, Expression W, Expression B>
auto conv1d(const X& x, const W& w, const B& bias, const Conv1dOptions& options = {}) {
  using T = typename X::value_type;
  static_assert(B::rank == 1, "ft::conv1d: the bias must be rank 1 [out_channels]");
  static_assert(std::is_same_v<typename B::value_type, T>,
                "ft::conv1d: the bias must have the input's element type; convert it with ft::cast<T>");
  if constexpr (linalg::detail::conv1d_operands_ok<X, W>() && B::rank == 1 &&
                std::is_same_v<typename B::value_type, T>) {
    auto xc = linalg::detail::contiguous_operand(x, "conv1d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv1d", "weight");
    auto bc = linalg::detail::contiguous_operand(bias, "conv1d", "bias");
    return linalg::detail::conv1d_impl<T>(xc, wc, &bc, options);
  }
}

// ---- conv_transpose2d: conv2d's data gradient ----

namespace linalg::detail {

// x [N, C, H, W] grown to [N, C, h, w] ⊇ it with zeros below and to the right (x itself when it
// has that size): the rows and columns of a conv2d output that no transposed-convolution input
// feeds, when output_padding ≥ stride (allowed while it stays below the dilation).
template <class T>
Tensor<T, 4> zero_extended(const Tensor<T, 4>& x, index_t h, index_t w, const char* op) {
  if (x.size(2) == h && x.size(3) == w) return x;
  Tensor<T, 4> out(Shape<4>{x.size(0), x.size(1), h, w}, x.device());
  ft::detail::assign(out, T(0), op);
  ft::detail::assign(out.slice(2, 0, x.size(2)).slice(3, 0, x.size(3)), x, op);
  return out;
}

template <class T>
Tensor<T, 4> conv_transpose2d_impl(const Tensor<T, 4>& x, const Tensor<T, 4>& w, const Tensor<T, 1>* bias,
                                   const ConvTranspose2dOptions& opt) {
  constexpr const char* op = "conv_transpose2d";
  if constexpr (std::is_same_v<T, float>) {  // ft::autocast, as conv2d
    auto low = amp::with_autocast_type(x.device(), [&]<class H>() {
      const Tensor<H, 4> xh = cast<H>(x), wh = cast<H>(w);
      Tensor<H, 1> bh;
      if (bias) bh = cast<H>(*bias);
      return Tensor<float, 4>(cast<float>(conv_transpose2d_impl<H>(xh, wh, bias ? &bh : nullptr, opt)));
    });
    if (low) return *low;
  }
  if constexpr (is_half_v<T>) {  // on the CPU in float, rounded once
    if (x.device().is_cpu() && w.device().is_cpu()) {
      const amp::AutocastScope in_float(kCPU, std::nullopt);
      Tensor<float, 1> bf;
      if (bias) bf = cast<float>(*bias);
      return Tensor<T, 4>(
          cast<T>(conv_transpose2d_impl<float>(cast<float>(x), cast<float>(w), bias ? &bf : nullptr, opt)));
    }
  }
  const Device device = x.device();
  check_conv_devices(op, "input", device, "weight", w.device());
  if (bias) check_conv_devices(op, "input", device, "bias", bias->device());
  const Shape<4> ys = conv_transpose2d_shape(op, x.shape(), w.shape(), opt);
  if (bias)
    check(bias->size(0) == ys[1], op, "bias ", bias->shape(), " has ", bias->size(0), " elements but weight ",
          w.shape(), " has ", ys[1], " output channels (groups = ", opt.groups, ")");
  // The conv2d whose data gradient this is: input ys, weight w, output x (plus the rows of
  // output_padding ≥ stride, which no output reads).
  const Conv2dOptions opt2 = conv_transpose2d_as_conv2d(opt);
  const ConvGeometry g = conv_geometry(op, ys, w.shape(), opt2);
  Tensor<T, 4> y(ys, device);
  if (y.numel() == 0) return y;
  if (x.size(1) == 0) {  // no input channels: the output is the bias alone
    if (bias)
      ft::detail::assign(y, bias->reshape({1, ys[1], 1, 1}), op);
    else
      ft::detail::assign(y, T(0), op);
    return y;
  }
  const Tensor<T, 4> dy = zero_extended(x, g.oh, g.ow, op);
  if (device.is_cpu()) {
    if constexpr (!is_half_v<T>)
      conv2d_backward_data_cpu<T>(g, dy.data(), w.data(), y.data());  // two-byte types: in float, above
  } else {
#if FT_CUDNN_ENABLED
    conv2d_cudnn<T>(op, CudnnConvKind::backward_data, g, device, nullptr, w.data(), dy.data(), y.data(), false);
#else
    no_cudnn(op, device);
#endif
  }
  // col2im overwrites its output, so the bias is added after (one in-place launch on both devices).
  if (bias) ft::detail::assign(y, y + bias->reshape({1, ys[1], 1, 1}), op);
  return y;
}

}  // namespace linalg::detail

// torch.nn.functional.conv_transpose2d: x [N, C_in, H, W], w [C_in, C_out / groups, kH, kW] →
// [N, C_out, oH, oW] with oH = (H − 1)·stride − 2·padding + dilation·(kH − 1) + output_padding + 1
// (same for the width): conv2d's data gradient (col2im on the CPU, cuDNN's backward-data on a GPU).
template <Expression X, Expression W>
auto conv_transpose2d(const X& x, const W& w, const ConvTranspose2dOptions& options = {}) {
  using T = typename X::value_type;
  if constexpr (linalg::detail::conv_transpose2d_operands_ok<X, W>()) {
    auto xc = linalg::detail::contiguous_operand(x, "conv_transpose2d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv_transpose2d", "weight");
    return linalg::detail::conv_transpose2d_impl<T>(xc, wc, nullptr, options);
  }
}

// The same plus bias [C_out], added to every output pixel of its channel.
template <Expression X, Expression W, Expression B>
auto conv_transpose2d(const X& x, const W& w, const B& bias, const ConvTranspose2dOptions& options = {}) {
  using T = typename X::value_type;
  static_assert(B::rank == 1, "ft::conv_transpose2d: the bias must be rank 1 [out_channels]");
  static_assert(std::is_same_v<typename B::value_type, T>,
                "ft::conv_transpose2d: the bias must have the input's element type; convert it with ft::cast<T>");
  if constexpr (linalg::detail::conv_transpose2d_operands_ok<X, W>() && B::rank == 1 &&
                std::is_same_v<typename B::value_type, T>) {
    auto xc = linalg::detail::contiguous_operand(x, "conv_transpose2d", "input");
    auto wc = linalg::detail::contiguous_operand(w, "conv_transpose2d", "weight");
    auto bc = linalg::detail::contiguous_operand(bias, "conv_transpose2d", "bias");
    return linalg::detail::conv_transpose2d_impl<T>(xc, wc, &bc, options);
  }
}

}  // namespace ft::inline FT_ABI

// ---- on Vars: backward-data, backward-filter and the bias sum ----
namespace ft::inline FT_ABI {

// ---- conv2d ----
namespace autograd::detail {
template <class VX, class VW, class VB>
auto conv2d_var(const VX& vx, const VW& vw, const VB* vb, const Conv2dOptions& options) {
  using T = typename VX::value_type;
  Tensor<T, 4> y = vb ? conv2d(vx.value(), vw.value(), vb->value(), options) : conv2d(vx.value(), vw.value(), options);
  VB b = vb ? *vb : VB();
  auto bwd = [vx, vw, b, options, ac = amp::autocast_dtype(vx.device())](const Tensor<T, 4>& g) {
    const amp::AutocastScope precision(vx.device().type, ac);  // the forward's precision
    if (vx.requires_grad()) vx.state().accumulate(conv2d_backward_data(g, vw.value(), vx.shape(), options));
    if (vw.requires_grad()) vw.state().accumulate(conv2d_backward_weight(vx.value(), g, vw.shape(), options));
    if (b.defined() && b.requires_grad()) b.state().accumulate(conv2d_backward_bias(g));
  };
  auto out = record("conv2d", y, std::move(bwd), vx, vw, b);
  trace::when_traced([&](trace::Sink& s) {
    std::vector<std::string> in = {trace::name(s, vx), trace::name(s, vw)};
    if (b.defined()) in.push_back(trace::name(s, b));
    const auto& o = options;
    boundary(s, "Conv", in, out,
             {trace::Attribute::integers("strides", {o.stride.h, o.stride.w}),
              trace::Attribute::integers("pads", {o.padding.h, o.padding.w, o.padding.h, o.padding.w}),
              trace::Attribute::integers("dilations", {o.dilation.h, o.dilation.w}),
              trace::Attribute::integer("group", o.groups),
              trace::Attribute::integers("kernel_shape", {vw.size(2), vw.size(3)})});
  });
  return out;
}
}  // namespace autograd::detail

template <Expression X, Expression W>
requires(autograd::detail::any_var_v<X, W>) auto conv2d(const X& x, const W& w, const Conv2dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  using VB = Var<typename decltype(vx)::value_type, 1>;
  return autograd::detail::conv2d_var(vx, vw, static_cast<const VB*>(nullptr), options);
}
template <Expression X, Expression W, Expression B>
requires(autograd::detail::any_var_v<X, W, B>) auto conv2d(const X& x, const W& w, const B& bias,
                                                           const Conv2dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  auto vb = autograd::to_var(bias);
  return autograd::detail::conv2d_var(vx, vw, &vb, options);
}

}  // namespace ft::inline FT_ABI

// ---- conv1d and conv_transpose2d on Vars: one tape node each, conv2d's primitives backward ----
namespace ft::inline FT_ABI {

namespace autograd::detail {
template <class VX, class VW, class VB>
auto conv1d_var(const VX& vx, const VW& vw, const VB* vb, const Conv1dOptions& options) {
  using T = typename VX::value_type;
  Tensor<T, 3> y = vb ? conv1d(vx.value(), vw.value(), vb->value(), options) : conv1d(vx.value(), vw.value(), options);
  VB b = vb ? *vb : VB();
  // On the [N, C, 1, L] views: dx, dw as conv2d's, with the height dimension dropped again.
  auto bwd = [vx, vw, b, options, ac = amp::autocast_dtype(vx.device())](const Tensor<T, 3>& g) {
    const amp::AutocastScope precision(vx.device().type, ac);
    const Conv2dOptions opt2 = linalg::detail::conv1d_as_conv2d(options);
    const Tensor<T, 4> g4 = g.unsqueeze(2);
    const Tensor<T, 4> x4 = vx.value().unsqueeze(2), w4 = vw.value().unsqueeze(2);
    if (vx.requires_grad()) vx.state().accumulate(conv2d_backward_data(g4, w4, x4.shape(), opt2).squeeze(2));
    if (vw.requires_grad()) vw.state().accumulate(conv2d_backward_weight(x4, g4, w4.shape(), opt2).squeeze(2));
    if (b.defined() && b.requires_grad()) b.state().accumulate(conv2d_backward_bias(g4));
  };
  auto out = record("conv1d", y, std::move(bwd), vx, vw, b);
  trace::when_traced([&](trace::Sink& s) {
    std::vector<std::string> in = {trace::name(s, vx), trace::name(s, vw)};
    if (b.defined()) in.push_back(trace::name(s, b));
    const auto& o = options;
    boundary(
        s, "Conv", in, out,
        {trace::Attribute::integers("strides", {o.stride}), trace::Attribute::integers("pads", {o.padding, o.padding}),
         trace::Attribute::integers("dilations", {o.dilation}), trace::Attribute::integer("group", o.groups),
         trace::Attribute::integers("kernel_shape", {vw.size(2)})});
  });
  return out;
}

template <class VX, class VW, class VB>
auto conv_transpose2d_var(const VX& vx, const VW& vw, const VB* vb, const ConvTranspose2dOptions& options) {
  using T = typename VX::value_type;
  Tensor<T, 4> y = vb ? conv_transpose2d(vx.value(), vw.value(), vb->value(), options)
                      : conv_transpose2d(vx.value(), vw.value(), options);
  VB b = vb ? *vb : VB();
  // y = conv2d_backward_data(x, w) for the conv2d of input y's shape, so dx = conv2d(g, w) (cut to
  // x's size when output_padding ≥ stride) and dw = that conv2d's weight gradient with input g
  // and output gradient x.
  auto bwd = [vx, vw, b, options, ac = amp::autocast_dtype(vx.device())](const Tensor<T, 4>& g) {
    const amp::AutocastScope precision(vx.device().type, ac);  // the forward's precision
    const Conv2dOptions opt2 = linalg::detail::conv_transpose2d_as_conv2d(options);
    const index_t h = vx.size(2), w = vx.size(3);
    if (vx.requires_grad()) vx.state().accumulate(conv2d(g, vw.value(), opt2).slice(2, 0, h).slice(3, 0, w));
    if (vw.requires_grad()) {
      const auto geo = linalg::detail::conv_geometry("conv_transpose2d", g.shape(), vw.shape(), opt2);
      const Tensor<T, 4> x = linalg::detail::zero_extended(vx.value(), geo.oh, geo.ow, "conv_transpose2d");
      vw.state().accumulate(conv2d_backward_weight(g, x, vw.shape(), opt2));
    }
    if (b.defined() && b.requires_grad()) b.state().accumulate(conv2d_backward_bias(g));
  };
  return record("conv_transpose2d", y, std::move(bwd), vx, vw, b);
}
}  // namespace autograd::detail

template <Expression X, Expression W>
requires(autograd::detail::any_var_v<X, W>) auto conv1d(const X& x, const W& w, const Conv1dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  using VB = Var<typename decltype(vx)::value_type, 1>;
  return autograd::detail::conv1d_var(vx, vw, static_cast<const VB*>(nullptr), options);
}
template <Expression X, Expression W, Expression B>
requires(autograd::detail::any_var_v<X, W, B>) auto conv1d(const X& x, const W& w, const B& bias,
                                                           const Conv1dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  auto vb = autograd::to_var(bias);
  return autograd::detail::conv1d_var(vx, vw, &vb, options);
}

template <Expression X, Expression W>
requires(autograd::detail::any_var_v<X, W>) auto conv_transpose2d(const X& x, const W& w,
                                                                  const ConvTranspose2dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  using VB = Var<typename decltype(vx)::value_type, 1>;
  return autograd::detail::conv_transpose2d_var(vx, vw, static_cast<const VB*>(nullptr), options);
}
template <Expression X, Expression W, Expression B>
requires(autograd::detail::any_var_v<X, W, B>) auto conv_transpose2d(const X& x, const W& w, const B& bias,
                                                                     const ConvTranspose2dOptions& options = {}) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(w);
  auto vb = autograd::to_var(bias);
  return autograd::detail::conv_transpose2d_var(vx, vw, &vb, options);
}

}  // namespace ft::inline FT_ABI
