// The optimizer interface that LR schedulers, gradient clipping and checkpoints see, and the
// parameter groups every optimizer keeps (ft::optim::SGD, Adam, ... derive from OptimizerBase).
#pragma once

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/exec/multi_tensor.hpp"
#include "ft/nn/parameter.hpp"
#include "ft/nn/state_dict.hpp"

namespace ft::inline FT_ABI::optim {

using nn::Parameter;
using nn::ParameterList;
using nn::StateDict;

// What any optimizer offers without its options type: its groups' learning rates (and
// momentum, which OneCycleLR cycles), step, zero_grad and its state.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::size_t num_param_groups() const = 0;
  virtual const ParameterList& group_params(std::size_t group) const = 0;
  virtual double lr(std::size_t group = 0) const = 0;
  virtual void set_lr(std::size_t group, double lr) = 0;
  // SGD's and RMSprop's momentum, Adam's beta1; nullopt for an optimizer without one.
  virtual std::optional<double> momentum(std::size_t group = 0) const {
    (void)group;
    return std::nullopt;
  }
  virtual void set_momentum(std::size_t group, double m) {
    (void)group;
    (void)m;
  }
  virtual void step() = 0;
  // Forgets (set_to_none, PyTorch's default) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true) {
    for (std::size_t g = 0; g < num_param_groups(); ++g)
      for (const auto& p : group_params(g)) p.zero_grad(set_to_none);
  }
  virtual StateDict state_dict() const = 0;
  virtual void load_state_dict(const StateDict& state) = 0;
  // Each group's lr before the first LR scheduler changed it (PyTorch's
  // param_group['initial_lr']); written by the schedulers.
  std::vector<double>& initial_lrs() { return initial_lrs_; }

 private:
  std::vector<double> initial_lrs_;
};

// A group of parameters with their own options (torch's param_groups entries).
template <class Options>
struct ParamGroup {
  ParameterList params;
  Options options{};
};

namespace detail {

inline bool is_contiguous(const AnyTensor& t) {
  index_t expect = 1;
  for (int d = t.dim() - 1; d >= 0; --d) {
    const auto i = static_cast<std::size_t>(d);
    if (t.shape()[i] != 1 && t.strides()[i] != expect) return false;
    expect *= t.shape()[i];
  }
  return true;
}

// A flat tensor of p's compute type (float for half and bfloat16) on p's device for optimizer
// state, uninitialised: the first step's kernel writes it without reading (so the first step is
// one launch too).
inline AnyTensor empty_like_flat(const AnyTensor& p) {
  AnyTensor out;
  visit_elements(p, [&](auto t) {
    using T = typename decltype(t)::value_type;
    if constexpr (is_floating_v<T>) out = Tensor<compute_t<T>, 1>(Shape<1>{t.numel()}, t.device());
  });
  return out;
}
// State `t` (created uninitialised when undefined); returns 1 when the kernel must treat it
// as holding its initial value (it was just created), else 0.
template <class T>
T ensure_state(AnyTensor& t, const AnyTensor& like, bool wanted = true) {
  if (!wanted || t.defined()) return T(0);
  cuda::require_not_capturing("optimizer step", "the first step (it creates the optimizer's state)");
  t = empty_like_flat(like);
  return T(1);
}

template <class T>
T* data_of(const AnyTensor& t) {
  return t.defined() ? static_cast<T*>(t.data()) : nullptr;
}

inline AnyTensor scalar_tensor(double v) {
  Tensor<double, 0> t(Shape<0>{}, kCPU);
  t.data()[0] = v;
  return t;
}
inline double scalar_value(const StateDict& sd, const std::string& key) {
  const AnyTensor& t = sd.at(key);
  check(t.numel() == 1 && t.dtype() == DType::Float64, "load_state_dict", key, " must be a float64 scalar");
  return t.as<double, 0>().to(kCPU).item();
}

// The kernel entry of optimizer D for element type T (deferred: D is incomplete in its base).
template <class D, class T>
struct EntryOf {
  using type = exec::TensorEntry<T, D::kLists, typename D::template Kernel<T>::Hyper>;
};

// The step of a half or bfloat16 parameter: optimizer kernel K (its float instance) run in float
// on the parameter's fp32 master copy (or on its widened value, without master weights) and its
// widened gradient, with float state; the parameter receives the result rounded once. Lists: p[0]
// the master copy (float), p[1] the gradient (H), p[2 … NL−1] the state (float), p[NL] the
// parameter (H); the two-byte arrays travel as float pointers in the one table and are read back
// as H here.
template <class K, class H, int NL>
struct MasterStep {
  struct Hyper {
    typename K::Hyper inner;
    float fresh;   // 1: the master copy is created by this step, from the parameter
    float master;  // 0: no master copy (the update rounds into the parameter itself)
  };
  K k;
  FT_HD FT_INLINE void operator()(const Hyper& h, float* const* p, index_t i) const {
    H* param = reinterpret_cast<H*>(p[NL]);
    float m = h.master != 0.0f && h.fresh == 0.0f ? p[0][i] : static_cast<float>(param[i]);
    float g = static_cast<float>(reinterpret_cast<const H*>(p[1])[i]);
    float* q[NL];
    q[0] = &m;
    q[1] = &g;
    for (int j = 2; j < NL; ++j) q[j] = p[j] + i;
    k(h.inner, q, 0);
    if (h.master != 0.0f) p[0][i] = m;
    store_value(param[i], m);
  }
};

// The step kernel and entry of optimizer D for a two-byte parameter type H (deferred, as EntryOf).
template <class D, class H>
struct HalfEntryOf {
  using kernel = MasterStep<typename D::template Kernel<float>, H, D::kLists>;
  using type = exec::TensorEntry<float, D::kLists + 1, typename kernel::Hyper>;
};

}  // namespace detail

