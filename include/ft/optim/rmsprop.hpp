// RMSprop (with momentum and the centered variant) and Adagrad, as torch.optim's (1.13).
#pragma once

#include "ft/core/config.hpp"
#include "ft/optim/optimizer.hpp"

namespace ft::inline FT_ABI::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
  bool maximize = false;
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("alpha", alpha), f("eps", eps), f("weight_decay", weight_decay), f("momentum", momentum);
    f("centered", centered), f("maximize", maximize);
  }
};
struct RMSpropState {
  std::int64_t step = 0;
  AnyTensor square_avg, momentum_buffer, grad_avg;
  template <class F>
  void visit(F&& f) {
    f("square_avg", square_avg), f("momentum_buffer", momentum_buffer), f("grad_avg", grad_avg);
  }
};

class RMSprop : public OptimizerBase<RMSprop, RMSpropOptions, RMSpropState> {
 public:
  static constexpr const char* kName = "RMSprop";
  static constexpr int kLists = 5;  // param, grad, square_avg, momentum_buffer, grad_avg
  RMSprop(ParameterList params, const RMSpropOptions& defaults = {}) : OptimizerBase(std::move(params), defaults) {}
  RMSprop(std::vector<ParamGroup<RMSpropOptions>> groups, const RMSpropOptions& defaults = {})
      : OptimizerBase(std::move(groups), defaults) {}

  std::optional<double> momentum(std::size_t g = 0) const override { return param_groups().at(g).options.momentum; }
  void set_momentum(std::size_t g, double m) override { param_groups().at(g).options.momentum = m; }
  static void validate(const RMSpropOptions& o) {
    check(o.lr >= 0, kName, "invalid learning rate ", o.lr);
    check(o.eps >= 0, kName, "invalid epsilon ", o.eps);
    check(o.momentum >= 0, kName, "invalid momentum ", o.momentum);
    check(o.weight_decay >= 0, kName, "invalid weight_decay ", o.weight_decay);
    check(o.alpha >= 0, kName, "invalid alpha ", o.alpha);
  }

  // g = ±grad + wd·p; s = α·s + (1 − α)·g²; centered: a = α·a + (1 − α)·g, avg = √(s − a²) + eps,
  // else avg = √s + eps; with momentum b = μ·b + g/avg, p −= lr·b; else p −= lr·g/avg.
  template <class T>
  struct Kernel {
    struct Hyper {
      T lr, alpha, eps, weight_decay, momentum, sign, centered;
      T fresh_sq, fresh_buf, fresh_avg;  // 1: that state was just created (read as 0)
    };
    FT_HD FT_INLINE void operator()(const Hyper& h, T* const* p, index_t i) const {
      T g = h.sign * p[1][i];
      if (h.weight_decay != T(0)) g = g + h.weight_decay * p[0][i];
      const T sq = h.alpha * (h.fresh_sq != T(0) ? T(0) : p[2][i]) + (T(1) - h.alpha) * g * g;
      p[2][i] = sq;
      T avg;
      if (h.centered != T(0)) {
        const T ga = h.alpha * (h.fresh_avg != T(0) ? T(0) : p[4][i]) + (T(1) - h.alpha) * g;
        p[4][i] = ga;
        avg = math::sqrt(sq - ga * ga) + h.eps;
      } else {
        avg = math::sqrt(sq) + h.eps;
      }
      if (h.momentum > T(0)) {
        const T b = h.momentum * (h.fresh_buf != T(0) ? T(0) : p[3][i]) + g / avg;
        p[3][i] = b;
        p[0][i] = p[0][i] - h.lr * b;
      } else {
        p[0][i] = p[0][i] - h.lr * (g / avg);
      }
    }
  };
  template <class T>
  void prepare(RMSpropState& s, const RMSpropOptions& o, const AnyTensor& value, Entry<T>& e) {
    const T fresh_sq = detail::ensure_state<T>(s.square_avg, value);
    const T fresh_buf = detail::ensure_state<T>(s.momentum_buffer, value, o.momentum > 0);
    const T fresh_avg = detail::ensure_state<T>(s.grad_avg, value, o.centered);
    ++s.step;
    e.ptr[2] = detail::data_of<T>(s.square_avg);
    e.ptr[3] = detail::data_of<T>(s.momentum_buffer);
    e.ptr[4] = detail::data_of<T>(s.grad_avg);
    e.hyper = {static_cast<T>(o.lr),
               static_cast<T>(o.alpha),
               static_cast<T>(o.eps),
               static_cast<T>(o.weight_decay),
               static_cast<T>(o.momentum),
               T(o.maximize ? -1 : 1),
               T(o.centered ? 1 : 0),
               fresh_sq,
               fresh_buf,
               fresh_avg};
  }
};

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
  bool maximize = false;
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("lr_decay", lr_decay), f("weight_decay", weight_decay);
    f("initial_accumulator_value", initial_accumulator_value), f("eps", eps), f("maximize", maximize);
  }
};
struct AdagradState {
  std::int64_t step = 0;
  AnyTensor sum;
  template <class F>
  void visit(F&& f) {
    f("sum", sum);
  }
};

