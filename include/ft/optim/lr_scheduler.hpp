// Learning-rate schedulers, as torch.optim.lr_scheduler: the same classes, options and defaults,
// and PyTorch 1.13's arithmetic operation for operation (its recursive "chainable" forms), so the
// learning rates equal PyTorch's to the last bit.
//
//   ft::optim::SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
//   ft::optim::CosineAnnealingLR sched(opt, 100);
//   for (int epoch = 0; epoch < 100; ++epoch) { train(opt); sched.step(); }
//
// State: state_dict() holds "last_epoch", "step_count" (f64 scalars) and "base_lrs", "last_lr"
// (f64 [groups]); SequentialLR adds its schedulers' under "schedulers.<i>."; ReduceLROnPlateau has
// its own keys. As in PyTorch, the lrs themselves are in the optimizer's state: load both.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/optim/optimizer.hpp"

namespace ft::inline FT_ABI::optim {

// One value for every parameter group, or one per group (PyTorch's "float or list" arguments).
class PerGroup {
 public:
  PerGroup(double v) : one_(v) {}                           // NOLINT: implicit, so `.min_lr = 0` reads as in Python
  PerGroup(std::vector<double> v) : each_(std::move(v)) {}  // NOLINT
  PerGroup(std::initializer_list<double> v) : each_(v) {}

  std::vector<double> expand(std::size_t groups, const char* op, const char* name) const {
    if (!each_) return std::vector<double>(groups, one_);
    check(each_->size() == groups, op, "expected ", groups, " values for ", name, " (one per param group), got ",
          each_->size());
    return *each_;
  }

