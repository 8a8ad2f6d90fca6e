// Image transforms as torchvision's (transforms.functional and the transform classes), on
// tensors of shape [..., C, H, W] (one image or a batch) of uint8 or floating type.
//
//   auto train_tf = ft::vision::Compose(ft::vision::RandomResizedCrop({24, 24}),
//                                       ft::vision::RandomHorizontalFlip(), ft::vision::ToTensor(),
//                                       ft::vision::Normalize({0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}));
//   ft::Tensor<float, 3> x = train_tf(image, rng);   // rng: ft::vision::Rng, one per sample
//
// The elementwise transforms (to_tensor, normalize, brightness and contrast) are fused
// expressions and run on the image's device, one launch each; crops and flips are views or one
// launch; resize is a separable loop on the CPU and two GEMMs elsewhere. Random transforms take
// their numbers from an Rng, which the DataLoader seeds from (seed, epoch, sample index): the
// same augmentation whatever the number of workers.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/data/dataset.hpp"
#include "ft/tensor.hpp"

namespace ft::inline FT_ABI::vision {

// ---- random numbers for one sample ----

// A stream of random numbers (SplitMix64: portable, so augmentation reproduces everywhere).
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : s_{seed} {}
  std::uint64_t next() { return s_.next(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(s_.next() >> 11) * 0x1p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform in [lo, hi).
  index_t randint(index_t lo, index_t hi) {
    check(hi > lo, "Rng::randint", "empty range [", lo, ", ", hi, ")");
    return lo + static_cast<index_t>(s_.below(static_cast<std::uint64_t>(hi - lo)));
  }
  bool bernoulli(double p) { return uniform() < p; }

 private:
  data::detail::SplitMix64 s_;
};

namespace detail {

template <class T>
inline constexpr double bound_v = std::is_floating_point_v<T> || is_half_v<T> ? 1.0 : 255.0;

// x in element type U (x itself when it has it).
template <class U, class T, int R>
Tensor<U, R> as(const Tensor<T, R>& x) {
  if constexpr (std::is_same_v<T, U>) {
    return x;
  } else {
    Tensor<U, R> out = cast<U>(x);
    return out;
  }
}

// Applies a transform: t(x, rng) when it takes one, else t(x).
template <class Tf, class X>
auto apply(const Tf& t, X&& x, Rng& rng) {
  if constexpr (std::is_invocable_v<const Tf&, X, Rng&>)
    return t(std::forward<X>(x), rng);
  else
    return t(std::forward<X>(x));
}

template <class T, int R>
void check_image(const Tensor<T, R>& img, const char* op) {
  static_assert(R >= 2, "ft::vision: an image tensor has at least the dims H, W ([..., C, H, W])");
  check(img.size(R - 1) > 0 && img.size(R - 2) > 0, op, "the image ", to_string(img.shape()), " on ", img.device(),
        " is empty");
}

// torchvision's output size of Resize(size, max_size): one number sets the shorter edge and keeps
// the aspect ratio (the longer edge truncated), two are (height, width).
inline std::array<index_t, 2> resized_size(index_t h, index_t w, const std::vector<index_t>& size,
                                           std::optional<index_t> max_size) {
  check(size.size() == 1 || size.size() == 2, "resize", "size must have 1 or 2 numbers, got ", size.size());
  for (index_t s : size) check(s > 0, "resize", "sizes must be positive, got ", s);
  if (size.size() == 2) {
    check(!max_size, "resize", "max_size is only allowed with one size (the shorter edge)");
    return {size[0], size[1]};
  }
  const index_t shorter = std::min(h, w), longer = std::max(h, w);
  index_t new_short = size[0], new_long = static_cast<index_t>(static_cast<double>(size[0]) * longer / shorter);
  if (max_size) {
    check(*max_size > size[0], "resize", "max_size (", *max_size, ") must be larger than the size (", size[0], ")");
    if (new_long > *max_size) {
      new_short = static_cast<index_t>(static_cast<double>(*max_size) * new_short / new_long);
      new_long = *max_size;
    }
  }
  return w <= h ? std::array<index_t, 2>{new_long, new_short} : std::array<index_t, 2>{new_short, new_long};
}

// The taps of an antialiased linear resize of one dim (PyTorch's _upsample_bilinear2d_aa, in
// float as it computes them): output i reads input [first[i], first[i] + count[i]) with weights.
struct AaTaps {
  std::vector<index_t> first, count;
  std::vector<float> weights;  // count_max a row
  index_t count_max = 0;
};

inline AaTaps aa_taps(index_t in, index_t out) {
  AaTaps t;
  // The mix of float and double below is PyTorch's (its float-typed variables, double literals).
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const auto support = static_cast<float>(scale >= 1.0f ? 1.0 * scale : 1.0);  // the triangle's support (1) scaled
  const auto invscale = static_cast<float>(scale >= 1.0f ? 1.0 / scale : 1.0);
  t.count_max = static_cast<index_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<std::size_t>(out));
  t.count.resize(static_cast<std::size_t>(out));
  t.weights.assign(static_cast<std::size_t>(out * t.count_max), 0.0f);
  for (index_t i = 0; i < out; ++i) {
    const auto center = static_cast<float>(scale * (static_cast<double>(i) + 0.5));
    const index_t xmin = std::max<index_t>(static_cast<index_t>(static_cast<double>(center - support) + 0.5), 0);
    const index_t xsize =
        std::min<index_t>(static_cast<index_t>(static_cast<double>(center + support) + 0.5), in) - xmin;
    float* w = t.weights.data() + i * t.count_max;
    float total = 0;
    for (index_t j = 0; j < xsize; ++j) {
      const float d = static_cast<float>(j + xmin) - center;
      const float x = std::abs(static_cast<float>((static_cast<double>(d) + 0.5) * invscale));
      w[j] = x < 1.0f ? 1.0f - x : 0.0f;
      total += w[j];
    }
    if (total != 0.0f)
      for (index_t j = 0; j < xsize; ++j) w[j] /= total;
    t.first[static_cast<std::size_t>(i)] = xmin;
    t.count[static_cast<std::size_t>(i)] = xsize;
  }
  return t;
}

// The taps as a dense [out, in] matrix (the GEMM form, for devices other than the CPU).
inline Tensor<float, 2> aa_matrix(const AaTaps& t, index_t in, Device device) {
  const index_t out = static_cast<index_t>(t.first.size());
  auto m = zeros<float>({out, in});
  for (index_t i = 0; i < out; ++i)
    for (index_t j = 0; j < t.count[static_cast<std::size_t>(i)]; ++j)
      m.data()[i * in + t.first[static_cast<std::size_t>(i)] + j] =
          t.weights[static_cast<std::size_t>(i * t.count_max + j)];
  return m.to(device);
}

// One plane [h, w] of floats resized along its rows (horizontal) into [h, out_w].
inline void aa_rows(const float* src, index_t h, index_t w, const AaTaps& t, float* dst) {
  const index_t ow = static_cast<index_t>(t.first.size());
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < ow; ++x) {
      const float* s = src + y * w + t.first[static_cast<std::size_t>(x)];
      const float* wt = t.weights.data() + x * t.count_max;
      float acc = s[0] * wt[0];
      for (index_t j = 1; j < t.count[static_cast<std::size_t>(x)]; ++j) acc += s[j] * wt[j];
      dst[y * ow + x] = acc;
    }
}
// ... and along its columns (vertical) into [out_h, w].
inline void aa_cols(const float* src, index_t w, const AaTaps& t, float* dst) {
  const index_t oh = static_cast<index_t>(t.first.size());
  for (index_t y = 0; y < oh; ++y) {
    const float* wt = t.weights.data() + y * t.count_max;
    const float* s = src + t.first[static_cast<std::size_t>(y)] * w;
    float* d = dst + y * w;
    for (index_t x = 0; x < w; ++x) d[x] = s[x] * wt[0];
    for (index_t j = 1; j < t.count[static_cast<std::size_t>(y)]; ++j)
      for (index_t x = 0; x < w; ++x) d[x] += s[j * w + x] * wt[j];
  }
}

}  // namespace detail

