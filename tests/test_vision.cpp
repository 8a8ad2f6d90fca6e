// ft::vision: PNG/JPEG decoding and encoding against PIL, bad files, torchvision's transforms
// (golden values from torchvision 0.14, tests/golden/make_vision.py), ImageFolder with the
// DataLoader's per-sample seeds, make_grid / save_image and SummaryWriter's images.
#include <doctest/doctest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/data.hpp"
#include "ft/utils.hpp"
#include "ft/vision.hpp"
#include "golden/golden.hpp"

#ifndef FT_TEST_IMAGES
#define FT_TEST_IMAGES FT_GOLDEN_DIR "/../data/images"
#endif

namespace {

namespace fs = std::filesystem;
using ft::index_t;
using ft::vision::ImageReadMode;

const ft::test::Golden& golden() {
  static const ft::test::Golden g("vision.txt");
  return g;
}

std::string image_path(const std::string& name) { return std::string(FT_TEST_IMAGES) + "/" + name; }

std::vector<std::uint8_t> file_bytes(const std::string& path) { return ft::io::read_file(path, "test"); }

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("ft_test_vision_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Exact equality of an image with a golden record (uint8 values stored as i64).
void check_pixels(const ft::Tensor<std::uint8_t, 3>& got, const std::string& record) {
  const auto& r = golden().record(record);
  REQUIRE(r.shape.size() == 3);
  CHECK(got.size(0) == r.shape[0]);
  CHECK(got.size(1) == r.shape[1]);
  CHECK(got.size(2) == r.shape[2]);
  ft::test::check_close(got.contiguous(), r.values, 0, 0);
}

ft::Tensor<std::uint8_t, 3> golden_image() { return golden().tensor<std::uint8_t, 3>("img"); }

}  // namespace

TEST_CASE("vision: PNG, JPEG, BMP, WebP and TIFF files decode as PIL decodes them") {
  const char* files[] = {"rgb.png",
                         "rgba.png",
                         "gray.png",
                         "gray_alpha.png",
                         "bilevel.png",
                         "palette.png",
                         "rgb_interlaced.png",
                         "rgb.jpg",
                         "gray.jpg",
                         "progressive.jpg",
                         "cmyk.jpg",
                         "rgb.bmp",
                         "gray.bmp",
                         "palette.bmp",
                         "bilevel.bmp",
                         "rgba_v5_topdown.bmp",
                         "rgb565.bmp",
                         "rgb555.bmp",
                         "palette4.bmp",
                         "os2_palette8.bmp",
                         "rle8.bmp",
                         "rle8_gray.bmp",
                         "rle4.bmp",
                         "rgb_lossless.webp",
                         "rgba_lossless.webp",
                         "rgb_lossy.webp",
                         "rgb.tif",
                         "rgba_lzw.tif",
                         "gray_deflate.tif",
                         "gray_alpha.tif",
                         "bilevel_g4.tif",
                         "palette.tif",
                         "rgb_jpeg.tif",
                         "rgb_tiled.tif",
                         "rgb_planar.tif",
                         "rgba_tiled_planar.tif",
                         "rgba_planar.tif",
                         "cmyk.tif",
                         "bilevel_tiled.tif"};
  for (const char* f : files) {
    CAPTURE(f);
    const std::string name = f;
    if (golden().has(name + ".pixels")) check_pixels(ft::vision::read_image(image_path(f)), name + ".pixels");
    check_pixels(ft::vision::read_image(image_path(f), ImageReadMode::RGB), name + ".rgb");
    check_pixels(ft::vision::read_image(image_path(f), ImageReadMode::GRAY), name + ".gray");
  }
  // 16-bit files: rounded to 8 bits
  check_pixels(ft::vision::read_image(image_path("gray16.png")), "gray16.png.pixels");
  check_pixels(ft::vision::read_image(image_path("rgb16.png")), "rgb16.png.pixels");
  check_pixels(ft::vision::read_image(image_path("gray16_interlaced.png")), "gray16_interlaced.png.pixels");
  check_pixels(ft::vision::read_image(image_path("gray16.tif")), "gray16.tif.pixels");  // libtiff's RGBA conversion
  // the other modes: alpha added as 255 or kept
  auto rgba = ft::vision::read_image(image_path("rgb.png"), ImageReadMode::RGB_ALPHA);
  CHECK(rgba.size(0) == 4);
  CHECK(rgba.select(0, 3).to_vector() == std::vector<std::uint8_t>(13 * 17, 255));
  auto ga = ft::vision::read_image(image_path("rgba.png"), ImageReadMode::GRAY_ALPHA);
  auto full = ft::vision::read_image(image_path("rgba.png"));
  CHECK(ga.select(0, 1).contiguous().to_vector() == full.select(0, 3).contiguous().to_vector());
}

TEST_CASE("vision: run-length BMPs: deltas, early line ends and odd RLE4 literals as the format defines them") {
  // a 4 × 3 palette image (indices 0 … 15 of a gray palette, so a pixel is 17 · index), bottom row first
  auto bmp = [](std::uint32_t compression, std::uint16_t bits, std::vector<std::uint8_t> stream) {
    std::vector<std::uint8_t> b = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    auto u32 = [&](std::uint32_t v) {
      for (int k = 0; k < 4; ++k) b.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
    };
    const std::uint32_t offset = 14 + 40 + 16 * 4;
    u32(40), u32(4), u32(3), b.push_back(1), b.push_back(0), b.push_back(static_cast<std::uint8_t>(bits)),
        b.push_back(0), u32(compression), u32(static_cast<std::uint32_t>(stream.size())), u32(0), u32(0), u32(16),
        u32(0);
    for (int k = 0; k < 16; ++k)
      for (int c = 0; c < 4; ++c) b.push_back(c < 3 ? static_cast<std::uint8_t>(17 * k) : 0);
    for (int k = 0; k < 4; ++k) b[10 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(offset >> (8 * k));
    b.insert(b.end(), stream.begin(), stream.end());
    return b;
  };
  auto rows = [](const ft::Tensor<std::uint8_t, 3>& img) {
    std::vector<int> v;
    for (auto p : img.to_vector()) v.push_back(p / 17);
    return v;
  };
  // RLE8: bottom row "1 1 2 2", then a delta of (1 right, 1 up) from its end: x 5 is past the row, so
  // the middle row keeps 0s; then literals 3 4 5 on the top row after an end of line … (a run past
  // the row's end is cut there)
  auto rle8 = bmp(1, 8, {2, 1, 2, 2, 0, 2, 1, 1, 0, 0, 0, 3, 3, 4, 5, 0, 9, 7, 0, 1});
  CHECK(rows(ft::vision::decode_image(rle8, "rle8")) == std::vector<int>{3, 4, 5, 7, 0, 0, 0, 0, 1, 1, 2, 2});
  // RLE4: an odd literal run of 3 (two bytes, the last nibble unused), a run of alternating 6 9
  auto rle4 = bmp(2, 4, {0, 3, 0x12, 0x30, 0, 0, 4, 0x69, 0, 0, 1, 0xf0, 0, 1});
  CHECK(rows(ft::vision::decode_image(rle4, "rle4")) == std::vector<int>{15, 0, 0, 0, 6, 9, 6, 9, 1, 2, 3, 0});
  // the end of the data before the end of the bitmap
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(bmp(1, 8, {4, 1, 0, 0}), "short.bmp");
        }).find("\"short.bmp\" is truncated: its run-length data ends") != std::string::npos);
}

