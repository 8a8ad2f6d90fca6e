// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_: over all the
// parameters' gradients at once (one multi-tensor launch each way, whatever their number).
#pragma once

#include <cmath>
#include <limits>

#include "ft/core/config.hpp"
#include "ft/exec/multi_tensor.hpp"
#include "ft/nn/parameter.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {
template <class T>
struct NormTerm {
  struct Hyper {
    int p;  // 1, 2, or 0 for the maximum
  };
  FT_HD FT_INLINE double operator()(const Hyper& h, T* const* q, index_t i) const {
    const double a = static_cast<double>(q[0][i] < T(0) ? -q[0][i] : q[0][i]);
    return h.p == 2 ? a * a : a;
  }
};
template <class T>
struct ScaleBy {
  struct Hyper {
    T factor;
  };
  FT_HD FT_INLINE void operator()(const Hyper& h, T* const* q, index_t i) const { q[0][i] = q[0][i] * h.factor; }
};
template <class T>
struct ClampTo {
  struct Hyper {
    T lo, hi;
  };
  FT_HD FT_INLINE void operator()(const Hyper& h, T* const* q, index_t i) const {
    const T v = q[0][i];
    q[0][i] = v < h.lo ? h.lo : (v > h.hi ? h.hi : v);  // NaN passes through
  }
};

// The gradients of `params`, one entry list per (device, dtype), passed to f(device, entries).
template <class T, class H, class F>
void for_each_grad_list(const ParameterList& params, H hyper, F&& f) {
  std::vector<std::pair<Device, std::vector<exec::TensorEntry<T, 1, H>>>> buckets;
  for (const auto& p : params) {
    if (!p.has_grad() || p.dtype() != dtype_of<T>()) continue;
    const AnyTensor g = p.grad();
    auto it = std::find_if(buckets.begin(), buckets.end(), [&](const auto& b) { return b.first == g.device(); });
    if (it == buckets.end()) {
      buckets.emplace_back(g.device(), std::vector<exec::TensorEntry<T, 1, H>>{});
      it = buckets.end() - 1;
    }
    it->second.push_back({{static_cast<T*>(g.data())}, g.numel(), hyper});
  }
  for (const auto& [device, entries] : buckets) f(device, entries);
}
}  // namespace detail

// Scales all gradients by max_norm / (total norm + 1e-6) when that is below 1; returns the
// total norm (p-norm over all gradients as one vector; p = 1, 2 or infinity). The norm is one
// launch, the scale another.
inline double clip_grad_norm_(const ParameterList& params, double max_norm, double norm_type = 2.0,
                              bool error_if_nonfinite = false) {
  check(norm_type == 1 || norm_type == 2 || (std::isinf(norm_type) && norm_type > 0), "clip_grad_norm_",
        "norm_type must be 1, 2 or inf, got ", norm_type);
  const int p = std::isinf(norm_type) ? 0 : static_cast<int>(norm_type);
  double total = 0;
  auto accumulate = [&]<class T>() {
    detail::for_each_grad_list<T>(params, typename detail::NormTerm<T>::Hyper{p}, [&](Device d, const auto& entries) {
      const double r = exec::multi_tensor_reduce(d, entries, detail::NormTerm<T>{}, p == 0);
      total = p == 0 ? ((r > total || r != r) ? r : total) : total + r;
    });
  };
  accumulate.template operator()<float>();
  accumulate.template operator()<double>();
  if (p == 2) total = std::sqrt(total);
  if (error_if_nonfinite && !std::isfinite(total))
    fail("clip_grad_norm_", "the total norm of order ", norm_type,
         " of the gradients is non-finite, so it cannot be clipped (pass error_if_nonfinite = false to scale anyway)");
  const double coef = std::min(max_norm / (total + 1e-6), 1.0);
  auto scale = [&]<class T>() {
    detail::for_each_grad_list<T>(
        params, typename detail::ScaleBy<T>::Hyper{static_cast<T>(coef)},
        [&](Device d, const auto& entries) { exec::multi_tensor_apply(d, entries, detail::ScaleBy<T>{}); });
  };
  if (coef < 1.0 || std::isnan(coef)) {
    scale.template operator()<float>();
    scale.template operator()<double>();
  }
  return total;
}

// Clamps every gradient element into [−clip_value, clip_value]: one launch.
inline void clip_grad_value_(const ParameterList& params, double clip_value) {
  check(clip_value >= 0, "clip_grad_value_", "clip_value must be non-negative, got ", clip_value);
  auto clamp = [&]<class T>() {
    detail::for_each_grad_list<T>(
        params, typename detail::ClampTo<T>::Hyper{static_cast<T>(-clip_value), static_cast<T>(clip_value)},
        [&](Device d, const auto& entries) { exec::multi_tensor_apply(d, entries, detail::ClampTo<T>{}); });
  };
  clamp.template operator()<float>();
  clamp.template operator()<double>();
}

}  // namespace ft::inline FT_ABI::nn