 private:
  double one_ = 0;
  std::optional<std::vector<double>> each_;
};

namespace detail {

// Each group's lr before the first scheduler of `opt` changed it (PyTorch's
// param_group['initial_lr'], kept in the optimizer and shared by all its schedulers: a second
// scheduler's base_lrs are those, and SequentialLR resets the lrs to them). A non-owning
// handle: the optimizer outlives its schedulers.
inline std::shared_ptr<std::vector<double>> initial_lrs_of(Optimizer& opt) {
  std::vector<double>& record = opt.initial_lrs();
  // group.setdefault('initial_lr', group['lr'])
  for (std::size_t g = record.size(); g < opt.num_param_groups(); ++g) record.push_back(opt.lr(g));
  return std::shared_ptr<std::vector<double>>(std::shared_ptr<void>(), &record);
}

inline AnyTensor doubles_tensor(const std::vector<double>& v) {
  Tensor<double, 1> t(Shape<1>{static_cast<index_t>(v.size())}, kCPU);
  std::copy(v.begin(), v.end(), t.data());
  return t;
}
inline std::vector<double> doubles_value(const StateDict& sd, const std::string& key, std::size_t n) {
  const AnyTensor& t = sd.at(key);
  check(t.dtype() == DType::Float64 && t.dim() == 1 && t.numel() == static_cast<index_t>(n), "load_state_dict", key,
        " must be ", n, " float64 values, got ", t.dtype(), " ", t.shape_string());
  return t.as<double, 1>().to(kCPU).to_vector();
}
inline int int_value(const StateDict& sd, const std::string& key) { return static_cast<int>(scalar_value(sd, key)); }

}  // namespace detail

// The base of the epoch-driven schedulers. step() advances last_epoch and sets every group's lr to
// get_lr() (PyTorch's chainable form, which may read the optimizer's current lrs). A new scheduler
// implements get_lr() and calls initial_step() last in its constructor, which sets the epoch-0 lrs
// as PyTorch's constructor does.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  virtual void step() {
    ++step_count_;
    ++last_epoch_;
    apply(get_lr());
  }
  std::vector<double> get_last_lr() const { return last_lr_; }
  int last_epoch() const { return last_epoch_; }
  // Each group's lr before the first scheduler of this optimizer changed it (PyTorch's initial_lr).
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return opt_; }

  FT_COMPILED virtual StateDict state_dict() const;
  FT_COMPILED virtual void load_state_dict(const StateDict& sd);

 protected:
  LRScheduler(Optimizer& opt, const char* name)
      : opt_(opt), name_(name), initial_lrs_(detail::initial_lrs_of(opt)), base_lrs_(*initial_lrs_) {
    base_lrs_.resize(opt.num_param_groups());
  }

  // The lrs for last_epoch, given the optimizer's lrs for the epoch before.
  virtual std::vector<double> get_lr() = 0;
  // The lrs for last_epoch from base_lrs alone, where the scheduler has such a form.
  virtual std::optional<std::vector<double>> closed_form_lr() const { return std::nullopt; }
  // PyTorch's step(epoch) (deprecated there, used by SequentialLR to restart a scheduler at 0).
  virtual void step_to(int epoch) {
    ++step_count_;
    last_epoch_ = epoch;
    std::optional<std::vector<double>> closed = closed_form_lr();
    apply(closed ? *closed : get_lr());
  }
  void initial_step() {
    step_count_ = 0;
    step();
  }

  std::size_t groups() const { return base_lrs_.size(); }
  std::vector<double> current_lrs() const {
    std::vector<double> lrs(opt_.num_param_groups());
    for (std::size_t g = 0; g < lrs.size(); ++g) lrs[g] = opt_.lr(g);
    return lrs;
  }
  std::vector<double> current_lrs_times(double factor) const {
    std::vector<double> lrs = current_lrs();
    for (double& lr : lrs) lr = lr * factor;
    return lrs;
  }

  Optimizer& opt_;
  const char* name_;
  std::shared_ptr<std::vector<double>> initial_lrs_;
  std::vector<double> base_lrs_, last_lr_;
  int last_epoch_ = -1;
  int step_count_ = 0;  // steps since the initial one began: CosineAnnealingLR tells a resumed start by it

 private:
  friend class SequentialLR;
  void apply(const std::vector<double>& lrs) {
    check(lrs.size() == opt_.num_param_groups() && lrs.size() == base_lrs_.size(), name_, "the optimizer has ",
          opt_.num_param_groups(), " param groups, the scheduler was made for ", base_lrs_.size());
    for (std::size_t g = 0; g < lrs.size(); ++g) opt_.set_lr(g, lrs[g]);
    last_lr_ = current_lrs();
  }
};

// lr = base_lr · gamma^⌊epoch / step_size⌋ (as lr ← lr · gamma every step_size epochs).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int step_size, double gamma = 0.1)
      : LRScheduler(opt, "StepLR"), step_size_(step_size), gamma_(gamma) {
    check(step_size > 0, "StepLR", "step_size must be positive, got ", step_size);
    initial_step();
  }

 protected:
  std::vector<double> get_lr() override {
    if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return current_lrs();
    return current_lrs_times(gamma_);
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs = base_lrs_;
    for (double& lr : lrs) lr = lr * std::pow(gamma_, last_epoch_ / step_size_);
    return lrs;
  }

 private:
  int step_size_;
  double gamma_;
};

// lr = base_lr · gamma^(number of milestones ≤ epoch); a milestone listed twice counts twice.
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& opt, std::vector<int> milestones, double gamma = 0.1)
      : LRScheduler(opt, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
    check(std::is_sorted(milestones_.begin(), milestones_.end()), "MultiStepLR", "milestones must be increasing");
    for (int m : milestones_) ++counts_[m];
    initial_step();
  }

 protected:
  std::vector<double> get_lr() override {
    auto it = counts_.find(last_epoch_);
    if (it == counts_.end()) return current_lrs();
    return current_lrs_times(std::pow(gamma_, it->second));
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
    std::vector<double> lrs = base_lrs_;
    for (double& lr : lrs) lr = lr * std::pow(gamma_, static_cast<double>(passed));
    return lrs;
  }

 private:
  std::vector<int> milestones_;
  std::map<int, int> counts_;
  double gamma_;
};

