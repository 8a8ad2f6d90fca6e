// ft::nn losses: values and input gradients against PyTorch's (golden/losses.txt, written by
// golden/make_losses.py) for every reduction and on every device (class weights, probability
// targets, kl_div, ranking, embedding and triplet losses too); tensors in give tensors out,
// Vars give Vars; one launch forward and one backward for an elementwise loss; int64
// expressions as class targets; errors that name the op and both shapes.

#include <cstdint>
#include <string>
#include <type_traits>

#include "common.hpp"
#include "ft/nn/loss.hpp"
#include "golden/golden.hpp"

using ft::Reduction;
using ft::test::check_close;
namespace F = ft::nn::functional;

namespace {

const ft::test::Golden& golden() {
  static const ft::test::Golden g("losses.txt");
  return g;
}

// The golden record `name` as a float tensor of rank R on dev.
template <int R>
ft::Tensor<float, R> input_of(const std::string& name, ft::Device dev) {
  return golden().tensor<float, R>(name, dev);
}

// Checks a loss `l` of the Var `x` against torch's `<name>.loss` and, after backward (seeded
// with the recorded r for per-element losses), x's gradient against `<name>.grad`.
template <class L, int R>
void check_loss(const std::string& name, const L& l, const ft::Var<float, R>& x, const std::string& r_name,
                ft::Device dev) {
  INFO(name);
  static_assert(std::is_same_v<L, ft::Var<float, L::rank>>, "a loss of a Var is a Var");
  CHECK(l.device() == dev);
  check_close(l.value(), golden().values(name + ".loss"), 1e-5);
  if constexpr (L::rank == 0)
    l.backward();
  else
    l.backward(golden().tensor<float, L::rank>(r_name, dev));
  check_close(x.grad(), golden().values(name + ".grad"), 1e-5);
}

// A fresh leaf holding the golden input (so each case's gradient starts from nothing).
template <int R>
ft::Var<float, R> leaf(const std::string& name, ft::Device dev) {
  return ft::Var<float, R>(input_of<R>(name, dev), ft::requires_grad);
}

// The three reductions of an elementwise loss `f<Red>(x, target)` against torch.
template <class Loss>
void check_elementwise(const std::string& name, ft::Device dev, Loss loss) {
  auto x = leaf<2>("reg.input", dev);
  check_loss(name + ".none", loss.template operator()<Reduction::None>(x), x, "reg.r", dev);
  x = leaf<2>("reg.input", dev);
  check_loss(name + ".mean", loss.template operator()<Reduction::Mean>(x), x, "reg.r", dev);
  x = leaf<2>("reg.input", dev);
  check_loss(name + ".sum", loss.template operator()<Reduction::Sum>(x), x, "reg.r", dev);
}

// Each loss as a callable over the reduction, so that one helper walks the three.
struct Mse {
  ft::Tensor<float, 2> t;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::mse_loss<Red>(x, t);
  }
};
struct L1 {
  ft::Tensor<float, 2> t;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::l1_loss<Red>(x, t);
  }
};
struct SmoothL1 {
  ft::Tensor<float, 2> t;
  double beta;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::smooth_l1_loss<Red>(x, t, beta);
  }
};
struct Huber {
  ft::Tensor<float, 2> t;
  double delta;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::huber_loss<Red>(x, t, delta);
  }
};
struct Bce {
  ft::Tensor<float, 2> t;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::binary_cross_entropy<Red>(x, t);
  }
};
struct BceLogits {
  ft::Tensor<float, 2> t;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::binary_cross_entropy_with_logits<Red>(x, t);
  }
};
struct BceLogitsPosWeight {
  ft::Tensor<float, 2> t;
  ft::Tensor<float, 1> pos_weight;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::binary_cross_entropy_with_logits<Red>(x, t, pos_weight);
  }
};

// The three reductions of a classification loss over [6, 5] against torch.
template <class Loss>
void check_classification(const std::string& name, const std::string& input, ft::Device dev, Loss loss) {
  auto x = leaf<2>(input, dev);
  check_loss(name + ".none", loss.template operator()<Reduction::None>(x), x, "ce.r", dev);
  x = leaf<2>(input, dev);
  check_loss(name + ".mean", loss.template operator()<Reduction::Mean>(x), x, "ce.r", dev);
  x = leaf<2>(input, dev);
  check_loss(name + ".sum", loss.template operator()<Reduction::Sum>(x), x, "ce.r", dev);
}

