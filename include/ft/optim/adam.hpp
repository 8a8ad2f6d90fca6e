// Adam and AdamW (with the AMSGrad option), as torch.optim.Adam / AdamW (1.13's algorithms).
#pragma once

#include <cmath>

#include "ft/core/config.hpp"
#include "ft/optim/optimizer.hpp"

namespace ft::inline FT_ABI::optim {

namespace detail {
template <double DefaultWeightDecay>
struct AdamOptionsT {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = DefaultWeightDecay;
  bool amsgrad = false;
  bool maximize = false;
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", betas.first), f("beta2", betas.second), f("eps", eps), f("weight_decay", weight_decay);
    f("amsgrad", amsgrad), f("maximize", maximize);
  }
};
}  // namespace detail
using AdamOptions = detail::AdamOptionsT<0.0>;
// AdamW's weight decay defaults to 0.01, as PyTorch's.
using AdamWOptions = detail::AdamOptionsT<0.01>;

struct AdamState {
  std::int64_t step = 0;
  AnyTensor exp_avg, exp_avg_sq, max_exp_avg_sq;
  template <class F>
  void visit(F&& f) {
    f("exp_avg", exp_avg), f("exp_avg_sq", exp_avg_sq), f("max_exp_avg_sq", max_exp_avg_sq);
  }
};

namespace detail {
// g = ±grad; Adam: g += wd·p; AdamW: p *= 1 − lr·wd. m = β1·m + (1 − β1)·g;
// v = β2·v + (1 − β2)·g²; v̂ = max(v̂, v) with AMSGrad; p −= lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps).
template <class T>
struct AdamKernel {
  struct Hyper {
    T step_size, beta1, beta2, eps, weight_decay, decay_factor, bias_correction2_sqrt, sign, amsgrad, decoupled;
    T fresh, fresh_max;  // 1: the state was just created (read as 0)
  };
  FT_HD FT_INLINE void operator()(const Hyper& h, T* const* p, index_t i) const {
    T g = h.sign * p[1][i];
    T w = p[0][i];
    if (h.decoupled != T(0))
      w = w * h.decay_factor;
    else if (h.weight_decay != T(0))
      g = g + h.weight_decay * w;
    const T m0 = h.fresh != T(0) ? T(0) : p[2][i], v0 = h.fresh != T(0) ? T(0) : p[3][i];
    const T m = h.beta1 * m0 + (T(1) - h.beta1) * g;
    const T v = h.beta2 * v0 + (T(1) - h.beta2) * g * g;
    p[2][i] = m;
    p[3][i] = v;
    T vs = v;
    if (h.amsgrad != T(0)) {
      const T vmax = h.fresh_max != T(0) ? T(0) : p[4][i];
      vs = vmax > v ? vmax : v;
      p[4][i] = vs;
    }
    const T denom = math::sqrt(vs) / h.bias_correction2_sqrt + h.eps;
    p[0][i] = w - h.step_size * (m / denom);
  }
};

template <class Derived, class Options, bool Decoupled>
class AdamBase : public OptimizerBase<Derived, Options, AdamState> {
  using Base = OptimizerBase<Derived, Options, AdamState>;

 public:
  static constexpr int kLists = 5;  // param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq
  template <class T>
  using Kernel = AdamKernel<T>;

  using Base::Base;
  std::optional<double> momentum(std::size_t g = 0) const override {
    return this->param_groups().at(g).options.betas.first;
  }
  void set_momentum(std::size_t g, double m) override { this->param_groups().at(g).options.betas.first = m; }

  static void validate(const Options& o) {
    check(o.lr >= 0, Derived::kName, "invalid learning rate ", o.lr);
    check(o.eps >= 0, Derived::kName, "invalid epsilon ", o.eps);
    check(o.betas.first >= 0 && o.betas.first < 1 && o.betas.second >= 0 && o.betas.second < 1, Derived::kName,
          "invalid betas (", o.betas.first, ", ", o.betas.second, ")");
    check(o.weight_decay >= 0, Derived::kName, "invalid weight_decay ", o.weight_decay);
  }
  template <class T>
  void prepare(AdamState& s, const Options& o, const AnyTensor& value, typename Base::template Entry<T>& e) {
    const T fresh = ensure_state<T>(s.exp_avg, value);
    ensure_state<T>(s.exp_avg_sq, value);
    const T fresh_max = ensure_state<T>(s.max_exp_avg_sq, value, o.amsgrad);
    cuda::require_not_capturing(Derived::kName, "a step (its bias corrections come from the host's step count)");
    const double t = static_cast<double>(++s.step);
    const double bc1 = 1 - std::pow(o.betas.first, t), bc2 = 1 - std::pow(o.betas.second, t);
    e.ptr[2] = data_of<T>(s.exp_avg);
    e.ptr[3] = data_of<T>(s.exp_avg_sq);
    e.ptr[4] = data_of<T>(s.max_exp_avg_sq);
    e.hyper = {static_cast<T>(o.lr / bc1),
               static_cast<T>(o.betas.first),
               static_cast<T>(o.betas.second),
               static_cast<T>(o.eps),
               static_cast<T>(o.weight_decay),
               static_cast<T>(1 - o.lr * o.weight_decay),
               static_cast<T>(std::sqrt(bc2)),
               T(o.maximize ? -1 : 1),
               T(o.amsgrad ? 1 : 0),
               T(Decoupled ? 1 : 0),
               fresh,
               fresh_max};
  }
};
}  // namespace detail

class Adam : public detail::AdamBase<Adam, AdamOptions, false> {
 public:
  static constexpr const char* kName = "Adam";
  Adam(ParameterList params, const AdamOptions& defaults = {}) : AdamBase(std::move(params), defaults) {}
  Adam(std::vector<ParamGroup<AdamOptions>> groups, const AdamOptions& defaults = {})
      : AdamBase(std::move(groups), defaults) {}
};

// Adam with decoupled weight decay (the parameter shrinks by lr·wd each step).
class AdamW : public detail::AdamBase<AdamW, AdamWOptions, true> {
 public:
  static constexpr const char* kName = "AdamW";
  AdamW(ParameterList params, const AdamWOptions& defaults = {}) : AdamBase(std::move(params), defaults) {}
  AdamW(std::vector<ParamGroup<AdamWOptions>> groups, const AdamWOptions& defaults = {})
      : AdamBase(std::move(groups), defaults) {}
};

// The steps for the four dtypes, compiled once in the library (core/config.hpp).
FT_COMPILED_INSTANCE(class OptimizerBase<Adam, AdamOptions, AdamState>)
FT_COMPILED_INSTANCE(class OptimizerBase<AdamW, AdamWOptions, AdamState>)

}  // namespace ft::inline FT_ABI::optim
