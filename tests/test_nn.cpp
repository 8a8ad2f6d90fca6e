// ft::nn modules: every layer's forward and gradients against PyTorch's (tests/golden/layers.txt,
// written by tests/golden/make_layers.py; the parameters are loaded through load_state_dict
// under PyTorch's own names), plus the module machinery: names, state dicts, strict-load
// errors, train/eval, devices, initialisation and fusion across module boundaries.
#include <cmath>
#include <string>

#include "common.hpp"
#include "ft/nn.hpp"
#include "golden/golden.hpp"

namespace {

using ft::test::Golden;

const Golden& golden() {
  static const Golden g("layers.txt");
  return g;
}

// A golden record as a tensor of its own dtype and rank (0..4).
ft::AnyTensor any_tensor(const std::string& name, ft::Device dev) {
  const auto& r = golden().record(name);
  const int rank = static_cast<int>(r.shape.size());
  ft::AnyTensor out;
  auto typed = [&]<class T>() {
    [&]<int... Rs>(std::integer_sequence<int, Rs...>) {
      ((rank == Rs ? (out = golden().tensor<T, Rs>(name, dev), 0) : 0), ...);
    }
    (std::make_integer_sequence<int, 5>{});
  };
  if (r.dtype == "i64")
    typed.template operator()<std::int64_t>();
  else
    typed.template operator()<float>();
  return out;
}

std::vector<double> values_of(const ft::AnyTensor& t) {
  std::vector<double> v;
  ft::visit(t, [&](auto x) {
    for (auto e : x.to(ft::kCPU).contiguous().to_vector()) v.push_back(static_cast<double>(e));
  });
  return v;
}

// Loads the case's parameters and buffers by PyTorch's names (strict).
template <class M>
void load_case(M& m, const std::string& name, ft::Device dev) {
  ft::nn::StateDict sd;
  const std::string prefix = name + ".param.";
  for (const auto& key : m.state_dict().keys()) sd.insert(key, any_tensor(prefix + key, dev));
  m.load_state_dict(sd);
}

// forward on the golden input, then backward of sum(y * r): output, input gradient and every
// parameter's gradient agree with PyTorch's.
template <int RI, class M>
void check_layer(const std::string& name, M& m, ft::Device dev, double rtol = 1e-5) {
  INFO(name << " on " << dev);
  const Golden& g = golden();
  load_case(m, name, dev);
  ft::Var<float, RI> x(g.tensor<float, RI>(name + ".input", dev), ft::requires_grad);
  auto y = ft::autograd::to_var(m.forward(x));
  constexpr int RO = decltype(y)::rank;
  ft::test::check_close(y.value(), g.values(name + ".output"), rtol, 1e-6);
  y.backward(g.tensor<float, RO>(name + ".seed_grad", dev));
  ft::test::check_close(x.grad(), g.values(name + ".grad.input"), rtol, 1e-5);
  for (auto& [pname, p] : m.named_parameters()) {
    INFO(pname);
    REQUIRE(p.has_grad());
    ft::test::check_close(values_of(p.grad()), g.values(name + ".grad." + pname), rtol, 1e-5);
  }
}

template <class M>
void check_after(const std::string& name, M& m) {
  for (const auto& [key, t] : m.state_dict()) {
    INFO(name << " after forward: " << key);
    ft::test::check_close(values_of(t), golden().values(name + ".after." + key), 1e-5, 1e-6);
  }
}

}  // namespace

TEST_CASE("Linear and Conv2d match PyTorch (forward, input and parameter gradients)") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::Linear<float> lin(5, 3, true, dev), lin_nobias(5, 3, false, dev), lin3(5, 3, true, dev);
    check_layer<2>("linear", lin, dev);
    check_layer<2>("linear_nobias", lin_nobias, dev);
    check_layer<3>("linear_3d", lin3, dev);
    ft::nn::Conv2d<float> conv(3, 4, 3, {.padding = 1}, true, dev);
    check_layer<4>("conv2d", conv, dev);
    ft::nn::Conv2d<float> conv_s(2, 3, 3, {.stride = 2}, false, dev);
    check_layer<4>("conv2d_stride", conv_s, dev);
  }
}

