// ft::matmul and ft::linear: PyTorch's products of rank-1/2/3 operands, each one GEMM.
// A materialisation boundary: expression operands are evaluated first (one fused launch
// each), tensor operands — transposed and permuted views included — go to the GEMM as they
// are (a transpose flag and a leading dimension, no copy), and the result is a new tensor
// that the enclosing expression reads as a leaf: relu(matmul(x, W) + b) is the GEMM plus
// one fused kernel.
//
// The file ends with the overloads on Vars: one tape node each, whose backward is two GEMMs.
#pragma once

#include <algorithm>
#include <type_traits>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/expr/expression.hpp"
#include "ft/linalg/autocast.hpp"
#include "ft/linalg/gemm.hpp"
#include "ft/ops/elementwise.hpp"

namespace ft::inline FT_ABI {

namespace linalg::detail {

template <class E>
inline constexpr bool is_tensor_v = false;
template <class T, int R>
inline constexpr bool is_tensor_v<Tensor<T, R>> = true;

// A tensor operand as it is (a view: no copy, no launch); an expression evaluated (one launch).
template <class E>
auto materialise(const E& e) {
  if constexpr (is_tensor_v<E>)
    return e;
  else
    return ft::eval(e);
}

// e as a tensor or a Var, which views can be taken of: itself when it is one, else evaluated
// (one launch).
template <class E>
auto as_leaf(const E& e) {
  if constexpr (autograd::detail::any_var_v<E>)
    return autograd::to_var(e);
  else
    return materialise(e);
}

// PyTorch's result rank: a rank-1 operand gains a unit dimension that the result then drops.
constexpr int matmul_rank(int ra, int rb) {
  if (ra == 1 && rb == 1) return 0;
  if (ra == 1) return rb - 1;
  if (rb == 1) return ra - 1;
  return ra > rb ? ra : rb;
}

// An operand seen as a batch of rows×cols matrices (a rank-1 operand is one row on the left,
// one column on the right), with the strides of each dimension.
struct MatrixDims {
  index_t batch = 1, rows = 1, cols = 1;
  index_t sb = 0, sr = 1, sc = 1;
};

template <int R>
MatrixDims matrix_dims(const Shape<R>& s, const Array<index_t, R>& st, bool left) {
  MatrixDims d;
  if constexpr (R == 1) {
    (left ? d.cols : d.rows) = s[0];
    (left ? d.sc : d.sr) = st[0];
  } else {
    d.rows = s[R - 2];
    d.cols = s[R - 1];
    d.sr = st[R - 2];
    d.sc = st[R - 1];
    if constexpr (R == 3) {
      d.batch = s[0];
      d.sb = st[0];
    }
  }
  if (d.batch == 1) d.sb = 0;  // a batch of one is broadcast
  return d;
}

// How GEMM reads a strided rows×cols matrix without a copy: row-major (ld = row stride) or
// column-major (transposed, ld = column stride). A unit dimension's stride is never read.
// False when neither stride is 1 (or rows would overlap): the operand needs a contiguous copy.
inline bool gemm_layout(const MatrixDims& d, bool& trans, index_t& ld) {
  if ((d.cols == 1 || d.sc == 1) && (d.rows == 1 || d.sr >= std::max<index_t>(d.cols, 1))) {
    trans = false;
    ld = d.rows == 1 ? std::max<index_t>(d.cols, 1) : d.sr;
    return true;
  }
  if ((d.rows == 1 || d.sr == 1) && (d.cols == 1 || d.sc >= std::max<index_t>(d.rows, 1))) {
    trans = true;
    ld = d.cols == 1 ? std::max<index_t>(d.rows, 1) : d.sc;
    return true;
  }
  return false;
}

// Shape and device checks, on the operands' shapes, before anything is evaluated or launched.
template <int RA, int RB>
void check_matmul(const char* op, const Shape<RA>& sa, Device da, const Shape<RB>& sb, Device db) {
  if (!(da == db))
    fail(op, "cannot multiply ", to_string(sa), " on ", da, " by ", to_string(sb), " on ", db,
         ": operands must be on the same device; move one with .to(device)");
  const index_t ka = sa[RA - 1], kb = RB == 1 ? sb[0] : sb[RB - 2];
  if (ka != kb)
    fail(op, "cannot multiply ", to_string(sa), " by ", to_string(sb), ": inner dimensions ", ka, " and ", kb,
         " differ");
  if constexpr (RA == 3 && RB == 3) {
    if (sa[0] != sb[0] && sa[0] != 1 && sb[0] != 1)
      fail(op, "cannot multiply ", to_string(sa), " by ", to_string(sb), ": batch dimensions ", sa[0], " and ", sb[0],
           " do not broadcast");
  }
}

// The product of two tensors (shapes already checked): one GEMM launch, plus one copy for an
// operand whose layout GEMM cannot read. With `out` (contiguous, of the product's shape, sharing
// no memory with a or b) the GEMM writes there, adding beta·out: beta 0 overwrites, 1 accumulates.
template <class T, int RA, int RB, class TC = T>
Tensor<TC, matmul_rank(RA, RB)> matmul_tensors(Tensor<T, RA> a, Tensor<T, RB> b,
                                               Tensor<TC, matmul_rank(RA, RB)> out = {}, compute_t<T> beta = 0);

// t cast to H (Rounded: rounded to H but held in float), in t's layout where t is a transposed
// view of contiguous memory (a linear's weight, an output gradient read transposed): read and
// written in order, not gathered by strides; the GEMM reads the transposed result as it is.
template <class H, bool Rounded, int R>
auto lowered_to(const Tensor<float, R>& t) {
  using U = std::conditional_t<Rounded, float, H>;
  auto lower = [](const Tensor<float, R>& v) {
    if constexpr (Rounded)
      return Tensor<float, R>(cast<float>(cast<H>(v)));
    else
      return Tensor<H, R>(cast<H>(v));
  };
  if constexpr (R >= 2) {
    const auto back = t.transpose(R - 2, R - 1);
    if (!t.is_contiguous() && back.is_contiguous()) return Tensor<U, R>(lower(back).transpose(R - 2, R - 1));
  }
  return Tensor<U, R>(lower(t));
}

// make(), a lower-precision copy of t under ft::autocast, or the copy the guard keeps for a
// parameter (amp::detail::CastCache): Kind tells apart the copies of one view.
template <int Kind, class U, int R, class T, class Make>
Tensor<U, R> autocast_copy(const Tensor<T, R>& t, Make&& make) {
  auto& cache = amp::detail::cast_cache(t.device().type);
  const auto& s = t.storage();
  if (!cache.guards || !s || !s->leaf_parameter()) return make();
  std::vector<std::int64_t> shape(R), strides(R);
  for (int d = 0; d < R; ++d)
    shape[static_cast<std::size_t>(d)] = t.size(d), strides[static_cast<std::size_t>(d)] = t.stride(d);
  for (auto& e : cache.entries)
    if (e.source.get() == s.get() && e.data == t.data() && e.kind == Kind && e.shape == shape && e.strides == strides) {
      if (e.version != s->version()) {  // written since: a new copy
        e.copy = std::make_shared<const Tensor<U, R>>(make());
        e.version = s->version();
      }
      return *static_cast<const Tensor<U, R>*>(e.copy.get());
    }
  auto copy = std::make_shared<const Tensor<U, R>>(make());
  cache.entries.push_back({s, t.data(), std::move(shape), std::move(strides), Kind, s->version(), copy});
  return *copy;
}

// A float product under ft::autocast: the operands rounded to H (a launch each), the product in H
// with float accumulation, rounded to H as PyTorch's autocast output is, and written (or added,
// beta = 1) into out in one launch.
template <class H, int RA, int RB>
Tensor<float, matmul_rank(RA, RB)> autocast_matmul(const Tensor<float, RA>& a, const Tensor<float, RB>& b,
                                                   Tensor<float, matmul_rank(RA, RB)> out, float beta) {
  Tensor<float, matmul_rank(RA, RB)> product;
  if (a.device().is_cpu() && !(std::is_same_v<H, bfloat16> && cpu_bf16_gemm())) {
    // a CPU GEMM in H would widen its operands to float: round them in float instead (the same
    // values, one pass each) for sgemm
    const amp::AutocastScope in_float(kCPU, std::nullopt);
    constexpr int kind = std::is_same_v<H, bfloat16> ? 0 : 1;  // rounded to H, held in float
    product = matmul_tensors<float, RA, RB>(autocast_copy<kind, float>(a, [&] { return lowered_to<H, true>(a); }),
                                            autocast_copy<kind, float>(b, [&] { return lowered_to<H, true>(b); }));
  } else {
    constexpr int kind = std::is_same_v<H, bfloat16> ? 2 : 3;  // in H
    product = matmul_tensors<H, RA, RB, float>(autocast_copy<kind, H>(a, [&] { return lowered_to<H, false>(a); }),
                                               autocast_copy<kind, H>(b, [&] { return lowered_to<H, false>(b); }));
  }
  if (!out.defined()) {
    out = product;
    out = cast<float>(cast<H>(product));  // in place
  } else if (beta == 0.0f) {
    out = cast<float>(cast<H>(product));
  } else {
    out = out * beta + cast<float>(cast<H>(product));
  }
  return out;
}

// TC = float with half or bfloat16 operands: the float products, for an epilogue that rounds once.
template <class T, int RA, int RB, class TC>
Tensor<TC, matmul_rank(RA, RB)> matmul_tensors(Tensor<T, RA> a, Tensor<T, RB> b, Tensor<TC, matmul_rank(RA, RB)> out,
                                               compute_t<T> beta) {
  constexpr int RO = matmul_rank(RA, RB);
  if constexpr (std::is_same_v<T, float> && std::is_same_v<TC, float>) {
    if (const auto h = amp::autocast_dtype(a.device()))
      return *h == DType::BFloat16 ? autocast_matmul<bfloat16>(a, b, out, beta)
                                   : autocast_matmul<half>(a, b, out, beta);
  }
  MatrixDims da = matrix_dims(a.shape(), a.strides(), true);
  MatrixDims db = matrix_dims(b.shape(), b.strides(), false);
  bool trans_a = false, trans_b = false;
  index_t lda = 1, ldb = 1;
  if (!gemm_layout(da, trans_a, lda)) {
    a = a.contiguous();
    da = matrix_dims(a.shape(), a.strides(), true);
    gemm_layout(da, trans_a, lda);
  }
  if (!gemm_layout(db, trans_b, ldb)) {
    b = b.contiguous();
    db = matrix_dims(b.shape(), b.strides(), false);
    gemm_layout(db, trans_b, ldb);
  }
  index_t batch = da.batch == 1 ? db.batch : da.batch;  // a batch of one broadcasts
  index_t m = da.rows, n = db.cols, k = da.cols;

  Shape<RO> out_shape;
  if constexpr (RO == 1) {
    out_shape[0] = RA == 1 ? n : m;
  } else if constexpr (RO == 2) {
    if constexpr (RA == 1)
      out_shape = Shape<2>{batch, n};
    else if constexpr (RB == 1)
      out_shape = Shape<2>{batch, m};
    else
      out_shape = Shape<2>{m, n};
  } else if constexpr (RO == 3) {
    out_shape = Shape<3>{batch, m, n};
  }
  if (!out.defined())
    out = Tensor<TC, RO>(out_shape, a.device());
  else
    check(out.shape() == out_shape && out.is_contiguous() && out.device() == a.device(), "matmul",
          "the output of shape ", to_string(out.shape()), " on ", out.device(), " is not a contiguous ",
          to_string(out_shape), " on ", a.device());
  if (out.numel() == 0) return out;

  // A batch against one shared right operand whose rows follow on from batch to batch is one
  // taller product: [b, m, k]·[k, n] = [b·m, k]·[k, n] (one large GEMM beats b small ones).
  if (batch > 1 && db.sb == 0 && !trans_a && da.sb == m * lda) {
    m *= batch;
    batch = 1;
  }
  linalg::detail::gemm<T, TC>(a.device(), trans_a, trans_b, m, n, k, 1, a.data(), lda, da.sb, b.data(), ldb, db.sb,
                              beta, out.data(), n, m * n, batch);
  return out;
}

// The products most programs take, compiled once in the library (core/config.hpp): float and
// double matrices, batches and batch-by-matrix products (a float one with the half and bfloat16
// paths that ft::autocast takes inside it).
#define FT_MATMUL_INSTANCE(T, RA, RB)                                               \
  FT_COMPILED_INSTANCE(Tensor<T, matmul_rank(RA, RB)> matmul_tensors<T, RA, RB, T>( \
      Tensor<T, RA>, Tensor<T, RB>, Tensor<T, matmul_rank(RA, RB)>, compute_t<T>))
FT_MATMUL_INSTANCE(float, 2, 2)
FT_MATMUL_INSTANCE(float, 3, 3)
FT_MATMUL_INSTANCE(float, 3, 2)
FT_MATMUL_INSTANCE(double, 2, 2)
FT_MATMUL_INSTANCE(double, 3, 3)
#undef FT_MATMUL_INSTANCE
}  // namespace linalg::detail

// The matrix product with torch.matmul's rules for rank 1–3 operands: 1·1 is a dot product
// (rank 0); a rank-1 operand is a row on the left or a column on the right, and that
// dimension is dropped from the result; rank-3 operands are batches, and a batch of one (or a
// rank-2 operand) is broadcast against the other's batch. Expression operands are evaluated
// first. One GEMM launch (plus one fused launch per expression operand).
template <Expression A, Expression B>
auto matmul(const A& a, const B& b) {
  using T = typename A::value_type;
  static_assert(is_floating_v<T> && is_floating_v<typename B::value_type>,
                "ft::matmul: operands must be floating (float, double, half, bfloat16); convert integer operands with "
                "ft::cast<float>(x)");
  static_assert(std::is_same_v<T, typename B::value_type>,
                "ft::matmul: both operands must have the same element type; convert one with ft::cast<T>(x)");
  static_assert(A::rank >= 1 && A::rank <= 3 && B::rank >= 1 && B::rank <= 3,
                "ft::matmul: operands must have rank 1, 2 or 3; fold extra batch dimensions into one with reshape");
  if constexpr (is_floating_v<T> && std::is_same_v<T, typename B::value_type> && A::rank >= 1 && A::rank <= 3 &&
                B::rank >= 1 && B::rank <= 3) {
    linalg::detail::check_matmul("matmul", a.shape(), a.device(), b.shape(), b.device());
    return linalg::detail::matmul_tensors(linalg::detail::materialise(a), linalg::detail::materialise(b));
  }
}

// torch.nn.functional.linear without bias: x·Wᵀ with W of shape [out_features, in_features]
// and x of rank 1, 2 or 3 ([..., in_features] → [..., out_features]). W is read transposed in
// place: one GEMM launch.
template <Expression X, Expression W>
auto linear(const X& x, const W& weight) {
  static_assert(W::rank == 2, "ft::linear: the weight must have rank 2: [out_features, in_features]");
  static_assert(X::rank >= 1 && X::rank <= 3, "ft::linear: the input must have rank 1, 2 or 3: [..., in_features]");
  static_assert(is_floating_v<typename X::value_type> && std::is_same_v<typename X::value_type, typename W::value_type>,
                "ft::linear: input and weight must have the same floating type; convert with ft::cast<T>(x)");
  if constexpr (W::rank == 2 && X::rank >= 1 && X::rank <= 3 && is_floating_v<typename X::value_type> &&
                std::is_same_v<typename X::value_type, typename W::value_type>) {
    const auto& sx = x.shape();
    const auto& sw = weight.shape();
    if (!(x.device() == weight.device()))
      fail("linear", "input of shape ", to_string(sx), " is on ", x.device(), " but the weight of shape ",
           to_string(sw), " is on ", weight.device(), "; move one with .to(device)");
    if (sx[X::rank - 1] != sw[1])
      fail("linear", "cannot apply a weight of shape ", to_string(sw), " (in_features ", sw[1],
           ") to an input of shape ", to_string(sx), " (last dimension ", sx[X::rank - 1], ")");
    return linalg::detail::matmul_tensors(linalg::detail::materialise(x),
                                          linalg::detail::materialise(weight).transpose(0, 1));
  }
}

// torch.nn.functional.linear: x·Wᵀ + bias, bias of shape [out_features]. The GEMM runs now;
// the bias add is returned as a lazy expression over its result, so it fuses into whatever
// reads it: `Tensor y = linear(x, W, b)` is the GEMM plus one launch, and so is
// `relu(linear(x, W, b))` (pre-filling C with the bias for a beta = 1 GEMM would also be two
// launches, but would leave no epilogue for the next op to fuse into).
template <Expression X, Expression W, Expression Bias>
auto linear(const X& x, const W& weight, const Bias& bias) {
  static_assert(Bias::rank == 1, "ft::linear: the bias must have rank 1: [out_features]");
  static_assert(std::is_same_v<typename Bias::value_type, typename X::value_type>,
                "ft::linear: the bias must have the input's element type; convert it with ft::cast<T>(b)");
  if constexpr (Bias::rank == 1 && W::rank == 2) {
    const auto& sw = weight.shape();
    const auto& sb = bias.shape();
    if (sb[0] != sw[0])
      fail("linear", "a bias of shape ", to_string(sb), " does not match a weight of shape ", to_string(sw),
           " (out_features ", sw[0], ")");
    if (!(bias.device() == weight.device()))
      fail("linear", "the bias of shape ", to_string(sb), " is on ", bias.device(), " but the weight of shape ",
           to_string(sw), " is on ", weight.device(), "; move one with .to(device)");
    if constexpr (is_half_v<typename X::value_type>) {
      // the float products and the bias added in float, rounded once (as PyTorch's addmm)
      using H = typename X::value_type;
      const auto y = linalg::detail::matmul_tensors<H, X::rank, 2, float>(
          linalg::detail::materialise(x), linalg::detail::materialise(weight).transpose(0, 1));
      return cast<H>(y + bias);
    } else {
      return linear(x, weight) + bias;
    }
  }
}

}  // namespace ft::inline FT_ABI

