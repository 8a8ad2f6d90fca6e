// The layers of ft::nn, as torch.nn's: same names, arguments, parameter names and default
// initialisation. forward() returns an expression where the layer is elementwise (bias
// addition, activations, Dropout), so it fuses into the next statement; layers with a
// boundary op (GEMM, convolution, pooling, normalisation) return a Var.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/philox.hpp"
#include "ft/linalg/conv.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/linalg/pool.hpp"
#include "ft/linalg/rowwise.hpp"
#include "ft/nn/embedding.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/module.hpp"
#include "ft/ops/structure.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {
// A parameter with its initial value: a leaf that requires grad.
template <class T, int R>
Var<T, R> parameter(const Tensor<T, R>& init) {
  return Var<T, R>(init, requires_grad);
}
template <class X>
using value_t = float_promote_t<typename X::value_type>;
}  // namespace detail

// ---- Linear: y = x·Wᵀ + b ----
// weight [out, in] ~ kaiming_uniform(a = √5) = U(±1/√in); bias [out] ~ U(±1/√in).
template <class T = float>
class Linear : public Module<Linear<T>> {
 public:
  Var<T, 2> weight;
  Var<T, 1> bias;  // undefined without bias

  Linear() = default;
  Linear(index_t in_features, index_t out_features, bool has_bias = true, Device device = kCPU) {
    check(in_features >= 0 && out_features >= 0, "Linear", "negative size (", in_features, ", ", out_features, ")");
    Tensor<T, 2> w(Shape<2>{out_features, in_features}, device);
    init::kaiming_uniform_(w, std::sqrt(5.0));
    weight = detail::parameter(w);
    if (has_bias) {
      const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0.0;
      Tensor<T, 1> b(Shape<1>{out_features}, device);
      init::uniform_(b, -bound, bound);
      bias = detail::parameter(b);
    }
  }
  index_t in_features() const { return weight.size(1); }
  index_t out_features() const { return weight.size(0); }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  // x [..., in] → [..., out]: the GEMM, plus the bias as a lazy broadcast that fuses into
  // whatever reads the result (an activation, a loss).
  template <Expression X>
  auto forward(const X& x) {
    return ft::linear(autograd::to_var(x), weight) + bias_or_zero();
  }

 private:
  Var<T, 1> bias_or_zero() {
    if (bias.defined()) return bias;
    if (!zero_.defined() || zero_.device() != weight.device() || zero_.size(0) != weight.size(0))
      zero_ = Var<T, 1>(ft::zeros<T>(Shape<1>{weight.size(0)}, weight.device()));
    return zero_;
  }
  Var<T, 1> zero_;  // a constant: the bias of a Linear without one
};

// ---- convolutions ----
namespace detail {
// In and out channels must divide into the groups (checked before the weight's shape divides).
inline void check_conv_groups(const char* op, index_t in_channels, index_t out_channels, index_t groups) {
  check(groups > 0 && in_channels % groups == 0 && out_channels % groups == 0, op, "in_channels (", in_channels,
        ") and out_channels (", out_channels, ") must be divisible by groups (", groups, ")");
}
// A convolution's parameters as torch's _ConvNd.reset_parameters makes them: the weight of shape
// `w_shape` ~ kaiming_uniform(a = √5), the bias [out_channels] ~ U(±1/√fan_in) with fan_in read
// from the weight (dims 1…).
template <class T, int R>
void init_conv_parameters(const Shape<R>& w_shape, index_t out_channels, bool has_bias, Device device,
                          Var<T, R>& weight, Var<T, 1>& bias) {
  Tensor<T, R> w(w_shape, device);
  init::kaiming_uniform_(w, std::sqrt(5.0));
  weight = parameter(w);
  if (has_bias) {
    const index_t fan_in = init::calculate_fan_in_and_fan_out(w).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    Tensor<T, 1> b(Shape<1>{out_channels}, device);
    init::uniform_(b, -bound, bound);
    bias = parameter(b);
  }
}
}  // namespace detail

// ---- Conv2d ----
// weight [out, in/groups, kh, kw] ~ kaiming_uniform(a = √5); bias [out] ~ U(±1/√fan_in).
template <class T = float>
class Conv2d : public Module<Conv2d<T>> {
 public:
  Var<T, 4> weight;
  Var<T, 1> bias;
  Conv2dOptions options;

  Conv2d() = default;
  Conv2d(index_t in_channels, index_t out_channels, Pair kernel_size, const Conv2dOptions& opts = {},
         bool has_bias = true, Device device = kCPU)
      : options(opts) {
    detail::check_conv_groups("Conv2d", in_channels, out_channels, opts.groups);
    detail::init_conv_parameters(Shape<4>{out_channels, in_channels / opts.groups, kernel_size.h, kernel_size.w},
                                 out_channels, has_bias, device, weight, bias);
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  template <Expression X>
  Var<T, 4> forward(const X& x) {
    auto vx = autograd::to_var(x);
    return bias.defined() ? ft::conv2d(vx, weight, bias, options) : ft::conv2d(vx, weight, options);
  }
};

// ---- Conv1d ----
// weight [out, in/groups, k] ~ kaiming_uniform(a = √5); bias [out] ~ U(±1/√fan_in).
template <class T = float>
class Conv1d : public Module<Conv1d<T>> {
 public:
  Var<T, 3> weight;
  Var<T, 1> bias;
  Conv1dOptions options;

  Conv1d() = default;
  Conv1d(index_t in_channels, index_t out_channels, index_t kernel_size, const Conv1dOptions& opts = {},
         bool has_bias = true, Device device = kCPU)
      : options(opts) {
    detail::check_conv_groups("Conv1d", in_channels, out_channels, opts.groups);
    detail::init_conv_parameters(Shape<3>{out_channels, in_channels / opts.groups, kernel_size}, out_channels, has_bias,
                                 device, weight, bias);
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  template <Expression X>
  Var<T, 3> forward(const X& x) {
    auto vx = autograd::to_var(x);
    return bias.defined() ? ft::conv1d(vx, weight, bias, options) : ft::conv1d(vx, weight, options);
  }
};

// ---- ConvTranspose2d ----
// weight [in, out/groups, kh, kw] ~ kaiming_uniform(a = √5) and bias [out] ~ U(±1/√fan_in), as
// torch's _ConvNd: fan_in is read from the weight's dim 1, here out/groups · kh · kw.
template <class T = float>
class ConvTranspose2d : public Module<ConvTranspose2d<T>> {
 public:
  Var<T, 4> weight;
  Var<T, 1> bias;
  ConvTranspose2dOptions options;

  ConvTranspose2d() = default;
  ConvTranspose2d(index_t in_channels, index_t out_channels, Pair kernel_size, const ConvTranspose2dOptions& opts = {},
                  bool has_bias = true, Device device = kCPU)
      : options(opts) {
    detail::check_conv_groups("ConvTranspose2d", in_channels, out_channels, opts.groups);
    detail::init_conv_parameters(Shape<4>{in_channels, out_channels / opts.groups, kernel_size.h, kernel_size.w},
                                 out_channels, has_bias, device, weight, bias);
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  template <Expression X>
  Var<T, 4> forward(const X& x) {
    auto vx = autograd::to_var(x);
    return bias.defined() ? ft::conv_transpose2d(vx, weight, bias, options) : ft::conv_transpose2d(vx, weight, options);
  }
};

// ---- pooling ----
class MaxPool2d : public Stateless<MaxPool2d> {
 public:
  Pair kernel_size, stride, padding, dilation;
  bool ceil_mode;
  // stride defaults to kernel_size, as PyTorch's stride=None.
  explicit MaxPool2d(Pair kernel, std::optional<Pair> stride_ = std::nullopt, Pair padding_ = 0, Pair dilation_ = 1,
                     bool ceil = false)
      : kernel_size(kernel),
        stride(stride_.value_or(kernel)),
        padding(padding_),
        dilation(dilation_),
        ceil_mode(ceil) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode);
  }
};

class AvgPool2d : public Stateless<AvgPool2d> {
 public:
  Pair kernel_size, stride, padding;
  bool ceil_mode, count_include_pad;
  explicit AvgPool2d(Pair kernel, std::optional<Pair> stride_ = std::nullopt, Pair padding_ = 0, bool ceil = false,
                     bool include_pad = true)
      : kernel_size(kernel),
        stride(stride_.value_or(kernel)),
        padding(padding_),
        ceil_mode(ceil),
        count_include_pad(include_pad) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad);
  }
};

class AdaptiveAvgPool2d : public Stateless<AdaptiveAvgPool2d> {
 public:
  Pair output_size;
  explicit AdaptiveAvgPool2d(Pair size) : output_size(size) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::adaptive_avg_pool2d(x, output_size);
  }
};

class AdaptiveMaxPool2d : public Stateless<AdaptiveMaxPool2d> {
 public:
  Pair output_size;
  explicit AdaptiveMaxPool2d(Pair size) : output_size(size) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::adaptive_max_pool2d(x, output_size);
  }
};

// ---- one-dimensional pooling: [N, C, L] (or [C, L]) pooled along L, as the 2-d pools over
// [N, C, 1, L] (views in and out) ----
namespace detail {
// x [N, C, L] or [C, L] as [N, C, 1, L] (a view of a tensor or Var); `pool` of it; the result
// back to x's rank.
template <Expression X, class Pool>
auto pool1d(const X& x, const char* op, Pool&& pool) {
  constexpr int R = X::rank;
  static_assert(R == 2 || R == 3, "ft::nn::functional: a 1-d pool's input must be [N, C, L] or [C, L]");
  const auto v = ft::detail::sliceable(x);
  const index_t N = R == 3 ? x.shape()[0] : 1, C = x.shape()[R - 2], L = x.shape()[R - 1];
  check(L > 0 || x.shape().numel() == 0, op, "the input ", to_string(x.shape()), " has no positions");
  auto y = pool(v.reshape({N, C, 1, L}));
  const index_t out = y.shape()[3];
  if constexpr (R == 3)
    return y.reshape({N, C, out});
  else
    return y.reshape({C, out});
}
}  // namespace detail

namespace functional {
template <Expression X>
auto max_pool1d(const X& x, index_t kernel, std::optional<index_t> stride = std::nullopt, index_t padding = 0,
                index_t dilation = 1, bool ceil_mode = false) {
  return detail::pool1d(x, "max_pool1d", [&](const auto& x4) {
    return ft::max_pool2d(x4, Pair{1, kernel}, Pair{1, stride.value_or(kernel)}, Pair{0, padding}, Pair{1, dilation},
                          ceil_mode);
  });
}
template <Expression X>
auto avg_pool1d(const X& x, index_t kernel, std::optional<index_t> stride = std::nullopt, index_t padding = 0,
                bool ceil_mode = false, bool count_include_pad = true) {
  return detail::pool1d(x, "avg_pool1d", [&](const auto& x4) {
    return ft::avg_pool2d(x4, Pair{1, kernel}, Pair{1, stride.value_or(kernel)}, Pair{0, padding}, ceil_mode,
                          count_include_pad);
  });
}
template <Expression X>
auto adaptive_avg_pool1d(const X& x, index_t output_size) {
  return detail::pool1d(x, "adaptive_avg_pool1d", [&](const auto& x4) {
    return ft::adaptive_avg_pool2d(x4, Pair{1, output_size});
  });
}
template <Expression X>
auto adaptive_max_pool1d(const X& x, index_t output_size) {
  return detail::pool1d(x, "adaptive_max_pool1d", [&](const auto& x4) {
    return ft::adaptive_max_pool2d(x4, Pair{1, output_size});
  });
}
}  // namespace functional

