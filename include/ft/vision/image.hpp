// Images in and out: PNG through libpng, JPEG through libjpeg-turbo, WebP through libwebp, TIFF
// through libtiff, BMP read directly, into and out of uint8 CHW tensors (torchvision.io's decode_image / read_image /
// encode_png / write_png).
//
//   ft::Tensor<std::uint8_t, 3> img = ft::vision::read_image("cat.jpg", ft::vision::ImageReadMode::RGB);
//   ft::vision::write_png(img, "cat.png");
//
// Decoding checks the image's dimensions against a limit before anything is allocated, and a
// corrupt, truncated or unsupported file is an ft::Error naming it (never a crash). Without
// libpng, libjpeg, libwebp or libtiff (CMake finds them: Debian libpng-dev, libjpeg62-turbo-dev,
// libwebp-dev, libtiff-dev) the functions of that format are an ft::Error that says so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/io/file.hpp"

#if defined(FT_HAVE_PNG)
#include <png.h>
#endif
#if defined(FT_HAVE_WEBP)
#include <webp/decode.h>
#include <webp/demux.h>
#endif
#if defined(FT_HAVE_TIFF)
#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#endif
#if defined(FT_HAVE_JPEG)
#include <csetjmp>
// jpeglib.h needs size_t and FILE declared before it.
#include <jerror.h>  // the message codes (JWRN_JPEG_EOF)
#include <jpeglib.h>
#endif

namespace ft::inline FT_ABI::vision {

// The channels a decoded image gets (torchvision.io.ImageReadMode): UNCHANGED keeps the file's
// (gray 1, gray + alpha 2, RGB 3, RGBA 4; a palette becomes RGB, or RGBA with transparency).
// Each mode's value is its number of channels.
enum class ImageReadMode { UNCHANGED = 0, GRAY = 1, GRAY_ALPHA = 2, RGB = 3, RGB_ALPHA = 4 };

struct DecodeOptions {
  ImageReadMode mode = ImageReadMode::UNCHANGED;
  // The most pixels (width × height) a file may declare; a larger one is an ft::Error before
  // any allocation (the default: 16384 × 16384).
  std::uint64_t max_pixels = std::uint64_t{1} << 28;
  // Which frame of an animated WebP (composited onto its canvas, as PIL's seek) or page of a
  // multi-page TIFF; other files have frame 0 only. frame_count tells how many there are.
  std::size_t frame = 0;
};

inline bool is_png(std::span<const std::uint8_t> b) {
  static constexpr std::uint8_t magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return b.size() >= 8 && std::memcmp(b.data(), magic, 8) == 0;
}
inline bool is_jpeg(std::span<const std::uint8_t> b) {
  return b.size() >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff;
}
inline bool is_bmp(std::span<const std::uint8_t> b) { return b.size() >= 2 && b[0] == 'B' && b[1] == 'M'; }
inline bool is_tiff(std::span<const std::uint8_t> b) {
  return b.size() >= 4 && ((b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
                           (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43)));
}
inline bool is_webp(std::span<const std::uint8_t> b) {
  return b.size() >= 12 && std::memcmp(b.data(), "RIFF", 4) == 0 && std::memcmp(b.data() + 8, "WEBP", 4) == 0;
}

namespace detail {

// An interleaved (HWC) 8-bit image as a decoder writes it.
struct Interleaved {
  std::vector<std::uint8_t> pixels;
  index_t height = 0, width = 0;
  int channels = 0;
};

// HWC bytes → a CHW tensor.
inline Tensor<std::uint8_t, 3> to_chw(const Interleaved& im) {
  auto out = empty<std::uint8_t>({im.channels, im.height, im.width});
  const index_t plane = im.height * im.width;
  const std::uint8_t* src = im.pixels.data();
  std::uint8_t* dst = out.data();
  const int c = im.channels;
  for (index_t p = 0; p < plane; ++p)
    for (int k = 0; k < c; ++k) dst[k * plane + p] = src[p * c + k];
  return out;
}

// Gray from RGB as PIL's "L" conversion and torchvision (ITU-R 601-2: 0.299, 0.587, 0.114),
// rounded; alpha kept or dropped, gray widened to RGB, alpha added as 255.
inline Interleaved convert_channels(Interleaved im, ImageReadMode mode) {
  const bool has_alpha = im.channels == 2 || im.channels == 4;
  const bool is_gray = im.channels <= 2;
  if (mode == ImageReadMode::UNCHANGED) return im;
  const int want = static_cast<int>(mode);  // the channels of the mode
  if (want == im.channels) return im;
  const index_t n = im.height * im.width;
  Interleaved out{std::vector<std::uint8_t>(static_cast<std::size_t>(n) * static_cast<std::size_t>(want)), im.height,
                  im.width, want};
  const int c = im.channels;
  for (index_t p = 0; p < n; ++p) {
    const std::uint8_t* s = im.pixels.data() + p * c;
    std::uint8_t* d = out.pixels.data() + p * want;
    const std::uint8_t alpha = has_alpha ? s[c - 1] : 255;
    if (want <= 2) {
      d[0] = is_gray ? s[0] : static_cast<std::uint8_t>((s[0] * 19595u + s[1] * 38470u + s[2] * 7471u + 0x8000u) >> 16);
    } else {
      d[0] = s[0];
      d[1] = is_gray ? s[0] : s[1];
      d[2] = is_gray ? s[0] : s[2];
    }
    if (want == 2 || want == 4) d[want - 1] = alpha;
  }
  return out;
}

// The error of a format whose library the build did not find.
[[noreturn]] inline void built_without(const char* op, const std::string& name, const char* library,
                                       const char* package, const char* format) {
  fail(op, "\"", name, "\": fusedtensor was built without ", library, " (install ", package, " and reconfigure) so ",
       format, " files cannot be read");
}

inline void check_dimensions(const char* op, const std::string& name, std::uint64_t width, std::uint64_t height,
                             const DecodeOptions& options) {
  if (width == 0 || height == 0) fail(op, "\"", name, "\": the image is ", width, " × ", height, " pixels (empty)");
  if (width > options.max_pixels / height)
    fail(op, "\"", name, "\": the image is ", width, " × ", height, " pixels, more than the limit of ",
         options.max_pixels, " (DecodeOptions::max_pixels)");
}

#if defined(FT_HAVE_PNG)
// libpng reports errors by longjmp to the frame that called setjmp; that frame (png_decode_frame,
// png_encode_frame) holds only trivially destructible locals, and every C++ object it fills
// belongs to its caller.
struct PngIo {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0, pos = 0;
  std::vector<std::uint8_t>* out = nullptr;  // encoding
  char message[256] = {};
};

inline void png_on_error(png_structp png, png_const_charp msg) {
  auto* io = static_cast<PngIo*>(png_get_error_ptr(png));
  std::snprintf(io->message, sizeof(io->message), "%s", msg);
  png_longjmp(png, 1);
}
inline void png_on_warning(png_structp, png_const_charp) {}
inline void png_on_read(png_structp png, png_bytep out, std::size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  if (n > io->size - io->pos) png_error(png, "the file ends early (truncated?)");
  std::memcpy(out, io->data + io->pos, n);
  io->pos += n;
}
inline void png_on_write(png_structp png, png_bytep data, std::size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  io->out->insert(io->out->end(), data, data + n);
}
inline void png_on_flush(png_structp) {}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int channels = 0;
};

// Reads the header, sets up the conversions to 8-bit gray/gray-alpha/RGB/RGBA, then (once
// `allocate` has sized `pixels` from the header) the rows. Returns false after a libpng error.
template <class Allocate>
bool png_decode_frame(png_structp png, png_infop info, PngHeader& h, std::vector<png_bytep>& rows, Allocate& allocate) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  // the caller's pixel limit decides
  png_read_info(png, info);
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, &h.width, &h.height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
  png_set_expand(png);                         // palette → RGB, gray below 8 bits → 8 bits, tRNS → alpha
  if (bit_depth == 16) png_set_scale_16(png);  // rounded: v · 255 / 65535
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  h.channels = png_get_channels(png, info);
  allocate(h);  // C++ allocations happen in the caller's objects; they may throw (no libpng frame is active)
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  return true;
}

