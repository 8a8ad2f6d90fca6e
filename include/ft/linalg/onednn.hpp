// oneDNN on the CPU (Debian: libdnnl-dev; FT_HAVE_DNNL), for two things it does better than
// OpenBLAS and the im2col path:
// - bfloat16 GEMMs, through its matmul primitive, where it runs them on AMX tiles (Sapphire
//   Rapids and later): 1024³ in a fifth of OpenBLAS's sgemm time on the widened operands.
//   Without AMX (AVX512-BF16 only) oneDNN's bf16 matmul was no faster than sgemm here, so those
//   machines keep the widened path; oneDNN's switch ONEDNN_MAX_CPU_ISA (e.g. AVX512_CORE_BF16)
//   turns this path off.
// - float convolutions' forward and data gradient, through its direct JIT kernels on blocked
//   layouts (linalg/conv_cpu.hpp decides where they pay).
// The C API only: its C++ header is 13,000 lines that every file would parse.
#pragma once

#if defined(FT_HAVE_DNNL)

#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/core/half.hpp"
#include "ft/core/storage.hpp"

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

// What was made for each geometry (a training loop has a few dozen), kept for the program's
// life; nullptr where oneDNN has nothing for it, so that it is not asked again.
template <class Key, class T>
class Kept {
 public:
  static constexpr std::size_t kMax = 1024;
  // key's object, made by make() the first time, and whether it is kept; one not kept (past
  // kMax, or another thread's was kept first) is the caller's to destroy after its one use.
  template <class Make>
  std::pair<T*, bool> get(const Key& key, Make&& make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = made_.find(key); it != made_.end()) return {it->second, true};
    }
    T* fresh = make();
    std::lock_guard<std::mutex> lock(mutex_);
    if (made_.size() >= kMax) return {fresh, false};
    return {fresh, made_.emplace(key, fresh).second};
  }

 private:
  std::mutex mutex_;
  std::map<Key, T*> made_;
};

inline Kept<Key, dnnl_primitive>& matmuls() {
  static auto* k = new Kept<Key, dnnl_primitive>;  // leaked on purpose: primitives may run during static destruction
  return *k;
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
  const auto [prim, kept] = matmuls().get(key, [&] { return create(key); });
  if (!prim) return false;
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
  if (!kept) dnnl_primitive_destroy(prim);
  return ok;
}

// ---- float convolutions ----
// A convolution primitive's three operands come from the caller in plain NCHW / OIHW (GOIHW with
// groups) and are taken in the layouts oneDNN chose (format `any`: its blocked layouts, where
// its direct JIT kernels run), reordered into scratch buffers where the two differ, as
// LibTorch's mkldnn path does for plain tensors.
enum class ConvKind { forward, backward_data };

struct ConvKey {
  ConvKind kind;
  index_t n, c, h, w, o, kh, kw, oh, ow, groups, sh, sw, ph, pw, dh, dw;
  bool accumulate;  // forward only: y += conv (y holds the bias)
  bool operator<(const ConvKey& r) const {
    return std::tie(kind, n, c, h, w, o, kh, kw, oh, ow, groups, sh, sw, ph, pw, dh, dw, accumulate) <
           std::tie(r.kind, r.n, r.c, r.h, r.w, r.o, r.kh, r.kw, r.oh, r.ow, r.groups, r.sh, r.sw, r.ph, r.pw, r.dh,
                    r.dw, r.accumulate);
  }
};

struct ConvPlan {
  dnnl_primitive_t prim = nullptr;
  int arg[3] = {};              // the operands' DNNL_ARG_*: two inputs, then the output
  dnnl_memory_desc_t plain[3];  // as the caller holds them
  dnnl_memory_desc_t wanted[3];
  dnnl_primitive_t reorder[3] = {};  // plain → wanted for the inputs, wanted → plain for the output
};

// A reorder from → to; with `sum` the destination's values are added to (a sum post-op).
inline dnnl_primitive_t make_reorder(const dnnl_memory_desc_t& from, const dnnl_memory_desc_t& to, bool sum) {
  dnnl_primitive_attr_t attr = nullptr;
  dnnl_post_ops_t ops = nullptr;
  dnnl_primitive_desc_t pd = nullptr;
  dnnl_primitive_t prim = nullptr;
  bool ok = dnnl_primitive_attr_create(&attr) == dnnl_success;
  if (ok && sum)
    ok = dnnl_post_ops_create(&ops) == dnnl_success && dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success &&
         dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
  if (ok) ok = dnnl_reorder_primitive_desc_create(&pd, &from, engine(), &to, engine(), attr) == dnnl_success;
  if (ok && dnnl_primitive_create(&prim, pd) != dnnl_success) prim = nullptr;
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (ops) dnnl_post_ops_destroy(ops);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return prim;
}