class MaxPool1d : public Stateless<MaxPool1d> {
 public:
  index_t kernel_size, stride, padding, dilation;
  bool ceil_mode;
  explicit MaxPool1d(index_t kernel, std::optional<index_t> stride_ = std::nullopt, index_t padding_ = 0,
                     index_t dilation_ = 1, bool ceil = false)
      : kernel_size(kernel),
        stride(stride_.value_or(kernel)),
        padding(padding_),
        dilation(dilation_),
        ceil_mode(ceil) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::max_pool1d(x, kernel_size, stride, padding, dilation, ceil_mode);
  }
};
class AvgPool1d : public Stateless<AvgPool1d> {
 public:
  index_t kernel_size, stride, padding;
  bool ceil_mode, count_include_pad;
  explicit AvgPool1d(index_t kernel, std::optional<index_t> stride_ = std::nullopt, index_t padding_ = 0,
                     bool ceil = false, bool include_pad = true)
      : kernel_size(kernel),
        stride(stride_.value_or(kernel)),
        padding(padding_),
        ceil_mode(ceil),
        count_include_pad(include_pad) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::avg_pool1d(x, kernel_size, stride, padding, ceil_mode, count_include_pad);
  }
};
class AdaptiveAvgPool1d : public Stateless<AdaptiveAvgPool1d> {
 public:
  index_t output_size;
  explicit AdaptiveAvgPool1d(index_t size) : output_size(size) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::adaptive_avg_pool1d(x, output_size);
  }
};
class AdaptiveMaxPool1d : public Stateless<AdaptiveMaxPool1d> {
 public:
  index_t output_size;
  explicit AdaptiveMaxPool1d(index_t size) : output_size(size) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::adaptive_max_pool1d(x, output_size);
  }
};

// ---- normalisation ----
struct BatchNormOptions {
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // nullopt: the cumulative average (PyTorch's momentum=None)
  bool affine = true;
  bool track_running_stats = true;
};

// Batch normalisation over the channel dimension 1 of [N, C, ...] with Rank the input rank
// (BatchNorm1d: [N, C] or [N, C, L]; BatchNorm2d: [N, C, H, W]). In training the batch's
// mean and biased variance normalise, and the running statistics move by `momentum` (the
// variance unbiased, as PyTorch); in eval the running statistics normalise. weight = 1,
// bias = 0, running_mean = 0, running_var = 1 initially.
template <class T, int MinRank, int MaxRank>
class BatchNorm : public Module<BatchNorm<T, MinRank, MaxRank>> {
 public:
  Var<T, 1> weight, bias;
  Tensor<T, 1> running_mean, running_var;
  Tensor<std::int64_t, 0> num_batches_tracked;
  BatchNormOptions options;

  BatchNorm() = default;
  explicit BatchNorm(index_t num_features, const BatchNormOptions& opts = {}, Device device = kCPU) : options(opts) {
    if (opts.affine) {
      weight = detail::parameter(ft::ones<T>({num_features}, device));
      bias = detail::parameter(ft::zeros<T>({num_features}, device));
    }
    if (opts.track_running_stats) {
      running_mean = ft::zeros<T>({num_features}, device);
      running_var = ft::ones<T>({num_features}, device);
      num_batches_tracked = ft::zeros<std::int64_t>(Shape<0>{}, device);
    }
    features_ = num_features;
  }
  index_t num_features() const { return features_; }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
    v("running_mean", running_mean);
    v("running_var", running_var);
    v("num_batches_tracked", num_batches_tracked);
  }

  template <Expression X>
  Var<T, X::rank> forward(const X& x) {
    constexpr int R = X::rank;
    static_assert(R >= MinRank && R <= MaxRank,
                  "ft::nn::BatchNorm: wrong input rank (BatchNorm1d: [N, C] or [N, C, L]; "
                  "BatchNorm2d: [N, C, H, W])");
    auto xv = autograd::to_var(x);
    const index_t N = xv.size(0), C = xv.size(1);
    check(C == features_, "BatchNorm", "input ", to_string(xv.shape()), " has ", C, " channels, the layer expects ",
          features_);
    const index_t L = N * C > 0 ? xv.numel() / (N * C) : 0;
    index_t sizes[R];
    for (int d = 0; d < R; ++d) sizes[d] = xv.size(d);
    if (!this->is_training() && running_mean.defined()) {
      Var<T, R> y;
      {
        autograd::trace::Pause pause;  // traced as one BatchNormalization node (inference form)
        Var<T, 3> x3 = xv.reshape({N, C, L});
        y = affine(x3, Var<T, 3>(running_mean.reshape({1, C, 1})), Var<T, 3>(running_var.reshape({1, C, 1})))
                .reshape(sizes);
      }
      autograd::trace::when_traced([&](autograd::trace::Sink& s) { trace_inference(s, xv, y); });
      return y;
    }
    check(N * L > 1 || !this->is_training(), "BatchNorm",
          "expected more than 1 value per channel when training, got input ", to_string(xv.shape()));
    Var<T, 3> x3 = xv.reshape({N, C, L});
    Var<T, 3> mu = ft::mean(ft::mean(x3, 2, keepdim), 0, keepdim);
    Var<T, 3> var = ft::mean(ft::mean(ft::square(x3 - mu), 2, keepdim), 0, keepdim);
    if (this->is_training() && running_mean.defined()) update_running(mu.value(), var.value(), N * L);
    return affine(x3, mu, var).reshape(sizes);
  }

 private:
  Var<T, 3> affine(const Var<T, 3>& x3, const Var<T, 3>& mu, const Var<T, 3>& var) {
    const index_t C = x3.size(1);
    auto xhat = (x3 - mu) * ft::rsqrt(var + static_cast<T>(options.eps));
    if (weight.defined()) return xhat * weight.reshape({1, C, 1}) + bias.reshape({1, C, 1});
    return xhat;
  }
  // ONNX's BatchNormalization with the running statistics (scale 1 and bias 0 without affine).
  template <int R>
  [[gnu::cold]] void trace_inference(autograd::trace::Sink& s, const Var<T, R>& x, const Var<T, R>& y) {
    namespace tr = autograd::trace;
    auto param = [&](const Var<T, 1>& p, double fill) {
      return p.defined() ? tr::name(s, p) : tr::name(s, ft::full<T>({features_}, static_cast<T>(fill)));
    };
    const std::string out =
        s.node("BatchNormalization",
               {tr::name(s, x), param(weight, 1), param(bias, 0), tr::name(s, running_mean), tr::name(s, running_var)},
               {tr::Attribute::real("epsilon", options.eps)}, 1)[0];
    s.bind(tr::key(y), out, AnyTensor(y.value()));
  }
  void update_running(const Tensor<T, 3>& mu, const Tensor<T, 3>& var, index_t n) {
    NoGradGuard no_grad;
    const index_t C = mu.size(1);
    num_batches_tracked = num_batches_tracked + std::int64_t(1);
    const double unbias = n > 1 ? static_cast<double>(n) / static_cast<double>(n - 1) : 1.0;
    if (options.momentum) {
      const double m = *options.momentum;
      running_mean = running_mean * static_cast<T>(1 - m) + mu.reshape({C}) * static_cast<T>(m);
      running_var = running_var * static_cast<T>(1 - m) + var.reshape({C}) * static_cast<T>(m * unbias);
    } else {
      // momentum None: the cumulative average, with the factor 1 / num_batches_tracked read on
      // the device inside the statements (PyTorch reads it on the host, a synchronisation)
      auto m = 1.0 / ft::cast<double>(num_batches_tracked);
      running_mean = running_mean * ft::cast<T>(1.0 - m) + mu.reshape({C}) * ft::cast<T>(m);
      running_var = running_var * ft::cast<T>(1.0 - m) + var.reshape({C}) * ft::cast<T>(m * unbias);
    }
  }
  index_t features_ = 0;
};
template <class T = float>
using BatchNorm1d = BatchNorm<T, 2, 3>;
template <class T = float>
using BatchNorm2d = BatchNorm<T, 4, 4>;

