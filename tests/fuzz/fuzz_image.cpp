// libFuzzer harness: PNG, JPEG, WebP, TIFF and BMP decoding (libpng, libjpeg-turbo, libwebp and
// libtiff behind ft::vision's error handling: longjmp out of the libraries, libtiff's per-file
// handlers; BMP read directly; the pixel limit checked before allocation) in every read mode,
// every frame of animations and multi-page TIFFs, and the PNG encoder on what was decoded. Any
// input must either decode or throw ft::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ft/vision/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using ft::vision::ImageReadMode;
  const std::span<const std::uint8_t> bytes(data, size);
  // the first byte picks the mode, so the fuzzer explores the conversions too
  const ImageReadMode modes[] = {ImageReadMode::UNCHANGED, ImageReadMode::GRAY, ImageReadMode::GRAY_ALPHA,
                                 ImageReadMode::RGB, ImageReadMode::RGB_ALPHA};
  const ImageReadMode mode = size ? modes[data[size - 1] % 5] : ImageReadMode::UNCHANGED;
  try {
    // a small pixel limit keeps each run fast; the limit itself is exercised by large headers
    auto image = ft::vision::decode_image(bytes, "fuzz.img", {.mode = mode, .max_pixels = 1u << 20});
    if (image.size(0) <= 4) (void)ft::vision::decode_png(ft::vision::encode_png(image, 1));
  } catch (const ft::Error&) {
  }
  try {  // an animation's frames or a TIFF's pages (a few: each may be as large as the limit)
    if (ft::vision::frame_count(bytes, "fuzz.img") <= 8)
      (void)ft::vision::decode_frames(bytes, "fuzz.img", {.mode = mode, .max_pixels = 1u << 20});
  } catch (const ft::Error&) {
  }
  return 0;
}
