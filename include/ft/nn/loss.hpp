// Loss functions with torch.nn.functional's semantics (ft::nn::functional) and their module
// forms (ft::nn): mse, l1, smooth_l1, huber, cross_entropy (class indices or probabilities, class
// weights), nll (class weights), binary_cross_entropy, binary_cross_entropy_with_logits, kl_div,
// margin_ranking, cosine_embedding, triplet_margin, soft_margin, hinge_embedding, poisson_nll,
// gaussian_nll and multilabel_soft_margin.
//
// Input and target may be tensors, Vars or expressions. Most losses are one expression: the
// per-element loss and its reduction run as one fused kernel and, when an operand reads a Var,
// record one tape node whose backward is derived at compile time (one fused kernel a leaf).
// The result is a Var when an operand reads a Var (so `loss.backward()` works), a tensor
// otherwise. Reduction::Mean and Sum give a rank-0 result and are passed at run time, as in
// PyTorch; Reduction::None (the per-element losses) changes the result's rank, so it is a
// template argument: `mse_loss<ft::Reduction::None>(input, target)` (any reduction may be
// given that way).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/function.hpp"
#include "ft/autograd/statement.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/expr/generator.hpp"
#include "ft/expr/math.hpp"
#include "ft/linalg/distance.hpp"
#include "ft/linalg/rowwise.hpp"
#include "ft/ops/elementwise.hpp"
#include "ft/ops/reduction.hpp"
#include "ft/ops/structure.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {

using autograd::detail::any_var_v;  // true when an operand reads a Var (autograd/function.hpp)

// A loss's result: a Var when an operand reads a Var, else a tensor.
template <class T, int R, bool IsVar>
using loss_result_t = std::conditional_t<IsVar, Var<T, R>, Tensor<T, R>>;

// The loss's element type: the operands' promoted type, floating (as torch).
template <class X, class... Xs>
struct promote_all {
  using type = typename X::value_type;
};
template <class X, class Y, class... Xs>
struct promote_all<X, Y, Xs...> {
  using type = promote_t<typename X::value_type, typename promote_all<Y, Xs...>::type>;
};
template <class... Xs>
using loss_value_t = float_promote_t<typename promote_all<Xs...>::type>;

template <class E>
std::string shape_and_device(const E& e) {
  auto d = ft::detail::device_of(e);
  return d ? ft::detail::concat(to_string(e.shape()), " on ", *d) : to_string(e.shape());
}

// Input and target of an elementwise loss: the same shape, on the same device.
template <class I, class Tg>
void check_loss_operands(const char* op, const I& input, const Tg& target) {
  static_assert(I::rank == Tg::rank,
                "ft::nn: a loss's input and target must have the same rank (PyTorch's broadcasting of a target of "
                "another shape is not supported: reshape or expand the target)");
  auto di = ft::detail::device_of(input), dt = ft::detail::device_of(target);
  if (!(input.shape() == target.shape()) || (di && dt && !(*di == *dt)))
    fail(op, "input ", shape_and_device(input), " and target ", shape_and_device(target),
         " must have the same shape and device");
}

// Reduction::None at run time: the per-element result's rank is only known at compile time.
inline void check_reduced(const char* op, Reduction reduction) {
  check(reduction != Reduction::None, op,
        "reduction None gives the per-element losses, whose rank is fixed at compile time: pass it as a template "
        "argument, ft::nn::functional::",
        op, "<ft::Reduction::None>(input, target, ...)");
  check(reduction != Reduction::BatchMean, op, "reduction BatchMean (torch's 'batchmean') is kl_div's only");
}

// A run-time Mean or Sum as the template argument of `call`: call.operator()<Reduction::Mean or
// Sum>(); None is an error (check_reduced).
template <class Call>
auto with_reduction(const char* op, Reduction reduction, const Call& call) {
  check_reduced(op, reduction);
  if (reduction == Reduction::Sum) return call.template operator()<Reduction::Sum>();
  return call.template operator()<Reduction::Mean>();
}

// The per-element losses `e` reduced as Red: one launch; over Vars, one tape node.
template <Reduction Red, class T, bool IsVar, class E>
auto reduce_loss(const E& e) {
  static_assert(Red != Reduction::BatchMean, "ft::nn: reduction BatchMean (torch's 'batchmean') is kl_div's only");
  if constexpr (Red == Reduction::None)
    return loss_result_t<T, E::rank, IsVar>(e);
  else if constexpr (Red == Reduction::Sum)
    return loss_result_t<T, 0, IsVar>(ft::sum(e));
  else
    return loss_result_t<T, 0, IsVar>(ft::mean(e));
}

// The class indices of a [N, C] input's rows as an int64 tensor (an expression is evaluated),
// checked against the input: N rows, the same device, and (on the CPU, where it costs no
// synchronisation) every index that is not ignore_index in [0, C); on a GPU the kernels check
// them (cross_entropy's) or check_targets_on_device does.
// Reads the targets, reporting one out of [0, C) that is not ignore_index (cuda::report).
struct CheckedTarget {
  const std::int64_t* t;
  index_t C;
  std::int64_t ignore_index;
  int* report_word;
  int code;
  FT_HD FT_INLINE bool operator()(index_t i) const {
    const std::int64_t v = t[i];
    const bool bad = v != ignore_index && (v < 0 || v >= C);
    if (bad) cuda::report(report_word, code);
    return bad;
  }
};
// On a GPU, the targets' range check without a host wait: one small launch whose kernel reports
// a bad index, thrown as an ft::Error at the next synchronisation (the CPU checked them at once).
inline void check_targets_on_device(const char* op, const Tensor<std::int64_t, 1>& t, index_t C,
                                    std::int64_t ignore_index) {
  const Device dev = t.device();
  if (dev.is_cpu() || t.numel() == 0) return;
  const int code = cuda::check_code(ft::detail::concat(op, ": a target is out of range for ", C, " classes"));
  Tensor<bool, 0> any_bad = ft::any(Generator<CheckedTarget, 1>(
      CheckedTarget{t.data(), C, ignore_index, cuda::report_word(dev), code}, Shape<1>{t.size(0)}, dev));
  (void)any_bad;
}

