// The strided-batched GEMM every materialising op (matmul, linear, conv) ends in:
// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b], row-major. Back-ends side by side:
// cuBLAS (nvcc), a CPU BLAS (when FT_HAVE_CBLAS is defined), and a cache-blocked OpenMP
// kernel of our own (always compiled; the CPU path when there is no BLAS).
#pragma once

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <map>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/half.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/cuda/runtime.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(FT_HAVE_CBLAS)
// OpenBLAS's cblas.h declares a global `typedef uint16_t bfloat16`, which would make `bfloat16`
// ambiguous with ft::bfloat16 wherever a program says `using namespace ft;`: its name is changed
// here (the same type, so cblas_sbgemm keeps its ABI).
#define bfloat16 openblas_bfloat16
#include <cblas.h>
#undef bfloat16
#include <dlfcn.h>
#endif

#include "ft/linalg/onednn.hpp"

#if FT_CUDA_ENABLED
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "ft/cuda/kernels.hpp"
#endif

// x86-64 with GCC or Clang: the blocked kernel picks AVX-512, AVX2+FMA or SSE2 at run time,
// so a portable -O3 build still runs the CPU's widest FMAs.
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define FT_GEMM_X86_DISPATCH 1
#else
#define FT_GEMM_X86_DISPATCH 0
#endif

namespace ft::inline FT_ABI {

namespace detail {
inline std::atomic<bool>& allow_tf32_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
}  // namespace detail

// Lets float GEMMs on CUDA use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulate).
// Off by default, as torch.backends.cuda.matmul.allow_tf32 is. CPU results are unaffected.
inline void set_allow_tf32(bool allow) { detail::allow_tf32_flag().store(allow); }
inline bool allow_tf32() { return detail::allow_tf32_flag().load(); }

}  // namespace ft::inline FT_ABI

#if FT_CUDA_ENABLED
namespace ft::inline FT_ABI::cuda {
// Throws ft::Error naming the call, the cuBLAS status and the source location.
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(ft::detail::concat("cuBLAS error: ", call, " failed with ", cublasGetStatusName(status), " (",
                                   cublasGetStatusString(status), ") at ", file, ":", line));
}
}  // namespace ft::inline FT_ABI::cuda
#define FT_CUBLAS_CHECK(call) ::ft::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#endif