struct CrossEntropy {
  ft::Tensor<std::int64_t, 1> t;
  ft::CrossEntropyOptions options;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::cross_entropy<Red>(x, t, options);
  }
};
struct Nll {
  ft::Tensor<std::int64_t, 1> t;
  std::int64_t ignore_index;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::nll_loss<Red>(x, t, ignore_index);
  }
};

// The three reductions of a loss of one rank-R input `input` against torch, per-element losses
// seeded with the record r_name.
template <int R, class Loss>
void check_reductions(const std::string& name, const std::string& input, const std::string& r_name, ft::Device dev,
                      Loss loss) {
  auto x = leaf<R>(input, dev);
  check_loss(name + ".none", loss.template operator()<Reduction::None>(x), x, r_name, dev);
  x = leaf<R>(input, dev);
  check_loss(name + ".mean", loss.template operator()<Reduction::Mean>(x), x, r_name, dev);
  x = leaf<R>(input, dev);
  check_loss(name + ".sum", loss.template operator()<Reduction::Sum>(x), x, r_name, dev);
}

template <class Tg>
struct WeightedCrossEntropy {
  Tg t;
  ft::Tensor<float, 1> w;
  ft::CrossEntropyOptions options;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::cross_entropy<Red>(x, t, w, options);
  }
};
struct ProbCrossEntropy {
  ft::Tensor<float, 2> t;
  ft::CrossEntropyOptions options;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::cross_entropy<Red>(x, t, options);
  }
};
struct WeightedNll {
  ft::Tensor<std::int64_t, 1> t;
  ft::Tensor<float, 1> w;
  std::int64_t ignore_index;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::nll_loss<Red>(x, t, w, ignore_index);
  }
};
struct KlDiv {
  ft::Tensor<float, 2> t;
  bool log_target;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::kl_div<Red>(x, t, log_target);
  }
};
struct MarginRanking {
  ft::Tensor<float, 1> x2, y;
  double margin;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 1>& x1) const {
    return F::margin_ranking_loss<Red>(x1, x2, y, margin);
  }
};
struct CosineEmbedding {
  ft::Tensor<float, 2> x2;
  ft::Tensor<float, 1> y;
  double margin;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x1) const {
    return F::cosine_embedding_loss<Red>(x1, x2, y, margin);
  }
};
struct TripletMargin {
  ft::Tensor<float, 2> p, n;
  F::TripletMarginOptions options;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& a) const {
    return F::triplet_margin_loss<Red>(a, p, n, options);
  }
};

struct SoftMargin {
  ft::Tensor<float, 2> y;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::soft_margin_loss<Red>(x, y);
  }
};
struct HingeEmbedding {
  ft::Tensor<float, 2> y;
  double margin;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::hinge_embedding_loss<Red>(x, y, margin);
  }
};
struct PoissonNll {
  ft::Tensor<float, 2> t;
  F::PoissonNllOptions options;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::poisson_nll_loss<Red>(x, t, options);
  }
};
template <int RV>
struct GaussianNll {
  ft::Tensor<float, 2> t;
  ft::Tensor<float, RV> var;
  bool full;
  double eps;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return F::gaussian_nll_loss<Red>(x, t, var, full, eps);
  }
};
struct MultiLabelSoftMargin {
  ft::Tensor<float, 2> t;
  ft::Tensor<float, 1> w;
  template <Reduction Red>
  auto operator()(const ft::Var<float, 2>& x) const {
    return w.defined() ? F::multilabel_soft_margin_loss<Red>(x, t, w) : F::multilabel_soft_margin_loss<Red>(x, t);
  }
};

ft::Tensor<std::int64_t, 1> targets(const std::string& name, ft::Device dev) {
  return golden().tensor<std::int64_t, 1>(name, dev);
}

}  // namespace

