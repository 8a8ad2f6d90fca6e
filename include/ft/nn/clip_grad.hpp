// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_: over all the
// parameters' gradients at once (one multi-tensor launch each way, whatever their number),
// without waiting for the device.
#pragma once

#include <cmath>
#include <limits>

#include "ft/core/config.hpp"
#include "ft/exec/factories.hpp"
#include "ft/exec/multi_tensor.hpp"
#include "ft/nn/parameter.hpp"
#include "ft/ops/arithmetic.hpp"
#include "ft/ops/reduction.hpp"
#include "ft/ops/unary_math.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {
template <class T>
struct NormTerm {
  struct Hyper {
    int p;  // 1, 2, or 0 for the maximum
  };
  FT_HD FT_INLINE double operator()(const Hyper& h, T* const* q, index_t i) const {
    const double v = static_cast<double>(q[0][i]);
    const double a = v < 0 ? -v : v;
    return h.p == 2 ? a * a : a;
  }
};
// Scales by max_norm / (total + 1e-6) where that is below 1 (or NaN), reading the total norm
// from the device: the host never learns it.
template <class T>
struct ScaleByNorm {
  struct Hyper {
    const double* total;
    double max_norm;
  };
  FT_HD FT_INLINE void operator()(const Hyper& h, T* const* q, index_t i) const {
    const double c = h.max_norm / (*h.total + 1e-6);
    if (c < 1.0 || c != c) q[0][i] = static_cast<T>(q[0][i] * c);
  }
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
// total norm (p-norm over all gradients as one vector; p = 1, 2 or infinity) as a rank-0
// double tensor on the first gradient's device, as PyTorch returns a tensor. Nothing waits for
// the device (error_if_nonfinite excepted: it must read the norm): the norm is one multi-tensor
// launch, its combination a second, the scale a third, which reads the norm on the device.
FT_COMPILED Tensor<double, 0> clip_grad_norm_(const ParameterList& params, double max_norm, double norm_type = 2.0,
                                              bool error_if_nonfinite = false);
// Clamps every gradient element into [−clip_value, clip_value]: one launch.
FT_COMPILED void clip_grad_value_(const ParameterList& params, double clip_value);

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED Tensor<double, 0> clip_grad_norm_(const ParameterList& params, double max_norm, double norm_type,
                                              bool error_if_nonfinite) {
  check(norm_type == 1 || norm_type == 2 || (std::isinf(norm_type) && norm_type > 0), "clip_grad_norm_",
        "norm_type must be 1, 2 or inf, got ", norm_type);
  const int p = std::isinf(norm_type) ? 0 : static_cast<int>(norm_type);
  // the per-chunk partials of each (device, dtype) list of gradients
  std::vector<Tensor<double, 1>> partials;
  auto reduce = [&]<class T>() {
    detail::for_each_grad_list<T>(params, typename detail::NormTerm<T>::Hyper{p}, [&](Device d, const auto& entries) {
      partials.push_back(exec::multi_tensor_reduce(d, entries, detail::NormTerm<T>{}, p == 0));
    });
  };
  reduce.template operator()<float>();
  reduce.template operator()<double>();
  reduce.template operator()<half>();
  reduce.template operator()<bfloat16>();
  if (partials.empty()) return ft::zeros<double>(Shape<0>{}, kCPU);  // no gradients: PyTorch's 0
  auto combine = [&](const Tensor<double, 1>& x) -> Tensor<double, 0> {
    if (p == 0) return ft::eval(ft::max(x));
    if (p == 2 && partials.size() == 1)  // √Σ in the reduction's finalisation: one launch
      return ft::eval(ft::detail::reduce_all(red::Sum<double, 2>{}, x));
    return ft::eval(ft::sum(x));
  };
  Tensor<double, 0> total = combine(partials.front());
  if (partials.size() > 1) {
    for (std::size_t k = 1; k < partials.size(); ++k) {
      Tensor<double, 0> r = combine(partials[k]).to(total.device());
      total = p == 0 ? ft::eval(ft::maximum(total, r)) : ft::eval(total + r);  // NaN propagates
    }
    if (p == 2) total = ft::eval(ft::sqrt(total));
  }
  if (error_if_nonfinite && !std::isfinite(total.item()))
    fail("clip_grad_norm_", "the total norm of order ", norm_type,
         " of the gradients is non-finite, so it cannot be clipped (pass error_if_nonfinite = false to scale anyway)");
  auto scale = [&]<class T>() {
    detail::for_each_grad_list<T>(params, typename detail::ScaleByNorm<T>::Hyper{}, [&](Device d, auto entries) {
      Tensor<double, 0> here = total.to(d);
      for (auto& e : entries) e.hyper = {here.data(), max_norm};
      exec::multi_tensor_apply(d, entries, detail::ScaleByNorm<T>{});
    });
  };
  scale.template operator()<float>();
  scale.template operator()<double>();
  scale.template operator()<half>();
  scale.template operator()<bfloat16>();
  return total;
}

FT_COMPILED void clip_grad_value_(const ParameterList& params, double clip_value) {
  check(clip_value >= 0, "clip_grad_value_", "clip_value must be non-negative, got ", clip_value);
  auto clamp = [&]<class T>() {
    detail::for_each_grad_list<T>(
        params, typename detail::ClampTo<T>::Hyper{static_cast<T>(-clip_value), static_cast<T>(clip_value)},
        [&](Device d, const auto& entries) { exec::multi_tensor_apply(d, entries, detail::ClampTo<T>{}); });
  };
  clamp.template operator()<float>();
  clamp.template operator()<double>();
  clamp.template operator()<half>();
  clamp.template operator()<bfloat16>();
}
#endif

}  // namespace ft::inline FT_ABI::nn