namespace ft::inline FT_ABI::linalg::detail {

// ---------------------------------------------------------------------------------------
// The blocked CPU kernel (Goto/BLIS layout): C is cut into NC-wide column panels and KC-deep
// slices of k; each B slice is packed once into NR-wide slivers (shared by all threads), each
// thread packs MC-row blocks of A into MR-tall slivers, and a register-resident MR×NR tile
// accumulates over KC. Matrices are addressed by (row stride, column stride), so transposes
// and the swap C ↔ Cᵀ are stride exchanges.
// ---------------------------------------------------------------------------------------

namespace blocked {

// Element (i, j) of a strided matrix is at p[i·rs + j·cs].
template <class T>
struct View {
  T* p;
  index_t rs, cs;
  T& operator()(index_t i, index_t j) const { return p[i * rs + j * cs]; }
};

template <int N, class F>
FT_INLINE void static_for(F&& f) {
  // Compile-time unrolling that every host compiler (g++, clang, nvcc's front end) honours.
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}

#if defined(__GNUC__)
template <class T, int N>
struct SimdOf {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};
#endif

// acc[i·NR + j] = Σ_p a[p·MR + i]·b[p·NR + j]: MR×NR accumulators held in registers, NR/V
// vectors of V lanes a row; one broadcast of a and NR/V loads of b feed MR·NR/V FMAs.
template <class T, int MR, int NR, int V>
FT_INLINE void micro_tile(index_t kc, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ acc_out) {
#if defined(__GNUC__)
  constexpr int L = V;
  using vec = typename SimdOf<T, V>::type;
#else
  constexpr int L = 1;  // no vector extensions: scalar lanes, for the compiler to vectorise if it can
  using vec = T;
#endif
  constexpr int NV = NR / L;
  vec acc[MR][NV] = {};
  for (index_t p = 0; p < kc; ++p) {
    vec bv[NV];
    static_for<NV>([&](auto j) { std::memcpy(&bv[j], b + j * L, sizeof(vec)); });
    static_for<MR>([&](auto i) { static_for<NV>([&](auto j) { acc[i][j] += a[i] * bv[j]; }); });
    a += MR;
    b += NR;
  }
  static_for<MR>(
      [&](auto i) { static_for<NV>([&](auto j) { std::memcpy(acc_out + i * NR + j * L, &acc[i][j], sizeof(vec)); }); });
}

// One register tile shape and its cache blocks, chosen per element type and instruction set.
template <class T>
struct Kernel {
  int mr, nr;          // register tile: mr rows broadcast, nr columns in vectors
  index_t kc, mc, nc;  // cache blocks: a kc×nr B sliver stays in L1, an mc×kc A block in L2
  void (*tile)(index_t kc, const T* a, const T* b, T* acc);
  const char* isa;
};

// SSE2 / NEON: 16 vector registers of 16 bytes; 12 accumulators + 2 b vectors + 1 broadcast.
inline void tile_f32_v16(index_t kc, const float* a, const float* b, float* acc) {
  micro_tile<float, 6, 8, 4>(kc, a, b, acc);
}
inline void tile_f64_v16(index_t kc, const double* a, const double* b, double* acc) {
  micro_tile<double, 6, 4, 2>(kc, a, b, acc);
}
#if FT_GEMM_X86_DISPATCH
// AVX2+FMA: 16 ymm registers; 6×2 accumulators + 2 b vectors + 1 broadcast.
__attribute__((target("avx2,fma"))) inline void tile_f32_avx2(index_t kc, const float* a, const float* b, float* acc) {
  micro_tile<float, 6, 16, 8>(kc, a, b, acc);
}
__attribute__((target("avx2,fma"))) inline void tile_f64_avx2(index_t kc, const double* a, const double* b,
                                                              double* acc) {
  micro_tile<double, 6, 8, 4>(kc, a, b, acc);
}
// AVX-512: 32 zmm registers; 12×2 accumulators + 2 b vectors + 1 broadcast.
__attribute__((target("avx512f"))) inline void tile_f32_avx512(index_t kc, const float* a, const float* b, float* acc) {
  micro_tile<float, 12, 32, 16>(kc, a, b, acc);
}
__attribute__((target("avx512f"))) inline void tile_f64_avx512(index_t kc, const double* a, const double* b,
                                                               double* acc) {
  micro_tile<double, 12, 16, 8>(kc, a, b, acc);
}
#endif

// The micro-kernels this build has, narrowest first.
enum class Isa : int { simd128 = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) { return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "simd128"; }

// The widest micro-kernel this CPU runs.
inline Isa best_isa() {
#if FT_GEMM_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::simd128;
}

// Register tiles and cache blocks: a kc×nr B sliver (24–48 KiB) is reused from L1 by every A
// sliver of an mc×kc block (≤ 192 KiB, in L2); an nc-wide packed B panel (≤ 6 MiB) sits in L3.
// The kc and mc of avx512/float were measured (kc 256–768, mc 48–240 on 1024³); the rest scale.
template <class T>
Kernel<T> kernel_for(Isa isa) {
  constexpr bool f32 = std::is_same_v<T, float>;
#if FT_GEMM_X86_DISPATCH
  if (isa == Isa::avx512) {
    if constexpr (f32)
      return {12, 32, 384, 96, 4096, tile_f32_avx512, "avx512"};
    else
      return {12, 16, 384, 48, 2048, tile_f64_avx512, "avx512"};
  }
  if (isa == Isa::avx2) {
    if constexpr (f32)
      return {6, 16, 384, 96, 4096, tile_f32_avx2, "avx2"};
    else
      return {6, 8, 384, 48, 2048, tile_f64_avx2, "avx2"};
  }
#else
  (void)isa;
#endif
  if constexpr (f32)
    return {6, 8, 384, 96, 4096, tile_f32_v16, "simd128"};
  else
    return {6, 4, 384, 48, 2048, tile_f64_v16, "simd128"};
}

namespace testing {
// ≥ 0: run this Isa instead of the best one (tests check every kernel the CPU can run).
inline std::atomic<int> force_isa{-1};
}  // namespace testing

template <class T>
Kernel<T> kernel() {
  static const Isa best = best_isa();
  const int forced = testing::force_isa.load(std::memory_order_relaxed);
  return kernel_for<T>(forced >= 0 ? static_cast<Isa>(forced) : best);
}

// A 64-byte aligned scratch buffer (packing is not a tensor: not counted in ft::stats).
template <class T>
class Scratch {
 public:
  explicit Scratch(index_t n)
      : p_(static_cast<T*>(
            ::operator new(static_cast<std::size_t>(std::max<index_t>(n, 1)) * sizeof(T), std::align_val_t(64)))) {}
  ~Scratch() { ::operator delete(p_, std::align_val_t(64)); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }

 private:
  T* p_;
};

// Rows [0, mb) × cols [0, kb) of A into mr-tall slivers: dst[(s·kb + p)·mr + i], zero-padded.
template <class T>
void pack_a(const View<const T>& a, index_t mb, index_t kb, int mr, T* dst) {
  for (index_t s = 0; s < mb; s += mr) {
    const index_t rows = std::min<index_t>(mr, mb - s);
    for (index_t p = 0; p < kb; ++p) {
      for (index_t i = 0; i < rows; ++i) dst[i] = a(s + i, p);
      for (index_t i = rows; i < mr; ++i) dst[i] = T(0);
      dst += mr;
    }
  }
}

// Rows [0, kb) × cols [j0, j1) of B into nr-wide slivers: dst[(s·kb + p)·nr + j], zero-padded.
template <class T>
void pack_b_sliver(const View<const T>& b, index_t kb, index_t j0, index_t j1, int nr, T* dst) {
  const index_t cols = j1 - j0;
  for (index_t p = 0; p < kb; ++p) {
    if (b.cs == 1) {
      std::memcpy(dst, &b(p, j0), static_cast<std::size_t>(cols) * sizeof(T));
    } else {
      for (index_t j = 0; j < cols; ++j) dst[j] = b(p, j0 + j);
    }
    for (index_t j = cols; j < nr; ++j) dst[j] = T(0);
    dst += nr;
  }
}

// C tile ← alpha·acc + beta·C; C is not read when beta == 0 (it may hold NaN), as in BLAS.
template <class T>
void store_tile(const T* acc, int nr, index_t mb, index_t nb, const View<T>& c, T alpha, T beta) {
  for (index_t i = 0; i < mb; ++i) {
    T* row = &c(i, 0);
    const T* src = acc + i * nr;
    if (c.cs == 1) {
      if (beta == T(0)) {
        for (index_t j = 0; j < nb; ++j) row[j] = alpha * src[j];
      } else {
        for (index_t j = 0; j < nb; ++j) row[j] = alpha * src[j] + beta * row[j];
      }
    } else {
      for (index_t j = 0; j < nb; ++j) {
        T& out = row[j * c.cs];
        out = beta == T(0) ? alpha * src[j] : alpha * src[j] + beta * out;
      }
    }
  }
}

// C ← beta·C (k == 0 or alpha == 0); beta == 0 writes zeros without reading C.
template <class T>
void scale(index_t m, index_t n, const View<T>& c, T beta) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) c(i, j) = beta == T(0) ? T(0) : beta * c(i, j);
}

// One matrix product C = alpha·A·B + beta·C (A m×k, B k×n, all strided), on `nt` threads.
template <class T>
void gemm_one(index_t m, index_t n, index_t k, T alpha, View<const T> a, View<const T> b, T beta, View<T> c, int nt) {
  const Kernel<T> K = kernel<T>();
  const int mr = K.mr, nr = K.nr;
  if (k == 0 || alpha == T(0)) {
    scale(m, n, c, beta);
    return;
  }
  // Packing pads every edge to a full tile: pick the orientation (C or Cᵀ = Bᵀ·Aᵀ) that wastes less.
  auto padded = [](index_t x, int r) { return (x + r - 1) / r * r; };
  if (padded(n, mr) * padded(m, nr) < padded(m, mr) * padded(n, nr)) {
    std::swap(m, n);
    View<const T> at{b.p, b.cs, b.rs}, bt{a.p, a.cs, a.rs};
    a = at;
    b = bt;
    c = View<T>{c.p, c.cs, c.rs};
  }
  const index_t kc_max = std::min(k, K.kc);
  const index_t nc_max = std::min(padded(n, nr), K.nc);
  const index_t mc_max = std::min(padded(m, mr), K.mc);
  Scratch<T> packed_b(kc_max * nc_max);
  // Work items of one (panel, k-slice): mc-row blocks × column chunks of the packed panel,
  // taken dynamically, so a thread slowed by another process does not hold the others back.
  const index_t row_blocks = (m + K.mc - 1) / K.mc;
  const index_t max_col_slivers = (std::min(n, K.nc) + nr - 1) / nr;
  const index_t col_chunks =
      nt == 1 ? 1 : std::clamp<index_t>((4 * nt + row_blocks - 1) / row_blocks, 1, max_col_slivers);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    Scratch<T> packed_a(mc_max * kc_max);
    alignas(64) T acc[16 * 32];  // the largest register tile (12×32 floats, 12×16 doubles)
    for (index_t jc = 0; jc < n; jc += K.nc) {
      const index_t nb = std::min(K.nc, n - jc);
      const index_t col_slivers = (nb + nr - 1) / nr;
      for (index_t pc = 0; pc < k; pc += K.kc) {
        const index_t kb = std::min(K.kc, k - pc);
        const T beta_here = pc == 0 ? beta : T(1);  // later k-slices accumulate onto the first
        const View<const T> bslice{&b(pc, jc), b.rs, b.cs};
#pragma omp for schedule(static)
        for (index_t s = 0; s < col_slivers; ++s)
          pack_b_sliver(bslice, kb, s * nr, std::min(nb, (s + 1) * nr), nr, packed_b.get() + s * kb * nr);
        index_t packed_block = -1;  // the row block now in packed_a
#pragma omp for schedule(dynamic, 1)
        for (index_t item = 0; item < row_blocks * col_chunks; ++item) {
          const index_t ic = item / col_chunks * K.mc, chunk = item % col_chunks;
          const index_t mb = std::min(K.mc, m - ic);
          if (packed_block != ic) {
            pack_a(View<const T>{&a(ic, pc), a.rs, a.cs}, mb, kb, mr, packed_a.get());
            packed_block = ic;
          }
          const index_t s0 = col_slivers * chunk / col_chunks, s1 = col_slivers * (chunk + 1) / col_chunks;
          for (index_t s = s0; s < s1; ++s) {  // a B sliver stays in L1 while the A slivers stream by
            const index_t j = s * nr, cols = std::min<index_t>(nr, nb - j);
            for (index_t ir = 0; ir < mb; ir += mr) {
              K.tile(kb, packed_a.get() + ir * kb, packed_b.get() + s * kb * nr, acc);
              store_tile(acc, nr, std::min<index_t>(mr, mb - ir), cols, View<T>{&c(ic + ir, jc + j), c.rs, c.cs}, alpha,
                         beta_here);
            }
          }
        }
      }
    }
  }
}