// ---- on Vars: the forward records one node; its backward is two GEMMs ----
namespace ft::inline FT_ABI {

namespace autograd::detail {
// t as [batch, rows, cols]: a matrix gains a batch of 1, a vector becomes a row (left
// operand) or a column (right operand).
template <class T, int R>
Tensor<T, 3> as_batch(const Tensor<T, R>& t, bool left) {
  if constexpr (R == 1)
    return left ? t.reshape({1, 1, t.size(0)}) : t.reshape({1, t.size(0), 1});
  else if constexpr (R == 2)
    return t.unsqueeze(0);
  else
    return t;
}

// Whether t's elements lie in the memory range of u's (conservatively: any overlap of the
// address ranges their elements span).
template <class T, int R, int RU>
bool may_overlap(const Tensor<T, R>& t, const Tensor<T, RU>& u) {
  auto span = [](const auto& x) {
    const T* lo = x.data();
    const T* hi = x.data();
    for (int d = 0; d < std::decay_t<decltype(x)>::rank; ++d)
      (x.strides()[d] < 0 ? lo : hi) += (x.size(d) - 1) * x.strides()[d];
    return std::pair{lo, hi};
  };
  if (t.numel() == 0 || u.numel() == 0) return false;
  const auto [tl, th] = span(t);
  const auto [ul, uh] = span(u);
  return !(th < ul || uh < tl);
}

// v's gradient += a·b, the product's shape being `s` (v's elements in row-major order): the GEMM
// writes straight into .grad, over a new gradient (beta 0) or onto the one there (beta 1). No
// temporary, no copy.
template <class T, int R, int RO, int RA, int RB>
void accumulate_product(const Var<T, R>& v, const Shape<RO>& s, const Tensor<T, RA>& a, const Tensor<T, RB>& b) {
  static_assert(RO == linalg::detail::matmul_rank(RA, RB));
  if (!v.requires_grad()) return;
  const bool fresh = autograd::detail::make_grad(v);
  auto& st = v.state();
  if (st.grad.is_contiguous() && !may_overlap(st.grad, a) && !may_overlap(st.grad, b))
    linalg::detail::matmul_tensors(a, b, st.grad.reshape(s), fresh ? T(0) : T(1));
  else
    add_into(st.grad.reshape(s), linalg::detail::matmul_tensors(a, b), fresh);
}

// The gradient of a matmul operand from its batched product p·q (each [batch, ·, ·]): summed
// over the batch where the operand was broadcast along it. A broadcast right operand's sum is one
// GEMM when p's batch folds into its rows (Σ_b A_bᵀ·G_b = A₂ᵀ·G₂ with A₂ = A as [b·m, k]).
template <class T, int R>
void accumulate_from_batch(const Var<T, R>& v, const Tensor<T, 3>& p, const Tensor<T, 3>& q) {
  if (!v.requires_grad()) return;
  const Shape<R>& s = v.shape();
  const index_t batch = std::max(p.size(0), q.size(0));
  if (batch == 1 || (R == 3 && s[0] != 1)) {
    accumulate_product(v, Shape<3>{batch, p.size(1), q.size(2)}, p, q);
    return;
  }
  // p is Aᵀ (a transposed view of a contiguous [b, m, k]) and q is G, contiguous [b, m, n].
  const bool folds = p.size(0) == batch && q.size(0) == batch && p.stride(1) == 1 && p.stride(2) == p.size(1) &&
                     p.stride(0) == p.size(1) * p.size(2) && q.is_contiguous();
  if (folds) {
    const index_t k = p.size(1), m = p.size(2);
    accumulate_product(v, Shape<2>{k, q.size(2)}, p.transpose(1, 2).reshape(Shape<2>{batch * m, k}).transpose(0, 1),
                       q.reshape(Shape<2>{batch * m, q.size(2)}));
    return;
  }
  accumulate_reshaped(v, Shape<2>{p.size(1), q.size(2)}, ft::sum(linalg::detail::matmul_tensors(p, q), 0));
}
}  // namespace autograd::detail

// ---- matmul and linear ----
template <Expression A, Expression B>
requires(autograd::detail::any_var_v<A, B>) auto matmul(const A& a, const B& b) {
  auto va = autograd::to_var(a);
  auto vb = autograd::to_var(b);
  auto y = matmul(va.value(), vb.value());
  using Y = decltype(y);
  using T = typename Y::value_type;
  // the backward's GEMMs run in the forward's precision (ft::autocast)
  auto bwd = [va, vb, ac = amp::autocast_dtype(va.device())](const Tensor<T, Y::rank>& g) {
    const amp::AutocastScope precision(va.device().type, ac);
    auto a3 = autograd::detail::as_batch(va.value(), true), b3 = autograd::detail::as_batch(vb.value(), false);
    const index_t batch = std::max(a3.size(0), b3.size(0));
    auto g3 = g.contiguous().reshape(Shape<3>{batch, a3.size(1), b3.size(2)});
    if (va.requires_grad()) autograd::detail::accumulate_from_batch(va, g3, b3.transpose(1, 2));
    if (vb.requires_grad()) autograd::detail::accumulate_from_batch(vb, a3.transpose(1, 2), g3);
  };
  auto out = autograd::record("matmul", y, std::move(bwd), va, vb);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    autograd::trace::boundary(s, "MatMul", {autograd::trace::name(s, va), autograd::trace::name(s, vb)}, out);
  });
  return out;
}

