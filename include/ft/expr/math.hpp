// Math functions callable from host and device code, overloaded for float and double.
// CUDA's math API provides the same C names on the device that <math.h> provides on the host.
#pragma once

#include <math.h>

#include <bit>
#include <cmath>

#include "ft/core/config.hpp"

namespace ft::math {

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
FT_MATH_UNARY(sin, sinf, sin)
FT_MATH_UNARY(cos, cosf, cos)
FT_MATH_UNARY(tan, tanf, tan)
FT_MATH_UNARY(tanh, tanhf, tanh)
FT_MATH_UNARY(erf, erff, erf)
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
FT_MATH_BINARY(atan2, atan2f, atan2)
FT_MATH_BINARY(fmod, fmodf, fmod)
#undef FT_MATH_BINARY

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
  const float t = xc * 1.44269504088896341f;                 // x·log2(e)
  const int n = static_cast<int>(t + ::copysignf(0.5f, t));  // round half away from zero
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

}  // namespace ft::math
