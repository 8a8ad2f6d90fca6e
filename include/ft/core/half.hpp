// The two-byte floating types: ft::half (IEEE 754 binary16) and ft::bfloat16 (float's top 16 bits).
// They are storage types: a kernel reads them into float (compute_t), computes in float and rounds
// once, at its store, to nearest even — so a fused statement over halves rounds once, not once per
// op. The conversions are branch-free integer code, the same bits on the host and a GPU, and
// vectorise in the CPU's loops.
#pragma once

#include <cstdint>
#include <limits>
#include <ostream>
#include <type_traits>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI {

namespace detail {
// A bit cast the vectoriser sees through (a memcpy makes the value addressable inside an omp simd
// loop, which then does not vectorise).
FT_HD FT_INLINE std::uint32_t bits_of(float f) { return __builtin_bit_cast(std::uint32_t, f); }
FT_HD FT_INLINE float float_of(std::uint32_t u) { return __builtin_bit_cast(float, u); }

// binary16 → float, exactly: normal numbers re-bias the exponent; subnormals are m·2⁻²⁴, exact in
// float; inf stays inf, and a NaN keeps its payload and comes out quiet (as F16C's vcvtph2ps).
FT_HD FT_INLINE float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7fffu;
  const std::uint32_t normal = (em << 13) + ((127u - 15u) << 23);
  const std::uint32_t special = 0x7f800000u | ((em & 0x3ffu) << 13) | (em > 0x7c00u ? 0x400000u : 0u);
  const std::uint32_t tiny = bits_of(static_cast<float>(em) * 0x1p-24f);
  return float_of(sign | (em >= 0x7c00u ? special : em >= 0x0400u ? normal : tiny));
}

// float → binary16, rounded to nearest even; past 65504 + ½ulp to inf; NaN to the quiet NaN 0x7e00
// with its sign (what PyTorch's conversion gives).
FT_HD FT_INLINE std::uint16_t float_to_half(float f) {
  const std::uint32_t u = bits_of(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7fffffffu;
  // normal: drop 13 mantissa bits with the round-to-even bias, then re-bias the exponent
  const std::uint32_t n = a - ((127u - 15u) << 23);
  const std::uint32_t normal = (n + 0xfffu + ((n >> 13) & 1u)) >> 13;
  // subnormal (|f| < 2⁻¹⁴): adding 0.5 puts the result's ulp at 2⁻²⁴, the half's subnormal ulp, so
  // the float addition itself rounds to nearest even; the low bits are the half's
  const std::uint32_t tiny = bits_of(float_of(a) + 0.5f) - 0x3f000000u;
  const std::uint32_t h = a > 0x7f800000u    ? 0x7e00u
                          : a >= 0x477ff000u ? 0x7c00u  // 65520 and above round to inf
                          : a >= 0x38800000u ? normal
                                             : tiny;
  return static_cast<std::uint16_t>(sign | h);
}

// bfloat16 → float: the 16 bits are float's top half.
FT_HD FT_INLINE float bfloat16_to_float(std::uint16_t b) { return float_of(static_cast<std::uint32_t>(b) << 16); }

// float → bfloat16, rounded to nearest even; NaN to 0x7fc0 (PyTorch's).
FT_HD FT_INLINE std::uint16_t float_to_bfloat16(float f) {
  const std::uint32_t u = bits_of(f);
  const std::uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<std::uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : r);
}

struct FromBits {};
}  // namespace detail

// IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits (±65504, 3–4 significant digits).
struct half {
  std::uint16_t x;  // the bits

  half() = default;
  FT_HD FT_INLINE half(float f) : x(detail::float_to_half(f)) {}
  FT_HD FT_INLINE constexpr half(std::uint16_t bits, detail::FromBits) : x(bits) {}
  FT_HD FT_INLINE operator float() const { return detail::half_to_float(x); }
  static FT_HD FT_INLINE constexpr half from_bits(std::uint16_t bits) { return {bits, detail::FromBits{}}; }
};

// bfloat16: float's exponent range with 8 mantissa bits (2–3 significant digits).
struct bfloat16 {
  std::uint16_t x;  // the bits

  bfloat16() = default;
  FT_HD FT_INLINE bfloat16(float f) : x(detail::float_to_bfloat16(f)) {}
  FT_HD FT_INLINE constexpr bfloat16(std::uint16_t bits, detail::FromBits) : x(bits) {}
  FT_HD FT_INLINE operator float() const { return detail::bfloat16_to_float(x); }
  static FT_HD FT_INLINE constexpr bfloat16 from_bits(std::uint16_t bits) { return {bits, detail::FromBits{}}; }
};