TEST_CASE("vision: every frame of an animated WebP and every page of a TIFF, as PIL's seek reads them") {
  for (const char* f : {"animated.webp", "animated_alpha.webp", "pages.tif"}) {
    CAPTURE(f);
    const std::string name = f;
    const auto bytes = file_bytes(image_path(f));
    const auto n = static_cast<std::size_t>(golden().scalar(name + ".frames"));
    CHECK(ft::vision::frame_count(bytes, name) == n);
    const auto frames = ft::vision::read_frames(image_path(f));
    REQUIRE(frames.size() == n);
    for (std::size_t k = 0; k < n; ++k) {
      CAPTURE(k);
      check_pixels(frames[k], name + ".frame" + std::to_string(k));
      check_pixels(ft::vision::decode_image(bytes, name, {.frame = k}), name + ".frame" + std::to_string(k));
    }
    CHECK(ft::vision::read_image(image_path(f)).to_vector() == frames[0].to_vector());  // PIL opens the first
    // every prefix: the frames, or an error naming the file
    for (std::size_t cut = 0; cut < bytes.size(); cut += 3) {
      const std::string e = ft::test::error_of([&] {
        auto got = ft::vision::decode_frames(std::span<const std::uint8_t>(bytes.data(), cut), "cut.img");
        REQUIRE(got.size() == n);
        for (std::size_t k = 0; k < n; ++k) CHECK(got[k].to_vector() == frames[k].to_vector());
      });
      CHECK((e == "no error" || e.find("cut.img") != std::string::npos));
    }
  }
  CHECK(ft::vision::frame_count(file_bytes(image_path("rgb.png"))) == 1);
  CHECK(ft::vision::read_frames(image_path("rle4.bmp")).size() == 1);
}

