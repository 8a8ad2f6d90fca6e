// Learning-rate schedulers against PyTorch's own (tests/golden/schedulers.txt, written by
// tests/golden/make_schedulers.py): every lr (and OneCycleLR's momentum) after construction and
// after each of 30 steps, for two param groups; plus argument errors and state dict round trips.
// A test-only optimizer stands in for SGD/Adam: a scheduler only sees lr and momentum.
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/optim/lr_scheduler.hpp"
#include "golden/golden.hpp"

namespace {

using ft::optim::Anneal;
using ft::optim::CosineAnnealingLR;
using ft::optim::ExponentialLR;
using ft::optim::LambdaLR;
using ft::optim::LinearLR;
using ft::optim::LinearLROptions;
using ft::optim::LRScheduler;
using ft::optim::Mode;
using ft::optim::MultiStepLR;
using ft::optim::OneCycleLR;
using ft::optim::OneCycleLROptions;
using ft::optim::ReduceLROnPlateau;
using ft::optim::ReduceLROnPlateauOptions;
using ft::optim::SequentialLR;
using ft::optim::StateDict;
using ft::optim::StepLR;
using ft::optim::ThresholdMode;
using ft::test::Golden;
using Schedulers = std::vector<std::shared_ptr<LRScheduler>>;

constexpr int kSteps = 30;
constexpr double kRtol = 1e-12;  // PyTorch computes these in Python floats (double), as we do

const Golden& golden() {
  static const Golden g("schedulers.txt");
  return g;
}

// Parameter groups holding only an lr and, optionally, a momentum (SGD's momentum or Adam's beta1).
class FakeOptimizer final : public ft::optim::Optimizer {
 public:
  explicit FakeOptimizer(std::vector<double> lrs, std::optional<std::vector<double>> momenta = std::nullopt)
      : lrs_(std::move(lrs)), momenta_(std::move(momenta)) {}
  // The two groups of the golden cases: lr 0.1 and 0.05, momentum 0.9.
  static FakeOptimizer golden_sgd() { return FakeOptimizer({0.1, 0.05}, std::vector<double>{0.9, 0.9}); }

  std::size_t num_param_groups() const override { return lrs_.size(); }
  const ft::nn::ParameterList& group_params(std::size_t) const override {
    static const ft::nn::ParameterList none;
    return none;
  }
  double lr(std::size_t g = 0) const override { return lrs_.at(g); }
  void set_lr(std::size_t g, double lr) override { lrs_.at(g) = lr; }
  std::optional<double> momentum(std::size_t g = 0) const override {
    if (!momenta_) return std::nullopt;
    return momenta_->at(g);
  }
  void set_momentum(std::size_t g, double m) override {
    REQUIRE(momenta_.has_value());
    momenta_->at(g) = m;
  }
  void step() override { ++steps; }
  StateDict state_dict() const override {
    StateDict sd;
    for (std::size_t g = 0; g < lrs_.size(); ++g) {
      sd.insert("param_groups." + std::to_string(g) + ".lr", ft::optim::detail::scalar_tensor(lrs_[g]));
      if (momenta_)
        sd.insert("param_groups." + std::to_string(g) + ".momentum", ft::optim::detail::scalar_tensor(momenta_->at(g)));
    }
    return sd;
  }
  void load_state_dict(const StateDict& sd) override {
    for (std::size_t g = 0; g < lrs_.size(); ++g) {
      lrs_[g] = ft::optim::detail::scalar_value(sd, "param_groups." + std::to_string(g) + ".lr");
      if (momenta_)
        momenta_->at(g) = ft::optim::detail::scalar_value(sd, "param_groups." + std::to_string(g) + ".momentum");
    }
  }

  std::vector<double> lrs() const { return lrs_; }
  std::vector<double> momenta() const { return momenta_.value_or(std::vector<double>{}); }
  int steps = 0;