// ---- functional transforms (torchvision.transforms.functional) ----

// uint8 → float in [0, 1] (x / 255); a floating image passes unchanged.
template <class T, int R>
auto to_tensor(const Tensor<T, R>& img) {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    Tensor<float, R> out = cast<float>(img) / 255.0f;
    return out;
  } else {
    static_assert(is_floating_v<T>, "ft::vision::to_tensor: expects a uint8 or floating image");
    return img;
  }
}

// (x - mean[c]) / std[c] along the channel dim [..., C, H, W].
template <class T, int R>
Tensor<T, R> normalize(const Tensor<T, R>& img, const std::vector<double>& mean, const std::vector<double>& std) {
  static_assert(is_floating_v<T>, "ft::vision::normalize: expects a floating image (use to_tensor first)");
  static_assert(R >= 3, "ft::vision::normalize: expects [..., C, H, W]");
  const index_t c = img.size(R - 3);
  check(mean.size() == std.size() && (static_cast<index_t>(mean.size()) == c || mean.size() == 1), "normalize",
        "mean and std need one value a channel (", c, " channels in ", to_string(img.shape()), "), got ", mean.size(),
        " and ", std.size());
  std::vector<T> m(static_cast<std::size_t>(c)), s(static_cast<std::size_t>(c));
  for (index_t k = 0; k < c; ++k) {
    const std::size_t i = mean.size() == 1 ? 0 : static_cast<std::size_t>(k);
    check(std[i] != 0, "normalize", "std is 0 for channel ", k, ", which would divide by zero");
    m[static_cast<std::size_t>(k)] = static_cast<T>(mean[i]);
    s[static_cast<std::size_t>(k)] = static_cast<T>(std[i]);
  }
  auto mt = from_vector<T>(m, {c, 1, 1}, img.device());
  auto st = from_vector<T>(s, {c, 1, 1}, img.device());
  Tensor<T, R> out = (img - mt) / st;
  return out;
}