// Layer normalisation over the last N dimensions (normalized_shape has N sizes).
template <class T = float, int N = 1>
class LayerNorm : public Module<LayerNorm<T, N>> {
 public:
  Var<T, N> weight, bias;
  double eps = 1e-5;

  LayerNorm() = default;
  explicit LayerNorm(const index_t (&normalized_shape)[N], double eps_ = 1e-5, bool elementwise_affine = true,
                     bool has_bias = true, Device device = kCPU)
      : eps(eps_) {
    init(normalized_shape, elementwise_affine, has_bias, device);
  }
  explicit LayerNorm(index_t normalized_size, double eps_ = 1e-5, bool elementwise_affine = true, bool has_bias = true,
                     Device device = kCPU) requires(N == 1)
      : eps(eps_) {
    const index_t shape[1] = {normalized_size};
    init(shape, elementwise_affine, has_bias, device);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  template <Expression X>
  Var<T, X::rank> forward(const X& x) {
    return ft::layer_norm(autograd::to_var(x), N, weight, bias, eps);
  }

 private:
  void init(const index_t (&shape)[N], bool affine, bool has_bias, Device device) {
    if (!affine) return;
    weight = detail::parameter(ft::ones<T>(shape, device));
    if (has_bias) bias = detail::parameter(ft::zeros<T>(shape, device));
  }
};

// ---- GroupNorm, InstanceNorm2d ----
namespace functional {
// torch.nn.functional.group_norm(x [N, C, *], num_groups, weight [C], bias [C], eps): each
// group of C / num_groups channels of a sample normalised together (layer_norm over the group's
// elements, a view), then the per-channel affine. Returns a Var (a constant when nothing
// requires grad); gradients from layer_norm's backward and the broadcast product's.
template <Expression X, class T = float_promote_t<typename X::value_type>>
Var<T, X::rank> group_norm(const X& x, index_t num_groups, const Var<T, 1>& weight = {}, const Var<T, 1>& bias = {},
                           double eps = 1e-5) {
  constexpr int R = X::rank;
  static_assert(R >= 2, "ft::nn::functional::group_norm: the input must be [N, C, *]");
  const index_t N = x.shape()[0], C = x.shape()[1];
  check(num_groups > 0 && C % num_groups == 0, "group_norm", "the ", C, " channels of ", to_string(x.shape()),
        " do not divide into ", num_groups, " groups");
  for (const auto* p : {&weight, &bias})
    if (p->defined())
      check(p->shape() == Shape<1>{C}, "group_norm", "weight and bias must be [", C, "], got ", to_string(p->shape()));
  Var<T, R> vx = autograd::to_var(x);
  if (!vx.value().is_contiguous()) vx = Var<T, R>(vx * T(1));  // the group view needs contiguous rows
  index_t grouped[3] = {N, num_groups, N * num_groups > 0 ? vx.numel() / (N * num_groups) : 0};
  Var<T, 3> normed = ft::layer_norm(vx.reshape(grouped), 1, Var<T, 1>(), Var<T, 1>(), eps);
  index_t back[R], channel[R];
  for (int d = 0; d < R; ++d) {
    back[d] = x.shape()[d];
    channel[d] = d == 1 ? C : 1;
  }
  Var<T, R> y = normed.reshape(back);
  if (weight.defined() && bias.defined()) return Var<T, R>(y * weight.reshape(channel) + bias.reshape(channel));
  if (weight.defined()) return Var<T, R>(y * weight.reshape(channel));
  if (bias.defined()) return Var<T, R>(y + bias.reshape(channel));
  return y;
}
// torch.nn.functional.instance_norm without running statistics: group_norm with a group a channel.
template <Expression X, class T = float_promote_t<typename X::value_type>>
Var<T, X::rank> instance_norm(const X& x, const Var<T, 1>& weight = {}, const Var<T, 1>& bias = {}, double eps = 1e-5) {
  return group_norm(x, x.shape()[1], weight, bias, eps);
}
}  // namespace functional

// nn.GroupNorm(num_groups, num_channels, eps, affine).
template <class T = float>
class GroupNorm : public Module<GroupNorm<T>> {
 public:
  Var<T, 1> weight, bias;
  index_t num_groups = 1;
  double eps = 1e-5;