TEST_CASE("mse_loss, l1_loss, smooth_l1_loss and huber_loss match torch for every reduction") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = input_of<2>("reg.target", dev);
    check_elementwise("mse", dev, Mse{t});
    check_elementwise("l1", dev, L1{t});
    check_elementwise("smooth_l1", dev, SmoothL1{t, 1.0});
    check_elementwise("smooth_l1_b05", dev, SmoothL1{t, 0.5});
    check_elementwise("smooth_l1_b0", dev, SmoothL1{t, 0.0});
    check_elementwise("huber", dev, Huber{t, 1.0});
    check_elementwise("huber_d07", dev, Huber{t, 0.7});
  }
}

TEST_CASE("cross_entropy matches torch: ignored rows, an in-range ignore_index, label smoothing, every reduction") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = targets("ce.target", dev), t2 = targets("ce.target2", dev);
    check_classification("ce", "ce.input", dev, CrossEntropy{t, {}});
    check_classification("ce_ls", "ce.input", dev, CrossEntropy{t, {.label_smoothing = 0.1}});
    check_classification("ce_ig2", "ce.input", dev, CrossEntropy{t2, {.ignore_index = 2}});
    check_classification("ce_ls_ig2", "ce.input", dev, CrossEntropy{t2, {.ignore_index = 2, .label_smoothing = 0.1}});
  }
}

TEST_CASE("nll_loss matches torch with ignored rows and an in-range ignore_index") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    check_classification("nll", "nll.input", dev, Nll{targets("ce.target", dev), -100});
    check_classification("nll_ig2", "nll.input", dev, Nll{targets("ce.target2", dev), 2});
  }
}

TEST_CASE("cross_entropy and nll_loss with class weights, and cross_entropy with probability targets, match torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = targets("ce.target", dev), t2 = targets("ce.target2", dev);
    auto w = input_of<1>("ce.weight", dev);
    auto probs = input_of<2>("ce.probs", dev);
    using Idx = ft::Tensor<std::int64_t, 1>;
    check_classification("ce_w", "ce.input", dev, WeightedCrossEntropy<Idx>{t, w, {}});
    check_classification("ce_w_ls_ig2", "ce.input", dev,
                         WeightedCrossEntropy<Idx>{t2, w, {.ignore_index = 2, .label_smoothing = 0.1}});
    check_classification("ce_p", "ce.input", dev, ProbCrossEntropy{probs, {}});
    check_classification("ce_p_w_ls", "ce.input", dev,
                         WeightedCrossEntropy<ft::Tensor<float, 2>>{probs, w, {.label_smoothing = 0.1}});
    check_classification("nll_w", "nll.input", dev, WeightedNll{t, w, -100});
    check_classification("nll_w_ig2", "nll.input", dev, WeightedNll{t2, w, 2});
  }
}