// The rectangle [top, top + height) × [left, left + width); parts outside the image are 0
// (torchvision's crop pads them).
template <class T, int R>
Tensor<T, R> crop(const Tensor<T, R>& img, index_t top, index_t left, index_t height, index_t width) {
  detail::check_image(img, "crop");
  check(height > 0 && width > 0, "crop", "the crop size must be positive, got ", height, " × ", width);
  const index_t h = img.size(R - 2), w = img.size(R - 1);
  if (top >= 0 && left >= 0 && top + height <= h && left + width <= w)
    return img.slice(R - 2, top, top + height).slice(R - 1, left, left + width);  // a view
  // Padded: the part inside, then zeros around it (negative pads crop).
  Tensor<T, R> out = pad(img, {-left, left + width - w, -top, top + height - h}, PadMode::constant, 0.0);
  return out;
}

// The central height × width (top = round((h - height) / 2), rounding half to even as Python).
template <class T, int R>
Tensor<T, R> center_crop(const Tensor<T, R>& img, index_t height, index_t width) {
  detail::check_image(img, "center_crop");
  const index_t h = img.size(R - 2), w = img.size(R - 1);
  // A crop larger than the image pads it first, the extra pixel of an odd difference after.
  const index_t ph = std::max<index_t>(height - h, 0), pw = std::max<index_t>(width - w, 0);
  const index_t hp = h + ph, wp = w + pw;
  const auto top = static_cast<index_t>(std::nearbyint(static_cast<double>(hp - height) / 2.0)) - ph / 2;
  const auto left = static_cast<index_t>(std::nearbyint(static_cast<double>(wp - width) / 2.0)) - pw / 2;
  return crop(img, top, left, height, width);
}

template <class T, int R>
Tensor<T, R> hflip(const Tensor<T, R>& img) {
  Tensor<T, R> out = flip(img, {-1});
  return out;
}
template <class T, int R>
Tensor<T, R> vflip(const Tensor<T, R>& img) {
  Tensor<T, R> out = flip(img, {-2});
  return out;
}

