// Ops that are compositions of the primitive ones (torch's definitions written out): they fuse
// into the statement that uses them and are differentiated through their parts, so they need no
// functor or adjoint rule of their own. Activations: hardtanh, relu6, hardsigmoid, hardswish,
// mish; in ft::nn::functional selu, celu, softsign, tanhshrink, softshrink, hardshrink,
// logsigmoid, threshold. Math: lerp, addcmul, addcdiv, logaddexp.
//
// The gradient at a kink is the parts' one: hardtanh's (clamp's) passes the gradient at x = min
// and x = max where torch's hardtanh_backward gives 0 there; elsewhere they agree.
#pragma once

#include <limits>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/ops/activation.hpp"
#include "ft/ops/arithmetic.hpp"
#include "ft/ops/comparison.hpp"
#include "ft/ops/unary_math.hpp"

namespace ft::inline FT_ABI {

// ---- activations ----

// torch.nn.functional.hardtanh: x clamped to [min_val, max_val].
template <Expression A>
auto hardtanh(const A& x, double min_val = -1.0, double max_val = 1.0) {
  check(min_val <= max_val, "hardtanh", "min_val ", min_val, " must not exceed max_val ", max_val);
  return clamp(x, min_val, max_val);
}

// torch.nn.functional.relu6: min(max(x, 0), 6).
template <Expression A>
auto relu6(const A& x) {
  return clamp(x, 0.0, 6.0);
}

// torch.nn.functional.hardsigmoid: relu6(x + 3) / 6.
template <Expression A>
auto hardsigmoid(const A& x) {
  return clamp(x + 3.0, 0.0, 6.0) / 6.0;
}

// torch.nn.functional.hardswish: x · relu6(x + 3) / 6.
template <Expression A>
auto hardswish(const A& x) {
  return x * (clamp(x + 3.0, 0.0, 6.0) / 6.0);
}

// torch.nn.functional.mish: x · tanh(softplus(x)).
template <Expression A>
auto mish(const A& x) {
  return x * tanh(softplus(x));
}

// ---- math ----

// torch.lerp(start, end, weight): start + weight·(end − start), written as end − (end − start)·
// (1 − weight) for weight ≥ 0.5 as torch does (exact at weight = 1). `weight` is an expression
// or a number.
template <Expression A, Expression B, class W>
requires(Expression<W> || std::is_arithmetic_v<W>) auto lerp(const A& start, const B& end, const W& weight) {
  if constexpr (Expression<W>) {
    return where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1.0 - weight));
  } else {
    const double w = static_cast<double>(weight);
    return where(Scalar<bool>{w < 0.5}, start + w * (end - start), end - (end - start) * (1.0 - w));
  }
}

// torch.addcmul(input, a, b, value): input + value·a·b.
template <Expression T, Expression A, Expression B>
auto addcmul(const T& input, const A& a, const B& b, double value = 1.0) {
  return input + value * (a * b);
}

// torch.addcdiv(input, a, b, value): input + value·a / b.
template <Expression T, Expression A, Expression B>
auto addcdiv(const T& input, const A& a, const B& b, double value = 1.0) {
  return input + value * (a / b);
}

// torch.logaddexp(a, b): log(e^a + e^b) = max(a, b) + log1p(e^{−|a − b|}) without overflow;
// two equal infinities give that infinity (a − b would be NaN).
template <Expression A, Expression B>
auto logaddexp(const A& a, const B& b) {
  return where(logical_and(abs(a) == std::numeric_limits<double>::infinity(), a == b), a,
               maximum(a, b) + log1p(exp(-abs(a - b))));
}

}  // namespace ft::inline FT_ABI

// torch.nn.functional's remaining activations, as compositions. They live in ft::nn::functional,
// not ft::, so that argument-dependent lookup on ft's types never meets them: a program's own
// `softsign` (README's custom-op example) stays unambiguous.
namespace ft::inline FT_ABI::nn::functional {

// torch.nn.functional.selu: scale · elu(x, α) with SELU's constants.
template <Expression A>
auto selu(const A& x) {
  return 1.0507009873554804934193349852946 * elu(x, 1.6732632423543772848170429916717);
}

// torch.nn.functional.celu: x for x > 0, α·(e^{x/α} − 1) otherwise.
template <Expression A>
auto celu(const A& x, double alpha = 1.0) {
  check(alpha != 0, "celu", "alpha must not be 0 (it divides x)");
  return where(x > 0, x, alpha * expm1(x / alpha));
}

// torch.nn.functional.softsign: x / (1 + |x|).
template <Expression A>
auto softsign(const A& x) {
  return x / (1.0 + abs(x));
}

// torch.nn.functional.tanhshrink: x − tanh(x).
template <Expression A>
auto tanhshrink(const A& x) {
  return x - tanh(x);
}

// torch.nn.functional.softshrink: x − λ above λ, x + λ below −λ, 0 between (NaN stays NaN).
template <Expression A>
auto softshrink(const A& x, double lambd = 0.5) {
  check(lambd >= 0, "softshrink", "lambda must be greater or equal to 0, got ", lambd);
  return where(x > lambd, x - lambd, where(x < -lambd, x + lambd, x * 0.0));
}

// torch.nn.functional.hardshrink: 0 on [−λ, λ], x elsewhere (NaN stays NaN).
template <Expression A>
auto hardshrink(const A& x, double lambd = 0.5) {
  return where(logical_and(x >= -lambd, x <= lambd), 0.0, x);
}

// torch.nn.functional.logsigmoid: log σ(x) = min(x, 0) − log1p(e^{−|x|}), without overflow.
template <Expression A>
auto logsigmoid(const A& x) {
  return minimum(x, 0.0) - log1p(exp(-abs(x)));
}

// torch.nn.functional.threshold: `value` where x ≤ threshold, x elsewhere (NaN stays NaN).
template <Expression A>
auto threshold(const A& x, double threshold, double value) {
  return where(x <= threshold, value, x);
}

}  // namespace ft::inline FT_ABI::nn::functional