TEST_CASE("kl_div (log_target, batchmean), margin_ranking, cosine_embedding and triplet_margin losses match torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto kt = input_of<2>("kl.target", dev);
    ft::Tensor<float, 2> log_kt = ft::log(ft::maximum(kt, 1e-3f));
    check_reductions<2>("kl", "kl.input", "reg.r", dev, KlDiv{kt, false});
    check_reductions<2>("kl_log", "kl.input", "reg.r", dev, KlDiv{log_kt, true});
    auto x = leaf<2>("kl.input", dev);
    check_loss("kl.batchmean", F::kl_div(x, kt, Reduction::BatchMean), x, "", dev);
    x = leaf<2>("kl.input", dev);
    check_loss("kl_log.batchmean", ft::nn::KLDivLoss{.reduction = Reduction::BatchMean, .log_target = true}(x, log_kt),
               x, "", dev);

    auto m2 = input_of<1>("mr.x2", dev), my = input_of<1>("mr.y", dev);
    check_reductions<1>("mr", "mr.x1", "mr.r", dev, MarginRanking{m2, my, 0.0});
    check_reductions<1>("mr_m03", "mr.x1", "mr.r", dev, MarginRanking{m2, my, 0.3});
    auto c2 = input_of<2>("cos.x2", dev);
    auto cy = input_of<1>("cos.y", dev);
    check_reductions<2>("cos", "cos.x1", "ce.r", dev, CosineEmbedding{c2, cy, 0.0});
    check_reductions<2>("cos_m02", "cos.x1", "ce.r", dev, CosineEmbedding{c2, cy, 0.2});
    auto tp = input_of<2>("tri.positive", dev), tn = input_of<2>("tri.negative", dev);
    check_reductions<2>("tri", "tri.anchor", "ce.r", dev, TripletMargin{tp, tn, {}});
    check_reductions<2>("tri_swap_p1", "tri.anchor", "ce.r", dev,
                        TripletMargin{tp, tn, {.margin = 0.5, .p = 1.0, .swap = true}});

    // the module forms
    auto m1 = leaf<1>("mr.x1", dev);
    check_loss("mr_m03.sum", ft::nn::MarginRankingLoss{.margin = 0.3, .reduction = Reduction::Sum}(m1, m2, my), m1, "",
               dev);
    auto c1 = leaf<2>("cos.x1", dev);
    check_loss("cos_m02.mean", ft::nn::CosineEmbeddingLoss{.margin = 0.2}(c1, c2, cy), c1, "", dev);
    auto a = leaf<2>("tri.anchor", dev);
    check_loss("tri_swap_p1.mean", ft::nn::TripletMarginLoss{.margin = 0.5, .p = 1.0, .swap = true}(a, tp, tn), a, "",
               dev);
    x = leaf<2>("ce.input", dev);
    ft::nn::CrossEntropyLoss weighted{
        .ignore_index = 2, .label_smoothing = 0.1, .weight = input_of<1>("ce.weight", dev)};
    check_loss("ce_w_ls_ig2.mean", weighted(x, targets("ce.target2", dev)), x, "", dev);
    x = leaf<2>("nll.input", dev);
    ft::nn::NLLLoss nll{.reduction = Reduction::Sum, .weight = input_of<1>("ce.weight", dev)};
    check_loss("nll_w.sum", nll(x, targets("ce.target", dev)), x, "", dev);
  }
}

TEST_CASE("soft_margin, hinge_embedding, poisson_nll, gaussian_nll and multilabel_soft_margin losses match torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto y = input_of<2>("sm.y", dev);
    check_reductions<2>("soft_margin", "reg.input", "reg.r", dev, SoftMargin{y});
    check_reductions<2>("hinge", "reg.input", "reg.r", dev, HingeEmbedding{y, 1.0});
    check_reductions<2>("hinge_m05", "reg.input", "reg.r", dev, HingeEmbedding{y, 0.5});
    auto counts = input_of<2>("pois.target", dev);
    check_reductions<2>("pois", "pois.input", "reg.r", dev, PoissonNll{counts, {}});
    check_reductions<2>("pois_full", "pois.input", "reg.r", dev, PoissonNll{counts, {.full = true}});
    check_reductions<2>("pois_rate", "pois.rates", "reg.r", dev, PoissonNll{counts, {.log_input = false}});
    check_reductions<2>("pois_rate_full", "pois.rates", "reg.r", dev,
                        PoissonNll{counts, {.log_input = false, .full = true, .eps = 1e-3}});
    auto t = input_of<2>("reg.target", dev);
    auto var = input_of<2>("gauss.var", dev);
    check_reductions<2>("gauss", "reg.input", "reg.r", dev, GaussianNll<2>{t, var, false, 1e-6});
    check_reductions<2>("gauss_full", "reg.input", "reg.r", dev, GaussianNll<2>{t, var, true, 1e-6});
    check_reductions<2>("gauss_v5", "reg.input", "reg.r", dev,
                        GaussianNll<1>{t, input_of<1>("gauss.var5", dev), false, 1e-6});
    check_reductions<2>("gauss_v51", "reg.input", "reg.r", dev,
                        GaussianNll<2>{t, input_of<2>("gauss.var51", dev), false, 0.3});
    {  // var's gradient: as if the entry below eps had not been raised
      ft::Var<float, 2> v(var, ft::requires_grad);
      ft::Var<float, 0> l = ft::nn::GaussianNLLLoss{}(input_of<2>("reg.input", dev), t, v);
      l.backward();
      ft::test::check_close(v.grad(), golden().values("gauss.mean.grad_var"), 1e-5, 1e-6);
      CHECK_THROWS_WITH_AS(F::gaussian_nll_loss(t, t, var - 2.0f), doctest::Contains("negative"), ft::Error);
      CHECK_THROWS_WITH_AS(F::gaussian_nll_loss(t, t, ft::zeros<float>({4}, dev)), doctest::Contains("var [4] on "),
                           ft::Error);
    }
    auto labels = input_of<2>("mlsm.target", dev);
    check_reductions<2>("mlsm", "reg.input", "mlsm.r", dev, MultiLabelSoftMargin{labels, {}});
    check_reductions<2>("mlsm_w", "reg.input", "mlsm.r", dev,
                        MultiLabelSoftMargin{labels, input_of<1>("mlsm.weight", dev)});
    // the module forms
    auto x = leaf<2>("reg.input", dev);
    check_loss("soft_margin.sum", ft::nn::SoftMarginLoss{.reduction = Reduction::Sum}(x, y), x, "", dev);
    x = leaf<2>("reg.input", dev);
    check_loss("hinge_m05.mean", ft::nn::HingeEmbeddingLoss{.margin = 0.5}(x, y), x, "", dev);
    x = leaf<2>("pois.rates", dev);
    check_loss("pois_rate_full.mean", ft::nn::PoissonNLLLoss{.log_input = false, .full = true, .eps = 1e-3}(x, counts),
               x, "", dev);
    x = leaf<2>("reg.input", dev);
    check_loss("gauss_full.sum", ft::nn::GaussianNLLLoss{.full = true, .reduction = Reduction::Sum}(x, t, var), x, "",
               dev);
    x = leaf<2>("reg.input", dev);
    check_loss("mlsm_w.mean", ft::nn::MultiLabelSoftMarginLoss{.weight = input_of<1>("mlsm.weight", dev)}(x, labels), x,
               "", dev);
    // one launch forward and one backward, as the other elementwise losses
    x = leaf<2>("reg.input", dev);
    ft::Var<float, 0> l;
    CHECK(ft::test::launches_of(dev, [&] { l = F::multilabel_soft_margin_loss(x, labels); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { l.backward(); }) == 1);
  }
}