// Bilinear resize to size (one number: the shorter edge, keeping the aspect ratio; two: height,
// width). antialias (the default, as torchvision's for images) low-pass filters a downscale
// as PIL and PyTorch's _upsample_bilinear2d_aa; without it, plain bilinear (ft::interpolate).
// uint8 images are computed in float and rounded.
template <class T, int R>
Tensor<T, R> resize(const Tensor<T, R>& img, const std::vector<index_t>& size, bool antialias = true,
                    std::optional<index_t> max_size = std::nullopt) {
  detail::check_image(img, "resize");
  static_assert(std::is_same_v<T, std::uint8_t> || is_floating_v<T>, "ft::vision::resize: uint8 or floating images");
  const index_t h = img.size(R - 2), w = img.size(R - 1);
  const auto [oh, ow] = detail::resized_size(h, w, size, max_size);
  if (oh == h && ow == w) return img;
  using F = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const index_t planes = img.numel() / (h * w);
  Tensor<F, 3> x = detail::as<F>(img).contiguous().reshape({planes, h, w});
  Tensor<F, 3> y;
  if (!antialias) {
    Tensor<F, 4> x4 = x.reshape({planes, 1, h, w});
    Tensor<F, 4> y4 = interpolate(x4, {oh, ow}, "bilinear");
    y = y4.reshape({planes, oh, ow});
  } else {
    const detail::AaTaps rows = detail::aa_taps(w, ow), cols = detail::aa_taps(h, oh);
    if (img.device().is_cpu() && std::is_same_v<F, float>) {
      y = empty<F>({planes, oh, ow});
      stats::detail::record_launch(kCPU);
      const float* in = reinterpret_cast<const float*>(x.data());
      float* out = reinterpret_cast<float*>(y.data());
      // Planes in parallel (a batch's channels), each through a buffer of its thread. The
      // vertical pass (vectorised along rows) goes first when it shrinks the image, so that the
      // horizontal pass (a short dot product an output) has fewer rows to do.
      const bool cols_first = oh < h;
#pragma omp parallel if (planes > 1 && planes * (h * ow + oh * ow) > exec::cpu::kParallelGrain)
      {
        std::vector<float> tmp(static_cast<std::size_t>(cols_first ? oh * w : h * ow));
#pragma omp for schedule(static)
        for (index_t p = 0; p < planes; ++p) {
          const float* src = in + p * h * w;
          float* dst = out + p * oh * ow;
          if (ow != w && oh != h && cols_first) {
            detail::aa_cols(src, w, cols, tmp.data());
            detail::aa_rows(tmp.data(), oh, w, rows, dst);
          } else if (ow != w && oh != h) {
            detail::aa_rows(src, h, w, rows, tmp.data());
            detail::aa_cols(tmp.data(), ow, cols, dst);
          } else if (ow != w) {
            detail::aa_rows(src, h, w, rows, dst);
          } else {
            detail::aa_cols(src, w, cols, dst);
          }
        }
      }
    } else {  // two GEMMs with the taps as dense matrices: x · Wwᵀ, then Wh · (x · Wwᵀ)
      Tensor<F, 2> ww = detail::as<F>(detail::aa_matrix(rows, w, img.device()));
      Tensor<F, 2> wh = detail::as<F>(detail::aa_matrix(cols, h, img.device()));
      Tensor<F, 3> t = matmul(x, ww.transpose(0, 1));
      y = matmul(wh, t);
    }
  }
  Shape<R> out_shape = img.shape();
  out_shape[R - 2] = oh;
  out_shape[R - 1] = ow;
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    Tensor<T, R> out = cast<std::uint8_t>(clamp(round(y.reshape(out_shape)), 0.0f, 255.0f));
    return out;
  } else {
    return detail::as<T>(y.reshape(out_shape));
  }
}

