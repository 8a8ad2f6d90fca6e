// ft::gradcheck: the analytic gradient of a function of Vars against central finite
// differences, in double on the CPU, with a readable report of the worst element.
//
//   ft::Var<double, 2> x(ft::randn<double>({3, 4}), ft::requires_grad);
//   auto r = ft::gradcheck([](const auto& x) { return ft::Var<double, 0>(ft::sum(ft::tanh(x))); }, x);
//   CHECK_MESSAGE(r.ok, r.report);
//
// The function may return a Var of any rank: the check is on L = Σ y·w for fixed random
// weights w, so every output element takes part (a vector-Jacobian product check).
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd/statement.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/factories.hpp"

namespace ft::inline FT_ABI {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // |analytic − numeric| ≤ atol + rtol·|numeric|
  double rtol = 1e-3;
  std::uint64_t seed = 0;  // of the output weights
};

struct GradcheckResult {
  bool ok = true;
  std::string report;  // the worst element of each input, or why the check failed
  explicit operator bool() const { return ok; }
};

namespace autograd::detail {

template <class X>
struct is_gradcheck_options : std::is_same<std::remove_cvref_t<X>, GradcheckOptions> {};

template <class F, class... Vs>
GradcheckResult gradcheck_impl(F&& f, const GradcheckOptions& opt, const Vs&... inputs) {
  static_assert((std::is_same_v<typename Vs::value_type, double> && ...),
                "ft::gradcheck: inputs must be Var<double, R> (finite differences need double precision)");
  GradcheckResult res;
  std::ostringstream os;
  auto fail_with = [&](const std::string& why) {
    res.ok = false;
    res.report = why;
    return res;
  };
  bool cpu = true;
  ((cpu = cpu && inputs.device().is_cpu()), ...);
  if (!cpu) return fail_with("gradcheck: inputs must be on the CPU");
  // L = Σ y·w for fixed weights w, computed in double on the host
  std::vector<double> w;
  auto loss = [&](const auto& y) {
    auto v = y.value().to_vector();
    if (w.empty()) {
      w = ft::randn<double>({static_cast<index_t>(v.size())}, kCPU, opt.seed + 12345).to_vector();
    }
    double l = 0;
    for (std::size_t i = 0; i < v.size(); ++i) l += static_cast<double>(v[i]) * w[i];
    return l;
  };
  // analytic: backward of Σ y·w
  (inputs.zero_grad(), ...);
  {
    auto y = f(inputs...);
    loss(y);
    using Y = std::remove_cvref_t<decltype(y)>;
    if (!y.requires_grad()) return fail_with("gradcheck: the output does not require grad (no input reaches it)");
    using T = typename Y::value_type;
    auto wt = from_vector(std::vector<T>(w.begin(), w.end()), {static_cast<index_t>(w.size())});
    y.backward(wt.reshape(y.shape()).to(y.device()));
  }
  // numeric: central differences, one element at a time, without recording
  int input_index = 0;
  auto check_input = [&](const auto& x) {
    const int k = input_index++;
    if (!x.requires_grad()) return;
    auto& val = x.data();
    if (!val.is_contiguous()) {
      os << "input " << k << ": skipped (not contiguous)\n";
      return;
    }
    std::vector<double> analytic = x.has_grad() ? x.grad().to_vector() : std::vector<double>(x.numel(), 0.0);
    double worst = -1, worst_a = 0, worst_n = 0;
    index_t worst_i = 0;
    double* p = val.data();
    for (index_t i = 0; i < x.numel(); ++i) {
      const double orig = p[i];
      double lp, lm;
      {
        NoGradGuard ng;
        p[i] = orig + opt.eps;
        lp = loss(f(inputs...));
        p[i] = orig - opt.eps;
        lm = loss(f(inputs...));
        p[i] = orig;
      }
      const double num = (lp - lm) / (2 * opt.eps), an = analytic[static_cast<std::size_t>(i)];
      const double err = std::fabs(an - num), tol = opt.atol + opt.rtol * std::fabs(num);
      const double score = std::isfinite(an) && std::isfinite(num) ? err / tol : INFINITY;
      if (score > worst) {
        worst = score;
        worst_a = an;
        worst_n = num;
        worst_i = i;
      }
    }
    if (x.numel() == 0) return;
    const bool ok = worst <= 1;
    if (!ok) res.ok = false;
    os << "input " << k << " " << to_string(x.shape()) << ": worst element " << worst_i << " analytic " << worst_a
       << " numeric " << worst_n << " (error " << std::fabs(worst_a - worst_n) << ", tolerance "
       << opt.atol + opt.rtol * std::fabs(worst_n) << ")" << (ok ? "" : "  <-- MISMATCH") << "\n";
  };
  (check_input(inputs), ...);
  res.report = os.str();
  return res;
}

}  // namespace autograd::detail

// gradcheck(f, x, y, ..., [GradcheckOptions]): f takes the Vars (double, CPU; leaves that
// require grad) and returns a Var. Their values are perturbed in place and restored.
template <class F, class... Args>
GradcheckResult gradcheck(F&& f, const Args&... args) {
  constexpr std::size_t n = sizeof...(Args);
  auto all = std::forward_as_tuple(args...);
  if constexpr (n > 0 &&
                autograd::detail::is_gradcheck_options<std::tuple_element_t<n - 1, std::tuple<Args...>>>::value) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return autograd::detail::gradcheck_impl(f, std::get<n - 1>(all), std::get<I>(all)...);
    }
    (std::make_index_sequence<n - 1>{});
  } else {
    return autograd::detail::gradcheck_impl(f, GradcheckOptions{}, args...);
  }
}

}  // namespace ft::inline FT_ABI
