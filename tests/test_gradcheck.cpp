// gradcheck of every differentiable function the library has, in double on the CPU. The
// cases live in one table (gradcheck_cases.hpp; the elementwise ops here, the reductions and
// boundary ops in test_gradcheck_ops.cpp); the last test checks that every op of the op
// table, every reducer and every boundary op has a case, so an op added without one shows.
#include <set>

#include "ft/nn/layers.hpp"
#include "ft/nn/loss.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
std::vector<Case> elementwise_cases() {
  using namespace ft;
  using V2 = Var<double, 2>;
  std::vector<Case> c;
  // ---- unary ops ----
  c.push_back(unary("exp", [](const auto& x) { return exp(x); }));
  c.push_back(unary("exp2", [](const auto& x) { return exp2(x); }));
  c.push_back(unary(
      "log", [](const auto& x) { return log(x); }, 0.5, 2));
  c.push_back(unary(
      "log2", [](const auto& x) { return log2(x); }, 0.5, 2));
  c.push_back(unary(
      "log1p", [](const auto& x) { return log1p(x); }, -0.5, 2));
  c.push_back(unary("expm1", [](const auto& x) { return expm1(x); }));
  c.push_back(unary(
      "sqrt", [](const auto& x) { return sqrt(x); }, 0.5, 2));
  c.push_back(unary(
      "rsqrt", [](const auto& x) { return rsqrt(x); }, 0.5, 2));
  c.push_back(unary(
      "reciprocal", [](const auto& x) { return reciprocal(x); }, 0.5, 2));
  c.push_back(unary("sin", [](const auto& x) { return sin(x); }));
  c.push_back(unary("cos", [](const auto& x) { return cos(x); }));
  c.push_back(unary(
      "tan", [](const auto& x) { return tan(x); }, -1, 1));
  c.push_back(unary("tanh", [](const auto& x) { return tanh(x); }));
  c.push_back(unary("sigmoid", [](const auto& x) { return sigmoid(x); }));
  c.push_back(unary("erf", [](const auto& x) { return erf(x); }));
  c.push_back(unary("silu", [](const auto& x) { return silu(x); }));
  // zero almost everywhere: only the x term carries a gradient
  c.push_back(unary("floor", [](const auto& x) { return floor(x * 3) + x; }));
  c.push_back(unary("ceil", [](const auto& x) { return ceil(x * 3) + x; }));
  c.push_back(unary("round", [](const auto& x) { return round(x * 3) + x; }));
  c.push_back(unary("trunc", [](const auto& x) { return trunc(x * 3) + x; }));
  c.push_back(unary("sign", [](const auto& x) { return sign(x) + x; }));
  c.push_back(unary("gelu", [](const auto& x) { return gelu(x) + gelu(x, "tanh"); }));
  c.push_back(unary("neg", [](const auto& x) { return -x; }));
  c.push_back(unary("abs", [](const auto& x) { return abs(x); }));
  c.push_back(unary("square", [](const auto& x) { return square(x); }));
  c.push_back(unary("relu", [](const auto& x) { return relu(x); }));
  c.push_back(unary("logical_not", [](const auto& x) { return where(logical_not(x > 0), x, x * 2); }));
  c.push_back(unary("leaky_relu", [](const auto& x) { return leaky_relu(x, 0.2); }));
  c.push_back(unary("elu", [](const auto& x) { return elu(x, 1.5); }));
  c.push_back(unary("softplus", [](const auto& x) { return softplus(x) + softplus(x, 2.0, 1.0); }));
  c.push_back(unary("clamp", [](const auto& x) { return clamp(x, -1.0, 1.0); }));
  c.push_back(
      unary("cast", [](const auto& x) { return cast<double>(cast<float>(x)); }, -2, 2, {.eps = 1e-2, .atol = 1e-3}));
  // compositions (ops/composite.hpp): differentiated through their parts; kinks kept out of reach
  c.push_back(unary(
      "hardtanh", [](const auto& x) { return hardtanh(x, -0.9, 0.8); }, -2, 2));
  c.push_back(unary(
      "relu6", [](const auto& x) { return relu6(x * 4 + 3); }, -2, 2));
  c.push_back(unary(
      "hardsigmoid", [](const auto& x) { return hardsigmoid(x * 4); }, -2, 2));
  c.push_back(unary(
      "hardswish", [](const auto& x) { return hardswish(x * 4); }, -2, 2));
  c.push_back(unary("mish", [](const auto& x) { return mish(x * 3); }));
  c.push_back(unary("selu", [](const auto& x) { return nn::functional::selu(x * 3); }));
  c.push_back(unary("celu", [](const auto& x) { return nn::functional::celu(x * 3, 0.7); }));
  c.push_back(unary("softsign", [](const auto& x) { return nn::functional::softsign(x * 3); }));
  c.push_back(unary("tanhshrink", [](const auto& x) { return nn::functional::tanhshrink(x * 2); }));
  c.push_back(unary("softshrink", [](const auto& x) { return nn::functional::softshrink(x * 3, 0.5); }));
  c.push_back(unary("hardshrink", [](const auto& x) { return nn::functional::hardshrink(x * 3, 0.5); }));
  c.push_back(unary("logsigmoid", [](const auto& x) { return nn::functional::logsigmoid(x * 6); }));
  c.push_back(unary("threshold", [](const auto& x) { return nn::functional::threshold(x * 3, 0.1, -1.0); }));
  // nn::functional's activations with a parameter, a split or a random slope
  c.push_back(
      binary("prelu", {2, 3, 4}, {3}, [](const auto& x, const auto& w) { return nn::functional::prelu(x * 3, w); }));
  c.push_back(binary("prelu (one slope)", {3, 4}, {1},
                     [](const auto& x, const auto& w) { return nn::functional::prelu(x * 3, w); }));
  c.push_back(general("glu", {3, 4}, [](const V2& x) { return V2(nn::functional::glu(x * 2, 1)); }));
  c.push_back(
      general("glu (dim 0)", {4, 3}, [](const V2& x) { return V2(nn::functional::glu(x, 0) * x.slice(0, 0, 2)); }));
  c.push_back(unary("rrelu (training: the draw regenerated)",
                    [](const auto& x) { return nn::functional::rrelu(x * 3, 0.1, 0.3, true, 5); }));
  c.push_back(unary("lerp (scalar weight)", [](const auto& x) { return lerp(x, exp(x), 0.3) + lerp(x, x * x, 0.8); }));
  c.push_back(unary("chain", [](const auto& x) {
    return tanh(sigmoid(exp(sin(x) * 0.5) + cos(x)) * x - square(x) * 0.1) + relu(x) / (abs(x) + 1);
  }));
  // ---- binary ops, same shape ----
  c.push_back(binary("add", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return a + b; }));
  c.push_back(binary("sub", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return a - b; }));
  c.push_back(binary("mul", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return a * b; }));
  c.push_back(binary(
      "div", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return a / b; }, -2, 2, 0.5, 2));
  c.push_back(binary(
      "pow", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return pow(a, b); }, 0.5, 2));
  c.push_back(binary("maximum", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return maximum(a, b); }));
  c.push_back(binary("minimum", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return minimum(a, b); }));
  c.push_back(binary("atan2", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return atan2(a, b); }));
  c.push_back(binary(
      "fmod", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return fmod(a, b); }, -3, 3, 0.7, 1.3));
  c.push_back(binary(
      "remainder", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return remainder(a, b); }, -3, 3, 0.7, 1.3));
  // comparisons and logical ops carry no gradient: they route it through where
  c.push_back(binary("eq", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return where(a == b, a, b * 2); }));
  c.push_back(binary("ne", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return where(a != b, a, b * 2); }));
  c.push_back(binary("lt", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return where(a < b, a, b * 2); }));
  c.push_back(binary("le", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return where(a <= b, a * b, b); }));
  c.push_back(binary("gt", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return where(a > b, a * 3, b); }));
  c.push_back(binary("ge", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return where(a >= b, a, b - a); }));
  c.push_back(binary("logical_and", {3, 4}, {3, 4},
                     [](const auto& a, const auto& b) { return where(logical_and(a > 0, b > 0), a * b, a + b); }));
  c.push_back(binary("logical_or", {3, 4}, {3, 4},
                     [](const auto& a, const auto& b) { return where(logical_or(a > 0, b > 0), a * b, a - b); }));
  c.push_back(binary("where", {3, 4}, {3, 1}, [](const auto& a, const auto& b) { return where(a > b, a * b, b); }));
  c.push_back(binary("logaddexp", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return logaddexp(a * 3, b); }));
  c.push_back(binary(
      "lerp", {3, 4}, {4}, [](const auto& a, const auto& w) { return lerp(a, square(a), w); }, -2, 2, 0, 1));
  c.push_back(binary("addcmul", {3, 4}, {3, 1},
                     [](const auto& a, const auto& b) { return addcmul(a, b, a * b, 0.5) + addcmul(b, a, a); }));
  c.push_back(binary(
      "addcdiv", {3, 4}, {3, 4}, [](const auto& a, const auto& b) { return addcdiv(a, a, b, -2.0); }, -2, 2, 0.5, 2));
  // ---- broadcasting, every pattern ----
  auto mul_add = [](const auto& a, const auto& b) { return a * b + exp(b) - a / (square(b) + 1); };
  c.push_back(binary("broadcast [3,4]x[4]", {3, 4}, {4}, mul_add));
  c.push_back(binary("broadcast [3,4]x[3,1]", {3, 4}, {3, 1}, mul_add));
  c.push_back(binary("broadcast [3,4]x[1,4]", {3, 4}, {1, 4}, mul_add));
  c.push_back(binary("broadcast [3,4]x[1,1]", {3, 4}, {1, 1}, mul_add));
  c.push_back(binary("broadcast [3,1]x[1,4]", {3, 1}, {1, 4}, mul_add));
  c.push_back(binary("broadcast [2,3,4]x[3,1]", {2, 3, 4}, {3, 1}, mul_add));
  c.push_back(binary("broadcast [4]x[2,3,4]", {4}, {2, 3, 4}, mul_add));
  c.push_back(binary("broadcast [2,1,4]x[3,1]", {2, 1, 4}, {3, 1}, mul_add));
  c.push_back(general("broadcast rank 0", {3, 4}, [](const V2& x) {
    Var<double, 0> s(ft::full<double>({1}, 0.7).reshape(Shape<0>{}), ft::requires_grad);
    return V2(x * s + s);
  }));
  c.push_back(unary("scalars", [](const auto& x) { return pow(x, 3.0) + pow(2.0, x) + 1.5 / (x * x + 1) - 2 * x; }));
  return c;
}
const bool registered = [] {
  for (auto& k : elementwise_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace

// One subcase per case, so that one op's check runs alone: `ft_gradcheck -sc='softplus*'`.
TEST_CASE("gradcheck passes for every differentiable function") {
  for (const Case& k : registry()) {
    SUBCASE(k.name.c_str()) {
      ft::GradcheckResult r;
      CHECK_NOTHROW(r = k.run());
      CHECK_MESSAGE(r.ok, k.name << "\n" << r.report);
    }
  }
}

namespace {
template <class... Ops>
void unary_names(ft::op::List<Ops...>, std::vector<std::string>& out) {
  static_assert(((ft::autograd::UnaryGrad<Ops>::rule != ft::autograd::Rule::missing) && ...),
                "every unary op needs an adjoint rule (beside the op in its family file, ft/ops/*.hpp)");
  (out.push_back(Ops::name), ...);
}
template <class... Ops>
void binary_names(ft::op::List<Ops...>, std::vector<std::string>& out) {
  static_assert(((ft::autograd::BinaryGrad<Ops>::rule != ft::autograd::Rule::missing) && ...),
                "every binary op needs an adjoint rule (beside the op in its family file, ft/ops/*.hpp)");
  (out.push_back(Ops::name), ...);
}
template <class... Reds>
void reducer_names(ft::op::List<Reds...>, std::vector<std::string>& out) {
  static_assert(((ft::autograd::ReduceGrad<Reds>::rule != ft::autograd::Rule::missing) && ...),
                "every reducer needs an adjoint rule (beside the op in its family file, ft/ops/*.hpp)");
  (out.push_back(Reds::name), ...);
}
}  // namespace

TEST_CASE("every op has an adjoint rule and a gradcheck case") {
  using namespace ft::red;
  std::vector<std::string> names;
  unary_names(ft::op::UnaryOps{}, names);
  binary_names(ft::op::BinaryOps{}, names);
  binary_names(ft::op::LossOps{}, names);
  reducer_names(ft::red::Reducers{}, names);
  for (const char* boundary :
       {"softmax", "log_softmax", "layer_norm", "cross_entropy", "matmul", "linear", "conv2d", "conv1d",
        "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "where", "sum_to", "views", "mse_loss",
        "l1_loss", "smooth_l1_loss", "binary_cross_entropy_with_logits", "nll_loss",
        // structure ops (ft/ops/structure.hpp)
        "flip", "roll", "repeat", "tile", "pad", "pixel_shuffle", "interpolate", "tril", "diagonal", "diag", "cat",
        "stack",
        // ordering and scans (ft/ops/ordering.hpp)
        "sort", "topk", "kthvalue", "cumsum", "cumprod", "cummax", "cummin", "logcumsumexp",
        // indexing (ft/ops/indexing.hpp)
        "index_select", "gather", "take_along_dim", "index", "scatter", "scatter_add", "scatter_reduce", "index_add",
        "index_put", "masked_fill", "masked_select",
        // norms, distances and the losses on them (ft/linalg/distance.hpp, nn/loss.hpp)
        "norm_p", "normalize", "pairwise_distance", "cosine_similarity", "outer", "cdist", "einsum",
        "cross_entropy_weighted", "kl_div", "margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss",
        "soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss", "multilabel_soft_margin_loss",
        // pooling, normalisation and activations of nn (ft/nn/layers.hpp, linalg/pool.hpp, linalg/rowwise.hpp)
        "max_pool1d", "adaptive_max_pool2d", "local_response_norm", "softmin", "prelu", "glu", "rrelu",
        // recurrent layers (ft/nn/recurrent.hpp)
        "lstm", "gru", "rnn_tanh", "rnn_relu", "scaled_dot_product_attention"})
    names.push_back(boundary);
  std::set<std::string> covered, seen;
  for (const Case& k : registry()) {
    covered.insert(k.name.substr(0, k.name.find(' ')));
    CHECK_MESSAGE(seen.insert(k.name).second, "two gradcheck cases are named '" << k.name << "'");  // one subcase each
  }
  for (const auto& n : names) {
    CAPTURE(n);
    CHECK_MESSAGE(covered.count(n) == 1, "no gradcheck case for op '" << n << "'");
  }
  // the missing-rule detector itself: an op the table does not know has no rule
  struct NewOp {};
  static_assert(ft::autograd::UnaryGrad<NewOp>::rule == ft::autograd::Rule::missing);
}