inline int max_threads() {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

// Per-matrix work below which a batch runs one matrix per thread rather than all threads
// on each matrix (the barriers of a shared panel cost more than they save).
inline constexpr index_t kBatchParallelFlops = index_t(1) << 21;

}  // namespace blocked

// The blocked kernel with gemm's contract (no launch counted): correct on every machine, and
// the CPU path when no BLAS is configured. Exposed so tests check it even where BLAS exists.
template <class T>
void gemm_blocked(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
                  index_t stride_a, const T* b, index_t ldb, index_t stride_b, T beta, T* c, index_t ldc,
                  index_t stride_c, index_t batch) {
  using blocked::View;
  if (m <= 0 || n <= 0 || batch <= 0) return;
  const index_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
  const index_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
  const int nt = blocked::max_threads();
  if (batch >= nt && nt > 1 && m * n * k <= blocked::kBatchParallelFlops) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t i = 0; i < batch; ++i)
      blocked::gemm_one<T>(m, n, k, alpha, View<const T>{a + i * stride_a, rsa, csa},
                           View<const T>{b + i * stride_b, rsb, csb}, beta, View<T>{c + i * stride_c, ldc, 1}, 1);
  } else {
    for (index_t i = 0; i < batch; ++i)
      blocked::gemm_one<T>(m, n, k, alpha, View<const T>{a + i * stride_a, rsa, csa},
                           View<const T>{b + i * stride_b, rsb, csb}, beta, View<T>{c + i * stride_c, ldc, 1}, nt);
  }
}

// The instruction set the blocked kernel runs with on this CPU: "avx512", "avx2" or "simd128".
template <class T>
const char* gemm_blocked_isa() {
  return blocked::kernel<T>().isa;
}

#if defined(FT_HAVE_CBLAS)
// OpenBLAS runs a product below 64³ multiply-adds on the calling thread (its
// GEMM_MULTITHREAD_THRESHOLD), so a batch of such products is spread over our threads.
inline constexpr index_t kCblasSingleThreadFlops = index_t(1) << 18;