template <class I, class Tg>
Tensor<std::int64_t, 1> class_targets(const char* op, const I& input, const Tg& target, std::int64_t ignore_index) {
  static_assert(I::rank == 2, "ft::nn: this loss's input must be [batch, classes]");
  static_assert(Tg::rank == 1, "ft::nn: this loss's target must be [batch] class indices");
  static_assert(std::is_integral_v<typename Tg::value_type> && !std::is_same_v<typename Tg::value_type, bool>,
                "ft::nn: this loss's target must hold class indices (int64)");
  Tensor<std::int64_t, 1> t;
  if constexpr (std::is_same_v<Tg, Tensor<std::int64_t, 1>>)
    t = target;
  else
    t = Tensor<std::int64_t, 1>(cast<std::int64_t>(target));
  const auto di = ft::detail::device_of(input);
  if (t.size(0) != input.shape()[0] || (di && !(*di == t.device())))
    fail(op, "input ", shape_and_device(input), " and target ", shape_and_device(t),
         " must have the same batch size and device");
  if (t.device().is_cpu()) {
    const index_t C = input.shape()[1];
    const auto v = t.to_vector();
    for (std::size_t r = 0; r < v.size(); ++r)
      if (v[r] != ignore_index && (v[r] < 0 || v[r] >= C))
        fail(op, "target ", v[r], " at row ", r, " is out of range for ", C, " classes");
  }
  return t;
}

// A loss's class weights `weight` [C] for an [N, C] input, as a tensor of the loss's type: a
// Var's value (torch gives class weights no gradient), an expression evaluated.
template <class T, class I, class W>
Tensor<T, 1> class_weight(const char* op, const I& input, const W& weight) {
  static_assert(W::rank == 1, "ft::nn: a loss's class weight must be a vector [C]");
  Tensor<T, 1> w;
  if constexpr (any_var_v<W>)
    w = Tensor<T, 1>(cast<T>(autograd::to_var(weight).value()));
  else if constexpr (std::is_same_v<W, Tensor<T, 1>>)
    w = weight;
  else
    w = Tensor<T, 1>(cast<T>(weight));
  const auto di = ft::detail::device_of(input);
  if (w.size(0) != input.shape()[1] || (di && !(*di == w.device())))
    fail(op, "weight ", shape_and_device(w), " must have one element a class of input ", shape_and_device(input),
         ", on the same device");
  return w;
}

// [1, C] class indices 0 … C−1 (generated, never stored) beside [N, 1] targets: the one-hot mask.
template <class I>
auto class_indices(const I& input) {
  const index_t C = input.shape()[1];
  return Generator<gen::Arange<std::int64_t>, 1>(gen::Arange<std::int64_t>{0, 1}, Shape<1>{C},
                                                 ft::detail::device_of(input).value_or(kCPU));
}

template <Reduction Red, class I, class Tg>
auto cross_entropy_indices(const I& input, const Tg& target, const CrossEntropyOptions& options) {
  auto t = detail::class_targets("cross_entropy", input, target, options.ignore_index);
  if constexpr (Red != Reduction::None) {
    CrossEntropyOptions reduced = options;
    reduced.reduction = Red;
    return ft::cross_entropy(input, t, reduced);
  } else {
    using T = detail::loss_value_t<I>;
    constexpr bool V = detail::any_var_v<I>;
    const double eps = options.label_smoothing;
    check(eps >= 0 && eps <= 1, "cross_entropy", "label_smoothing must be in [0, 1], got ", eps);
    const double C = static_cast<double>(input.shape()[1]);
    detail::check_targets_on_device("cross_entropy", t, input.shape()[1], options.ignore_index);
    auto lp = ft::log_softmax(input, 1);
    auto t2 = t.unsqueeze(1);
    auto classes = detail::class_indices(input);
    auto valid = t2 != options.ignore_index;
    // ε = 0 apart: the other classes' terms are not read, as torch (a −inf there is no NaN)
    if (eps == 0) return detail::loss_result_t<T, 1, V>(ft::sum(where(logical_and(classes == t2, valid), -lp, 0), 1));
    return detail::loss_result_t<T, 1, V>(
        ft::sum(where(valid, where(classes == t2, lp * -(1 - eps + eps / C), lp * -(eps / C)), 0), 1));
  }
}

// Probability targets [N, C] (torch ≥ 1.10): −Σ_c w_c·t'_nc·log_softmax(x)_nc a row, with
// t' = (1 − ε)·t + ε/C; Mean divides by N. `w` is 1.0 or the class weights [C].
template <Reduction Red, class I, class Tg, class W>
auto cross_entropy_probabilities(const I& input, const Tg& target, const W& w, const CrossEntropyOptions& options) {
  static_assert(I::rank == 2, "ft::nn: cross_entropy's input must be [batch, classes]");
  check_loss_operands("cross_entropy", input, target);
  check(options.ignore_index == -100, "cross_entropy",
        "ignore_index is not supported with probability targets (a floating-point target of the input's shape)");
  const double eps = options.label_smoothing;
  check(eps >= 0 && eps <= 1, "cross_entropy", "label_smoothing must be in [0, 1], got ", eps);
  using T = loss_value_t<I, Tg>;
  constexpr bool V = any_var_v<I, Tg>;
  const double C = static_cast<double>(input.shape()[1]);
  auto per = -(ft::log_softmax(input, 1) * w * (target * (1 - eps) + eps / C));
  if constexpr (Red == Reduction::None) {
    return loss_result_t<T, 1, V>(ft::sum(per, 1));
  } else if constexpr (Red == Reduction::Sum) {
    return loss_result_t<T, 0, V>(ft::sum(per));
  } else {
    static_assert(Red == Reduction::Mean, "ft::nn: reduction BatchMean is kl_div's only");
    return loss_result_t<T, 0, V>(ft::sum(per * (1.0 / static_cast<double>(input.shape()[0]))));
  }
}
}  // namespace detail

}  // namespace ft::inline FT_ABI::nn