// The common part of the element-wise optimizers: parameter groups, per-parameter state, and
// the fused step. Derived provides:
//   struct State { std::int64_t step; AnyTensor ...; template <class F> void visit(F f); }
//   static constexpr int kLists;                      arrays per parameter in the kernel
//   template <class T> struct Kernel { using Hyper = ...; FT_HD void operator()(const Hyper&, T* const*, index_t)
//   const; }; template <class T> void prepare(State&, const Options&, const AnyTensor& value,
//                                   exec::TensorEntry<T, kLists, typename Kernel<T>::Hyper>&);
//   static void validate(const Options&);
// step() then updates every parameter with a gradient in one launch per (device, dtype).
template <class Derived, class Options, class State>
class OptimizerBase : public Optimizer {
 public:
  using options_type = Options;

  OptimizerBase(ParameterList params, const Options& defaults) : defaults_(defaults) {
    add_param_group({std::move(params), defaults});
  }
  OptimizerBase(std::vector<ParamGroup<Options>> groups, const Options& defaults) : defaults_(defaults) {
    for (auto& g : groups) add_param_group(std::move(g));
  }

  void add_param_group(ParamGroup<Options> group) {
    Derived::validate(group.options);
    for (const auto& p : group.params) {
      check(p.defined(), Derived::kName, "a parameter is undefined");
      check(p.dtype() == DType::Float32 || p.dtype() == DType::Float64 || p.dtype() == DType::Float16 ||
                p.dtype() == DType::BFloat16,
            Derived::kName, "parameters must be floating (float, double, half, bfloat16), got ", p.dtype());
      check(detail::is_contiguous(p.value()), Derived::kName, "parameter of shape ", p.value().shape_string(),
            " is not contiguous");
      check(owners_.insert(p.id()).second, Derived::kName, "a parameter appears in more than one group");
    }
    groups_.push_back(std::move(group));
  }
  std::vector<ParamGroup<Options>>& param_groups() { return groups_; }
  const std::vector<ParamGroup<Options>>& param_groups() const { return groups_; }
  const Options& defaults() const { return defaults_; }

  std::size_t num_param_groups() const override { return groups_.size(); }
  const ParameterList& group_params(std::size_t g) const override { return group(g).params; }
  double lr(std::size_t g = 0) const override { return group(g).options.lr; }
  void set_lr(std::size_t g, double lr) override { group(g).options.lr = lr; }

  // The per-parameter state (created by the first step that updates the parameter).
  const State* state(const Parameter& p) const {
    auto it = state_.find(p.id());
    return it == state_.end() ? nullptr : &it->second;
  }

