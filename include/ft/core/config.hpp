// Configuration macros shared by every fusedtensor header.
#pragma once

#include <cstddef>
#include <cstdint>

// FT_HD marks code that runs on both sides: host and device under nvcc, plain host otherwise.
#if defined(__CUDACC__)
#define FT_HD __host__ __device__
#define FT_HOST __host__
#define FT_CUDA_ENABLED 1
#else
#define FT_HD
#define FT_HOST
#define FT_CUDA_ENABLED 0
#endif

// Forces inlining of the small evaluator calls that make up a fused kernel body.
#if defined(__CUDACC__)
#define FT_INLINE __forceinline__
#elif defined(__GNUC__)
#define FT_INLINE inline __attribute__((always_inline))
#else
#define FT_INLINE inline
#endif

// The CPU loops are compiled three times — AVX-512, AVX2+FMA and the baseline — and the best
// one for the running machine is picked at load time (GCC's function multiversioning, glibc
// ifunc), so a portable build still uses the machine's full vector width. Off under nvcc and
// clang (which cannot multiversion templates), or with -DFT_NO_MULTIVERSION.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && defined(__x86_64__) && \
    defined(__gnu_linux__) && !defined(FT_NO_MULTIVERSION)
#define FT_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FT_CPU_MULTIVERSION
#endif

#if defined(_OPENMP)
#define FT_OPENMP_ENABLED 1
#else
#define FT_OPENMP_ENABLED 0
#endif

#define FT_VERSION_MAJOR 0
#define FT_VERSION_MINOR 1
#define FT_VERSION_PATCH 0

namespace ft {

// Element counts, extents and strides are signed 64-bit, as in PyTorch.
using index_t = std::int64_t;

// The largest rank a tensor may have; bounds the small fixed-size arrays kernels carry.
inline constexpr int kMaxRank = 8;

}  // namespace ft