// crop, then resize (RandomResizedCrop's second half).
template <class T, int R>
Tensor<T, R> resized_crop(const Tensor<T, R>& img, index_t top, index_t left, index_t height, index_t width,
                          const std::vector<index_t>& size, bool antialias = true) {
  return resize(crop(img, top, left, height, width), size, antialias);
}

// clamp(x · factor, 0, bound): bound 255 for uint8 (the product truncated, as torchvision), 1 for floats.
template <class T, int R>
Tensor<T, R> adjust_brightness(const Tensor<T, R>& img, double factor) {
  check(factor >= 0, "adjust_brightness", "the factor must be non-negative, got ", factor);
  constexpr float bound = static_cast<float>(detail::bound_v<T>);
  Tensor<T, R> out = cast<T>(clamp(cast<float>(img) * static_cast<float>(factor), 0.0f, bound));
  return out;
}

namespace detail {

// The image as [N, C, H, W] (C 1 or 3, checked for `op`).
template <class T, int R>
Tensor<T, 4> as_nchw(const Tensor<T, R>& img, const char* op) {
  static_assert(R >= 3, "ft::vision: the color transforms expect [..., C, H, W]");
  const index_t c = img.size(R - 3);
  check(c == 1 || c == 3, op, "expects 1 or 3 channels, got ", to_string(img.shape()));
  const index_t h = img.size(R - 2), w = img.size(R - 1), n = img.numel() / (c * h * w);
  return img.contiguous().reshape({n, c, h, w});
}

// torchvision's rgb_to_grayscale of an RGB [N, 3, H, W] image, as a float expression of shape
// [N, 1, H, W]: 0.2989 R + 0.587 G + 0.114 B, truncated to uint8 for uint8 images.
template <class T>
auto gray_of(const Tensor<T, 4>& x) {
  auto g = 0.2989f * cast<float>(x.slice(1, 0, 1)) + 0.587f * cast<float>(x.slice(1, 1, 2)) +
           0.114f * cast<float>(x.slice(1, 2, 3));
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return cast<float>(cast<std::uint8_t>(g));
  else
    return g;
}

}  // namespace detail

// Blends the image with the mean of its gray version (per image): clamp(f·x + (1 − f)·mean).
// Gray is 0.2989 R + 0.587 G + 0.114 B (truncated to uint8 for uint8 images), as torchvision.
template <class T, int R>
Tensor<T, R> adjust_contrast(const Tensor<T, R>& img, double factor) {
  check(factor >= 0, "adjust_contrast", "the factor must be non-negative, got ", factor);
  Tensor<T, 4> x = detail::as_nchw(img, "adjust_contrast");
  constexpr float bound = static_cast<float>(detail::bound_v<T>);
  const index_t n = x.size(0), h = x.size(2), w = x.size(3);
  Tensor<float, 4> gray;
  if (x.size(1) == 3)
    gray = detail::gray_of(x);
  else
    gray = cast<float>(x);
  Tensor<float, 2> mean = ft::mean(gray.reshape({n, h * w}), 1, keepdim);
  const auto f = static_cast<float>(factor), rest = static_cast<float>(1.0 - factor);  // as torchvision's _blend
  Tensor<T, 4> out = cast<T>(clamp(f * cast<float>(x) + rest * mean.reshape({n, 1, 1, 1}), 0.0f, bound));
  return out.reshape(img.shape());
}

// Blends the image with its gray version: clamp(f·x + (1 − f)·gray), one launch (0 gives the
// gray image, 1 the image, 2 doubles the saturation); a one-channel image is returned as it is
// (torchvision's adjust_saturation).
template <class T, int R>
Tensor<T, R> adjust_saturation(const Tensor<T, R>& img, double factor) {
  check(factor >= 0, "adjust_saturation", "the factor must be non-negative, got ", factor);
  Tensor<T, 4> x = detail::as_nchw(img, "adjust_saturation");
  if (x.size(1) == 1) return img;
  constexpr float bound = static_cast<float>(detail::bound_v<T>);
  const auto f = static_cast<float>(factor), rest = static_cast<float>(1.0 - factor);
  Tensor<T, 4> out = cast<T>(clamp(f * cast<float>(x) + rest * detail::gray_of(x), 0.0f, bound));
  return out.reshape(img.shape());
}