// ---- the loss family's own ops: forward functor, op list and adjoint side by side ----
namespace ft::inline FT_ABI::op {
// −(t·log x + (1 − t)·log(1 − x)), each log clamped at −100, as torch's binary_cross_entropy.
// An op of its own so that its gradient is torch's (below), finite at x = 0 and x = 1.
struct BinaryCrossEntropy {
  static constexpr const char* name = "binary_cross_entropy";
  template <class A, class B>
  FT_HD FT_INLINE float_promote_t<promote_t<A, B>> operator()(A x_, B t_) const {
    using F = float_promote_t<promote_t<A, B>>;
    const F x = static_cast<F>(x_), t = static_cast<F>(t_);
    F log_x = math::log(x), log_1mx = math::log1p(-x);
    log_x = log_x < F(-100) ? F(-100) : log_x;  // NaN stays NaN, as std::max(NaN, −100)
    log_1mx = log_1mx < F(-100) ? F(-100) : log_1mx;
    return (t - F(1)) * log_1mx - t * log_x;
  }
};

// The ops of this family, for the op-completeness test (tests/test_gradcheck.cpp).
using LossOps = List<BinaryCrossEntropy>;
}  // namespace ft::inline FT_ABI::op

namespace ft::inline FT_ABI::autograd {
// torch's binary_cross_entropy_backward: dx = g·(x − t) / max(x·(1 − x), 1e-12);
// binary_cross_entropy_target_backward: dt = g·(log(1 − x) − log x).
template <>
struct BinaryGrad<op::BinaryCrossEntropy> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A, class B>
  static auto lhs(const G& g, const A& x, const B& t) {
    return g * (x - t) / ft::maximum((1 - x) * x, 1e-12);
  }
  template <class G, class A, class B>
  static auto rhs(const G& g, const A& x, const B&) {
    return g * (ft::log1p(-x) - ft::log(x));
  }
};
}  // namespace ft::inline FT_ABI::autograd

namespace ft::inline FT_ABI::nn::functional {

// ---- elementwise losses: (input − target)² | |input − target| | smooth L1 | Huber ----

// mean((input − target)²), or its sum or the per-element values. One launch.
template <Reduction Red, Expression I, Expression Tg>
auto mse_loss(const I& input, const Tg& target) {
  detail::check_loss_operands("mse_loss", input, target);
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(square(input - target));
}
template <Expression I, Expression Tg>
auto mse_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean) {
  return detail::with_reduction("mse_loss", reduction, [&]<Reduction R>() { return mse_loss<R>(input, target); });
}

// |input − target|; its gradient is sign(input − target) (0 at a tie), as torch.
template <Reduction Red, Expression I, Expression Tg>
auto l1_loss(const I& input, const Tg& target) {
  detail::check_loss_operands("l1_loss", input, target);
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(abs(input - target));
}
template <Expression I, Expression Tg>
auto l1_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean) {
  return detail::with_reduction("l1_loss", reduction, [&]<Reduction R>() { return l1_loss<R>(input, target); });
}

// z = |input − target|: 0.5·z²/β below β, z − 0.5·β above; β = 0 is the L1 loss, as torch.
template <Reduction Red, Expression I, Expression Tg>
auto smooth_l1_loss(const I& input, const Tg& target, double beta = 1.0) {
  detail::check_loss_operands("smooth_l1_loss", input, target);
  check(beta >= 0, "smooth_l1_loss", "beta must be non-negative, got ", beta);
  using T = detail::loss_value_t<I, Tg>;
  constexpr bool V = detail::any_var_v<I, Tg>;
  auto d = input - target;
  // β = 0 separately: the quadratic branch would divide by zero (a NaN in the gradient)
  if (beta == 0) return detail::reduce_loss<Red, T, V>(abs(d));
  return detail::reduce_loss<Red, T, V>(where(abs(d) < beta, square(d) * 0.5 / beta, abs(d) - 0.5 * beta));
}
template <Expression I, Expression Tg>
auto smooth_l1_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean, double beta = 1.0) {
  return detail::with_reduction("smooth_l1_loss", reduction,
                                [&]<Reduction R>() { return smooth_l1_loss<R>(input, target, beta); });
}

// z = |input − target|: 0.5·z² below δ, δ·(z − 0.5·δ) above.
template <Reduction Red, Expression I, Expression Tg>
auto huber_loss(const I& input, const Tg& target, double delta = 1.0) {
  detail::check_loss_operands("huber_loss", input, target);
  check(delta > 0, "huber_loss", "delta must be positive, got ", delta);
  auto d = input - target;
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(
      where(abs(d) < delta, square(d) * 0.5, (abs(d) - 0.5 * delta) * delta));
}
template <Expression I, Expression Tg>
auto huber_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean, double delta = 1.0) {
  return detail::with_reduction("huber_loss", reduction,
                                [&]<Reduction R>() { return huber_loss<R>(input, target, delta); });
}

// ---- classification: input [N, C], target [N] class indices (an int64 tensor or expression) ----

// −(1 − ε)·log_softmax(x)[n, t_n] − ε/C·Σ_c log_softmax(x)[n, c] a row, 0 for the rows whose
// target is ignore_index; Mean averages over the rows counted. Mean and Sum are the fused
// ft::cross_entropy (one launch; over Vars, one node whose backward is one kernel); None is
// log_softmax (one launch) and one fused masked row sum. options.reduction is replaced by Red.
template <Reduction Red, Expression I, Expression Tg>
auto cross_entropy(const I& input, const Tg& target, const CrossEntropyOptions& options = {}) {
  if constexpr (std::is_floating_point_v<typename Tg::value_type>) {
    return detail::cross_entropy_probabilities<Red>(input, target, 1.0, options);
  } else {
    return detail::cross_entropy_indices<Red>(input, target, options);
  }
}
template <Expression I, Expression Tg>
auto cross_entropy(const I& input, const Tg& target, const CrossEntropyOptions& options = {}) {
  return detail::with_reduction("cross_entropy", options.reduction,
                                [&]<Reduction R>() { return cross_entropy<R>(input, target, options); });
}