class Adagrad : public OptimizerBase<Adagrad, AdagradOptions, AdagradState> {
 public:
  static constexpr const char* kName = "Adagrad";
  static constexpr int kLists = 3;  // param, grad, sum
  Adagrad(ParameterList params, const AdagradOptions& defaults = {}) : OptimizerBase(std::move(params), defaults) {}
  Adagrad(std::vector<ParamGroup<AdagradOptions>> groups, const AdagradOptions& defaults = {})
      : OptimizerBase(std::move(groups), defaults) {}

  static void validate(const AdagradOptions& o) {
    check(o.lr >= 0, kName, "invalid learning rate ", o.lr);
    check(o.lr_decay >= 0, kName, "invalid lr_decay ", o.lr_decay);
    check(o.weight_decay >= 0, kName, "invalid weight_decay ", o.weight_decay);
    check(o.initial_accumulator_value >= 0, kName, "invalid initial_accumulator_value ", o.initial_accumulator_value);
    check(o.eps >= 0, kName, "invalid epsilon ", o.eps);
  }

  // g = ±grad + wd·p; s += g²; p −= lr/(1 + (t − 1)·lr_decay) · g/(√s + eps).
  template <class T>
  struct Kernel {
    struct Hyper {
      T clr, weight_decay, eps, sign;
      T fresh, initial;  // fresh: the sum was just created and holds `initial`
    };
    FT_HD FT_INLINE void operator()(const Hyper& h, T* const* p, index_t i) const {
      T g = h.sign * p[1][i];
      if (h.weight_decay != T(0)) g = g + h.weight_decay * p[0][i];
      const T s = (h.fresh != T(0) ? h.initial : p[2][i]) + g * g;
      p[2][i] = s;
      p[0][i] = p[0][i] - h.clr * (g / (math::sqrt(s) + h.eps));
    }
  };
  template <class T>
  void prepare(AdagradState& s, const AdagradOptions& o, const AnyTensor& value, Entry<T>& e) {
    const T fresh = detail::ensure_state<T>(s.sum, value);
    if (o.lr_decay != 0)
      cuda::require_not_capturing(kName, "a step with lr_decay (its learning rate comes from the host's step count)");
    const double t = static_cast<double>(++s.step);
    e.ptr[2] = detail::data_of<T>(s.sum);
    e.hyper = {static_cast<T>(o.lr / (1 + (t - 1) * o.lr_decay)),
               static_cast<T>(o.weight_decay),
               static_cast<T>(o.eps),
               T(o.maximize ? -1 : 1),
               fresh,
               static_cast<T>(o.initial_accumulator_value)};
  }
};

// The steps for the four dtypes, compiled once in the library (core/config.hpp).
FT_COMPILED_INSTANCE(class OptimizerBase<RMSprop, RMSpropOptions, RMSpropState>)
FT_COMPILED_INSTANCE(class OptimizerBase<Adagrad, AdagradOptions, AdagradState>)

}  // namespace ft::inline FT_ABI::optim