 private:
  std::vector<double> lrs_;
  std::optional<std::vector<double>> momenta_;
};

// Row k of a [steps + 1, groups] golden record.
std::vector<double> row(const std::string& name, int k) {
  const ft::test::GoldenRecord& r = golden().record(name);
  REQUIRE(r.shape.size() == 2);
  const auto groups = static_cast<std::size_t>(r.shape[1]);
  auto first = r.values.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(k) * groups);
  return {first, first + static_cast<std::ptrdiff_t>(groups)};
}

double worst_relative_error = 0;  // over all golden comparisons, for the summary message

void check_row(const std::vector<double>& got, const std::vector<double>& want) {
  for (std::size_t i = 0; i < got.size() && i < want.size(); ++i)
    if (want[i] != 0)
      worst_relative_error = std::max(worst_relative_error, std::fabs(got[i] - want[i]) / std::fabs(want[i]));
  ft::test::check_close(got, want, kRtol, 0.0);
}

using Make = std::function<std::shared_ptr<LRScheduler>(FakeOptimizer&)>;

// The C++ twin of every epoch-driven case in make_schedulers.py, under the same name.
const std::map<std::string, Make>& cases() {
  static const std::map<std::string, Make> c = {
      {"step", [](FakeOptimizer& o) { return std::make_shared<StepLR>(o, 7, 0.5); }},
      {"step_default_gamma", [](FakeOptimizer& o) { return std::make_shared<StepLR>(o, 3); }},
      {"multistep",
       [](FakeOptimizer& o) {
         return std::make_shared<MultiStepLR>(o, std::vector<int>{4, 10, 10, 21}, 0.5);
       }},
      {"multistep_default_gamma",
       [](FakeOptimizer& o) {
         return std::make_shared<MultiStepLR>(o, std::vector<int>{5, 15});
       }},
      {"exponential", [](FakeOptimizer& o) { return std::make_shared<ExponentialLR>(o, 0.9); }},
      {"cosine", [](FakeOptimizer& o) { return std::make_shared<CosineAnnealingLR>(o, 10, 0.001); }},
      {"cosine_default_eta", [](FakeOptimizer& o) { return std::make_shared<CosineAnnealingLR>(o, 7); }},
      {"linear_default", [](FakeOptimizer& o) { return std::make_shared<LinearLR>(o); }},
      {"linear_warmup",
       [](FakeOptimizer& o) {
         return std::make_shared<LinearLR>(o, LinearLROptions{.start_factor = 0.1, .total_iters = 10});
       }},
      {"linear_decay",
       [](FakeOptimizer& o) {
         return std::make_shared<LinearLR>(o,
                                           LinearLROptions{.start_factor = 1.0, .end_factor = 0.2, .total_iters = 12});
       }},
      {"onecycle",
       [](FakeOptimizer& o) {
         return std::make_shared<OneCycleLR>(o, ft::optim::PerGroup{0.5, 0.2}, OneCycleLROptions{.total_steps = 30});
       }},
      {"onecycle_linear_three_phase",
       [](FakeOptimizer& o) {
         return std::make_shared<OneCycleLR>(o, 0.4,
                                             OneCycleLROptions{.epochs = 7,
                                                               .steps_per_epoch = 5,
                                                               .pct_start = 0.25,
                                                               .anneal_strategy = Anneal::Linear,
                                                               .base_momentum = 0.8,
                                                               .max_momentum = 0.9,
                                                               .div_factor = 10.0,
                                                               .final_div_factor = 100.0,
                                                               .three_phase = true});
       }},
      {"onecycle_no_cycle_momentum",
       [](FakeOptimizer& o) {
         return std::make_shared<OneCycleLR>(
             o, 0.3, OneCycleLROptions{.total_steps = 40, .pct_start = 0.4, .cycle_momentum = false});
       }},
      {"onecycle_adam",
       [](FakeOptimizer& o) {
         return std::make_shared<OneCycleLR>(
             o, 0.01,
             OneCycleLROptions{
                 .total_steps = 32, .base_momentum = {0.8, 0.85}, .max_momentum = 0.95, .three_phase = true});
       }},
      {"lambda",
       [](FakeOptimizer& o) { return std::make_shared<LambdaLR>(o, [](int e) { return std::pow(0.95, e); }); }},
      {"lambda_per_group",
       [](FakeOptimizer& o) {
         return std::make_shared<LambdaLR>(o, std::vector<LambdaLR::Lambda>{[](int e) { return std::pow(0.95, e); },
                                                                            [](int e) { return 1.0 / (e + 1); }});
       }},
      {"sequential",
       [](FakeOptimizer& o) {
         return std::make_shared<SequentialLR>(
             o,
             Schedulers{std::make_shared<LinearLR>(o, LinearLROptions{.start_factor = 0.1, .total_iters = 5}),
                        std::make_shared<CosineAnnealingLR>(o, 25)},
             std::vector<int>{5});
       }},
      {"sequential_three",
       [](FakeOptimizer& o) {
         return std::make_shared<SequentialLR>(
             o,
             Schedulers{std::make_shared<LinearLR>(o, LinearLROptions{.start_factor = 0.25, .total_iters = 4}),
                        std::make_shared<StepLR>(o, 3, 0.5), std::make_shared<CosineAnnealingLR>(o, 10, 0.001)},
             std::vector<int>{4, 14});
       }},
      {"sequential_exp_lambda_multistep",
       [](FakeOptimizer& o) {
         return std::make_shared<SequentialLR>(
             o,
             Schedulers{std::make_shared<ExponentialLR>(o, 0.9),
                        std::make_shared<LambdaLR>(o, [](int e) { return std::pow(0.95, e); }),
                        std::make_shared<MultiStepLR>(o, std::vector<int>{3, 6}, 0.5)},
             std::vector<int>{8, 20});
       }},
  };
  return c;
}