TEST_CASE("Conv1d and ConvTranspose2d match PyTorch (forward, input and parameter gradients)") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::Conv1d<float> c1(4, 6, 3, {.stride = 2, .padding = 1, .groups = 2}, true, dev);
    check_layer<3>("conv1d", c1, dev);
    ft::nn::Conv1d<float> c1d(3, 4, 3, {.dilation = 2}, false, dev);
    check_layer<3>("conv1d_dilation", c1d, dev);
    ft::nn::ConvTranspose2d<float> ct(3, 4, 3, {.stride = 2, .padding = 1, .output_padding = 1}, true, dev);
    check_layer<4>("conv_transpose2d", ct, dev);
    ft::nn::ConvTranspose2d<float> ctg(4, 6, {3, 2}, {.stride = {1, 2}, .groups = 2}, false, dev);
    check_layer<4>("conv_transpose2d_groups", ctg, dev);
    // output_padding 1 ≥ stride 1: allowed below the dilation, the last row and column see no input
    ft::nn::ConvTranspose2d<float> ctd(2, 3, 3, {.padding = 1, .output_padding = 1, .dilation = 2}, true, dev);
    check_layer<4>("conv_transpose2d_dilation", ctd, dev);
  }
}

TEST_CASE("Conv1d and ConvTranspose2d have torch's parameter shapes and initialisation bounds") {
  ft::nn::Conv1d<float> c1(8, 12, 5, {.groups = 2});
  CHECK(c1.weight.shape() == ft::Shape<3>{12, 4, 5});
  CHECK(c1.bias.shape() == ft::Shape<1>{12});
  const double b1 = 1.0 / std::sqrt(4.0 * 5);  // fan_in = in/groups · k
  CHECK(ft::max(ft::abs(c1.weight)).item() <= b1);
  CHECK(ft::max(ft::abs(c1.weight)).item() > 0.9 * b1);
  CHECK(ft::max(ft::abs(c1.bias)).item() <= b1);
  // the transposed weight is [in, out/groups, kh, kw]; torch reads fan_in from its dim 1
  ft::nn::ConvTranspose2d<float> ct(16, 6, {3, 2}, {.groups = 2});
  CHECK(ct.weight.shape() == ft::Shape<4>{16, 3, 3, 2});
  CHECK(ct.bias.shape() == ft::Shape<1>{6});
  const double bt = 1.0 / std::sqrt(3.0 * 3 * 2);
  CHECK(ft::max(ft::abs(ct.weight)).item() <= bt);
  CHECK(ft::max(ft::abs(ct.weight)).item() > 0.9 * bt);
  CHECK(ft::max(ft::abs(ct.bias)).item() <= bt);
  auto names = ct.named_parameters();
  REQUIRE(names.size() == 2);
  CHECK(names[0].first == "weight");
  CHECK(names[1].first == "bias");
  ft::nn::ConvTranspose2d<float> nb(4, 4, 2, {.stride = 2}, false);
  CHECK(nb.named_parameters().size() == 1);
  ft::Var<float, 4> y = nb(ft::randn<float>({1, 4, 3, 5}, ft::kCPU, 3));
  CHECK(y.shape() == ft::Shape<4>{1, 4, 6, 10});
  CHECK_THROWS_WITH_AS(ft::nn::Conv1d<float>(3, 4, 3, {.groups = 2}), doctest::Contains("Conv1d"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::nn::ConvTranspose2d<float>(4, 3, 3, {.groups = 2}), doctest::Contains("ConvTranspose2d"),
                       ft::Error);
}

TEST_CASE("pooling layers match PyTorch") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::MaxPool2d mp(2), mpp(3, 2, 1);
    ft::nn::AvgPool2d ap(2), app(3, 2, 1);
    ft::nn::AdaptiveAvgPool2d aap({2, 3});
    check_layer<4>("maxpool", mp, dev);
    check_layer<4>("maxpool_pad", mpp, dev);
    check_layer<4>("avgpool", ap, dev);
    check_layer<4>("avgpool_pad", app, dev);
    check_layer<4>("adaptive_avgpool", aap, dev);
  }
}

