// L-BFGS with an optional strong-Wolfe line search, as torch.optim.LBFGS (1.13's algorithm,
// step for step). One parameter group. step(closure) re-evaluates the model: the closure
// zeroes the gradients, computes the loss, runs backward and returns the loss value.
//
// The two-loop recursion works on the host in double over the flattened parameters (the
// history is history_size vectors of all parameters); each closure call runs on the
// parameters' device. Suited to the small, full-batch problems L-BFGS is used for.
#pragma once

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/optim/optimizer.hpp"

namespace ft::inline FT_ABI::optim {

enum class LineSearch { None, StrongWolfe };

struct LBFGSOptions {
  double lr = 1;
  int max_iter = 20;
  std::optional<int> max_eval = std::nullopt;  // default max_iter * 5 / 4
  double tolerance_grad = 1e-7;
  double tolerance_change = 1e-9;
  int history_size = 100;
  LineSearch line_search_fn = LineSearch::None;
};

class LBFGS : public Optimizer {
 public:
  using Vec = std::vector<double>;

  LBFGS(ParameterList params, const LBFGSOptions& options = {}) : params_(std::move(params)), options_(options) {
    check(options_.lr >= 0, "LBFGS", "invalid learning rate ", options_.lr);
    check(options_.max_iter > 0 && options_.history_size > 0, "LBFGS", "max_iter and history_size must be positive");
    if (!options_.max_eval) options_.max_eval = options_.max_iter * 5 / 4;
    for (const auto& p : params_)
      check(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, "LBFGS", "parameters must be float or double");
  }

  std::size_t num_param_groups() const override { return 1; }
  const ParameterList& group_params(std::size_t) const override { return params_; }
  double lr(std::size_t = 0) const override { return options_.lr; }
  void set_lr(std::size_t, double lr) override { options_.lr = lr; }
  const LBFGSOptions& options() const { return options_; }

  void step() override { fail("LBFGS", "step() needs a closure that re-evaluates the loss: step(closure)"); }

  // Up to max_iter iterations; returns the loss the first closure call gave.
  double step(const std::function<double()>& closure) {
    const double orig_loss = closure();
    double loss = orig_loss;
    int current_evals = 1;
    func_evals_ += 1;
    Vec flat_grad = gather_flat_grad();
    if (abs_max(flat_grad) <= options_.tolerance_grad) return orig_loss;

    int n_iter = 0;
    while (n_iter < options_.max_iter) {
      ++n_iter;
      ++state_n_iter_;
      if (state_n_iter_ == 1) {
        d_ = scaled(flat_grad, -1);
        old_dirs_.clear();
        old_stps_.clear();
        ro_.clear();
        h_diag_ = 1;
      } else {
        Vec y(flat_grad.size()), s = scaled(d_, t_);
        for (std::size_t i = 0; i < y.size(); ++i) y[i] = flat_grad[i] - prev_flat_grad_[i];
        const double ys = dot(y, s);
        if (ys > 1e-10) {
          if (static_cast<int>(old_dirs_.size()) == options_.history_size) {
            old_dirs_.pop_front();
            old_stps_.pop_front();
            ro_.pop_front();
          }
          old_dirs_.push_back(y);
          old_stps_.push_back(s);
          ro_.push_back(1.0 / ys);
          h_diag_ = ys / dot(y, y);
        }
        const std::size_t num_old = old_dirs_.size();
        std::vector<double> al(num_old);
        Vec q = scaled(flat_grad, -1);
        for (std::size_t k = num_old; k-- > 0;) {
          al[k] = dot(old_stps_[k], q) * ro_[k];
          axpy(q, -al[k], old_dirs_[k]);
        }
        Vec r = scaled(q, h_diag_);
        for (std::size_t k = 0; k < num_old; ++k) {
          const double be = dot(old_dirs_[k], r) * ro_[k];
          axpy(r, al[k] - be, old_stps_[k]);
        }
        d_ = std::move(r);
      }
      prev_flat_grad_ = flat_grad;
      const double prev_loss = loss;
      if (state_n_iter_ == 1) {
        double s = 0;
        for (double g : flat_grad) s += std::fabs(g);
        t_ = std::min(1.0, 1.0 / s) * options_.lr;
      } else {
        t_ = options_.lr;
      }
      const double gtd = dot(flat_grad, d_);
      if (gtd > -options_.tolerance_change) break;

      int ls_func_evals = 0;
      bool opt_cond = false;
      if (options_.line_search_fn == LineSearch::StrongWolfe) {
        const Vec x_init = gather_flat_params();
        auto r = strong_wolfe(closure, x_init, t_, d_, loss, flat_grad, gtd);
        loss = r.f;
        flat_grad = std::move(r.g);
        t_ = r.t;
        ls_func_evals = r.evals;
        add_to_params(t_, d_);
        opt_cond = abs_max(flat_grad) <= options_.tolerance_grad;
      } else {
        add_to_params(t_, d_);
        if (n_iter != options_.max_iter) {
          loss = closure();
          flat_grad = gather_flat_grad();
          opt_cond = abs_max(flat_grad) <= options_.tolerance_grad;
          ls_func_evals = 1;
        }
      }
      current_evals += ls_func_evals;
      func_evals_ += ls_func_evals;
      if (n_iter == options_.max_iter || current_evals >= *options_.max_eval || opt_cond) break;
      if (abs_max(d_) * std::fabs(t_) <= options_.tolerance_change) break;
      if (std::fabs(loss - prev_loss) < options_.tolerance_change) break;
    }
    return orig_loss;
  }

