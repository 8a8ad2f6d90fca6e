// Math functions callable from host and device code, overloaded for float and double.
// CUDA's math API provides the same C names on the device that <math.h> provides on the host.
#pragma once

#include <math.h>

#include <bit>
#include <cmath>
#include <limits>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::math {

#define FT_MATH_UNARY(name, fname, dname)                    \
  FT_HD FT_INLINE float name(float x) { return ::fname(x); } \
  FT_HD FT_INLINE double name(double x) { return ::dname(x); }

FT_HD FT_INLINE double exp(double x) { return ::exp(x); }
FT_MATH_UNARY(exp2, exp2f, exp2)
FT_MATH_UNARY(log, logf, log)
FT_MATH_UNARY(log2, log2f, log2)
FT_MATH_UNARY(log1p, log1pf, log1p)
FT_MATH_UNARY(expm1, expm1f, expm1)
FT_MATH_UNARY(sqrt, sqrtf, sqrt)
FT_HD FT_INLINE double sin(double x) { return ::sin(x); }
FT_HD FT_INLINE double cos(double x) { return ::cos(x); }
FT_HD FT_INLINE double tanh(double x) { return ::tanh(x); }
FT_MATH_UNARY(tan, tanf, tan)
FT_HD FT_INLINE double erf(double x) { return ::erf(x); }
FT_MATH_UNARY(floor, floorf, floor)
FT_MATH_UNARY(ceil, ceilf, ceil)
FT_MATH_UNARY(rint, rintf, rint)  // round half to even, as torch.round
FT_MATH_UNARY(trunc, truncf, trunc)
FT_MATH_UNARY(fabs, fabsf, fabs)
#undef FT_MATH_UNARY

#define FT_MATH_BINARY(name, fname, dname)                               \
  FT_HD FT_INLINE float name(float x, float y) { return ::fname(x, y); } \
  FT_HD FT_INLINE double name(double x, double y) { return ::dname(x, y); }

FT_MATH_BINARY(pow, powf, pow)
// x·y + z rounded once, on every device and at every -march: where a value must be
// bit-identical across the CPU's ISA clones and the GPU, a product and a sum are written
// as one fma, so no compiler's contraction choice (nvcc contracts, g++ may) changes it.
FT_HD FT_INLINE float fma(float x, float y, float z) { return ::fmaf(x, y, z); }
FT_HD FT_INLINE double fma(double x, double y, double z) { return ::fma(x, y, z); }
FT_MATH_BINARY(atan2, atan2f, atan2)
FT_MATH_BINARY(fmod, fmodf, fmod)
#undef FT_MATH_BINARY

namespace detail {
// copysignf as bit operations: GCC keeps copysignf a call until late, and its loop versioning
// pass counts a call as expensive, so a strided loop holding one (every exp, tanh, erf, gelu)
// was never versioned for unit strides and stored element by element.
FT_INLINE float copysign_bits(float mag, float sign) {
  return std::bit_cast<float>((std::bit_cast<unsigned>(mag) & 0x7fffffffu) |
                              (std::bit_cast<unsigned>(sign) & 0x80000000u));
}
}  // namespace detail

// expf. The device uses CUDA's; the host uses a Cephes-style polynomial (≤ 1 ulp from the
// correctly rounded result) because glibc's expf is an opaque call that stops the fused CPU
// loops from vectorising. Clamping is an integer select on the bits and rounding uses
// copysign, so no float comparison turns into a branch at any -march, -ffast-math included.
FT_HD FT_INLINE float exp(float x) {
#if defined(__CUDA_ARCH__)
  return ::expf(x);
#else
  const int bits = std::bit_cast<int>(x);
  int mag = bits & 0x7fffffff;
  mag = (mag > 0x42d00000 && mag <= 0x7f800000) ? 0x42d00000 : mag;  // |x| > 104 → ±104: inf or 0; NaN kept
  const float xc = std::bit_cast<float>((bits & static_cast<int>(0x80000000u)) | mag);
  const float t = xc * 1.44269504088896341f;                           // x·log2(e)
  const int n = static_cast<int>(t + detail::copysign_bits(0.5f, t));  // round half away from zero
  const float fn = static_cast<float>(n);
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;  // x − n·ln2, ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n as two factors (|n| ≤ 150), so that overflow gives inf and tiny results stay denormal
  const int n1 = n >> 1, n2 = n - n1;
  return p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
#endif
}