// With class weights `weight` [C]: each row's loss is scaled by its target's weight (probability
// targets: each class's term by its weight, as torch), and Mean divides by the summed weights of
// the rows counted (probability targets: by N). Log_softmax (one launch) and fused masked sums.
template <Reduction Red, Expression I, Expression Tg, Expression W>
auto cross_entropy(const I& input, const Tg& target, const W& weight, const CrossEntropyOptions& options = {}) {
  using T = detail::loss_value_t<I>;
  auto w = detail::class_weight<T>("cross_entropy", input, weight);
  if constexpr (std::is_floating_point_v<typename Tg::value_type>) {
    return detail::cross_entropy_probabilities<Red>(input, target, w, options);
  } else {
    constexpr bool V = detail::any_var_v<I>;
    auto t = detail::class_targets("cross_entropy", input, target, options.ignore_index);
    const double eps = options.label_smoothing;
    check(eps >= 0 && eps <= 1, "cross_entropy", "label_smoothing must be in [0, 1], got ", eps);
    detail::check_targets_on_device("cross_entropy", t, input.shape()[1], options.ignore_index);
    const double C = static_cast<double>(input.shape()[1]);
    auto lp = ft::log_softmax(input, 1);
    auto t2 = t.unsqueeze(1);
    auto hit = detail::class_indices(input) == t2;
    auto valid = t2 != options.ignore_index;
    auto finish = [&](const auto& per) {  // per: [N, C] weighted terms, 0 off the rows counted
      if constexpr (Red == Reduction::None) {
        return detail::loss_result_t<T, 1, V>(ft::sum(per, 1));
      } else if constexpr (Red == Reduction::Sum) {
        return detail::loss_result_t<T, 0, V>(ft::sum(per));
      } else {
        static_assert(Red == Reduction::Mean, "ft::nn: reduction BatchMean is kl_div's only");
        Tensor<T, 0> total = ft::sum(where(logical_and(hit, valid), w, 0));
        return detail::loss_result_t<T, 0, V>(ft::sum(per / total));
      }
    };
    // ε = 0 apart: the other classes' terms are not read, as torch (a −inf there is no NaN)
    if (eps == 0) return finish(where(logical_and(hit, valid), -lp * w, 0));
    return finish(where(valid, -lp * w * where(hit, 1 - eps + eps / C, eps / C), 0));
  }
}
template <Expression I, Expression Tg, Expression W>
auto cross_entropy(const I& input, const Tg& target, const W& weight, const CrossEntropyOptions& options = {}) {
  return detail::with_reduction("cross_entropy", options.reduction,
                                [&]<Reduction R>() { return cross_entropy<R>(input, target, weight, options); });
}

// −input[n, t_n] a row (input holds log-probabilities), 0 for the rows whose target is
// ignore_index; Mean averages over the rows counted (NaN when none is). One fused masked sum
// (Mean: and one launch counting the rows).
template <Reduction Red, Expression I, Expression Tg>
auto nll_loss(const I& input, const Tg& target, std::int64_t ignore_index = -100) {
  auto t = detail::class_targets("nll_loss", input, target, ignore_index);
  detail::check_targets_on_device("nll_loss", t, input.shape()[1], ignore_index);
  using T = detail::loss_value_t<I>;
  constexpr bool V = detail::any_var_v<I>;
  auto t2 = t.unsqueeze(1);
  auto picked = where(logical_and(detail::class_indices(input) == t2, t2 != ignore_index), -input, 0);
  if constexpr (Red == Reduction::None) {
    return detail::loss_result_t<T, 1, V>(ft::sum(picked, 1));
  } else if constexpr (Red == Reduction::Sum) {
    return detail::loss_result_t<T, 0, V>(ft::sum(picked));
  } else {
    Tensor<T, 0> counted = ft::sum(cast<T>(t != ignore_index));
    return detail::loss_result_t<T, 0, V>(ft::sum(picked / counted));
  }
}
template <Expression I, Expression Tg>
auto nll_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean,
              std::int64_t ignore_index = -100) {
  return detail::with_reduction("nll_loss", reduction,
                                [&]<Reduction R>() { return nll_loss<R>(input, target, ignore_index); });
}

// With class weights `weight` [C]: −weight[t_n]·input[n, t_n] a row; Mean divides by the summed
// weights of the rows counted (NaN when none is). One fused masked sum (Mean: and one launch
// summing the weights).
template <Reduction Red, Expression I, Expression Tg, Expression W>
auto nll_loss(const I& input, const Tg& target, const W& weight, std::int64_t ignore_index = -100) {
  using T = detail::loss_value_t<I>;
  auto t = detail::class_targets("nll_loss", input, target, ignore_index);
  auto w = detail::class_weight<T>("nll_loss", input, weight);
  detail::check_targets_on_device("nll_loss", t, input.shape()[1], ignore_index);
  constexpr bool V = detail::any_var_v<I>;
  auto t2 = t.unsqueeze(1);
  auto hit = logical_and(detail::class_indices(input) == t2, t2 != ignore_index);
  auto picked = where(hit, -input * w, 0);
  if constexpr (Red == Reduction::None) {
    return detail::loss_result_t<T, 1, V>(ft::sum(picked, 1));
  } else if constexpr (Red == Reduction::Sum) {
    return detail::loss_result_t<T, 0, V>(ft::sum(picked));
  } else {
    static_assert(Red == Reduction::Mean, "ft::nn: reduction BatchMean is kl_div's only");
    Tensor<T, 0> total = ft::sum(where(hit, w, 0));
    return detail::loss_result_t<T, 0, V>(ft::sum(picked / total));
  }
}
template <Expression I, Expression Tg, Expression W>
auto nll_loss(const I& input, const Tg& target, const W& weight, Reduction reduction = Reduction::Mean,
              std::int64_t ignore_index = -100) {
  return detail::with_reduction("nll_loss", reduction,
                                [&]<Reduction R>() { return nll_loss<R>(input, target, weight, ignore_index); });
}

// ---- binary: probabilities, or logits (stable) ----

// −(t·log x + (1 − t)·log(1 − x)) with x in [0, 1] and each log clamped at −100, as torch (an x
// outside [0, 1] gives NaN here instead of torch's error). One launch.
template <Reduction Red, Expression I, Expression Tg>
auto binary_cross_entropy(const I& input, const Tg& target) {
  detail::check_loss_operands("binary_cross_entropy", input, target);
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(
      make_binary(op::BinaryCrossEntropy{}, input, target));
}
template <Expression I, Expression Tg>
auto binary_cross_entropy(const I& input, const Tg& target, Reduction reduction = Reduction::Mean) {
  return detail::with_reduction("binary_cross_entropy", reduction,
                                [&]<Reduction R>() { return binary_cross_entropy<R>(input, target); });
}