TEST_CASE("binary_cross_entropy and binary_cross_entropy_with_logits (±30 logits, pos_weight) match torch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto soft = input_of<2>("bce.target", dev);
    {
      auto x = leaf<2>("bce.input", dev);
      check_loss("bce.none", F::binary_cross_entropy<Reduction::None>(x, soft), x, "reg.r", dev);
      x = leaf<2>("bce.input", dev);
      check_loss("bce.mean", F::binary_cross_entropy(x, soft), x, "reg.r", dev);
      x = leaf<2>("bce.input", dev);
      check_loss("bce.sum", F::binary_cross_entropy(x, soft, Reduction::Sum), x, "reg.r", dev);
    }
    {
      auto x = leaf<2>("bcel.input", dev);
      check_loss("bcel.none", F::binary_cross_entropy_with_logits<Reduction::None>(x, soft), x, "reg.r", dev);
      x = leaf<2>("bcel.input", dev);
      check_loss("bcel.mean", F::binary_cross_entropy_with_logits(x, soft), x, "reg.r", dev);
      x = leaf<2>("bcel.input", dev);
      check_loss("bcel.sum", F::binary_cross_entropy_with_logits(x, soft, Reduction::Sum), x, "reg.r", dev);
    }
    auto pw = input_of<1>("bcel.pos_weight", dev);
    auto x = leaf<2>("bcel.input", dev);
    check_loss("bcel_pw.none", F::binary_cross_entropy_with_logits<Reduction::None>(x, soft, pw), x, "reg.r", dev);
    x = leaf<2>("bcel.input", dev);
    check_loss("bcel_pw.mean", F::binary_cross_entropy_with_logits(x, soft, Reduction::Mean, pw), x, "reg.r", dev);
    x = leaf<2>("bcel.input", dev);
    check_loss("bcel_pw.sum", F::binary_cross_entropy_with_logits(x, soft, Reduction::Sum, pw), x, "reg.r", dev);
  }
}

