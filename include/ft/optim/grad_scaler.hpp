// ft::amp::GradScaler: dynamic loss scaling for training in half precision, as
// torch.cuda.amp.GradScaler (its defaults, its update rule, its state_dict).
//
//   ft::amp::GradScaler scaler;
//   ft::Var<float, 0> loss = ...;
//   ft::Var<float, 0> scaled = scaler.scale(loss);
//   scaled.backward();
//   scaler.unscale_(opt);          // optional: before clipping the true gradients
//   ft::nn::clip_grad_norm_(params, 1.0);
//   scaler.step(opt);              // skipped when a gradient is inf or NaN
//   scaler.update();
//
// unscale_ is one multi-tensor launch per (device, dtype) of gradients: each gradient is
// multiplied by 1/scale and checked for infs and NaNs in the same pass, the verdict left on the
// device. step() reads it — the one host synchronisation of the scaler — and steps or skips.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/exec/multi_tensor.hpp"
#include "ft/expr/math.hpp"
#include "ft/ops/reduction.hpp"
#include "ft/optim/optimizer.hpp"

namespace ft::inline FT_ABI::amp {

namespace detail {
// g ← g·inv_scale in the compute type; the value returned is 1 where the result is inf or NaN.
template <class T>
struct UnscaleAndCheck {
  struct Hyper {
    double inv_scale;
  };
  FT_HD FT_INLINE double operator()(const Hyper& h, T* const* q, index_t i) const {
    using C = compute_t<T>;
    const C v = static_cast<C>(static_cast<C>(q[0][i]) * static_cast<C>(h.inv_scale));
    store_value(q[0][i], v);
    return math::isnan(v) || math::isinf(v) ? 1.0 : 0.0;
  }
};
}  // namespace detail

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;   // after growth_interval steps without an inf or NaN
  double backoff_factor = 0.5;  // after a step with one
  std::int64_t growth_interval = 2000;
  bool enabled = true;  // off: scale() returns the loss, step() steps, update() does nothing
};

class GradScaler {
 public:
  FT_COMPILED explicit GradScaler(const GradScalerOptions& o = {});

  bool is_enabled() const { return o_.enabled; }
  // The current scale (PyTorch's get_scale; here known on the host without a synchronisation).
  double get_scale() const { return o_.enabled ? scale_ : 1.0; }
  std::int64_t growth_tracker() const { return tracker_; }

  // loss · scale, lazily: a weak float scalar beside the loss, so the product keeps the loss's
  // type (as a float 0-dim tensor beside a half loss in PyTorch) and fuses into the statement.
  template <Expression E>
  auto scale(const E& loss) const {
    return loss * static_cast<float>(get_scale());
  }

  // Divides every gradient of `opt`'s parameters by the scale and notes whether any is inf or
  // NaN: one launch per (device, dtype), no host synchronisation. Once per optimizer per step.
  FT_COMPILED void unscale_(optim::Optimizer& opt);

  // Unscales (unless unscale_ did), then steps `opt` unless a gradient was inf or NaN. Returns
  // whether it stepped. Reads the verdict from the device: one host synchronisation.
  FT_COMPILED bool step(optim::Optimizer& opt);

  // The next scale: backoff_factor times this one after an inf or NaN in any optimizer's
  // gradients (and the growth count restarts), growth_factor times after growth_interval
  // clean steps in a row, else unchanged.
  FT_COMPILED void update();
  // Sets the scale (PyTorch's update(new_scale)).
  FT_COMPILED void update(double new_scale);

  // PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker.
  FT_COMPILED optim::StateDict state_dict() const;
  FT_COMPILED void load_state_dict(const optim::StateDict& sd);

 private:
  struct PerOptimizer {
    bool unscaled = false, stepped = false, found_inf = false;
    std::vector<Tensor<double, 1>> partials;  // on the gradients' devices: 1 where inf or NaN
  };

  template <class T>
  static void run_unscale(optim::Optimizer& opt, double inv, PerOptimizer& st);

  GradScalerOptions o_;
  double scale_;
  std::int64_t tracker_ = 0;
  std::map<const optim::Optimizer*, PerOptimizer> per_;
};

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED GradScaler::GradScaler(const GradScalerOptions& o) : o_(o), scale_(o.init_scale) {
  check(o.growth_factor > 1.0, "GradScaler", "growth_factor must be above 1, got ", o.growth_factor);
  check(o.backoff_factor > 0.0 && o.backoff_factor < 1.0, "GradScaler", "backoff_factor must be in (0, 1), got ",
        o.backoff_factor);
  check(o.growth_interval > 0, "GradScaler", "growth_interval must be positive, got ", o.growth_interval);
  check(o.init_scale > 0.0 && std::isfinite(o.init_scale), "GradScaler", "init_scale must be positive, got ",
        o.init_scale);
}