  GroupNorm() = default;
  GroupNorm(index_t groups, index_t num_channels, double eps_ = 1e-5, bool affine = true, Device device = kCPU)
      : num_groups(groups), eps(eps_) {
    check(groups > 0 && num_channels % groups == 0, "GroupNorm", "num_channels ", num_channels,
          " must be divisible by num_groups ", groups);
    if (affine) {
      weight = detail::parameter(ft::ones<T>({num_channels}, device));
      bias = detail::parameter(ft::zeros<T>({num_channels}, device));
    }
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  template <Expression X>
  Var<T, X::rank> forward(const X& x) {
    return functional::group_norm(x, num_groups, weight, bias, eps);
  }
};

namespace detail {
// nn.InstanceNorm1d / 2d / 3d (num_features, eps, affine = false): each channel of each sample
// normalised over its Dims trailing dimensions ([N, C, L], [N, C, H, W], [N, C, D, H, W]).
// Running statistics (track_running_stats = true) are not implemented.
template <class Self, class T, int Dims>
class InstanceNormN : public Module<Self> {
 public:
  Var<T, 1> weight, bias;
  double eps = 1e-5;

  InstanceNormN() = default;
  explicit InstanceNormN(index_t num_features, double eps_ = 1e-5, bool affine = false, Device device = kCPU)
      : eps(eps_), features_(num_features) {
    if (affine) {
      weight = detail::parameter(ft::ones<T>({num_features}, device));
      bias = detail::parameter(ft::zeros<T>({num_features}, device));
    }
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
  template <Expression X>
  Var<T, X::rank> forward(const X& x) {
    static_assert(X::rank == Dims + 2,
                  "ft::nn::InstanceNorm1d/2d/3d: the input must be [N, C, L], [N, C, H, W] or [N, C, D, H, W]");
    constexpr const char* names[] = {"", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"};
    check(x.shape()[1] == features_, names[Dims], "expected ", features_, " channels, got input ",
          to_string(x.shape()));
    return functional::instance_norm(x, weight, bias, eps);
  }

 private:
  index_t features_ = 0;
};
}  // namespace detail

template <class T = float>
class InstanceNorm1d : public detail::InstanceNormN<InstanceNorm1d<T>, T, 1> {
 public:
  using detail::InstanceNormN<InstanceNorm1d<T>, T, 1>::InstanceNormN;
};
template <class T = float>
class InstanceNorm2d : public detail::InstanceNormN<InstanceNorm2d<T>, T, 2> {
 public:
  using detail::InstanceNormN<InstanceNorm2d<T>, T, 2>::InstanceNormN;
};
template <class T = float>
class InstanceNorm3d : public detail::InstanceNormN<InstanceNorm3d<T>, T, 3> {
 public:
  using detail::InstanceNormN<InstanceNorm3d<T>, T, 3>::InstanceNormN;
};

namespace functional {
// torch.nn.functional.local_response_norm: x / (k + α/size · Σ x²)^β, the sum over `size`
// neighbouring channels (zero-padded: size/2 before, (size − 1)/2 after) of x [N, C, *] — the
// squares' window means as avg_pool2d over [N, 1, C, ∏ rest] (a launch for the squares, one for
// the pool), the rest fused.
template <Expression X>
auto local_response_norm(const X& x, index_t size, double alpha = 1e-4, double beta = 0.75, double k = 1.0) {
  constexpr int R = X::rank;
  static_assert(R >= 3, "ft::nn::functional::local_response_norm: the input must be [N, C, *] (3 dimensions or more)");
  check(size > 0, "local_response_norm", "size must be positive, got ", size);
  const auto v = ft::detail::sliceable(x);
  const index_t N = x.shape()[0], C = x.shape()[1], M = x.shape().numel() / std::max<index_t>(1, N * C);
  // windows starting size/2 before each channel: avg_pool2d's symmetric padding of size/2 gives
  // them, and for an even size one window more at the end (dropped)
  auto mean =
      ft::avg_pool2d(square(v.reshape({N, 1, C, M})), Pair{size, 1}, Pair{1, 1}, Pair{size / 2, 0}).slice(2, 0, C);
  index_t shape[R];
  for (int d = 0; d < R; ++d) shape[d] = x.shape()[d];
  return v / pow(mean.reshape(shape) * alpha + k, beta);
}
}  // namespace functional

// nn.LocalResponseNorm(size, alpha, beta, k)
struct LocalResponseNorm : Stateless<LocalResponseNorm> {
  index_t size;
  double alpha = 1e-4, beta = 0.75, k = 1.0;
  explicit LocalResponseNorm(index_t size_, double alpha_ = 1e-4, double beta_ = 0.75, double k_ = 1.0)
      : size(size_), alpha(alpha_), beta(beta_), k(k_) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::local_response_norm(x, size, alpha, beta, k);
  }
};

// ---- Dropout ----
namespace detail {
// The dropout mask: 1/(1-p) where a Philox uniform is ≥ p, else 0; all ones when p is 0.
template <class T>
struct DropoutMask {
  std::uint64_t seed;
  float p;
  T scale;
  FT_HD FT_INLINE T operator()(index_t i) const {
    if (p <= 0.0f) return T(1);
    philox::U32x4 w = philox::philox4x32_10(static_cast<std::uint64_t>(i), seed);
    return philox::uniform_float(w.v[0]) >= p ? scale : T(0);
  }
};
}  // namespace detail

namespace functional {
// x with each element zeroed with probability p and the rest scaled by 1/(1-p), in
// training; x itself otherwise. A lazy expression: the mask is generated inside the kernel
// that reads it (and regenerated in the backward), never stored. Reproducible by seed.
template <Expression X>
auto dropout(const X& x, double p = 0.5, bool training = true, std::uint64_t seed = next_seed()) {
  check(p >= 0 && p <= 1, "dropout", "p must be in [0, 1], got ", p);
  using T = detail::value_t<X>;
  const bool active = training && p > 0;
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  detail::DropoutMask<T> mask{seed, active ? static_cast<float>(p) : 0.0f, active ? scale : T(1)};
  if (active && p >= 1) mask.p = 2.0f;  // every element dropped (a uniform is < 1 < 2)
  return x * Generator<detail::DropoutMask<T>, X::rank>(mask, x.shape(), x.device());
}
}  // namespace functional

// Each call draws a new mask: seed_i = the module's seed mixed with the call count.
class Dropout : public Stateless<Dropout> {
 public:
  double p;
  explicit Dropout(double p_ = 0.5, std::uint64_t seed = next_seed()) : p(p_), seed_(seed) {
    check(p >= 0 && p <= 1, "Dropout", "p must be in [0, 1], got ", p);
  }
  template <Expression X>
  auto forward(const X& x) {
    const std::uint64_t s = seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_);
    return functional::dropout(x, p, this->is_training(), s);
  }
  // Restarts the sequence of masks (as re-seeding).
  void manual_seed(std::uint64_t seed) {
    seed_ = seed;
    calls_ = 0;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t calls_ = 0;
};

// ---- activations with a parameter, a split or a random slope ----
namespace detail {
// RReLU's slope of the negative part: U(lower, upper) per element from Philox (training), or
// their mean for every element (lower == upper: no draw).
template <class T>
struct RreluSlope {
  std::uint64_t seed;
  float lower, upper;
  FT_HD FT_INLINE T operator()(index_t i) const {
    if (lower == upper) return static_cast<T>(lower);
    philox::U32x4 w = philox::philox4x32_10(static_cast<std::uint64_t>(i), seed);
    return static_cast<T>(lower + (upper - lower) * philox::uniform_float(w.v[0]));
  }
};
}  // namespace detail

namespace functional {
// torch.nn.functional.softmin(x, dim): softmax(−x) along dim (of a tensor one launch; of a Var the negation is
// a statement of its own before the softmax).
template <Expression E>
auto softmin(const E& e, int dim) {
  return ft::softmax(-e, dim);
}

// torch.nn.functional.glu: a · σ(b), a and b the halves of x along dim (views: no copy of a
// tensor or Var; the product fuses into what reads it).
template <Expression X>
auto glu(const X& x, int dim = -1) {
  static_assert(X::rank >= 1, "ft::nn::functional::glu: the input needs at least one dimension");
  const int d = wrap_dim(dim, X::rank, "glu");
  const index_t n = x.shape()[d];
  check(n % 2 == 0, "glu", "Halving dimension must be even, but dimension ", d, " is size ", n, " (input ",
        to_string(x.shape()), ")");
  const auto s = ft::detail::sliceable(x);
  return s.slice(d, 0, n / 2) * sigmoid(s.slice(d, n / 2, n));
}

// torch.nn.functional.prelu: x where x > 0, weight · x elsewhere; weight [1] or [channels]
// (dimension 1 of x) broadcast over the other dimensions.
template <Expression X, Expression W>
auto prelu(const X& x, const W& weight) {
  constexpr int R = X::rank;
  static_assert(R >= 1 && W::rank == 1, "ft::nn::functional::prelu: x needs a dimension, weight is a vector");
  const index_t n = weight.shape()[0], channels = R >= 2 ? x.shape()[1] : 1;
  check(n == 1 || n == channels, "prelu",
        "Mismatch of parameter numbers and input channel size. Found parameter numbers = ", n,
        " and channel size = ", channels, " (input ", to_string(x.shape()), ")");
  if constexpr (R <= 2) {
    return where(x > 0, x, weight * x);  // [C] against [N, C], or one value
  } else {
    index_t shape[R - 1];
    shape[0] = n;
    for (int d = 1; d < R - 1; ++d) shape[d] = 1;
    return where(x > 0, x, ft::detail::sliceable(weight).reshape(shape) * x);
  }
}

// torch.nn.functional.rrelu: x where x > 0, a·x elsewhere; in training a ~ U(lower, upper) drawn
// per element (Philox, keyed by seed: regenerated in the backward, never stored), else a =
// (lower + upper) / 2.
template <Expression X>
auto rrelu(const X& x, double lower = 1.0 / 8, double upper = 1.0 / 3, bool training = false,
           std::uint64_t seed = next_seed()) {
  check(lower <= upper, "rrelu", "Lower bound should be less than or equal to the upper bound, got ", lower, " and ",
        upper);
  using T = detail::value_t<X>;
  const auto mid = static_cast<float>((lower + upper) / 2);
  const detail::RreluSlope<T> slope{seed, training ? static_cast<float>(lower) : mid,
                                    training ? static_cast<float>(upper) : mid};
  return where(x > 0, x, x * Generator<detail::RreluSlope<T>, X::rank>(slope, x.shape(), x.device()));
}
}  // namespace functional

// nn.PReLU(num_parameters, init): a learnable slope for the negative part, one or one a channel.
template <class T = float>
class PReLU : public Module<PReLU<T>> {
 public:
  Var<T, 1> weight;

