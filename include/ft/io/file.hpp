// Whole-file reads that check the size before allocating, a bounds-checked byte reader whose
// errors name the file and the offset, and atomic writes: a temporary file in the target's
// directory, flushed and fsync'd, then renamed over the target, so a crash leaves either the
// old file or the new one, never half of one.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI::io {

// The largest file a loader reads whole (a larger one is an ft::Error, not an allocation).
inline constexpr std::uintmax_t kMaxFileBytes = std::uintmax_t{64} << 30;

inline std::vector<std::uint8_t> read_file(const std::string& path, const char* op,
                                           std::uintmax_t limit = kMaxFileBytes) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(op, "\"", path, "\" is a directory");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(op, "cannot read \"", path, "\": ", ec.message());
  if (size > limit) fail(op, "\"", path, "\" is ", size, " bytes, more than the limit of ", limit);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(op, "cannot open \"", path, "\": ", std::strerror(errno));
  const std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  if (got != bytes.size()) fail(op, "\"", path, "\": read ", got, " of ", bytes.size(), " bytes");
  return bytes;
}

// Sequential reads from a byte span; running past the end is an ft::Error naming what was expected.
class ByteReader {
 public:
  ByteReader(std::span<const std::uint8_t> bytes, std::string name, const char* op)
      : b_(bytes), name_(std::move(name)), op_(op) {}
  std::size_t offset() const { return pos_; }
  std::size_t remaining() const { return b_.size() - pos_; }
  const std::string& name() const { return name_; }
  std::span<const std::uint8_t> take(std::size_t n, const char* what) {
    if (n > remaining())
      fail(op_, "\"", name_, "\": truncated at offset ", pos_, ": expected ", what, " of ", n, " bytes, ", remaining(),
           " remain");
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint64_t u64_le(const char* what) { return le(take(8, what)); }
  std::uint32_t u32_le(const char* what) { return static_cast<std::uint32_t>(le(take(4, what))); }
  std::uint16_t u16_le(const char* what) { return static_cast<std::uint16_t>(le(take(2, what))); }
  [[noreturn]] void error(std::size_t at, const std::string& what) const {
    fail(op_, "\"", name_, "\" at offset ", at, ": ", what);
  }

 private:
  static std::uint64_t le(std::span<const std::uint8_t> s) {
    std::uint64_t v = 0;
    for (std::size_t i = s.size(); i-- > 0;) v = (v << 8) | s[i];
    return v;
  }
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
  std::string name_;
  const char* op_;
};

// Writes `path` atomically: write(FILE*) fills a temporary file next to it, which then replaces it.
// With `sync` (checkpoints, model files) the data and the rename are fsync'd, so they survive a
// power cut too; without it (many small files, such as images) a crashed process still leaves
// the old file or the new one.
inline void write_file_atomic(const std::string& path, const char* op, const std::function<void(std::FILE*)>& write,
                              bool sync = true) {
  namespace fs = std::filesystem;
  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string tmp =
      (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++)))
          .string();
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(op, "cannot create \"", tmp, "\" (to be renamed to \"", path, "\"): ", std::strerror(errno));
  auto abandon = [&](const std::string& why) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    fail(op, "writing \"", path, "\" failed: ", why, "; the previous file, if any, is unchanged");
  };
  try {
    write(f);
  } catch (const std::exception& e) {
    abandon(e.what());
  }
  if (std::ferror(f) || std::fflush(f) != 0) abandon(std::string("write error: ") + std::strerror(errno));
  if (sync && fsync(fileno(f)) != 0) abandon(std::string("fsync: ") + std::strerror(errno));
  if (std::fclose(f) != 0) {
    f = nullptr;
    abandon(std::string("close: ") + std::strerror(errno));
  }
  f = nullptr;
  if (std::rename(tmp.c_str(), path.c_str()) != 0) abandon(std::string("rename: ") + std::strerror(errno));
  if (!sync) return;
  // the rename itself survives a power cut only once the directory is synced
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (d >= 0) {
    (void)fsync(d);
    ::close(d);
  }
}

inline void write_all(std::FILE* f, const void* data, std::size_t n) {
  if (n && std::fwrite(data, 1, n, f) != n) throw Error(std::string("fwrite: ") + std::strerror(errno));
}

}  // namespace ft::inline FT_ABI::io