TEST_CASE("vision: encode_png and write_png round-trip 1 to 4 channels") {
  auto dir = temp_dir("png");
  for (int c = 1; c <= 4; ++c) {
    CAPTURE(c);
    auto img = ft::test::random_tensor<std::uint8_t>({c, 9, 14}, ft::kCPU, 7u + static_cast<unsigned>(c), 0, 256);
    auto bytes = ft::vision::encode_png(img.transpose(1, 2).transpose(1, 2));
    CHECK(ft::vision::is_png(bytes));
    CHECK(ft::vision::decode_png(bytes).to_vector() == img.to_vector());
    const std::string path = (dir / ("c" + std::to_string(c) + ".png")).string();
    ft::vision::write_png(img, path, 9);
    CHECK(ft::vision::read_image(path).to_vector() == img.to_vector());
  }
  auto five = ft::zeros<std::uint8_t>({5, 2, 2});
  CHECK(ft::test::error_of([&] { ft::vision::encode_png(five); }).find("1, 2, 3 or 4 channels") != std::string::npos);
}

TEST_CASE("vision: corrupt, truncated, huge and foreign files are an ft::Error naming the file") {
  // every prefix of every file: an error (or, past the image data, the image), never a crash
  for (const char* f :
       {"rgb.png", "palette.png", "gray16.png", "rgb.jpg", "progressive.jpg", "cmyk.jpg", "rgb.bmp", "palette4.bmp",
        "rgba_v5_topdown.bmp", "os2_palette8.bmp", "rle8.bmp", "rle4.bmp", "rgba_lossless.webp", "rgb_lossy.webp",
        "animated_alpha.webp", "rgba_lzw.tif", "bilevel_g4.tif", "rgb_tiled.tif", "rgb_jpeg.tif"}) {
    CAPTURE(f);
    const auto bytes = file_bytes(image_path(f));
    const auto whole = ft::vision::decode_image(bytes).to_vector();
    int errors = 0;
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      std::span<const std::uint8_t> prefix(bytes.data(), n);
      const std::string e = ft::test::error_of([&] {
        auto img = ft::vision::decode_image(prefix, "cut.img");
        CHECK(img.to_vector() == whole);  // only a cut after the last needed byte may decode
      });
      if (e != "no error") {
        CHECK(e.find("cut.img") != std::string::npos);
        ++errors;
      }
    }
    CHECK(errors > static_cast<int>(bytes.size()) * 9 / 10);
    // flipped bytes: decoded (to something) or an error
    for (std::size_t at = 8; at < bytes.size(); at += 7) {
      auto bad = bytes;
      bad[at] ^= 0x5a;
      const std::string e = ft::test::error_of([&] { ft::vision::decode_image(bad, "flipped.img"); });
      CHECK((e == "no error" || e.find("flipped.img") != std::string::npos));
    }
  }
  // a PNG header declaring 1,000,000 × 1,000,000 pixels: refused before allocating
  auto png = file_bytes(image_path("gray.png"));
  const std::uint8_t huge[8] = {0x00, 0x0f, 0x42, 0x40, 0x00, 0x0f, 0x42, 0x40};
  std::copy(huge, huge + 8, png.begin() + 16);
  const auto crc = static_cast<std::uint32_t>(crc32(0, png.data() + 12, 17));  // zlib's (the PNG) CRC-32
  for (int k = 0; k < 4; ++k) png[29 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
  std::string e = ft::test::error_of([&] { ft::vision::decode_png(png, "huge.png"); });
  CHECK(e.find("huge.png") != std::string::npos);
  CHECK(e.find("1000000 × 1000000") != std::string::npos);
  // a smaller limit
  e = ft::test::error_of(
      [&] { ft::vision::decode_image(file_bytes(image_path("rgb.jpg")), "x.jpg", {.max_pixels = 100}); });
  CHECK(e.find("13 × 17") == std::string::npos);
  CHECK(e.find("17 × 13 pixels, more than the limit of 100") != std::string::npos);
  // BMP: a header declaring 1,000,000 × 1,000,000 pixels, run-length compression, 0 × 13 pixels
  const auto bmp = file_bytes(image_path("rgb.bmp"));  // the 40-byte header: width at 18, compression at 30
  auto set32 = [](std::vector<std::uint8_t> b, std::size_t at, std::uint32_t v) {
    for (int k = 0; k < 4; ++k) b[at + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(v >> (8 * k));
    return b;
  };
  auto bmp_huge = set32(set32(bmp, 18, 1000000), 22, 1000000);
  CHECK(ft::test::error_of([&] { ft::vision::decode_image(bmp_huge, "huge.bmp"); }).find("1000000 × 1000000") !=
        std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(set32(bmp, 30, 1), "rle.bmp");
        }).find("\"rle.bmp\": BI_RLE8 with 24 bits a pixel (BI_RLE8 needs 8)") != std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(set32(bmp, 30, 4), "jpeg.bmp");
        }).find("\"jpeg.bmp\": BI_JPEG compression is not supported") != std::string::npos);
  CHECK(ft::test::error_of([&] { ft::vision::decode_image(set32(bmp, 18, 0), "empty.bmp"); }).find("0 × 13") !=
        std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(set32(bmp, 14, 64), "os2v2.bmp");
        }).find("a 64-byte info header is not supported") != std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(file_bytes(image_path("animated.webp")), "a.webp", {.frame = 2});
        }).find("\"a.webp\" has 2 frames; frame 2 was asked for") != std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(file_bytes(image_path("pages.tif")), "p.tif", {.frame = 3});
        }).find("\"p.tif\" has 3 pages; page 3 was asked for") != std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(file_bytes(image_path("rgb.png")), "one.png", {.frame = 1});
        }).find("\"one.png\" has one frame; frame 1 was asked for") != std::string::npos);
  // TIFF: tiles declared 65520 × 65520 (12 GB a tile) in a 17 × 13 image: refused before allocating
  // ("a tile far larger than the image")
  auto tif = file_bytes(image_path("rgb_tiled.tif"));  // little-endian; its first directory's entries
  const std::size_t ifd = tif[4] | tif[5] << 8 | tif[6] << 16 | static_cast<std::size_t>(tif[7]) << 24;
  for (std::size_t k = 0, n = tif[ifd] | tif[ifd + 1] << 8; k < n; ++k) {
    const std::size_t at = ifd + 2 + 12 * k, tag = tif[at] | tif[at + 1] << 8;
    if (tag == 322 || tag == 323) tif[at + 8] = 0xf0, tif[at + 9] = 0xff;  // TileWidth, TileLength (SHORT)
  }
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(tif, "tiles.tif");
        }).find("\"tiles.tif\" is not a valid TIFF: a tile far larger") != std::string::npos);
  // not an image, a missing file
  const std::vector<std::uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  CHECK(ft::test::error_of([&] {
          ft::vision::decode_image(text, "notes.txt");
        }).find("not a PNG, JPEG, BMP, WebP or TIFF") != std::string::npos);
  CHECK(ft::test::error_of([&] { ft::vision::read_image("/nonexistent/cat.png"); }).find("/nonexistent/cat.png") !=
        std::string::npos);
}

TEST_CASE("vision: resize, crops, flip, brightness, contrast and pad equal torchvision's") {
  const auto img = golden_image();
  const auto imgf = golden().tensor<float, 3>("imgf");
  namespace v = ft::vision;
  using U8 = ft::Tensor<std::uint8_t, 3>;
  using F32 = ft::Tensor<float, 3>;
  struct Case {
    const char* name;
    std::function<U8()> u8;
    std::function<F32()> f32;
  };
  const std::vector<Case> cases = {
      {"resize_down",
       [&] {
         return v::resize(img, {11, 15});
       },
       nullptr},
      {"resize_down_float", nullptr,
       [&] {
         return v::resize(imgf, {11, 15});
       }},
      {"resize_shorter", [&] { return v::resize(img, {16}); }, nullptr},
      {"resize_max_size", [&] { return v::resize(img, {16}, true, 20); }, nullptr},
      {"resize_up",
       [&] {
         return v::resize(img, {40, 50});
       },
       nullptr},
      {"resize_mixed", nullptr,
       [&] {
         return v::resize(imgf, {46, 12});
       }},
      {"resize_down_plain",
       [&] {
         return v::resize(img, {11, 15}, false);
       },
       nullptr},
      {"resize_down_plain_float", nullptr,
       [&] {
         return v::resize(imgf, {11, 15}, false);
       }},
      {"center_crop", [&] { return v::center_crop(img, 10, 12); }, nullptr},
      {"center_crop_odd", [&] { return v::center_crop(img, 8, 9); }, nullptr},
      {"center_crop_large", [&] { return v::center_crop(img, 26, 33); }, nullptr},
      {"crop_outside", [&] { return v::crop(img, -2, 25, 6, 9); }, nullptr},
      {"resized_crop",
       [&] {
         return v::resized_crop(img, 3, 4, 15, 20, {9, 7});
       },
       nullptr},
      {"hflip", [&] { return v::hflip(img); }, nullptr},
      {"to_tensor", nullptr, [&] { return v::to_tensor(img); }},
      {"normalize", nullptr,
       [&] {
         return v::normalize(imgf, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
       }},
      {"brightness", [&] { return v::adjust_brightness(img, 1.7); }, nullptr},
      {"brightness_float", nullptr, [&] { return v::adjust_brightness(imgf, 0.6); }},
      {"contrast", [&] { return v::adjust_contrast(img, 0.5); }, nullptr},
      {"contrast_high", [&] { return v::adjust_contrast(img, 1.8); }, nullptr},
      {"contrast_float", nullptr, [&] { return v::adjust_contrast(imgf, 1.3); }},
      {"saturation", [&] { return v::adjust_saturation(img, 0.3); }, nullptr},
      {"saturation_high", [&] { return v::adjust_saturation(img, 1.7); }, nullptr},
      {"saturation_float", nullptr, [&] { return v::adjust_saturation(imgf, 1.4); }},
      {"hue", [&] { return v::adjust_hue(img, 0.2); }, nullptr},
      {"hue_neg", [&] { return v::adjust_hue(img, -0.35); }, nullptr},
      {"hue_float", nullptr, [&] { return v::adjust_hue(imgf, 0.1); }},
      {"hue_float_half", nullptr, [&] { return v::adjust_hue(imgf, -0.5); }},
      {"pad_reflect",
       [&] {
         return U8(ft::pad(img, {2, 4, 3, 1}, "reflect"));
       },
       nullptr},
      {"pad_edge",
       [&] {
         return U8(ft::pad(img, {2, 4, 3, 1}, "replicate"));
       },
       nullptr},
  };
  for (const auto& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    // uint8 results equal PyTorch's, or differ by one where PyTorch's value before rounding (a
    // resize: a tie at .5) or truncation (a blend, a hue shift: an integer) sits on the edge,
    // so that another order of the same float operations may land on its other side
    auto near_edges = [&](const std::string& suffix, double edge, double tol, int most) {
      const auto got = ft::test::to_double(c.u8().contiguous());
      const auto& want = golden().values(name);
      const auto& exact = golden().values(name + suffix);
      REQUIRE(got.size() == want.size());
      int flips = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) continue;
        CAPTURE(i);
        const double frac = exact[i] - std::floor(exact[i]);
        CHECK(std::min(std::abs(frac - edge), std::abs(frac - edge - 1)) < tol);
        CHECK(std::abs(got[i] - want[i]) == 1);
        ++flips;
      }
      CHECK(flips <= most);
    };
    if (c.u8 && golden().has(name + ".unrounded")) {
      near_edges(".unrounded", 0.5, 1e-4, 2);
    } else if (c.u8 && golden().has(name + ".untruncated")) {
      near_edges(".untruncated", 0.0, 1e-3, 4);
    } else if (c.u8) {
      check_pixels(c.u8(), c.name);
    } else {
      const F32 out = c.f32();
      const auto& r = golden().record(c.name);
      REQUIRE(static_cast<index_t>(r.values.size()) == out.numel());
      ft::test::check_close(out.contiguous(), r.values, 1e-5, 1e-6);
    }
  }
}

TEST_CASE("vision: the elementwise transforms are one launch each, on a batch too") {
  auto batch = ft::test::random_tensor<std::uint8_t>({4, 3, 8, 8}, ft::kCPU, 3, 0, 256);
  ft::stats::reset();
  auto x = ft::vision::to_tensor(batch);
  ft::test::expect_launches(ft::kCPU, 1);
  ft::stats::reset();
  auto y = ft::vision::normalize(x, {0.5, 0.4, 0.3}, {0.2, 0.2, 0.2});
  ft::test::expect_launches(ft::kCPU, 1);
  CHECK(y.shape() == x.shape());
  CHECK(y.data()[64] == doctest::Approx((x.data()[64] - 0.4f) / 0.2f));
  ft::stats::reset();
  auto z = ft::vision::adjust_brightness(batch, 1.2);
  ft::test::expect_launches(ft::kCPU, 1);
  CHECK(z.shape() == batch.shape());
  ft::stats::reset();
  auto sat = ft::vision::adjust_saturation(batch, 0.5);
  ft::test::expect_launches(ft::kCPU, 1);
  ft::stats::reset();
  auto hue = ft::vision::adjust_hue(x, 0.25);  // RGB -> HSV -> RGB in one kernel
  ft::test::expect_launches(ft::kCPU, 1);
  CHECK(hue.shape() == x.shape());
  // each image of the batch as it is alone
  auto one = ft::vision::adjust_hue(x.slice(0, 2, 3).reshape({3, 8, 8}), 0.25);
  CHECK(ft::test::to_double(one) == ft::test::to_double(hue.slice(0, 2, 3).reshape({3, 8, 8})));
  CHECK(ft::test::to_double(ft::vision::adjust_saturation(batch.slice(0, 1, 2), 0.5)) ==
        ft::test::to_double(sat.slice(0, 1, 2)));
  // a full turn of hue (two halves) and saturation 1 give the image back (floats: to rounding)
  ft::test::check_close(ft::vision::adjust_hue(ft::vision::adjust_hue(x, 0.5), -0.5), ft::test::to_double(x), 1e-5,
                        1e-5);
  CHECK(ft::test::to_double(ft::vision::adjust_saturation(batch, 1.0)) == ft::test::to_double(batch));
  // one channel: returned as it is; bad factors and channel counts: errors
  auto gray = batch.slice(1, 0, 1);
  CHECK(ft::vision::adjust_hue(gray, 0.3).data() == gray.data());
  CHECK(ft::vision::adjust_saturation(gray, 0.3).data() == gray.data());
  CHECK_THROWS_WITH(ft::vision::adjust_hue(batch, 0.6), doctest::Contains("[-0.5, 0.5]"));
  CHECK_THROWS_WITH(ft::vision::adjust_saturation(batch, -1), doctest::Contains("non-negative"));
  CHECK_THROWS_WITH(ft::vision::adjust_hue(batch.slice(1, 0, 2), 0.1), doctest::Contains("1 or 3 channels"));
}