inline bool png_encode_frame(png_structp png, png_infop info, const std::uint8_t* pixels, std::size_t width,
                             std::size_t height, int channels, std::vector<png_bytep>& rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  static constexpr int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                   PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, types[channels],
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (std::size_t y = 0; y < height; ++y)
    rows[y] = const_cast<png_bytep>(pixels + y * width * static_cast<std::size_t>(channels));
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  return true;
}
#endif

#if defined(FT_HAVE_JPEG)
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};
inline void jpeg_on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
// Warnings pass, except the end of the data before the image's end: libjpeg would fill the rest
// with gray, and a truncated file is an error here.
inline void jpeg_on_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(c);
}

struct JpegHeader {
  JDIMENSION width = 0, height = 0;
  int channels = 0;
  bool cmyk = false, adobe = false;
};

template <class Allocate>
bool jpeg_decode_frame(jpeg_decompress_struct& cinfo, const std::uint8_t* data, std::size_t size, JpegHeader& h,
                       std::vector<std::uint8_t>& pixels, Allocate& allocate) {
  auto* err = reinterpret_cast<JpegError*>(cinfo.err);
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  h.width = cinfo.image_width;
  h.height = cinfo.image_height;
  h.cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  h.adobe = cinfo.saw_Adobe_marker;
  cinfo.out_color_space = h.cmyk ? JCS_CMYK : cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  h.channels = h.cmyk ? 4 : cinfo.num_components == 1 ? 1 : 3;
  allocate(h);  // checks the size, then sizes `pixels`; runs before libjpeg allocates the image's buffers
  jpeg_start_decompress(&cinfo);
  const std::size_t stride = static_cast<std::size_t>(cinfo.output_width) * static_cast<std::size_t>(h.channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels.data() + cinfo.output_scanline * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}
#endif

}  // namespace detail

// A PNG's pixels, 8 bits a channel (16-bit files rounded to 8 bits, palettes expanded).
inline Tensor<std::uint8_t, 3> decode_png(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>",
                                          const DecodeOptions& options = {}) {
  const char* op = "decode_png";
  if (!is_png(bytes)) fail(op, "\"", name, "\" is not a PNG file (no PNG signature in its first 8 bytes)");
#if defined(FT_HAVE_PNG)
  detail::PngIo io;
  io.data = bytes.data();
  io.size = bytes.size();
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, detail::png_on_error, detail::png_on_warning);
  if (!png) fail(op, "libpng could not start (out of memory?)");
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp* png;
    png_infop* info;
    ~Guard() { png_destroy_read_struct(png, info, nullptr); }
  } guard{&png, &info};
  if (!info) fail(op, "libpng could not start (out of memory?)");
  png_set_read_fn(png, &io, detail::png_on_read);
  detail::Interleaved im;
  std::vector<png_bytep> rows;
  auto allocate = [&](const detail::PngHeader& h) {
    detail::check_dimensions(op, name, h.width, h.height, options);
    im.height = h.height;
    im.width = h.width;
    im.channels = h.channels;
    const std::size_t stride = std::size_t{h.width} * static_cast<std::size_t>(h.channels);
    im.pixels.resize(stride * h.height);
    rows.resize(h.height);
    for (std::size_t y = 0; y < h.height; ++y) rows[y] = im.pixels.data() + y * stride;
  };
  detail::PngHeader header;
  if (!detail::png_decode_frame(png, info, header, rows, allocate))
    fail(op, "\"", name, "\" is not a valid PNG: ", io.message);
  return detail::to_chw(detail::convert_channels(std::move(im), options.mode));
#else
  (void)options;
  detail::built_without(op, name, "libpng", "libpng-dev", "PNG");
#endif
}

// A JPEG's pixels: gray or RGB (CMYK files are converted to RGB, Adobe's inverted form included).
inline Tensor<std::uint8_t, 3> decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>",
                                           const DecodeOptions& options = {}) {
  const char* op = "decode_jpeg";
  if (!is_jpeg(bytes)) fail(op, "\"", name, "\" is not a JPEG file (no SOI marker FF D8 FF at its start)");
#if defined(FT_HAVE_JPEG)
  jpeg_decompress_struct cinfo{};
  detail::JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = detail::jpeg_on_error;
  err.mgr.emit_message = detail::jpeg_on_message;
  struct Guard {
    jpeg_decompress_struct* c;
    ~Guard() { jpeg_destroy_decompress(c); }  // safe on a struct jpeg_create_decompress never set up
  } guard{&cinfo};
  detail::Interleaved im;
  auto allocate = [&](const detail::JpegHeader& h) {
    detail::check_dimensions(op, name, h.width, h.height, options);
    im.height = h.height;
    im.width = h.width;
    im.channels = h.channels;
    im.pixels.resize(std::size_t{h.width} * h.height * static_cast<std::size_t>(h.channels));
  };
  detail::JpegHeader header;
  if (!detail::jpeg_decode_frame(cinfo, bytes.data(), bytes.size(), header, im.pixels, allocate))
    fail(op, "\"", name, "\" is not a valid JPEG: ", err.message);
  if (header.cmyk) {  // C, M, Y, K (stored inverted by Adobe's encoders) → R = (255 - K) - C (255 - K) / 255, as PIL
    const index_t n = im.height * im.width;
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(n) * 3);
    for (index_t p = 0; p < n; ++p) {
      const std::uint8_t* s = im.pixels.data() + 4 * p;
      const unsigned nk = header.adobe ? s[3] : 255u - s[3];
      for (int c = 0; c < 3; ++c) {
        const unsigned v = header.adobe ? 255u - s[c] : s[c], t = v * nk + 128;
        rgb[static_cast<std::size_t>(3 * p + c)] = static_cast<std::uint8_t>(nk - (((t >> 8) + t) >> 8));
      }
    }
    im.pixels = std::move(rgb);
    im.channels = 3;
  }
  return detail::to_chw(detail::convert_channels(std::move(im), options.mode));
