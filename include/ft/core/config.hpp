// Configuration macros shared by every fusedtensor header.
#pragma once

#include <cstddef>
#include <cstdint>

// CUDA is a property of the build, not of a file. FT_CUDA=1 (the CMake target ft::ft_cuda
// defines it for every file of a target; by hand, -DFT_CUDA=1) gives every translation unit,
// g++ or nvcc, the same types and the CUDA runtime, cuBLAS and cuDNN: a g++ file can hold CUDA
// tensors and Vars, copy them, call cuBLAS/cuDNN, save them. Kernels are compiled by nvcc only
// (FT_CUDA_KERNELS): a g++ file's fused GPU statement calls the launcher that one of the
// program's nvcc files instantiated, and throws ft::Error saying so when none did. Under nvcc
// FT_CUDA defaults to 1, elsewhere to 0.
#if !defined(FT_CUDA)
#if defined(__CUDACC__)
#define FT_CUDA 1
#else
#define FT_CUDA 0
#endif
#endif
#if defined(__CUDACC__) && !FT_CUDA
#error "fusedtensor: a file compiled by nvcc needs FT_CUDA=1 (link ft::ft_cuda, or leave FT_CUDA undefined)"
#endif
#define FT_CUDA_ENABLED FT_CUDA
#if defined(__CUDACC__)
#define FT_CUDA_KERNELS 1
#else
#define FT_CUDA_KERNELS 0
#endif

// FT_HD marks code that runs on both sides: host and device under nvcc, plain host otherwise.
#if defined(__CUDACC__)
#define FT_HD __host__ __device__
#define FT_HOST __host__
#else
#define FT_HD
#define FT_HOST
#endif

// FT_UNROLL: unroll the next loop fully in device code (so that its arrays stay in registers).
#if defined(__CUDACC__)
#define FT_UNROLL _Pragma("unroll")
#else
#define FT_UNROLL
#endif

// Every name of the library lives in an inline namespace named after the configuration (ft::
// abi_cuda or ft::abi_cpu; users never write it), so that files built with different
// configurations cannot silently share one definition of an inline function: passing a tensor
// between them fails to link instead.
#if FT_CUDA
#define FT_ABI abi_cuda
#else
#define FT_ABI abi_cpu
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
// clang (which cannot multiversion templates), or with -DFT_NO_MULTIVERSION. A clone is only
// made for a level above the one the compiler already targets: with -march=native on an
// AVX-512 machine (or -march=x86-64-v4) each loop is compiled once, with -march=x86-64-v3 twice,
// so users who pick their machine's ISA do not pay for the clones in compile time.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && defined(__x86_64__) && \
    defined(__gnu_linux__) && !defined(FT_NO_MULTIVERSION)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define FT_CPU_MULTIVERSION
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
#define FT_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define FT_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#else
#define FT_CPU_MULTIVERSION
#endif

// The CPU's strided loop (exec/cpu.hpp: each_strided, each_cat_part) reads each leaf at a
// stride known only at run time: 1 along a row for a dense leaf or a bias broadcast over the
// leading dimensions. GCC vectorises such a loop only by versioning it for unit strides, which
// it does at -O3 alone; these two options ask for it at -O2 too, for these loops only (the
// library does not depend on its users' -O level). Not under nvcc or clang.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define FT_CPU_STRIDED_LOOP __attribute__((optimize("version-loops-for-strides", "vect-cost-model=dynamic")))
#else
#define FT_CPU_STRIDED_LOOP
#endif

#if defined(_OPENMP)
#define FT_OPENMP_ENABLED 1
#else
#define FT_OPENMP_ENABLED 0
#endif

#define FT_VERSION_MAJOR 0
#define FT_VERSION_MINOR 1
#define FT_VERSION_PATCH 0

namespace ft::inline FT_ABI {

// Element counts, extents and strides are signed 64-bit, as in PyTorch.
using index_t = std::int64_t;

// The largest rank a tensor may have; bounds the small fixed-size arrays kernels carry.
inline constexpr int kMaxRank = 8;

}  // namespace ft::inline FT_ABI
