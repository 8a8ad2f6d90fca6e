// Every option struct and Pair-taking constructor of the public API, built the way users write
// them (defaults, designated initialisers) and read back. This file is compiled at -O2 with
// -march=x86-64-v4: GCC 12 under AVX-512 has miscompiled a ≥ 32-byte aggregate copied from
// constants like {a, a, 0, 0} into {a, a, a, a} (nn::Conv2d{6, 16, 5} got padding (1, 0)), and
// tests at -O1 or without AVX-512 cannot see it. The library takes options by const reference.
#include "common.hpp"
#include "ft/ft.hpp"  // the whole library, as users include it
#include "generator_bits.hpp"

namespace {
void check_pair(const ft::Pair& p, ft::index_t h, ft::index_t w) {
  CHECK(p.h == h);
  CHECK(p.w == w);
}
}  // namespace

TEST_CASE("Conv2d keeps the options it was given, defaults included") {
  ft::nn::Conv2d<float> c1{1, 6, 5};
  ft::nn::Conv2d<float> c2{6, 16, 5};
  for (auto* c : {&c1, &c2}) {
    check_pair(c->options.stride, 1, 1);
    check_pair(c->options.padding, 0, 0);
    check_pair(c->options.dilation, 1, 1);
    CHECK(c->options.groups == 1);
  }
  ft::nn::Conv2d<float> c3{6, 16, 5, {.stride = 2}};
  check_pair(c3.options.stride, 2, 2);
  check_pair(c3.options.padding, 0, 0);
  ft::nn::Conv2d<float> c4{4, 8, {3, 1}, {.padding = {1, 2}, .dilation = 2, .groups = 2}};
  check_pair(c4.options.stride, 1, 1);
  check_pair(c4.options.padding, 1, 2);
  check_pair(c4.options.dilation, 2, 2);
  CHECK(c4.options.groups == 2);
  CHECK(c4.weight.shape() == ft::Shape<4>{8, 2, 3, 1});
  // a LeNet's second convolution: 14×14 in, 10×10 out
  ft::Tensor<float, 4> x = ft::zeros<float>({1, 6, 14, 14});
  CHECK(ft::eval(c2.forward(x)).shape() == ft::Shape<4>{1, 16, 10, 10});
  CHECK(ft::conv2d(x, c2.weight.value(), {.padding = 1}).shape() == ft::Shape<4>{1, 16, 12, 12});
}

TEST_CASE("Conv1d and ConvTranspose2d keep the options they were given, defaults included") {
  ft::nn::Conv1d<float> c1{6, 16, 5};
  CHECK(c1.options.stride == 1);
  CHECK(c1.options.padding == 0);
  CHECK(c1.options.dilation == 1);
  CHECK(c1.options.groups == 1);
  ft::nn::Conv1d<float> c2{4, 8, 3, {.stride = 2, .padding = 1, .groups = 2}};
  CHECK(c2.options.stride == 2);
  CHECK(c2.options.padding == 1);
  CHECK(c2.options.dilation == 1);
  CHECK(c2.options.groups == 2);
  CHECK(c2.weight.shape() == ft::Shape<3>{8, 2, 3});
  CHECK(ft::eval(c2.forward(ft::zeros<float>({1, 4, 9}))).shape() == ft::Shape<3>{1, 8, 5});
  ft::nn::ConvTranspose2d<float> t1{16, 6, 5};
  check_pair(t1.options.stride, 1, 1);
  check_pair(t1.options.padding, 0, 0);
  check_pair(t1.options.output_padding, 0, 0);
  check_pair(t1.options.dilation, 1, 1);
  CHECK(t1.options.groups == 1);
  ft::nn::ConvTranspose2d<float> t2{4, 8, {3, 1}, {.stride = 2, .padding = {1, 0}, .output_padding = 1, .groups = 2}};
  check_pair(t2.options.stride, 2, 2);
  check_pair(t2.options.padding, 1, 0);
  check_pair(t2.options.output_padding, 1, 1);
  check_pair(t2.options.dilation, 1, 1);
  CHECK(t2.options.groups == 2);
  CHECK(t2.weight.shape() == ft::Shape<4>{4, 4, 3, 1});
  // a DCGAN-style 2x upsampler: 7×7 in, 14×14 out
  ft::Tensor<float, 4> x = ft::zeros<float>({1, 4, 7, 7});
  CHECK(ft::eval(t2.forward(x)).shape() == ft::Shape<4>{1, 8, 14, 14});
  CHECK(ft::conv_transpose2d(x, t2.weight.value(), {.stride = 2}).shape() == ft::Shape<4>{1, 4, 15, 13});
}