// (1 − t)·x + max(−x, 0) + log(1 + e^−|x|) = −t·log σ(x) − (1 − t)·log(1 − σ(x)), stable for
// any x. With pos_weight p (broadcast to the input, e.g. [C]), the log σ(x) term is weighted by
// 1 + (p − 1)·t. One launch.
template <Reduction Red, Expression I, Expression Tg>
auto binary_cross_entropy_with_logits(const I& input, const Tg& target) {
  detail::check_loss_operands("binary_cross_entropy_with_logits", input, target);
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(
      (1 - target) * input + (maximum(-input, 0) + log1p(exp(-abs(input)))));
}
template <Reduction Red, Expression I, Expression Tg, Expression PW>
auto binary_cross_entropy_with_logits(const I& input, const Tg& target, const PW& pos_weight) {
  detail::check_loss_operands("binary_cross_entropy_with_logits", input, target);
  auto di = ft::detail::device_of(input), dp = ft::detail::device_of(pos_weight);
  if (dp && di && !(*dp == *di))
    fail("binary_cross_entropy_with_logits", "pos_weight ", detail::shape_and_device(pos_weight), " and input ",
         detail::shape_and_device(input), " must be on the same device");
  static_assert(PW::rank <= I::rank,
                "ft::nn::functional::binary_cross_entropy_with_logits: pos_weight must broadcast "
                "to the input's shape ([C] for an [N, C] input)");
  for (int d = 0; d < PW::rank; ++d) {
    const index_t p = pos_weight.shape()[d], n = input.shape()[I::rank - PW::rank + d];
    if (p != 1 && p != n)
      fail("binary_cross_entropy_with_logits", "pos_weight ", to_string(pos_weight.shape()),
           " does not broadcast to the input's shape ", to_string(input.shape()));
  }
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg, PW>, detail::any_var_v<I, Tg, PW>>(
      (1 - target) * input + ((pos_weight - 1) * target + 1) * (maximum(-input, 0) + log1p(exp(-abs(input)))));
}
template <Expression I, Expression Tg>
auto binary_cross_entropy_with_logits(const I& input, const Tg& target, Reduction reduction = Reduction::Mean) {
  return detail::with_reduction("binary_cross_entropy_with_logits", reduction,
                                [&]<Reduction R>() { return binary_cross_entropy_with_logits<R>(input, target); });
}
template <Expression I, Expression Tg, Expression PW>
auto binary_cross_entropy_with_logits(const I& input, const Tg& target, Reduction reduction, const PW& pos_weight) {
  return detail::with_reduction("binary_cross_entropy_with_logits", reduction, [&]<Reduction R>() {
    return binary_cross_entropy_with_logits<R>(input, target, pos_weight);
  });
}

// ---- distributions, rankings and embeddings ----

// The Kullback–Leibler divergence of input (log-probabilities) from target: target·(log target −
// input), 0 where target = 0 (torch's xlogy), or with log_target, e^target·(target − input).
// Mean averages over every element, as torch; BatchMean (torch's 'batchmean', the mathematical
// KL divergence) divides the sum by the batch size input.size(0). One launch.
template <Reduction Red, Expression I, Expression Tg>
auto kl_div(const I& input, const Tg& target, bool log_target = false) {
  static_assert(I::rank >= 1 || Red != Reduction::BatchMean, "ft::nn::functional::kl_div: BatchMean needs a batch");
  detail::check_loss_operands("kl_div", input, target);
  using T = detail::loss_value_t<I, Tg>;
  constexpr bool V = detail::any_var_v<I, Tg>;
  auto finish = [&](const auto& per) {
    if constexpr (Red == Reduction::BatchMean)
      return detail::loss_result_t<T, 0, V>(ft::sum(per * (1.0 / static_cast<double>(input.shape()[0]))));
    else
      return detail::reduce_loss<Red, T, V>(per);
  };
  if (log_target) return finish(exp(target) * (target - input));
  return finish(target * log(where(target == 0, 1, target)) - target * input);
}
template <Expression I, Expression Tg>
auto kl_div(const I& input, const Tg& target, Reduction reduction = Reduction::Mean, bool log_target = false) {
  if (reduction == Reduction::BatchMean) return kl_div<Reduction::BatchMean>(input, target, log_target);
  return detail::with_reduction("kl_div", reduction,
                                [&]<Reduction R>() { return kl_div<R>(input, target, log_target); });
}

// max(0, −target·(x1 − x2) + margin), target ±1 (torch.nn.functional.margin_ranking_loss). One launch.
template <Reduction Red, Expression A, Expression B, Expression Tg>
auto margin_ranking_loss(const A& x1, const B& x2, const Tg& target, double margin = 0.0) {
  detail::check_loss_operands("margin_ranking_loss", x1, x2);
  detail::check_loss_operands("margin_ranking_loss", x1, target);
  return detail::reduce_loss<Red, detail::loss_value_t<A, B, Tg>, detail::any_var_v<A, B, Tg>>(
      maximum(-target * (x1 - x2) + margin, 0));
}
template <Expression A, Expression B, Expression Tg>
auto margin_ranking_loss(const A& x1, const B& x2, const Tg& target, Reduction reduction = Reduction::Mean,
                         double margin = 0.0) {
  return detail::with_reduction("margin_ranking_loss", reduction,
                                [&]<Reduction R>() { return margin_ranking_loss<R>(x1, x2, target, margin); });
}