// ---- one thread pool for ft's loops and the BLAS ----
// An OpenBLAS built with pthreads (Debian's default) keeps threads of its own, which spin
// (sched_yield) for a while after each call while ft's OpenMP threads spin waiting for their
// next loop: with as many threads as cores, each pool steals the other's cores (in a
// transformer block's training step, perf counted more samples spinning than in the GEMMs). So
// ft runs such a BLAS on its own OpenMP threads: it splits a product's rows (or columns) between
// them and each calls the BLAS single-threaded. OpenBLAS's own thread count is set to 1 around
// ft's call and restored after, so other users of the BLAS in the process (LibTorch) keep it. An
// OpenMP OpenBLAS shares ft's pool already, and any other BLAS is called as before.
namespace blas_pool {
struct OpenBlas {
  int (*get_parallel)() = nullptr;  // 0 sequential, 1 pthreads, 2 OpenMP
  int (*get_num_threads)() = nullptr;
  void (*set_num_threads)(int) = nullptr;
  char* (*get_corename)() = nullptr;
  bool own_threads() const { return get_parallel && get_num_threads && set_num_threads && get_parallel() == 1; }
};
inline const OpenBlas& openblas() {
  static const OpenBlas o = [] {
    OpenBlas r;
    r.get_parallel = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
    r.get_num_threads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    r.set_num_threads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    r.get_corename = reinterpret_cast<char* (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    return r;
  }();
  return o;
}
// OpenBLAS on one thread while alive (its previous count restored after).
class SingleThreaded {
 public:
  SingleThreaded() : saved_(openblas().get_num_threads()) { openblas().set_num_threads(1); }
  ~SingleThreaded() { openblas().set_num_threads(saved_); }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int saved_;
};
}  // namespace blas_pool

// ---- a BLAS that chose an old kernel ----
// OpenBLAS picks its kernels by CPU model when it loads. A CPU newer than the OpenBLAS build
// (Debian's 0.3.21 on Emerald Rapids, model 207) gets its fallback, the Prescott SSE kernels,
// several times slower than the blocked kernel's AVX-512 one (docs/benchmarks.md). So when the
// core OpenBLAS chose lacks AVX2 while this CPU has it, ft runs its blocked kernel instead.
// Setting OPENBLAS_CORETYPE (e.g. SkylakeX) to the right core brings the BLAS back.
inline bool blas_core_outdated(std::string_view core, blocked::Isa isa) {
  static constexpr std::string_view kPreAvx2[] = {
      "Katmai", "Coppermine", "Northwood", "Prescott",    "Banias",      "Atom",         "Core2",
      "Penryn", "Dunnington", "Nehalem",   "Sandybridge", "Opteron",     "Opteron_SSE3", "Barcelona",
      "Bobcat", "Nano",       "Bulldozer", "Piledriver",  "Steamroller", "Excavator"};
  if (isa == blocked::Isa::simd128) return false;
  for (std::string_view old : kPreAvx2)
    if (core == old) return true;
  return false;
}
inline bool blas_outdated() {
  static const bool outdated = [] {
    const auto corename = blas_pool::openblas().get_corename;
    return corename && corename() && blas_core_outdated(corename(), blocked::best_isa());
  }();
  return outdated;
}

template <class T>
void cblas_gemm_one(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
                    const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

template <class T>
void gemm_cblas(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
                index_t stride_a, const T* b, index_t ldb, index_t stride_b, T beta, T* c, index_t ldc,
                index_t stride_c, index_t batch) {
  auto one = [&](index_t i) {
    cblas_gemm_one(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                   c + i * stride_c, ldc);
  };
  const int nt = blocked::max_threads();
  const bool small = m * n * k <= kCblasSingleThreadFlops;
#if defined(_OPENMP)
  if (nt > 1 && !small && blas_pool::openblas().own_threads()) {
    // ft's threads, each with its share: whole products of a batch, or a product's row (or
    // column) blocks. Row r of op(A) starts at a + r·lda (a + r if transposed); column j of
    // op(B) at b + j (b + j·ldb if transposed).
    blas_pool::SingleThreaded single;
    if (batch >= nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
      for (index_t i = 0; i < batch; ++i) one(i);
      return;
    }
    const bool by_rows = m >= n;
    const index_t extent = by_rows ? m : n;
    for (index_t i = 0; i < batch; ++i) {
      const T* ai = a + i * stride_a;
      const T* bi = b + i * stride_b;
      T* ci = c + i * stride_c;
#pragma omp parallel num_threads(nt)
      {
        const index_t t = omp_get_thread_num(), parts = omp_get_num_threads();
        const index_t lo = extent * t / parts, hi = extent * (t + 1) / parts;
        if (hi > lo) {
          if (by_rows)
            cblas_gemm_one(trans_a, trans_b, hi - lo, n, k, alpha, ai + lo * (trans_a ? 1 : lda), lda, bi, ldb, beta,
                           ci + lo * ldc, ldc);
          else
            cblas_gemm_one(trans_a, trans_b, m, hi - lo, k, alpha, ai, lda, bi + lo * (trans_b ? ldb : 1), ldb, beta,
                           ci + lo, ldc);
        }
      }
    }
    return;
  }
#endif
  if (batch > 1 && nt > 1 && small) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t i = 0; i < batch; ++i) one(i);
  } else {
    for (index_t i = 0; i < batch; ++i) one(i);
  }
}
#endif