inline void destroy(ConvPlan* p) {
  if (!p) return;
  if (p->prim) dnnl_primitive_destroy(p->prim);
  for (dnnl_primitive_t r : p->reorder)
    if (r) dnnl_primitive_destroy(r);
  delete p;
}

// The primitive of `key` and its reorders, or nullptr where oneDNN has none. An accumulating
// forward adds its result to y: in the output's reorder (a sum post-op) when the primitive
// writes a blocked layout, else in the primitive itself.
inline ConvPlan* create(const ConvKey& key) {
  const index_t G = key.groups;
  const dnnl_dims_t xd = {key.n, key.c, key.h, key.w}, yd = {key.n, key.o, key.oh, key.ow};
  const dnnl_dims_t wd = {G, key.o / G, key.c / G, key.kh, key.kw};
  const int wn = G > 1 ? 5 : 4;
  const auto* wdims = G > 1 ? wd : wd + 1;
  const dnnl_dims_t strides = {key.sh, key.sw}, dil = {key.dh - 1, key.dw - 1}, pl = {key.ph, key.pw};
  // oneDNN's right padding: how far the last output row (column) reads past the input
  const dnnl_dims_t pr = {(key.oh - 1) * key.sh + (key.kh - 1) * key.dh + 1 - key.h - key.ph,
                          (key.ow - 1) * key.sw + (key.kw - 1) * key.dw + 1 - key.w - key.pw};
  dnnl_memory_desc_t x, w, y, xa, wa, ya;
  if (dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, dnnl_nchw) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&y, 4, yd, dnnl_f32, dnnl_nchw) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&w, wn, wdims, dnnl_f32, G > 1 ? dnnl_goihw : dnnl_oihw) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&wa, wn, wdims, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
    return nullptr;
  dnnl_convolution_desc_t fwd, bwd;
  if (dnnl_dilated_convolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_convolution_direct, &xa, &wa,
                                                 nullptr, &ya, strides, dil, pl, pr) != dnnl_success)
    return nullptr;
  dnnl_primitive_desc_t fpd = nullptr, pd = nullptr;
  if (dnnl_primitive_desc_create(&fpd, &fwd, nullptr, engine(), nullptr) != dnnl_success) return nullptr;
  auto* plan = new ConvPlan;
  bool ok = true;
  dnnl_query_t q[3] = {};
  if (key.kind == ConvKind::forward) {
    plan->arg[0] = DNNL_ARG_SRC, plan->arg[1] = DNNL_ARG_WEIGHTS, plan->arg[2] = DNNL_ARG_DST;
    plan->plain[0] = x, plan->plain[1] = w, plan->plain[2] = y;
    q[0] = dnnl_query_src_md, q[1] = dnnl_query_weights_md, q[2] = dnnl_query_dst_md;
    std::swap(pd, fpd);
    if (key.accumulate && dnnl_memory_desc_equal(&y, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0))) {
      // writes y's own layout: add there, with a sum post-op
      dnnl_primitive_attr_t attr = nullptr;
      dnnl_post_ops_t ops = nullptr;
      dnnl_primitive_desc_destroy(pd);
      pd = nullptr;
      ok = dnnl_primitive_attr_create(&attr) == dnnl_success && dnnl_post_ops_create(&ops) == dnnl_success &&
           dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success &&
           dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success &&
           dnnl_primitive_desc_create(&pd, &fwd, attr, engine(), nullptr) == dnnl_success &&
           dnnl_memory_desc_equal(&y, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
      if (ops) dnnl_post_ops_destroy(ops);
      if (attr) dnnl_primitive_attr_destroy(attr);
    }
  } else {
    plan->arg[0] = DNNL_ARG_DIFF_DST, plan->arg[1] = DNNL_ARG_WEIGHTS, plan->arg[2] = DNNL_ARG_DIFF_SRC;
    plan->plain[0] = y, plan->plain[1] = w, plan->plain[2] = x;
    q[0] = dnnl_query_diff_dst_md, q[1] = dnnl_query_weights_md, q[2] = dnnl_query_diff_src_md;
    ok = dnnl_dilated_convolution_backward_data_desc_init(&bwd, dnnl_convolution_direct, &xa, &wa, &ya, strides, dil,
                                                          pl, pr) == dnnl_success &&
         dnnl_primitive_desc_create(&pd, &bwd, nullptr, engine(), fpd) == dnnl_success;
  }
  for (int i = 0; ok && i < 3; ++i) {
    plan->wanted[i] = *dnnl_primitive_desc_query_md(pd, q[i], 0);
    if (dnnl_memory_desc_equal(&plan->plain[i], &plan->wanted[i])) continue;
    plan->reorder[i] = i < 2 ? make_reorder(plan->plain[i], plan->wanted[i], false)
                             : make_reorder(plan->wanted[i], plan->plain[i], key.accumulate);
    ok = plan->reorder[i] != nullptr;
  }
  if (ok) ok = dnnl_primitive_create(&plan->prim, pd) == dnnl_success;
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (fpd) dnnl_primitive_desc_destroy(fpd);
  if (!ok) {
    destroy(plan);
    return nullptr;
  }
  return plan;
}

