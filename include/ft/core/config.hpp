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

// Forces inlining of the small evaluator calls that make up a fused kernel body. Not in an
// unoptimised host build (-O0, as the value tests are built): there each evaluator stays one
// function that every loop reading it calls, instead of being copied into each loop (code the
// compiler must generate for every statement, at no gain in speed at -O0).
#if defined(__CUDACC__)
#define FT_INLINE __forceinline__
#elif defined(__GNUC__) && defined(__OPTIMIZE__)
#define FT_INLINE inline __attribute__((always_inline))
#else
#define FT_INLINE inline
#endif

// FT_OUTLINE: a non-template helper that the statement templates share (checks, plans): kept
// out of line, so that -O3 does not copy it into every statement that calls it (compile time).
#if defined(__GNUC__)
#define FT_OUTLINE inline __attribute__((noinline))
#else
#define FT_OUTLINE inline
#endif

// Separate compilation. The library's non-template code (gradient clipping, the grad scaler, file
// readers and writers, TensorBoard's event files) and its fixed instantiations (each optimizer's
// step for its four dtypes, float and double products and convolutions) are compiled once, into
// the static library built from src/fusedtensor.cpp, instead of in every file that includes
// them: CMake's targets do this by default (option FT_SEPARATE_COMPILATION).
//   FT_SEPARATE_COMPILATION  this file links that library: its headers declare those parts.
//   FT_BUILDING_LIBRARY      this file is the library (src/fusedtensor.cpp): it defines them.
//   neither                  header-only (a plain `-I include` build): defined where used.
// FT_DEFINES_COMPILED is 1 where this file must see their definitions (the library, or a
// header-only build); FT_COMPILED marks such a function's declaration and definition (inline
// where header-only); FT_COMPILED_INSTANCE(class X<...>) names a fixed instantiation (extern in
// the library's users, instantiated in the library).
#if defined(FT_SEPARATE_COMPILATION) && !defined(FT_BUILDING_LIBRARY)
#define FT_DEFINES_COMPILED 0
#else
#define FT_DEFINES_COMPILED 1
#endif
#if defined(FT_BUILDING_LIBRARY)
#define FT_COMPILED
#define FT_COMPILED_INSTANCE(...) template __VA_ARGS__;
#elif defined(FT_SEPARATE_COMPILATION)
#define FT_COMPILED
#define FT_COMPILED_INSTANCE(...) extern template __VA_ARGS__;
#else
#define FT_COMPILED inline
#define FT_COMPILED_INSTANCE(...)
#endif

// The CPU loops (FT_CPU_MULTIVERSION) are compiled for the machine's vector ISA in one of two
// ways, chosen by the CMake option FT_CPU_ISA (the target ft::ft defines the macros):
// - host (CMake's default): once, for the ISA of the machine that builds (FT_CPU_HOST_ISA=4:
//   AVX-512, x86-64-v4; 3: AVX2+FMA, x86-64-v3; 1: the baseline), through a target attribute on
//   the loops alone (the rest of the program keeps the user's flags). A program built so stops
//   at start-up with a message naming the option on a CPU without that ISA, rather than at an
//   illegal instruction.
// - portable (FT_CPU_HOST_ISA undefined: also the default without CMake): three times —
//   AVX-512, AVX2+FMA and the baseline — and the best one for the running machine is picked at
//   load time (GCC's function multiversioning, glibc ifunc), for binaries that run elsewhere.
//   Each clone costs compile time: train_digits' code is 40 % clones. A clone is only made for a
//   level above the one the compiler already targets: with -march=native on an AVX-512 machine
//   (or -march=x86-64-v4) each loop is compiled once, with -march=x86-64-v3 twice.
// Off under nvcc and clang (which cannot multiversion templates), or with -DFT_NO_MULTIVERSION.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && defined(__x86_64__) && \
    defined(__gnu_linux__) && !defined(FT_NO_MULTIVERSION)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define FT_CPU_MULTIVERSION
#define FT_CPU_LOOPS "once, for the compiler's target ISA (AVX-512)"
#elif defined(FT_CPU_HOST_ISA) && FT_CPU_HOST_ISA == 4
#define FT_CPU_MULTIVERSION __attribute__((target("arch=x86-64-v4")))
#define FT_CPU_LOOPS_ARCH "x86-64-v4"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
#if defined(FT_CPU_HOST_ISA)
#define FT_CPU_MULTIVERSION
#define FT_CPU_LOOPS "once, for the compiler's target ISA (AVX2)"
#else
#define FT_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "default")))
#define FT_CPU_LOOPS "twice: AVX-512 and the compiler's target (AVX2), picked at load time"
#endif
#elif defined(FT_CPU_HOST_ISA) && FT_CPU_HOST_ISA == 3
#define FT_CPU_MULTIVERSION __attribute__((target("arch=x86-64-v3")))
#define FT_CPU_LOOPS_ARCH "x86-64-v3"
#elif defined(FT_CPU_HOST_ISA)
#define FT_CPU_MULTIVERSION
#define FT_CPU_LOOPS "once, for the baseline x86-64 ISA (FT_CPU_ISA=host on a machine without AVX2)"
#else
#define FT_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FT_CPU_LOOPS "three times: AVX-512, AVX2 and the baseline, picked at load time (FT_CPU_ISA=portable)"
#endif
#else
#define FT_CPU_MULTIVERSION
#define FT_CPU_LOOPS "once, for the compiler's target ISA"
#endif
#if defined(FT_CPU_LOOPS_ARCH)
#include <cstdio>
#include <cstdlib>
#define FT_CPU_LOOPS "once, for " FT_CPU_LOOPS_ARCH " (FT_CPU_ISA=host: the build machine's ISA)"
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

#if defined(FT_CPU_LOOPS_ARCH)
namespace detail {
// The CPU loops of a program built with FT_CPU_ISA=host use the build machine's instructions:
// on a CPU without them the program stops here, at start-up, saying why (instead of dying at
// an illegal instruction in its first loop).
inline const bool cpu_loops_supported = [] {
  __builtin_cpu_init();  // (a static initializer may run before the library's own)
  if (__builtin_cpu_supports(FT_CPU_LOOPS_ARCH)) return true;
  std::fputs("fusedtensor: this program's CPU loops were compiled for " FT_CPU_LOOPS_ARCH
             " (CMake option FT_CPU_ISA=host, the build machine's instruction set), which this CPU lacks; "
             "rebuild it here, or with -DFT_CPU_ISA=portable to run on any x86-64 CPU\n",
             stderr);
  std::abort();
}();
}  // namespace detail
#endif

}  // namespace ft::inline FT_ABI
