// bfloat16 GEMMs on the CPU through oneDNN's matmul (Debian: libdnnl-dev; FT_HAVE_DNNL), used
// where oneDNN runs them on AMX tiles (Sapphire Rapids and later): 1024³ in about a quarter of
// OpenBLAS's sgemm time on the widened operands. Without AMX (AVX512-BF16 only) oneDNN's bf16
// matmul was no faster than sgemm here, so those machines keep the widened path. oneDNN's own
// switch ONEDNN_MAX_CPU_ISA (e.g. AVX512_CORE_BF16) turns this path off. The C API only: its
// C++ header is 13,000 lines that every file would parse.
#pragma once

#if defined(FT_HAVE_DNNL)

#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "ft/core/config.hpp"
#include "ft/core/half.hpp"

namespace ft::inline FT_ABI::linalg::detail::onednn {

// Whether oneDNN's effective ISA has AMX's bf16 tiles (asked once: it reads CPUID and the
// environment).
inline bool has_amx_bf16() {
  static const bool yes = dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_amx;
  return yes;
}

inline dnnl_engine_t engine() {
  static const dnnl_engine_t e = [] {
    dnnl_engine_t made = nullptr;
    if (dnnl_engine_create(&made, dnnl_cpu, 0) != dnnl_success) made = nullptr;
    return made;
  }();
  return e;
}

// One matmul's geometry: the key of a created primitive.
struct Key {
  index_t batch, m, n, k, lda, ldb, stride_a, stride_b;
  bool trans_a, trans_b;
  float alpha, beta;
  bool operator<(const Key& o) const {
    return std::tie(batch, m, n, k, lda, ldb, stride_a, stride_b, trans_a, trans_b, alpha, beta) <
           std::tie(o.batch, o.m, o.n, o.k, o.lda, o.ldb, o.stride_a, o.stride_b, o.trans_a, o.trans_b, o.alpha,
                    o.beta);
  }
};

// A row-major [batch,] rows × cols operand with leading dimension ld; transposed when stored
// as cols × rows. A batch stride of 0 (one matrix for every batch) is oneDNN's broadcast, a
// batch of 1.
inline bool operand_desc(dnnl_memory_desc_t* md, dnnl_data_type_t type, index_t batch, index_t rows, index_t cols,
                         index_t ld, index_t stride, bool trans) {
  const dnnl_dims_t dims = {stride == 0 ? 1 : batch, rows, cols};
  const dnnl_dims_t strides = {stride == 0 ? rows * cols : stride, trans ? 1 : ld, trans ? ld : 1};
  if (batch == 1) return dnnl_memory_desc_init_by_strides(md, 2, dims + 1, type, strides + 1) == dnnl_success;
  return dnnl_memory_desc_init_by_strides(md, 3, dims, type, strides) == dnnl_success;
}

// Creates the primitive of `key`, or returns nullptr where oneDNN has none.
inline dnnl_primitive_t create(const Key& key) {
  dnnl_memory_desc_t a, b, c;
  if (!operand_desc(&a, dnnl_bf16, key.batch, key.m, key.k, key.lda, key.stride_a, key.trans_a) ||
      !operand_desc(&b, dnnl_bf16, key.batch, key.k, key.n, key.ldb, key.stride_b, key.trans_b) ||
      !operand_desc(&c, dnnl_f32, key.batch, key.m, key.n, key.n, key.m * key.n, false))
    return nullptr;
  dnnl_matmul_desc_t desc;
  if (dnnl_matmul_desc_init(&desc, &a, &b, nullptr, &c) != dnnl_success) return nullptr;
  dnnl_primitive_attr_t attr = nullptr;
  dnnl_post_ops_t ops = nullptr;
  dnnl_primitive_desc_t pd = nullptr;
  dnnl_primitive_t prim = nullptr;
  bool ok = dnnl_primitive_attr_create(&attr) == dnnl_success;
  if (ok && key.alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key.alpha) == dnnl_success;
  if (ok && key.beta != 0.0f)
    ok = dnnl_post_ops_create(&ops) == dnnl_success && dnnl_post_ops_append_sum(ops, key.beta) == dnnl_success &&
         dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
  if (ok) ok = dnnl_primitive_desc_create(&pd, &desc, attr, engine(), nullptr) == dnnl_success;
  if (ok && dnnl_primitive_create(&prim, pd) != dnnl_success) prim = nullptr;
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (ops) dnnl_post_ops_destroy(ops);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return prim;
}

// The primitives made so far, by geometry (a training loop has a few dozen). Never destroyed
// while the program runs; past kMaxCached a new geometry's primitive is made and dropped per call.
struct Cache {
  static constexpr std::size_t kMaxCached = 1024;
  std::mutex mutex;
  std::map<Key, dnnl_primitive_t> primitives;
};
inline Cache& cache() {
  static Cache* c = new Cache;  // leaked on purpose: primitives may run during static destruction
  return *c;
}

// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] for bfloat16 A, B and a contiguous float C (batch
// stride m·n), as linalg::detail::gemm's arguments. False (nothing written) where oneDNN cannot
// run it; the caller then widens the operands.
inline bool gemm_bf16(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const bfloat16* a,
                      index_t lda, index_t stride_a, const bfloat16* b, index_t ldb, index_t stride_b, float beta,
                      float* c, index_t batch) {
  if (!has_amx_bf16() || engine() == nullptr || k == 0) return false;
  const Key key{batch,   m,       n,     k,   lda, ldb, batch == 1 ? 0 : stride_a, batch == 1 ? 0 : stride_b,
                trans_a, trans_b, alpha, beta};
  dnnl_primitive_t prim = nullptr;
  bool cached = false;
  {
    Cache& cc = cache();
    std::lock_guard<std::mutex> lock(cc.mutex);
    if (auto it = cc.primitives.find(key); it != cc.primitives.end()) {
      prim = it->second;
      cached = true;
    }
  }
  if (!prim) {
    prim = create(key);
    if (!prim) return false;
    Cache& cc = cache();
    std::lock_guard<std::mutex> lock(cc.mutex);
    if (cc.primitives.size() < Cache::kMaxCached) cached = cc.primitives.emplace(key, prim).second;
  }
  const_dnnl_primitive_desc_t pd = nullptr;
  dnnl_primitive_get_primitive_desc(prim, &pd);
  dnnl_memory_t ma = nullptr, mb = nullptr, mc = nullptr;
  dnnl_stream_t stream = nullptr;
  bool ok =
      dnnl_memory_create(&ma, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), engine(),
                         const_cast<bfloat16*>(a)) == dnnl_success &&
      dnnl_memory_create(&mb, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), engine(),
                         const_cast<bfloat16*>(b)) == dnnl_success &&
      dnnl_memory_create(&mc, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), engine(), c) == dnnl_success &&
      dnnl_stream_create(&stream, engine(), dnnl_stream_default_flags) == dnnl_success;
  if (ok) {
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    ok = dnnl_primitive_execute(prim, stream, 3, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
  }
  if (stream) dnnl_stream_destroy(stream);
  for (dnnl_memory_t mem : {ma, mb, mc})
    if (mem) dnnl_memory_destroy(mem);
  if (!cached) dnnl_primitive_destroy(prim);
  return ok;
}

}  // namespace ft::inline FT_ABI::linalg::detail::onednn

#endif  // FT_HAVE_DNNL