  // Half and bfloat16 parameters are stepped in float on an fp32 master copy each (on: apex's
  // master_weights, the default), or in float on their own values (off: less memory; an update
  // below half an ulp of a parameter is lost). The state is float either way.
  void set_master_weights(bool on) { master_weights_ = on; }
  bool master_weights() const { return master_weights_; }
  // p's fp32 master copy (undefined before its first step, and without master weights).
  AnyTensor master(const Parameter& p) const {
    auto it = master_.find(p.id());
    return it == master_.end() ? AnyTensor() : it->second;
  }

  // One launch per device and dtype: float, double, and the two-byte types (stepped in float).
  void step() override;
  // "state.<i>.<name>" for parameter i (counted over the groups in order) and
  // "param_groups.<g>.<option>" for every option, as PyTorch's optimizer state_dict.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& sd) override;

 protected:
  template <class T>
  using Entry = typename detail::EntryOf<Derived, T>::type;
  template <class T>
  using Buckets = std::vector<std::pair<Device, std::vector<Entry<T>>>>;
  template <class H>
  using HalfKernel = typename detail::HalfEntryOf<Derived, H>::kernel;
  template <class H>
  using HalfEntry = typename detail::HalfEntryOf<Derived, H>::type;
  template <class H>
  using HalfBuckets = std::vector<std::pair<Device, std::vector<HalfEntry<H>>>>;

 private:
  const ParamGroup<Options>& group(std::size_t g) const {
    check(g < groups_.size(), Derived::kName, "param group ", g, " out of range (", groups_.size(), " groups)");
    return groups_[g];
  }
  ParamGroup<Options>& group(std::size_t g) {
    return const_cast<ParamGroup<Options>&>(static_cast<const OptimizerBase&>(*this).group(g));
  }
  template <class T>
  void add(Buckets<T>& buckets, State& s, const Options& o, const AnyTensor& value, const AnyTensor& grad) {
    Entry<T> e{};
    e.ptr[0] = detail::data_of<T>(value);
    e.ptr[1] = detail::data_of<T>(grad);
    e.n = value.numel();
    static_cast<Derived&>(*this).template prepare<T>(s, o, value, e);
    bucket_of(buckets, value.device(), e);
  }
  template <class T>
  void launch(const Buckets<T>& buckets) {
    for (const auto& [device, entries] : buckets)
      exec::multi_tensor_apply(device, entries, typename Derived::template Kernel<T>{});
  }
  template <class B, class E>
  static void bucket_of(B& buckets, Device d, const E& e) {
    auto it = std::find_if(buckets.begin(), buckets.end(), [&](const auto& b) { return b.first == d; });
    if (it == buckets.end()) {
      buckets.emplace_back(d, std::vector<E>{});
      it = buckets.end() - 1;
    }
    it->second.push_back(e);
  }
  // A half or bfloat16 parameter: the derived optimizer prepares its float entry (state created
  // in float), which then gains the master copy and the two-byte arrays.
  template <class H>
  void add_half(HalfBuckets<H>& buckets, State& s, const Options& o, const Parameter& p, const AnyTensor& value,
                const AnyTensor& grad) {
    Entry<float> inner{};
    inner.n = value.numel();
    static_cast<Derived&>(*this).template prepare<float>(s, o, value, inner);
    HalfEntry<H> e{};
    e.n = inner.n;
    for (int k = 2; k < Derived::kLists; ++k) e.ptr[k] = inner.ptr[k];
    e.ptr[1] = reinterpret_cast<float*>(grad.data());
    e.ptr[Derived::kLists] = reinterpret_cast<float*>(value.data());
    e.hyper.inner = inner.hyper;
    e.hyper.master = master_weights_ ? 1.0f : 0.0f;
    e.hyper.fresh = 0.0f;
    if (master_weights_) {
      AnyTensor& m = master_[p.id()];
      if (!m.defined()) {
        cuda::require_not_capturing("optimizer step", "the first step (it creates the master weights)");
        m = detail::empty_like_flat(value);
        e.hyper.fresh = 1.0f;
      }
      e.ptr[0] = static_cast<float*>(m.data());
    }
    bucket_of(buckets, value.device(), e);
  }
  template <class H>
  void launch_half(const HalfBuckets<H>& buckets) {
    for (const auto& [device, entries] : buckets) exec::multi_tensor_apply(device, entries, HalfKernel<H>{});
  }