TEST_CASE("binary_cross_entropy at x = 0 and x = 1: log clamped at -100, torch's finite gradient") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Tensor<float, 1> p = ft::zeros<float>({3}, ft::kCPU), t = ft::zeros<float>({3}, ft::kCPU);
    p.data()[1] = 1.0f;  // x = 0, t = 0: 0; x = 1, t = 0: 100; x = 0, t = 1: 100
    t.data()[2] = 1.0f;
    ft::Var<float, 1> x(p.to(dev), ft::requires_grad);
    auto l = F::binary_cross_entropy<Reduction::None>(x, t.to(dev));
    check_close(l.value(), {0.0, 100.0, 100.0});
    l.backward(ft::ones<float>({3}, dev));
    check_close(x.grad(), {0.0, 1e12, -1e12}, 1e-5);
  }
}

TEST_CASE("the module forms hold the options and call the functional losses") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = input_of<2>("reg.target", dev);
    auto x = leaf<2>("reg.input", dev);
    check_loss("mse.sum", ft::nn::MSELoss{.reduction = Reduction::Sum}(x, t), x, "", dev);
    x = leaf<2>("reg.input", dev);
    check_loss("l1.mean", ft::nn::L1Loss{}.forward(x, t), x, "", dev);
    x = leaf<2>("reg.input", dev);
    check_loss("smooth_l1_b05.mean", ft::nn::SmoothL1Loss{.beta = 0.5}(x, t), x, "", dev);
    x = leaf<2>("reg.input", dev);
    check_loss("huber_d07.sum", ft::nn::HuberLoss{.reduction = Reduction::Sum, .delta = 0.7}(x, t), x, "", dev);
    auto ct = targets("ce.target2", dev);
    x = leaf<2>("ce.input", dev);
    check_loss("ce_ls_ig2.mean", ft::nn::CrossEntropyLoss{.ignore_index = 2, .label_smoothing = 0.1}(x, ct), x, "",
               dev);
    x = leaf<2>("nll.input", dev);
    check_loss("nll_ig2.sum", ft::nn::NLLLoss{.ignore_index = 2, .reduction = Reduction::Sum}(x, ct), x, "", dev);
    auto soft = input_of<2>("bce.target", dev);
    x = leaf<2>("bce.input", dev);
    check_loss("bce.mean", ft::nn::BCELoss{}(x, soft), x, "", dev);
    x = leaf<2>("bcel.input", dev);
    check_loss("bcel.sum", ft::nn::BCEWithLogitsLoss{.reduction = Reduction::Sum}(x, soft), x, "", dev);
    x = leaf<2>("bcel.input", dev);
    ft::nn::BCEWithLogitsLoss with_pos_weight{.pos_weight = input_of<1>("bcel.pos_weight", dev)};
    check_loss("bcel_pw.mean", with_pos_weight(x, soft), x, "", dev);
    CHECK_THROWS_WITH_AS(ft::nn::MSELoss{.reduction = Reduction::None}(x, t),
                         doctest::Contains("mse_loss<ft::Reduction::None>"), ft::Error);
  }
}

TEST_CASE("tensors in give tensors out; a Var, or an expression over Vars, gives a Var") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = input_of<2>("reg.input", dev), t = input_of<2>("reg.target", dev);
    auto l = F::mse_loss(x, t);
    static_assert(std::is_same_v<decltype(l), ft::Tensor<float, 0>>);
    check_close(l, golden().values("mse.mean.loss"), 1e-5);
    auto per_row = F::cross_entropy<Reduction::None>(input_of<2>("ce.input", dev), targets("ce.target", dev));
    static_assert(std::is_same_v<decltype(per_row), ft::Tensor<float, 1>>);
    check_close(per_row, golden().values("ce.none.loss"), 1e-5);
    auto nll = F::nll_loss(input_of<2>("nll.input", dev), targets("ce.target", dev));
    static_assert(std::is_same_v<decltype(nll), ft::Tensor<float, 0>>);
    check_close(nll, golden().values("nll.mean.loss"), 1e-5);
    // an expression over a Var fuses into the loss's statement; half·2 = x exactly, so the
    // gradient of half is twice torch's gradient of x
    ft::Var<float, 2> half(x * 0.5f, ft::requires_grad);
    auto v = F::mse_loss(half * 2.0f, t);
    static_assert(std::is_same_v<decltype(v), ft::Var<float, 0>>);
    CHECK(v.grad_fn_name() == "mean(square(sub(mul(Var[5, 4], 2), Tensor[5, 4])))");
    v.backward();
    std::vector<double> want = golden().values("mse.mean.grad");
    for (double& w : want) w *= 2;
    check_close(v.value(), golden().values("mse.mean.loss"), 1e-5);
    check_close(half.grad(), want, 1e-5);
  }
}

