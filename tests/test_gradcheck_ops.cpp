// gradcheck cases of the reductions, row-wise composites, matmul/linear, conv2d, conv1d,
// conv_transpose2d, pooling and views of Vars (run by test_gradcheck.cpp with the elementwise ones).
#include "ft/nn/layers.hpp"
#include "ft/nn/loss.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
std::vector<Case> op_cases() {
  using namespace ft;
  using V2 = Var<double, 2>;
  std::vector<Case> c;
  // ---- reductions: over all, along a dim, keepdim ----
  c.push_back(general("sum", {3, 4},
                      [](const V2& x) { return Var<double, 2>(sum(x * x) + sum(x, 0) + sum(exp(x), 1, keepdim)); }));
  // reductions of an operand broadcast along the reduced dimensions: it counts once per copy
  // (b's gradient in sum(a + b) is a's row count, not 1)
  c.push_back(binary("reductions of a broadcast sum", {3, 4}, {4}, [](const auto& a, const auto& b) {
    return sum(a + b) + mean(a - b, 0) + sum(b * 2.0 + a, 1, keepdim) + mean(b + a * 0.5) +
           sum_to(b + a, ft::Shape<2>{1, 4});
  }));
  c.push_back(binary("reductions of a broadcast column", {3, 4}, {3, 1}, [](const auto& a, const auto& b) {
    return sum(b - a, 1, keepdim) + mean(a + b) + max(b + a * 0.0, 0) * 1.0;
  }));
  c.push_back(general("mean", {3, 4},
                      [](const V2& x) { return Var<double, 2>(mean(x * x) + mean(x, 0) + mean(exp(x), 1, keepdim)); }));
  c.push_back(general(
      "prod", {3, 4}, [](const V2& x) { return Var<double, 2>(prod(x) + prod(x, 0) + prod(x, 1, keepdim)); }, 0.5,
      1.5));
  // zeros: a row with one (its gradient there is the others' product), a row and a column with
  // two (a zero gradient), and the product over all with three
  c.push_back({"prod with zeros", [] {
                 V2 x(from_vector<double>({0, 1.5, -2, 0.5, 0, 0, 3, 1, 2, -1, 0.5, 1.25}, {3, 4}), requires_grad);
                 return gradcheck([](const V2& x) { return V2(prod(x) + prod(x, 0) + prod(x, 1, keepdim)); }, x);
               }});
  c.push_back(general("max", {3, 4},
                      [](const V2& x) { return Var<double, 2>(max(x) + max(x, 0) + (x - max(x, 1, keepdim)) * 2); }));
  c.push_back(
      general("min", {3, 4}, [](const V2& x) { return Var<double, 2>(min(x * x) + min(x, 0) + min(x, 1, keepdim)); }));
  c.push_back(general("norm", {3, 4}, [](const V2& x) {
    return Var<double, 2>(norm(x) + norm(x, 1, 0) + norm(x, INFINITY, 1, keepdim) * x);
  }));
  c.push_back(general("var", {3, 4},
                      [](const V2& x) { return Var<double, 2>(var(x) + var(x, 0) + var(x, 1, keepdim, 0.0) * x); }));
  c.push_back(general("std", {3, 4}, [](const V2& x) {
    return Var<double, 2>(ft::std(x) + ft::std(x, 0) + ft::std(x, 1, keepdim) * x);
  }));
  c.push_back(general("logsumexp", {3, 4}, [](const V2& x) {
    return Var<double, 2>(logsumexp(x) + logsumexp(x, 0) + exp(x - logsumexp(x, 1, keepdim)));
  }));
  c.push_back(general("argmax", {3, 4}, [](const V2& x) { return V2(x * cast<double>(argmax(x, 1, keepdim))); }));
  c.push_back(general("argmin", {3, 4}, [](const V2& x) { return V2(x * cast<double>(argmin(x, 0))); }));
  c.push_back(general("all", {3, 4}, [](const V2& x) { return V2(x + cast<double>(all(x > -1, 1, keepdim))); }));
  c.push_back(general("any", {3, 4}, [](const V2& x) { return V2(x - cast<double>(any(x > 1, 0))); }));
  c.push_back(general("sum_to", {2, 3, 4}, [](const Var<double, 3>& x) {
    return Var<double, 2>(sum_to(x * x, Shape<2>{3, 1}));
  }));
  // ---- row-wise composites ----
  c.push_back(general("softmax", {3, 4}, [](const V2& x) { return V2(softmax(x, 1) * 3 + softmax(x * 2, 0)); }));
  c.push_back(general("log_softmax", {3, 4}, [](const V2& x) { return V2(log_softmax(x, 1) + log_softmax(x, 0)); }));
  c.push_back(general("softmin", {3, 4}, [](const V2& x) {
    return V2(ft::nn::functional::softmin(x, 1) * 3 + ft::nn::functional::softmin(x * 2, 0));
  }));
  c.push_back({"layer_norm", [] {
                 auto x = leaf({2, 3, 4}, 41);
                 auto w = leaf({3, 4}, 42);
                 auto b = leaf({3, 4}, 43);
                 auto w1 = leaf({4}, 44);
                 return gradcheck(
                     [](const auto& x, const auto& w, const auto& b, const auto& w1) {
                       auto a = layer_norm(x, 2, w, b);
                       auto c = layer_norm(x * 2, 1, w1);
                       auto d = layer_norm(x, 1);
                       return Var<double, 3>(a + c * 2 + d);
                     },
                     x, w, b, w1);
               }});
  c.push_back({"cross_entropy", [] {
                 auto x = leaf({5, 4}, 51);
                 auto t = ft::from_vector<std::int64_t>({0, 3, -100, 1, 2}, {5});
                 auto t3 = ft::from_vector<std::int64_t>({0, 3, 2, 1, 3}, {5});
                 return gradcheck(
                     [t, t3](const auto& x) {
                       auto a = cross_entropy(x, t);
                       auto b = cross_entropy(x * 2, t, {.label_smoothing = 0.1});
                       auto d = cross_entropy(x, t3, {.ignore_index = 3, .reduction = Reduction::Sum});
                       return Var<double, 0>(a + b + d);
                     },
                     x);
               }});
  // ---- matmul in every rank combination, transposed views, linear ----
  auto mm = [](std::string n, const auto& sa, const auto& sb) {
    return binary("matmul " + n, sa, sb, [](const auto& a, const auto& b) { return matmul(a, b); });
  };
  const index_t s4[] = {4}, s34[] = {3, 4}, s45[] = {4, 5}, s234[] = {2, 3, 4}, s245[] = {2, 4, 5}, s145[] = {1, 4, 5};
  c.push_back(mm("1x1", s4, s4));
  c.push_back(mm("1x2", s4, s45));
  c.push_back(mm("2x1", s34, s4));
  c.push_back(mm("2x2", s34, s45));
  c.push_back(mm("3x3", s234, s245));
  c.push_back(mm("3x3 batch broadcast", s234, s145));
  c.push_back(mm("3x2", s234, s45));
  c.push_back(mm("2x3", s34, s245));
  c.push_back(mm("1x3", s4, s245));
  c.push_back(mm("3x1", s234, s4));
  c.push_back(binary("matmul transposed", {4, 3}, {5, 4},
                     [](const auto& a, const auto& b) { return matmul(a.transpose(0, 1), b.transpose(0, 1)); }));
  c.push_back(binary("matmul of expressions", {3, 4}, {4, 5},
                     [](const auto& a, const auto& b) { return matmul(tanh(a), b * 2) + 1; }));
  c.push_back({"linear", [] {
                 auto x = leaf({2, 3, 4}, 61);
                 auto w = leaf({5, 4}, 62);
                 auto b = leaf({5}, 63);
                 auto x1 = leaf({4}, 64);
                 return gradcheck(
                     [](const auto& x, const auto& w, const auto& b, const auto& x1) {
                       auto y3 = linear(x, w, b);
                       auto y2 = linear(x.select(0, 1), w);
                       auto y1 = linear(x1, w, b);
                       return Var<double, 3>(relu(y3) + y2 * 2 + y1);
                     },
                     x, w, b, x1);
               }});
  // ---- convolution and pooling ----
  auto conv = [](std::string n, Conv2dOptions o, index_t cin, index_t cout) {
    return Case{"conv2d " + n, [=] {
                  auto x = leaf({2, cin, 5, 6}, 71);
                  auto w = leaf({cout, cin / o.groups, 3, 2}, 72);
                  auto b = leaf({cout}, 73);
                  return gradcheck([o](const auto& x, const auto& w, const auto& b) { return conv2d(x, w, b, o); }, x,
                                   w, b);
                }};
  };
  c.push_back(conv("plain", {}, 2, 3));
  c.push_back(conv("stride padding", {.stride = {2, 1}, .padding = {1, 2}}, 2, 3));
  c.push_back(conv("dilation", {.dilation = 2}, 2, 2));
  c.push_back(conv("groups", {.padding = 1, .groups = 2}, 4, 6));
  auto conv1 = [](std::string n, Conv1dOptions o, index_t cin, index_t cout) {
    return Case{"conv1d " + n, [=] {
                  auto x = leaf({2, cin, 7}, 74);
                  auto w = leaf({cout, cin / o.groups, 3}, 75);
                  auto b = leaf({cout}, 76);
                  return gradcheck([o](const auto& x, const auto& w, const auto& b) { return conv1d(x, w, b, o); }, x,
                                   w, b);
                }};
  };
  c.push_back(conv1("plain", {}, 2, 3));
  c.push_back(conv1("stride padding groups", {.stride = 2, .padding = 1, .groups = 2}, 4, 6));
  c.push_back(conv1("dilation", {.dilation = 2}, 2, 2));
  auto convt = [](std::string n, ConvTranspose2dOptions o, index_t cin, index_t cout) {
    return Case{"conv_transpose2d " + n, [=] {
                  auto x = leaf({2, cin, 3, 4}, 77);
                  auto w = leaf({cin, cout / o.groups, 3, 2}, 78);
                  auto b = leaf({cout}, 79);
                  return gradcheck(
                      [o](const auto& x, const auto& w, const auto& b) { return conv_transpose2d(x, w, b, o); }, x, w,
                      b);
                }};
  };
  c.push_back(convt("plain", {}, 2, 3));
  c.push_back(convt("stride padding output_padding", {.stride = 2, .padding = 1, .output_padding = 1}, 2, 3));
  c.push_back(convt("groups", {.stride = {1, 2}, .groups = 2}, 4, 6));
  c.push_back(convt("dilation", {.padding = 1, .output_padding = 1, .dilation = 2}, 2, 2));  // output_padding ≥ stride
  c.push_back(general("max_pool2d", {2, 2, 5, 6}, [](const Var<double, 4>& x) {
    return Var<double, 0>(sum(max_pool2d(x, 2)) + sum(square(max_pool2d(x * 2, {3, 2}, {2, 2}, {1, 1}, 1, true))));
  }));
  c.push_back(general("avg_pool2d", {2, 2, 5, 6},
                      [](const Var<double, 4>& x) { return Var<double, 4>(avg_pool2d(x, 2) * 2); }));
  c.push_back(general("avg_pool2d padded", {2, 2, 5, 6}, [](const Var<double, 4>& x) {
    return avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, true, false);
  }));
  c.push_back(general("max_pool1d (with avg_pool1d and adaptive_avg_pool1d)", {2, 2, 9}, [](const Var<double, 3>& x) {
    namespace NF = ft::nn::functional;
    return Var<double, 0>(sum(square(NF::max_pool1d(x, 3, 2, 1))) + sum(NF::avg_pool1d(x * x, 3, 2, 1, true, false)) +
                          sum(square(NF::adaptive_avg_pool1d(x, 4))));
  }));
  c.push_back(general("adaptive_max_pool2d", {2, 2, 7, 5}, [](const Var<double, 4>& x) {
    return Var<double, 0>(sum(square(adaptive_max_pool2d(x, {3, 2}))) + sum(adaptive_max_pool2d(x * 2, 1)));
  }));
  c.push_back(general("local_response_norm", {2, 5, 3, 2}, [](const Var<double, 4>& x) {
    return Var<double, 4>(ft::nn::functional::local_response_norm(x, 3, 0.3, 0.6, 1.5) +
                          ft::nn::functional::local_response_norm(x * 2, 2));
  }));
  c.push_back(general("adaptive_avg_pool2d", {2, 2, 5, 7}, [](const Var<double, 4>& x) {
    return adaptive_avg_pool2d(x, {2, 3});
  }));
  // ---- views of Vars ----
  c.push_back(general("views", {2, 3, 4}, [](const Var<double, 3>& x) {
    auto a = x.transpose(0, 2).permute({1, 0, 2});                            // [3, 4, 2]
    auto b = x.reshape({6, 4}).flatten().reshape({4, 3, 2}).transpose(0, 1);  // [3, 4, 2]
    auto s = x.slice(2, 1, 4, 2).select(0, 1).unsqueeze(2);                   // [3, 2, 1]
    auto z = x.select(0, 0).unsqueeze(0).squeeze(0).expand({2, 3, 4});
    return Var<double, 3>(a * b + s.transpose(1, 2).expand({3, 4, 2}) + z.permute({1, 2, 0}));
  }));
  // ---- losses (nn/loss.hpp): the loss family's own op, and each functional loss ----
  namespace F = ft::nn::functional;
  using ft::Reduction;
  const index_t s3x4[] = {3, 4};
  c.push_back(binary(
      "binary_cross_entropy", s3x4, s3x4,
      [](const auto& x, const auto& t) {
        return F::binary_cross_entropy(x, t) + F::binary_cross_entropy<Reduction::Sum>(x * 0.5, t);
      },
      0.05, 0.95, 0.0, 1.0));
  c.push_back(binary("mse_loss", s3x4, s3x4, [](const auto& x, const auto& t) {
    return F::mse_loss(x, t) + F::mse_loss<Reduction::Sum>(x, t * 2);
  }));
  c.push_back(binary("l1_loss", s3x4, s3x4, [](const auto& x, const auto& t) { return F::l1_loss(x, t); }));
  c.push_back(binary("smooth_l1_loss", s3x4, s3x4, [](const auto& x, const auto& t) {
    return F::smooth_l1_loss(x, t, Reduction::Mean, 0.5) + F::huber_loss(x, t, Reduction::Sum, 0.7);
  }));
  c.push_back(binary("binary_cross_entropy_with_logits", s3x4, s3x4, [](const auto& x, const auto& t) {
    auto pos_weight = ft::from_vector<double>({0.5, 1, 2, 3}, {4});
    return F::binary_cross_entropy_with_logits(x, t) +
           F::binary_cross_entropy_with_logits(x, t * 0.5, Reduction::Sum, pos_weight);
  }));
  c.push_back(binary("soft_margin_loss (with hinge_embedding_loss)", s3x4, s3x4, [](const auto& x, const auto& t) {
    auto y = ft::from_vector<double>({1, -1, -1, 1, 1, 1, -1, 1, -1, -1, 1, 1}, {3, 4});
    return F::soft_margin_loss(x * t, y) + F::hinge_embedding_loss<Reduction::Sum>(x + t, y, 0.5);
  }));
  c.push_back(binary(
      "poisson_nll_loss", s3x4, s3x4,
      [](const auto& x, const auto& rate) {
        auto k = ft::from_vector<double>({0, 1, 2, 3, 5, 0, 4, 1, 2, 7, 3, 1}, {3, 4});
        return F::poisson_nll_loss(x, k) + F::poisson_nll_loss<Reduction::Sum>(x * 0.5, k, {.full = true}) +
               F::poisson_nll_loss(rate, k, Reduction::Mean, {.log_input = false, .full = true});
      },
      -2, 2, 0.5, 2));
  c.push_back(binary(  // the input's and the variance's gradients
      "gaussian_nll_loss", s3x4, s3x4,
      [](const auto& x, const auto& var) {
        auto t = ft::from_vector<double>({0.5, -1, 2, 0, 1, 1.5, -0.5, 0.25, 3, -2, 0.1, 1}, {3, 4});
        return F::gaussian_nll_loss(x, t, var) + F::gaussian_nll_loss<Reduction::Sum>(x, t, var.slice(1, 0, 1), true);
      },
      -2, 2, 0.5, 2));
  c.push_back(binary("multilabel_soft_margin_loss", s3x4, s3x4, [](const auto& x, const auto& t) {
    auto w = ft::from_vector<double>({0.5, 1, 2, 3}, {4});
    return F::multilabel_soft_margin_loss(x * 1.5, t * 0.25 + 0.5) +
           ft::sum(F::multilabel_soft_margin_loss<Reduction::None>(x * 2, t * 0.25 + 0.5, w));
  }));
  c.push_back(general("nll_loss", {5, 4}, [](const V2& x) {
    auto t = ft::from_vector<std::int64_t>({0, 3, -100, 1, 2}, {5});
    return Var<double, 0>(F::nll_loss(ft::log_softmax(x, 1), t) + F::nll_loss<Reduction::Sum>(x, t) +
                          ft::sum(F::cross_entropy<Reduction::None>(x, t, {.label_smoothing = 0.2})));
  }));
  return c;
}
const bool registered = [] {
  for (auto& k : op_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace
