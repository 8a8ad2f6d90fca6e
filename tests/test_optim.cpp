// Optimizers against PyTorch's own results (tests/golden/optim.txt, written by
// tests/golden/make_optim.py): 5 steps of each optimizer on a small least-squares problem,
// gradient clipping, plus launch counts (one launch per step for all parameters), state
// dicts and argument errors.
#include <functional>
#include <memory>

#include "common.hpp"
#include "ft/nn.hpp"
#include "ft/optim/adam.hpp"
#include "ft/optim/lbfgs.hpp"
#include "ft/optim/rmsprop.hpp"
#include "ft/optim/sgd.hpp"
#include "golden/golden.hpp"

namespace {

using ft::test::Golden;

const Golden& golden() {
  static const Golden g("optim.txt");
  return g;
}

// The problem's parameters as fresh leaves on `dev`.
struct Problem {
  ft::Tensor<float, 2> x, y;
  ft::Var<float, 2> w;
  ft::Var<float, 1> b;
  explicit Problem(ft::Device dev)
      : x(golden().tensor<float, 2>("problem.x", dev)),
        y(golden().tensor<float, 2>("problem.y", dev)),
        w(golden().tensor<float, 2>("problem.weight", dev), ft::requires_grad),
        b(golden().tensor<float, 1>("problem.bias", dev), ft::requires_grad) {}
  ft::Var<float, 0> loss() const { return ft::mean(ft::square(ft::linear(x, w) + b - y)); }
  double closure() const {
    w.zero_grad();
    b.zero_grad();
    ft::Var<float, 0> l = loss();
    l.backward();
    return l.value().item();
  }
};

// Five steps; after each, the parameters agree with PyTorch's to 1e-5 relative.
template <class Opt>
void check_steps(const std::string& name, Problem& p, Opt& opt) {
  INFO(name);
  const Golden& g = golden();
  for (int k = 1; k <= 5; ++k) {
    INFO("step " << k);
    opt.zero_grad();
    ft::Var<float, 0> l = p.loss();
    CHECK(l.value().item() == doctest::Approx(g.scalar(name + ".loss" + std::to_string(k))).epsilon(1e-5));
    l.backward();
    opt.step();
    ft::test::check_close(p.w.value(), g.values(name + ".step" + std::to_string(k) + ".weight"), 1e-5, 1e-6);
    ft::test::check_close(p.b.value(), g.values(name + ".step" + std::to_string(k) + ".bias"), 1e-5, 1e-6);
  }
}

template <class Opt, class Options>
void golden_case(const std::string& name, Options o) {
  for (ft::Device dev : ft::test::devices()) {
    INFO(dev);
    Problem p(dev);
    Opt opt({p.w, p.b}, o);
    check_steps(name, p, opt);
  }
}

}  // namespace