TEST_CASE("BatchNorm matches PyTorch in training (with running statistics) and eval mode") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::BatchNorm1d<float> bn1(4, {}, dev), bn1_3d(4, {}, dev), bn1_eval(4, {}, dev);
    check_layer<2>("batchnorm1d", bn1, dev, 1e-4);
    check_after("batchnorm1d", bn1);
    check_layer<3>("batchnorm1d_3d", bn1_3d, dev, 1e-4);
    check_after("batchnorm1d_3d", bn1_3d);
    bn1_eval.eval();
    check_layer<2>("batchnorm1d_eval", bn1_eval, dev);
    ft::nn::BatchNorm2d<float> bn2(4, {.momentum = 0.2}, dev), bn2_eval(4, {}, dev);
    check_layer<4>("batchnorm2d", bn2, dev, 1e-4);
    check_after("batchnorm2d", bn2);
    bn2_eval.eval();
    check_layer<4>("batchnorm2d_eval", bn2_eval, dev);
  }
}

// momentum = None: running statistics are the cumulative average of the batches' statistics
// (the variance unbiased), and the factor 1 / num_batches_tracked is not read on the host.
TEST_CASE("BatchNorm with momentum None keeps the cumulative average and waits for nothing") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::BatchNorm1d<float> bn(3, {.momentum = std::nullopt}, dev);
    std::vector<double> mean_sum(3, 0.0), var_sum(3, 0.0);
    constexpr int kBatches = 3, kRows = 8;
    for (int k = 0; k < kBatches; ++k) {
      auto x = ft::randn<float>({kRows, 3}, dev, 40 + k);
      const auto h = x.to_vector();
      for (int c = 0; c < 3; ++c) {
        double m = 0, v = 0;
        for (int r = 0; r < kRows; ++r) m += h[r * 3 + c] / kRows;
        for (int r = 0; r < kRows; ++r) v += (h[r * 3 + c] - m) * (h[r * 3 + c] - m) / (kRows - 1);
        mean_sum[c] += m / kBatches;
        var_sum[c] += v / kBatches;
      }
      const auto syncs = ft::stats::host_syncs(dev);
      ft::Var<float, 2> y = bn(x);
      CHECK(ft::stats::host_syncs(dev) == syncs);
    }
    CHECK(bn.num_batches_tracked.item() == kBatches);
    ft::test::check_close(bn.running_mean, mean_sum, 1e-5, 1e-6);
    ft::test::check_close(bn.running_var, var_sum, 1e-5, 1e-6);
  }
}

TEST_CASE("LayerNorm, Embedding, Flatten and Identity match PyTorch") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::LayerNorm<float, 2> ln({4, 5}, 1e-5, true, true, dev);
    check_layer<3>("layernorm", ln, dev, 1e-4);
    ft::nn::LayerNorm<float> ln_last(6, 1e-3, true, true, dev);
    check_layer<3>("layernorm_last", ln_last, dev, 1e-4);
    ft::nn::Flatten flat;
    check_layer<3>("flatten", flat, dev);
    {  // Flatten(start_dim, end_dim) and Unflatten: the same values in the new shape; the
       // gradient flows back through the reshape
      ft::Var<float, 3> x(ft::test::random_tensor<float>({2, 3, 4}, dev, 3), ft::requires_grad);
      auto a = ft::nn::FlattenDims<0, 1>{}(x);
      static_assert(std::is_same_v<decltype(a), ft::Var<float, 2>>);
      CHECK(a.shape() == ft::Shape<2>{6, 4});
      auto b = ft::nn::FlattenDims<-2, -1>{}(x.value() * 2.0f);
      CHECK(b.shape() == ft::Shape<2>{2, 12});
      ft::nn::Unflatten un(1, {2, -1, 1});
      auto c = un(a);
      CHECK(c.shape() == ft::Shape<4>{6, 2, 2, 1});
      CHECK(c.value().to_vector() == x.value().to_vector());
      ft::Var<float, 0>(ft::sum(c * 3.0f)).backward();
      ft::test::check_close(x.grad(), std::vector<double>(24, 3.0), 0.0);
      CHECK_THROWS_WITH_AS(ft::nn::Unflatten(1, {5, -1})(b), doctest::Contains("Unflatten: sizes [5, -1]"), ft::Error);
      CHECK_THROWS_WITH_AS(ft::nn::Unflatten(1, {-1, -1})(b), doctest::Contains("[2, 12]"), ft::Error);
    }
    ft::nn::Identity id;
    check_layer<2>("identity", id, dev);

    for (const char* name : {"embedding", "embedding_2d"}) {
      INFO(name);
      const bool two_d = std::string(name) == "embedding_2d";
      ft::nn::Embedding<float> emb(two_d ? 7 : 10, two_d ? 3 : 4, two_d ? std::optional<std::int64_t>(2) : std::nullopt,
                                   dev);
      load_case(emb, name, dev);
      auto run = [&]<int R>() {
        auto idx = golden().tensor<std::int64_t, R>(std::string(name) + ".input", dev);
        ft::Var<float, R + 1> y;
        CHECK(ft::test::launches_of(dev, [&] { y = emb(idx); }) <= 2);  // range check + gather
        ft::test::check_close(y.value(), golden().values(std::string(name) + ".output"));
        y.backward(golden().tensor<float, R + 1>(std::string(name) + ".seed_grad", dev));
        ft::test::check_close(emb.weight.grad(), golden().values(std::string(name) + ".grad.weight"));
      };
      if (two_d)
        run.template operator()<2>();
      else
        run.template operator()<1>();
    }
  }
}

