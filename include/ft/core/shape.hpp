// Array<T, N> (a fixed-size array usable in kernels) and Shape<R> (a tensor's extents).
#pragma once

#include <initializer_list>
#include <ostream>
#include <string>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI {

// std::array is not usable in device code without relaxed constexpr; this one is.
template <class T, int N>
struct Array {
  T data_[N > 0 ? N : 1] = {};

  FT_HD constexpr T& operator[](int i) { return data_[i]; }
  FT_HD constexpr const T& operator[](int i) const { return data_[i]; }
  static constexpr int size() { return N; }
  FT_HD constexpr T* begin() { return data_; }
  FT_HD constexpr T* end() { return data_ + N; }
  FT_HD constexpr const T* begin() const { return data_; }
  FT_HD constexpr const T* end() const { return data_ + N; }

  friend constexpr bool operator==(const Array& a, const Array& b) {
    for (int i = 0; i < N; ++i)
      if (a.data_[i] != b.data_[i]) return false;
    return true;
  }
};

// The extents of a rank-R tensor.
template <int R>
struct Shape : Array<index_t, R> {
  static_assert(R >= 0 && R <= kMaxRank, "ft::Shape: rank must be between 0 and ft::kMaxRank (8)");
  static constexpr int rank = R;

  constexpr Shape() = default;
  constexpr Shape(const Array<index_t, R>& a) : Array<index_t, R>(a) {}  // NOLINT: implicit
  // Shape<2>{3, 4}; the count must equal the rank.
  constexpr Shape(std::initializer_list<index_t> dims) {
    if (static_cast<int>(dims.size()) != R) fail("Shape", "expected ", R, " extents, got ", dims.size());
    int i = 0;
    for (index_t d : dims) (*this)[i++] = d;
  }

  FT_HD constexpr index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < R; ++i) n *= (*this)[i];
    return n;
  }
};

template <class T, int N>
std::ostream& operator<<(std::ostream& os, const Array<T, N>& a) {
  os << '[';
  for (int i = 0; i < N; ++i) os << (i ? ", " : "") << a[i];
  return os << ']';
}

// "[3, 4]" for error messages.
template <class T, int N>
std::string to_string(const Array<T, N>& a) {
  return detail::concat(a);
}

// "[3, 4]" for `n` extents at `d`, as to_string of a Shape (a rank known only when running).
FT_OUTLINE std::string dims_string(const index_t* d, int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) (s += i ? ", " : "") += std::to_string(d[i]);
  return s + "]";
}

// Row-major (C-order) strides, in elements, of a contiguous tensor of this shape.
template <int R>
constexpr Array<index_t, R> contiguous_strides(const Shape<R>& s) {
  Array<index_t, R> st{};
  index_t acc = 1;
  for (int i = R - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i] > 0 ? s[i] : 1;
  }
  return st;
}

// Normalises a possibly negative dimension index, as PyTorch does (-1 is the last dimension).
inline int wrap_dim(int d, int rank, const char* op) {
  int r = rank == 0 ? 1 : rank;
  if (d < -r || d >= r) fail(op, "dimension ", d, " is out of range for a tensor of rank ", rank);
  return d < 0 ? d + r : d;
}

}  // namespace ft::inline FT_ABI