#if FT_CUDA_ENABLED
// cuBLAS's workspace for the work on `stream` of device `d` on this thread: 32 MiB (Hopper's
// recommendation), allocated once and kept for the process. Setting it ourselves keeps cuBLAS
// from allocating during a CUDA graph capture; one per stream keeps two streams' GEMMs from
// sharing scratch memory while both run. A capture uses the workspace of the stream it began
// from: its replays run on the caller's stream, in order with that stream's other GEMMs.
inline void* cublas_workspace(Device d, cudaStream_t stream, std::size_t bytes) {
  if (cuda::capturing(d)) stream = cuda::capture_state().origin;
  thread_local std::map<std::pair<int, cudaStream_t>, void*> workspaces;
  void*& w = workspaces[{d.index, stream}];
  if (!w) {
    cuda::require_not_capturing("matmul", "the first cuBLAS call (it allocates cuBLAS's workspace)");
    FT_CUDA_CHECK(cudaMalloc(&w, bytes));
  }
  return w;
}

// One cuBLAS handle per device and thread, created on first use and kept for the process
// (destroying it at exit could run after the driver has shut down), bound to the current
// stream and that stream's workspace.
inline cublasHandle_t cublas_handle(Device d) {
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  check(d.index >= 0 && d.index < kMaxDevices, "matmul", "device ", d, " is beyond the ", kMaxDevices,
        " CUDA devices fusedtensor supports");
  cublasHandle_t& h = handles[d.index];
  if (!h) FT_CUBLAS_CHECK(cublasCreate(&h));
  const cudaStream_t stream = cuda::current_stream();
  constexpr std::size_t kWorkspace = std::size_t(32) << 20;
  FT_CUBLAS_CHECK(cublasSetStream(h, stream));
  FT_CUBLAS_CHECK(cublasSetWorkspace(h, cublas_workspace(d, stream, kWorkspace), kWorkspace));
  return h;
}

// C ← beta·C over the batch (the k == 0 case, which cuBLAS does not promise to handle).
template <class T>
struct ScaleKernel {
  static void launch(unsigned blocks, T* c, index_t m, index_t n, index_t ldc, index_t stride_c, index_t total,
                     compute_t<T> beta);
};
#if FT_CUDA_KERNELS
template <class T>
__global__ void scale_kernel(T* c, index_t m, index_t n, index_t ldc, index_t stride_c, index_t total,
                             compute_t<T> beta) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    index_t j = i % n, r = (i / n) % m, b = i / (m * n);
    T& out = c[b * stride_c + r * ldc + j];
    using C = compute_t<T>;
    store_value(out, beta == C(0) ? C(0) : static_cast<C>(beta * static_cast<C>(out)));
  }
}
template <class T>
void ScaleKernel<T>::launch(unsigned blocks, T* c, index_t m, index_t n, index_t ldc, index_t stride_c, index_t total,
                            compute_t<T> beta) {
  scale_kernel<T><<<blocks, 256, 0, cuda::current_stream()>>>(c, m, n, ldc, stride_c, total, beta);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif

template <class T, class TC = T>
void gemm_cublas(Device device, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, compute_t<T> alpha,
                 const T* a, index_t lda, index_t stride_a, const T* b, index_t ldb, index_t stride_b,
                 compute_t<T> beta, TC* c, index_t ldc, index_t stride_c, index_t batch) {
  cuda::DeviceGuard guard(device);
  if (k == 0) {
    const index_t total = m * n * batch;
    const unsigned blocks = static_cast<unsigned>(std::min<index_t>((total + 255) / 256, 4096));
    cuda::launch_kernel<ScaleKernel<TC>>("matmul", blocks, c, m, n, ldc, stride_c, total, beta);
    return;
  }
  for (index_t v : {m, n, k, lda, ldb, ldc, batch})
    check(v <= INT_MAX, "gemm", "a size or leading dimension of ", v, " exceeds cuBLAS's 32-bit limit");
  constexpr bool f32 = std::is_same_v<T, float>;
  // the two-byte types: tensor cores with float accumulation, alpha and beta floats
  const cudaDataType_t type = f32                         ? CUDA_R_32F
                              : std::is_same_v<T, double> ? CUDA_R_64F
                              : std::is_same_v<T, half>   ? CUDA_R_16F
                                                          : CUDA_R_16BF;
  const cublasComputeType_t compute = std::is_same_v<T, double> ? CUBLAS_COMPUTE_64F
                                      : f32 && allow_tf32()     ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                : CUBLAS_COMPUTE_32F;
  // cuBLAS is column-major: a row-major X is Xᵀ to it, so row-major C = op(A)·op(B) is
  // column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, the same call with A and B (and m and n) swapped.
  FT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_handle(device), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b, type, static_cast<int>(ldb),
      static_cast<long long>(stride_b), a, type, static_cast<int>(lda), static_cast<long long>(stride_a), &beta, c,
      std::is_same_v<TC, T> ? type : CUDA_R_32F, static_cast<int>(ldc), static_cast<long long>(stride_c),
      static_cast<int>(batch), compute, CUBLAS_GEMM_DEFAULT));
}
#endif

