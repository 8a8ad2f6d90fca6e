// The activation family: relu, sigmoid, silu, gelu, leaky_relu, elu and softplus, with
// torch.nn.functional's parameters and their torch gradients. (softmax and log_softmax are
// row-wise: linalg/rowwise.hpp.)
#pragma once

#include <string_view>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/ops/arithmetic.hpp"
#include "ft/ops/common.hpp"
#include "ft/ops/comparison.hpp"
#include "ft/ops/unary_math.hpp"

namespace ft::inline FT_ABI::op {

// NaN passes through (x < 0 is false for NaN), as torch.relu.
struct Relu {
  static constexpr const char* name = "relu";
  template <class T>
  FT_HD FT_INLINE T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>)
      return x;
    else
      return x < T(0) ? T(0) : x;
  }
};
struct Sigmoid {
  static constexpr const char* name = "sigmoid";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  template <class T>
  FT_HD FT_INLINE auto operator()(T in) const {
    using F = float_promote_t<T>;
    F x = static_cast<F>(in);
    return static_cast<F>(F(1) / (F(1) + math::exp(-x)));
  }
};
struct Silu {
  static constexpr const char* name = "silu";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  template <class T>
  FT_HD FT_INLINE auto operator()(T in) const {
    using F = float_promote_t<T>;
    F x = static_cast<F>(in);
    return static_cast<F>(x / (F(1) + math::exp(-x)));
  }
};
// gelu(x) = x·Φ(x) = x/2·(1 + erf(x/√2)); with approximate_tanh,
// x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))) as torch's approximate="tanh".
//
// detail::gelu_cdf gives c and its derivative dc, so that gelu(x) = x·c and gelu'(x) = c + x·dc
// in either form. On the host, in float, both forms are computed from one exp and one selected
// by a blend: the form is a runtime flag, and a branch on it would keep the fused CPU loop
// scalar (GCC does not unswitch at -O2, and if-conversion fails on it even under omp simd). The
// erf form's exp, e^{−x²/2}, is also its density's, so the gradient costs one exp.
namespace detail {
template <class F>
struct GeluCdf {
  F c, dc;
};
template <class F>
FT_HD FT_INLINE GeluCdf<F> gelu_cdf(F x, bool approximate_tanh) {
  const F beta = F(0.79788456080286535588), kappa = F(0.044715);
#if !defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<F, float>) {
    const float z = x * 0.70710678118654752440f, u = beta * (x + kappa * x * x * x);
    const float e = math::exp(math::detail::blend(approximate_tanh, 2.0f * ::fabsf(u), -(z * z)));
    const float t = math::detail::tanh_given_exp(u, e), erf_z = math::detail::erf_given_exp(z, e);
    const float c_tanh = 0.5f * (1.0f + t), dc_tanh = 0.5f * (1.0f - t * t) * beta * (1.0f + 3.0f * kappa * x * x);
    const float c_erf = 0.5f * (1.0f + erf_z), dc_erf = e * 0.39894228040143267794f;
    return {math::detail::blend(approximate_tanh, c_tanh, c_erf),
            math::detail::blend(approximate_tanh, dc_tanh, dc_erf)};
  }
#endif
  if (approximate_tanh) {
    const F t = math::tanh(beta * (x + kappa * x * x * x));
    return {F(0.5) * (F(1) + t), F(0.5) * (F(1) - t * t) * beta * (F(1) + F(3) * kappa * x * x)};
  }
  return {F(0.5) * (F(1) + math::erf(x * F(0.70710678118654752440))),
          math::exp(F(-0.5) * x * x) * F(0.39894228040143267794)};
}
}  // namespace detail

struct Gelu {
  static constexpr const char* name = "gelu";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  bool approximate_tanh = false;
  template <class T>
  FT_HD FT_INLINE float_promote_t<T> operator()(T in) const {
    using F = float_promote_t<T>;
    const F x = static_cast<F>(in);
    return x * detail::gelu_cdf(x, approximate_tanh).c;
  }
};
struct LeakyRelu {
  static constexpr const char* name = "leaky_relu";
  double negative_slope = 0.01;
  template <class T>
  FT_HD FT_INLINE float_promote_t<T> operator()(T in) const {
    using F = float_promote_t<T>;
    F x = static_cast<F>(in);
    return x < F(0) ? x * static_cast<F>(negative_slope) : x;
  }
};
// elu(x) = x for x > 0, α·(eˣ − 1) otherwise
struct Elu {
  static constexpr const char* name = "elu";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  double alpha = 1.0;
  template <class T>
  FT_HD FT_INLINE float_promote_t<T> operator()(T in) const {
    using F = float_promote_t<T>;
    F x = static_cast<F>(in);
    return x > F(0) ? x : static_cast<F>(alpha) * math::expm1(x);
  }
};
// softplus(x) = log(1 + e^{βx})/β, linear above the threshold (as torch.nn.functional.softplus)
struct Softplus {
  static constexpr const char* name = "softplus";
  static constexpr bool costly = true;  // autograd/saved_derivatives.hpp
  double beta = 1.0;
  double threshold = 20.0;
  template <class T>
  FT_HD FT_INLINE float_promote_t<T> operator()(T in) const {
    using F = float_promote_t<T>;
    F x = static_cast<F>(in), b = static_cast<F>(beta);
    return x * b > static_cast<F>(threshold) ? x : math::log1p(math::exp(x * b)) / b;
  }
};