TEST_CASE("pooling modules keep their Pairs") {
  ft::nn::MaxPool2d m1(3);
  check_pair(m1.kernel_size, 3, 3);
  check_pair(m1.stride, 3, 3);
  check_pair(m1.padding, 0, 0);
  check_pair(m1.dilation, 1, 1);
  CHECK(!m1.ceil_mode);
  ft::nn::MaxPool2d m2(2, 1, {1, 0});
  check_pair(m2.stride, 1, 1);
  check_pair(m2.padding, 1, 0);
  ft::nn::AvgPool2d a1(2);
  check_pair(a1.kernel_size, 2, 2);
  check_pair(a1.stride, 2, 2);
  check_pair(a1.padding, 0, 0);
  CHECK(a1.count_include_pad);
}

TEST_CASE("BatchNorm, optimizers, schedulers and loaders keep their options") {
  ft::nn::BatchNorm2d<float> bn1(4);
  CHECK(bn1.options.eps == 1e-5);
  CHECK(bn1.options.momentum == 0.1);
  CHECK(bn1.options.affine);
  ft::nn::BatchNorm2d<float> bn2(4, {.momentum = std::nullopt, .affine = false});
  CHECK(bn2.options.eps == 1e-5);
  CHECK(!bn2.options.momentum.has_value());
  CHECK(!bn2.options.affine);
  CHECK(bn2.options.track_running_stats);

  ft::nn::Linear<float> fc(3, 2);
  ft::optim::SGD sgd(fc.parameters(), {.lr = 0.1, .momentum = 0.9});
  CHECK(sgd.defaults().lr == 0.1);
  CHECK(sgd.defaults().momentum == 0.9);
  CHECK(sgd.defaults().dampening == 0);
  CHECK(sgd.defaults().weight_decay == 0);
  CHECK(!sgd.defaults().nesterov);
  ft::optim::Adam adam(fc.parameters(), {.lr = 0.01});
  CHECK(adam.defaults().betas == std::pair<double, double>{0.9, 0.999});
  CHECK(adam.defaults().eps == 1e-8);
  CHECK(adam.defaults().weight_decay == 0);
  ft::optim::AdamW adamw(fc.parameters());
  CHECK(adamw.defaults().lr == 1e-3);
  CHECK(adamw.defaults().weight_decay == 0.01);
  ft::optim::LBFGS lbfgs(fc.parameters(), {.lr = 0.5});
  CHECK(lbfgs.options().lr == 0.5);
  CHECK(lbfgs.options().max_iter == 20);
  CHECK(lbfgs.options().history_size == 100);

  ft::optim::LinearLR linear(sgd, {.start_factor = 0.5});
  CHECK(sgd.lr() == doctest::Approx(0.05));

  auto data = ft::data::TensorDataset(ft::zeros<float>({10, 2}), ft::zeros<float>({10}));
  ft::data::DataLoader loader(data, {.batch_size = 4, .drop_last = true});
  CHECK(loader.options().batch_size == 4);
  CHECK(!loader.options().shuffle);
  CHECK(loader.options().drop_last);
  CHECK(loader.options().num_workers == 0);
  CHECK(loader.options().prefetch_factor == 2);
  CHECK(loader.len() == 2);
}

TEST_CASE("cross_entropy's options reach the loss") {
  auto logits = ft::from_vector<float>({1, 2, 3, 1, 2, 3}, {2, 3});
  auto target = ft::from_vector<std::int64_t>({2, 0}, {2});
  const float mean = ft::cross_entropy(logits, target).item();
  const float first = ft::cross_entropy(logits, target, {.ignore_index = 0}).item();
  const float sum = ft::cross_entropy(logits, target, {.reduction = ft::Reduction::Sum}).item();
  CHECK(first == doctest::Approx(0.4076059644));
  CHECK(mean == doctest::Approx((0.4076059644 + 2.4076059644) / 2));
  CHECK(sum == doctest::Approx(0.4076059644 + 2.4076059644));
}