// ---- the two-byte types on the CPU: products in float, rounded once ----
// Elements [0, extent) of a strided-batched operand: the last batch's last row ends the span.
inline index_t operand_extent(index_t rows, index_t cols, index_t ld, index_t stride, index_t batch) {
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

template <class H>
void widen(const H* src, float* dst, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > (index_t(1) << 16))
  for (index_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

#if defined(FT_HAVE_CBLAS)
// OpenBLAS's bf16 GEMM (float results; AVX512-BF16 where the CPU has it), looked up at run time:
// other BLAS libraries have none.
using SbgemmFn = void (*)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float, const std::uint16_t*,
                          int, const std::uint16_t*, int, float, float*, int);
inline SbgemmFn cblas_sbgemm_fn() {
  static const SbgemmFn f = reinterpret_cast<SbgemmFn>(dlsym(RTLD_DEFAULT, "cblas_sbgemm"));
  return f;
}
#endif

// Whether a bfloat16 product on the CPU runs in bfloat16 (oneDNN on AMX, or OpenBLAS's sbgemm:
// Debian's build has none), rather than on operands widened to float.
inline bool cpu_bf16_gemm() {
#if defined(FT_HAVE_DNNL)
  if (onednn::has_amx_bf16()) return true;
#endif
#if defined(FT_HAVE_CBLAS)
  return cblas_sbgemm_fn() != nullptr && !blas_outdated();
#else
  return false;
#endif
}

template <class T, class TC = T>
void gemm_cpu_part(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, compute_t<T> alpha, const T* a,
                   index_t lda, index_t stride_a, const T* b, index_t ldb, index_t stride_b, compute_t<T> beta, TC* c,
                   index_t ldc, index_t stride_c, index_t batch);

// C = alpha·op(A)·op(B) + beta·C for A, B half or bfloat16, with float accumulation: the products
// go to a float C (C itself when it is float and contiguous, else a scratch holding beta·C's
// widened values first); A and B are widened to float copies of the same layout, or, for bfloat16,
// read as they are by oneDNN (on AMX) or OpenBLAS's sbgemm. A two-byte C is rounded once, at the end.
template <class H, class TC>
void gemm_cpu_half(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const H* a, index_t lda,
                   index_t stride_a, const H* b, index_t ldb, index_t stride_b, float beta, TC* c, index_t ldc,
                   index_t stride_c, index_t batch) {
  const index_t mn = m * n;
  constexpr bool direct = std::is_same_v<TC, float>;
  if constexpr (direct) check(ldc == n && (batch == 1 || stride_c == mn), "gemm", "a float C must be contiguous");
  Storage c_store = direct ? nullptr : make_storage(static_cast<std::size_t>(mn * batch) * sizeof(float), kCPU);
  float* c32 = direct ? reinterpret_cast<float*>(c) : static_cast<float*>(c_store->data());
  if (!direct && beta != 0.0f) {
#pragma omp parallel for schedule(static) if (mn * batch > (index_t(1) << 16))
    for (index_t r = 0; r < batch * m; ++r)
      for (index_t j = 0; j < n; ++j) c32[r * n + j] = static_cast<float>(c[(r / m) * stride_c + (r % m) * ldc + j]);
  }
  bool done = false;
#if defined(FT_HAVE_DNNL)
  if constexpr (std::is_same_v<H, bfloat16>)
    done = onednn::gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c32, batch);
#endif
#if defined(FT_HAVE_CBLAS)
  if constexpr (std::is_same_v<H, bfloat16>) {
    if (const SbgemmFn sbgemm = cblas_sbgemm_fn();
        !done && sbgemm && !blas_outdated() && std::max({m, n, k, lda, ldb}) <= INT_MAX) {
      const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
      for (index_t i = 0; i < batch; ++i)
        sbgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha,
               reinterpret_cast<const std::uint16_t*>(a + i * stride_a), static_cast<int>(lda),
               reinterpret_cast<const std::uint16_t*>(b + i * stride_b), static_cast<int>(ldb), beta, c32 + i * mn,
               static_cast<int>(n));
      done = true;
    }
  }