  Options defaults_;
  std::vector<ParamGroup<Options>> groups_;
  std::unordered_map<const void*, State> state_;
  std::unordered_map<const void*, AnyTensor> master_;  // fp32 copies of the two-byte parameters
  bool master_weights_ = true;
  std::unordered_set<const void*> owners_;
};

// The members that instantiate the kernels: compiled in src/fusedtensor.cpp for the library's
// optimizers under separate compilation (FT_COMPILED_INSTANCE in their headers).
template <class Derived, class Options, class State>
void OptimizerBase<Derived, Options, State>::step() {
  Buckets<float> f32;
  Buckets<double> f64;
  HalfBuckets<half> f16;
  HalfBuckets<bfloat16> bf16;
  for (auto& g : groups_) {
    for (const auto& p : g.params) {
      if (!p.has_grad()) continue;
      const AnyTensor value = p.value(), grad = p.grad();
      check(detail::is_contiguous(grad), Derived::kName, "the gradient of ", value.shape_string(),
            " is not contiguous");
      State& s = state_[p.id()];
      value.storage()->bump_version();  // written by the launch below (autocast's cache sees it)
      if (p.dtype() == DType::Float32)
        add<float>(f32, s, g.options, value, grad);
      else if (p.dtype() == DType::Float64)
        add<double>(f64, s, g.options, value, grad);
      else if (p.dtype() == DType::Float16)
        add_half<half>(f16, s, g.options, p, value, grad);
      else
        add_half<bfloat16>(bf16, s, g.options, p, value, grad);
    }
  }
  launch<float>(f32);
  launch<double>(f64);
  launch_half<half>(f16);
  launch_half<bfloat16>(bf16);
}

template <class Derived, class Options, class State>
StateDict OptimizerBase<Derived, Options, State>::state_dict() const {
  StateDict sd;
  std::size_t i = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    Options o = groups_[g].options;
    o.visit([&](const char* name, auto& v) {
      sd.insert("param_groups." + std::to_string(g) + "." + name, detail::scalar_tensor(static_cast<double>(v)));
    });
    for (const auto& p : groups_[g].params) {
      auto it = state_.find(p.id());
      if (it != state_.end()) {
        State s = it->second;
        const std::string prefix = "state." + std::to_string(i) + ".";
        sd.insert(prefix + "step", detail::scalar_tensor(static_cast<double>(s.step)));
        s.visit([&](const char* name, AnyTensor& t) {
          if (t.defined()) sd.insert(prefix + name, t);
        });
        if (auto m = master_.find(p.id()); m != master_.end()) sd.insert(prefix + "master_param", m->second);
      }
      ++i;
    }
  }
  return sd;
}

template <class Derived, class Options, class State>
void OptimizerBase<Derived, Options, State>::load_state_dict(const StateDict& sd) {
  std::size_t i = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    Options& o = groups_[g].options;
    o.visit([&](const char* name, auto& v) {
      v = static_cast<std::remove_reference_t<decltype(v)>>(
          detail::scalar_value(sd, "param_groups." + std::to_string(g) + "." + name));
    });
    for (const auto& p : groups_[g].params) {
      const std::string prefix = "state." + std::to_string(i) + ".";
      if (sd.contains(prefix + "step")) {
        State& s = state_[p.id()];
        s.step = static_cast<std::int64_t>(detail::scalar_value(sd, prefix + "step"));
        s.visit([&](const char* name, AnyTensor& t) {
          if (!sd.contains(prefix + name)) return;
          if (!t.defined()) t = detail::empty_like_flat(p.value());
          nn::copy_into(t, sd.at(prefix + name), prefix + name);
        });
        if (sd.contains(prefix + "master_param")) {
          AnyTensor& m = master_[p.id()];
          if (!m.defined()) m = detail::empty_like_flat(p.value());
          nn::copy_into(m, sd.at(prefix + "master_param"), prefix + "master_param");
        }
      }
      ++i;
    }
  }
}

}  // namespace ft::inline FT_ABI::optim