// With cos = Σ x1·x2 / sqrt((Σ x1² + 1e-12)(Σ x2² + 1e-12)) over the last dimension: 1 − cos
// where target = 1, max(0, cos − margin) where target = −1 (torch's cosine_embedding_loss;
// x1, x2 [N, D] with target [N], or [D] with a rank-0 target). Three row sums and cos (one
// launch), then one launch.
template <Reduction Red, Expression A, Expression B, Expression Tg>
auto cosine_embedding_loss(const A& x1, const B& x2, const Tg& target, double margin = 0.0) {
  static_assert(A::rank == B::rank && (A::rank == 1 || A::rank == 2) && Tg::rank == A::rank - 1,
                "ft::nn::functional::cosine_embedding_loss: x1 and x2 [N, D] with target [N], or [D] with a rank-0 "
                "target");
  constexpr const char* op = "cosine_embedding_loss";
  detail::check_loss_operands(op, x1, x2);
  auto dt = ft::detail::device_of(target), d1 = ft::detail::device_of(x1);
  if ((A::rank == 2 && target.shape()[0] != x1.shape()[0]) || (dt && d1 && !(*dt == *d1)))
    fail(op, "target ", detail::shape_and_device(target), " must have one element a row of x1 ",
         detail::shape_and_device(x1));
  constexpr int d = A::rank - 1;
  // cos as a statement of its own (a Var over Vars): the loss's statement then reads one leaf,
  // which keeps its derived backward (and its compile time) small; the row sums are launches
  // either way.
  using C = detail::loss_result_t<detail::loss_value_t<A, B>, A::rank - 1, detail::any_var_v<A, B>>;
  C cos = ft::sum(x1 * x2, d) / sqrt((ft::sum(square(x1), d) + 1e-12) * (ft::sum(square(x2), d) + 1e-12));
  return detail::reduce_loss<Red, detail::loss_value_t<A, B>, detail::any_var_v<A, B, Tg>>(
      where(target == 1, 1 - cos, 0) + where(target == -1, maximum(cos - margin, 0), 0));
}
template <Expression A, Expression B, Expression Tg>
auto cosine_embedding_loss(const A& x1, const B& x2, const Tg& target, Reduction reduction = Reduction::Mean,
                           double margin = 0.0) {
  return detail::with_reduction("cosine_embedding_loss", reduction,
                                [&]<Reduction R>() { return cosine_embedding_loss<R>(x1, x2, target, margin); });
}

struct TripletMarginOptions {
  double margin = 1.0;
  double p = 2.0;     // the norm of the pairwise distances
  double eps = 1e-6;  // added to the differences, as torch.pairwise_distance
  bool swap = false;  // use min(d(a, n), d(p, n)) as the negative distance
};

// max(d(a, p) − d(a, n) + margin, 0) with d = ft::pairwise_distance over the last dimension
// (torch.nn.functional.triplet_margin_loss). Two row norms (with swap: three and a minimum),
// then one launch.
template <Reduction Red, Expression A, Expression P, Expression N>
auto triplet_margin_loss(const A& anchor, const P& positive, const N& negative,
                         const TripletMarginOptions& options = {}) {
  constexpr const char* op = "triplet_margin_loss";
  static_assert(A::rank >= 1 && A::rank == P::rank && A::rank == N::rank,
                "ft::nn::functional::triplet_margin_loss: anchor, positive and negative must have the same rank");
  detail::check_loss_operands(op, anchor, positive);
  detail::check_loss_operands(op, anchor, negative);
  using T = detail::loss_value_t<A, P, N>;
  constexpr bool V = detail::any_var_v<A, P, N>;
  const double p = options.p, eps = options.eps;
  // each distance a statement of its own (a Var over Vars): the hinge's statement reads two
  // leaves, which keeps the derived backward (and the compile time) small; the norms are
  // launches either way
  using D = detail::loss_result_t<T, A::rank - 1, V>;
  D d_pos = pairwise_distance(anchor, positive, p, eps);
  D d_neg = pairwise_distance(anchor, negative, p, eps);
  if (options.swap) d_neg = D(minimum(d_neg, pairwise_distance(positive, negative, p, eps)));
  return detail::reduce_loss<Red, T, V>(maximum(d_pos - d_neg + options.margin, 0));
}
template <Expression A, Expression P, Expression N>
auto triplet_margin_loss(const A& anchor, const P& positive, const N& negative, Reduction reduction,
                         const TripletMarginOptions& options = {}) {
  return detail::with_reduction("triplet_margin_loss", reduction, [&]<Reduction R>() {
    return triplet_margin_loss<R>(anchor, positive, negative, options);
  });
}

// ---- margins, counts and variances ----

// log(1 + e^{−target·input}), target ±1 (torch.nn.functional.soft_margin_loss). One launch.
template <Reduction Red, Expression I, Expression Tg>
auto soft_margin_loss(const I& input, const Tg& target) {
  detail::check_loss_operands("soft_margin_loss", input, target);
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(log1p(exp(-target * input)));
}
template <Expression I, Expression Tg>
auto soft_margin_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean) {
  return detail::with_reduction("soft_margin_loss", reduction,
                                [&]<Reduction R>() { return soft_margin_loss<R>(input, target); });
}

// input where target = 1, max(0, margin − input) where target = −1 (an element whose target is
// neither gets both terms, as torch's; torch.nn.functional.hinge_embedding_loss). One launch.
template <Reduction Red, Expression I, Expression Tg>
auto hinge_embedding_loss(const I& input, const Tg& target, double margin = 1.0) {
  detail::check_loss_operands("hinge_embedding_loss", input, target);
  return detail::reduce_loss<Red, detail::loss_value_t<I, Tg>, detail::any_var_v<I, Tg>>(
      where(target != 1, maximum(margin - input, 0), 0) + where(target != -1, input, 0));
}
template <Expression I, Expression Tg>
auto hinge_embedding_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean,
                          double margin = 1.0) {
  return detail::with_reduction("hinge_embedding_loss", reduction,
                                [&]<Reduction R>() { return hinge_embedding_loss<R>(input, target, margin); });
}

// The Poisson negative log-likelihood of target given the rate: e^input − target·input with
// log_input (input is the log-rate), else input − target·log(input + eps); with full, Stirling's
// target·log(target) − target + ½·log(2π·target) added where target > 1
// (torch.nn.functional.poisson_nll_loss). One launch.
struct PoissonNllOptions {
  bool log_input = true;
  bool full = false;
  double eps = 1e-8;
};
template <Reduction Red, Expression I, Expression Tg>
auto poisson_nll_loss(const I& input, const Tg& target, const PoissonNllOptions& options = {}) {
  detail::check_loss_operands("poisson_nll_loss", input, target);
  using T = detail::loss_value_t<I, Tg>;
  constexpr bool V = detail::any_var_v<I, Tg>;
  const double eps = options.eps;
  // Stirling's term where target > 1 (its logs read 1 elsewhere, so that nothing there is NaN)
  auto big = where(target > 1, target, 1);
  auto stirling = where(target > 1, big * log(big) - big + 0.5 * log(6.283185307179586476925286766559 * big), 0);
  if (options.log_input) {
    if (options.full) return detail::reduce_loss<Red, T, V>(exp(input) - target * input + stirling);
    return detail::reduce_loss<Red, T, V>(exp(input) - target * input);
  }
  if (options.full) return detail::reduce_loss<Red, T, V>(input - target * log(input + eps) + stirling);
  return detail::reduce_loss<Red, T, V>(input - target * log(input + eps));
}
template <Expression I, Expression Tg>
auto poisson_nll_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean,
                      const PoissonNllOptions& options = {}) {
  return detail::with_reduction("poisson_nll_loss", reduction,
                                [&]<Reduction R>() { return poisson_nll_loss<R>(input, target, options); });
}