  // "n_iter", "func_evals" and the scalars; the history vectors are not saved (as a fresh
  // start of the recursion: the next step restarts from the gradient direction).
  StateDict state_dict() const override {
    StateDict sd;
    sd.insert("param_groups.0.lr", detail::scalar_tensor(options_.lr));
    sd.insert("state.func_evals", detail::scalar_tensor(static_cast<double>(func_evals_)));
    return sd;
  }
  void load_state_dict(const StateDict& sd) override {
    options_.lr = detail::scalar_value(sd, "param_groups.0.lr");
    func_evals_ = static_cast<int>(detail::scalar_value(sd, "state.func_evals"));
    state_n_iter_ = 0;
  }
  int func_evals() const { return func_evals_; }

 private:
  struct SearchResult {
    double f;
    Vec g;
    double t;
    int evals;
  };

  static double dot(const Vec& a, const Vec& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  }
  static void axpy(Vec& y, double a, const Vec& x) {
    for (std::size_t i = 0; i < y.size(); ++i) y[i] += a * x[i];
  }
  static Vec scaled(const Vec& x, double a) {
    Vec r(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) r[i] = a * x[i];
    return r;
  }
  static double abs_max(const Vec& x) {
    double m = 0;
    for (double v : x) m = std::max(m, std::fabs(v));
    return m;
  }

  template <class F>
  void for_each_param_tensor(F&& f) const {
    for (const auto& p : params_)
      visit_elements(p.value(), [&](auto t) {
        if constexpr (is_floating_v<typename decltype(t)::value_type>) f(p, t);
      });
  }
  Vec gather_flat_params() const {
    Vec out;
    for_each_param_tensor([&](const Parameter&, auto t) {
      for (auto v : t.to(kCPU).contiguous().to_vector()) out.push_back(static_cast<double>(v));
    });
    return out;
  }
  Vec gather_flat_grad() const {
    Vec out;
    for_each_param_tensor([&](const Parameter& p, auto t) {
      using T = typename decltype(t)::value_type;
      if (!p.has_grad()) {
        out.insert(out.end(), static_cast<std::size_t>(t.numel()), 0.0);
        return;
      }
      for (auto v : p.grad().template padded<T>().to(kCPU).contiguous().to_vector())
        out.push_back(static_cast<double>(v));
    });
    return out;
  }
  // params = base + step·dir (base: the flat parameters, or the current ones when null).
  void set_params(const Vec* base, double step, const Vec& dir) {
    std::size_t offset = 0;
    for_each_param_tensor([&](const Parameter&, auto t) {
      using T = typename decltype(t)::value_type;
      auto host = t.to(kCPU).contiguous();
      T* h = host.data();
      for (index_t i = 0; i < host.numel(); ++i, ++offset) {
        const T b = base ? static_cast<T>((*base)[offset]) : h[i];
        h[i] = static_cast<T>(b + static_cast<T>(step * dir[offset]));
      }
      std::move(t) = host.to(t.device());
    });
  }
  void add_to_params(double step, const Vec& dir) { set_params(nullptr, step, dir); }

  std::pair<double, Vec> directional_evaluate(const std::function<double()>& closure, const Vec& x, double t,
                                              const Vec& d) {
    add_to_params(t, d);
    const double loss = closure();
    Vec g = gather_flat_grad();
    set_params(&x, 0.0, d);
    return {loss, std::move(g)};
  }

  static double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                                  std::optional<std::pair<double, double>> bounds = std::nullopt) {
    const auto [lo, hi] = bounds ? *bounds : (x1 <= x2 ? std::pair{x1, x2} : std::pair{x2, x1});
    const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
    const double d2_square = d1 * d1 - g1 * g2;
    if (d2_square >= 0) {
      const double d2 = std::sqrt(d2_square);
      const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                      : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
      return std::min(std::max(min_pos, lo), hi);
    }
    return (lo + hi) / 2;
  }

