// Math functions callable from host and device code, overloaded for float and double.
// CUDA's math API provides the same C names on the device that <math.h> provides on the host.
#pragma once

#include <math.h>

#include <cmath>

#include "ft/core/config.hpp"

namespace ft::math {

#define FT_MATH_UNARY(name, fname, dname) \
  FT_HD FT_INLINE float name(float x) { return ::fname(x); } \
  FT_HD FT_INLINE double name(double x) { return ::dname(x); }

FT_MATH_UNARY(exp, expf, exp)
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

#define FT_MATH_BINARY(name, fname, dname) \
  FT_HD FT_INLINE float name(float x, float y) { return ::fname(x, y); } \
  FT_HD FT_INLINE double name(double x, double y) { return ::dname(x, y); }

FT_MATH_BINARY(pow, powf, pow)
FT_MATH_BINARY(atan2, atan2f, atan2)
FT_MATH_BINARY(fmod, fmodf, fmod)
#undef FT_MATH_BINARY

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