#else
  (void)options;
  detail::built_without(op, name, "libjpeg", "libjpeg62-turbo-dev", "JPEG");
#endif
}

namespace detail {

// Little-endian fields of a BMP file, each read checked against its end.
struct BmpReader {
  std::span<const std::uint8_t> b;
  const std::string& name;
  std::uint32_t u(std::size_t at, int bytes) const {
    if (at + static_cast<std::size_t>(bytes) > b.size())
      fail("decode_bmp", "\"", name, "\" is truncated: its header needs ", at + static_cast<std::size_t>(bytes),
           " bytes, the file has ", b.size());
    std::uint32_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = v << 8 | b[at + static_cast<std::size_t>(k)];
    return v;
  }
};

// One channel of a bit-field pixel: its bits scaled to 0..255 (v · 255 / max, as PIL's unpackers).
struct BmpField {
  std::uint32_t mask = 0;
  int shift = 0;
  std::uint32_t max = 0;
  explicit BmpField(std::uint32_t m) : mask(m) {
    if (!m) return;
    while (!(m & 1u)) m >>= 1, ++shift;
    max = m;
  }
  std::uint8_t operator()(std::uint32_t px) const {
    return max ? static_cast<std::uint8_t>(((px & mask) >> shift) * 255u / max) : 0;
  }
  bool contiguous() const { return (max & (max + 1)) == 0; }
};

// A run-length bitmap's palette indices (BI_RLE8: 8 bits, BI_RLE4: 4 bits), W × H, top row
// first. The stream (Microsoft's definition): pairs (n, c) — n > 0 repeats c (RLE4: its two
// nibbles in turn) n times; n = 0 escapes: c = 0 ends the line, 1 the bitmap, 2 moves right and
// down by the next two bytes, 3 … 255 are that many literal indices (padded to a 16-bit word).
// Pixels the stream skips keep index 0, as PIL leaves them; pixels past a row's end are dropped.
// Its rows run bottom-up unless the header's height is negative.
inline std::vector<std::uint8_t> bmp_rle_indices(std::span<const std::uint8_t> b, std::size_t at, std::size_t W,
                                                 std::size_t H, unsigned bits, bool top_down, const std::string& name) {
  std::vector<std::uint8_t> index(W * H, 0);
  std::size_t p = at, x = 0, y = 0;
  auto truncated = [&] {
    fail("decode_bmp", "\"", name, "\" is truncated: its run-length data ends at byte ", b.size(), " in row ", y,
         " of ", H, " without an end-of-bitmap mark");
  };
  auto put = [&](unsigned v) {
    if (x < W) index[(top_down ? y : H - 1 - y) * W + x] = static_cast<std::uint8_t>(v);
    ++x;
  };
  while (y < H) {
    if (p + 2 > b.size()) truncated();
    const unsigned n = b[p], c = b[p + 1];
    p += 2;
    if (n > 0) {
      for (unsigned i = 0; i < n && x < W; ++i) put(bits == 8 ? c : i % 2 == 0 ? c >> 4 : c & 15u);
    } else if (c == 0) {
      x = 0, ++y;
    } else if (c == 1) {
      break;
    } else if (c == 2) {
      if (p + 2 > b.size()) truncated();
      x += b[p], y += b[p + 1];
      p += 2;
    } else {
      const std::size_t length = bits == 8 ? c : (c + 1) / 2;
      if (p + length > b.size()) truncated();
      for (unsigned i = 0; i < c; ++i) put(bits == 8 ? b[p + i] : i % 2 == 0 ? b[p + i / 2] >> 4 : b[p + i / 2] & 15u);
      p += length + length % 2;
    }
  }
  return index;
}

}  // namespace detail