  SearchResult strong_wolfe(const std::function<double()>& closure, const Vec& x, double t, const Vec& d, double f,
                            const Vec& g, double gtd, double c1 = 1e-4, double c2 = 0.9, int max_ls = 25) {
    const double tolerance_change = options_.tolerance_change;
    const double d_norm = abs_max(d);
    auto [f_new, g_new] = directional_evaluate(closure, x, t, d);
    int evals = 1;
    double gtd_new = dot(g_new, d);
    double t_prev = 0, f_prev = f, gtd_prev = gtd;
    Vec g_prev = g;
    bool done = false;
    int ls_iter = 0;
    double bracket[2] = {0, 0}, bracket_f[2] = {0, 0}, bracket_gtd[2] = {0, 0};
    Vec bracket_g[2];
    int nb = 0;
    while (ls_iter < max_ls) {
      if (f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= f_prev)) {
        bracket[0] = t_prev, bracket[1] = t, bracket_f[0] = f_prev, bracket_f[1] = f_new;
        bracket_g[0] = g_prev, bracket_g[1] = g_new, bracket_gtd[0] = gtd_prev, bracket_gtd[1] = gtd_new;
        nb = 2;
        break;
      }
      if (std::fabs(gtd_new) <= -c2 * gtd) {
        bracket[0] = t, bracket_f[0] = f_new, bracket_g[0] = g_new;
        nb = 1;
        done = true;
        break;
      }
      if (gtd_new >= 0) {
        bracket[0] = t_prev, bracket[1] = t, bracket_f[0] = f_prev, bracket_f[1] = f_new;
        bracket_g[0] = g_prev, bracket_g[1] = g_new, bracket_gtd[0] = gtd_prev, bracket_gtd[1] = gtd_new;
        nb = 2;
        break;
      }
      const double min_step = t + 0.01 * (t - t_prev), max_step = t * 10, tmp = t;
      t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, std::pair{min_step, max_step});
      t_prev = tmp, f_prev = f_new, g_prev = g_new, gtd_prev = gtd_new;
      std::tie(f_new, g_new) = directional_evaluate(closure, x, t, d);
      ++evals;
      gtd_new = dot(g_new, d);
      ++ls_iter;
    }
    if (ls_iter == max_ls) {
      bracket[0] = 0, bracket[1] = t, bracket_f[0] = f, bracket_f[1] = f_new;
      bracket_g[0] = g, bracket_g[1] = g_new, bracket_gtd[0] = gtd, bracket_gtd[1] = gtd_new;
      nb = 2;
    }
    bool insuf_progress = false;
    int low = 0, high = 1;
    if (nb == 2 && bracket_f[0] > bracket_f[1]) low = 1, high = 0;
    while (!done && ls_iter < max_ls) {
      if (std::fabs(bracket[1] - bracket[0]) * d_norm < tolerance_change) break;
      t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]);
      const double bmax = std::max(bracket[0], bracket[1]), bmin = std::min(bracket[0], bracket[1]);
      const double eps = 0.1 * (bmax - bmin);
      if (std::min(bmax - t, t - bmin) < eps) {
        if (insuf_progress || t >= bmax || t <= bmin) {
          t = std::fabs(t - bmax) < std::fabs(t - bmin) ? bmax - eps : bmin + eps;
          insuf_progress = false;
        } else {
          insuf_progress = true;
        }
      } else {
        insuf_progress = false;
      }
      std::tie(f_new, g_new) = directional_evaluate(closure, x, t, d);
      ++evals;
      gtd_new = dot(g_new, d);
      ++ls_iter;
      if (f_new > f + c1 * t * gtd || f_new >= bracket_f[low]) {
        bracket[high] = t, bracket_f[high] = f_new, bracket_g[high] = g_new, bracket_gtd[high] = gtd_new;
        if (bracket_f[0] <= bracket_f[1])
          low = 0, high = 1;
        else
          low = 1, high = 0;
      } else {
        if (std::fabs(gtd_new) <= -c2 * gtd) {
          done = true;
        } else if (gtd_new * (bracket[high] - bracket[low]) >= 0) {
          bracket[high] = bracket[low], bracket_f[high] = bracket_f[low];
          bracket_g[high] = bracket_g[low], bracket_gtd[high] = bracket_gtd[low];
        }
        bracket[low] = t, bracket_f[low] = f_new, bracket_g[low] = g_new, bracket_gtd[low] = gtd_new;
      }
    }
    if (nb == 1) low = 0;
    return {bracket_f[low], bracket_g[low], bracket[low], evals};
  }

  ParameterList params_;
  LBFGSOptions options_;
  int func_evals_ = 0;
  int state_n_iter_ = 0;
  Vec d_, prev_flat_grad_;
  double t_ = 0, h_diag_ = 1;
  std::deque<Vec> old_dirs_, old_stps_;
  std::deque<double> ro_;
};

}  // namespace ft::inline FT_ABI::optim