FT_COMPILED void GradScaler::unscale_(optim::Optimizer& opt) {
  if (!o_.enabled) return;
  PerOptimizer& st = per_[&opt];
  check(!st.unscaled, "GradScaler::unscale_",
        "unscale_() has already been called on this optimizer since the "
        "last update()");
  check(!st.stepped, "GradScaler::unscale_", "unscale_() is being called after step()");
  const double inv = 1.0 / scale_;
  run_unscale<float>(opt, inv, st);
  run_unscale<double>(opt, inv, st);
  run_unscale<half>(opt, inv, st);
  run_unscale<bfloat16>(opt, inv, st);
  st.unscaled = true;
}

FT_COMPILED bool GradScaler::step(optim::Optimizer& opt) {
  if (!o_.enabled) {
    opt.step();
    return true;
  }
  PerOptimizer& st = per_[&opt];
  check(!st.stepped, "GradScaler::step", "step() has already been called since the last update()");
  if (!st.unscaled) unscale_(opt);
  st.found_inf = false;
  for (const Tensor<double, 1>& p : st.partials)
    if (Tensor<double, 0>(ft::max(p)).to(kCPU).item() != 0.0) st.found_inf = true;
  st.stepped = true;
  if (!st.found_inf) opt.step();
  return !st.found_inf;
}

FT_COMPILED void GradScaler::update() {
  if (!o_.enabled) return;
  bool found = false;
  for (auto& [opt, st] : per_) {
    if (!st.stepped && st.unscaled) {  // unscaled but not stepped: read the verdict now
      for (const Tensor<double, 1>& p : st.partials)
        if (Tensor<double, 0>(ft::max(p)).to(kCPU).item() != 0.0) st.found_inf = true;
    }
    found = found || st.found_inf;
  }
  check(!per_.empty(), "GradScaler::update", "no inf checks were recorded prior to update(); call step() first");
  if (found) {
    scale_ *= o_.backoff_factor;
    tracker_ = 0;
  } else if (++tracker_ == o_.growth_interval) {
    const double grown = scale_ * o_.growth_factor;
    if (std::isfinite(static_cast<float>(grown))) scale_ = grown;  // the scale is a float32 in PyTorch
    tracker_ = 0;
  }
  scale_ = static_cast<float>(scale_);
  per_.clear();
}

FT_COMPILED void GradScaler::update(double new_scale) {
  check(new_scale > 0.0 && std::isfinite(new_scale), "GradScaler::update", "new_scale must be positive, got ",
        new_scale);
  scale_ = static_cast<float>(new_scale);
  per_.clear();
}

FT_COMPILED optim::StateDict GradScaler::state_dict() const {
  optim::StateDict sd;
  if (!o_.enabled) return sd;
  sd.insert("scale", optim::detail::scalar_tensor(scale_));
  sd.insert("growth_factor", optim::detail::scalar_tensor(o_.growth_factor));
  sd.insert("backoff_factor", optim::detail::scalar_tensor(o_.backoff_factor));
  sd.insert("growth_interval", optim::detail::scalar_tensor(static_cast<double>(o_.growth_interval)));
  sd.insert("_growth_tracker", optim::detail::scalar_tensor(static_cast<double>(tracker_)));
  return sd;
}

FT_COMPILED void GradScaler::load_state_dict(const optim::StateDict& sd) {
  check(o_.enabled, "GradScaler::load_state_dict", "this scaler is disabled");
  check(sd.size() != 0, "GradScaler::load_state_dict", "the state dict is empty: it was saved by a disabled scaler");
  scale_ = optim::detail::scalar_value(sd, "scale");
  o_.growth_factor = optim::detail::scalar_value(sd, "growth_factor");
  o_.backoff_factor = optim::detail::scalar_value(sd, "backoff_factor");
  o_.growth_interval = static_cast<std::int64_t>(optim::detail::scalar_value(sd, "growth_interval"));
  tracker_ = static_cast<std::int64_t>(optim::detail::scalar_value(sd, "_growth_tracker"));
}

template <class T>
void GradScaler::run_unscale(optim::Optimizer& opt, double inv, PerOptimizer& st) {
  std::vector<std::pair<Device, std::vector<exec::TensorEntry<T, 1, typename detail::UnscaleAndCheck<T>::Hyper>>>>
      buckets;
  for (std::size_t g = 0; g < opt.num_param_groups(); ++g)
    for (const auto& p : opt.group_params(g)) {
      if (!p.has_grad() || p.dtype() != dtype_of<T>()) continue;
      const AnyTensor grad = p.grad();
      check(optim::detail::is_contiguous(grad), "GradScaler::unscale_", "the gradient of ", grad.shape_string(),
            " is not contiguous");
      auto it = std::find_if(buckets.begin(), buckets.end(), [&](const auto& b) { return b.first == grad.device(); });
      if (it == buckets.end()) {
        buckets.emplace_back(grad.device(), typename decltype(buckets)::value_type::second_type{});
        it = buckets.end() - 1;
      }
      it->second.push_back({{static_cast<T*>(grad.data())}, grad.numel(), {inv}});
    }
  for (const auto& [device, entries] : buckets)
    st.partials.push_back(exec::multi_tensor_reduce(device, entries, detail::UnscaleAndCheck<T>{}, true));
}
#endif

}  // namespace ft::inline FT_ABI::amp