TEST_CASE("activation modules match PyTorch") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::ReLU relu;
    ft::nn::LeakyReLU leaky(0.1);
    ft::nn::GELU gelu, gelu_tanh("tanh");
    ft::nn::SiLU silu;
    ft::nn::Tanh tanh;
    ft::nn::Sigmoid sigmoid;
    ft::nn::Softmax softmax(1), softmax_last(-1);
    ft::nn::LogSoftmax log_softmax(1);
    check_layer<2>("relu", relu, dev);
    check_layer<2>("leaky_relu", leaky, dev);
    check_layer<2>("gelu", gelu, dev);
    check_layer<2>("gelu_tanh", gelu_tanh, dev);
    check_layer<2>("silu", silu, dev);
    check_layer<2>("tanh", tanh, dev);
    check_layer<2>("sigmoid", sigmoid, dev);
    check_layer<2>("softmax", softmax, dev);
    check_layer<2>("log_softmax", log_softmax, dev);
    check_layer<3>("softmax_last", softmax_last, dev);
    ft::nn::Hardtanh hardtanh(-0.5, 2.0);
    ft::nn::ReLU6 relu6;
    ft::nn::Hardsigmoid hardsigmoid;
    ft::nn::Hardswish hardswish;
    ft::nn::Mish mish;
    check_layer<2>("hardtanh", hardtanh, dev);
    check_layer<2>("relu6", relu6, dev);
    check_layer<2>("hardsigmoid", hardsigmoid, dev);
    check_layer<2>("hardswish", hardswish, dev);
    check_layer<2>("mish", mish, dev);
  }
}

TEST_CASE("the rest of torch.nn's activations match PyTorch: ELU … Softmin, GLU, PReLU, RReLU") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::ELU elu(0.7);
    ft::nn::SELU selu;
    ft::nn::CELU celu(0.6);
    ft::nn::Softplus softplus(2.0, 3.0);
    ft::nn::Softsign softsign;
    ft::nn::Tanhshrink tanhshrink;
    ft::nn::Softshrink softshrink(0.7);
    ft::nn::Hardshrink hardshrink(0.7);
    ft::nn::LogSigmoid logsigmoid;
    ft::nn::Threshold threshold(0.3, -2.0);
    ft::nn::Softmin softmin(1);
    ft::nn::Softmax2d softmax2d;
    check_layer<2>("elu", elu, dev);
    check_layer<2>("selu", selu, dev);
    check_layer<2>("celu", celu, dev);
    check_layer<2>("softplus", softplus, dev);
    check_layer<2>("softsign", softsign, dev);
    check_layer<2>("tanhshrink", tanhshrink, dev, 1e-4);  // x − tanh x cancels near 0
    check_layer<2>("softshrink", softshrink, dev);
    check_layer<2>("hardshrink", hardshrink, dev);
    check_layer<2>("logsigmoid", logsigmoid, dev);
    check_layer<2>("threshold", threshold, dev);
    check_layer<2>("softmin", softmin, dev);
    check_layer<4>("softmax2d", softmax2d, dev);
    ft::nn::GLU glu, glu1(1);
    check_layer<2>("glu", glu, dev);
    check_layer<3>("glu_dim1", glu1, dev);
    ft::nn::PReLU<float> prelu(1, 0.25, dev), prelu3(3, 0.25, dev);
    check_layer<2>("prelu", prelu, dev);
    check_layer<4>("prelu_channels", prelu3, dev);
    ft::nn::RReLU rrelu(0.1, 0.3);
    rrelu.eval();
    check_layer<2>("rrelu_eval", rrelu, dev);

    // each is one kernel with what reads it, forward and backward
    ft::Var<float, 2> x(ft::test::random_tensor<float>({4, 6}, dev, 5), ft::requires_grad);
    ft::Var<float, 0> loss;
    CHECK(ft::test::launches_of(dev, [&] { loss = ft::sum(prelu(x) * 2.0f); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { loss = ft::sum(glu1(x) * 2.0f); }) == 1);
    CHECK(ft::test::launches_of(dev, [&] {
            loss = ft::sum(ft::nn::functional::selu(x) + ft::nn::functional::celu(x) + ft::nn::functional::softsign(x) +
                           ft::nn::functional::tanhshrink(x) + ft::nn::functional::softshrink(x) +
                           ft::nn::functional::hardshrink(x) + ft::nn::functional::logsigmoid(x) +
                           ft::nn::functional::threshold(x, 0.1, 1.0));
          }) == 1);
    CHECK(ft::test::launches_of(dev, [&] { loss.backward(); }) == 1);
    // bad arguments name the op and the shapes
    CHECK_THROWS_WITH_AS(glu(ft::zeros<float>({2, 3}, dev)), doctest::Contains("glu: Halving dimension must be even"),
                         ft::Error);
    CHECK_THROWS_WITH_AS(prelu3(ft::zeros<float>({2, 4, 5}, dev)),
                         doctest::Contains("channel size = 4 (input [2, 4, 5])"), ft::Error);
    CHECK_THROWS_WITH_AS(ft::nn::functional::softshrink(x, -1.0), doctest::Contains("softshrink"), ft::Error);
    CHECK_THROWS_AS(ft::nn::RReLU(0.5, 0.1), ft::Error);
  }
}