// A Windows bitmap's pixels (the format's public definition; no library): 1-, 4- and 8-bit
// palettes (gray when every entry is gray, else RGB), 16-bit (5-5-5, or any bit fields), 24-bit
// and 32-bit (the fourth byte alpha when BI_BITFIELDS gives it a mask, else unused, as PIL
// reads it), bottom-up or top-down rows; the OS/2 1.x, Windows 3 (with BI_BITFIELDS) and
// V4/V5 headers, run-length palettes (BI_RLE8, BI_RLE4). JPEG and PNG payloads are an ft::Error.
inline Tensor<std::uint8_t, 3> decode_bmp(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>",
                                          const DecodeOptions& options = {}) {
  const char* op = "decode_bmp";
  if (!is_bmp(bytes)) fail(op, "\"", name, "\" is not a BMP file (no \"BM\" at its start)");
  const detail::BmpReader r{bytes, name};
  const std::size_t data_at = r.u(10, 4), header = r.u(14, 4);
  std::int64_t width = 0, height = 0;
  std::uint32_t bits = 0, compression = 0, colors = 0;
  std::uint32_t masks[4] = {0, 0, 0, 0};
  bool header_masks = false;
  if (header == 12) {  // OS/2 1.x / BITMAPCOREHEADER
    width = r.u(18, 2), height = r.u(20, 2), bits = r.u(24, 2);
  } else if (header == 40 || header == 52 || header == 56 || header == 108 || header == 124) {
    width = static_cast<std::int32_t>(r.u(18, 4));
    height = static_cast<std::int32_t>(r.u(22, 4));
    bits = r.u(28, 2), compression = r.u(30, 4), colors = r.u(46, 4);
    if (r.u(26, 2) != 1) fail(op, "\"", name, "\": ", r.u(26, 2), " colour planes (a BMP has 1)");
    if (compression == 3 || compression == 6) {                // BI_BITFIELDS, BI_ALPHABITFIELDS
      const std::size_t at = header == 40 ? 14 + header : 54;  // after the Windows 3 header, or in V2+
      const int n = compression == 6 || header >= 56 ? 4 : 3;
      for (int k = 0; k < n; ++k) masks[k] = r.u(at + 4 * static_cast<std::size_t>(k), 4);
      header_masks = true;
    }
  } else {
    fail(op, "\"", name, "\": a ", header, "-byte info header is not supported (12, 40, 52, 56, 108 or 124)");
  }
  const bool top_down = height < 0;
  if (top_down) height = -height;
  if (width <= 0 || height <= 0)
    fail(op, "\"", name, "\": the image is ", width, " × ", height, " pixels (empty or negative)");
  const char* compressions[] = {"BI_RGB",  "BI_RLE8", "BI_RLE4",          "BI_BITFIELDS",
                                "BI_JPEG", "BI_PNG",  "BI_ALPHABITFIELDS"};
  if (compression == 4 || compression == 5)
    fail(op, "\"", name, "\": ", compressions[compression],
         " compression is not supported (uncompressed, bit fields, RLE8 or RLE4 files only)");
  if (compression > 6) fail(op, "\"", name, "\": unknown compression ", compression);
  const bool rle = compression == 1 || compression == 2;
  if (rle && bits != (compression == 1 ? 8u : 4u))
    fail(op, "\"", name, "\": ", compressions[compression], " with ", bits, " bits a pixel (",
         compressions[compression], " needs ", compression == 1 ? 8 : 4, ")");
  const bool fields = compression == 3 || compression == 6;
  if (!(bits == 1 || bits == 4 || bits == 8 || bits == 16 || bits == 24 || bits == 32) ||
      (fields && bits != 16 && bits != 32))
    fail(op, "\"", name, "\": ", bits, " bits a pixel", fields ? " with bit fields" : "",
         " is not supported (1, 4, 8, 16, 24 or 32; bit fields with 16 or 32)");
  detail::check_dimensions(op, name, static_cast<std::uint64_t>(width), static_cast<std::uint64_t>(height), options);
  const std::size_t W = static_cast<std::size_t>(width), H = static_cast<std::size_t>(height);
  const std::size_t stride = (W * bits + 31) / 32 * 4;
  if (data_at > bytes.size() || (!rle && stride > (bytes.size() - data_at) / H))
    fail(op, "\"", name, "\" is truncated: ", H, " rows of ", stride, " bytes from offset ", data_at, " need ",
         data_at + stride * H, " bytes, the file has ", bytes.size());
  detail::Interleaved im;
  im.height = height, im.width = width;
  if (bits <= 8) {
    const std::size_t entry = header == 12 ? 3 : 4, at = 14 + header + (header_masks && header == 40 ? 12 : 0);
    std::size_t n = colors ? colors : std::size_t{1} << bits;
    if (n > (std::size_t{1} << bits)) n = std::size_t{1} << bits;  // more entries than indices: unused
    if (at + n * entry > data_at)
      fail(op, "\"", name, "\": the palette of ", n, " colours (", at, " to ", at + n * entry,
           ") overlaps the pixels at ", data_at);
    std::uint8_t palette[256][3] = {};  // an index past the palette's entries is black
    bool gray = true;
    for (std::size_t k = 0; k < n; ++k) {
      for (int c = 0; c < 3; ++c) palette[k][c] = bytes[at + k * entry + 2 - static_cast<std::size_t>(c)];
      gray = gray && palette[k][0] == palette[k][1] && palette[k][1] == palette[k][2];
    }
    im.channels = gray ? 1 : 3;
    im.pixels.resize(W * H * static_cast<std::size_t>(im.channels));
    const std::vector<std::uint8_t> runs =
        rle ? detail::bmp_rle_indices(bytes, data_at, W, H, bits, top_down, name) : std::vector<std::uint8_t>();
    for (std::size_t y = 0; y < H; ++y) {
      const std::uint8_t* row = rle ? nullptr : bytes.data() + data_at + (top_down ? y : H - 1 - y) * stride;
      std::uint8_t* out = im.pixels.data() + y * W * static_cast<std::size_t>(im.channels);
      for (std::size_t x = 0; x < W; ++x) {
        const std::size_t bit = x * bits;
        const unsigned index = rle ? runs[y * W + x] : (row[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
        for (int c = 0; c < im.channels; ++c) *out++ = palette[index][c];
      }
    }
  } else {
    if (!header_masks) {
      if (bits == 16) masks[0] = 0x7c00, masks[1] = 0x3e0, masks[2] = 0x1f;  // 5-5-5
      if (bits >= 24) masks[0] = 0xff0000, masks[1] = 0xff00, masks[2] = 0xff;
    }
    const detail::BmpField red(masks[0]), green(masks[1]), blue(masks[2]), alpha(bits == 32 ? masks[3] : 0);
    for (const auto* f : {&red, &green, &blue, &alpha})
      if (!f->contiguous()) fail(op, "\"", name, "\": the bit field mask ", f->mask, " is not one run of bits");
    im.channels = alpha.mask ? 4 : 3;
    im.pixels.resize(W * H * static_cast<std::size_t>(im.channels));
    const std::size_t size = bits / 8;
    for (std::size_t y = 0; y < H; ++y) {
      const std::uint8_t* row = bytes.data() + data_at + (top_down ? y : H - 1 - y) * stride;
      std::uint8_t* out = im.pixels.data() + y * W * static_cast<std::size_t>(im.channels);
      for (std::size_t x = 0; x < W; ++x) {
        std::uint32_t px = 0;
        for (std::size_t k = size; k-- > 0;) px = px << 8 | row[x * size + k];
        *out++ = red(px), *out++ = green(px), *out++ = blue(px);
        if (alpha.mask) *out++ = alpha(px);
      }
    }
  }
  return detail::to_chw(detail::convert_channels(std::move(im), options.mode));
}

#if defined(FT_HAVE_WEBP)
namespace detail {
// Frames [first, first + count) of an animated WebP (count 0: to the last), each the canvas
// after that frame as libwebp's animation decoder composites it (blending, disposal): RGBA, or
// RGB when the file has no alpha (`has_alpha`: WebPGetFeatures') — what PIL reads frame by frame.
inline std::vector<Tensor<std::uint8_t, 3>> webp_frames(std::span<const std::uint8_t> bytes, const std::string& name,
                                                        const DecodeOptions& options, bool has_alpha, std::size_t first,
                                                        std::size_t count) {
  const char* op = "decode_webp";
  WebPAnimDecoderOptions o;
  if (!WebPAnimDecoderOptionsInit(&o)) fail(op, "libwebp's animation decoder has another ABI than its header");
  o.color_mode = MODE_RGBA;
  o.use_threads = 0;
  const WebPData data{bytes.data(), bytes.size()};
  // the canvas size first: WebPAnimDecoderNew allocates the canvas
  WebPDemuxer* demux = WebPDemux(&data);
  if (!demux) fail(op, "\"", name, "\" is not a valid animated WebP: its chunks are corrupt or truncated");
  const std::uint32_t width = WebPDemuxGetI(demux, WEBP_FF_CANVAS_WIDTH),
                      height = WebPDemuxGetI(demux, WEBP_FF_CANVAS_HEIGHT);
  WebPDemuxDelete(demux);
  check_dimensions(op, name, width, height, options);
  WebPAnimDecoder* dec = WebPAnimDecoderNew(&data, &o);
  if (!dec) fail(op, "\"", name, "\" is not a valid animated WebP: its chunks are corrupt or truncated");
  struct Guard {
    WebPAnimDecoder* d;
    ~Guard() { WebPAnimDecoderDelete(d); }
  } guard{dec};
  WebPAnimInfo info{};
  if (!WebPAnimDecoderGetInfo(dec, &info)) fail(op, "\"", name, "\": libwebp gives no animation info");
  if (first >= info.frame_count)
    fail(op, "\"", name, "\" has ", info.frame_count, " frames; frame ", first, " was asked for");
  const std::size_t last = count == 0 ? info.frame_count : std::min<std::size_t>(first + count, info.frame_count);
  std::vector<Tensor<std::uint8_t, 3>> frames;
  for (std::size_t k = 0; k < last; ++k) {
    std::uint8_t* canvas = nullptr;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(dec, &canvas, &timestamp))
      fail(op, "\"", name, "\" is not a valid animated WebP: frame ", k, " of ", info.frame_count,
           " is corrupt or truncated");
    if (k < first) continue;
    Interleaved im;
    im.height = info.canvas_height, im.width = info.canvas_width, im.channels = has_alpha ? 4 : 3;
    const std::size_t pixels = std::size_t{info.canvas_width} * info.canvas_height;
    im.pixels.resize(pixels * static_cast<std::size_t>(im.channels));
    for (std::size_t i = 0; i < pixels; ++i)
      for (int c = 0; c < im.channels; ++c)
        im.pixels[i * static_cast<std::size_t>(im.channels) + c] = canvas[4 * i + c];
    frames.push_back(to_chw(convert_channels(std::move(im), options.mode)));
  }
  return frames;
}
}  // namespace detail
#endif

// A WebP's pixels (libwebp): RGB, or RGBA when the file has alpha; lossy or lossless; of an
// animation, frame options.frame composited onto the canvas (as PIL's seek).
inline Tensor<std::uint8_t, 3> decode_webp(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>",
                                           const DecodeOptions& options = {}) {
  const char* op = "decode_webp";
  if (!is_webp(bytes)) fail(op, "\"", name, "\" is not a WebP file (no RIFF ... WEBP header in its first 12 bytes)");
#if defined(FT_HAVE_WEBP)
  WebPBitstreamFeatures f{};
  const VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &f);
  // VP8StatusCode 1 to 7 (0 is VP8_STATUS_OK)
  const char* why[] = {"out of memory", "an invalid parameter", "a corrupt bitstream",        "an unsupported feature",
                       "suspended",     "user abort",           "not enough data (truncated)"};
  if (status != VP8_STATUS_OK)
    fail(op, "\"", name, "\" is not a valid WebP: ", status >= 1 && status <= 7 ? why[status - 1] : "an unknown error");
  if (f.has_animation) return std::move(detail::webp_frames(bytes, name, options, f.has_alpha, options.frame, 1)[0]);
  if (options.frame != 0)
    fail(op, "\"", name, "\" has one frame (not animated); frame ", options.frame, " was asked for");
  detail::check_dimensions(op, name, static_cast<std::uint64_t>(f.width), static_cast<std::uint64_t>(f.height),
                           options);
  detail::Interleaved im;
  im.height = f.height, im.width = f.width, im.channels = f.has_alpha ? 4 : 3;
  const std::size_t stride = static_cast<std::size_t>(f.width) * static_cast<std::size_t>(im.channels);
  im.pixels.resize(stride * static_cast<std::size_t>(f.height));
  const std::uint8_t* ok =
      f.has_alpha
          ? WebPDecodeRGBAInto(bytes.data(), bytes.size(), im.pixels.data(), im.pixels.size(), static_cast<int>(stride))
          : WebPDecodeRGBInto(bytes.data(), bytes.size(), im.pixels.data(), im.pixels.size(), static_cast<int>(stride));
  if (!ok) fail(op, "\"", name, "\" is not a valid WebP: its image data is corrupt or truncated");
  return detail::to_chw(detail::convert_channels(std::move(im), options.mode));
#else
  (void)options;
  detail::built_without(op, name, "libwebp", "libwebp-dev", "WebP");
#endif
}

