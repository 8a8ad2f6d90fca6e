// The fused attention kernels behind ft::scaled_dot_product_attention: FlashAttention's algorithm
// (Dao et al., 2022; the backward's loop order from FlashAttention-2, Dao 2023). The scores
// softmax(q·kᵀ·scale + mask) are computed block by block with a running (online) softmax and
// never stored: the forward keeps, per query, its output row and the log-sum-exp of its scores;
// the backward recomputes each block of probabilities from them. Memory is O(L·E), not O(L·S).
//
// Two implementations of the one algorithm:
// - the CPU's (`cpu::forward`, `cpu::backward`): blocks of Br queries × Bc keys whose products
//   are GEMMs (the BLAS, single-threaded on each of ft's threads) and whose softmax is a
//   vectorised pass over the block; one launch each.
// - the row kernels (`Rows` bodies, `gpu::`): one thread per query (forward, dq) or per key
//   (dk, dv) walking the other side's rows, each product a dot over the head dim held in
//   registers. They run as CUDA kernels (three launches: forward; dq; dk and dv), and on the CPU
//   when testing::row_kernels is set, so their arithmetic is tested where no GPU is.
//
// The batch: every dim before the last two, folded in row-major order. Each operand is read in
// place through its own strides (`Strided`): a head split of a projection, a mask broadcast over
// the heads or the queries, a transposed gradient.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/philox.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/exec/cuda.hpp"
#include "ft/expr/math.hpp"
#include "ft/linalg/gemm.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ft::inline FT_ABI::linalg::flash {

inline constexpr int kMaxLead = kMaxRank - 2;

// Where the rows of batch entry b of an operand start, and how its elements are laid out: the
// leading (batch) dims each with its own stride, then a row stride and a column stride.
struct Strided {
  index_t size[kMaxLead]{};
  index_t stride[kMaxLead]{};
  int lead = 0;
  index_t row = 0;
  index_t col = 1;
  FT_HD index_t base(index_t b) const {
    index_t off = 0;
    for (int d = lead - 1; d >= 0; --d) {
      const index_t next = b / size[d];
      off += (b - next * size[d]) * stride[d];
      b = next;
    }
    return off;
  }
};

// The layout of t [lead..., rows, cols] read as `full` [lead..., rows, cols] (t's dims aligned
// to the right; a missing dim or a dim of 1 is broadcast with stride 0).
template <class T, int R, int RF>
Strided strided(const Tensor<T, R>& t, const Shape<RF>& full) {
  static_assert(R <= RF && RF >= 2 && RF - 2 <= kMaxLead);
  Strided s;
  auto stride_of = [&](int d) -> index_t {  // d indexes `full`
    const int dt = d - (RF - R);
    return dt < 0 || t.size(dt) == 1 ? 0 : t.stride(dt);
  };
  s.lead = RF - 2;
  for (int d = 0; d < RF - 2; ++d) s.size[d] = full[d], s.stride[d] = stride_of(d);
  s.row = stride_of(RF - 2);
  s.col = stride_of(RF - 1);
  return s;
}

// The masks a kernel applies, as template parameters: none, a bool mask that keeps the scores
// where it is true, or a floating one added to them.
struct NoMask {};

// One attention problem: B batch entries of L queries [E], S keys [E] and S values [Ev].
// T is float or double; M is NoMask, bool or T.
template <class T, class M>
struct Problem {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const M* mask = nullptr;
  Strided qs, ks, vs, ms;
  index_t B = 0, L = 0, S = 0, E = 0, Ev = 0;
  T scale = 1;
  bool causal = false;
  float drop_p = 0;  // probability of dropping (0: none, > 1: every one)
  T drop_scale = 1;  // 1/(1 − p) on the kept ones
  std::uint64_t seed = 0;