TEST_CASE("RReLU in training: a slope in [lower, upper] per negative element, the same in the backward") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::RReLU rrelu(0.1, 0.3, 7);
    ft::Var<float, 1> x(ft::from_vector<float>(std::vector<float>(4096, -2.0f), {4096}, dev), ft::requires_grad);
    ft::Var<float, 1> y = rrelu(x);
    ft::Var<float, 0>(ft::sum(y)).backward();
    const auto yv = y.value().to_vector(), gv = x.grad().to_vector();
    double mean = 0;
    for (std::size_t i = 0; i < yv.size(); ++i) {
      const double slope = yv[i] / -2.0;
      REQUIRE(slope >= 0.1 - 1e-7);
      REQUIRE(slope <= 0.3 + 1e-7);
      REQUIRE(gv[i] == doctest::Approx(slope).epsilon(1e-6));  // the backward regenerates the draw
      mean += slope / static_cast<double>(yv.size());
    }
    CHECK(mean == doctest::Approx(0.2).epsilon(0.02));
    ft::Var<float, 1> again = rrelu(x);  // a new draw each call; positive inputs pass unchanged
    CHECK(again.value().to_vector() != yv);
    auto pos = ft::from_vector<float>({0.5f, 3.0f}, {2}, dev);
    CHECK(ft::Tensor<float, 1>(rrelu(pos)).to_vector() == std::vector<float>{0.5f, 3.0f});
  }
}

TEST_CASE("MaxPool1d, AvgPool1d, adaptive pools, InstanceNorm1d/3d and LocalResponseNorm match PyTorch") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::MaxPool1d mp(3, 2, 1), mp_dilated(2, 2, 0, 2, /*ceil=*/true);
    check_layer<3>("maxpool1d", mp, dev);
    check_layer<3>("maxpool1d_dilated_ceil", mp_dilated, dev);
    ft::nn::AvgPool1d ap(3, 2, 1, false, /*include_pad=*/false), ap2(2);
    check_layer<3>("avgpool1d", ap, dev);
    check_layer<2>("avgpool1d_unbatched", ap2, dev);
    ft::nn::AdaptiveAvgPool1d aap(4);
    check_layer<3>("adaptive_avgpool1d", aap, dev);
    ft::nn::InstanceNorm1d<float> in1(3, 1e-5, true, dev);
    check_layer<3>("instancenorm1d", in1, dev, 1e-4);
    ft::nn::InstanceNorm3d<float> in3(2, 1e-3, false, dev);
    check_layer<5>("instancenorm3d", in3, dev, 1e-4);
    ft::nn::LocalResponseNorm lrn(3, 0.3, 0.6, 1.5), lrn_even(2, 0.5);
    check_layer<3>("lrn", lrn, dev, 1e-4);
    check_layer<4>("lrn_4d_even", lrn_even, dev, 1e-4);
    ft::nn::AdaptiveMaxPool2d amp({3, 2}), amp_global(1);
    check_layer<4>("adaptive_maxpool", amp, dev);
    check_layer<4>("adaptive_maxpool_global", amp_global, dev);
    ft::nn::AdaptiveMaxPool1d amp1(4);
    check_layer<3>("adaptive_maxpool1d", amp1, dev);
    // the pools are the 2-d kernels over a view: one launch forward
    ft::Var<float, 3> x(ft::test::random_tensor<float>({2, 3, 9}, dev, 6), ft::requires_grad);
    ft::Var<float, 3> y;
    CHECK(ft::test::launches_of(dev, [&] { y = mp(x); }) == 1);
    CHECK_THROWS_WITH_AS(in1(ft::zeros<float>({2, 4, 5}, dev)),
                         doctest::Contains("InstanceNorm1d: expected 3 channels"), ft::Error);
  }
}