// x·Wᵀ; the three-argument linear adds the bias to this lazily, so it fuses downstream.
template <Expression X, Expression W>
requires(autograd::detail::any_var_v<X, W>) auto linear(const X& x, const W& weight) {
  auto vx = autograd::to_var(x);
  auto vw = autograd::to_var(weight);
  auto y = linear(vx.value(), vw.value());
  using Y = decltype(y);
  using T = typename Y::value_type;
  auto bwd = [vx, vw, ac = amp::autocast_dtype(vx.device())](const Tensor<T, Y::rank>& g) {
    const amp::AutocastScope precision(vx.device().type, ac);
    const index_t out = vw.size(0), in = vw.size(1);
    if (vx.requires_grad()) autograd::detail::accumulate_product(vx, vx.shape(), g, vw.value());
    if (vw.requires_grad()) {
      auto g2 = g.contiguous().reshape(Shape<2>{g.numel() / out, out});
      auto x2 = vx.value().contiguous().reshape(Shape<2>{vx.numel() / in, in});
      autograd::detail::accumulate_product(vw, vw.shape(), g2.transpose(0, 1), x2);
    }
  };
  auto out = autograd::record("linear", y, std::move(bwd), vx, vw);
  autograd::trace::when_traced([&](autograd::trace::Sink& s) {
    const std::string x = autograd::trace::name(s, vx), w = autograd::trace::name(s, vw);
    if constexpr (decltype(vx)::rank == 2)
      autograd::trace::boundary(s, "Gemm", {x, w}, out, {autograd::trace::Attribute::integer("transB", 1)});
    else
      autograd::trace::boundary(
          s, "MatMul", {x, s.node("Transpose", {w}, {autograd::trace::Attribute::integers("perm", {1, 0})})[0]}, out);
  });
  return out;
}

}  // namespace ft::inline FT_ABI