  static constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  // The score of query i and key j of entry b (mb = ms.base(b)) from the scaled product s.
  FT_HD FT_INLINE T masked(T s, index_t mb, index_t i, index_t j) const {
    if constexpr (std::is_same_v<M, bool>) {
      if (!mask[mb + i * ms.row + j * ms.col]) s = kNegInf;
    } else if constexpr (!std::is_same_v<M, NoMask>) {
      s += mask[mb + i * ms.row + j * ms.col];
    }
    return causal && j > i ? kNegInf : s;
  }
  FT_HD FT_INLINE bool dropout() const { return drop_p > 0; }
  // Whether masked() changes any score.
  FT_HD FT_INLINE bool masks() const { return causal || !std::is_same_v<M, NoMask>; }
  // The dropout factor of (b, i, j): 0 or 1/(1 − p), as ft::nn::functional::dropout over the
  // [B, L, S] probabilities with the same seed.
  FT_HD FT_INLINE T keep(index_t b, index_t i, index_t j) const {
    const philox::U32x4 w = philox::philox4x32_10(static_cast<std::uint64_t>((b * L + i) * S + j), seed);
    return philox::uniform_float(w.v[0]) >= drop_p ? drop_scale : T(0);
  }
};

namespace testing {
// Runs the row kernels (the GPU's algorithm) on the CPU instead of the blocked one.
inline std::atomic<bool> row_kernels{false};
}  // namespace testing

// ---- the row kernels: one thread per query (forward, dq) or per key (dk, dv) ----
// D bounds the head dims (E, Ev ≤ D): the thread's vectors are arrays of D in registers.
template <int D, class T, class M>
struct RowKernels {
  Problem<T, M> p;
  T* o = nullptr;  // [B, L, Ev] through os
  Strided os;
  T* lse = nullptr;         // [B, L] contiguous: the log-sum-exp of each query's scores
  const T* dout = nullptr;  // [B, L, Ev] through ds
  Strided ds;
  const T* delta = nullptr;  // [B, L] contiguous: Σ dout·o per query
  T* dq = nullptr;           // [B, L, E] contiguous
  T* dk = nullptr;           // [B, S, E] contiguous
  T* dv = nullptr;           // [B, S, Ev] contiguous

  static constexpr int kChunk = 16;  // keys scored before the running max is updated

  FT_HD void forward(index_t b, index_t i) const {
    const T* qi = p.q + p.qs.base(b) + i * p.qs.row;
    const T* kb = p.k + p.ks.base(b);
    const T* vb = p.v + p.vs.base(b);
    const index_t mb = p.mask ? p.ms.base(b) : 0;
    T qr[D], acc[D];
    FT_UNROLL
    for (int d = 0; d < D; ++d) qr[d] = d < p.E ? qi[d] : T(0), acc[d] = 0;
    T m = Problem<T, M>::kNegInf, l = 0;
    const index_t S = p.causal ? std::min(p.S, i + 1) : p.S;
    for (index_t j0 = 0; j0 < S; j0 += kChunk) {
      const int n = static_cast<int>(std::min<index_t>(kChunk, S - j0));
      T s[kChunk];
      T cm = Problem<T, M>::kNegInf;
      for (int c = 0; c < n; ++c) {
        const T* kj = kb + (j0 + c) * p.ks.row;
        T dot = 0;
        FT_UNROLL
        for (int d = 0; d < D; ++d)
          if (d < p.E) dot += qr[d] * kj[d];
        s[c] = p.masked(dot * p.scale, mb, i, j0 + c);
        cm = s[c] > cm ? s[c] : cm;
      }
      const T mn = cm > m ? cm : m;
      if (mn == Problem<T, M>::kNegInf) continue;  // nothing kept yet
      const T alpha = math::exp(m - mn);           // 0 when m was −inf
      l *= alpha;
      FT_UNROLL
      for (int d = 0; d < D; ++d) acc[d] *= alpha;
      for (int c = 0; c < n; ++c) {
        const T e = math::exp(s[c] - mn);
        l += e;
        const T w = p.dropout() ? e * p.keep(b, i, j0 + c) : e;
        const T* vj = vb + (j0 + c) * p.vs.row;
        FT_UNROLL
        for (int d = 0; d < D; ++d)
          if (d < p.Ev) acc[d] += w * vj[d];
      }
      m = mn;
    }
    // l = 0 (every key masked): 0/0, NaN, as the softmax of a row of −inf in PyTorch 1.13
    const T inv = p.S == 0 ? T(0) : T(1) / l;
    T* oi = o + os.base(b) + i * os.row;
    FT_UNROLL
    for (int d = 0; d < D; ++d)
      if (d < p.Ev) oi[d] = acc[d] * inv;
    lse[b * p.L + i] = m + ::log(l);
  }