TEST_CASE("vision: the random transforms follow their seed and stay in bounds") {
  namespace v = ft::vision;
  const auto img = golden_image();
  auto tf = v::Compose(v::RandomResizedCrop{{12}}, v::RandomHorizontalFlip{}, v::ColorJitter{0.4, 0.4, 0.4, 0.1},
                       v::RandomCrop(10, {.padding = {2}, .padding_mode = ft::PadMode::reflect}), v::ToTensor{},
                       v::Normalize({0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}));
  v::Rng a(11), b(11), c(12);
  auto xa = tf(img, a), xb = tf(img, b), xc = tf(img, c);
  CHECK(xa.shape() == ft::Shape<3>{3, 10, 10});
  CHECK(xa.to_vector() == xb.to_vector());
  CHECK(xa.to_vector() != xc.to_vector());
  // ColorJitter: nothing asked, nothing changed; its hue range is checked
  v::Rng j(3);
  CHECK(v::ColorJitter{}(img, j).to_vector() == img.to_vector());
  CHECK_THROWS_WITH(v::ColorJitter{.hue = 0.7}(img, j), doctest::Contains("hue must be in [0, 0.5]"));
  // the draws: the order (three), then a factor for each adjustment asked (here saturation
  // only, uniform in [0, 2]); the one adjustment is applied once
  v::Rng k(21), replay(21);
  for (int m = 3; m > 0; --m) replay.randint(0, m + 1);
  const double fs = replay.uniform(0.0, 2.0);
  CHECK(v::ColorJitter{.saturation = 1.0}(img, k).to_vector() == v::adjust_saturation(img, fs).to_vector());
  // RandomResizedCrop's box: inside the image, of an area in scale and an aspect ratio in ratio (up to rounding)
  v::RandomResizedCrop rrc{{8}, {0.25, 0.5}, {0.5, 2.0}};
  v::Rng r(5);
  for (int k = 0; k < 200; ++k) {
    const auto box = rrc.params(23, 31, r);
    CHECK(box.top >= 0);
    CHECK(box.left >= 0);
    CHECK(box.top + box.height <= 23);
    CHECK(box.left + box.width <= 31);
    const double area = double(box.height * box.width) / (23 * 31);
    CHECK(area >= 0.2);
    CHECK(area <= 0.56);
  }
  // a flip with p = 1 is hflip; the crop of the whole image is the image
  v::Rng any(1);
  CHECK(v::RandomHorizontalFlip{1.0}(img, any).contiguous().to_vector() == v::hflip(img).to_vector());
  CHECK(v::RandomCrop(23, 31)(img, any).contiguous().to_vector() == img.to_vector());
  // errors name the transform
  CHECK(ft::test::error_of([&] { v::RandomCrop(40)(img, any); }).find("RandomCrop") != std::string::npos);
  CHECK(ft::test::error_of([&] {
          v::normalize(golden().tensor<float, 3>("imgf"), {0.5, 0.5}, {1, 1});
        }).find("3 channels") != std::string::npos);
}