TEST_CASE("SGD matches PyTorch: plain, momentum, dampening, Nesterov with weight decay, maximize") {
  using ft::optim::SGD;
  golden_case<SGD>("sgd", ft::optim::SGDOptions{.lr = 0.1});
  golden_case<SGD>("sgd_momentum", ft::optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  golden_case<SGD>("sgd_dampening", ft::optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  golden_case<SGD>("sgd_nesterov_wd",
                   ft::optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
  golden_case<SGD>("sgd_maximize", ft::optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .maximize = true});
}

TEST_CASE("Adam and AdamW match PyTorch, with weight decay and AMSGrad") {
  golden_case<ft::optim::Adam>("adam", ft::optim::AdamOptions{.lr = 0.01});
  golden_case<ft::optim::Adam>(
      "adam_wd_amsgrad",
      ft::optim::AdamOptions{.lr = 0.01, .betas = {0.8, 0.99}, .eps = 1e-6, .weight_decay = 0.1, .amsgrad = true});
  golden_case<ft::optim::AdamW>("adamw", ft::optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1});
  golden_case<ft::optim::AdamW>("adamw_amsgrad",
                                ft::optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
  ft::Var<float, 1> w(ft::zeros<float>({2}), ft::requires_grad);
  CHECK(ft::optim::AdamW({w}).defaults().weight_decay == 0.01);  // PyTorch's AdamW default
  CHECK(ft::optim::Adam({w}).defaults().weight_decay == 0.0);
}

TEST_CASE("RMSprop and Adagrad match PyTorch") {
  golden_case<ft::optim::RMSprop>("rmsprop", ft::optim::RMSpropOptions{.lr = 0.01});
  golden_case<ft::optim::RMSprop>(
      "rmsprop_centered_momentum",
      ft::optim::RMSpropOptions{
          .lr = 0.01, .alpha = 0.9, .eps = 1e-6, .weight_decay = 0.01, .momentum = 0.5, .centered = true});
  golden_case<ft::optim::Adagrad>("adagrad", ft::optim::AdagradOptions{.lr = 0.1});
  golden_case<ft::optim::Adagrad>(
      "adagrad_decay",
      ft::optim::AdagradOptions{.lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.01, .initial_accumulator_value = 0.1});
}

#ifndef __CUDACC__  // host logic only: the CPU suite runs it, the GPU copy would only compile it again
TEST_CASE("parameter groups carry their own options") {
  for (ft::Device dev : ft::test::devices()) {
    Problem p(dev);
    ft::optim::SGD opt({{{p.w}, {.lr = 0.1, .momentum = 0.9}}, {{p.b}, {.lr = 0.01}}}, {.lr = 0.5});
    CHECK(opt.num_param_groups() == 2);
    CHECK(opt.lr(1) == 0.01);
    check_steps("sgd_groups", p, opt);
  }
}

// L-BFGS amplifies rounding near convergence (PyTorch's own float32 and float64 runs differ by
// 1e-4 after two steps), so it is compared in double with PyTorch's float64 run.

TEST_CASE("LBFGS matches PyTorch, with and without the strong-Wolfe line search") {
  using ft::optim::LineSearch;
  struct Case {
    const char* name;
    double lr;
    LineSearch ls;
  };
  for (Case c : {Case{"lbfgs", 1, LineSearch::None}, Case{"lbfgs_wolfe", 1, LineSearch::StrongWolfe},
                 Case{"lbfgs_wolfe_lr5", 5, LineSearch::StrongWolfe}}) {
    const std::string name = c.name;
    INFO(name);
    const Golden& g = golden();
    auto x = g.tensor<double, 2>("problem.x"), y = g.tensor<double, 2>("problem.y");
    ft::Var<double, 2> w(g.tensor<double, 2>("problem.weight"), ft::requires_grad);
    ft::Var<double, 1> b(g.tensor<double, 1>("problem.bias"), ft::requires_grad);
    auto closure = [&] {
      w.zero_grad();
      b.zero_grad();
      ft::Var<double, 0> l = ft::mean(ft::square(ft::linear(x, w) + b - y));
      l.backward();
      return l.value().item();
    };
    ft::optim::LBFGS opt({w, b}, {.lr = c.lr, .max_iter = 5, .line_search_fn = c.ls});
    for (int k = 1; k <= 5; ++k) {
      INFO("step " << k);
      const double loss = opt.step(closure);
      CHECK(loss == doctest::Approx(g.scalar(name + ".loss" + std::to_string(k))).epsilon(1e-9));
      ft::test::check_close(w.value(), g.values(name + ".step" + std::to_string(k) + ".weight"), 1e-8, 1e-10);
      ft::test::check_close(b.value(), g.values(name + ".step" + std::to_string(k) + ".bias"), 1e-8, 1e-10);
    }
    CHECK_THROWS_AS(opt.step(), ft::Error);  // no closure
  }
}
#endif

TEST_CASE("clip_grad_norm_ and clip_grad_value_ match PyTorch, one launch each way") {
  const Golden& g = golden();
  for (ft::Device dev : ft::test::devices()) {
    INFO(dev);
    struct Case {
      const char* name;
      double norm_type;
    };
    for (Case c : {Case{"clip_norm", 2.0}, Case{"clip_norm1", 1.0}, Case{"clip_norminf", INFINITY}}) {
      INFO(c.name);
      Problem p(dev);
      ft::Var<float, 0> l = p.loss();
      l.backward();
      ft::test::check_close(p.w.grad(), g.values("clip.grad.weight"));
      ft::Tensor<double, 0> total;
      const auto launches = ft::test::launches_of(dev, [&] {
        total = ft::nn::clip_grad_norm_({p.w, p.b}, 0.5, c.norm_type);
      });
      CHECK(launches == 3);                    // the partial norms over both gradients, their combination, the scale
      CHECK(ft::stats::host_syncs(dev) == 0);  // since launches_of's reset
      CHECK(total.device() == dev);
      CHECK(total.item() == doctest::Approx(g.scalar(std::string(c.name) + ".total")).epsilon(1e-5));
      ft::test::check_close(p.w.grad(), g.values(std::string(c.name) + ".weight"));
      ft::test::check_close(p.b.grad(), g.values(std::string(c.name) + ".bias"));
    }
    Problem p(dev);
    ft::Var<float, 0> l = p.loss();
    l.backward();
    CHECK(ft::test::launches_of(dev, [&] { ft::nn::clip_grad_value_({p.w, p.b}, 0.1); }) == 1);
    ft::test::check_close(p.w.grad(), g.values("clip_value.weight"));
    ft::test::check_close(p.b.grad(), g.values("clip_value.bias"));
    CHECK_THROWS_AS(ft::nn::clip_grad_norm_({p.w}, 1.0, 3.0), ft::Error);
  }
}

TEST_CASE("an optimizer step is one launch for all parameters") {
  for (ft::Device dev : ft::test::devices()) {
    INFO(dev);
    std::vector<ft::Var<float, 1>> params;
    ft::nn::ParameterList list;
    for (int i = 0; i < 100; ++i) {
      params.emplace_back(ft::randn<float>({static_cast<ft::index_t>(1 + 997 * i)}, dev, static_cast<std::uint64_t>(i)),
                          ft::requires_grad);
      list.push_back(params.back());
    }
    for (auto& v : params) {
      ft::Var<float, 0> l = ft::sum(ft::square(v));
      l.backward();
    }
    ft::optim::Adam adam(list, {.lr = 1e-3});
    ft::optim::SGD sgd(list, {.lr = 1e-3, .momentum = 0.9});
    CHECK(ft::test::launches_of(dev, [&] { adam.step(); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { adam.step(); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { sgd.step(); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { ft::nn::clip_grad_norm_(list, 1.0); }) == 3);
    // a parameter without a gradient is skipped, as PyTorch skips grad None
    params[3].zero_grad();
    const auto before = params[3].value().to_vector();
    adam.step();
    CHECK(params[3].value().to_vector() == before);
    // the update through the handle is the model's Var
    CHECK(adam.state(list[0])->step == 3);
  }
}

#ifndef __CUDACC__  // host logic only: the CPU suite runs it, the GPU copy would only compile it again
TEST_CASE("optimizer state_dict round trip continues identically") {
  Problem a(ft::kCPU), b(ft::kCPU);
  ft::optim::Adam oa({a.w, a.b}, {.lr = 0.01, .amsgrad = true});
  for (int k = 0; k < 2; ++k) {
    a.closure();
    oa.step();
  }
  b.w.data() = a.w.value().clone();
  b.b.data() = a.b.value().clone();
  ft::optim::Adam ob({b.w, b.b}, {.lr = 0.5});
  auto sd = oa.state_dict();
  CHECK(sd.contains("state.0.exp_avg"));
  CHECK(sd.contains("state.1.max_exp_avg_sq"));
  CHECK(sd.contains("param_groups.0.beta2"));
  ob.load_state_dict(sd);
  CHECK(ob.lr() == 0.01);
  CHECK(ob.param_groups()[0].options.amsgrad);
  for (int k = 0; k < 3; ++k) {
    a.closure();
    oa.step();
    b.closure();
    ob.step();
  }
  CHECK(a.w.value().to_vector() == b.w.value().to_vector());
  CHECK(a.b.value().to_vector() == b.b.value().to_vector());
}

TEST_CASE("optimizer argument errors name the optimizer") {
  ft::Var<float, 1> w(ft::zeros<float>({2}), ft::requires_grad);
  CHECK_THROWS_WITH_AS(ft::optim::SGD({w}, {.lr = -1}), doctest::Contains("SGD"), ft::Error);
  CHECK_THROWS_AS(ft::optim::SGD({w}, {.lr = 0.1, .nesterov = true}), ft::Error);
  CHECK_THROWS_AS(ft::optim::Adam({w}, {.betas = {1.0, 0.9}}), ft::Error);
  CHECK_THROWS_AS(ft::optim::RMSprop({w}, {.alpha = -1}), ft::Error);
  CHECK_THROWS_AS(ft::optim::Adagrad({w}, {.lr_decay = -1}), ft::Error);
  CHECK_THROWS_AS(ft::optim::SGD({{{w}, {.lr = 0.1}}, {{w}, {.lr = 0.1}}}), ft::Error);  // w in two groups
  ft::Var<float, 2> m(ft::zeros<float>({3, 4}), ft::requires_grad);
  ft::Var<float, 2> mt = m.transpose(0, 1);
  CHECK_THROWS_AS(ft::optim::SGD({mt}), ft::Error);  // not contiguous
}

// ---- training: a small MLP and a small CNN reach near-zero loss on a separable problem ----
namespace {
// Two Gaussian blobs per class in 2-D, well separated: labels 0..3.
std::pair<ft::Tensor<float, 2>, ft::Tensor<std::int64_t, 1>> blobs(ft::Device dev) {
  const ft::index_t n = 256;
  auto x = ft::randn<float>({n, 2}, ft::kCPU, 7);
  ft::Tensor<std::int64_t, 1> y(ft::Shape<1>{n}, ft::kCPU);
  for (ft::index_t i = 0; i < n; ++i) {
    const std::int64_t c = i % 4;
    y.data()[i] = c;
    x.data()[2 * i] = x.data()[2 * i] * 0.3f + (c % 2 ? 2.0f : -2.0f);
    x.data()[2 * i + 1] = x.data()[2 * i + 1] * 0.3f + (c / 2 ? 2.0f : -2.0f);
  }
  return {x.to(dev), y.to(dev)};
}
}  // namespace

TEST_CASE("an MLP trained with Adam reaches near-zero training loss") {
  for (ft::Device dev : ft::test::devices()) {
    INFO(dev);
    ft::manual_seed(1);
    auto [x, y] = blobs(dev);
    ft::nn::Sequential<ft::nn::Linear<float>, ft::nn::ReLU, ft::nn::Linear<float>> net(
        ft::nn::Linear<float>(2, 32, true, dev), ft::nn::ReLU(), ft::nn::Linear<float>(32, 4, true, dev));
    ft::optim::Adam opt(net.parameters(), {.lr = 1e-2});
    float last = 0;
    for (int step = 0; step < 300; ++step) {
      opt.zero_grad();
      ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(net.forward(x), y);
      loss.backward();
      opt.step();
      last = loss.value().item();
    }
    CHECK(last < 0.01f);
  }
}
#endif

TEST_CASE("a small CNN with BatchNorm and Dropout trained with SGD reaches near-zero training loss") {
  for (ft::Device dev : ft::test::devices()) {
    INFO(dev);
    ft::manual_seed(2);
    // 8x8 images: a bright vertical (class 0) or horizontal (class 1) bar at a random place, plus noise
    const ft::index_t n = 64;
    auto noise = ft::randn<float>({n, 1, 8, 8}, ft::kCPU, 3);
    ft::Tensor<std::int64_t, 1> y(ft::Shape<1>{n}, ft::kCPU);
    for (ft::index_t i = 0; i < n; ++i) {
      y.data()[i] = i % 2;
      const ft::index_t at = (i * 5) % 8;
      float* img = noise.data() + i * 64;
      for (ft::index_t k = 0; k < 8; ++k) (i % 2 ? img[at * 8 + k] : img[k * 8 + at]) += 3.0f;
    }
    auto x = noise.to(dev);
    auto yd = y.to(dev);
    ft::nn::Sequential<ft::nn::Conv2d<float>, ft::nn::BatchNorm2d<float>, ft::nn::ReLU, ft::nn::MaxPool2d,
                       ft::nn::Flatten, ft::nn::Dropout, ft::nn::Linear<float>>
        net(ft::nn::Conv2d<float>(1, 8, 3, {.padding = 1}, true, dev), ft::nn::BatchNorm2d<float>(8, {}, dev),
            ft::nn::ReLU(), ft::nn::MaxPool2d(2), ft::nn::Flatten(), ft::nn::Dropout(0.1, 5),
            ft::nn::Linear<float>(8 * 4 * 4, 2, true, dev));
    ft::optim::SGD opt(net.parameters(), {.lr = 0.05, .momentum = 0.9});
    for (int step = 0; step < 200; ++step) {
      opt.zero_grad();
      ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(net.forward(x), yd);
      loss.backward();
      opt.step();
    }
    net.eval();
    ft::NoGradGuard no_grad;
    ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(net.forward(x), yd);
    CHECK(loss.value().item() < 0.02f);
  }
}

// A training step must not make the host wait for the device: stats::host_syncs counts every
// such wait (on the CPU, the same call sites: an item()). An MLP with Adam and a CNN with SGD +
// momentum, each step after a first one that creates the optimizer state.
TEST_CASE("an MLP and a CNN training step make the host wait for nothing") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::nn::Linear<float> fc1(20, 32, true, dev), fc2(32, 4, true, dev);
    ft::nn::Conv2d<float> conv(1, 4, 3, {.padding = 1}, true, dev);
    ft::nn::Linear<float> head(4 * 4 * 4, 4, true, dev);
    auto x = ft::randn<float>({16, 20}, dev, 5);
    auto img = ft::randn<float>({16, 1, 8, 8}, dev, 6);
    auto target = ft::randint<std::int64_t>(0, 4, {16}, dev, 7);
    auto join = [](ft::nn::ParameterList a, const ft::nn::ParameterList& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    ft::optim::Adam adam(join(fc1.parameters(), fc2.parameters()), {.lr = 1e-3});
    ft::optim::SGD sgd(join(conv.parameters(), head.parameters()), {.lr = 1e-2, .momentum = 0.9});
    auto mlp_step = [&] {
      adam.zero_grad();
      ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(fc2(ft::relu(fc1(x))), target);
      loss.backward();
      adam.step();
    };
    auto cnn_step = [&] {
      sgd.zero_grad();
      ft::Var<float, 4> h = ft::max_pool2d(ft::relu(conv(img)), 2);
      ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(head(h.reshape({16, 4 * 4 * 4})), target);
      loss.backward();
      sgd.step();
    };
    mlp_step();
    cnn_step();
    ft::stats::reset();
    mlp_step();
    CHECK(ft::stats::host_syncs(dev) == 0);
    cnn_step();
    CHECK(ft::stats::host_syncs(dev) == 0);
    auto l = ft::nn::functional::cross_entropy(fc2(ft::relu(fc1(x))), target);
    (void)l.item();  // reading a value back is a wait: the counter sees it
    CHECK(ft::stats::host_syncs(dev) >= 1);
  }
}

// Embedding's index check reports from the gather (at once on the CPU, at the next
// synchronisation on a GPU) and its backward sorts on the device: no wait in a step.
TEST_CASE("Embedding checks its indices without a host wait; its sorted backward matches a reference") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::manual_seed(5);
    constexpr ft::index_t V = 50, D = 8;
    constexpr std::int64_t pad = 3;
    ft::nn::Embedding<float> emb(V, D, pad, dev);
    auto idx = ft::randint<std::int64_t>(0, V, {6, 40}, dev, 9);
    ft::stats::reset();
    ft::Var<float, 3> y = emb(idx);
    ft::Var<float, 0> loss = ft::sum(ft::square(y));
    loss.backward();
    CHECK(ft::stats::host_syncs(dev) == 0);
    const auto w = emb.weight.value().to_vector();
    const auto ix = idx.to_vector();
    std::vector<double> want(static_cast<std::size_t>(V * D), 0.0);
    for (std::size_t p = 0; p < ix.size(); ++p)
      if (ix[p] != pad)
        for (ft::index_t d = 0; d < D; ++d) want[ix[p] * D + d] += 2.0 * w[ix[p] * D + d];
    ft::test::check_close(emb.weight.grad(), want, 1e-5, 1e-6);
    const auto first = emb.weight.grad().to_vector();
    emb.weight.zero_grad();
    ft::Var<float, 0> again = ft::sum(ft::square(emb(idx)));
    again.backward();
    CHECK(emb.weight.grad().to_vector() == first);  // deterministic: the same bits

    auto bad = ft::full<std::int64_t>({4}, V, dev);
    if (dev.is_cpu()) {
      CHECK_THROWS_WITH_AS(emb(bad), doctest::Contains("out of range for 50 embeddings"), ft::Error);
    } else {
#if FT_CUDA_ENABLED
      ft::cuda::DeviceGuard on_dev(dev);
      ft::Var<float, 2> z;
      CHECK_NOTHROW(z = emb(bad));  // reported by the kernel, not waited for
      CHECK_THROWS_WITH_AS(ft::cuda::synchronize(), doctest::Contains("out of range for 50 embeddings"), ft::Error);
      CHECK_NOTHROW(ft::cuda::synchronize());  // reported once
#endif
    }
  }
}

FT_GPU_TEST_CASE("cross_entropy and nll_loss on a GPU report a bad target at the next synchronisation") {
#if FT_CUDA_ENABLED
  ft::cuda::DeviceGuard on_gpu(ft::kCUDA);
  auto x = ft::randn<float>({4, 5}, ft::kCUDA, 3);
  auto bad = ft::full<std::int64_t>({4}, 7, ft::kCUDA);
  CHECK_NOTHROW((void)ft::nn::functional::cross_entropy(x, bad));  // mean: the row-wise kernel
  CHECK_THROWS_WITH_AS(ft::cuda::synchronize(), doctest::Contains("out of range for 5 classes"), ft::Error);
  CHECK_NOTHROW((void)ft::nn::functional::cross_entropy<ft::Reduction::None>(x, bad));
  CHECK_THROWS_WITH_AS(ft::cuda::synchronize(), doctest::Contains("out of range for 5 classes"), ft::Error);
  CHECK_NOTHROW((void)ft::nn::functional::nll_loss(x, bad));
  CHECK_THROWS_WITH_AS(ft::cuda::synchronize(), doctest::Contains("nll_loss"), ft::Error);
  auto good = ft::full<std::int64_t>({4}, 4, ft::kCUDA);
  (void)ft::nn::functional::nll_loss(x, good);
  CHECK_NOTHROW(ft::cuda::synchronize());
#endif
}

// ---- CUDA graphs (cuda::Graph) ----
TEST_CASE("cuda::Graph refuses the CPU, an empty replay and an unbegun capture") {
  ft::cuda::Graph graph;
  CHECK_FALSE(graph.captured());
  CHECK_THROWS_WITH_AS(graph.capture_begin(ft::kCPU), doctest::Contains("captures the work of a GPU"), ft::Error);
  CHECK_THROWS_WITH_AS(graph.replay(), doctest::Contains("nothing was captured"), ft::Error);
  CHECK_THROWS_WITH_AS(graph.capture_end(), doctest::Contains("no capture was begun"), ft::Error);
  CHECK_FALSE(ft::cuda::capturing());
  if (!ft::test::has_gpu()) {
    // no GPU here, or a build without CUDA: an ft::Error that says which
    CHECK_THROWS_AS(graph.capture(ft::kCUDA, [] {}), ft::Error);
    CHECK_FALSE(ft::cuda::capturing());
  }
}

FT_GPU_TEST_CASE("cuda::Graph replays an SGD training step in one launch, with the eager step's values") {
  const ft::Device dev = ft::kCUDA;
  auto join = [](ft::nn::ParameterList a, const ft::nn::ParameterList& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  ft::manual_seed(3);
  ft::nn::Linear<float> a1(20, 32, true, dev), a2(32, 4, true, dev);
  ft::manual_seed(3);
  ft::nn::Linear<float> b1(20, 32, true, dev), b2(32, 4, true, dev);
  REQUIRE(a1.weight.value().to_vector() == b1.weight.value().to_vector());
  ft::optim::SGD eager(join(a1.parameters(), a2.parameters()), {.lr = 1e-2, .momentum = 0.9});
  ft::optim::SGD graphed(join(b1.parameters(), b2.parameters()), {.lr = 1e-2, .momentum = 0.9});
  auto step = [](ft::nn::Linear<float>& l1, ft::nn::Linear<float>& l2, ft::optim::SGD& opt,
                 const ft::Tensor<float, 2>& in, const ft::Tensor<std::int64_t, 1>& t) {
    opt.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(l2(ft::relu(l1(in))), t);
    loss.backward();
    opt.step();
    return loss;
  };
  auto batch_x = [&](int k) { return ft::randn<float>({16, 20}, dev, 100 + static_cast<std::uint64_t>(k)); };
  auto batch_t = [&](int k) { return ft::randint<std::int64_t>(0, 4, {16}, dev, 200 + static_cast<std::uint64_t>(k)); };
  // the static inputs of the graph, refilled in place before each replay
  auto x = ft::zeros<float>({16, 20}, dev);
  auto target = ft::zeros<std::int64_t>({16}, dev);
  std::move(x) = batch_x(0);
  std::move(target) = batch_t(0);
  step(a1, a2, eager, batch_x(0), batch_t(0));  // warm-up: momentum buffers, plans
  step(b1, b2, graphed, x, target);

  ft::cuda::Graph graph;
  ft::Var<float, 0> graphed_loss;
  graph.capture(dev, [&] { graphed_loss = step(b1, b2, graphed, x, target); });
  REQUIRE(graph.captured());
  CHECK_FALSE(ft::cuda::capturing());
  CHECK(ft::cuda::current_stream(dev) == nullptr);  // the caller's stream is back
  for (int k = 1; k <= 4; ++k) {
    CAPTURE(k);
    ft::Var<float, 0> eager_loss = step(a1, a2, eager, batch_x(k), batch_t(k));
    std::move(x) = batch_x(k);
    std::move(target) = batch_t(k);
    CHECK(ft::test::launches_of(dev, [&] { graph.replay(); }) == 1);
    CHECK(graphed_loss.value().item() == eager_loss.value().item());
    CHECK(b1.weight.value().to_vector() == a1.weight.value().to_vector());
    CHECK(b2.bias.value().to_vector() == a2.bias.value().to_vector());
  }

  // what a graph cannot hold is an ft::Error, and the failed capture leaves nothing behind
  ft::cuda::Graph bad;
  CHECK_THROWS_WITH_AS(bad.capture(dev, [&] { (void)step(b1, b2, graphed, x, target).value().item(); }),
                       doctest::Contains("inside a CUDA graph capture"), ft::Error);
  CHECK_FALSE(bad.captured());
  CHECK_FALSE(ft::cuda::capturing());
  CHECK(ft::cuda::current_stream(dev) == nullptr);
  ft::optim::Adam adam(join(b1.parameters(), b2.parameters()), {.lr = 1e-3});
  CHECK_THROWS_WITH_AS(bad.capture(dev, [&] { adam.step(); }), doctest::Contains("inside a CUDA graph capture"),
                       ft::Error);
  // eager work runs as before, and the graph still replays
  graph.replay();
  CHECK(std::isfinite(graphed_loss.value().item()));
}