  // The probability (before dropout) and dP·z of query i and key j, from the products.
  FT_HD FT_INLINE T prob(T dot, index_t mb, index_t b, index_t i, index_t j) const {
    return math::exp(p.masked(dot * p.scale, mb, i, j) - lse[b * p.L + i]);
  }

  // dq_i = scale·Σ_j dS_ij·k_j with dS = P∘(dP·z − delta_i), dP = dout_i·v_j.
  FT_HD void grad_q(index_t b, index_t i) const {
    const T* qi = p.q + p.qs.base(b) + i * p.qs.row;
    const T* gi = dout + ds.base(b) + i * ds.row;
    const T* kb = p.k + p.ks.base(b);
    const T* vb = p.v + p.vs.base(b);
    const index_t mb = p.mask ? p.ms.base(b) : 0;
    T qr[D], gr[D], acc[D];
    FT_UNROLL
    for (int d = 0; d < D; ++d) qr[d] = d < p.E ? qi[d] : T(0), gr[d] = d < p.Ev ? gi[d] : T(0), acc[d] = 0;
    const T di = delta[b * p.L + i];
    const index_t S = p.causal ? std::min(p.S, i + 1) : p.S;
    for (index_t j = 0; j < S; ++j) {
      const T* kj = kb + j * p.ks.row;
      const T* vj = vb + j * p.vs.row;
      T dot = 0, dp = 0;
      FT_UNROLL
      for (int d = 0; d < D; ++d) {
        if (d < p.E) dot += qr[d] * kj[d];
        if (d < p.Ev) dp += gr[d] * vj[d];
      }
      const T pr = prob(dot, mb, b, i, j);
      if (p.dropout()) dp *= p.keep(b, i, j);
      const T dsc = pr * (dp - di) * p.scale;
      FT_UNROLL
      for (int d = 0; d < D; ++d)
        if (d < p.E) acc[d] += dsc * kj[d];
    }
    T* out = dq + (b * p.L + i) * p.E;
    FT_UNROLL
    for (int d = 0; d < D; ++d)
      if (d < p.E) out[d] = acc[d];
  }

  // dv_j = Σ_i P_ij·z_ij·dout_i and dk_j = scale·Σ_i dS_ij·q_i.
  FT_HD void grad_kv(index_t b, index_t j) const {
    const T* kj = p.k + p.ks.base(b) + j * p.ks.row;
    const T* vj = p.v + p.vs.base(b) + j * p.vs.row;
    const T* qb = p.q + p.qs.base(b);
    const T* gb = dout + ds.base(b);
    const index_t mb = p.mask ? p.ms.base(b) : 0;
    T kr[D], vr[D], dka[D], dva[D];
    FT_UNROLL
    for (int d = 0; d < D; ++d) kr[d] = d < p.E ? kj[d] : T(0), vr[d] = d < p.Ev ? vj[d] : T(0), dka[d] = 0, dva[d] = 0;
    for (index_t i = p.causal ? j : 0; i < p.L; ++i) {
      const T* qi = qb + i * p.qs.row;
      const T* gi = gb + i * ds.row;
      T dot = 0, dp = 0;
      FT_UNROLL
      for (int d = 0; d < D; ++d) {
        if (d < p.E) dot += qi[d] * kr[d];
        if (d < p.Ev) dp += gi[d] * vr[d];
      }
      const T pr = prob(dot, mb, b, i, j);
      const T z = p.dropout() ? p.keep(b, i, j) : T(1);
      const T dsc = pr * (dp * z - delta[b * p.L + i]) * p.scale;
      const T pz = pr * z;
      FT_UNROLL
      for (int d = 0; d < D; ++d) {
        if (d < p.Ev) dva[d] += pz * gi[d];
        if (d < p.E) dka[d] += dsc * qi[d];
      }
    }
    T* ko = dk + (b * p.S + j) * p.E;
    T* vo = dv + (b * p.S + j) * p.Ev;
    FT_UNROLL
    for (int d = 0; d < D; ++d) {
      if (d < p.E) ko[d] = dka[d];
      if (d < p.Ev) vo[d] = dva[d];
    }
  }
};