namespace detail {

// Channel c of an RGB pixel (values in [0, 1]) after a hue shift by `factor` turns: RGB -> HSV,
// h + factor (mod 1), HSV -> RGB, with torchvision's adjust_hue formulas and their order of
// operations (so its float results). One functor of the pixel's three values: as a tree of
// binary nodes, the shared subexpressions repeat and the kernel's argument grows to ~60 KB.
struct HueShift {
  static constexpr const char* name = "adjust_hue";
  float factor;
  FT_HD FT_INLINE float operator()(std::int32_t c, float r, float g, float b) const {
    const float v = op::Maximum{}(op::Maximum{}(r, g), b);
    const float minc = op::Minimum{}(op::Minimum{}(r, g), b);
    const bool eqc = v == minc;
    const float cr = v - minc;
    const float s = cr / (eqc ? 1.0f : v);
    const float cr_divisor = eqc ? 1.0f : cr;
    const float rc = (v - r) / cr_divisor, gc = (v - g) / cr_divisor, bc = (v - b) / cr_divisor;
    const float hr = v == r ? bc - gc : 0.0f;
    const float hg = (v == g && v != r) ? 2.0f + rc - bc : 0.0f;
    const float hb = (v != g && v != r) ? 4.0f + gc - rc : 0.0f;
    const float h = op::Remainder{}(op::Fmod{}((hr + hg + hb) / 6.0f + 1.0f, 1.0f) + factor, 1.0f);
    // hue sector i of six, fraction f; channel c takes v, q, p or t by (c, i)
    const float i = math::floor(h * 6.0f);
    const float f = h * 6.0f - i;
    const std::int32_t sector = op::Remainder{}(op::CastTo<std::int32_t>{}(i), std::int32_t{6});
    constexpr std::int32_t role[3][6] = {{0, 1, 2, 2, 3, 0}, {3, 0, 0, 1, 2, 2}, {2, 2, 3, 0, 0, 1}};
    const op::Clamp<float> clamp01{0.0f, 1.0f};
    switch (role[c][sector]) {
      case 0:
        return v;
      case 1:
        return clamp01(v * (1.0f - s * f));
      case 2:
        return clamp01(v * (1.0f - s));
      default:
        return clamp01(v * (1.0f - s * (1.0f - f)));
    }
  }
};

}  // namespace detail

// Shifts the hue of an RGB image by `factor` turns (in [-0.5, 0.5]): RGB -> HSV, h + factor
// (mod 1), HSV -> RGB in one launch, with torchvision's adjust_hue formulas (so its float
// results); uint8 images go through x / 255 and back, truncated. A one-channel image is
// returned as it is.
template <class T, int R>
Tensor<T, R> adjust_hue(const Tensor<T, R>& img, double factor) {
  check(factor >= -0.5 && factor <= 0.5, "adjust_hue", "the factor must be in [-0.5, 0.5], got ", factor);
  Tensor<T, 4> x = detail::as_nchw(img, "adjust_hue");
  if (x.size(1) == 1) return img;
  constexpr bool u8 = std::is_same_v<T, std::uint8_t>;
  auto channel = [&](index_t k) {
    auto v = cast<float>(x.slice(1, k, k + 1));
    if constexpr (u8)
      return v / 255.0f;
    else
      return v;
  };
  const auto c = from_vector<std::int32_t>({0, 1, 2}, {1, 3, 1, 1}, x.device());  // a copy, not a launch
  auto rgb = make_nary(detail::HueShift{static_cast<float>(factor)}, c, channel(0), channel(1), channel(2));
  Tensor<T, 4> out;
  if constexpr (u8)
    out = cast<std::uint8_t>(rgb * 255.0f);
  else
    out = cast<T>(rgb);
  return out.reshape(img.shape());
}

// ---- transform objects (torchvision.transforms) ----