// lr = base_lr · gamma^epoch (as lr ← lr · gamma every epoch).
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& opt, double gamma) : LRScheduler(opt, "ExponentialLR"), gamma_(gamma) { initial_step(); }

 protected:
  std::vector<double> get_lr() override {
    if (last_epoch_ == 0) return current_lrs();
    return current_lrs_times(gamma_);
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs = base_lrs_;
    for (double& lr : lrs) lr = lr * std::pow(gamma_, last_epoch_);
    return lrs;
  }

 private:
  double gamma_;
};

// lr = eta_min + (base_lr − eta_min)·(1 + cos(π·epoch / T_max)) / 2, computed as PyTorch does:
// recursively from the previous lr (so outside changes carry over), rising again past T_max.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int T_max, double eta_min = 0)
      : LRScheduler(opt, "CosineAnnealingLR"), T_max_(T_max), eta_min_(eta_min) {
    check(T_max > 0, "CosineAnnealingLR", "T_max must be positive, got ", T_max);
    initial_step();
  }

 protected:
  std::vector<double> get_lr() override {
    constexpr double pi = std::numbers::pi;
    const double e = last_epoch_, T = T_max_;
    if (last_epoch_ == 0) return current_lrs();
    std::vector<double> lrs = current_lrs();
    if (step_count_ == 1 && last_epoch_ > 0) {  // started mid-way (SequentialLR over a stepped scheduler)
      for (std::size_t g = 0; g < lrs.size(); ++g)
        lrs[g] = eta_min_ + (base_lrs_[g] - eta_min_) * (1 + std::cos(e * pi / T)) / 2;
    } else if ((last_epoch_ - 1 - T_max_) % (2 * T_max_) == 0) {  // the first step up after a minimum
      for (std::size_t g = 0; g < lrs.size(); ++g)
        lrs[g] = lrs[g] + (base_lrs_[g] - eta_min_) * (1 - std::cos(pi / T)) / 2;
    } else {
      for (double& lr : lrs)
        lr = (1 + std::cos(pi * e / T)) / (1 + std::cos(pi * (e - 1) / T)) * (lr - eta_min_) + eta_min_;
    }
    return lrs;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs = base_lrs_;
    for (double& lr : lrs)
      lr = eta_min_ + (lr - eta_min_) * (1 + std::cos(std::numbers::pi * last_epoch_ / T_max_)) / 2;
    return lrs;
  }

 private:
  int T_max_;
  double eta_min_;
};

struct LinearLROptions {
  double start_factor = 1.0 / 3;
  double end_factor = 1.0;
  int total_iters = 5;
};

// lr = base_lr · (start_factor + (end_factor − start_factor) · min(epoch, total_iters) / total_iters),
// computed recursively as PyTorch does.
class LinearLR : public LRScheduler {
 public:
  explicit LinearLR(Optimizer& opt, const LinearLROptions& o = {}) : LRScheduler(opt, "LinearLR"), o_(o) {
    check(o.start_factor > 0 && o.start_factor <= 1, "LinearLR", "start_factor must be in (0, 1], got ",
          o.start_factor);
    check(o.end_factor >= 0 && o.end_factor <= 1, "LinearLR", "end_factor must be in [0, 1], got ", o.end_factor);
    check(o.total_iters > 0, "LinearLR", "total_iters must be positive, got ", o.total_iters);
    initial_step();
  }

 protected:
  std::vector<double> get_lr() override {
    if (last_epoch_ == 0) return current_lrs_times(o_.start_factor);
    if (last_epoch_ > o_.total_iters) return current_lrs();
    const double delta = o_.end_factor - o_.start_factor;
    return current_lrs_times(1. + delta / (o_.total_iters * o_.start_factor + (last_epoch_ - 1) * delta));
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs = base_lrs_;
    for (double& lr : lrs)
      lr = lr * (o_.start_factor +
                 (o_.end_factor - o_.start_factor) * std::min(o_.total_iters, last_epoch_) / o_.total_iters);
    return lrs;
  }

