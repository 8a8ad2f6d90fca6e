// ft::conv2d (NCHW, torch.nn.functional.conv2d's semantics) and the primitives its backward
// pass needs: conv2d_backward_data (dx), conv2d_backward_weight (dw), conv2d_backward_bias (db).
//
// CPU: im2col (one OpenMP loop over the batch's channel planes) + the strided-batched GEMM of
// linalg/gemm.hpp, the groups as the GEMM's batch; col2im (one loop) for the data gradient.
// CUDA: cuDNN 9's legacy convolution calls; the algorithm comes from cuDNN's heuristics and is
// cached with its workspace size per (shape, options, dtype, device, TF32 flag); the workspace
// comes from the library's stream-ordered allocator.
//
// The file ends with conv2d on Vars: one tape node whose backward runs the three primitives.
#pragma once

#include <algorithm>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/conv_cpu.hpp"
#include "ft/linalg/conv_cuda.hpp"
#include "ft/linalg/conv_geometry.hpp"

namespace ft::inline FT_ABI {

namespace linalg::detail {

template <class T>
Tensor<T, 4> conv2d_impl(const Tensor<T, 4>& x, const Tensor<T, 4>& w, const Tensor<T, 1>* bias,
                         const Conv2dOptions& opt) {
  constexpr const char* op = "conv2d";
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
    conv2d_cpu<T>(g, x.data(), w.data(), y.data(), bias != nullptr);
  } else {
#if FT_CUDNN_ENABLED
    conv2d_cudnn<T>(op, CudnnConvKind::forward, g, device, x.data(), w.data(), nullptr, y.data(), bias != nullptr);
#else
    no_cudnn(op, device);
#endif
  }
  return y;
}

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
auto conv2d_backward_data(const G& grad_out, const W& w, const Shape<4>& x_shape, const Conv2dOptions& options = {}) {
  using T = typename G::value_type;
  constexpr const char* op = "conv2d_backward_data";
  if constexpr (linalg::detail::conv_operands_ok<G, W>()) {
    using namespace linalg::detail;
    auto dy = contiguous_operand(grad_out, op, "grad_out");
    auto wc = contiguous_operand(w, op, "weight");
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
      conv2d_backward_data_cpu<T>(g, dy.data(), wc.data(), dx.data());
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

// dw = ∂L/∂w of conv2d given the input x and dy = ∂L/∂y, for a weight of shape w_shape,
// accumulated over the batch in a fixed order (bit-identical run after run).
template <Expression X, Expression G>
auto conv2d_backward_weight(const X& x, const G& grad_out, const Shape<4>& w_shape, const Conv2dOptions& options = {}) {
  using T = typename X::value_type;
  constexpr const char* op = "conv2d_backward_weight";
  if constexpr (linalg::detail::conv_operands_ok<X, G>()) {
    using namespace linalg::detail;
    auto xc = contiguous_operand(x, op, "input");
    auto dy = contiguous_operand(grad_out, op, "grad_out");
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
      conv2d_backward_weight_cpu<T>(g, xc.data(), dy.data(), dw.data());
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

// db = ∂L/∂bias given dy [N, O, oH, oW]: the sum over every axis but the channel. One launch,
// deterministic (a fixed summation order in double on both devices).
template <Expression G>
auto conv2d_backward_bias(const G& grad_out) {
  using T = typename G::value_type;
  constexpr const char* op = "conv2d_backward_bias";
  static_assert(G::rank == 4, "ft::conv2d_backward_bias: grad_out must be rank 4 [N, O, oH, oW]");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "ft::conv2d_backward_bias: only float and double tensors are supported");
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
  auto bwd = [vx, vw, b, options](const Tensor<T, 4>& g) {
    if (vx.requires_grad()) vx.state().accumulate(conv2d_backward_data(g, vw.value(), vx.shape(), options));
    if (vw.requires_grad()) vw.state().accumulate(conv2d_backward_weight(vx.value(), g, vw.shape(), options));
    if (b.defined() && b.requires_grad()) b.state().accumulate(conv2d_backward_bias(g));
  };
  return record("conv2d", y, std::move(bwd), vx, vw, b);
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