// The largest head dim the row kernels take (E and Ev): larger ones use the composed path.
inline constexpr index_t kMaxRowHeadDim = 128;

enum class Pass { forward, grad_q, grad_kv };

template <Pass P, class Body>
FT_HD FT_INLINE void run_row(const Body& body, index_t b, index_t r) {
  if constexpr (P == Pass::forward)
    body.forward(b, r);
  else if constexpr (P == Pass::grad_q)
    body.grad_q(b, r);
  else
    body.grad_kv(b, r);
}

#if FT_CUDA_ENABLED
namespace gpu {
// One kernel per pass: each keeps only its own vectors in registers.
template <class Body, Pass P>
struct RowKernel {
  static void launch(Device dev, const Body& body, index_t B, index_t rows);
};
#if FT_CUDA_KERNELS
inline constexpr int kRowBlock = 128;
template <class Body, Pass P>
__global__ void __launch_bounds__(kRowBlock) row_kernel(const Body body, index_t B, index_t rows) {
  // consecutive threads take consecutive rows of one batch entry: a warp reads the other
  // side's rows at the same addresses (one broadcast load)
  const index_t n = B * rows;
  for (index_t e = static_cast<index_t>(blockIdx.x) * kRowBlock + threadIdx.x; e < n;
       e += static_cast<index_t>(gridDim.x) * kRowBlock) {
    const index_t b = e / rows;
    run_row<P>(body, b, e - b * rows);
  }
}
template <class Body, Pass P>
void RowKernel<Body, P>::launch(Device, const Body& body, index_t B, index_t rows) {
  const index_t blocks = std::min<index_t>((B * rows + kRowBlock - 1) / kRowBlock, index_t(1) << 20);
  row_kernel<Body, P><<<static_cast<unsigned>(blocks), kRowBlock, 0, cuda::current_stream()>>>(body, B, rows);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS
}  // namespace gpu
#endif

// One pass of the row kernels over B·rows rows: one launch.
template <Pass P, class Body>
void run_rows(Device dev, const Body& body, index_t B, index_t rows) {
  if (B * rows == 0) return;
  stats::detail::record_launch(dev);
  if (dev.is_cpu()) {
#pragma omp parallel for schedule(static) if (B * rows > 64)
    for (index_t e = 0; e < B * rows; ++e) run_row<P>(body, e / rows, e % rows);
    return;
  }
#if FT_CUDA_ENABLED
  cuda::DeviceGuard guard(dev);
  cuda::launch_kernel<gpu::RowKernel<Body, P>>("scaled_dot_product_attention", dev, body, B, rows);
#else
  cuda::require_device(dev, "scaled_dot_product_attention");
#endif
}

// ---- the CPU's blocked kernels ----
namespace cpu {

// Block sizes, queries × keys: per thread the forward holds kBr·(kBc + Ev) values, the backward
// 2·kBrB·kBcB, whatever L and S.
inline constexpr index_t kBr = 64, kBc = 128;     // forward
inline constexpr index_t kBrB = 256, kBcB = 128;  // backward

// OpenBLAS single-threaded while alive, when it keeps threads of its own: each of ft's threads
// calls it on its own blocks.
class OneBlasThread {
 public:
#if defined(FT_HAVE_CBLAS)
  OneBlasThread() {
    const auto& blas = detail::blas_pool::openblas();
    if (blas.own_threads()) saved_ = blas.get_num_threads(), blas.set_num_threads(1);
  }
  ~OneBlasThread() {
    if (saved_ > 0) detail::blas_pool::openblas().set_num_threads(saved_);
  }
#else
  OneBlasThread() = default;
#endif
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;

