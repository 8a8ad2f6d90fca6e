// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as
// torch.optim.SGD (1.13's algorithm, step for step).
#pragma once

#include "ft/core/config.hpp"
#include "ft/optim/optimizer.hpp"

namespace ft::inline FT_ABI::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("momentum", momentum), f("dampening", dampening), f("weight_decay", weight_decay);
    f("nesterov", nesterov), f("maximize", maximize);
  }
};

struct SGDState {
  std::int64_t step = 0;
  AnyTensor momentum_buffer;
  template <class F>
  void visit(F&& f) {
    f("momentum_buffer", momentum_buffer);
  }
};

class SGD : public OptimizerBase<SGD, SGDOptions, SGDState> {
 public:
  static constexpr const char* kName = "SGD";
  static constexpr int kLists = 3;  // param, grad, momentum_buffer

  SGD(ParameterList params, const SGDOptions& defaults = {}) : OptimizerBase(std::move(params), defaults) {}
  SGD(std::vector<ParamGroup<SGDOptions>> groups, const SGDOptions& defaults = {})
      : OptimizerBase(std::move(groups), defaults) {}

  std::optional<double> momentum(std::size_t g = 0) const override { return param_groups().at(g).options.momentum; }
  void set_momentum(std::size_t g, double m) override { param_groups().at(g).options.momentum = m; }

  static void validate(const SGDOptions& o) {
    check(o.lr >= 0, kName, "invalid learning rate ", o.lr);
    check(o.momentum >= 0, kName, "invalid momentum ", o.momentum);
    check(o.weight_decay >= 0, kName, "invalid weight_decay ", o.weight_decay);
    check(!o.nesterov || (o.momentum > 0 && o.dampening == 0), kName,
          "Nesterov momentum requires a momentum and zero dampening");
  }

  // d = ±g + wd·p; buf = d on the first step, else momentum·buf + (1 − dampening)·d;
  // d = d + momentum·buf (Nesterov) or buf; p −= lr·d.
  template <class T>
  struct Kernel {
    struct Hyper {
      T lr, momentum, one_minus_dampening, weight_decay, sign, nesterov, first;
    };
    FT_HD FT_INLINE void operator()(const Hyper& h, T* const* p, index_t i) const {
      T d = h.sign * p[1][i];
      if (h.weight_decay != T(0)) d = d + h.weight_decay * p[0][i];
      if (h.momentum != T(0)) {
        const T buf = h.first != T(0) ? d : h.momentum * p[2][i] + h.one_minus_dampening * d;
        p[2][i] = buf;
        d = h.nesterov != T(0) ? d + h.momentum * buf : buf;
      }
      p[0][i] = p[0][i] - h.lr * d;
    }
  };
  template <class T>
  void prepare(SGDState& s, const SGDOptions& o, const AnyTensor& value, Entry<T>& e);
};

template <class T>
void SGD::prepare(SGDState& s, const SGDOptions& o, const AnyTensor& value, Entry<T>& e) {
  const T first = detail::ensure_state<T>(s.momentum_buffer, value, o.momentum != 0);
  ++s.step;
  e.ptr[2] = detail::data_of<T>(s.momentum_buffer);
  e.hyper = {static_cast<T>(o.lr),
             static_cast<T>(o.momentum),
             static_cast<T>(1 - o.dampening),
             static_cast<T>(o.weight_decay),
             T(o.maximize ? -1 : 1),
             T(o.nesterov ? 1 : 0),
             first};
}

// The step for the four dtypes, compiled once in the library (core/config.hpp).
FT_COMPILED_INSTANCE(class OptimizerBase<SGD, SGDOptions, SGDState>)

}  // namespace ft::inline FT_ABI::optim