TEST_CASE("vision: ImageFolder finds classes and files as torchvision, and reads them") {
  auto root = temp_dir("folder");
  fs::create_directories(root / "dog" / "inner");
  fs::create_directories(root / "cat");
  fs::create_directories(root / "ant");
  fs::copy_file(image_path("rgb.png"), root / "dog" / "b.png");
  fs::copy_file(image_path("rgb.jpg"), root / "dog" / "a.JPG");
  fs::copy_file(image_path("gray.png"), root / "dog" / "inner" / "c.png");
  fs::copy_file(image_path("rgba.png"), root / "cat" / "z.png");
  fs::copy_file(image_path("cmyk.jpg"), root / "ant" / "1.jpeg");
  write_bytes(root / "cat" / "notes.txt", {'x'});
  ft::vision::ImageFolder folder(root.string());
  CHECK(folder.classes() == std::vector<std::string>{"ant", "cat", "dog"});
  CHECK(folder.size() == 5);
  CHECK(folder.targets() == std::vector<std::int64_t>{0, 1, 2, 2, 2});
  CHECK(fs::path(folder.samples()[2].path).filename() == "a.JPG");
  CHECK(fs::path(folder.samples()[4].path).filename() == "c.png");
  CHECK(folder.class_to_idx().at("dog") == 2);
  auto [img, label] = folder.get(4);
  CHECK(label.item() == 2);
  check_pixels(img, "gray.png.rgb");  // RGB by default, as torchvision's loader
  // with a transform; a corrupt file is an error naming it
  ft::vision::ImageFolder small(root.string(), ft::vision::Compose(ft::vision::Resize{{6, 6}}, ft::vision::ToTensor{}));
  auto [x, y] = small.get(0);
  CHECK(x.shape() == ft::Shape<3>{3, 6, 6});
  write_bytes(root / "cat" / "z.png", {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0});
  CHECK(ft::test::error_of([&] { small.get(1); }).find("z.png") != std::string::npos);
  // an empty class folder
  fs::create_directories(root / "empty");
  CHECK(ft::test::error_of([&] { ft::vision::ImageFolder f(root.string()); }).find("empty") != std::string::npos);
  CHECK(ft::vision::ImageFolder(root.string(), {}, {.allow_empty = true}).classes().size() == 4);
  CHECK(ft::test::error_of([&] { ft::vision::ImageFolder f((root / "nothing").string()); }).find("not a directory") !=
        std::string::npos);
}

TEST_CASE("vision: augmentation in the DataLoader depends on (seed, epoch, index), not on the workers") {
  auto root = temp_dir("loader");
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(root / ("class" + std::to_string(c)));
    for (int i = 0; i < 6; ++i)
      fs::copy_file(image_path(i % 2 ? "rgb.png" : "rgb.jpg"),
                    root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + (i % 2 ? ".png" : ".jpg")));
  }
  namespace v = ft::vision;
  v::ImageFolder train(root.string(), v::Compose(v::RandomResizedCrop{{8}}, v::RandomHorizontalFlip{}, v::ToTensor{}));
  auto epochs = [&](int workers, std::uint64_t seed) {
    ft::data::DataLoader loader(train, {.batch_size = 5, .shuffle = true, .seed = seed, .num_workers = workers});
    std::vector<std::vector<float>> out;
    for (int e = 0; e < 2; ++e)
      for (auto& [x, y] : loader) {
        CHECK(x.shape()[1] == 3);
        out.push_back(x.to_vector());
      }
    return out;
  };
  const auto serial = epochs(0, 3);
  CHECK(serial.size() == 6);
  CHECK(serial == epochs(2, 3));
  CHECK(serial == epochs(3, 3));
  CHECK(serial != epochs(0, 4));
  CHECK(serial[0] != serial[3]);  // epochs differ
}

TEST_CASE("vision: make_grid and save_image equal torchvision.utils'") {
  const auto batch = golden().tensor<float, 4>("grid.in");
  namespace v = ft::vision;
  ft::test::check_close(
      v::make_grid(batch, {.nrow = 2, .padding = 1, .normalize = true, .pad_value = 0.5}).contiguous(),
      golden().values("grid.out"));
  ft::test::check_close(v::make_grid(batch, {.nrow = 3, .normalize = true, .scale_each = true}).contiguous(),
                        golden().values("grid_each.out"));
  ft::test::check_close(
      v::make_grid(batch, {.padding = 0, .normalize = true, .value_range = std::array<double, 2>{0, 1}}).contiguous(),
      golden().values("grid_range.out"));
  const std::string path = (temp_dir("save") / "grid.png").string();
  v::save_image(ft::Tensor<float, 4>(ft::clamp(batch, 0.0f, 1.0f)), path, {.nrow = 4});
  check_pixels(v::read_image(path), "save_image.out");
}