  explicit PReLU(index_t num_parameters = 1, double init = 0.25, Device device = kCPU) {
    check(num_parameters >= 1, "PReLU", "num_parameters must be positive, got ", num_parameters);
    Tensor<T, 1> w(Shape<1>{num_parameters}, device);
    w = static_cast<T>(init);
    weight = detail::parameter(w);
  }
  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }
  template <Expression X>
  auto forward(const X& x) {
    return functional::prelu(x, weight);
  }
};

// nn.RReLU(lower, upper): random slopes in training (a new draw each call), their mean in eval.
class RReLU : public Stateless<RReLU> {
 public:
  double lower, upper;
  explicit RReLU(double lower_ = 1.0 / 8, double upper_ = 1.0 / 3, std::uint64_t seed = next_seed())
      : lower(lower_), upper(upper_), seed_(seed) {
    check(lower <= upper, "RReLU", "Lower bound should be less than or equal to the upper bound, got ", lower, " and ",
          upper);
  }
  template <Expression X>
  auto forward(const X& x) {
    const std::uint64_t s = seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_);
    return functional::rrelu(x, lower, upper, this->is_training(), s);
  }

 private:
  std::uint64_t seed_;
  std::uint64_t calls_ = 0;
};

// nn.GLU(dim): a · σ(b) over the halves of dim.
struct GLU : Stateless<GLU> {
  int dim = -1;
  GLU() = default;
  explicit GLU(int d) : dim(d) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::glu(x, dim);
  }
};