#endif
  if (!done) {
    const index_t ea = operand_extent(trans_a ? k : m, trans_a ? m : k, lda, stride_a, batch);
    const index_t eb = operand_extent(trans_b ? n : k, trans_b ? k : n, ldb, stride_b, batch);
    Storage ab_store = make_storage(static_cast<std::size_t>(ea + eb) * sizeof(float), kCPU);
    float* a32 = static_cast<float*>(ab_store->data());
    widen(a, a32, ea);
    widen(b, a32 + ea, eb);
    gemm_cpu_part<float>(trans_a, trans_b, m, n, k, alpha, a32, lda, stride_a, a32 + ea, ldb, stride_b, beta, c32, n,
                         mn, batch);
  }
  if constexpr (!direct) {
#pragma omp parallel for schedule(static) if (mn * batch > (index_t(1) << 16))
    for (index_t r = 0; r < batch * m; ++r)
      for (index_t j = 0; j < n; ++j) store_value(c[(r / m) * stride_c + (r % m) * ldc + j], c32[r * n + j]);
  }
}

// gemm's CPU path without its checks and its launch count: a part of a larger CPU kernel whose
// arguments are valid by construction (the BLAS where it is used, else the blocked kernel).
template <class T, class TC>
void gemm_cpu_part(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, compute_t<T> alpha, const T* a,
                   index_t lda, index_t stride_a, const T* b, index_t ldb, index_t stride_b, compute_t<T> beta, TC* c,
                   index_t ldc, index_t stride_c, index_t batch) {
  if constexpr (is_half_v<T>) {
    gemm_cpu_half<T, TC>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                         batch);
    return;
  } else {
#if defined(FT_HAVE_CBLAS)
    const bool fits = std::max({m, n, k, lda, ldb, ldc}) <= INT_MAX;
    if (fits && k > 0 && alpha != T(0) && !blas_outdated()) {
      gemm_cblas<T>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                    batch);
      return;
    }
#endif
    gemm_blocked<T>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                    batch);
  }
}

// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] for b in [0, batch), all row-major; op(X) is X or Xᵀ.
// A[b] starts at a + b·stride_a (elements), with leading dimension lda (row stride); same for B, C.
// Counts one launch on `device` (one library call or one parallel loop).
// Half and bfloat16 products accumulate in float (alpha and beta are floats), and may be written to
// a float C (TC = float, contiguous), for an epilogue that rounds once.
template <class T, class TC = T>  // T float, double, half or bfloat16
void gemm(Device device, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, compute_t<T> alpha, const T* a,
          index_t lda, index_t stride_a, const T* b, index_t ldb, index_t stride_b, compute_t<T> beta, TC* c,
          index_t ldc, index_t stride_c, index_t batch) {
  static_assert(is_floating_v<T>, "ft gemm: T must be float, double, half or bfloat16");
  static_assert(std::is_same_v<TC, T> || (is_half_v<T> && std::is_same_v<TC, float>),
                "ft gemm: C has A's type, or float for half and bfloat16 operands");
  check(m >= 0 && n >= 0 && k >= 0 && batch >= 0, "gemm", "negative size: m = ", m, ", n = ", n, ", k = ", k,
        ", batch = ", batch);
  if (m == 0 || n == 0 || batch == 0) return;
  // A leading dimension is only read when its matrix stores more than one row; BLAS still
  // insists on ld ≥ max(1, stored columns), so give it that value where it is unused.
  auto fix_ld = [](index_t& ld, index_t rows, index_t cols, const char* name) {
    if (rows <= 1) ld = std::max<index_t>(cols, 1);
    check(ld >= std::max<index_t>(cols, 1), "gemm", name, " = ", ld, " is less than the ", cols,
          " columns of its row-major matrix");
  };
  fix_ld(lda, trans_a ? k : m, trans_a ? m : k, "lda");
  fix_ld(ldb, trans_b ? n : k, trans_b ? k : n, "ldb");
  fix_ld(ldc, m, n, "ldc");
  if (device.is_cuda()) {
#if FT_CUDA_ENABLED
    stats::detail::record_launch(device);
    gemm_cublas<T, TC>(device, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                       stride_c, batch);
#else
    cuda::require_device(device, "gemm");
#endif
    return;
  }
  stats::detail::record_launch(device);
  gemm_cpu_part<T, TC>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                       batch);
}

}  // namespace ft::inline FT_ABI::linalg::detail