 private:
  [[maybe_unused]] int saved_ = 0;
};

// C (ldc) = alpha·op(A)·op(B) + beta·C on the calling thread.
template <class T>
void gemm(bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda, const T* b, index_t ldb,
          T beta, T* c, index_t ldc) {
  detail::gemm_cpu_part<T>(ta, tb, m, n, k, alpha, a, std::max<index_t>(lda, 1), 0, b, std::max<index_t>(ldb, 1), 0,
                           beta, c, ldc, 0, 1);
}

inline int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#if defined(_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// The forward's softmax step on a block s [nr, ldS] of scaled products (queries i0.., keys j0..):
// masks them, moves each row's running max m, rescales its sum l and output row acc [nr, Ev],
// and leaves in s the weights exp(s − m) (times the dropout factor) for acc += s·v.
template <class T, class M>
FT_CPU_MULTIVERSION void online_softmax_block(const Problem<T, M>& p, index_t b, index_t mb, index_t i0, index_t j0,
                                              index_t nr, index_t nc, T* s, index_t ldS, T* m, T* l, T* acc) {
  constexpr T neg_inf = Problem<T, M>::kNegInf;
  for (index_t r = 0; r < nr; ++r) {
    T* sr = s + r * ldS;
    const index_t i = i0 + r;
    if (p.masks())
      for (index_t c = 0; c < nc; ++c) sr[c] = p.masked(sr[c], mb, i, j0 + c);
    T bm = neg_inf;
#pragma omp simd reduction(max : bm)
    for (index_t c = 0; c < nc; ++c) bm = sr[c] > bm ? sr[c] : bm;
    const T mn = std::max(m[r], bm);
    if (mn == neg_inf) {  // nothing kept in this row yet
      std::fill(sr, sr + nc, T(0));
      continue;
    }
    const T alpha = math::exp(m[r] - mn);
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (index_t c = 0; c < nc; ++c) {
      const T e = math::exp(sr[c] - mn);
      sr[c] = e;
      sum += e;
    }
    if (p.dropout())
      for (index_t c = 0; c < nc; ++c) sr[c] *= p.keep(b, i, j0 + c);
    l[r] = l[r] * alpha + sum;
    m[r] = mn;
    if (alpha != T(1)) {
      T* ar = acc + r * p.Ev;
#pragma omp simd
      for (index_t d = 0; d < p.Ev; ++d) ar[d] *= alpha;
    }
  }
}

// o [B, L, Ev] (through os) and lse [B, L]: one parallel loop over (entry, query block).
template <class T, class M>
void forward(const Problem<T, M>& p, T* o, const Strided& os, T* lse) {
  const index_t qblocks = (p.L + kBr - 1) / kBr, items = p.B * qblocks;
  const int nt = static_cast<int>(std::min<index_t>(exec::cpu::num_threads(), items));
  const index_t per_thread = kBr * kBc + kBr * p.Ev + 2 * kBr;
  Storage scratch = make_storage(static_cast<std::size_t>(per_thread * std::max(nt, 1)) * sizeof(T), kCPU);
  [[maybe_unused]] OneBlasThread one_blas;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* s = static_cast<T*>(scratch->data()) + thread_id() * per_thread;
    T* acc = s + kBr * kBc;
    T* m = acc + kBr * p.Ev;
    T* l = m + kBr;
#pragma omp for schedule(dynamic)
    for (index_t item = 0; item < items; ++item) {
      const index_t b = item / qblocks, i0 = (item % qblocks) * kBr, nr = std::min(kBr, p.L - i0);
      const T* qb = p.q + p.qs.base(b) + i0 * p.qs.row;
      const T* kb = p.k + p.ks.base(b);
      const T* vb = p.v + p.vs.base(b);
      const index_t mb = p.mask ? p.ms.base(b) : 0;
      std::fill(acc, acc + nr * p.Ev, T(0));
      std::fill(m, m + nr, Problem<T, M>::kNegInf);
      std::fill(l, l + nr, T(0));
      const index_t S = p.causal ? std::min(p.S, i0 + nr) : p.S;  // keys after the block's last query: masked
      for (index_t j0 = 0; j0 < S; j0 += kBc) {
        const index_t nc = std::min(kBc, S - j0);
        gemm<T>(false, true, nr, nc, p.E, p.scale, qb, p.qs.row, kb + j0 * p.ks.row, p.ks.row, T(0), s, kBc);
        online_softmax_block(p, b, mb, i0, j0, nr, nc, s, kBc, m, l, acc);
        gemm<T>(false, false, nr, p.Ev, nc, T(1), s, kBc, vb + j0 * p.vs.row, p.vs.row, T(1), acc, p.Ev);
      }
      T* ob = o + os.base(b) + i0 * os.row;
      for (index_t r = 0; r < nr; ++r) {
        const T inv = p.S == 0 ? T(0) : T(1) / l[r];  // l = 0: NaN, as a softmax over −inf only
        for (index_t d = 0; d < p.Ev; ++d) ob[r * os.row + d] = acc[r * p.Ev + d] * inv;
        lse[b * p.L + i0 + r] = m[r] + std::log(l[r]);
      }
    }
  }
}

// The backward's elementwise step on a block: s holds the scaled products, g the products
// dout·vᵀ; leaves P∘z in s (for dv) and dS = P∘(dP∘z − delta) in g (for dq and dk).
template <class T, class M>
FT_CPU_MULTIVERSION void grad_block(const Problem<T, M>& p, index_t b, index_t mb, index_t i0, index_t j0, index_t nr,
                                    index_t nc, T* s, T* g, const T* lse, const T* delta) {
  for (index_t r = 0; r < nr; ++r) {
    const index_t i = i0 + r;
    T* sr = s + r * kBcB;
    T* gr = g + r * kBcB;
    const T li = lse[b * p.L + i], di = delta[b * p.L + i];
    if (p.masks())
      for (index_t c = 0; c < nc; ++c) sr[c] = p.masked(sr[c], mb, i, j0 + c);
    if (p.dropout()) {
      for (index_t c = 0; c < nc; ++c) {
        const T pr = math::exp(sr[c] - li), z = p.keep(b, i, j0 + c);
        sr[c] = pr * z;
        gr[c] = pr * (gr[c] * z - di);
      }
    } else {
#pragma omp simd
      for (index_t c = 0; c < nc; ++c) {
        const T pr = math::exp(sr[c] - li);
        sr[c] = pr;
        gr[c] = pr * (gr[c] - di);
      }
    }
  }
}

// dq [B, L, E], dk [B, S, E], dv [B, S, Ev] (contiguous, written whole) from dout (through ds),
// lse and delta [B, L]. Each (entry, key block) owns its dk and dv rows and walks the query
// blocks; dq rows are summed over the key blocks on one thread per entry (entries ≥ threads),
// else into one buffer per thread, added in thread order: deterministic for a thread count.
template <class T, class M>
void backward(const Problem<T, M>& p, const T* dout, const Strided& ds, const T* lse, const T* delta, T* dq, T* dk,
              T* dv) {
  const index_t kblocks = (p.S + kBcB - 1) / kBcB;
  const int nt = exec::cpu::num_threads();
  const bool by_entry = p.B >= nt;
  const index_t per_thread = 2 * kBrB * kBcB + (by_entry ? 0 : p.L * p.E);
  Storage scratch = make_storage(static_cast<std::size_t>(per_thread * nt) * sizeof(T), kCPU);
  [[maybe_unused]] OneBlasThread one_blas;
  // key block j0 of entry b: dk, dv rows written; dq (rows of entry b, row stride E) added to
  auto key_block = [&](index_t b, index_t j0, T* s, T* g, T* dqb) {
    const index_t nc = std::min(kBcB, p.S - j0);
    const T* qb = p.q + p.qs.base(b);
    const T* kb = p.k + p.ks.base(b) + j0 * p.ks.row;
    const T* vb = p.v + p.vs.base(b) + j0 * p.vs.row;
    const T* gb = dout + ds.base(b);
    const index_t mb = p.mask ? p.ms.base(b) : 0;
    T* dkb = dk + (b * p.S + j0) * p.E;
    T* dvb = dv + (b * p.S + j0) * p.Ev;
    std::fill(dkb, dkb + nc * p.E, T(0));
    std::fill(dvb, dvb + nc * p.Ev, T(0));
    for (index_t i0 = p.causal ? j0 : 0; i0 < p.L; i0 += kBrB) {  // causal: queries before j0 see no key here
      const index_t nr = std::min(kBrB, p.L - i0);
      gemm<T>(false, true, nr, nc, p.E, p.scale, qb + i0 * p.qs.row, p.qs.row, kb, p.ks.row, T(0), s, kBcB);
      gemm<T>(false, true, nr, nc, p.Ev, T(1), gb + i0 * ds.row, ds.row, vb, p.vs.row, T(0), g, kBcB);
      grad_block(p, b, mb, i0, j0, nr, nc, s, g, lse, delta);
      gemm<T>(true, false, nc, p.Ev, nr, T(1), s, kBcB, gb + i0 * ds.row, ds.row, T(1), dvb, p.Ev);
      gemm<T>(true, false, nc, p.E, nr, p.scale, g, kBcB, qb + i0 * p.qs.row, p.qs.row, T(1), dkb, p.E);
      gemm<T>(false, false, nr, p.E, nc, p.scale, g, kBcB, kb, p.ks.row, T(1), dqb + i0 * p.E, p.E);
    }
  };
  if (by_entry) {
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (nt > 1)
    for (index_t b = 0; b < p.B; ++b) {
      T* s = static_cast<T*>(scratch->data()) + thread_id() * per_thread;
      T* dqb = dq + b * p.L * p.E;
      std::fill(dqb, dqb + p.L * p.E, T(0));
      for (index_t j = 0; j < kblocks; ++j) key_block(b, j * kBcB, s, s + kBrB * kBcB, dqb);
    }
    return;
  }
  for (index_t b = 0; b < p.B; ++b) {
#pragma omp parallel num_threads(nt)
    {
      const int t = thread_id(), used = team_size();
      T* s = static_cast<T*>(scratch->data()) + t * per_thread;
      T* part = s + 2 * kBrB * kBcB;
      std::fill(part, part + p.L * p.E, T(0));
#pragma omp for schedule(static)
      for (index_t j = 0; j < kblocks; ++j) key_block(b, j * kBcB, s, s + kBrB * kBcB, part);
      // implicit barrier: every part complete
      T* dqb = dq + b * p.L * p.E;
#pragma omp for schedule(static)
      for (index_t r = 0; r < p.L; ++r) {
        T* out = dqb + r * p.E;
        std::fill(out, out + p.E, T(0));
        for (int u = 0; u < used; ++u) {
          const T* src = static_cast<const T*>(scratch->data()) + u * per_thread + 2 * kBrB * kBcB + r * p.E;
          for (index_t d = 0; d < p.E; ++d) out[d] += src[d];
        }
      }
    }
  }
}

}  // namespace cpu