 private:
  LinearLROptions o_;
};

enum class Anneal { Cos, Linear };

struct OneCycleLROptions {
  std::optional<int> total_steps{};  // or epochs × steps_per_epoch
  std::optional<int> epochs{};
  std::optional<int> steps_per_epoch{};
  double pct_start = 0.3;
  Anneal anneal_strategy = Anneal::Cos;
  bool cycle_momentum = true;
  PerGroup base_momentum = 0.85;
  PerGroup max_momentum = 0.95;
  double div_factor = 25;
  double final_div_factor = 1e4;
  bool three_phase = false;
};

// The 1cycle policy, per step: lr anneals from max_lr/div_factor up to max_lr over pct_start of
// total_steps, then down to max_lr/(div_factor·final_div_factor) (three_phase: back to the start,
// then down); momentum moves the opposite way between max_momentum and base_momentum.
class OneCycleLR : public LRScheduler {
 public:
  static constexpr const char* kName = "OneCycleLR";

  FT_COMPILED OneCycleLR(Optimizer& opt, PerGroup max_lr, const OneCycleLROptions& o = {});

  int total_steps() const { return total_steps_; }

 protected:
  FT_COMPILED std::vector<double> get_lr() override;

 private:
  struct Levels {
    double initial = 0, max = 0, min = 0, max_momentum = 0, base_momentum = 0;
  };
  struct Phase {
    double end_step;
    double Levels::*start_lr;
    double Levels::*end_lr;
    double Levels::*start_momentum;
    double Levels::*end_momentum;
  };
  double anneal(double start, double end, double pct) const {
    if (anneal_ == Anneal::Linear) return (end - start) * pct + start;
    const double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }

  Anneal anneal_;
  bool cycle_momentum_;
  int total_steps_ = 0;
  std::vector<Phase> phases_;
  std::vector<Levels> levels_;
};

// lr = base_lr · lambda(epoch), one lambda for all groups or one per group.
class LambdaLR : public LRScheduler {
 public:
  using Lambda = std::function<double(int epoch)>;

  LambdaLR(Optimizer& opt, Lambda lr_lambda) : LRScheduler(opt, "LambdaLR"), lambdas_(groups(), lr_lambda) {
    check(static_cast<bool>(lr_lambda), "LambdaLR", "the lambda is empty");
    initial_step();
  }
  LambdaLR(Optimizer& opt, std::vector<Lambda> lr_lambdas)
      : LRScheduler(opt, "LambdaLR"), lambdas_(std::move(lr_lambdas)) {
    check(lambdas_.size() == groups(), "LambdaLR", "expected ", groups(), " lr_lambdas (one per param group), got ",
          lambdas_.size());
    for (const Lambda& f : lambdas_) check(static_cast<bool>(f), "LambdaLR", "a lambda is empty");
    initial_step();
  }

 protected:
  std::vector<double> get_lr() override {
    std::vector<double> lrs(groups());
    for (std::size_t g = 0; g < groups(); ++g) lrs[g] = base_lrs_[g] * lambdas_[g](last_epoch_);
    return lrs;
  }

 private:
  std::vector<Lambda> lambdas_;
};

// Runs schedulers[0] until milestones[0], then schedulers[1] (restarted with step(0)) until
// milestones[1], and so on. Construction resets the lrs to their initial values and redoes
// schedulers[0]'s initial step, as PyTorch's does.
class SequentialLR : public LRScheduler {
 public:
  static constexpr const char* kName = "SequentialLR";