using ActivationOps = List<Relu, Sigmoid, Silu, Gelu, LeakyRelu, Elu, Softplus>;

}  // namespace ft::inline FT_ABI::op

namespace ft::inline FT_ABI {

FT_UNARY_FUNCTION(relu, Relu)
FT_UNARY_FUNCTION(sigmoid, Sigmoid)
FT_UNARY_FUNCTION(silu, Silu)
// approximate: "none" (the erf form) or "tanh", as torch.nn.functional.gelu.
template <Expression A>
auto gelu(const A& a, std::string_view approximate = "none") {
  check(approximate == "none" || approximate == "tanh", "gelu", "approximate must be \"none\" or \"tanh\", got \"",
        approximate, "\"");
  return make_unary(op::Gelu{approximate == "tanh"}, a);
}
template <Expression A>
auto leaky_relu(const A& a, double negative_slope = 0.01) {
  return make_unary(op::LeakyRelu{negative_slope}, a);
}
template <Expression A>
auto elu(const A& a, double alpha = 1.0) {
  return make_unary(op::Elu{alpha}, a);
}
template <Expression A>
auto softplus(const A& a, double beta = 1.0, double threshold = 20.0) {
  return make_unary(op::Softplus{beta, threshold}, a);
}

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::autograd {

template <>
struct UnaryGrad<op::Relu> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A>
  static auto grad(const op::Relu&, const G& g, const A& a) {
    return where(a > 0, g, 0);
  }
};
template <>
struct UnaryGrad<op::Sigmoid> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A>
  static auto grad(const op::Sigmoid&, const G& g, const A& a) {
    return g * sigmoid(a) * (1 - sigmoid(a));
  }
};
template <>
struct UnaryGrad<op::Silu> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A>
  static auto grad(const op::Silu&, const G& g, const A& a) {
    return g * sigmoid(a) * (a * (1 - sigmoid(a)) + 1);
  }
};

// Derivatives with a runtime parameter, as binary functors (g, x) → g·f'(x).
namespace dop {
struct GeluGrad {
  static constexpr const char* name = "gelu_backward";
  bool approximate_tanh;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g_, X x_) const {
    using F = float_promote_t<promote_t<G, X>>;
    const F g = static_cast<F>(g_), x = static_cast<F>(x_);
    const auto cdf = op::detail::gelu_cdf(x, approximate_tanh);
    return g * (cdf.c + x * cdf.dc);
  }
};
struct LeakyReluGrad {
  static constexpr const char* name = "leaky_relu_backward";
  double negative_slope;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g, X x) const {
    using F = float_promote_t<promote_t<G, X>>;
    return x > X(0) ? static_cast<F>(g) : static_cast<F>(g) * static_cast<F>(negative_slope);
  }
};
struct EluGrad {
  static constexpr const char* name = "elu_backward";
  double alpha;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g, X x) const {
    using F = float_promote_t<promote_t<G, X>>;
    return x > X(0) ? static_cast<F>(g) : static_cast<F>(g) * static_cast<F>(alpha) * math::exp(static_cast<F>(x));
  }
};
struct SoftplusGrad {
  static constexpr const char* name = "softplus_backward";
  double beta, threshold;
  template <class G, class X>
  FT_HD FT_INLINE auto operator()(G g_, X x_) const {
    using F = float_promote_t<promote_t<G, X>>;
    F g = static_cast<F>(g_), bx = static_cast<F>(x_) * static_cast<F>(beta);
    return bx > static_cast<F>(threshold) ? g : g / (F(1) + math::exp(-bx));
  }
};
}  // namespace dop

#define FT_PARAM_UNARY_GRAD(Op, Grad, ...)                      \
  template <>                                                   \
  struct UnaryGrad<op::Op> {                                    \
    static constexpr Rule rule = Rule::differentiable;          \
    template <class G, class A>                                 \
    static auto grad(const op::Op& o, const G& g, const A& a) { \
      return make_binary(dop::Grad{__VA_ARGS__}, g, a);         \
    }                                                           \
  };
FT_PARAM_UNARY_GRAD(Gelu, GeluGrad, o.approximate_tanh)
FT_PARAM_UNARY_GRAD(LeakyRelu, LeakyReluGrad, o.negative_slope)
FT_PARAM_UNARY_GRAD(Elu, EluGrad, o.alpha)
FT_PARAM_UNARY_GRAD(Softplus, SoftplusGrad, o.beta, o.threshold)
#undef FT_PARAM_UNARY_GRAD

}  // namespace ft::inline FT_ABI::autograd