#if defined(FT_HAVE_TIFF)
namespace detail {

// libtiff reading from memory; its errors are collected per file (libtiff 4.5's per-handle
// handlers: no global state, so threads decode at once).
struct TiffIo {
  const std::uint8_t* data = nullptr;
  std::uint64_t size = 0, pos = 0;
  std::string message;
};
inline tmsize_t tiff_read(thandle_t h, void* buf, tmsize_t n) {
  auto* io = static_cast<TiffIo*>(h);
  if (n <= 0 || io->pos >= io->size) return 0;
  const std::uint64_t k = std::min<std::uint64_t>(static_cast<std::uint64_t>(n), io->size - io->pos);
  std::memcpy(buf, io->data + io->pos, static_cast<std::size_t>(k));
  io->pos += k;
  return static_cast<tmsize_t>(k);
}
inline tmsize_t tiff_write(thandle_t, void*, tmsize_t) { return -1; }
inline toff_t tiff_seek(thandle_t h, toff_t off, int whence) {
  auto* io = static_cast<TiffIo*>(h);
  const std::uint64_t base = whence == SEEK_CUR ? io->pos : whence == SEEK_END ? io->size : 0;
  if (off > ~std::uint64_t{0} - base) return static_cast<toff_t>(-1);
  io->pos = base + off;  // past the end: later reads return 0 bytes
  return io->pos;
}
inline int tiff_close(thandle_t) { return 0; }
inline toff_t tiff_size(thandle_t h) { return static_cast<TiffIo*>(h)->size; }
// The file's bytes as libtiff's "memory-mapped" file (it reads tiles of unmapped files wrongly:
// libtiff 4.5.0 finds "invalid tile byte count" in valid tiled files). In read mode libtiff only
// reads the mapping (it copies what it must change, e.g. to reverse a fill order).
inline int tiff_map(thandle_t h, void** base, toff_t* size) {
  auto* io = static_cast<TiffIo*>(h);
  *base = const_cast<std::uint8_t*>(io->data);
  *size = io->size;
  return 1;
}
inline void tiff_unmap(thandle_t, void*, toff_t) {}
inline int tiff_on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* io = static_cast<TiffIo*>(user);
  if (io->message.empty()) {
    char text[512];
    std::vsnprintf(text, sizeof text, fmt, ap);
    io->message = std::string(module ? module : "libtiff") + ": " + text;
  }
  return 1;  // handled: nothing printed
}
inline int tiff_on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// A TIFF open over `bytes` (its errors collected in io.message), closed when this goes.
struct TiffFile {
  TIFF* tif = nullptr;
  TiffFile(std::span<const std::uint8_t> bytes, const std::string& name, TiffIo& io, const char* op) {
    io.data = bytes.data();
    io.size = bytes.size();
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    if (!opts) fail(op, "libtiff could not start (out of memory?)");
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_on_error, &io);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_on_warning, &io);
    tif = TIFFClientOpenExt(name.c_str(), "r", &io, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, tiff_map,
                            tiff_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) fail(op, "\"", name, "\" is not a valid TIFF: ", io.message);
  }
  TiffFile(const TiffFile&) = delete;
  TiffFile& operator=(const TiffFile&) = delete;
  ~TiffFile() { TIFFClose(tif); }
};

}  // namespace detail
#endif