  SequentialLR(Optimizer& opt, std::vector<std::shared_ptr<LRScheduler>> schedulers, std::vector<int> milestones)
      : LRScheduler(opt, kName), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
    check(!schedulers_.empty(), kName, "needs at least one scheduler");
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
      check(schedulers_[i] != nullptr, kName, "scheduler ", i, " is null");
      check(&schedulers_[i]->opt_ == &opt, kName, "scheduler ", i, " belongs to another optimizer");
    }
    check(milestones_.size() + 1 == schedulers_.size(), kName, "expected one milestone fewer than schedulers, got ",
          schedulers_.size(), " schedulers and ", milestones_.size(), " milestones");
    for (std::size_t i = 0; i < milestones_.size(); ++i)
      check(milestones_[i] > (i == 0 ? 0 : milestones_[i - 1]), kName,
            "milestones must be positive and increasing, got ", milestones_[i], " at index ", i);

    last_epoch_ = 0;
    for (std::size_t g = 0; g < opt.num_param_groups(); ++g) opt.set_lr(g, (*initial_lrs_)[g]);
    for (auto& s : schedulers_) s->last_epoch_ -= 1;  // undo their initial steps
    schedulers_[0]->initial_step();
    last_lr_ = schedulers_[0]->get_last_lr();
  }

  void step() override {
    ++last_epoch_;
    const auto idx = static_cast<std::size_t>(std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) -
                                              milestones_.begin());
    LRScheduler& s = *schedulers_[idx];
    if (idx > 0 && milestones_[idx - 1] == last_epoch_)
      s.step_to(0);
    else
      s.step();
    last_lr_ = s.get_last_lr();
  }

  StateDict state_dict() const override {
    StateDict sd;
    sd.insert("last_epoch", detail::scalar_tensor(last_epoch_));
    sd.insert("last_lr", detail::doubles_tensor(last_lr_));
    for (std::size_t i = 0; i < schedulers_.size(); ++i)
      for (const auto& [key, t] : schedulers_[i]->state_dict()) sd.insert(prefix(i) + key, t);
    return sd;
  }
  void load_state_dict(const StateDict& sd) override {
    last_epoch_ = detail::int_value(sd, "last_epoch");
    last_lr_ = detail::doubles_value(sd, "last_lr", groups());
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
      StateDict sub;
      for (const auto& [key, t] : sd)
        if (key.rfind(prefix(i), 0) == 0) sub.insert(key.substr(prefix(i).size()), t);
      schedulers_[i]->load_state_dict(sub);
    }
  }

 protected:
  std::vector<double> get_lr() override { return last_lr_; }  // unused: step() delegates
  void step_to(int) override {
    fail(kName, "cannot be restarted at a milestone (PyTorch's SequentialLR cannot either)");
  }

 private:
  static std::string prefix(std::size_t i) { return "schedulers." + std::to_string(i) + "."; }

  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int> milestones_;
};

enum class Mode { Min, Max };
enum class ThresholdMode { Rel, Abs };

struct ReduceLROnPlateauOptions {
  Mode mode = Mode::Min;
  double factor = 0.1;
  int patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::Rel;
  int cooldown = 0;
  PerGroup min_lr = 0.0;
  double eps = 1e-8;
};

// lr ← max(lr · factor, min_lr) once the metric has not improved (by threshold) for more than
// `patience` steps; then waits `cooldown` steps; changes smaller than eps are skipped.
class ReduceLROnPlateau {
 public:
  static constexpr const char* kName = "ReduceLROnPlateau";

  explicit ReduceLROnPlateau(Optimizer& opt, const ReduceLROnPlateauOptions& o = {})
      : opt_(opt), o_(o), min_lrs_(o.min_lr.expand(opt.num_param_groups(), kName, "min_lr")) {
    check(o.factor < 1.0, kName, "factor must be < 1, got ", o.factor);
    best_ = mode_worse();
    for (std::size_t g = 0; g < opt.num_param_groups(); ++g) last_lr_.push_back(opt.lr(g));
  }