TEST_CASE("vision: SummaryWriter's images read back as PNGs of the right size") {
  const auto dir = temp_dir("tb");
  {
    ft::utils::SummaryWriter writer(dir.string());
    writer.add_image("one", golden().tensor<float, 3>("imgf"), 1);
    writer.add_image("gray_hw", ft::full<float>({5, 7}, 0.5f), 2, "HW");
    writer.add_images("batch", golden().tensor<float, 4>("grid.in"), 3);
    writer.add_image("u8", golden_image().permute({1, 2, 0}), 4, "HWC");
    CHECK(ft::test::error_of([&] {
            writer.add_image("bad", ft::zeros<float>({2, 4, 4}), 5);
          }).find("channels") != std::string::npos);
  }
  std::vector<ft::utils::SummaryValue> images;
  for (const auto& entry : fs::directory_iterator(dir))
    for (const auto& ev : ft::utils::read_events(entry.path().string()))
      for (const auto& value : ev.values)
        if (value.image) images.push_back(value);
  REQUIRE(images.size() == 4);
  struct Want {
    const char* tag;
    index_t c, h, w;
  };
  const Want want[] = {{"one", 3, 23, 31}, {"gray_hw", 3, 5, 7}, {"batch", 3, 4, 30}, {"u8", 3, 23, 31}};
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(want[i].tag);
    const auto& im = *images[i].image;
    CHECK(images[i].tag == want[i].tag);
    CHECK(im.height == want[i].h);
    CHECK(im.width == want[i].w);
    CHECK(im.colorspace == want[i].c);
    const std::vector<std::uint8_t> png(im.encoded.begin(), im.encoded.end());
    auto decoded = ft::vision::decode_png(png);
    CHECK(decoded.shape() == ft::Shape<3>{want[i].c, want[i].h, want[i].w});
  }
  // uint8 as it is; floats × 255 truncated (torch's add_image)
  const std::vector<std::uint8_t> u8(images[3].image->encoded.begin(), images[3].image->encoded.end());
  CHECK(ft::vision::decode_png(u8).to_vector() == golden_image().to_vector());
  const std::vector<std::uint8_t> gray(images[1].image->encoded.begin(), images[1].image->encoded.end());
  CHECK(ft::vision::decode_png(gray).to_vector() == std::vector<std::uint8_t>(3 * 5 * 7, 127));
}

FT_GPU_TEST_CASE("vision: the transforms on a GPU equal the CPU's") {
  namespace v = ft::vision;
  const ft::Device gpu(ft::kCUDA);
  const auto img = golden_image();
  const auto dimg = img.to(gpu);
  auto same = [](const auto& got, const auto& want, double tol) {
    ft::test::check_close(got.to(ft::kCPU).contiguous(), ft::test::to_double(want.contiguous()), tol, tol);
  };
  same(v::resize(dimg, {11, 15}), v::resize(img, {11, 15}), 1.0);  // uint8: a rounding may differ by one
  same(v::resize(v::to_tensor(dimg), {40, 50}), v::resize(v::to_tensor(img), {40, 50}), 1e-5);
  same(v::resize(dimg, {11, 15}, false), v::resize(img, {11, 15}, false), 0);
  ft::stats::reset();
  auto x = v::normalize(v::to_tensor(dimg), {0.5, 0.4, 0.3}, {0.2, 0.2, 0.2});
  same(x, v::normalize(v::to_tensor(img), {0.5, 0.4, 0.3}, {0.2, 0.2, 0.2}), 1e-6);
  same(v::adjust_contrast(dimg, 0.5), v::adjust_contrast(img, 0.5), 1.0);
  same(v::adjust_brightness(dimg, 1.7), v::adjust_brightness(img, 1.7), 0);
  same(v::adjust_saturation(dimg, 1.7), v::adjust_saturation(img, 1.7), 1.0);
  same(v::adjust_hue(dimg, -0.35), v::adjust_hue(img, -0.35), 1.0);
  same(v::adjust_hue(v::to_tensor(dimg), 0.1), v::adjust_hue(v::to_tensor(img), 0.1), 1e-5);
  same(v::center_crop(dimg, 26, 33), v::center_crop(img, 26, 33), 0);
  same(v::hflip(dimg), v::hflip(img), 0);
  const auto batch = golden().tensor<float, 4>("grid.in");
  same(v::make_grid(batch.to(gpu), {.nrow = 2, .normalize = true}), v::make_grid(batch, {.nrow = 2, .normalize = true}),
       1e-6);
}