// A TIFF's image (the first page, or page options.frame; libtiff, any of its codecs: none, LZW, Deflate, PackBits, JPEG
// …): 8-bit gray, gray + alpha, RGB, RGBA, CMYK (to RGB as PIL converts) and palettes, 16-bit gray and RGB (rounded to
// 8 bits), as stored (alpha unassociated, as PIL reads it) from strips or tiles, interleaved or in separate planes;
// 1-bit bilevel files and palettes of fewer bits from strips; anything else (packed tiles, YCbCr without JPEG, Lab,
// floats …) through libtiff's RGBA conversion (gray, RGB, or RGBA with its alpha premultiplied; 8 bits).
inline Tensor<std::uint8_t, 3> decode_tiff(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>",
                                           const DecodeOptions& options = {}) {
  const char* op = "decode_tiff";
  if (!is_tiff(bytes)) fail(op, "\"", name, "\" is not a TIFF file (no II*\\0 or MM\\0* at its start)");
#if defined(FT_HAVE_TIFF)
  detail::TiffIo io;
  const detail::TiffFile file(bytes, name, io, op);
  TIFF* tif = file.tif;
  auto invalid = [&](const char* what) {
    fail(op, "\"", name, "\" is not a valid TIFF: ", what, io.message.empty() ? "" : " (", io.message,
         io.message.empty() ? "" : ")");
  };
  if (options.frame > 0) {
    const std::size_t pages = TIFFNumberOfDirectories(tif);
    if (options.frame >= pages || !TIFFSetDirectory(tif, static_cast<tdir_t>(options.frame)))
      fail(op, "\"", name, "\" has ", pages, pages == 1 ? " page" : " pages", "; page ", options.frame,
           " was asked for", io.message.empty() ? "" : " (", io.message, io.message.empty() ? "" : ")");
  }
  std::uint32_t w = 0, h = 0;
  std::uint16_t spp = 1, bps = 1, photometric = 0, planar = PLANARCONFIG_CONTIG, extras = 0;
  std::uint16_t* extra_types = nullptr;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h))
    invalid("no image width or length");
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extras, &extra_types);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric)) invalid("no photometric interpretation");
  detail::check_dimensions(op, name, w, h, options);
  if (extras >= spp) invalid("more extra samples than samples");
  const int colour = spp - extras;
  const bool alpha = extras > 0 && extra_types &&
                     (extra_types[0] == EXTRASAMPLE_UNASSALPHA || extra_types[0] == EXTRASAMPLE_ASSOCALPHA);
  std::uint16_t compression = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
  if (photometric == PHOTOMETRIC_YCBCR && compression == COMPRESSION_JPEG && bps == 8) {
    TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);  // libjpeg converts to RGB
    photometric = PHOTOMETRIC_RGB;
  }
  const bool gray = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE;
  // as stored: 8-bit samples in any layout (strips or tiles, interleaved or separate planes);
  // packed 1-bit and palette samples in interleaved strips
  const bool tiled = TIFFIsTiled(tif), separate = planar == PLANARCONFIG_SEPARATE && spp > 1;
  const bool cmyk = photometric == PHOTOMETRIC_SEPARATED && colour == 4;  // InkSet CMYK, the default
  const bool eight = bps == 8 && ((gray && colour == 1) || (photometric == PHOTOMETRIC_RGB && colour == 3) || cmyk ||
                                  (photometric == PHOTOMETRIC_PALETTE && spp == 1));
  const bool packed = bps < 8 && !tiled && spp == 1 && ((bps == 1 && gray) || photometric == PHOTOMETRIC_PALETTE);
  // 16-bit gray and RGB likewise, rounded to 8 bits (as the PNG reader; libtiff's RGBA conversion truncates)
  const bool wide = bps == 16 && ((gray && colour == 1) || (photometric == PHOTOMETRIC_RGB && colour == 3));
  detail::Interleaved im;
  im.height = h, im.width = w;
  const std::size_t W = w, H = h, S = spp, B = wide ? 2 : 1;  // B: bytes a sample
  if (eight || packed || wide) {
    std::uint16_t *red = nullptr, *green = nullptr, *blue = nullptr;
    if (photometric == PHOTOMETRIC_PALETTE && !TIFFGetField(tif, TIFFTAG_COLORMAP, &red, &green, &blue))
      invalid("a palette image without a colour map");
    im.channels = photometric == PHOTOMETRIC_PALETTE ? 3 : (gray ? 1 : 3) + (alpha ? 1 : 0);  // CMYK: RGB
    im.pixels.resize(W * H * static_cast<std::size_t>(im.channels));
    const std::uint8_t invert = photometric == PHOTOMETRIC_MINISWHITE ? 255 : 0;
    // one row of samples (interleaved, or packed bits) → pixels
    auto put_row = [&](const std::uint8_t* line, std::size_t y) {
      std::uint8_t* out = im.pixels.data() + y * W * static_cast<std::size_t>(im.channels);
      for (std::size_t x = 0; x < W; ++x) {
        if (photometric == PHOTOMETRIC_PALETTE) {
          const std::size_t bit = x * bps;
          const unsigned k = (line[bit / 8] >> (8 - bps - bit % 8)) & ((1u << bps) - 1);
          *out++ = static_cast<std::uint8_t>(red[k] >> 8), *out++ = static_cast<std::uint8_t>(green[k] >> 8),
          *out++ = static_cast<std::uint8_t>(blue[k] >> 8);
        } else if (bps == 1) {
          *out++ = static_cast<std::uint8_t>(((line[x / 8] >> (7 - x % 8)) & 1 ? 255 : 0) ^ invert);
        } else {
          const std::uint8_t* px = line + x * S * B;
          auto sample = [&](int c) -> std::uint8_t {
            if (B == 1) return px[c];
            std::uint16_t v;  // in the host's order (libtiff swaps)
            std::memcpy(&v, px + 2 * c, 2);
            return static_cast<std::uint8_t>((v * 255u + 32767u) / 65535u);
          };
          if (cmyk) {  // R = (255 - K) - C (255 - K) / 255, rounded as PIL's conversion
            const unsigned nk = 255u - px[3];
            for (int c = 0; c < 3; ++c) {
              const unsigned t = px[c] * nk + 128;
              *out++ = static_cast<std::uint8_t>(nk - (((t >> 8) + t) >> 8));
            }
          } else {
            for (int c = 0; c < colour; ++c) *out++ = static_cast<std::uint8_t>(sample(c) ^ invert);
          }
          if (alpha) *out++ = sample(colour);
        }
      }
    };
    if (!tiled) {
      const std::uint64_t line_bytes = TIFFScanlineSize64(tif);
      if (line_bytes < (std::uint64_t{W} * (separate ? 1 : S) * bps + 7) / 8)
        invalid("a scanline shorter than its pixels");
      std::vector<std::uint8_t> line(static_cast<std::size_t>(line_bytes));
      auto read_line = [&](std::size_t y, std::size_t k) {
        if (TIFFReadScanline(tif, line.data(), static_cast<std::uint32_t>(y), static_cast<std::uint16_t>(k)) < 0)
          invalid("a scanline cannot be read");
      };
      if (separate) {  // plane after plane (a compressed strip is read from its start), interleaved
        std::vector<std::uint8_t> all(W * H * S * B);
        for (std::size_t k = 0; k < S; ++k)
          for (std::size_t y = 0; y < H; ++y) {
            read_line(y, k);
            for (std::size_t x = 0; x < W; ++x) std::memcpy(&all[((y * W + x) * S + k) * B], &line[x * B], B);
          }
        for (std::size_t y = 0; y < H; ++y) put_row(all.data() + y * W * S * B, y);
      } else {
        for (std::size_t y = 0; y < H; ++y) read_line(y, 0), put_row(line.data(), y);
      }
    } else {  // a band of tile rows at a time, its tiles' samples placed into rows
      std::uint32_t tw = 0, th = 0;
      if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) || !tw || !th)
        invalid("a tiled image without a tile size");
      const std::size_t TW = tw, TH = std::min<std::size_t>(th, H), per = separate ? 1 : S;
      if (TIFFTileSize64(tif) < std::uint64_t{TW} * th * per * B) invalid("a tile shorter than its pixels");
      // a tile may exceed the image, but not absurdly: its buffer is allocated before any data is read
      if (TIFFTileSize64(tif) > std::max<std::uint64_t>(std::uint64_t{1} << 26, 2 * std::uint64_t{W} * H * S * B))
        invalid("a tile far larger than the image");
      std::vector<std::uint8_t> tile(static_cast<std::size_t>(TIFFTileSize64(tif))), band(TH * W * S * B);
      for (std::size_t y0 = 0; y0 < H; y0 += th) {
        const std::size_t rows = std::min<std::size_t>(th, H - y0);
        for (std::size_t x0 = 0; x0 < W; x0 += TW)
          for (std::size_t k = 0; k < (separate ? S : 1); ++k) {
            if (TIFFReadTile(tif, tile.data(), static_cast<std::uint32_t>(x0), static_cast<std::uint32_t>(y0), 0,
                             static_cast<std::uint16_t>(k)) < 0)
              invalid("a tile cannot be read");
            const std::size_t cols = std::min(TW, W - x0);
            for (std::size_t r = 0; r < rows; ++r) {
              std::uint8_t* dst = band.data() + (r * W + x0) * S * B;
              const std::uint8_t* src = tile.data() + r * TW * per * B;
              if (separate)
                for (std::size_t c = 0; c < cols; ++c) std::memcpy(dst + (c * S + k) * B, src + c * B, B);
              else
                std::memcpy(dst, src, cols * S * B);
            }
          }
        for (std::size_t r = 0; r < rows; ++r) put_row(band.data() + r * W * S * B, y0 + r);
      }
    }
  } else {
    std::vector<std::uint32_t> raster(W * H);
    if (!TIFFReadRGBAImageOriented(tif, w, h, raster.data(), ORIENTATION_TOPLEFT, 0))
      invalid("libtiff cannot convert its layout to RGBA");
    const bool one = gray && colour == 1;  // gray stays one channel
    im.channels = (one ? 1 : 3) + (alpha ? 1 : 0);
    im.pixels.resize(W * H * static_cast<std::size_t>(im.channels));
    std::uint8_t* out = im.pixels.data();
    for (std::uint32_t px : raster) {
      *out++ = static_cast<std::uint8_t>(TIFFGetR(px));
      if (!one) *out++ = static_cast<std::uint8_t>(TIFFGetG(px)), *out++ = static_cast<std::uint8_t>(TIFFGetB(px));
      if (alpha) *out++ = static_cast<std::uint8_t>(TIFFGetA(px));
    }
  }
  return detail::to_chw(detail::convert_channels(std::move(im), options.mode));