  void step(double metric) {
    last_epoch_ += 1;
    if (is_better(metric, best_)) {
      best_ = metric;
      num_bad_epochs_ = 0;
    } else {
      num_bad_epochs_ += 1;
    }
    if (in_cooldown()) {
      cooldown_counter_ -= 1;
      num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
    }
    if (num_bad_epochs_ > o_.patience) {
      reduce_lr();
      cooldown_counter_ = o_.cooldown;
      num_bad_epochs_ = 0;
    }
    last_lr_.clear();
    for (std::size_t g = 0; g < opt_.num_param_groups(); ++g) last_lr_.push_back(opt_.lr(g));
  }

  std::vector<double> get_last_lr() const { return last_lr_; }
  int last_epoch() const { return last_epoch_; }
  double best() const { return best_; }
  int num_bad_epochs() const { return num_bad_epochs_; }
  int cooldown_counter() const { return cooldown_counter_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }
  Optimizer& optimizer() const { return opt_; }

  // "last_epoch", "best", "num_bad_epochs", "cooldown_counter" (f64 scalars), "last_lr" (f64 [groups]).
  StateDict state_dict() const {
    StateDict sd;
    sd.insert("last_epoch", detail::scalar_tensor(last_epoch_));
    sd.insert("best", detail::scalar_tensor(best_));
    sd.insert("num_bad_epochs", detail::scalar_tensor(num_bad_epochs_));
    sd.insert("cooldown_counter", detail::scalar_tensor(cooldown_counter_));
    sd.insert("last_lr", detail::doubles_tensor(last_lr_));
    return sd;
  }
  void load_state_dict(const StateDict& sd) {
    last_epoch_ = detail::int_value(sd, "last_epoch");
    best_ = detail::scalar_value(sd, "best");
    num_bad_epochs_ = detail::int_value(sd, "num_bad_epochs");
    cooldown_counter_ = detail::int_value(sd, "cooldown_counter");
    last_lr_ = detail::doubles_value(sd, "last_lr", min_lrs_.size());
  }

 private:
  double mode_worse() const {
    const double inf = std::numeric_limits<double>::infinity();
    return o_.mode == Mode::Min ? inf : -inf;
  }
  bool is_better(double a, double best) const {
    if (o_.mode == Mode::Min && o_.threshold_mode == ThresholdMode::Rel) return a < best * (1. - o_.threshold);
    if (o_.mode == Mode::Min) return a < best - o_.threshold;
    if (o_.threshold_mode == ThresholdMode::Rel) return a > best * (o_.threshold + 1.);
    return a > best + o_.threshold;
  }
  void reduce_lr() {
    for (std::size_t g = 0; g < opt_.num_param_groups(); ++g) {
      const double old_lr = opt_.lr(g);
      const double new_lr = std::max(old_lr * o_.factor, min_lrs_.at(g));
      if (old_lr - new_lr > o_.eps) opt_.set_lr(g, new_lr);
    }
  }

  Optimizer& opt_;
  ReduceLROnPlateauOptions o_;
  std::vector<double> min_lrs_;
  std::vector<double> last_lr_;
  double best_ = 0;
  int num_bad_epochs_ = 0;
  int cooldown_counter_ = 0;
  int last_epoch_ = 0;
};

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED StateDict LRScheduler::state_dict() const {
  StateDict sd;
  sd.insert("last_epoch", detail::scalar_tensor(last_epoch_));
  sd.insert("step_count", detail::scalar_tensor(step_count_));
  sd.insert("base_lrs", detail::doubles_tensor(base_lrs_));
  sd.insert("last_lr", detail::doubles_tensor(last_lr_));
  return sd;
}

FT_COMPILED void LRScheduler::load_state_dict(const StateDict& sd) {
  last_epoch_ = detail::int_value(sd, "last_epoch");
  step_count_ = detail::int_value(sd, "step_count");
  base_lrs_ = detail::doubles_value(sd, "base_lrs", base_lrs_.size());
  last_lr_ = detail::doubles_value(sd, "last_lr", base_lrs_.size());
}