// Runs `plan` on the caller's plain buffers (two inputs, then the output).
inline bool run(const ConvPlan& plan, const float* in0, const float* in1, float* out) {
  void* user[3] = {const_cast<float*>(in0), const_cast<float*>(in1), out};
  dnnl_memory_t plain[3] = {}, wanted[3] = {};
  Storage scratch[3];
  dnnl_stream_t stream = nullptr;
  bool ok = dnnl_stream_create(&stream, engine(), dnnl_stream_default_flags) == dnnl_success;
  for (int i = 0; ok && i < 3; ++i) {
    ok = dnnl_memory_create(&plain[i], &plan.plain[i], engine(), user[i]) == dnnl_success;
    if (ok && plan.reorder[i]) {
      scratch[i] = make_storage(dnnl_memory_desc_get_size(&plan.wanted[i]), kCPU);
      ok = dnnl_memory_create(&wanted[i], &plan.wanted[i], engine(), scratch[i]->data()) == dnnl_success;
    }
  }
  auto operand = [&](int i) { return plan.reorder[i] ? wanted[i] : plain[i]; };
  for (int i = 0; ok && i < 2; ++i)
    if (plan.reorder[i]) {
      const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, plain[i]}, {DNNL_ARG_TO, wanted[i]}};
      ok = dnnl_primitive_execute(plan.reorder[i], stream, 2, args) == dnnl_success;
    }
  if (ok) {
    const dnnl_exec_arg_t args[] = {{plan.arg[0], operand(0)}, {plan.arg[1], operand(1)}, {plan.arg[2], operand(2)}};
    ok = dnnl_primitive_execute(plan.prim, stream, 3, args) == dnnl_success;
  }
  if (ok && plan.reorder[2]) {
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, wanted[2]}, {DNNL_ARG_TO, plain[2]}};
    ok = dnnl_primitive_execute(plan.reorder[2], stream, 2, args) == dnnl_success;
  }
  if (ok) ok = dnnl_stream_wait(stream) == dnnl_success;
  if (stream) dnnl_stream_destroy(stream);
  for (int i = 0; i < 3; ++i) {
    if (plain[i]) dnnl_memory_destroy(plain[i]);
    if (wanted[i]) dnnl_memory_destroy(wanted[i]);
  }
  return ok;
}

inline Kept<ConvKey, ConvPlan>& conv_plans() {
  static auto* k = new Kept<ConvKey, ConvPlan>;  // leaked on purpose, as matmuls()
  return *k;
}

// A float convolution through oneDNN on the caller's plain, contiguous buffers: forward
// (in0 = x, in1 = w, out = y, y += conv where key.accumulate) or backward data (in0 = dy,
// in1 = w, out = dx). False where oneDNN has no primitive for it (the caller's path runs).
inline bool convolution(const ConvKey& key, const float* in0, const float* in1, float* out) {
  if (engine() == nullptr) return false;
  const auto [plan, kept] = conv_plans().get(key, [&] { return create(key); });
  if (!plan) return false;
  const bool ok = run(*plan, in0, in1, out);
  if (!kept) destroy(plan);
  return ok;
}

}  // namespace ft::inline FT_ABI::linalg::detail::onednn

#endif  // FT_HAVE_DNNL