const std::map<std::string, ReduceLROnPlateauOptions>& plateau_cases() {
  static const std::map<std::string, ReduceLROnPlateauOptions> c = {
      {"plateau_default", {}},
      {"plateau_min", {.factor = 0.5, .patience = 2}},
      {"plateau_cooldown_abs",
       {.factor = 0.5,
        .patience = 1,
        .threshold = 0.05,
        .threshold_mode = ThresholdMode::Abs,
        .cooldown = 3,
        .min_lr = {0.01, 0.004}}},
      {"plateau_eps", {.factor = 0.5, .patience = 0, .eps = 0.01}},
      {"plateau_max", {.mode = Mode::Max, .factor = 0.3, .patience = 3, .threshold = 0.01, .min_lr = 0.002}},
  };
  return c;
}

FakeOptimizer optimizer_for(const std::string& name) {
  if (name == "onecycle_adam") return FakeOptimizer({0.1, 0.05}, std::vector<double>{0.9, 0.9});  // beta1
  return FakeOptimizer::golden_sgd();
}

void run_golden_case(const std::string& name, const Make& make) {
  INFO(name);
  FakeOptimizer opt = optimizer_for(name);
  std::shared_ptr<LRScheduler> sched = make(opt);
  const bool has_momentum = golden().has(name + ".momentum");
  for (int k = 0; k <= kSteps; ++k) {
    INFO("after step " << k);
    if (k > 0) {
      opt.step();
      sched->step();
    }
    CHECK(sched->last_epoch() == k);
    check_row(opt.lrs(), row(name + ".lr", k));
    check_row(sched->get_last_lr(), row(name + ".lr", k));
    if (has_momentum) check_row(opt.momenta(), row(name + ".momentum", k));
  }
}

}  // namespace

TEST_CASE("every epoch-driven scheduler matches PyTorch's lrs (and OneCycleLR's momentum) at every step") {
  for (const auto& [name, make] : cases()) {
    REQUIRE(golden().has(name + ".lr"));
    run_golden_case(name, make);
  }
  MESSAGE("worst relative difference from PyTorch so far: " << worst_relative_error);
}