TEST_CASE("cross_entropy and nll_loss take an int64 expression as the target") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(ft::test::random_tensor<float>({32, 10}, dev, 7), ft::requires_grad);
    auto expr = ft::arange<std::int64_t>(0, 32, 1, dev) % 10;
    ft::Tensor<std::int64_t, 1> evaluated = expr;
    for (Reduction red : {Reduction::Mean, Reduction::Sum}) {
      CHECK(F::cross_entropy(x, expr, {.reduction = red}).item() ==
            F::cross_entropy(x, evaluated, {.reduction = red}).item());
      CHECK(F::nll_loss(x, expr, red).item() == F::nll_loss(x, evaluated, red).item());
    }
    check_close(F::cross_entropy<Reduction::None>(x, expr).value(),
                ft::test::to_double(F::cross_entropy<Reduction::None>(x, evaluated).value()), 0.0, 0.0);
  }
}

TEST_CASE("cross_entropy's per-row losses sum to its Sum and average to its Mean over the rows counted") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::test::random_tensor<float>({64, 7}, dev, 11);
    ft::Tensor<std::int64_t, 1> t = ft::arange<std::int64_t>(0, 64, 1, dev) % 8 - 1;  // -1 … 6: -1 is ignored
    const ft::CrossEntropyOptions opts{.ignore_index = -1, .label_smoothing = 0.2};
    auto rows = ft::test::to_double(F::cross_entropy<Reduction::None>(x, t, opts));
    auto tv = t.to_vector();
    double total = 0;
    int counted = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      total += rows[i];
      counted += tv[i] != -1;
      if (tv[i] == -1) CHECK(rows[i] == 0.0);
    }
    CHECK(F::cross_entropy(x, t, {.ignore_index = -1, .label_smoothing = 0.2, .reduction = Reduction::Sum}).item() ==
          doctest::Approx(total).epsilon(1e-5));
    CHECK(F::cross_entropy(x, t, opts).item() == doctest::Approx(total / counted).epsilon(1e-5));
  }
}

TEST_CASE("an elementwise loss is one launch forward and one backward") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(ft::test::random_tensor<float>({256, 300}, dev, 1), ft::requires_grad);
    auto t = ft::test::random_tensor<float>({256, 300}, dev, 2);
    ft::Var<float, 0> l;
    CHECK(ft::test::launches_of(dev, [&] { l = F::mse_loss(x, t); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { l.backward(); }) == 1);
    ft::Var<float, 0> b;
    CHECK(ft::test::launches_of(dev, [&] { b = F::binary_cross_entropy_with_logits(x, t, Reduction::Sum); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { b.backward(); }) == 1);
    if (dev.is_cuda()) CHECK(ft::stats::launches(ft::kCPU) == 0);
  }
}