// ½·(log v + (input − target)² / v) (+ ½·log 2π with full), v = var with entries below eps raised
// to eps (the gradient passes as if it were var, as torch's in-place clamp under no_grad). var has
// the input's shape, or the input's without its last dimension, or the input's with a last
// dimension of 1; a negative entry is an error (one host sync, as torch's check)
// (torch.nn.functional.gaussian_nll_loss).
template <Reduction Red, Expression I, Expression Tg, Expression Vr>
auto gaussian_nll_loss(const I& input, const Tg& target, const Vr& var, bool full = false, double eps = 1e-6) {
  constexpr const char* op = "gaussian_nll_loss";
  detail::check_loss_operands(op, input, target);
  constexpr int R = I::rank;
  static_assert(Vr::rank == R || Vr::rank == R - 1,
                "ft::nn::functional::gaussian_nll_loss: var has the input's rank, or one less (no last dimension)");
  bool ok = true;
  for (int d = 0; d < Vr::rank; ++d)
    ok = ok && (var.shape()[d] == input.shape()[d] || (Vr::rank == R && d == R - 1 && var.shape()[d] == 1));
  auto di = ft::detail::device_of(input), dv = ft::detail::device_of(var);
  if (!ok || (di && dv && !(*di == *dv)))
    fail(op, "var ", detail::shape_and_device(var), " is of incorrect size for input ", detail::shape_and_device(input),
         " (the input's shape, without its last dimension, or with a last one of 1)");
  // var as a leaf of the input's rank (a view: its last dimension 1 when it had none)
  auto v = [&] {
    auto leaf = ft::detail::sliceable(var);
    if constexpr (Vr::rank == R) {
      return leaf;
    } else {
      index_t shape[R];
      for (int d = 0; d < R - 1; ++d) shape[d] = var.shape()[d];
      shape[R - 1] = 1;
      return leaf.reshape(shape);
    }
  }();
  using T = detail::loss_value_t<I, Tg, Vr>;
  constexpr bool V = detail::any_var_v<I, Tg, Vr>;
  const auto plain = [&] {
    if constexpr (ft::detail::is_var<decltype(v)>::value)
      return v.value();
    else
      return v;
  }();
  check(!ft::Tensor<bool, 0>(ft::any(plain < 0)).item(), op, "var has negative entry/entries");
  // v + (max(v, eps) − v) with the raise held as a constant: the value clamped, the gradient v's
  const Tensor<typename decltype(plain)::value_type, R> raise = maximum(plain, eps) - plain;
  const double constant = full ? 0.9189385332046727417803297364056 : 0.0;  // ½·log 2π
  auto vc = v + raise;
  return detail::reduce_loss<Red, T, V>(0.5 * (log(vc) + square(input - target) / vc) + constant);
}
template <Expression I, Expression Tg, Expression Vr>
auto gaussian_nll_loss(const I& input, const Tg& target, const Vr& var, Reduction reduction = Reduction::Mean,
                       bool full = false, double eps = 1e-6) {
  return detail::with_reduction("gaussian_nll_loss", reduction,
                                [&]<Reduction R>() { return gaussian_nll_loss<R>(input, target, var, full, eps); });
}

// −(target·log σ(input) + (1 − target)·log σ(−input)) averaged over the classes (the last
// dimension) of each sample, optionally weighted by class ([C]); Mean then averages over the
// samples, Sum adds them, None gives one loss a sample (torch.nn.functional.
// multilabel_soft_margin_loss). One launch.
template <Reduction Red, Expression I, Expression Tg, Expression W>
auto multilabel_soft_margin_loss(const I& input, const Tg& target, const W& weight) {
  constexpr const char* op = "multilabel_soft_margin_loss";
  static_assert(I::rank >= 1, "ft::nn::functional::multilabel_soft_margin_loss: the input needs a class dimension");
  detail::check_loss_operands(op, input, target);
  static_assert(W::rank <= 1, "ft::nn::functional::multilabel_soft_margin_loss: weight is one a class ([C])");
  const index_t C = input.shape()[I::rank - 1];
  if constexpr (W::rank == 1) {
    auto di = ft::detail::device_of(input), dw = ft::detail::device_of(weight);
    if (weight.shape()[0] != C || (di && dw && !(*di == *dw)))
      fail(op, "weight ", detail::shape_and_device(weight), " must have one entry a class of input ",
           detail::shape_and_device(input));
  }
  using T = detail::loss_value_t<I, Tg>;
  constexpr bool V = detail::any_var_v<I, Tg, W>;
  // log σ(x) = min(x, 0) − log1p(e^{−|x|}); log σ(−x) = log σ(x) − x
  auto log_sig = minimum(input, 0) - log1p(exp(-abs(input)));
  auto per = -(target * log_sig + (1 - target) * (log_sig - input)) * weight * (1.0 / static_cast<double>(C));
  if constexpr (Red == Reduction::None)
    return detail::loss_result_t<T, I::rank - 1, V>(ft::sum(per, I::rank - 1));
  else if constexpr (Red == Reduction::Sum)
    return detail::loss_result_t<T, 0, V>(ft::sum(per));
  else  // the mean over the samples of their means over the classes
    return detail::loss_result_t<T, 0, V>(
        ft::sum(per * (static_cast<double>(C) / static_cast<double>(input.shape().numel()))));
}
template <Reduction Red, Expression I, Expression Tg>
auto multilabel_soft_margin_loss(const I& input, const Tg& target) {
  return multilabel_soft_margin_loss<Red>(input, target, Scalar<float>{1.0f});
}
template <Expression I, Expression Tg>
auto multilabel_soft_margin_loss(const I& input, const Tg& target, Reduction reduction = Reduction::Mean) {
  return detail::with_reduction("multilabel_soft_margin_loss", reduction,
                                [&]<Reduction R>() { return multilabel_soft_margin_loss<R>(input, target); });
}
template <Expression I, Expression Tg, Expression W>
auto multilabel_soft_margin_loss(const I& input, const Tg& target, const W& weight, Reduction reduction) {
  return detail::with_reduction("multilabel_soft_margin_loss", reduction,
                                [&]<Reduction R>() { return multilabel_soft_margin_loss<R>(input, target, weight); });
}

}  // namespace ft::inline FT_ABI::nn::functional