TEST_CASE("ReduceLROnPlateau matches PyTorch: patience, threshold modes, cooldown, min_lr, eps, mode max") {
  for (const auto& entry : plateau_cases()) {
    const std::string& name = entry.first;  // not a structured binding: INFO captures it
    const ReduceLROnPlateauOptions& options = entry.second;
    INFO(name);
    const std::vector<double>& metrics = golden().values(name + ".metrics");
    REQUIRE(metrics.size() == kSteps);
    FakeOptimizer opt = FakeOptimizer::golden_sgd();
    ReduceLROnPlateau sched(opt, options);
    check_row(opt.lrs(), row(name + ".lr", 0));
    for (int k = 1; k <= kSteps; ++k) {
      INFO("after step " << k << " (metric " << metrics[static_cast<std::size_t>(k - 1)] << ")");
      opt.step();
      sched.step(metrics[static_cast<std::size_t>(k - 1)]);
      CHECK(sched.last_epoch() == k);
      check_row(opt.lrs(), row(name + ".lr", k));
      check_row(sched.get_last_lr(), row(name + ".lr", k));
    }
  }
  MESSAGE("worst relative difference from PyTorch so far: " << worst_relative_error);
}

TEST_CASE("a later scheduler's base_lrs are the lrs from before the first scheduler of that optimizer") {
  FakeOptimizer opt = FakeOptimizer::golden_sgd();
  LinearLR warmup(opt, {.start_factor = 0.1});
  CHECK(opt.lrs() == std::vector<double>{0.1 * 0.1, 0.05 * 0.1});
  ExponentialLR decay(opt, 0.5);
  CHECK(decay.base_lrs() == std::vector<double>{0.1, 0.05});
  CHECK(warmup.base_lrs() == std::vector<double>{0.1, 0.05});
  // OneCycleLR sets the initial lrs itself (max_lr / div_factor), for schedulers made after it too.
  OneCycleLR one(opt, 1.0, {.total_steps = 10, .div_factor = 4});
  CHECK(one.base_lrs() == std::vector<double>{0.25, 0.25});
  LambdaLR after(opt, [](int) { return 1.0; });
  CHECK(after.base_lrs() == std::vector<double>{0.25, 0.25});
}

TEST_CASE("schedulers reject bad arguments with ft::Error") {
  FakeOptimizer opt = FakeOptimizer::golden_sgd();
  FakeOptimizer no_momentum({0.1, 0.05});
  using V = std::vector<int>;

  CHECK_THROWS_AS(StepLR(opt, 0), ft::Error);
  CHECK_THROWS_AS(MultiStepLR(opt, V{5, 3}), ft::Error);
  CHECK_THROWS_AS(CosineAnnealingLR(opt, 0), ft::Error);
  CHECK_THROWS_AS(LinearLR(opt, {.start_factor = 0.0}), ft::Error);
  CHECK_THROWS_AS(LinearLR(opt, {.start_factor = 1.5}), ft::Error);
  CHECK_THROWS_AS(LinearLR(opt, {.end_factor = -0.1}), ft::Error);
  CHECK_THROWS_AS(LinearLR(opt, {.total_iters = 0}), ft::Error);

  // OneCycleLR: the number of steps, pct_start, per-group values, momentum.
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1, {.epochs = 3}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1, {.steps_per_epoch = 3}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1, {.total_steps = 0}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1, {.epochs = 0, .steps_per_epoch = 3}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1, {.total_steps = 10, .pct_start = 1.5}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, {0.1, 0.2, 0.3}, {.total_steps = 10}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(opt, 0.1, {.total_steps = 10, .base_momentum = {0.8}}), ft::Error);
  CHECK_THROWS_AS(OneCycleLR(no_momentum, 0.1, {.total_steps = 10}), ft::Error);
  CHECK_NOTHROW(OneCycleLR(no_momentum, 0.1, {.total_steps = 10, .cycle_momentum = false}));
  {
    OneCycleLR one(opt, 0.1, {.total_steps = 3});
    for (int k = 0; k < 3; ++k) one.step();  // the last step PyTorch allows
    CHECK_THROWS_AS(one.step(), ft::Error);
  }

  CHECK_THROWS_AS(LambdaLR(opt, std::vector<LambdaLR::Lambda>{[](int) { return 1.0; }}), ft::Error);
  CHECK_THROWS_AS(LambdaLR(opt, LambdaLR::Lambda{}), ft::Error);

  CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.factor = 1.0}), ft::Error);
  CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.min_lr = {0.1, 0.2, 0.3}}), ft::Error);

  auto a = std::make_shared<ExponentialLR>(opt, 0.9);
  auto b = std::make_shared<ExponentialLR>(opt, 0.8);
  auto c = std::make_shared<ExponentialLR>(opt, 0.7);
  auto other = std::make_shared<ExponentialLR>(no_momentum, 0.7);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{}, V{}), ft::Error);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{a, b}, V{}), ft::Error);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{a, b, c}, V{5, 5}), ft::Error);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{a, b, c}, V{6, 3}), ft::Error);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{a, b}, V{0}), ft::Error);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{a, other}, V{3}), ft::Error);
  CHECK_THROWS_AS(SequentialLR(opt, Schedulers{a, nullptr}, V{3}), ft::Error);
  auto inner = std::make_shared<SequentialLR>(opt, Schedulers{a, b}, V{2});
  SequentialLR outer(opt, Schedulers{c, inner}, V{2});
  outer.step();
  CHECK_THROWS_AS(outer.step(), ft::Error);  // a SequentialLR cannot be restarted with step(0)
}