// ---- shape and identity ----
// Flattens dimensions StartDim … EndDim (negative: counted from the end) into one, as PyTorch's
// nn.Flatten(start_dim, end_dim); a view where the input allows it. nn::Flatten is
// FlattenDims<1, -1>: [N, ...] → [N, ∏ rest].
template <int StartDim = 1, int EndDim = -1>
class FlattenDims : public Stateless<FlattenDims<StartDim, EndDim>> {
 public:
  template <Expression X>
  auto forward(const X& x) {
    constexpr int R = X::rank;
    constexpr int s = StartDim < 0 ? StartDim + R : StartDim, e = EndDim < 0 ? EndDim + R : EndDim;
    static_assert(R >= 1, "ft::nn::Flatten: the input needs at least one dimension");
    static_assert(0 <= s && s <= e && e < R,
                  "ft::nn::FlattenDims<StartDim, EndDim>: the dimensions must lie in the input's rank, start ≤ end");
    index_t sizes[R - (e - s)];
    for (int d = 0, j = 0; d < R; ++d) {
      if (d <= s || d > e)
        sizes[j++] = x.shape()[d];
      else
        sizes[s] *= x.shape()[d];
    }
    if constexpr (ft::detail::has_var_v<X>) {
      return autograd::to_var(x).reshape(sizes);
    } else {
      Tensor<typename X::value_type, R> t(x.shape(), x.device());
      t = x;
      return t.reshape(sizes);
    }
  }
};
using Flatten = FlattenDims<1, -1>;

// Splits dimension `dim` into N sizes (one may be −1, inferred), as PyTorch's
// nn.Unflatten(dim, sizes): nn::Unflatten u(1, {16, 5, 5}) turns [N, 400] into [N, 16, 5, 5].
template <int N>
class Unflatten : public Stateless<Unflatten<N>> {
 public:
  int dim = 0;
  std::array<index_t, N> sizes{};
  Unflatten(int dim_, const index_t (&sizes_)[N]) : dim(dim_) { std::copy(sizes_, sizes_ + N, sizes.begin()); }
  template <Expression X>
  auto forward(const X& x) {
    constexpr int R = X::rank;
    static_assert(R >= 1 && N >= 1, "ft::nn::Unflatten: the input needs at least one dimension, the sizes one entry");
    const int d = wrap_dim(dim, R, "Unflatten");
    index_t known = 1;
    int inferred = 0;
    for (index_t v : sizes) v == -1 ? ++inferred : known *= v;
    const index_t n = x.shape()[d];
    bool ok = inferred <= 1 && std::all_of(sizes.begin(), sizes.end(), [](index_t v) { return v >= 0 || v == -1; });
    ok = ok && (inferred ? known > 0 && n % known == 0 : known == n);
    if (!ok) {
      Shape<N> shown{};
      for (int i = 0; i < N; ++i) shown[i] = sizes[i];
      fail("Unflatten", "sizes ", to_string(shown), " do not split dimension ", d, " (", n, ") of input ",
           to_string(x.shape()));
    }
    index_t out[R + N - 1];
    for (int i = 0, j = 0; i < R; ++i) {
      if (i != d) {
        out[j++] = x.shape()[i];
        continue;
      }
      for (index_t v : sizes) out[j++] = v == -1 ? n / known : v;
    }
    if constexpr (ft::detail::has_var_v<X>) {
      return autograd::to_var(x).reshape(out);
    } else {
      Tensor<typename X::value_type, R> t(x.shape(), x.device());
      t = x;
      return t.reshape(out);
    }
  }
};

class Identity : public Stateless<Identity> {
 public:
  template <Expression X>
  X forward(const X& x) {
    return x;
  }
};