TEST_CASE("GroupNorm, InstanceNorm2d, PixelShuffle and Upsample match PyTorch") {
  for (ft::Device dev : ft::test::devices()) {
    ft::nn::GroupNorm<float> gn(2, 6, 1e-5, true, dev), gn_plain(3, 6, 1e-3, false, dev);
    check_layer<4>("groupnorm", gn, dev, 1e-4);
    check_layer<3>("groupnorm_plain", gn_plain, dev, 1e-4);
    ft::nn::InstanceNorm2d<float> in(3, 1e-5, true, dev), in_plain(3, 1e-5, false, dev);
    check_layer<4>("instancenorm", in, dev, 1e-4);
    check_layer<4>("instancenorm_plain", in_plain, dev, 1e-4);
    ft::nn::PixelShuffle shuffle(2);
    check_layer<4>("pixel_shuffle", shuffle, dev);
    ft::nn::Upsample up(2.0), up_bilinear(std::array<ft::index_t, 2>{5, 7}, "bilinear");
    check_layer<4>("upsample", up, dev);
    check_layer<4>("upsample_bilinear", up_bilinear, dev, 1e-4);
  }
  CHECK_THROWS_WITH_AS(ft::nn::GroupNorm<float>(4, 6), doctest::Contains("divisible"), ft::Error);
  ft::nn::InstanceNorm2d<float> in(3);
  CHECK_THROWS_WITH_AS(in.forward(ft::zeros<float>({1, 4, 2, 2})), doctest::Contains("channels"), ft::Error);
}

// ---- the module machinery ----
namespace {
struct Net : ft::nn::Module<Net> {
  ft::nn::Linear<float> fc1{4, 8}, fc2{8, 3};
  ft::nn::BatchNorm1d<float> bn{8};
  ft::nn::Dropout drop{0.5, 11};
  template <class V>
  void visit(V&& v) {
    v("fc1", fc1);
    v("bn", bn);
    v("drop", drop);
    v("fc2", fc2);
  }
  template <class X>
  auto forward(const X& x) {
    return fc2(drop(ft::relu(bn(fc1(x)))));
  }
};
}  // namespace