static_assert(sizeof(half) == 2 && alignof(half) == 2 && std::is_trivially_copyable_v<half>);
static_assert(sizeof(bfloat16) == 2 && alignof(bfloat16) == 2 && std::is_trivially_copyable_v<bfloat16>);

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, half> || std::is_same_v<T, bfloat16>;

// Floating types, the two-byte ones included (std::is_floating_point knows only the built-in ones).
template <class T>
inline constexpr bool is_floating_v = std::is_floating_point_v<T> || is_half_v<T>;

// A number a tensor can be filled with or compared to: the arithmetic types and the two-byte ones.
template <class T>
inline constexpr bool is_number_v = std::is_arithmetic_v<T> || is_half_v<T>;

// The type a kernel computes a value of type T in: float for the two-byte types, T otherwise.
template <class T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;

// dst = v converted to T. A two-byte type stores its bits: a struct copy inside an omp simd loop
// would be a memory-to-memory copy that does not vectorise.
template <class T, class C>
FT_HD FT_INLINE void store_value(T& dst, C v) {
  if constexpr (std::is_same_v<T, half>)
    dst.x = detail::float_to_half(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bfloat16>)
    dst.x = detail::float_to_bfloat16(static_cast<float>(v));
  else
    dst = static_cast<T>(v);
}

inline std::ostream& operator<<(std::ostream& os, half h) { return os << static_cast<float>(h); }
inline std::ostream& operator<<(std::ostream& os, bfloat16 b) { return os << static_cast<float>(b); }

}  // namespace ft::inline FT_ABI

// numeric_limits, as for the built-in floating types (std allows it for program-defined types).
template <>
class std::numeric_limits<ft::half> {
 public:
  static constexpr bool is_specialized = true, is_signed = true, is_integer = false, is_exact = false;
  static constexpr bool has_infinity = true, has_quiet_NaN = true, has_signaling_NaN = true;
  static constexpr bool is_iec559 = true, is_bounded = true, is_modulo = false;
  static constexpr int digits = 11, digits10 = 3, max_digits10 = 5, radix = 2;
  static constexpr int min_exponent = -13, min_exponent10 = -4, max_exponent = 16, max_exponent10 = 4;
  static constexpr std::float_round_style round_style = std::round_to_nearest;
  static constexpr ft::half min() noexcept { return ft::half::from_bits(0x0400); }
  static constexpr ft::half lowest() noexcept { return ft::half::from_bits(0xfbff); }
  static constexpr ft::half max() noexcept { return ft::half::from_bits(0x7bff); }
  static constexpr ft::half epsilon() noexcept { return ft::half::from_bits(0x1400); }
  static constexpr ft::half round_error() noexcept { return ft::half::from_bits(0x3800); }
  static constexpr ft::half infinity() noexcept { return ft::half::from_bits(0x7c00); }
  static constexpr ft::half quiet_NaN() noexcept { return ft::half::from_bits(0x7e00); }
  static constexpr ft::half signaling_NaN() noexcept { return ft::half::from_bits(0x7d00); }
  static constexpr ft::half denorm_min() noexcept { return ft::half::from_bits(0x0001); }
};

template <>
class std::numeric_limits<ft::bfloat16> {
 public:
  static constexpr bool is_specialized = true, is_signed = true, is_integer = false, is_exact = false;
  static constexpr bool has_infinity = true, has_quiet_NaN = true, has_signaling_NaN = true;
  static constexpr bool is_iec559 = false, is_bounded = true, is_modulo = false;
  static constexpr int digits = 8, digits10 = 2, max_digits10 = 4, radix = 2;
  static constexpr int min_exponent = -125, min_exponent10 = -37, max_exponent = 128, max_exponent10 = 38;
  static constexpr std::float_round_style round_style = std::round_to_nearest;
  static constexpr ft::bfloat16 min() noexcept { return ft::bfloat16::from_bits(0x0080); }
  static constexpr ft::bfloat16 lowest() noexcept { return ft::bfloat16::from_bits(0xff7f); }
  static constexpr ft::bfloat16 max() noexcept { return ft::bfloat16::from_bits(0x7f7f); }
  static constexpr ft::bfloat16 epsilon() noexcept { return ft::bfloat16::from_bits(0x3c00); }
  static constexpr ft::bfloat16 round_error() noexcept { return ft::bfloat16::from_bits(0x3f00); }
  static constexpr ft::bfloat16 infinity() noexcept { return ft::bfloat16::from_bits(0x7f80); }
  static constexpr ft::bfloat16 quiet_NaN() noexcept { return ft::bfloat16::from_bits(0x7fc0); }
  static constexpr ft::bfloat16 signaling_NaN() noexcept { return ft::bfloat16::from_bits(0x7f81); }
  static constexpr ft::bfloat16 denorm_min() noexcept { return ft::bfloat16::from_bits(0x0001); }
};