TEST_CASE("a scheduler's state dict saved mid-way and loaded into a fresh one continues the same lrs") {
  const int saved_at = 12;
  for (const std::string name : {"step", "multistep", "cosine", "linear_warmup", "onecycle_linear_three_phase",
                                 "lambda_per_group", "sequential_three", "sequential_exp_lambda_multistep"}) {
    INFO(name);
    const Make& make = cases().at(name);
    FakeOptimizer opt = optimizer_for(name);
    std::shared_ptr<LRScheduler> sched = make(opt);
    for (int k = 0; k < saved_at; ++k) opt.step(), sched->step();
    const StateDict opt_state = opt.state_dict(), sched_state = sched->state_dict();

    FakeOptimizer fresh_opt = optimizer_for(name);
    std::shared_ptr<LRScheduler> fresh = make(fresh_opt);
    fresh_opt.load_state_dict(opt_state);  // as in PyTorch, the lrs live in the optimizer's state
    fresh->load_state_dict(sched_state);
    CHECK(fresh->last_epoch() == saved_at);
    CHECK(fresh->get_last_lr() == sched->get_last_lr());
    for (int k = saved_at + 1; k <= kSteps; ++k) {
      INFO("after step " << k);
      fresh_opt.step();
      fresh->step();
      check_row(fresh_opt.lrs(), row(name + ".lr", k));
    }
  }

  const std::string name = "plateau_cooldown_abs";
  const std::vector<double>& metrics = golden().values(name + ".metrics");
  FakeOptimizer opt = FakeOptimizer::golden_sgd();
  ReduceLROnPlateau sched(opt, plateau_cases().at(name));
  for (int k = 0; k < saved_at; ++k) sched.step(metrics[static_cast<std::size_t>(k)]);
  FakeOptimizer fresh_opt = FakeOptimizer::golden_sgd();
  ReduceLROnPlateau fresh(fresh_opt, plateau_cases().at(name));
  fresh_opt.load_state_dict(opt.state_dict());
  fresh.load_state_dict(sched.state_dict());
  CHECK(fresh.best() == sched.best());
  CHECK(fresh.num_bad_epochs() == sched.num_bad_epochs());
  CHECK(fresh.cooldown_counter() == sched.cooldown_counter());
  for (int k = saved_at + 1; k <= kSteps; ++k) {
    INFO(name << " after step " << k);
    fresh.step(metrics[static_cast<std::size_t>(k - 1)]);
    check_row(fresh_opt.lrs(), row(name + ".lr", k));
  }
}