TEST_CASE("named_parameters, state_dict and strict load_state_dict use PyTorch's names") {
  Net net;
  std::vector<std::string> names;
  for (auto& [n, p] : net.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"});
  CHECK(net.parameters().size() == 6);
  CHECK(net.num_parameters() == 4 * 8 + 8 + 8 + 8 + 8 * 3 + 3);
  auto keys = net.state_dict().keys();
  CHECK(keys == std::vector<std::string>{"fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                         "bn.running_var", "bn.num_batches_tracked", "fc2.weight", "fc2.bias"});

  // round trip into a differently initialised net: same outputs
  Net other;
  auto x = ft::randn<float>({5, 4}, ft::kCPU, 3);
  net.eval();
  other.eval();
  other.load_state_dict(net.state_dict());
  ft::Var<float, 2> a = net(x), b = other(x);
  CHECK(a.value().to_vector() == b.value().to_vector());

  // strict errors: missing, unexpected, shape mismatch
  auto sd = net.state_dict();
  ft::nn::StateDict missing, extra = sd, wrong;
  for (const auto& [k, t] : sd)
    if (k != "fc2.bias") missing.insert(k, t);
  extra.insert("fc3.weight", sd.at("fc2.weight"));
  for (const auto& [k, t] : sd) wrong.insert(k, k == "fc1.weight" ? ft::AnyTensor(ft::zeros<float>({8, 5})) : t);
  CHECK_THROWS_WITH_AS(other.load_state_dict(missing), doctest::Contains("missing keys [\"fc2.bias\"]"), ft::Error);
  CHECK_THROWS_WITH_AS(other.load_state_dict(extra), doctest::Contains("unexpected keys [\"fc3.weight\"]"), ft::Error);
  CHECK_THROWS_WITH_AS(other.load_state_dict(wrong), doctest::Contains("fc1.weight"), ft::Error);
  CHECK_NOTHROW(other.load_state_dict(missing, false));
  CHECK_NOTHROW(other.load_state_dict(extra, false));
}

TEST_CASE("train() and eval() switch BatchNorm and Dropout") {
  Net net;
  auto x = ft::randn<float>({16, 4}, ft::kCPU, 4);
  CHECK(net.is_training());
  CHECK(net.bn.is_training());
  ft::Var<float, 2> t1 = net(x), t2 = net(x);
  CHECK(t1.value().to_vector() != t2.value().to_vector());  // new dropout masks, moving statistics
  CHECK(net.bn.num_batches_tracked.item() == 2);
  net.eval();
  CHECK(!net.bn.is_training());
  CHECK(!net.drop.is_training());
  const auto rm = net.bn.running_mean.to_vector();
  ft::Var<float, 2> e1 = net(x), e2 = net(x);
  CHECK(e1.value().to_vector() == e2.value().to_vector());  // deterministic in eval
  CHECK(net.bn.running_mean.to_vector() == rm);             // statistics frozen
  CHECK(net.bn.num_batches_tracked.item() == 2);
  net.train();
  CHECK(net.drop.is_training());
}

TEST_CASE("Dropout: reproducible by seed, drops about p, scales by 1/(1-p), fused") {
  auto x = ft::ones<float>({1000, 100});
  ft::nn::Dropout d1(0.3, 42), d2(0.3, 42);
  ft::Tensor<float, 2> a = d1(x), b = d2(x);
  CHECK(a.to_vector() == b.to_vector());
  const double zeros = ft::sum(ft::cast<float>(a == 0.0f)).item();
  CHECK(zeros / 1e5 == doctest::Approx(0.3).epsilon(0.02));
  CHECK(ft::max(a).item() == doctest::Approx(1 / 0.7));
  ft::Tensor<float, 2> c = d1(x);
  CHECK(c.to_vector() != a.to_vector());  // each call draws a new mask
  // the mask is generated inside the consuming kernel: relu(dropout(x) * 2) is one launch
  ft::Tensor<float, 2> out;
  CHECK(ft::test::launches_of(ft::kCPU, [&] { out = ft::relu(d1(x) * 2.0f); }) == 1);
  // gradient: the same mask, scaled
  ft::Var<float, 2> v(x, ft::requires_grad);
  ft::nn::Dropout d3(0.5, 9);
  ft::Var<float, 0> s = ft::sum(d3(v));
  s.backward();
  d3.manual_seed(9);
  ft::Tensor<float, 2> mask = d3(x);
  CHECK(v.grad().to_vector() == mask.to_vector());
  d1.eval();
  ft::Tensor<float, 2> e = d1(x);
  CHECK(ft::all(e == 1.0f).item());
  CHECK_THROWS_AS(ft::nn::Dropout(1.5), ft::Error);
}

TEST_CASE("Linear then ReLU: the GEMM plus one fused kernel") {
  ft::nn::Linear<float> fc(64, 32);
  auto x = ft::randn<float>({16, 64}, ft::kCPU, 5);
  ft::Var<float, 2> y;
  // GEMM (1) and the bias + relu kernel (1)
  CHECK(ft::test::launches_of(ft::kCPU, [&] { y = ft::relu(fc(x)); }) == 2);
  auto want = ft::relu(ft::matmul(x, fc.weight.value().transpose(0, 1)) + fc.bias.value());
  ft::Tensor<float, 2> w = want;
  ft::test::check_close(y.value(), ft::test::to_double(w), 1e-5, 1e-6);
}

TEST_CASE("default initialisation follows PyTorch's distributions") {
  ft::manual_seed(123);
  ft::nn::Linear<float> fc(400, 300);
  const double bound = 1.0 / std::sqrt(400.0);
  CHECK(ft::max(fc.weight).item() <= bound);
  CHECK(ft::min(fc.weight).item() >= -bound);
  CHECK(ft::max(fc.weight).item() > 0.99 * bound);
  // U(-b, b) has standard deviation b/√3
  CHECK(ft::std(fc.weight).item() == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  CHECK(ft::max(ft::abs(fc.bias)).item() <= bound);
  ft::nn::Conv2d<float> conv(16, 32, 3);
  const double cb = 1.0 / std::sqrt(16.0 * 9);
  CHECK(ft::max(ft::abs(conv.weight)).item() <= cb);
  ft::nn::Embedding<float> emb(1000, 64, 0);
  CHECK(ft::std(emb.weight).item() == doctest::Approx(1.0).epsilon(0.03));
  CHECK(ft::all(emb.weight.value().select(0, 0) == 0.0f).item());

  ft::Tensor<float, 2> w(ft::Shape<2>{200, 100}, ft::kCPU);
  ft::nn::init::xavier_uniform_(w);
  CHECK(ft::max(ft::abs(w)).item() <= std::sqrt(6.0 / 300));
  ft::nn::init::kaiming_normal_(w, 0.0, ft::nn::init::FanMode::FanIn, ft::nn::init::Nonlinearity::Relu);
  CHECK(ft::std(w).item() == doctest::Approx(std::sqrt(2.0 / 100)).epsilon(0.03));
  ft::nn::init::xavier_normal_(w, 2.0);
  CHECK(ft::std(w).item() == doctest::Approx(2.0 * std::sqrt(2.0 / 300)).epsilon(0.03));
  ft::nn::init::constant_(w, 0.25);
  CHECK(ft::all(w == 0.25f).item());
  CHECK(ft::nn::init::calculate_gain(ft::nn::init::Nonlinearity::Tanh) == doctest::Approx(5.0 / 3));
  // reproducible: the same seed gives the same model
  ft::manual_seed(7);
  ft::nn::Linear<float> a(10, 10);
  ft::manual_seed(7);
  ft::nn::Linear<float> b(10, 10);
  CHECK(a.weight.value().to_vector() == b.weight.value().to_vector());
}

TEST_CASE("ModuleList and Sequential compose; to(device) moves everything") {
  ft::nn::ModuleList<ft::nn::Linear<float>> layers;
  for (int i = 0; i < 3; ++i) layers.emplace_back(4, 4);
  CHECK(layers.size() == 3);
  CHECK(layers.named_parameters()[2].first == "1.weight");
  ft::nn::Sequential<ft::nn::Linear<float>, ft::nn::Tanh, ft::nn::Identity> seq(ft::nn::Linear<float>(4, 2),
                                                                                ft::nn::Tanh(), ft::nn::Identity());
  CHECK(seq.named_parameters()[0].first == "0.weight");
  CHECK(seq.get<0>().out_features() == 2);
  auto x = ft::randn<float>({3, 4}, ft::kCPU, 1);
  ft::Var<float, 2> y = seq(x);
  CHECK(y.size(1) == 2);
  CHECK_THROWS_AS(layers[5], ft::Error);
  for (ft::Device dev : ft::test::devices()) {
    Net net;
    net.to(dev);
    for (const auto& [k, t] : net.state_dict()) CHECK(t.device() == dev);
    ft::Var<float, 2> out = net(ft::randn<float>({4, 4}, dev, 2));
    CHECK(out.device() == dev);
  }
}

TEST_CASE("layer input errors are ft::Error naming the layer") {
  ft::nn::Linear<float> fc(4, 3);
  CHECK_THROWS_AS(fc(ft::zeros<float>({2, 5})), ft::Error);
  ft::nn::BatchNorm1d<float> bn(4);
  CHECK_THROWS_WITH_AS(bn(ft::zeros<float>({2, 5})), doctest::Contains("BatchNorm"), ft::Error);
  CHECK_THROWS_WITH_AS(bn(ft::zeros<float>({1, 4})), doctest::Contains("more than 1 value"), ft::Error);
  ft::nn::Embedding<float> emb(5, 2);
  CHECK_THROWS_WITH_AS(emb(ft::arange<std::int64_t>(0, 6)), doctest::Contains("out of range"), ft::Error);
  CHECK_THROWS_AS(ft::nn::Conv2d<float>(3, 4, 3, {.groups = 2}), ft::Error);
}
