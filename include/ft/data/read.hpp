// Reading data files whole, gzip'd or not: sizes are checked against the file before anything
// is allocated, and decompression stops at a limit rather than filling memory.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/io/file.hpp"

#if defined(FT_HAVE_ZLIB)
#include <zlib.h>
#endif

namespace ft::inline FT_ABI::data {

// The largest file or decompressed stream the data readers accept (MNIST's training images
// are 47 MB; digits 0.5 MB).
inline constexpr std::uintmax_t kMaxDataBytes = std::uintmax_t{4} << 30;

// The bytes of a file; ft::Error naming the file when it cannot be read or is too large.
inline std::vector<std::uint8_t> read_file(const std::string& path, const char* op) {
  return io::read_file(path, op, kMaxDataBytes);
}

inline bool is_gzip(const std::vector<std::uint8_t>& b) { return b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b; }

// Inflates a gzip stream (several members are concatenated, as gzip -d does).
FT_COMPILED std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& in, const std::string& name,
                                             const char* op);
#if FT_DEFINES_COMPILED
FT_COMPILED std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& in, const std::string& name,
                                             const char* op) {
#if defined(FT_HAVE_ZLIB)
  std::vector<std::uint8_t> out;
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) fail(op, "zlib initialisation failed");  // 15 + 32: gzip or zlib header
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  int status = Z_OK;
  std::uint8_t chunk[1 << 16];
  while (status != Z_STREAM_END || zs.avail_in > 0) {
    if (status == Z_STREAM_END) inflateReset(&zs);  // the next gzip member
    zs.next_out = chunk;
    zs.avail_out = sizeof(chunk);
    status = inflate(&zs, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      const std::string msg = zs.msg ? zs.msg : "truncated or corrupt data";
      const auto offset = zs.total_in;
      inflateEnd(&zs);
      fail(op, "\"", name, "\": gzip data is invalid at compressed offset ", offset, " (", msg, ")");
    }
    out.insert(out.end(), chunk, chunk + (sizeof(chunk) - zs.avail_out));
    if (out.size() > kMaxDataBytes) {
      inflateEnd(&zs);
      fail(op, "\"", name, "\": decompresses to more than ", kMaxDataBytes, " bytes");
    }
    if (status == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      fail(op, "\"", name, "\": gzip data ends early (truncated file?) after ", in.size(), " bytes");
    }
  }
  inflateEnd(&zs);
  return out;
#else
  (void)in;
  fail(op, "\"", name,
       "\" is gzip-compressed but fusedtensor was built without zlib (install zlib1g-dev, or "
       "decompress it with gunzip)");
#endif
}
#endif

// A file's bytes, decompressed when it starts with the gzip magic number.
inline std::vector<std::uint8_t> read_maybe_gzip(const std::string& path, const char* op) {
  std::vector<std::uint8_t> bytes = read_file(path, op);
  return is_gzip(bytes) ? gunzip(bytes, path, op) : bytes;
}

// The path of a data file shipped with fusedtensor (data/): $FT_DATA_DIR/<file>, else the data
// directory of the source tree or installation (the FT_DATA_DIR definition that the ft::ft CMake
// target adds), else data/<file>.
FT_COMPILED std::string shipped_file(const std::string& file);
#if FT_DEFINES_COMPILED
FT_COMPILED std::string shipped_file(const std::string& file) {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("FT_DATA_DIR")) return (fs::path(env) / file).string();
#ifdef FT_DATA_DIR
  if (fs::exists(fs::path(FT_DATA_DIR) / file)) return (fs::path(FT_DATA_DIR) / file).string();
#endif
  return (fs::path("data") / file).string();
}
#endif

}  // namespace ft::inline FT_ABI::data