// ---- activations (lazy expressions) ----
struct ReLU : Stateless<ReLU> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::relu(x);
  }
};
struct LeakyReLU : Stateless<LeakyReLU> {
  double negative_slope = 0.01;
  LeakyReLU() = default;
  explicit LeakyReLU(double slope) : negative_slope(slope) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::leaky_relu(x, negative_slope);
  }
};
struct GELU : Stateless<GELU> {
  std::string_view approximate = "none";  // or "tanh"
  GELU() = default;
  explicit GELU(std::string_view approx) : approximate(approx) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::gelu(x, approximate);
  }
};
struct SiLU : Stateless<SiLU> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::silu(x);
  }
};
struct Tanh : Stateless<Tanh> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::tanh(x);
  }
};
struct Hardtanh : Stateless<Hardtanh> {
  double min_val = -1.0, max_val = 1.0;
  Hardtanh() = default;
  Hardtanh(double lo, double hi) : min_val(lo), max_val(hi) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::hardtanh(x, min_val, max_val);
  }
};
struct ReLU6 : Stateless<ReLU6> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::relu6(x);
  }
};
struct Hardsigmoid : Stateless<Hardsigmoid> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::hardsigmoid(x);
  }
};
struct Hardswish : Stateless<Hardswish> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::hardswish(x);
  }
};
struct Mish : Stateless<Mish> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::mish(x);
  }
};
struct ELU : Stateless<ELU> {
  double alpha = 1.0;
  ELU() = default;
  explicit ELU(double a) : alpha(a) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::elu(x, alpha);
  }
};
struct SELU : Stateless<SELU> {
  template <Expression X>
  auto forward(const X& x) {
    return functional::selu(x);
  }
};
struct CELU : Stateless<CELU> {
  double alpha = 1.0;
  CELU() = default;
  explicit CELU(double a) : alpha(a) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::celu(x, alpha);
  }
};
struct Softplus : Stateless<Softplus> {
  double beta = 1.0, threshold = 20.0;
  Softplus() = default;
  explicit Softplus(double b, double t = 20.0) : beta(b), threshold(t) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::softplus(x, beta, threshold);
  }
};
struct Softsign : Stateless<Softsign> {
  template <Expression X>
  auto forward(const X& x) {
    return functional::softsign(x);
  }
};
struct Tanhshrink : Stateless<Tanhshrink> {
  template <Expression X>
  auto forward(const X& x) {
    return functional::tanhshrink(x);
  }
};
struct Softshrink : Stateless<Softshrink> {
  double lambd = 0.5;
  Softshrink() = default;
  explicit Softshrink(double l) : lambd(l) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::softshrink(x, lambd);
  }
};
struct Hardshrink : Stateless<Hardshrink> {
  double lambd = 0.5;
  Hardshrink() = default;
  explicit Hardshrink(double l) : lambd(l) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::hardshrink(x, lambd);
  }
};
struct LogSigmoid : Stateless<LogSigmoid> {
  template <Expression X>
  auto forward(const X& x) {
    return functional::logsigmoid(x);
  }
};
struct Threshold : Stateless<Threshold> {
  double threshold, value;
  Threshold(double t, double v) : threshold(t), value(v) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::threshold(x, threshold, value);
  }
};

// ---- resampling (lazy expressions, ft/ops/structure.hpp) ----
// nn.PixelShuffle(r): [N, C·r², H, W] → [N, C, H·r, W·r].
struct PixelShuffle : Stateless<PixelShuffle> {
  index_t upscale_factor;
  explicit PixelShuffle(index_t r) : upscale_factor(r) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::pixel_shuffle(x, upscale_factor);
  }
};
// nn.PixelUnshuffle(r): [N, C, H·r, W·r] → [N, C·r², H, W].
struct PixelUnshuffle : Stateless<PixelUnshuffle> {
  index_t downscale_factor;
  explicit PixelUnshuffle(index_t r) : downscale_factor(r) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::pixel_unshuffle(x, downscale_factor);
  }
};
// nn.Upsample of images [N, C, H, W] to a size or by a scale factor; mode "nearest",
// "nearest-exact", "bilinear" or "bicubic" (those two with align_corners).
struct Upsample : Stateless<Upsample> {
  std::optional<std::array<index_t, 2>> size;
  double scale_factor = 1.0;
  std::string_view mode = "nearest";
  bool align_corners = false;
  explicit Upsample(double scale, std::string_view m = "nearest", bool align = false)
      : scale_factor(scale), mode(m), align_corners(align) {}
  explicit Upsample(std::array<index_t, 2> sz, std::string_view m = "nearest", bool align = false)
      : size(sz), mode(m), align_corners(align) {}
  template <Expression X>
  auto forward(const X& x) {
    static_assert(X::rank == 4, "ft::nn::Upsample: the input must be [N, C, H, W]");
    if (size) return ft::interpolate(x, {(*size)[0], (*size)[1]}, mode, align_corners);
    return ft::interpolate(x, {scale_factor, scale_factor}, mode, align_corners);
  }
};
struct Sigmoid : Stateless<Sigmoid> {
  template <Expression X>
  auto forward(const X& x) {
    return ft::sigmoid(x);
  }
};
struct Softmax : Stateless<Softmax> {
  int dim = -1;
  Softmax() = default;
  explicit Softmax(int d) : dim(d) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::softmax(x, dim);
  }
};
struct LogSoftmax : Stateless<LogSoftmax> {
  int dim = -1;
  LogSoftmax() = default;
  explicit LogSoftmax(int d) : dim(d) {}
  template <Expression X>
  auto forward(const X& x) {
    return ft::log_softmax(x, dim);
  }
};
struct Softmin : Stateless<Softmin> {
  int dim = -1;
  Softmin() = default;
  explicit Softmin(int d) : dim(d) {}
  template <Expression X>
  auto forward(const X& x) {
    return functional::softmin(x, dim);
  }
};
// nn.Softmax2d: softmax over the channels of [N, C, H, W] or [C, H, W].
struct Softmax2d : Stateless<Softmax2d> {
  template <Expression X>
  auto forward(const X& x) {
    static_assert(X::rank == 3 || X::rank == 4, "ft::nn::Softmax2d: the input must be [N, C, H, W] or [C, H, W]");
    return ft::softmax(x, -3);
  }
};

}  // namespace ft::inline FT_ABI::nn