// The row kernels' bound D for head dims E and Ev (≤ kMaxRowHeadDim): f.template operator()<D>().
template <class F>
void with_head_bound(index_t E, index_t Ev, F&& f) {
  const index_t e = std::max(E, Ev);
  if (e <= 32)
    f.template operator()<32>();
  else if (e <= 64)
    f.template operator()<64>();
  else
    f.template operator()<128>();
}

// o [B, L, Ev] (through os) and lse [B, L] (contiguous): one launch.
template <class T, class M>
void forward(Device dev, const Problem<T, M>& p, T* o, const Strided& os, T* lse) {
  if (dev.is_cpu() && !testing::row_kernels.load()) {
    stats::detail::record_launch(dev);
    cpu::forward(p, o, os, lse);
    return;
  }
  with_head_bound(p.E, p.Ev, [&]<int D>() {
    RowKernels<D, T, M> body{};
    body.p = p, body.o = o, body.os = os, body.lse = lse;
    run_rows<Pass::forward>(dev, body, p.B, p.L);
  });
}

// dq [B, L, E], dk [B, S, E], dv [B, S, Ev] (contiguous) from dout [B, L, Ev] (through ds), lse and
// delta = Σ dout·o [B, L]: one launch on the CPU, two on a GPU (dq; dk and dv).
template <class T, class M>
void backward(Device dev, const Problem<T, M>& p, const T* dout, const Strided& ds, const T* lse, const T* delta, T* dq,
              T* dk, T* dv) {
  if (dev.is_cpu() && !testing::row_kernels.load()) {
    stats::detail::record_launch(dev);
    cpu::backward(p, dout, ds, lse, delta, dq, dk, dv);
    return;
  }
  with_head_bound(p.E, p.Ev, [&]<int D>() {
    RowKernels<D, T, M> body{};
    body.p = p, body.lse = const_cast<T*>(lse), body.dout = dout, body.ds = ds, body.delta = delta;
    body.dq = dq, body.dk = dk, body.dv = dv;
    run_rows<Pass::grad_q>(dev, body, p.B, p.L);
    run_rows<Pass::grad_kv>(dev, body, p.B, p.S);
  });
}

}  // namespace ft::inline FT_ABI::linalg::flash