#else
  (void)options;
  detail::built_without(op, name, "libtiff", "libtiff-dev", "TIFF");
#endif
}

// A PNG, JPEG, BMP, WebP or TIFF (told apart by their signatures); of an animated WebP or a
// multi-page TIFF, frame options.frame (the first by default, as PIL opens them).
inline Tensor<std::uint8_t, 3> decode_image(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>",
                                            const DecodeOptions& options = {}) {
  if ((is_png(bytes) || is_jpeg(bytes) || is_bmp(bytes)) && options.frame != 0)
    fail("decode_image", "\"", name, "\" has one frame; frame ", options.frame, " was asked for");
  if (is_png(bytes)) return decode_png(bytes, name, options);
  if (is_jpeg(bytes)) return decode_jpeg(bytes, name, options);
  if (is_bmp(bytes)) return decode_bmp(bytes, name, options);
  if (is_webp(bytes)) return decode_webp(bytes, name, options);
  if (is_tiff(bytes)) return decode_tiff(bytes, name, options);
  fail("decode_image", "\"", name, "\" is not a PNG, JPEG, BMP, WebP or TIFF file (", bytes.size(),
       " bytes; no PNG signature, JPEG SOI marker, \"BM\", RIFF WEBP or TIFF header at the start)");
}

// The bytes of an image file (at most 1 GiB), decoded.
inline Tensor<std::uint8_t, 3> read_image(const std::string& path, ImageReadMode mode = ImageReadMode::UNCHANGED) {
  return decode_image(io::read_file(path, "read_image", std::uintmax_t{1} << 30), path, {.mode = mode});
}