TEST_CASE("mismatched shapes, batch sizes and reductions throw an ft::Error naming the op and both shapes") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::Var<float, 2> x(ft::zeros<float>({5, 4}, dev), ft::requires_grad);
    auto t = ft::zeros<float>({5, 3}, dev);
    CHECK_THROWS_WITH_AS(F::mse_loss(x, t), doctest::Contains("mse_loss: input [5, 4]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::l1_loss(x, t), doctest::Contains("target [5, 3]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::smooth_l1_loss<Reduction::None>(x, t), doctest::Contains("smooth_l1_loss"), ft::Error);
    CHECK_THROWS_WITH_AS(F::huber_loss(x, t), doctest::Contains("huber_loss"), ft::Error);
    CHECK_THROWS_WITH_AS(F::binary_cross_entropy(x, t), doctest::Contains("binary_cross_entropy"), ft::Error);
    CHECK_THROWS_WITH_AS(F::binary_cross_entropy_with_logits(x, t), doctest::Contains("[5, 3]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::binary_cross_entropy_with_logits(x, ft::zeros<float>({5, 4}, dev), Reduction::Mean,
                                                             ft::ones<float>({3}, dev)),
                         doctest::Contains("pos_weight"), ft::Error);
    auto bad_rows = ft::zeros<std::int64_t>({6}, dev);
    CHECK_THROWS_WITH_AS(F::cross_entropy(x, bad_rows), doctest::Contains("cross_entropy: input [5, 4]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::cross_entropy<Reduction::None>(x, bad_rows), doctest::Contains("[6]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::nll_loss(x, bad_rows), doctest::Contains("nll_loss"), ft::Error);
    CHECK_THROWS_WITH_AS(F::mse_loss(x, ft::zeros<float>({5, 4}, dev), Reduction::None),
                         doctest::Contains("template argument"), ft::Error);
    CHECK_THROWS_WITH_AS(F::smooth_l1_loss(x, ft::zeros<float>({5, 4}, dev), Reduction::Mean, -1.0),
                         doctest::Contains("beta"), ft::Error);
    CHECK_THROWS_WITH_AS(F::huber_loss(x, ft::zeros<float>({5, 4}, dev), Reduction::Mean, 0.0),
                         doctest::Contains("delta"), ft::Error);
    CHECK_THROWS_WITH_AS(
        ft::cross_entropy(x.value(), ft::zeros<std::int64_t>({5}, dev), {.reduction = Reduction::None}),
        doctest::Contains("reduction None"), ft::Error);
    CHECK_THROWS_WITH_AS(F::mse_loss(x, ft::zeros<float>({5, 4}, dev), Reduction::BatchMean),
                         doctest::Contains("kl_div's only"), ft::Error);
    CHECK_THROWS_WITH_AS(F::cross_entropy(x, ft::zeros<std::int64_t>({5}, dev), ft::ones<float>({3}, dev)),
                         doctest::Contains("cross_entropy: weight [3]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::nll_loss(x, ft::zeros<std::int64_t>({5}, dev), ft::ones<float>({5}, dev)),
                         doctest::Contains("nll_loss: weight [5]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::cross_entropy(x, ft::zeros<float>({5, 4}, dev), {.ignore_index = 1}),
                         doctest::Contains("probability targets"), ft::Error);
    CHECK_THROWS_WITH_AS(F::cross_entropy(x, ft::zeros<float>({5, 3}, dev)), doctest::Contains("[5, 3]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::kl_div(x, t), doctest::Contains("kl_div: input [5, 4]"), ft::Error);
    CHECK_THROWS_WITH_AS(
        F::margin_ranking_loss(ft::zeros<float>({4}, dev), ft::zeros<float>({3}, dev), ft::zeros<float>({4}, dev)),
        doctest::Contains("margin_ranking_loss"), ft::Error);
    CHECK_THROWS_WITH_AS(F::cosine_embedding_loss(x, x, ft::zeros<float>({4}, dev)),
                         doctest::Contains("cosine_embedding_loss: target [4]"), ft::Error);
    CHECK_THROWS_WITH_AS(F::triplet_margin_loss(x, x, t, Reduction::Mean), doctest::Contains("triplet_margin_loss"),
                         ft::Error);
    if (dev.is_cpu()) {
      CHECK_THROWS_WITH_AS(F::nll_loss(x, ft::full<std::int64_t>({5}, 4, dev)), doctest::Contains("out of range"),
                           ft::Error);
      CHECK_THROWS_WITH_AS(F::cross_entropy<Reduction::None>(x, ft::full<std::int64_t>({5}, -2, dev)),
                           doctest::Contains("out of range"), ft::Error);
    }
  }
}

FT_GPU_TEST_CASE("a loss with its operands on different devices throws naming both devices") {
  ft::Var<float, 2> x(ft::zeros<float>({5, 4}, ft::kCPU), ft::requires_grad);
  auto t = ft::zeros<float>({5, 4}, ft::Device(ft::kCUDA, 0));
  CHECK_THROWS_WITH_AS(F::mse_loss(x, t), doctest::Contains("input [5, 4] on cpu and target [5, 4] on cuda:0"),
                       ft::Error);
  CHECK_THROWS_WITH_AS(F::cross_entropy(x, ft::zeros<std::int64_t>({5}, ft::Device(ft::kCUDA, 0))),
                       doctest::Contains("cross_entropy"), ft::Error);
}
