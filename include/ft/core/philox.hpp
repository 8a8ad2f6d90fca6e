// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), and
// the uniform/normal transforms built on it. Element i of a random tensor is a pure function
// of (seed, i), computed with integer ops and correctly rounded float ops only, so the CPU
// and the GPU produce bit-identical float numbers.
#pragma once

#include <math.h>  // ::sqrt, ::log, ::cos: the same names on the host and in device code

#include <cstdint>
#include <cstring>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::philox {

struct U32x4 {
  std::uint32_t v[4];
};

// Ten rounds of Philox4x32 on a 128-bit counter with a 64-bit key (k0, k1).
FT_HD FT_INLINE U32x4 philox4x32_10(U32x4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // multipliers from the paper
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
  std::uint32_t c0 = ctr.v[0], c1 = ctr.v[1], c2 = ctr.v[2], c3 = ctr.v[3];
  for (int round = 0; round < 10; ++round) {
    std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * c0;
    std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * c2;
    std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// The four words for element `index` of a tensor drawn with `seed`.
FT_HD FT_INLINE U32x4 philox4x32_10(std::uint64_t index, std::uint64_t seed) {
  U32x4 ctr{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32), 0u, 0u}};
  return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// Float ops routed through double: each is the correctly rounded float result, and no
// compiler can contract them into an FMA differently on the host and the device.
FT_HD FT_INLINE float mul_rn(float a, float b) { return static_cast<float>(static_cast<double>(a) * b); }
FT_HD FT_INLINE float add_rn(float a, float b) { return static_cast<float>(static_cast<double>(a) + b); }
FT_HD FT_INLINE float div_rn(float a, float b) { return static_cast<float>(static_cast<double>(a) / b); }
FT_HD FT_INLINE float fma_rn(float a, float b, float c) {
  return static_cast<float>(static_cast<double>(a) * b + c);  // a·b is exact in double
}

FT_HD FT_INLINE float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
FT_HD FT_INLINE std::uint32_t float_to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Uniform in [0, 1) from the top 24 bits: every value is exact in float.
FT_HD FT_INLINE float uniform_float(std::uint32_t x) { return static_cast<float>(x >> 8) * 0x1p-24f; }
FT_HD FT_INLINE double uniform_double(std::uint32_t hi, std::uint32_t lo) {
  std::uint64_t m = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);  // 53 random bits
  return static_cast<double>(m) * 0x1p-53;
}

// ln(u) for u in (0, 1], to about 1 ulp: u = m·2^e with m in [√½, √2), ln m = 2·atanh(s)
// with s = (m−1)/(m+1), |s| < 0.172, so the odd series to s⁹ is below float precision.
FT_HD FT_INLINE float det_log(float u) {
  std::uint32_t b = float_to_bits(u);
  int e = static_cast<int>((b >> 23) & 0xffu) - 127;
  float m = bits_to_float((b & 0x7fffffu) | 0x3f800000u);
  if (m > 1.41421356f) {
    m = mul_rn(m, 0.5f);
    e += 1;
  }
  float f = add_rn(m, -1.0f);
  float s = div_rn(f, add_rn(f, 2.0f));
  float s2 = mul_rn(s, s);
  float p = fma_rn(s2, 1.0f / 9.0f, 1.0f / 7.0f);
  p = fma_rn(p, s2, 1.0f / 5.0f);
  p = fma_rn(p, s2, 1.0f / 3.0f);
  p = fma_rn(p, s2, 1.0f);
  float ln_m = mul_rn(mul_rn(2.0f, s), p);
  float fe = static_cast<float>(e);
  // ln 2 split in a high part exact in float times small integers and a low correction
  return add_rn(fma_rn(fe, 0.693145751953125f, ln_m), mul_rn(fe, 1.42860682030941723212e-6f));
}

// cos(2π·x/2³²): the quadrant comes from the top bits exactly, the rest is a ∈ [−π/4, π/4)
// where Taylor series to a⁹ (sin) and a¹⁰ (cos) are below float precision.
FT_HD FT_INLINE float det_cos_2pi(std::uint32_t x) {
  std::uint32_t j = (x + (1u << 29)) >> 30;  // nearest quarter turn
  std::int32_t rem = static_cast<std::int32_t>(x - (j << 30));
  float a = mul_rn(static_cast<float>(rem), 1.46291807926715968e-9f);  // π/2 / 2³⁰
  float a2 = mul_rn(a, a);
  float c = fma_rn(a2, 1.0f / 3628800.0f * -1.0f, 1.0f / 40320.0f);
  c = fma_rn(c, a2, -1.0f / 720.0f);
  c = fma_rn(c, a2, 1.0f / 24.0f);
  c = fma_rn(c, a2, -0.5f);
  c = fma_rn(c, a2, 1.0f);
  float s = fma_rn(a2, 1.0f / 362880.0f, -1.0f / 5040.0f);
  s = fma_rn(s, a2, 1.0f / 120.0f);
  s = fma_rn(s, a2, -1.0f / 6.0f);
  s = mul_rn(s, a2);
  s = fma_rn(s, a, a);
  switch (j & 3u) {
    case 0:
      return c;
    case 1:
      return -s;
    case 2:
      return -c;
    default:
      return s;
  }
}

// A standard normal by Box–Muller from two 32-bit words; bit-identical on host and device.
FT_HD FT_INLINE float normal_float(std::uint32_t x0, std::uint32_t x1) {
  float u = static_cast<float>((x0 >> 8) + 1u) * 0x1p-24f;  // (0, 1]: log never sees 0
  float r = static_cast<float>(::sqrt(static_cast<double>(mul_rn(-2.0f, det_log(u)))));
  return mul_rn(r, det_cos_2pi(x1));
}

// Double normals use the platform's log/cos: equal on host and device to within an ulp or two.
FT_HD FT_INLINE double normal_double(const U32x4& w) {
  double u = 1.0 - uniform_double(w.v[0], w.v[1]);  // (0, 1]
  double t = uniform_double(w.v[2], w.v[3]);
  return ::sqrt(-2.0 * ::log(u)) * ::cos(6.283185307179586476925 * t);
}

}  // namespace ft::inline FT_ABI::philox