FT_COMPILED OneCycleLR::OneCycleLR(Optimizer& opt, PerGroup max_lr, const OneCycleLROptions& o)
    : LRScheduler(opt, kName), anneal_(o.anneal_strategy), cycle_momentum_(o.cycle_momentum) {
  if (o.total_steps) {
    check(*o.total_steps > 0, kName, "expected a positive total_steps, got ", *o.total_steps);
    total_steps_ = *o.total_steps;
  } else {
    check(o.epochs || o.steps_per_epoch, kName, "give either total_steps or epochs and steps_per_epoch");
    check(o.epochs && *o.epochs > 0, kName, "expected a positive epochs, got ",
          o.epochs ? std::to_string(*o.epochs) : "none");
    check(o.steps_per_epoch && *o.steps_per_epoch > 0, kName, "expected a positive steps_per_epoch, got ",
          o.steps_per_epoch ? std::to_string(*o.steps_per_epoch) : "none");
    total_steps_ = *o.epochs * *o.steps_per_epoch;
  }
  check(o.pct_start >= 0 && o.pct_start <= 1, kName, "expected pct_start between 0 and 1, got ", o.pct_start);
  using L = Levels;
  if (o.three_phase)
    phases_ = {{o.pct_start * total_steps_ - 1, &L::initial, &L::max, &L::max_momentum, &L::base_momentum},
               {2 * o.pct_start * total_steps_ - 2, &L::max, &L::initial, &L::base_momentum, &L::max_momentum},
               {total_steps_ - 1.0, &L::initial, &L::min, &L::max_momentum, &L::max_momentum}};
  else
    phases_ = {{o.pct_start * total_steps_ - 1, &L::initial, &L::max, &L::max_momentum, &L::base_momentum},
               {total_steps_ - 1.0, &L::max, &L::min, &L::base_momentum, &L::max_momentum}};

  const std::vector<double> max_lrs = max_lr.expand(groups(), kName, "max_lr");
  levels_.resize(groups());
  for (std::size_t g = 0; g < groups(); ++g) {
    levels_[g].initial = max_lrs[g] / o.div_factor;
    levels_[g].max = max_lrs[g];
    levels_[g].min = levels_[g].initial / o.final_div_factor;
    (*initial_lrs_)[g] = base_lrs_[g] = levels_[g].initial;  // OneCycleLR sets group['initial_lr']
  }
  if (cycle_momentum_) {
    for (std::size_t g = 0; g < groups(); ++g)
      check(opt.momentum(g).has_value(), kName, "the optimizer must have a momentum (or beta1) with cycle_momentum");
    const std::vector<double> max_m = o.max_momentum.expand(groups(), kName, "max_momentum");
    const std::vector<double> base_m = o.base_momentum.expand(groups(), kName, "base_momentum");
    for (std::size_t g = 0; g < groups(); ++g) {
      levels_[g].max_momentum = max_m[g];
      levels_[g].base_momentum = base_m[g];
      opt.set_momentum(g, max_m[g]);
    }
  }
  initial_step();
}

FT_COMPILED std::vector<double> OneCycleLR::get_lr() {
  const int step_num = last_epoch_;
  check(step_num <= total_steps_, kName, "tried to step ", step_num + 1,
        " times; the specified number of total steps is ", total_steps_);
  std::vector<double> lrs(groups());
  for (std::size_t g = 0; g < groups(); ++g) {
    const Levels& l = levels_[g];
    double start_step = 0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& p = phases_[i];
      if (step_num <= p.end_step || i + 1 == phases_.size()) {
        const double pct = (step_num - start_step) / (p.end_step - start_step);
        lrs[g] = anneal(l.*p.start_lr, l.*p.end_lr, pct);
        if (cycle_momentum_) opt_.set_momentum(g, anneal(l.*p.start_momentum, l.*p.end_momentum, pct));
        break;
      }
      start_step = p.end_step;
    }
  }
  return lrs;
}
#endif

}  // namespace ft::inline FT_ABI::optim