struct Identity {
  template <class X>
  X operator()(X x) const {
    return x;
  }
};

// Applies its transforms in order; each takes (x, rng) or (x).
template <class... Ts>
class Compose {
 public:
  explicit Compose(Ts... ts) : ts_(std::move(ts)...) {}
  template <class X>
  auto operator()(X x, Rng& rng) const {
    return run<0>(std::move(x), rng);
  }
  template <class X>
  auto operator()(X x) const {
    Rng rng;
    return run<0>(std::move(x), rng);
  }

 private:
  template <std::size_t I, class X>
  auto run(X x, Rng& rng) const {
    if constexpr (I == sizeof...(Ts))
      return x;
    else
      return run<I + 1>(detail::apply(std::get<I>(ts_), std::move(x), rng), rng);
  }
  std::tuple<Ts...> ts_;
};

struct ToTensor {
  template <class T, int R>
  auto operator()(const Tensor<T, R>& x) const {
    return to_tensor(x);
  }
};

struct Normalize {
  std::vector<double> mean, std;
  Normalize(std::vector<double> m, std::vector<double> s) : mean(std::move(m)), std(std::move(s)) {}
  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& x) const {
    return normalize(x, mean, std);
  }
};

struct Resize {
  std::vector<index_t> size;
  bool antialias = true;
  std::optional<index_t> max_size = std::nullopt;
  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& x) const {
    return resize(x, size, antialias, max_size);
  }
};

struct CenterCrop {
  index_t height, width;
  explicit CenterCrop(index_t size) : height(size), width(size) {}
  CenterCrop(index_t h, index_t w) : height(h), width(w) {}
  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& x) const {
    return center_crop(x, height, width);
  }
};

struct RandomHorizontalFlip {
  double p = 0.5;
  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& x, Rng& rng) const {
    return rng.bernoulli(p) ? hflip(x) : x;
  }
};

struct RandomCropOptions {
  // Added around the image first: 1 number (all sides), 2 (left/right, top/bottom) or 4 (left,
  // top, right, bottom), as torchvision.
  std::vector<index_t> padding = {};
  bool pad_if_needed = false;  // pad a smaller image up to the crop size
  double fill = 0;             // the constant padding's value
  PadMode padding_mode = PadMode::constant;
};

// A height × width crop at a uniformly random place.
struct RandomCrop {
  index_t height, width;
  RandomCropOptions options;
  explicit RandomCrop(index_t size, const RandomCropOptions& o = {}) : height(size), width(size), options(o) {}
  RandomCrop(index_t h, index_t w, const RandomCropOptions& o = {}) : height(h), width(w), options(o) {}

  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& img, Rng& rng) const {
    detail::check_image(img, "RandomCrop");
    Tensor<T, R> x = img;
    const auto& p = options.padding;
    check(p.empty() || p.size() == 1 || p.size() == 2 || p.size() == 4, "RandomCrop",
          "padding needs 1, 2 or 4 numbers, got ", p.size());
    if (!p.empty()) {
      const index_t l = p[0], t = p.size() == 1 ? p[0] : p[1], r = p.size() == 4 ? p[2] : p[0],
                    b = p.size() == 4   ? p[3]
                        : p.size() == 2 ? p[1]
                                        : p[0];
      x = Tensor<T, R>(pad(x, {l, r, t, b}, options.padding_mode, options.fill));
    }
    if (options.pad_if_needed && x.size(R - 1) < width) {
      const index_t d = width - x.size(R - 1);
      x = Tensor<T, R>(pad(x, {d, d, 0, 0}, options.padding_mode, options.fill));
    }
    if (options.pad_if_needed && x.size(R - 2) < height) {
      const index_t d = height - x.size(R - 2);
      x = Tensor<T, R>(pad(x, {0, 0, d, d}, options.padding_mode, options.fill));
    }
    const index_t h = x.size(R - 2), w = x.size(R - 1);
    check(h >= height && w >= width, "RandomCrop", "the crop ", height, " × ", width, " is larger than the image ",
          to_string(x.shape()), " (pad it: padding or pad_if_needed)");
    const index_t top = rng.randint(0, h - height + 1), left = rng.randint(0, w - width + 1);
    return crop(x, top, left, height, width);
  }
};

