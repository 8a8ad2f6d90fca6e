// Parameter initialisers, as torch.nn.init: each fills a tensor (or a Var's value) in place,
// in one launch, from Philox with `seed` (ft::next_seed() unless given, so ft::manual_seed
// makes a model's initialisation reproducible). Gains and fans follow PyTorch's definitions.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>

#include "ft/autograd/var.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/factories.hpp"

namespace ft::inline FT_ABI::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Conv, Sigmoid, Tanh, Relu, LeakyRelu, Selu };

// The recommended gain for a nonlinearity (torch.nn.init.calculate_gain); `param` is
// LeakyReLU's negative slope.
inline double calculate_gain(Nonlinearity nl, double param = 0.01) {
  switch (nl) {
    case Nonlinearity::Tanh:
      return 5.0 / 3.0;
    case Nonlinearity::Relu:
      return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu:
      return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::Selu:
      return 3.0 / 4.0;
    default:
      return 1.0;  // linear, conv, sigmoid
  }
}

// (fan_in, fan_out) of a weight [out, in, k...]: in·receptive field and out·receptive field.
template <class T, int R>
std::pair<index_t, index_t> calculate_fan_in_and_fan_out(const Tensor<T, R>& t) {
  static_assert(R >= 2, "ft::nn::init: fan in and fan out need a tensor of rank 2 or more");
  index_t receptive = 1;
  for (int d = 2; d < R; ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

namespace detail {
template <class T, int R, class F>
Tensor<T, R>& fill(Tensor<T, R>& t, F f) {
  t = Generator<F, R>(f, t.shape(), t.device());
  return t;
}
template <class T, int R>
index_t fan(const Tensor<T, R>& t, FanMode mode) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return mode == FanMode::FanIn ? in : out;
}
}  // namespace detail

template <class T, int R>
Tensor<T, R>& uniform_(Tensor<T, R>& t, double a = 0.0, double b = 1.0, std::uint64_t seed = next_seed()) {
  return detail::fill(t, gen::Uniform<T>{seed, static_cast<T>(a), static_cast<T>(b)});
}
template <class T, int R>
Tensor<T, R>& normal_(Tensor<T, R>& t, double mean = 0.0, double std = 1.0, std::uint64_t seed = next_seed()) {
  return detail::fill(t, gen::Normal<T>{seed, static_cast<T>(mean), static_cast<T>(std)});
}
template <class T, int R>
Tensor<T, R>& constant_(Tensor<T, R>& t, double value) {
  t = static_cast<T>(value);
  return t;
}
template <class T, int R>
Tensor<T, R>& zeros_(Tensor<T, R>& t) {
  return constant_(t, 0.0);
}
template <class T, int R>
Tensor<T, R>& ones_(Tensor<T, R>& t) {
  return constant_(t, 1.0);
}
// U(±gain·√(6 / (fan_in + fan_out))).
template <class T, int R>
Tensor<T, R>& xavier_uniform_(Tensor<T, R>& t, double gain = 1.0, std::uint64_t seed = next_seed()) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  return uniform_(t, -bound, bound, seed);
}
// N(0, gain²·2 / (fan_in + fan_out)).
template <class T, int R>
Tensor<T, R>& xavier_normal_(Tensor<T, R>& t, double gain = 1.0, std::uint64_t seed = next_seed()) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)), seed);
}
// U(±gain·√(3 / fan)) with gain = calculate_gain(nonlinearity, a).
template <class T, int R>
Tensor<T, R>& kaiming_uniform_(Tensor<T, R>& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                               Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, std::uint64_t seed = next_seed()) {
  const double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / static_cast<double>(detail::fan(t, mode)));
  return uniform_(t, -bound, bound, seed);
}
// N(0, (gain / √fan)²).
template <class T, int R>
Tensor<T, R>& kaiming_normal_(Tensor<T, R>& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                              Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, std::uint64_t seed = next_seed()) {
  return normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(detail::fan(t, mode))), seed);
}

// The same on a Var's value (untracked, as PyTorch's init under no_grad).
#define FT_INIT_ON_VAR(fn)                 \
  template <class T, int R, class... A>    \
  Var<T, R>& fn(Var<T, R>& v, A... args) { \
    fn(v.data(), args...);                 \
    return v;                              \
  }
FT_INIT_ON_VAR(uniform_)
FT_INIT_ON_VAR(normal_)
FT_INIT_ON_VAR(constant_)
FT_INIT_ON_VAR(zeros_)
FT_INIT_ON_VAR(ones_)
FT_INIT_ON_VAR(xavier_uniform_)
FT_INIT_ON_VAR(xavier_normal_)
FT_INIT_ON_VAR(kaiming_uniform_)
FT_INIT_ON_VAR(kaiming_normal_)
#undef FT_INIT_ON_VAR

}  // namespace ft::inline FT_ABI::nn::init
