// The CPU's copies and fills: a tensor written from a tensor of its own dtype, or filled with
// one value. They move bytes, so one routine per element size (1, 2, 4, 8) serves every dtype
// and rank: a program compiles four small loops instead of a fused kernel per dtype × rank
// (each kernel is a dense and a strided loop in three ISA clones; copies and fills were a tenth
// of examples/train_digits.cpp's code). Memory-bound, so no ISA clones either.
#pragma once

#include <cstring>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/cpu.hpp"

namespace ft::inline FT_ABI::exec::cpu {

// A copy's geometry after coalescing: extents of 1 dropped, and neighbouring dimensions that
// both sides step through as one merged, so a contiguous copy is one row.
struct CopyGeometry {
  int rank = 0;
  index_t shape[kMaxRank] = {};
  index_t dst[kMaxRank] = {};  // strides in elements
  index_t src[kMaxRank] = {};  // 0 along a broadcast dimension
};

inline CopyGeometry coalesce(int rank, const index_t* shape, const index_t* dst, const index_t* src) {
  CopyGeometry g;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    const int k = g.rank - 1;
    if (k >= 0 && g.dst[k] == dst[d] * shape[d] && g.src[k] == src[d] * shape[d]) {
      g.shape[k] *= shape[d];
      g.dst[k] = dst[d];
      g.src[k] = src[d];
      continue;
    }
    g.shape[g.rank] = shape[d];
    g.dst[g.rank] = dst[d];
    g.src[g.rank] = src[d];
    ++g.rank;
  }
  if (g.rank == 0) {  // one element
    g.rank = 1;
    g.shape[0] = 1;
    g.dst[0] = g.src[0] = 1;
  }
  return g;
}

// Copies elements [begin, end) (row-major over g's shape) of N bytes each, row by row. Bytes
// move through memcpy, so any dtype of that size is copied exactly (NaN payloads included).
template <int N>
void copy_range(unsigned char* dst, const unsigned char* src, const CopyGeometry& g, index_t begin, index_t end) {
  const int r = g.rank;
  const index_t m = g.shape[r - 1], dj = g.dst[r - 1], sj = g.src[r - 1];
  index_t coord[kMaxRank] = {};
  index_t rest = begin;
  for (int d = r - 1; d >= 0; --d) {
    coord[d] = rest % g.shape[d];
    rest /= g.shape[d];
  }
  index_t pos = begin;
  while (pos < end) {
    index_t doff = 0, soff = 0;
    for (int d = 0; d < r; ++d) {
      doff += coord[d] * g.dst[d];
      soff += coord[d] * g.src[d];
    }
    const index_t len = (end - pos) < (m - coord[r - 1]) ? (end - pos) : (m - coord[r - 1]);
    unsigned char* d = dst + doff * N;
    const unsigned char* s = src + soff * N;
    if (dj == 1 && sj == 1) {
      std::memmove(d, s, static_cast<std::size_t>(len) * N);  // memmove: a tensor copied onto itself
    } else if (sj == 0) {  // a broadcast row (or a fill): the value in a local the stores cannot alias
      unsigned char v[N];
      std::memcpy(v, s, N);
      for (index_t j = 0; j < len; ++j) std::memcpy(d + j * dj * N, v, N);
    } else {
      for (index_t j = 0; j < len; ++j) std::memcpy(d + j * dj * N, s + j * sj * N, N);
    }
    pos += len;
    coord[r - 1] = 0;
    for (int k = r - 2; k >= 0; --k) {  // next row: carry into the outer dimensions
      if (++coord[k] < g.shape[k]) break;
      coord[k] = 0;
    }
  }
}

// dst[i] = src[i] for the n elements of `shape` (rank ≤ kMaxRank), each `size` bytes, with
// strides in elements (a source stride of 0 broadcasts); one launch in ft::stats. dst and src
// either do not overlap or are the same elements.
inline void copy_elements(void* dst, const index_t* dst_strides, const void* src, const index_t* src_strides,
                          const index_t* shape, int rank, std::size_t size) {
  stats::detail::record_launch(kCPU);
  index_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  if (n == 0) return;
  const CopyGeometry g = coalesce(rank, shape, dst_strides, src_strides);
  auto* out = static_cast<unsigned char*>(dst);
  const auto* in = static_cast<const unsigned char*>(src);
  const int parts = n > kParallelGrain ? num_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(parts) if (parts > 1)
  for (int part = 0; part < parts; ++part) {
    index_t begin, end;
    thread_share(n, part, parts, begin, end);
    switch (size) {
      case 1:
        copy_range<1>(out, in, g, begin, end);
        break;
      case 2:
        copy_range<2>(out, in, g, begin, end);
        break;
      case 4:
        copy_range<4>(out, in, g, begin, end);
        break;
      default:
        copy_range<8>(out, in, g, begin, end);
        break;
    }
  }
}

// Whether copy_elements can move a T: a trivially copyable type of 1, 2, 4 or 8 bytes (every dtype).
template <class T>
inline constexpr bool byte_copyable_v = std::is_trivially_copyable_v<T> &&
                                        (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

// dst = src (src broadcast to dst's shape, aligned at the last dimension), both on the CPU.
template <class T, int R, int S>
void copy_tensor(const Tensor<T, R>& dst, const Tensor<T, S>& src) {
  static_assert(S <= R);
  index_t strides[R > 0 ? R : 1] = {};
  for (int i = 0; i < S; ++i) strides[R - S + i] = src.shape()[i] == 1 ? 0 : src.strides()[i];
  copy_elements(dst.data(), dst.strides().begin(), src.data(), strides, dst.shape().begin(), R, sizeof(T));
}

// Every element of dst (on the CPU) = value.
template <class T, int R>
void fill_tensor(const Tensor<T, R>& dst, T value) {
  const index_t zeros[R > 0 ? R : 1] = {};
  copy_elements(dst.data(), dst.strides().begin(), &value, zeros, dst.shape().begin(), R, sizeof(T));
}

}  // namespace ft::inline FT_ABI::exec::cpu