namespace detail {
// a if pick else b, as an integer blend: with a float select GCC sinks the computation of one
// side into a branch and stops vectorising.
FT_INLINE float blend(bool pick, float a, float b) {
  const int m = -static_cast<int>(pick);
  return std::bit_cast<float>((std::bit_cast<int>(a) & m) | (std::bit_cast<int>(b) & ~m));
}

// tanh(x) given e = e^{2|x|}: an odd polynomial for |x| < 0.625 and 1 − 2/(e + 1) above (both
// computed, one selected: no branch).
FT_INLINE float tanh_given_exp(float x, float e) {
  const float ax = ::fabsf(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = copysign_bits(p * z * x + x, x);  // keeps −0
  const float large = copysign_bits(1.0f - 2.0f / (e + 1.0f), x);
  return blend(ax < 0.625f, small, large);
}

// erf(x) given e = e^{−x²}: x + x·P(x²) for |x| < 0.921875 and 1 − e·Q(1/(1 + |x|)) above
// (both computed, one selected). P and Q were fitted here (weighted least squares on
// Chebyshev nodes against 40-digit values); with e within 1 ulp, the result is within 1.2 ulp
// of the correctly rounded erf, with or without fma contraction (measured on a sweep;
// tests/test_unary.cpp checks 2 ulp). Large |x| gives ±1 as e underflows; NaN stays NaN;
// erf(−0) = −0.
FT_INLINE float erf_given_exp(float x, float e) {
  const float ax = ::fabsf(x);
  const float z = x * x;
  float p = 8.370426075998694e-05f;
  p = p * z - 0.000814279483165592f;
  p = p * z + 0.005201042164117098f;
  p = p * z - 0.026859402656555176f;
  p = p * z + 0.11283695697784424f;
  p = p * z - 0.37612634897232056f;
  p = p * z + 0.12837916612625122f;
  const float small = x * p + x;
  const float u = 1.0f / (1.0f + ax);
  float q = 0.9833825826644897f;
  q = q * u - 3.3573646545410156f;
  q = q * u + 4.632551193237305f;
  q = q * u - 2.885540723800659f;
  q = q * u + 0.3210907280445099f;
  q = q * u + 0.1757865995168686f;
  q = q * u + 0.575882613658905f;
  q = q * u + 0.5634585618972778f;
  q = q * u + 1.9745848476304673e-05f;
  const float large = copysign_bits(1.0f - e * q, x);
  return blend(ax < 0.921875f, small, large);
}
}  // namespace detail

// tanhf and erff: on the host, the branch-free forms above through the vectorisable exp, so
// the fused CPU loops (tanh, GELU and their gradients) vectorise; the device uses CUDA's.
FT_HD FT_INLINE float tanh(float x) {
#if defined(__CUDA_ARCH__)
  return ::tanhf(x);
#else
  return detail::tanh_given_exp(x, exp(2.0f * ::fabsf(x)));
#endif
}
FT_HD FT_INLINE float erf(float x) {
#if defined(__CUDA_ARCH__)
  return ::erff(x);
#else
  return detail::erf_given_exp(x, exp(-(x * x)));
#endif
}

namespace detail {
// sinf (quadrant 0) and cosf (quadrant 1) on the host: x − q·π/2 reduced in double, then the
// Cephes minimax polynomials on [−π/4, π/4], selected by the quadrant without a branch. The
// results are within 1.5 ulp for |x| < 2^22·π/2 (measured); beyond, the reduction's error grows
// as |x|·1e-16 (1e-7 absolute at |x| = 1e9); for |x| > 2^40 it would be meaningless, and the
// result is NaN instead of a wrong number.
FT_INLINE float sin_quadrant(float x, int shift) {
  const double xd = x;
  const double q = ::rint(xd * 0.63661977236758134308);  // x·2/π to the nearest integer
  // π/2 in two parts (the first with 31 significant bits: q·first is exact for |q| < 2^22)
  const float r = static_cast<float>((xd - q * 1.5707963267341256) - q * 6.077100506506192e-11);
  double qm = q - 4.0 * ::floor(q * 0.25);  // q mod 4, exactly
  qm = qm == qm ? qm : 0.0;                 // x = ±inf or NaN: r is NaN anyway
  const int n = static_cast<int>(qm) + shift;
  const float z = r * r;
  const float s = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
  const float c =
      ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
  float v = (n & 1) ? c : s;
  v = (n & 2) ? -v : v;
  v = ::fabsf(x) > 1.09951163e12f ? std::numeric_limits<float>::quiet_NaN() : v;
  return x == 0.0f ? (shift ? 1.0f : x) : v;  // sin(−0) = −0
}
}  // namespace detail

FT_HD FT_INLINE float sin(float x) {
#if defined(__CUDA_ARCH__)
  return ::sinf(x);
#else
  return detail::sin_quadrant(x, 0);
#endif
}
FT_HD FT_INLINE float cos(float x) {
#if defined(__CUDA_ARCH__)
  return ::cosf(x);
#else
  return detail::sin_quadrant(x, 1);
#endif
}

FT_HD FT_INLINE float rsqrt(float x) {
#if defined(__CUDA_ARCH__)
  return ::rsqrtf(x);
#else
  return 1.0f / ::sqrtf(x);
#endif
}
FT_HD FT_INLINE double rsqrt(double x) {
#if defined(__CUDA_ARCH__)
  return ::rsqrt(x);
#else
  return 1.0 / ::sqrt(x);
#endif
}

template <class T>
FT_HD FT_INLINE bool isnan(T x) {
  return x != x;
}
// ±inf (x − x is NaN only for an infinity or a NaN).
template <class T>
FT_HD FT_INLINE bool isinf(T x) {
  return x == x && x - x != x - x;
}

}  // namespace ft::inline FT_ABI::math