// ---- module forms: the options, and forward(input, target) = the functional loss ----
// Their reduction is Mean or Sum (a rank-0 loss); for the per-element losses call the
// functional form with Reduction::None as a template argument.
namespace ft::inline FT_ABI::nn {

#define FT_LOSS_CALL                                        \
  template <Expression I, Expression Tg>                    \
  auto operator()(const I& input, const Tg& target) const { \
    return forward(input, target);                          \
  }

struct MSELoss {
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::mse_loss(input, target, reduction);
  }
  FT_LOSS_CALL
};

struct L1Loss {
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::l1_loss(input, target, reduction);
  }
  FT_LOSS_CALL
};

struct SmoothL1Loss {
  Reduction reduction = Reduction::Mean;
  double beta = 1.0;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::smooth_l1_loss(input, target, reduction, beta);
  }
  FT_LOSS_CALL
};

struct HuberLoss {
  Reduction reduction = Reduction::Mean;
  double delta = 1.0;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::huber_loss(input, target, reduction, delta);
  }
  FT_LOSS_CALL
};

// target: [N] class indices, or [N, C] class probabilities. weight: undefined for none, else
// one weight a class [C].
struct CrossEntropyLoss {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
  Tensor<float, 1> weight = {};
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    const CrossEntropyOptions options{ignore_index, label_smoothing, reduction};
    if (weight.defined()) return functional::cross_entropy(input, target, weight, options);
    return functional::cross_entropy(input, target, options);
  }
  FT_LOSS_CALL
};

// weight: undefined for none, else one weight a class [C].
struct NLLLoss {
  std::int64_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
  Tensor<float, 1> weight = {};
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    if (weight.defined()) return functional::nll_loss(input, target, weight, reduction, ignore_index);
    return functional::nll_loss(input, target, reduction, ignore_index);
  }
  FT_LOSS_CALL
};

// input: log-probabilities; target: probabilities (log-probabilities with log_target).
// reduction: Mean (torch's default, over every element), Sum or BatchMean.
struct KLDivLoss {
  Reduction reduction = Reduction::Mean;
  bool log_target = false;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::kl_div(input, target, reduction, log_target);
  }
  FT_LOSS_CALL
};

#define FT_LOSS_CALL3                                         \
  template <Expression A, Expression B, Expression C>         \
  auto operator()(const A& a, const B& b, const C& c) const { \
    return forward(a, b, c);                                  \
  }

struct MarginRankingLoss {
  double margin = 0.0;
  Reduction reduction = Reduction::Mean;
  template <Expression A, Expression B, Expression Tg>
  auto forward(const A& x1, const B& x2, const Tg& target) const {
    return functional::margin_ranking_loss(x1, x2, target, reduction, margin);
  }
  FT_LOSS_CALL3
};

struct CosineEmbeddingLoss {
  double margin = 0.0;
  Reduction reduction = Reduction::Mean;
  template <Expression A, Expression B, Expression Tg>
  auto forward(const A& x1, const B& x2, const Tg& target) const {
    return functional::cosine_embedding_loss(x1, x2, target, reduction, margin);
  }
  FT_LOSS_CALL3
};

struct TripletMarginLoss {
  double margin = 1.0;
  double p = 2.0;
  double eps = 1e-6;
  bool swap = false;
  Reduction reduction = Reduction::Mean;
  template <Expression A, Expression P, Expression N>
  auto forward(const A& anchor, const P& positive, const N& negative) const {
    return functional::triplet_margin_loss(anchor, positive, negative, reduction,
                                           functional::TripletMarginOptions{margin, p, eps, swap});
  }
  FT_LOSS_CALL3
};

#undef FT_LOSS_CALL3

struct BCELoss {
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::binary_cross_entropy(input, target, reduction);
  }
  FT_LOSS_CALL
};

// pos_weight: undefined for none, else broadcast to the input ([C] for an [N, C] input).
struct BCEWithLogitsLoss {
  Reduction reduction = Reduction::Mean;
  Tensor<float, 1> pos_weight = {};
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    if (pos_weight.defined()) return functional::binary_cross_entropy_with_logits(input, target, reduction, pos_weight);
    return functional::binary_cross_entropy_with_logits(input, target, reduction);
  }
  FT_LOSS_CALL
};

struct SoftMarginLoss {
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::soft_margin_loss(input, target, reduction);
  }
  FT_LOSS_CALL
};

struct HingeEmbeddingLoss {
  double margin = 1.0;
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::hinge_embedding_loss(input, target, reduction, margin);
  }
  FT_LOSS_CALL
};

struct PoissonNLLLoss {
  bool log_input = true;
  bool full = false;
  double eps = 1e-8;
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    return functional::poisson_nll_loss(input, target, reduction, {log_input, full, eps});
  }
  FT_LOSS_CALL
};

// forward(input, target, var)
struct GaussianNLLLoss {
  bool full = false;
  double eps = 1e-6;
  Reduction reduction = Reduction::Mean;
  template <Expression I, Expression Tg, Expression Vr>
  auto forward(const I& input, const Tg& target, const Vr& var) const {
    return functional::gaussian_nll_loss(input, target, var, reduction, full, eps);
  }
  template <Expression I, Expression Tg, Expression Vr>
  auto operator()(const I& input, const Tg& target, const Vr& var) const {
    return forward(input, target, var);
  }
};

// weight: undefined for none, else one weight a class [C].
struct MultiLabelSoftMarginLoss {
  Reduction reduction = Reduction::Mean;
  Tensor<float, 1> weight = {};
  template <Expression I, Expression Tg>
  auto forward(const I& input, const Tg& target) const {
    if (weight.defined()) return functional::multilabel_soft_margin_loss(input, target, weight, reduction);
    return functional::multilabel_soft_margin_loss(input, target, reduction);
  }
  FT_LOSS_CALL
};

#undef FT_LOSS_CALL

}  // namespace ft::inline FT_ABI::nn