// A crop of random area (scale of the image's) and aspect ratio (log-uniform in ratio), resized
// to size: torchvision's get_params (ten tries, then the central crop of the clamped ratio).
struct RandomResizedCrop {
  std::vector<index_t> size;
  std::array<double, 2> scale = {0.08, 1.0};
  std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0};
  bool antialias = true;

  struct Box {
    index_t top, left, height, width;
  };
  Box params(index_t h, index_t w, Rng& rng) const {
    check(scale[0] <= scale[1] && ratio[0] <= ratio[1] && ratio[0] > 0, "RandomResizedCrop",
          "scale and ratio must be (min, max) ranges with a positive ratio");
    const double area = static_cast<double>(h * w);
    const double lr0 = std::log(ratio[0]), lr1 = std::log(ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = area * rng.uniform(scale[0], scale[1]);
      const double aspect = std::exp(rng.uniform(lr0, lr1));
      const auto cw = static_cast<index_t>(std::nearbyint(std::sqrt(target * aspect)));
      const auto ch = static_cast<index_t>(std::nearbyint(std::sqrt(target / aspect)));
      if (cw > 0 && cw <= w && ch > 0 && ch <= h)
        return {rng.randint(0, h - ch + 1), rng.randint(0, w - cw + 1), ch, cw};
    }
    const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
    index_t cw = w, ch = h;
    if (in_ratio < ratio[0]) {
      ch = static_cast<index_t>(std::nearbyint(static_cast<double>(w) / ratio[0]));
    } else if (in_ratio > ratio[1]) {
      cw = static_cast<index_t>(std::nearbyint(static_cast<double>(h) * ratio[1]));
    }
    return {(h - ch) / 2, (w - cw) / 2, ch, cw};
  }
  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& img, Rng& rng) const {
    detail::check_image(img, "RandomResizedCrop");
    const Box b = params(img.size(R - 2), img.size(R - 1), rng);
    const std::vector<index_t> out = size.size() == 1 ? std::vector<index_t>{size[0], size[0]} : size;
    return resized_crop(img, b.top, b.left, b.height, b.width, out, antialias);
  }
};

// Random brightness, contrast and saturation factors, uniform in [max(0, 1 − b), 1 + b], and a hue
// shift uniform in [−hue, hue] (0: that one unchanged), applied in a random order, as
// torchvision's ColorJitter.
struct ColorJitter {
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
  template <class T, int R>
  Tensor<T, R> operator()(const Tensor<T, R>& img, Rng& rng) const {
    check(brightness >= 0 && contrast >= 0 && saturation >= 0, "ColorJitter",
          "brightness, contrast and saturation must be non-negative");
    check(hue >= 0 && hue <= 0.5, "ColorJitter", "hue must be in [0, 0.5], got ", hue);
    int order[4] = {0, 1, 2, 3};  // a random permutation (Fisher-Yates)
    for (int k = 3; k > 0; --k) std::swap(order[k], order[rng.randint(0, k + 1)]);
    auto factor = [&](double amount) { return amount > 0 ? rng.uniform(std::max(0.0, 1 - amount), 1 + amount) : 1.0; };
    const double fb = factor(brightness), fc = factor(contrast), fs = factor(saturation);
    const double fh = hue > 0 ? rng.uniform(-hue, hue) : 0.0;
    Tensor<T, R> x = img;
    for (int k : order) {
      if (k == 0 && brightness > 0) x = adjust_brightness(x, fb);
      if (k == 1 && contrast > 0) x = adjust_contrast(x, fc);
      if (k == 2 && saturation > 0) x = adjust_saturation(x, fs);
      if (k == 3 && hue > 0) x = adjust_hue(x, fh);
    }
    return x;
  }
};

}  // namespace ft::inline FT_ABI::vision