// How many frames decode_image can give: an animated WebP's frames, a TIFF's pages, else 1.
inline std::size_t frame_count(std::span<const std::uint8_t> bytes, const std::string& name = "<memory>") {
  const char* op = "frame_count";
  if (is_webp(bytes)) {
#if defined(FT_HAVE_WEBP)
    const WebPData data{bytes.data(), bytes.size()};
    WebPDemuxer* demux = WebPDemux(&data);
    if (!demux) fail(op, "\"", name, "\" is not a valid WebP: its chunks are corrupt or truncated");
    const std::size_t n = WebPDemuxGetI(demux, WEBP_FF_FRAME_COUNT);
    WebPDemuxDelete(demux);
    return n;
#else
    detail::built_without(op, name, "libwebp", "libwebp-dev", "WebP");
#endif
  }
  if (is_tiff(bytes)) {
#if defined(FT_HAVE_TIFF)
    detail::TiffIo io;
    const detail::TiffFile file(bytes, name, io, op);
    const std::size_t n = TIFFNumberOfDirectories(file.tif);
    if (!io.message.empty())  // a directory chain cut short: not a silent page count
      fail(op, "\"", name, "\" is not a valid TIFF: after ", n, n == 1 ? " page, " : " pages, ", io.message);
    return n;
#else
    detail::built_without(op, name, "libtiff", "libtiff-dev", "TIFF");
#endif
  }
  if (is_png(bytes) || is_jpeg(bytes) || is_bmp(bytes)) return 1;
  fail(op, "\"", name, "\" is not a PNG, JPEG, BMP, WebP or TIFF file (", bytes.size(), " bytes)");
}

// Every frame of an image file: an animated WebP's (each the composited canvas), a TIFF's pages
// (each its own size and channels; options.mode converts them alike), or the one image.
inline std::vector<Tensor<std::uint8_t, 3>> decode_frames(std::span<const std::uint8_t> bytes,
                                                          const std::string& name = "<memory>",
                                                          DecodeOptions options = {}) {
#if defined(FT_HAVE_WEBP)
  if (is_webp(bytes)) {
    WebPBitstreamFeatures f{};
    if (WebPGetFeatures(bytes.data(), bytes.size(), &f) == VP8_STATUS_OK && f.has_animation)
      return detail::webp_frames(bytes, name, options, f.has_alpha, 0, 0);  // one pass: each frame builds on the last
  }
#endif
  const std::size_t n = frame_count(bytes, name);
  std::vector<Tensor<std::uint8_t, 3>> frames;
  frames.reserve(n);
  for (options.frame = 0; options.frame < n; ++options.frame) frames.push_back(decode_image(bytes, name, options));
  return frames;
}
inline std::vector<Tensor<std::uint8_t, 3>> read_frames(const std::string& path,
                                                        ImageReadMode mode = ImageReadMode::UNCHANGED) {
  return decode_frames(io::read_file(path, "read_frames", std::uintmax_t{1} << 30), path, {.mode = mode});
}

// A PNG of a uint8 CHW image with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels, on any device.
inline std::vector<std::uint8_t> encode_png(const Tensor<std::uint8_t, 3>& image, int compression_level = 6) {
  const char* op = "encode_png";
  const index_t c = image.size(0), h = image.size(1), w = image.size(2);
  check(c >= 1 && c <= 4, op, "expects 1, 2, 3 or 4 channels (CHW), got an image of shape ", to_string(image.shape()),
        " on ", image.device());
  check(h > 0 && w > 0 && h <= 0x7fffffff && w <= 0x7fffffff, op, "cannot encode an image of shape ",
        to_string(image.shape()));
  check(compression_level >= 0 && compression_level <= 9, op, "compression_level must be 0 to 9, got ",
        compression_level);
#if defined(FT_HAVE_PNG)
  Tensor<std::uint8_t, 3> host = image.to(kCPU).permute({1, 2, 0}).contiguous();  // HWC
  std::vector<std::uint8_t> out;
  detail::PngIo io;
  io.out = &out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, detail::png_on_error, detail::png_on_warning);
  if (!png) fail(op, "libpng could not start (out of memory?)");
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp* png;
    png_infop* info;
    ~Guard() { png_destroy_write_struct(png, info); }
  } guard{&png, &info};
  if (!info) fail(op, "libpng could not start (out of memory?)");
  png_set_write_fn(png, &io, detail::png_on_write, detail::png_on_flush);
  png_set_compression_level(png, compression_level);
  std::vector<png_bytep> rows(static_cast<std::size_t>(h));
  if (!detail::png_encode_frame(png, info, host.data(), static_cast<std::size_t>(w), static_cast<std::size_t>(h),
                                static_cast<int>(c), rows))
    fail(op, "libpng failed: ", io.message);
  return out;
#else
  fail(op, "fusedtensor was built without libpng (install libpng-dev and reconfigure) so PNG files cannot be written");
#endif
}

// encode_png, written atomically (a temporary file renamed over `path`; not fsync'd, so that
// writing thousands of images stays fast: a crash leaves the old file or the new one).
inline void write_png(const Tensor<std::uint8_t, 3>& image, const std::string& path, int compression_level = 6) {
  const std::vector<std::uint8_t> bytes = encode_png(image, compression_level);
  io::write_file_atomic(
      path, "write_png", [&](std::FILE* f) { io::write_all(f, bytes.data(), bytes.size()); }, /*sync=*/false);
}

}  // namespace ft::inline FT_ABI::vision
