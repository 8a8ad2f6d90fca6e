// Division by a runtime-invariant divisor with a multiply-high and a shift (Granlund and
// Montgomery, "Division by invariant integers using multiplication", PLDI'94): the kernels
// turn linear indices into coordinates without any hardware `/` or `%`.
#pragma once

#include <cstdint>
#include <type_traits>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI {

template <class I>
struct FastDivmod {
  static_assert(std::is_same_v<I, std::int32_t> || std::is_same_v<I, std::int64_t>,
                "ft::FastDivmod: index type must be int32_t or int64_t");
  using U = std::make_unsigned_t<I>;
  static constexpr int kBits = sizeof(U) * 8;

  U divisor = 1;
  U multiplier = 1;
  int shift = 0;

  FastDivmod() = default;
  // For 0 < d < 2^(kBits-1); exact for every dividend 0 <= n < 2^(kBits-1).
  explicit FastDivmod(I d) {
    divisor = static_cast<U>(d > 0 ? d : 1);
    shift = 0;
    while ((U(1) << shift) < divisor) ++shift;  // shift = ceil(log2(d))
    // multiplier = floor(2^kBits · (2^shift − d) / d) + 1
    if constexpr (kBits == 32) {
      multiplier = static_cast<U>(((std::uint64_t(1) << 32) * ((std::uint64_t(1) << shift) - divisor)) / divisor + 1);
    } else {
      using W = unsigned __int128;
      multiplier = static_cast<U>(((W(1) << 64) * ((W(1) << shift) - divisor)) / divisor + 1);
    }
  }

  FT_HD FT_INLINE static U mulhi(U a, U b) {
#if defined(__CUDA_ARCH__)
    if constexpr (kBits == 32)
      return __umulhi(a, b);
    else
      return __umul64hi(a, b);
#else
    if constexpr (kBits == 32)
      return static_cast<U>((std::uint64_t(a) * b) >> 32);
    else
      return static_cast<U>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
  }

  FT_HD FT_INLINE I div(I n) const {
    U un = static_cast<U>(n);
    return static_cast<I>((mulhi(un, multiplier) + un) >> shift);  // no overflow: n < 2^(kBits-1)
  }
  FT_HD FT_INLINE void divmod(I n, I& q, I& r) const {
    q = div(n);
    r = n - q * static_cast<I>(divisor);
  }
};

}  // namespace ft::inline FT_ABI
