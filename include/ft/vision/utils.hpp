// Images out: make_grid and save_image, as torchvision.utils.
//
//   ft::vision::save_image(batch, "samples.png", {.nrow = 8, .normalize = true});  // batch: [N, C, H, W] floats
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "ft/core/config.hpp"
#include "ft/tensor.hpp"
#include "ft/vision/image.hpp"

namespace ft::inline FT_ABI::vision {

struct GridOptions {
  index_t nrow = 8;        // images a row
  index_t padding = 2;     // pixels between and around the images
  bool normalize = false;  // scale to [0, 1] by value_range, else by the minimum and maximum
  std::optional<std::array<double, 2>> value_range = std::nullopt;
  bool scale_each = false;  // normalize each image by its own minimum and maximum
  double pad_value = 0;
};

namespace detail {

// Clamped to [lo, hi], then (x - lo) / max(hi - lo, 1e-5), in place.
template <class T, int R>
void normalize_range(Tensor<T, R> t, std::optional<std::array<double, 2>> range) {
  double lo, hi;
  if (range) {
    lo = (*range)[0], hi = (*range)[1];
  } else {
    lo = static_cast<double>(Tensor<T, 0>(ft::min(t)).item());
    hi = static_cast<double>(Tensor<T, 0>(ft::max(t)).item());
  }
  const auto l = static_cast<T>(lo), scale = static_cast<T>(std::max(hi - lo, 1e-5));
  t = (clamp(t, l, static_cast<T>(hi)) - l) / scale;
}

}  // namespace detail

// The images of [N, C, H, W] (C 1 or 3; one channel is repeated to three) tiled nrow a row
// with padding between them: [3, rows · (H + p) + p, nrow · (W + p) + p]. One image alone is
// returned as it is (three channels). torchvision.utils.make_grid.
template <class T>
Tensor<T, 3> make_grid(const Tensor<T, 4>& images, const GridOptions& options = {}) {
  const char* op = "make_grid";
  const index_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  check(n > 0, op, "no images to tile (", to_string(images.shape()), ")");
  check(options.nrow > 0 && options.padding >= 0, op, "nrow must be positive and padding non-negative");
  Tensor<T, 4> t = c == 1 ? images.expand({n, 3, h, w}).clone() : images.clone();
  if (options.normalize) {
    if (options.scale_each)
      for (index_t k = 0; k < n; ++k) detail::normalize_range(t.select(0, k), options.value_range);
    else
      detail::normalize_range(t, options.value_range);
  }
  if (n == 1) return t.select(0, 0);
  const index_t channels = t.size(1), xmaps = std::min(options.nrow, n), ymaps = (n + xmaps - 1) / xmaps;
  const index_t p = options.padding, height = h + p, width = w + p;
  Tensor<T, 3> grid =
      full<T>({channels, height * ymaps + p, width * xmaps + p}, static_cast<T>(options.pad_value), images.device());
  for (index_t k = 0; k < n; ++k) {
    const index_t y = k / xmaps, x = k % xmaps;
    grid.slice(1, y * height + p, y * height + p + h).slice(2, x * width + p, x * width + p + w) = t.select(0, k);
  }
  return grid;
}
template <class T>
Tensor<T, 3> make_grid(const Tensor<T, 3>& image, const GridOptions& options = {}) {
  return make_grid(image.unsqueeze(0), options);
}

// A [C, H, W] image in [0, 1] as uint8: ⌊clamp(x · 255 + 0.5, 0, 255)⌋ (torchvision's save_image).
template <class T>
Tensor<std::uint8_t, 3> to_uint8_image(const Tensor<T, 3>& image) {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    return image;
  } else {
    Tensor<std::uint8_t, 3> out = cast<std::uint8_t>(clamp(cast<float>(image) * 255.0f + 0.5f, 0.0f, 255.0f));
    return out;
  }
}

// make_grid, then a PNG file (torchvision.utils.save_image): an image [C, H, W] or a batch [N, C, H, W].
template <class T, int R>
void save_image(const Tensor<T, R>& images, const std::string& path, const GridOptions& options = {}) {
  static_assert(R == 3 || R == 4, "ft::vision::save_image: expects [C, H, W] or [N, C, H, W]");
  write_png(to_uint8_image(make_grid(images, options)), path);
}

}  // namespace ft::inline FT_ABI::vision
