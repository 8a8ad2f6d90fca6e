// Recurrent layers as PyTorch's: RNN (tanh or relu), LSTM (with proj_size) and GRU, their cells
// RNNCell, LSTMCell and GRUCell, and the autograd node that runs one layer in one direction over
// a whole sequence.
//
// The fast path: the input projection of every time step is one GEMM (onto the biases, filled
// first); each step is one recurrent GEMM and one elementwise kernel for the cell — every gate's
// activation, the state update and the output written together. The backward through time is,
// per step, one kernel for the gate gradients (and the cell state's) and one GEMM for the
// recurrent gradient; the input's and the weights' gradients are one GEMM each over all steps,
// the biases' one column sum. A GPU runs the same kernels (the cell kernels are compiled by nvcc
// like the fused statements; cuDNN's RNN API is not used yet).
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/exec/cuda.hpp"
#include "ft/expr/math.hpp"
#include "ft/linalg/gemm.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/layers.hpp"
#include "ft/nn/module.hpp"
#include "ft/nn/rnn_cudnn.hpp"
#include "ft/ops/indexing.hpp"
#include "ft/ops/structure.hpp"

namespace ft::inline FT_ABI::nn {

namespace rnn {

enum class Mode { Tanh, ReLU, LSTM, GRU };

// Gate blocks of the projections, in PyTorch's order: LSTM (i, f, g, o), GRU (r, z, n), RNN one.
constexpr index_t gate_count(Mode m) { return m == Mode::LSTM ? 4 : m == Mode::GRU ? 3 : 1; }
inline const char* mode_name(Mode m) { return m == Mode::LSTM ? "LSTM" : m == Mode::GRU ? "GRU" : "RNN"; }

template <class F>
FT_HD FT_INLINE F sigmoid(F x) {
  return F(1) / (F(1) + math::exp(-x));
}
template <class T>
FT_HD FT_INLINE compute_t<T> load(const T* p, index_t i) {
  return static_cast<compute_t<T>>(p[i]);
}

// ---- the cells' elementwise kernels: `at(b, j)` is unit j of batch row b (k = b·H + j in the
// [B, H] states); gate rows are [B, G·H]. A two-byte type computes in float. ----

// LSTM: c = f·c₋ + i·g, h = o·tanh(c); the activations overwrite the pre-activations (the
// backward reads them).
template <class T>
struct LstmForward {
  T* gates;  // [B, 4H]: pre-activations in, i, f, g, o out
  const T* c_prev;
  T* c;
  T* h;
  index_t H;
  FT_HD FT_INLINE void at(index_t b, index_t j) const {
    using F = compute_t<T>;
    T* gr = gates + b * 4 * H;
    const index_t k = b * H + j;
    const F i = sigmoid(load(gr, j)), f = sigmoid(load(gr, H + j)), g = math::tanh(load(gr, 2 * H + j)),
            o = sigmoid(load(gr, 3 * H + j));
    const F cn = f * load(c_prev, k) + i * g;
    store_value(gr[j], i);
    store_value(gr[H + j], f);
    store_value(gr[2 * H + j], g);
    store_value(gr[3 * H + j], o);
    store_value(c[k], cn);
    store_value(h[k], o * math::tanh(cn));
  }
};

// LSTM's backward step: dc = dc₊ + dc_in + dh·o·(1 − tanh²c); the gates' pre-activation
// gradients; and dc₋ = dc·f, written over dc (each element reads and writes its own).
template <class T>
struct LstmBackward {
  const T* act;  // [B, 4H]: i, f, g, o
  const T* c_prev;
  const T* c;
  const T* dh;     // [B, H]: the step's output gradient, the recurrent part included
  const T* dc_in;  // [B, H]: the gradient reaching this step's c from outside (c_n's)
  T* dc;           // [B, H]: the gradient of c from the later steps in, of c₋ out
  T* dgates;       // [B, 4H]
  index_t H;
  FT_HD FT_INLINE void at(index_t b, index_t j) const {
    using F = compute_t<T>;
    const T* ar = act + b * 4 * H;
    T* dr = dgates + b * 4 * H;
    const index_t k = b * H + j;
    const F i = load(ar, j), f = load(ar, H + j), g = load(ar, 2 * H + j), o = load(ar, 3 * H + j);
    const F tc = math::tanh(load(c, k)), dhv = load(dh, k);
    const F dcv = load(dc, k) + load(dc_in, k) + dhv * o * (F(1) - tc * tc);
    store_value(dr[j], dcv * g * i * (F(1) - i));
    store_value(dr[H + j], dcv * load(c_prev, k) * f * (F(1) - f));
    store_value(dr[2 * H + j], dcv * i * (F(1) - g * g));
    store_value(dr[3 * H + j], dhv * tc * o * (F(1) - o));
    store_value(dc[k], dcv * f);
  }
};

// GRU (PyTorch's): r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r·h_n), h = (1 − z)·n + z·h₋,
// with x_· = W_i·x + b_i· and h_· = W_h·h₋ + b_h·. The activations overwrite xg; h_n (bias
// included) overwrites hg's n block: the backward reads both.
template <class T>
struct GruForward {
  T* xg;          // [B, 3H]
  T* hg;          // [B, 3H]: W_hh·h₋ (no bias) in
  const T* b_hh;  // [3H], or null
  const T* h_prev;
  T* h;
  index_t H;
  FT_HD FT_INLINE void at(index_t b, index_t j) const {
    using F = compute_t<T>;
    T* xr = xg + b * 3 * H;
    T* hr = hg + b * 3 * H;
    const index_t k = b * H + j;
    auto bias = [&](index_t q) { return b_hh ? load(b_hh, q) : F(0); };
    const F hn = load(hr, 2 * H + j) + bias(2 * H + j);
    const F r = sigmoid(load(xr, j) + load(hr, j) + bias(j));
    const F z = sigmoid(load(xr, H + j) + load(hr, H + j) + bias(H + j));
    const F n = math::tanh(load(xr, 2 * H + j) + r * hn);
    store_value(xr[j], r);
    store_value(xr[H + j], z);
    store_value(xr[2 * H + j], n);
    store_value(hr[2 * H + j], hn);
    store_value(h[k], (F(1) - z) * n + z * load(h_prev, k));
  }
};

// GRU's backward step: the gradients of the input-side and the hidden-side pre-activations
// (they differ in the n block: r·dn), and h₋'s direct share dh·z added into dh_prev.
template <class T>
struct GruBackward {
  const T* act;  // [B, 3H]: r, z, n
  const T* hg;   // [B, 3H]: its n block h_n
  const T* h_prev;
  const T* dh;
  T* dh_prev;
  T* dgx;  // [B, 3H]
  T* dgh;  // [B, 3H]
  index_t H;
  FT_HD FT_INLINE void at(index_t b, index_t j) const {
    using F = compute_t<T>;
    const T* ar = act + b * 3 * H;
    T* dx = dgx + b * 3 * H;
    T* dhh = dgh + b * 3 * H;
    const index_t k = b * H + j;
    const F r = load(ar, j), z = load(ar, H + j), n = load(ar, 2 * H + j), hn = load(hg + b * 3 * H, 2 * H + j);
    const F dhv = load(dh, k);
    const F dn = dhv * (F(1) - z) * (F(1) - n * n);
    const F dz = dhv * (load(h_prev, k) - n) * z * (F(1) - z);
    const F dr = dn * hn * r * (F(1) - r);
    store_value(dx[j], dr);
    store_value(dx[H + j], dz);
    store_value(dx[2 * H + j], dn);
    store_value(dhh[j], dr);
    store_value(dhh[H + j], dz);
    store_value(dhh[2 * H + j], dn * r);
    store_value(dh_prev[k], load(dh_prev, k) + dhv * z);
  }
};

// RNN: h = tanh(pre) or relu(pre); the backward reads h.
template <class T, bool Relu>
struct SimpleForward {
  const T* pre;  // [B, H]
  T* h;
  index_t H;
  FT_HD FT_INLINE void at(index_t b, index_t j) const {
    using F = compute_t<T>;
    const index_t k = b * H + j;
    const F x = load(pre, k);
    store_value(h[k], Relu ? (x < F(0) ? F(0) : x) : math::tanh(x));
  }
};
template <class T, bool Relu>
struct SimpleBackward {
  const T* h;
  const T* dh;
  T* dpre;
  index_t H;
  FT_HD FT_INLINE void at(index_t b, index_t j) const {
    using F = compute_t<T>;
    const index_t k = b * H + j;
    const F hv = load(h, k), d = load(dh, k);
    store_value(dpre[k], Relu ? (hv > F(0) ? d : F(0)) : d * (F(1) - hv * hv));
  }
};

// ---- running a cell kernel over [B, H]: one launch ----
namespace cpu {
template <class Body>
FT_CPU_MULTIVERSION void run_cells(const Body body, index_t B, index_t H) {
#pragma omp parallel for schedule(static) if (B * H > exec::cpu::kParallelGrain)
  for (index_t b = 0; b < B; ++b)
#pragma omp simd
    for (index_t j = 0; j < H; ++j) body.at(b, j);
}
}  // namespace cpu

#if FT_CUDA_ENABLED
namespace gpu {
template <class Body>
struct CellKernel {
  static void launch(Device dev, const Body& body, index_t B, index_t H);
};
#if FT_CUDA_KERNELS
template <class Body>
__global__ void __launch_bounds__(exec::gpu::kBlock) cell_kernel(const Body body, index_t B, index_t H) {
  const index_t n = B * H;
  for (index_t e = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t b = e / H;
    body.at(b, e - b * H);
  }
}
template <class Body>
void CellKernel<Body>::launch(Device dev, const Body& body, index_t B, index_t H) {
  cell_kernel<Body>
      <<<exec::gpu::grid_for(B * H, dev.index), exec::gpu::kBlock, 0, cuda::current_stream()>>>(body, B, H);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS
}  // namespace gpu
#endif

template <class Body>
void run_cells(Device dev, const Body& body, index_t B, index_t H) {
  if (B * H == 0) return;
  stats::detail::record_launch(dev);
  if (dev.is_cpu()) {
    cpu::run_cells(body, B, H);
    return;
  }
#if FT_CUDA_ENABLED
  cuda::DeviceGuard guard(dev);
  cuda::launch_kernel<gpu::CellKernel<Body>>("rnn cell", dev, body, B, H);
#else
  cuda::require_device(dev, "rnn cell");
#endif
}

// C (row stride ldc) = op(A)·op(B), or C += op(A)·op(B) when accumulate: one library call.
template <class T>
void gemm(Device dev, bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b,
          index_t ldb, bool accumulate, T* c, index_t ldc) {
  using C = compute_t<T>;
  linalg::detail::gemm<T>(dev, ta, tb, m, n, k, C(1), a, lda, 0, b, ldb, 0, C(accumulate ? 1 : 0), c, ldc, 0, 1);
}

// A parameter of `shape` drawn from U(−k, k), as PyTorch initialises every recurrent weight.
template <class T, int R>
Var<T, R> uniform_parameter(const Shape<R>& shape, double k, Device device) {
  Tensor<T, R> t(shape, device);
  init::uniform_(t, -k, k);
  return ft::nn::detail::parameter(t);
}

// One layer's parameters in one direction (undefined biases without bias; w_hr only for an LSTM
// with proj_size).
template <class T>
struct LayerWeights {
  Var<T, 2> w_ih, w_hh;
  Var<T, 1> b_ih, b_hh;
  Var<T, 2> w_hr;
};

// Where a layer's steps live. Inputs and gate buffers are [N, ·] rows, step t's bs(t) rows from
// off(t): a padded batch has B rows every step (N = T·B); a packed one (forward direction only)
// bs(t) non-increasing, the sequences sorted longest first. The node's value holds the hidden
// states HS [B + N, P] (P: the projected size, else H) — the initial state's B rows and each
// step's output rows — then, for an LSTM, the cell states CS [B + N, H] likewise. Forward (and
// packed), the initial rows come first and step t's follow; in reverse, the initial rows are
// last. Step t reads its predecessor's first bs(t) rows at prev_row(t).
struct Layout {
  index_t T, B, H, P;
  bool reverse, lstm;
  std::vector<index_t> sizes, offsets;  // packed: bs(t) and off(t) (offsets[T] = N); empty: B every step

  bool packed() const { return !sizes.empty(); }
  index_t bs(index_t t) const { return packed() ? sizes[static_cast<std::size_t>(t)] : B; }
  index_t off(index_t t) const { return packed() ? offsets[static_cast<std::size_t>(t)] : t * B; }
  index_t N() const { return off(T); }
  index_t rows() const { return B + N(); }
  index_t init_row() const { return reverse ? N() : 0; }
  index_t out_row(index_t t) const { return reverse ? off(t) : B + off(t); }
  index_t prev_row(index_t t) const {
    if (reverse) return t + 1 == T ? N() : off(t + 1);
    return t == 0 ? 0 : B + off(t - 1);
  }
  index_t first_out() const { return out_row(0); }  // the output rows: [first_out, first_out + N)
  index_t hs_numel() const { return rows() * P; }
  index_t numel() const { return hs_numel() + (lstm ? rows() * H : 0); }
  // The first processed rows of each sequence's last step (h_n's rows), padded layouts only.
  index_t last_row() const { return reverse ? out_row(0) : out_row(T - 1); }
};

template <class T>
struct LayerResult {
  Var<T, 2> output;  // [N, P]
  Var<T, 2> h_n, c_n;
};

// An initial state (if given) is [B, size] on the input's device; a layer's parameters are there.
template <class T>
void check_state(const Var<T, 2>& s, index_t B, index_t size, Device dev, const char* what, const char* state) {
  if (!s.defined()) return;
  check(s.shape() == Shape<2>{B, size}, what, "Expected ", state, " of size (", B, ", ", size, "), got ",
        to_string(s.shape()));
  check(s.device() == dev, what, state, " is on ", s.device(), ", the input on ", dev);
}
template <class T>
void check_devices(const LayerWeights<T>& w, Device dev, const char* what) {
  for (const Var<T, 2>* p : {&w.w_ih, &w.w_hh, &w.w_hr})
    if (p->defined()) check(p->device() == dev, what, "a parameter is on ", p->device(), ", the input on ", dev);
  for (const Var<T, 1>* p : {&w.b_ih, &w.b_hh})
    if (p->defined()) check(p->device() == dev, what, "a parameter is on ", p->device(), ", the input on ", dev);
}

// One layer in one direction over the steps of x [N, I] from (h0, c0) [B, P] / [B, H]
// (undefined: zeros), as `L` lays them out: one tape node. `what` names the layer in errors.
template <class T>
LayerResult<T> layer_steps(Mode mode, const Var<T, 2>& x, const Var<T, 2>& h0, const Var<T, 2>& c0,
                           const LayerWeights<T>& w, const Layout& L, const std::string& name) {
  static_assert(is_floating_v<T>, "ft::nn recurrent layers: the element type must be a floating type");
  const char* what = name.c_str();
  const Tensor<T, 2> xv = x.value().contiguous();
  const Device dev = xv.device();
  const index_t GH = w.w_ih.size(0), H = L.H, P = L.P, I = w.w_ih.size(1), B = L.B, N = L.N();
  const bool proj = w.w_hr.defined(), lstm = mode == Mode::LSTM;
  check(xv.size(1) == I, what, "input.size(-1) must be equal to input_size. Expected ", I, ", got ", xv.size(1));
  check(xv.size(0) == N, what, "the input has ", xv.size(0), " rows, its steps ", N);
  check_state(h0, B, P, dev, what, "hidden state");
  check_state(c0, B, H, dev, what, "cell state");
  check_devices(w, dev, what);

  const Tensor<T, 2> wih = w.w_ih.value().contiguous(), whh = w.w_hh.value().contiguous();
  const Tensor<T, 2> whr = proj ? w.w_hr.value().contiguous() : Tensor<T, 2>();
  const Tensor<T, 1> bhh = w.b_hh.defined() ? w.b_hh.value().contiguous() : Tensor<T, 1>();
  Tensor<T, 1> y(Shape<1>{L.numel()}, dev);
  const Tensor<T, 2> hs = y.slice(0, 0, L.hs_numel()).reshape(Shape<2>{L.rows(), P});
  const Tensor<T, 2> cs = lstm ? y.slice(0, L.hs_numel(), L.numel()).reshape(Shape<2>{L.rows(), H}) : Tensor<T, 2>();
  auto init = [&](const Tensor<T, 2>& states, const Var<T, 2>& v) {
    if (v.defined())
      states.slice(0, L.init_row(), L.init_row() + B) = v.value();
    else
      states.slice(0, L.init_row(), L.init_row() + B) = T(0.0f);
  };
  init(hs, h0);
  if (lstm) init(cs, c0);

  // the input projection of every step, onto the biases (GRU: b_ih only; b_hh is inside r·(…))
  Tensor<T, 2> gx(Shape<2>{N, GH}, dev);
  const bool has_bias = w.b_ih.defined();
  if (has_bias) {  // (std::move: a named tensor's `=` of a tensor would rebind it)
    const auto b = w.b_ih.value().reshape(Shape<2>{1, GH});
    if (mode == Mode::GRU || !w.b_hh.defined())
      std::move(gx) = b;
    else
      std::move(gx) = b + w.b_hh.value().reshape(Shape<2>{1, GH});
  }
  gemm(dev, false, true, N, GH, I, xv.data(), I, wih.data(), I, has_bias, gx.data(), GH);
  Tensor<T, 2> hg = mode == Mode::GRU ? Tensor<T, 2>(Shape<2>{N, GH}, dev) : Tensor<T, 2>();
  Tensor<T, 2> hr = proj ? Tensor<T, 2>(Shape<2>{N, H}, dev) : Tensor<T, 2>();
  auto at = [](const Tensor<T, 2>& t, index_t r) { return t.data() + r * t.size(1); };

  for (index_t s = 0; s < L.T; ++s) {
    const index_t t = L.reverse ? L.T - 1 - s : s, b = L.bs(t);
    T* g = at(gx, L.off(t));
    const T* h_prev = at(hs, L.prev_row(t));
    T* h_out = at(hs, L.out_row(t));
    const bool recurrent = s > 0 || h0.defined();  // a zero initial state adds nothing
    switch (mode) {
      case Mode::LSTM: {
        if (recurrent) gemm(dev, false, true, b, GH, P, h_prev, P, whh.data(), P, true, g, GH);
        T* h_cell = proj ? at(hr, L.off(t)) : h_out;
        run_cells(dev, LstmForward<T>{g, at(cs, L.prev_row(t)), at(cs, L.out_row(t)), h_cell, H}, b, H);
        if (proj) gemm(dev, false, true, b, P, H, h_cell, H, whr.data(), H, false, h_out, P);
        break;
      }
      case Mode::GRU:
        gemm(dev, false, true, b, GH, H, h_prev, H, whh.data(), H, false, at(hg, L.off(t)), GH);
        run_cells(dev, GruForward<T>{g, at(hg, L.off(t)), bhh.defined() ? bhh.data() : nullptr, h_prev, h_out, H}, b,
                  H);
        break;
      case Mode::Tanh:
      case Mode::ReLU:
        if (recurrent) gemm(dev, false, true, b, H, H, h_prev, H, whh.data(), H, true, g, H);
        if (mode == Mode::ReLU)
          run_cells(dev, SimpleForward<T, true>{g, h_out, H}, b, H);
        else
          run_cells(dev, SimpleForward<T, false>{g, h_out, H}, b, H);
        break;
    }
  }

  auto bwd = [mode, L, x, xv, h0, c0, w, wih, whh, whr, y, hs, cs, gx, hg, hr, at](const Tensor<T, 1>& grad) {
    const index_t B = L.B, H = L.H, P = L.P, N = L.N(), GH = wih.size(0), I = wih.size(1);
    const Device dev = y.device();
    const bool proj = whr.defined();
    // the hidden states' gradients, added to as the steps go back (the initial rows end as dh0's)
    const Tensor<T, 2> dh = grad.slice(0, 0, L.hs_numel()).reshape(Shape<2>{L.rows(), P}).clone();
    // the cell states' gradients from outside (c_n's), read by each step; the running dc
    const Tensor<T, 2> dc_in =
        mode == Mode::LSTM ? grad.slice(0, L.hs_numel(), L.numel()).reshape(Shape<2>{L.rows(), H}) : Tensor<T, 2>();
    Tensor<T, 2> dc;
    if (mode == Mode::LSTM) dc = ft::zeros<T>(Shape<2>{B, H}, dev);
    const Tensor<T, 2> dgx(Shape<2>{N, GH}, dev);
    const Tensor<T, 2> dgh = mode == Mode::GRU ? Tensor<T, 2>(Shape<2>{N, GH}, dev) : dgx;
    const Tensor<T, 2> dh_cell = proj ? Tensor<T, 2>(Shape<2>{B, H}, dev) : Tensor<T, 2>();
    const bool want_dh0 = h0.defined() && h0.requires_grad();
    for (index_t s = L.T; s-- > 0;) {
      const index_t t = L.reverse ? L.T - 1 - s : s, b = L.bs(t);
      T* dh_out = at(dh, L.out_row(t));
      T* dh_prev = at(dh, L.prev_row(t));
      switch (mode) {
        case Mode::LSTM: {
          const T* dhc = dh_out;
          if (proj) {
            gemm(dev, false, false, b, H, P, dh_out, P, whr.data(), H, false, dh_cell.data(), H);
            dhc = dh_cell.data();
          }
          run_cells(dev,
                    LstmBackward<T>{at(gx, L.off(t)), at(cs, L.prev_row(t)), at(cs, L.out_row(t)), dhc,
                                    at(dc_in, L.out_row(t)), dc.data(), at(dgx, L.off(t)), H},
                    b, H);
          break;
        }
        case Mode::GRU:
          run_cells(dev,
                    GruBackward<T>{at(gx, L.off(t)), at(hg, L.off(t)), at(hs, L.prev_row(t)), dh_out, dh_prev,
                                   at(dgx, L.off(t)), at(dgh, L.off(t)), H},
                    b, H);
          break;
        case Mode::Tanh:
          run_cells(dev, SimpleBackward<T, false>{at(hs, L.out_row(t)), dh_out, at(dgx, L.off(t)), H}, b, H);
          break;
        case Mode::ReLU:
          run_cells(dev, SimpleBackward<T, true>{at(hs, L.out_row(t)), dh_out, at(dgx, L.off(t)), H}, b, H);
          break;
      }
      if (s > 0 || want_dh0) gemm(dev, false, false, b, P, GH, at(dgh, L.off(t)), GH, whh.data(), P, true, dh_prev, P);
    }
    if (want_dh0) autograd::accumulate(h0, dh.slice(0, L.init_row(), L.init_row() + B));
    if (mode == Mode::LSTM && c0.defined()) autograd::accumulate(c0, dc);
    using autograd::detail::accumulate_product;
    using autograd::detail::accumulate_reshaped;
    accumulate_product(x, Shape<2>{N, I}, dgx, wih);
    accumulate_product(w.w_ih, Shape<2>{GH, I}, dgx.transpose(0, 1), xv);
    // the states each step read, in the steps' row order: one range of HS when padded, gathered when packed
    Tensor<T, 2> h_prev;
    if (L.packed()) {
      std::vector<std::int64_t> rows;
      for (index_t t = 0; t < L.T; ++t)
        for (index_t k = 0; k < L.bs(t); ++k) rows.push_back(L.prev_row(t) + k);
      h_prev = index_select(hs, 0, from_vector(rows, {N}, dev));
    } else {
      const index_t first = L.reverse ? B : 0;
      h_prev = hs.slice(0, first, first + N);
    }
    accumulate_product(w.w_hh, Shape<2>{GH, P}, dgh.transpose(0, 1), h_prev);
    if (w.b_ih.defined()) accumulate_reshaped(w.b_ih, Shape<1>{GH}, ft::sum(dgx, 0));
    if (w.b_hh.defined()) accumulate_reshaped(w.b_hh, Shape<1>{GH}, ft::sum(dgh, 0));
    if (proj)
      accumulate_product(w.w_hr, Shape<2>{P, H}, dh.slice(0, L.first_out(), L.first_out() + N).transpose(0, 1), hr);
  };
  Var<T, 1> node = autograd::record(std::string(mode_name(mode)), y, std::move(bwd), x, h0, c0, w.w_ih, w.w_hh, w.b_ih,
                                    w.b_hh, w.w_hr);
  LayerResult<T> r;
  const Var<T, 2> states = node.slice(0, 0, L.hs_numel()).reshape({L.rows(), P});
  const Var<T, 2> cells = lstm ? Var<T, 2>(node.slice(0, L.hs_numel(), L.numel()).reshape({L.rows(), H})) : Var<T, 2>();
  r.output = states.slice(0, L.first_out(), L.first_out() + N);
  if (L.packed()) {  // sequence k's last step: row k of step (length_k − 1)'s rows
    std::vector<std::int64_t> last(static_cast<std::size_t>(B));
    for (index_t t = 0; t < L.T; ++t)
      for (index_t k = 0; k < L.bs(t); ++k) last[static_cast<std::size_t>(k)] = L.out_row(t) + k;
    const Tensor<std::int64_t, 1> idx = from_vector(last, {B}, dev);
    r.h_n = index_select(states, 0, idx);
    if (lstm) r.c_n = index_select(cells, 0, idx);
  } else {
    r.h_n = states.slice(0, L.last_row(), L.last_row() + B);
    if (lstm) r.c_n = cells.slice(0, L.last_row(), L.last_row() + B);
  }
  return r;
}

// A padded sequence x [T, B, I]: one node (layer_steps), the output as [T, B, P].
template <class T>
struct SequenceResult {
  Var<T, 3> output;
  Var<T, 2> h_n, c_n;
};

// A layer's weights in ONNX's layout: the gate blocks of m's rows [G·H, K] in ONNX's order
// (LSTM i, o, f, c from PyTorch's i, f, g, o; GRU z, r, h from r, z, n), as [1, G·H, K]; the
// biases as [1, 2·G·H] (input side, then hidden side).
template <class T>
Tensor<T, 3> onnx_gates(Mode mode, const Tensor<T, 2>& m) {
  static constexpr index_t kLstm[] = {0, 3, 1, 2}, kGru[] = {1, 0, 2}, kOne[] = {0};
  const index_t* order = mode == Mode::LSTM ? kLstm : mode == Mode::GRU ? kGru : kOne;
  const Tensor<T, 2> src = m.to(kCPU).contiguous();
  const index_t G = gate_count(mode), rows = src.size(0) / G, block = rows * src.size(1);
  Tensor<T, 3> out(Shape<3>{1, src.size(0), src.size(1)});
  for (index_t g = 0; g < G; ++g) std::copy_n(src.data() + order[g] * block, block, out.data() + g * block);
  return out;
}

// The layer as one ONNX node (RNN, GRU or LSTM, one direction; outputs squeezed to PyTorch's
// shapes): what a traced forward records for layer().
template <class T>
[[gnu::cold]] void trace_projected_lstm(autograd::trace::Sink& s, const Var<T, 3>& x, const Var<T, 2>& h0,
                                        const Var<T, 2>& c0, const LayerWeights<T>& w, bool reverse,
                                        const SequenceResult<T>& out);

template <class T>
[[gnu::cold]] void trace_layer(autograd::trace::Sink& s, Mode mode, const Var<T, 3>& x, const Var<T, 2>& h0,
                               const Var<T, 2>& c0, const LayerWeights<T>& w, bool reverse,
                               const SequenceResult<T>& out) {
  namespace tr = autograd::trace;
  if (w.w_hr.defined()) return trace_projected_lstm(s, x, h0, c0, w, reverse, out);
  const index_t H = w.w_ih.size(0) / gate_count(mode);
  auto constant = [&](const auto& t) { return tr::name(s, t); };  // a tensor made here: an initializer
  std::string bias;
  if (w.b_ih.defined()) {
    const Tensor<T, 3> bi = onnx_gates(mode, w.b_ih.value().reshape({w.b_ih.size(0), 1}));
    const Tensor<T, 3> bh = onnx_gates(mode, w.b_hh.value().reshape({w.b_hh.size(0), 1}));
    Tensor<T, 2> b(Shape<2>{1, 2 * bi.size(1)});
    std::copy_n(bi.data(), bi.numel(), b.data());
    std::copy_n(bh.data(), bh.numel(), b.data() + bi.numel());
    bias = constant(b);
  }
  auto state = [&](const Var<T, 2>& v) {
    return v.defined() ? s.node("Unsqueeze", {tr::name(s, v), s.int1(0)})[0] : "";
  };
  std::vector<std::string> in = {tr::name(s, x),
                                 constant(onnx_gates(mode, w.w_ih.value())),
                                 constant(onnx_gates(mode, w.w_hh.value())),
                                 bias,
                                 "",  // sequence_lens: every sequence runs T steps
                                 state(h0)};
  if (mode == Mode::LSTM) in.push_back(state(c0));
  while (in.back().empty()) in.pop_back();
  std::vector<tr::Attribute> attributes = {tr::Attribute::integer("hidden_size", H),
                                           tr::Attribute::text("direction", reverse ? "reverse" : "forward")};
  if (mode == Mode::GRU) attributes.push_back(tr::Attribute::integer("linear_before_reset", 1));  // PyTorch's GRU
  if (mode == Mode::ReLU) attributes.push_back(tr::Attribute::texts("activations", {"Relu"}));
  const char* op = mode == Mode::LSTM ? "LSTM" : mode == Mode::GRU ? "GRU" : "RNN";
  const auto y = s.node(op, in, attributes, mode == Mode::LSTM ? 3 : 2);
  // Y [T, 1, B, H] -> [T, B, H]; Y_h and Y_c [1, B, H] -> [B, H]
  s.bind(tr::key(out.output), s.node("Squeeze", {y[0], s.int1(1)})[0], AnyTensor(out.output.value()));
  s.bind(tr::key(out.h_n), s.node("Squeeze", {y[1], s.int1(0)})[0], AnyTensor(out.h_n.value()));
  if (mode == Mode::LSTM) s.bind(tr::key(out.c_n), s.node("Squeeze", {y[2], s.int1(0)})[0], AnyTensor(out.c_n.value()));
}

// An LSTM with proj_size, which ONNX's LSTM node cannot express, unrolled over its T steps (fixed
// in the graph; the batch stays symbolic): the input projection of all steps as one MatMul, then
// per step the recurrent MatMul, the gates split in PyTorch's order (i, f, g, o), c = f·c₋ + i·g,
// h = (o·tanh c)·W_hrᵀ; the outputs joined by Concat. A missing initial state is zeros: the first
// step then skips its terms (a zeros constant would fix the batch).
template <class T>
[[gnu::cold]] void trace_projected_lstm(autograd::trace::Sink& s, const Var<T, 3>& x, const Var<T, 2>& h0,
                                        const Var<T, 2>& c0, const LayerWeights<T>& w, bool reverse,
                                        const SequenceResult<T>& out) {
  namespace tr = autograd::trace;
  auto one = [&](const char* op, const std::vector<std::string>& in, const std::vector<tr::Attribute>& a = {}) {
    return s.node(op, in, a, 1)[0];
  };
  auto transposed = [&](const Var<T, 2>& m) {
    return tr::name(s, Tensor<T, 2>(m.value().transpose(0, 1).contiguous()));
  };
  const index_t steps = x.size(0);
  std::string xs = one("MatMul", {tr::name(s, x), transposed(w.w_ih)});  // [T, B, 4H]
  if (w.b_ih.defined()) {
    const Tensor<T, 1> b = w.b_ih.value() + w.b_hh.value();
    xs = one("Add", {xs, tr::name(s, b)});
  }
  const std::string w_hh = transposed(w.w_hh), w_hr = transposed(w.w_hr);
  std::string h = h0.defined() ? tr::name(s, h0) : "", c = c0.defined() ? tr::name(s, c0) : "";
  std::vector<std::string> hs(static_cast<std::size_t>(steps));
  for (index_t k = 0; k < steps; ++k) {
    const index_t t = reverse ? steps - 1 - k : k;
    std::string gates = one("Gather", {xs, s.scalar(static_cast<double>(t), DType::Int64)},
                            {tr::Attribute::integer("axis", 0)});  // [B, 4H]
    if (!h.empty()) gates = one("Add", {gates, one("MatMul", {h, w_hh})});
    const auto g = s.node("Split", {gates}, {tr::Attribute::integer("axis", 1)}, 4);
    const std::string i = one("Sigmoid", {g[0]}), f = one("Sigmoid", {g[1]}), cell = one("Tanh", {g[2]}),
                      o = one("Sigmoid", {g[3]});
    const std::string ig = one("Mul", {i, cell});
    c = c.empty() ? ig : one("Add", {one("Mul", {f, c}), ig});
    h = one("MatMul", {one("Mul", {o, one("Tanh", {c})}), w_hr});  // [B, P]
    hs[static_cast<std::size_t>(t)] = one("Unsqueeze", {h, s.int1(0)});
  }
  s.bind(tr::key(out.output), one("Concat", hs, {tr::Attribute::integer("axis", 0)}), AnyTensor(out.output.value()));
  s.bind(tr::key(out.h_n), one("Identity", {h}), AnyTensor(out.h_n.value()));
  s.bind(tr::key(out.c_n), one("Identity", {c}), AnyTensor(out.c_n.value()));
}

template <class T>
SequenceResult<T> layer(Mode mode, const Var<T, 3>& x, const Var<T, 2>& h0, const Var<T, 2>& c0,
                        const LayerWeights<T>& w, bool reverse, const std::string& name) {
  const index_t T_ = x.size(0), B = x.size(1), GH = w.w_ih.size(0), H = GH / gate_count(mode);
  const index_t P = w.w_hr.defined() ? w.w_hr.size(0) : H;
  check(T_ > 0, name.c_str(), "the sequence of input ", to_string(x.shape()), " is empty (zero time steps)");
  check(x.size(2) == w.w_ih.size(1), name.c_str(), "input.size(-1) must be equal to input_size. Expected ",
        w.w_ih.size(1), ", got ", x.size(2), " (input ", to_string(x.shape()), ")");
  const Layout L{T_, B, H, P, reverse, mode == Mode::LSTM, {}, {}};
  SequenceResult<T> out;
  {
    autograd::trace::Pause pause;  // traced as one node (trace_layer), not as its steps
    auto r = layer_steps(mode, Var<T, 2>(x.reshape({T_ * B, x.size(2)})), h0, c0, w, L, name);
    out = {r.output.reshape({T_, B, P}), r.h_n, r.c_n};
  }
  autograd::trace::when_traced([&](autograd::trace::Sink& s) { trace_layer(s, mode, x, h0, c0, w, reverse, out); });
  return out;
}

// A packed sequence's rows x [N, I], forward, `sizes` sequences at each step (non-increasing).
template <class T>
LayerResult<T> packed_layer(Mode mode, const Var<T, 2>& x, const std::vector<index_t>& sizes, const Var<T, 2>& h0,
                            const Var<T, 2>& c0, const LayerWeights<T>& w, const std::string& name) {
  const index_t GH = w.w_ih.size(0), H = GH / gate_count(mode), P = w.w_hr.defined() ? w.w_hr.size(0) : H;
  Layout L{
      static_cast<index_t>(sizes.size()), sizes.empty() ? 0 : sizes[0], H, P, false, mode == Mode::LSTM, sizes, {}};
  L.offsets.push_back(0);
  for (index_t b : sizes) L.offsets.push_back(L.offsets.back() + b);
  return layer_steps(mode, x, h0, c0, w, L, name);
}

}  // namespace rnn

// ---- variable-length batches, as torch.nn.utils.rnn ----

// The lengths of the sorted sequences of a packed batch: sequence k runs while batch_sizes[t] > k.
inline std::vector<std::int64_t> sorted_lengths(const std::vector<std::int64_t>& batch_sizes) {
  std::vector<std::int64_t> len(batch_sizes.empty() ? 0 : static_cast<std::size_t>(batch_sizes[0]), 0);
  for (std::int64_t b : batch_sizes)
    for (std::int64_t k = 0; k < b; ++k) ++len[static_cast<std::size_t>(k)];
  return len;
}

// A batch of sequences of different lengths with the padding left out: data holds step 0's
// rows (one a sequence), then step 1's, …, the sequences sorted longest first, so that
// batch_sizes[t] (non-increasing) sequences are still running at step t. sorted_indices[k] is
// the batch position of the k-th longest (empty: the batch was sorted already), and
// unsorted_indices its inverse. The recurrent layers take it and compute no padding.
template <class T>
struct PackedSequence {
  Var<T, 2> data;  // [Σ lengths, features]
  std::vector<std::int64_t> batch_sizes;
  std::vector<std::int64_t> sorted_indices, unsorted_indices;

  // The sequences' lengths, in the batch's order.
  std::vector<std::int64_t> lengths() const {
    const std::vector<std::int64_t> len = sorted_lengths(batch_sizes);
    const std::size_t n = len.size();
    if (sorted_indices.empty()) return len;
    std::vector<std::int64_t> out(n);
    for (std::size_t k = 0; k < n; ++k) out[static_cast<std::size_t>(sorted_indices[k])] = len[k];
    return out;
  }
};

namespace rnn {
// The packed rows of each sequence in reverse order: row (t, k) ↔ row (length_k − 1 − t, k) (its
// own inverse). A reverse layer over packed sequences runs forward over these rows.
inline std::vector<std::int64_t> reversed_rows(const std::vector<std::int64_t>& batch_sizes) {
  const std::vector<std::int64_t> len = sorted_lengths(batch_sizes);
  std::vector<std::int64_t> offset{0};
  for (std::int64_t b : batch_sizes) offset.push_back(offset.back() + b);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(offset.back()));
  for (std::size_t t = 0; t < batch_sizes.size(); ++t)
    for (std::int64_t k = 0; k < batch_sizes[t]; ++k)
      rows[static_cast<std::size_t>(offset[t] + k)] =
          offset[static_cast<std::size_t>(len[static_cast<std::size_t>(k)]) - 1 - t] + k;
  return rows;
}

// ---- a GPU layer through cuDNN (rnn_cudnn.hpp) ----

// Whether a layer of element type T on `device` goes to cuDNN: cuDNN found, the switch on, a type
// cuDNN takes, and no ONNX trace running (a traced layer records the fused path's node).
template <class T>
bool use_cudnn([[maybe_unused]] Device device) {
#if FT_CUDNN_ENABLED
  if constexpr (cudnn::supported_type_v<T>)
    return device.is_cuda() && cudnn_rnn_enabled() && autograd::trace::current() == nullptr;
#endif
  return false;
}

// A layer's result in all its directions: output [N, D·P] (the directions side by side), the
// final states per direction.
template <class T>
struct DirectionsResult {
  Var<T, 2> output;
  std::vector<Var<T, 2>> h_n, c_n;
};

#if FT_CUDNN_ENABLED
// Where cuDNN keeps a parameter's `count` row blocks (gates): at off[0..count) of its weight
// space. `together`: in order and adjacent, so the whole parameter is one range.
inline bool together(const index_t* off, index_t count, index_t block) {
  for (index_t k = 0; k < count; ++k)
    if (off[k] != off[0] + k * block) return false;
  return true;
}
// space ← p [count·r, c], one copy when the blocks lie together, else one a block.
template <class T>
void pack(const Tensor<T, 1>& space, const index_t* off, index_t count, const Tensor<T, 2>& p) {
  const index_t r = p.size(0) / count, c = p.size(1), block = r * c;
  if (together(off, count, block)) {
    space.slice(0, off[0], off[0] + count * block).reshape(p.shape()) = p;
    return;
  }
  for (index_t k = 0; k < count; ++k)
    space.slice(0, off[k], off[k] + block).reshape(Shape<2>{r, c}) = p.slice(0, k * r, (k + 1) * r);
}
// The blocks as one parameter-shaped tensor: a view when they lie together, else gathered.
template <class T>
Tensor<T, 2> unpack(const Tensor<T, 1>& space, const index_t* off, index_t count, const Shape<2>& shape) {
  const index_t r = shape[0] / count, c = shape[1], block = r * c;
  if (together(off, count, block)) return space.slice(0, off[0], off[0] + count * block).reshape(shape);
  Tensor<T, 2> out(shape, space.device());
  for (index_t k = 0; k < count; ++k)
    out.slice(0, k * r, (k + 1) * r) = space.slice(0, off[k], off[k] + block).reshape(Shape<2>{r, c});
  return out;
}
#endif

// One layer in all its directions (w: one LayerWeights a direction) over the rows of x [N, I] —
// step t's batch_sizes[t] rows after the earlier steps' (a padded batch: B every step), the
// sequences longest first — as one cuDNN call and one tape node; h0, c0: one state a direction
// (or none). Forward, the parameters are copied into cuDNN's weight space (a copy each where
// cuDNN keeps a parameter's gates together); backward, cudnnRNNBackwardData_v8 then
// cudnnRNNBackwardWeights_v8, the gradients read back from the weight space's. Empty when cuDNN
// does not take the configuration (or is not there): the caller runs the fused steps.
template <class T>
std::optional<DirectionsResult<T>> cudnn_layer([[maybe_unused]] Mode mode, [[maybe_unused]] const Var<T, 2>& x,
                                               [[maybe_unused]] const std::vector<std::int64_t>& batch_sizes,
                                               [[maybe_unused]] const std::vector<Var<T, 2>>& h0,
                                               [[maybe_unused]] const std::vector<Var<T, 2>>& c0,
                                               [[maybe_unused]] std::span<const LayerWeights<T>> w,
                                               [[maybe_unused]] const std::string& name) {
#if FT_CUDNN_ENABLED
  if constexpr (cudnn::supported_type_v<T>) {
    const char* what = name.c_str();
    const int D = static_cast<int>(w.size());
    const bool lstm = mode == Mode::LSTM;
    const index_t G = gate_count(mode), GH = w[0].w_ih.size(0), H = GH / G, I = w[0].w_ih.size(1);
    const index_t P = w[0].w_hr.defined() ? w[0].w_hr.size(0) : H;
    const Tensor<T, 2> xv = x.value().contiguous();
    const Device dev = xv.device();
    const index_t N = xv.size(0), B = batch_sizes.empty() ? 0 : batch_sizes[0];
    check(xv.size(1) == I, what, "input.size(-1) must be equal to input_size. Expected ", I, ", got ", xv.size(1));
    for (const auto& l : w) check_devices(l, dev, what);
    for (const auto& s : h0) check_state(s, B, P, dev, what, "hidden state");
    for (const auto& s : c0) check_state(s, B, H, dev, what, "cell state");
    // cuDNN counts in 32-bit integers: larger layers run the fused steps
    if (N == 0 || B == 0 || std::max({N * I, N * D * P, GH * std::max(I, P), B * D * H}) > INT_MAX) return std::nullopt;

    cuda::DeviceGuard guard(dev);
    cudnnHandle_t handle = cuda::cudnn_handle(dev);
    const cudnnRNNMode_t cell = mode == Mode::LSTM   ? CUDNN_LSTM
                                : mode == Mode::GRU  ? CUDNN_GRU
                                : mode == Mode::ReLU ? CUDNN_RNN_RELU
                                                     : CUDNN_RNN_TANH;
    const cudnn::Plan* plan = cudnn::plan<T>({cell, w[0].b_ih.defined(), D, I, H, P}, handle, dev);
    if (!plan) return std::nullopt;

    bool grads = false;
    auto wants = [&](const auto& v) { grads = grads || (v.defined() && v.requires_grad()); };
    wants(x);
    for (const auto& v : h0) wants(v);
    for (const auto& v : c0) wants(v);
    for (const auto& l : w) wants(l.w_ih), wants(l.w_hh), wants(l.b_ih), wants(l.b_hh), wants(l.w_hr);
    const bool training = grads && autograd::is_grad_enabled();
    std::vector<std::int32_t> lengths;
    for (std::int64_t len : sorted_lengths(batch_sizes)) lengths.push_back(static_cast<std::int32_t>(len));
    // cuDNN reads the lengths on the device too: a padded batch's are one value (a fill, no host
    // sync); a packed batch's are copied, as the packing's own row indices are
    const Tensor<std::int32_t, 1> on_device = lengths.front() == lengths.back()
                                                  ? ft::full<std::int32_t>({B}, lengths.front(), dev)
                                                  : from_vector(lengths, {B}, dev);
    const std::shared_ptr<cudnn::Call> call =
        cudnn::make_call<T>(*plan, handle, dev, lengths, on_device.storage(), training);
    if (!call) return std::nullopt;

    // the weight space, the parameters copied in direction by direction (the biases as columns)
    const Tensor<T, 1> space(Shape<1>{static_cast<index_t>(plan->weight_bytes / sizeof(T))}, dev);
    for (int d = 0; d < D; ++d) {
      const auto& l = w[static_cast<std::size_t>(d)];
      const index_t* m = plan->matrix[static_cast<std::size_t>(d)].data();
      const index_t* b = plan->bias[static_cast<std::size_t>(d)].data();
      pack(space, m, G, l.w_ih.value());
      pack(space, m + G, G, l.w_hh.value());
      if (l.b_ih.defined()) {
        pack(space, b, G, l.b_ih.value().reshape(Shape<2>{GH, 1}));
        pack(space, b + G, G, l.b_hh.value().reshape(Shape<2>{GH, 1}));
      }
      if (l.w_hr.defined()) pack(space, m + 2 * G, 1, l.w_hr.value());
    }
    // the initial states [D, B, ·], or none (zeros)
    auto initial = [&](const std::vector<Var<T, 2>>& s, index_t size) {
      if (s.empty() || !s[0].defined()) return Tensor<T, 3>();
      const Tensor<T, 3> t(Shape<3>{D, B, size}, dev);
      for (int d = 0; d < D; ++d) t.select(0, d) = s[static_cast<std::size_t>(d)].value();
      return t;
    };
    const Tensor<T, 3> hx = initial(h0, P), cx = lstm ? initial(c0, H) : Tensor<T, 3>();
    auto ptr = [](const auto& t) { return t.defined() ? t.data() : nullptr; };

    // the node's value: output [N, D·P], then h_n [D, B, P], then (an LSTM) c_n [D, B, H]
    const index_t ny = N * D * P, nh = D * B * P, nc = lstm ? D * B * H : 0;
    const Tensor<T, 1> value(Shape<1>{ny + nh + nc}, dev);
    T* y = value.data();
    cudnn::forward<T>(*call, handle, space.data(), xv.data(), y, ptr(hx), y + ny, ptr(cx),
                      lstm ? y + ny + nh : nullptr);

    const std::vector<LayerWeights<T>> weights(w.begin(), w.end());
    auto bwd = [=](const Tensor<T, 1>& grad) {
      cuda::DeviceGuard guard(dev);
      cudnnHandle_t handle = cuda::cudnn_handle(dev);
      const Tensor<T, 1> g = grad.contiguous();
      auto any_wants = [](const std::vector<Var<T, 2>>& s) {
        return std::any_of(s.begin(), s.end(), [](const Var<T, 2>& v) { return v.defined() && v.requires_grad(); });
      };
      const Tensor<T, 2> dx(Shape<2>{N, I}, dev);
      const Tensor<T, 3> dhx = hx.defined() && any_wants(h0) ? Tensor<T, 3>(Shape<3>{D, B, P}, dev) : Tensor<T, 3>();
      const Tensor<T, 3> dcx = cx.defined() && any_wants(c0) ? Tensor<T, 3>(Shape<3>{D, B, H}, dev) : Tensor<T, 3>();
      bool want_w = false;
      for (const auto& l : weights)
        for (bool r : {l.w_ih.requires_grad(), l.w_hh.requires_grad(), l.b_ih.defined() && l.b_ih.requires_grad(),
                       l.b_hh.defined() && l.b_hh.requires_grad(), l.w_hr.defined() && l.w_hr.requires_grad()})
          want_w = want_w || r;
      const Tensor<T, 1> dw = want_w ? ft::zeros<T>(Shape<1>{space.numel()}, dev) : Tensor<T, 1>();
      const T* dy = g.data();
      cudnn::backward<T>(*call, handle, space.data(), xv.data(), value.data(), dy, dx.data(), ptr(hx), dy + ny,
                         ptr(dhx), ptr(cx), lstm ? dy + ny + nh : nullptr, ptr(dcx), ptr(dw));
      autograd::accumulate(x, dx);
      for (int d = 0; d < D; ++d) {
        const auto k = static_cast<std::size_t>(d);
        if (dhx.defined()) autograd::accumulate(h0[k], dhx.select(0, d));
        if (dcx.defined()) autograd::accumulate(c0[k], dcx.select(0, d));
        if (!want_w) continue;
        const auto& l = weights[k];
        const index_t* m = plan->matrix[k].data();
        const index_t* b = plan->bias[k].data();
        autograd::accumulate(l.w_ih, unpack(dw, m, G, Shape<2>{GH, I}));
        autograd::accumulate(l.w_hh, unpack(dw, m + G, G, Shape<2>{GH, P}));
        if (l.b_ih.defined()) {
          autograd::accumulate(l.b_ih, unpack(dw, b, G, Shape<2>{GH, 1}).reshape(Shape<1>{GH}));
          autograd::accumulate(l.b_hh, unpack(dw, b + G, G, Shape<2>{GH, 1}).reshape(Shape<1>{GH}));
        }
        if (l.w_hr.defined()) autograd::accumulate(l.w_hr, unpack(dw, m + 2 * G, 1, Shape<2>{P, H}));
      }
    };
    auto at = [](const std::vector<Var<T, 2>>& s, std::size_t k) { return k < s.size() ? s[k] : Var<T, 2>(); };
    const LayerWeights<T> f = w[0], r = D == 2 ? w[1] : LayerWeights<T>{};
    const Var<T, 1> node =
        autograd::record(std::string(mode_name(mode)), value, std::move(bwd), x, at(h0, 0), at(h0, 1), at(c0, 0),
                         at(c0, 1), f.w_ih, f.w_hh, f.b_ih, f.b_hh, f.w_hr, r.w_ih, r.w_hh, r.b_ih, r.b_hh, r.w_hr);
    DirectionsResult<T> out;
    out.output = node.slice(0, 0, ny).reshape({N, D * P});
    const Var<T, 3> hy = node.slice(0, ny, ny + nh).reshape({D, B, P});
    const Var<T, 3> cy = lstm ? Var<T, 3>(node.slice(0, ny + nh, ny + nh + nc).reshape({D, B, H})) : Var<T, 3>();
    for (int d = 0; d < D; ++d) {
      out.h_n.push_back(hy.select(0, d));
      if (lstm) out.c_n.push_back(cy.select(0, d));
    }
    return out;
  }
#endif
  return std::nullopt;
}
}  // namespace rnn

// torch.nn.utils.rnn.pack_padded_sequence: input [T, B, *] ([B, T, *] with batch_first) whose
// sequence b has lengths[b] steps. With enforce_sorted the lengths must be non-increasing;
// otherwise the batch is sorted here (stably) and the order kept in sorted_indices.
template <Expression X>
PackedSequence<typename X::value_type> pack_padded_sequence(const X& input, const std::vector<std::int64_t>& lengths,
                                                            bool batch_first = false, bool enforce_sorted = true) {
  using T = typename X::value_type;
  static_assert(X::rank == 3, "ft::nn::pack_padded_sequence: the input is [seq, batch, features]");
  const Var<T, 3> x = autograd::to_var(input);
  const index_t steps = x.size(batch_first ? 1 : 0), B = x.size(batch_first ? 0 : 1), F = x.size(2);
  check(static_cast<index_t>(lengths.size()) == B, "pack_padded_sequence", "expected ", B,
        " lengths (one a sequence of input ", to_string(x.shape()), "), got ", lengths.size());
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    check(lengths[b] > 0, "pack_padded_sequence",
          "Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0 (",
          lengths[b], " at ", b, ")");
    check(lengths[b] <= steps, "pack_padded_sequence", "length ", lengths[b], " of sequence ", b,
          " is longer than the ", steps, " steps of input ", to_string(x.shape()));
  }
  std::vector<std::int64_t> order(lengths.size());
  for (std::size_t b = 0; b < order.size(); ++b) order[b] = static_cast<std::int64_t>(b);
  PackedSequence<T> p;
  if (enforce_sorted) {
    for (std::size_t b = 1; b < lengths.size(); ++b)
      check(lengths[b] <= lengths[b - 1], "pack_padded_sequence",
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
            "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement if "
            "you do not need ONNX exportability.");
  } else {
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return lengths[static_cast<std::size_t>(a)] > lengths[static_cast<std::size_t>(b)];
    });
    p.sorted_indices = order;
    p.unsorted_indices.resize(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) p.unsorted_indices[static_cast<std::size_t>(order[k])] = k;
  }
  std::vector<std::int64_t> rows;
  for (std::int64_t t = 0; B > 0 && t < lengths[static_cast<std::size_t>(order[0])]; ++t) {
    std::int64_t running = 0;
    for (std::int64_t b : order) {
      if (lengths[static_cast<std::size_t>(b)] <= t) break;
      rows.push_back(batch_first ? b * steps + t : t * B + b);
      ++running;
    }
    p.batch_sizes.push_back(running);
  }
  p.data =
      index_select(x.reshape({steps * B, F}), 0, from_vector(rows, {static_cast<index_t>(rows.size())}, x.device()));
  return p;
}

template <class T>
struct PaddedSequence {
  Var<T, 3> output;                   // [T, B, *] ([B, T, *] batch-first)
  std::vector<std::int64_t> lengths;  // in the batch's order
};

// torch.nn.utils.rnn.pad_packed_sequence: the batch back in its order, padded with
// padding_value to the longest sequence (or to total_length steps when larger than 0).
template <class T>
PaddedSequence<T> pad_packed_sequence(const PackedSequence<T>& p, bool batch_first = false, double padding_value = 0.0,
                                      index_t total_length = 0) {
  const index_t B = p.batch_sizes.empty() ? 0 : p.batch_sizes[0], longest = static_cast<index_t>(p.batch_sizes.size());
  check(total_length == 0 || total_length >= longest, "pad_packed_sequence", "Expected total_length to be at least ",
        longest, " (the length of the longest sequence), got ", total_length);
  const index_t steps = std::max(total_length, longest), F = p.data.size(1), N = p.data.size(0);
  std::vector<std::int64_t> offset{0};
  for (std::int64_t b : p.batch_sizes) offset.push_back(offset.back() + b);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(steps * B));
  for (index_t t = 0; t < steps; ++t)
    for (index_t b = 0; b < B; ++b) {
      const std::int64_t k = p.unsorted_indices.empty() ? b : p.unsorted_indices[static_cast<std::size_t>(b)];
      const bool running = t < longest && k < p.batch_sizes[static_cast<std::size_t>(t)];
      rows[static_cast<std::size_t>(batch_first ? b * steps + t : t * B + b)] =
          running ? offset[static_cast<std::size_t>(t)] + k : N;  // row N: the padding
    }
  const Tensor<T, 2> pad = ft::full<T>({1, F}, static_cast<T>(padding_value), p.data.device());
  const Var<T, 2> ext = ft::cat({p.data, Var<T, 2>(pad)}, 0);
  const Var<T, 2> flat = index_select(ext, 0, from_vector(rows, {steps * B}, p.data.device()));
  return {batch_first ? flat.reshape({B, steps, F}) : flat.reshape({steps, B, F}), p.lengths()};
}

// torch.nn.utils.rnn.pad_sequence: sequences [L_i, *] padded to the longest into [T, B, *]
// ([B, T, *] with batch_first).
template <class X>
auto pad_sequence(const std::vector<X>& sequences, bool batch_first = false, double padding_value = 0.0) {
  using T = typename X::value_type;
  static_assert(X::rank == 2, "ft::nn::pad_sequence: each sequence is [length, features]");
  check(!sequences.empty(), "pad_sequence", "expects a non-empty list of sequences");
  std::vector<Var<T, 2>> parts;
  index_t longest = 0, N = 0;
  for (const auto& s : sequences) {
    parts.push_back(autograd::to_var(s));
    check(parts.back().size(1) == parts[0].size(1), "pad_sequence", "sequence ", parts.size() - 1, " ",
          to_string(parts.back().shape()), " has other features than sequence 0 ", to_string(parts[0].shape()));
    longest = std::max(longest, parts.back().size(0));
    N += parts.back().size(0);
  }
  const index_t B = static_cast<index_t>(parts.size()), F = parts[0].size(1);
  const Device dev = parts[0].device();
  parts.push_back(Var<T, 2>(ft::full<T>({1, F}, static_cast<T>(padding_value), dev)));
  std::vector<std::int64_t> rows(static_cast<std::size_t>(longest * B));
  index_t start = 0;
  for (index_t b = 0; b < B; ++b) {
    const index_t len = parts[static_cast<std::size_t>(b)].size(0);
    for (index_t t = 0; t < longest; ++t)
      rows[static_cast<std::size_t>(batch_first ? b * longest + t : t * B + b)] = t < len ? start + t : N;
    start += len;
  }
  const Var<T, 2> flat = index_select(Var<T, 2>(ft::cat(parts, 0)), 0, from_vector(rows, {longest * B}, dev));
  return batch_first ? flat.reshape({B, longest, F}) : flat.reshape({longest, B, F});
}

// torch.nn.utils.rnn.pack_sequence: pad_sequence, then pack_padded_sequence.
template <class X>
auto pack_sequence(const std::vector<X>& sequences, bool enforce_sorted = true) {
  std::vector<std::int64_t> lengths;
  for (const auto& s : sequences) lengths.push_back(s.shape()[0]);
  return pack_padded_sequence(pad_sequence(sequences), lengths, false, enforce_sorted);
}

enum class RNNActivation { Tanh, ReLU };

// The options of RNN, LSTM and GRU (PyTorch's names and defaults), taken by const reference.
struct RNNOptions {
  int num_layers = 1;
  bool bias = true;
  bool batch_first = false;  // input and output [batch, seq, feature] instead of [seq, batch, feature]
  double dropout = 0.0;      // on each layer's output but the last, in training mode
  bool bidirectional = false;
  index_t proj_size = 0;                             // LSTM only: h projected to this size (0: none)
  RNNActivation nonlinearity = RNNActivation::Tanh;  // RNN only
};

// What RNN and GRU return: output [T, B, D·H] (batch-first when the layer is), h_n [L·D, B, H];
// for an unbatched input [T, I] (R = 2), output [T, D·H] and h_n [L·D, H].
template <class T, int R = 3>
struct RNNOutput {
  Var<T, R> output;
  Var<T, R> h_n;
};
// What LSTM returns: h_n [L·D, B, P] (P = proj_size or H), c_n [L·D, B, H] (unbatched: no B).
template <class T, int R = 3>
struct LSTMOutput {
  Var<T, R> output;
  Var<T, R> h_n;
  Var<T, R> c_n;
};

// The same for a packed input: the output packed as the input, the final states in the batch's
// order.
template <class T>
struct RNNPackedOutput {
  PackedSequence<T> output;
  Var<T, 3> h_n;
};
template <class T>
struct LSTMPackedOutput {
  PackedSequence<T> output;
  Var<T, 3> h_n;
  Var<T, 3> c_n;
};

namespace detail {

// The layers of RNN, LSTM and GRU: parameters named as PyTorch's (weight_ih_l0, weight_hh_l0,
// bias_ih_l0, bias_hh_l0, weight_hr_l0, "_reverse" for the backward direction), each
// U(±1/√hidden_size) as PyTorch initialises them.
template <class Derived, class T>
class RecurrentBase : public Module<Derived> {
 public:
  RecurrentBase() = default;
  RecurrentBase(rnn::Mode mode, index_t input_size, index_t hidden_size, const RNNOptions& options, Device device)
      : mode_(mode), input_size_(input_size), hidden_size_(hidden_size), options_(options) {
    const char* name = rnn::mode_name(mode);
    check(input_size > 0 && hidden_size > 0, name, "input_size and hidden_size must be positive, got ", input_size,
          " and ", hidden_size);
    check(options.num_layers >= 1, name, "num_layers must be at least 1, got ", options.num_layers);
    check(options.dropout >= 0 && options.dropout <= 1, name, "dropout must be in [0, 1], got ", options.dropout);
    check(options.proj_size >= 0, name, "proj_size must be non-negative, got ", options.proj_size);
    check(options.proj_size == 0 || mode == rnn::Mode::LSTM, name, "proj_size is an LSTM option");
    check(options.proj_size < hidden_size, name, "proj_size (", options.proj_size,
          ") has to be smaller than hidden_size (", hidden_size, ")");
    const index_t gh = rnn::gate_count(mode) * hidden_size, p = output_size();
    const double k = 1.0 / std::sqrt(static_cast<double>(hidden_size));
    auto make = [&]<int R>(const Shape<R>& shape) { return rnn::uniform_parameter<T>(shape, k, device); };
    for (int l = 0; l < options.num_layers; ++l)
      for (int d = 0; d < directions(); ++d) {
        rnn::LayerWeights<T> w;
        const index_t in = l == 0 ? input_size : p * directions();
        w.w_ih = make(Shape<2>{gh, in});
        w.w_hh = make(Shape<2>{gh, p});
        if (options.bias) {
          w.b_ih = make(Shape<1>{gh});
          w.b_hh = make(Shape<1>{gh});
        }
        if (options.proj_size > 0) w.w_hr = make(Shape<2>{options.proj_size, hidden_size});
        layers_.push_back(w);
      }
  }

  index_t input_size() const { return input_size_; }
  index_t hidden_size() const { return hidden_size_; }
  const RNNOptions& options() const { return options_; }
  int directions() const { return options_.bidirectional ? 2 : 1; }
  // The size of h: proj_size when set, else hidden_size.
  index_t output_size() const { return options_.proj_size > 0 ? options_.proj_size : hidden_size_; }

  template <class V>
  void visit(V&& v) {
    for (int l = 0; l < options_.num_layers; ++l)
      for (int d = 0; d < directions(); ++d) {
        auto& w = layers_[static_cast<std::size_t>(l * directions() + d)];
        const std::string sfx = std::to_string(l) + (d == 1 ? "_reverse" : "");
        v("weight_ih_l" + sfx, w.w_ih);
        v("weight_hh_l" + sfx, w.w_hh);
        v("bias_ih_l" + sfx, w.b_ih);
        v("bias_hh_l" + sfx, w.b_hh);
        v("weight_hr_l" + sfx, w.w_hr);
      }
  }
  // Restarts the dropout masks' sequence (as re-seeding).
  void manual_seed(std::uint64_t seed) {
    seed_ = seed;
    calls_ = 0;
  }

 protected:
  // Every layer and direction over the sequence: (output, h_n, c_n; c_n undefined but for LSTM).
  template <class X>
  std::tuple<Var<T, 3>, Var<T, 3>, Var<T, 3>> run(const X& input, const Var<T, 3>& h0, const Var<T, 3>& c0) {
    static_assert(X::rank == 3,
                  "ft::nn::RNN/LSTM/GRU: the input is [seq, batch, features] ([batch, seq, features] with "
                  "batch_first), or unbatched [seq, features]");
    const char* name = rnn::mode_name(mode_);
    check(!layers_.empty(), name, "the layer was default-constructed (no parameters)");
    Var<T, 3> x = autograd::to_var(input);
    if (options_.batch_first) x = x.transpose(0, 1);
    const index_t B = x.size(1), LD = options_.num_layers * directions();
    auto check_state = [&](const Var<T, 3>& s, index_t size, const char* what) {
      if (s.defined())
        check(s.shape() == Shape<3>{LD, B, size}, name, "Expected ", what, " size (", LD, ", ", B, ", ", size,
              "), got ", to_string(s.shape()));
    };
    check_state(h0, output_size(), "hidden");
    check_state(c0, hidden_size_, "cell");
    const std::string what = std::string(name) + " (input " + to_string(x.shape()) + ")";
    std::vector<Var<T, 2>> hn, cn;
    for (int l = 0; l < options_.num_layers; ++l) {
      const index_t steps = x.size(0);
      std::optional<rnn::DirectionsResult<T>> fast;
      if (rnn::use_cudnn<T>(x.device()) && steps > 0 && B > 0)
        fast = rnn::cudnn_layer(mode_, Var<T, 2>(x.reshape({steps * B, x.size(2)})),
                                std::vector<std::int64_t>(static_cast<std::size_t>(steps), B), layer_states(h0, l),
                                layer_states(c0, l), layer_weights(l), what);
      if (fast) {
        x = fast->output.reshape({steps, B, fast->output.size(1)});
        hn.insert(hn.end(), fast->h_n.begin(), fast->h_n.end());
        cn.insert(cn.end(), fast->c_n.begin(), fast->c_n.end());
      } else {
        std::vector<Var<T, 3>> outs;
        for (int d = 0; d < directions(); ++d) {
          const int k = l * directions() + d;
          auto r = rnn::layer(mode_, x, h0.defined() ? h0.select(0, k) : Var<T, 2>(),
                              c0.defined() ? c0.select(0, k) : Var<T, 2>(), layers_[static_cast<std::size_t>(k)],
                              d == 1, what);
          outs.push_back(r.output);
          hn.push_back(r.h_n);
          if (r.c_n.defined()) cn.push_back(r.c_n);
        }
        x = outs.size() == 1 ? outs[0] : Var<T, 3>(ft::cat(outs, 2));
      }
      if (options_.dropout > 0 && this->is_training() && l + 1 < options_.num_layers) {
        const std::uint64_t s = seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_);
        x = autograd::to_var(functional::dropout(x, options_.dropout, true, s));
      }
    }
    if (options_.batch_first) x = x.transpose(0, 1);
    return {x, stacked(hn), stacked(cn)};
  }

  // A packed batch: each layer and direction one node over the packed rows (the reverse direction
  // over each sequence's rows reversed); the initial and final states in the batch's order.
  std::tuple<PackedSequence<T>, Var<T, 3>, Var<T, 3>> run_packed(const PackedSequence<T>& input, Var<T, 3> h0,
                                                                 Var<T, 3> c0) {
    const char* name = rnn::mode_name(mode_);
    check(!layers_.empty(), name, "the layer was default-constructed (no parameters)");
    check(input.data.defined() && !input.batch_sizes.empty(), name, "the packed sequence is empty");
    const Var<T, 2>& data = input.data;
    check(data.size(1) == input_size_, name, "input.size(-1) must be equal to input_size. Expected ", input_size_,
          ", got ", data.size(1));
    const index_t B = input.batch_sizes[0], LD = options_.num_layers * directions();
    const Device dev = data.device();
    auto check_state = [&](const Var<T, 3>& s, index_t size, const char* what) {
      if (s.defined())
        check(s.shape() == Shape<3>{LD, B, size}, name, "Expected ", what, " size (", LD, ", ", B, ", ", size,
              "), got ", to_string(s.shape()));
    };
    check_state(h0, output_size(), "hidden");
    check_state(c0, hidden_size_, "cell");
    auto index = [&](const std::vector<std::int64_t>& v) {
      return from_vector(v, {static_cast<index_t>(v.size())}, dev);
    };
    if (!input.sorted_indices.empty()) {  // the states in the sorted order
      const auto order = index(input.sorted_indices);
      if (h0.defined()) h0 = index_select(h0, 1, order);
      if (c0.defined()) c0 = index_select(c0, 1, order);
    }
    std::vector<index_t> sizes(input.batch_sizes.begin(), input.batch_sizes.end());
    Tensor<std::int64_t, 1> reversed;  // the reverse direction's rows, made when the fused steps need them
    const std::string what = std::string(name) + " (packed input " + to_string(data.shape()) + ")";
    Var<T, 2> x = data;
    std::vector<Var<T, 2>> hn, cn;
    const bool cudnn = rnn::use_cudnn<T>(dev);
    for (int l = 0; l < options_.num_layers; ++l) {
      std::optional<rnn::DirectionsResult<T>> fast;
      if (cudnn)
        fast = rnn::cudnn_layer(mode_, x, input.batch_sizes, layer_states(h0, l), layer_states(c0, l), layer_weights(l),
                                what);
      if (fast) {
        x = fast->output;
        hn.insert(hn.end(), fast->h_n.begin(), fast->h_n.end());
        cn.insert(cn.end(), fast->c_n.begin(), fast->c_n.end());
      } else {
        if (directions() == 2 && !reversed.defined()) reversed = index(rnn::reversed_rows(input.batch_sizes));
        std::vector<Var<T, 2>> outs;
        for (int d = 0; d < directions(); ++d) {
          const int k = l * directions() + d;
          const Var<T, 2> in = d == 1 ? Var<T, 2>(index_select(x, 0, reversed)) : x;
          auto r = rnn::packed_layer(mode_, in, sizes, h0.defined() ? h0.select(0, k) : Var<T, 2>(),
                                     c0.defined() ? c0.select(0, k) : Var<T, 2>(), layers_[static_cast<std::size_t>(k)],
                                     what);
          outs.push_back(d == 1 ? Var<T, 2>(index_select(r.output, 0, reversed)) : r.output);
          hn.push_back(r.h_n);
          if (r.c_n.defined()) cn.push_back(r.c_n);
        }
        x = outs.size() == 1 ? outs[0] : Var<T, 2>(ft::cat(outs, 1));
      }
      if (options_.dropout > 0 && this->is_training() && l + 1 < options_.num_layers) {
        const std::uint64_t s = seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_);
        x = autograd::to_var(functional::dropout(x, options_.dropout, true, s));
      }
    }
    Var<T, 3> h = stacked(hn), c = stacked(cn);
    if (!input.unsorted_indices.empty()) {  // back in the batch's order
      const auto order = index(input.unsorted_indices);
      h = index_select(h, 1, order);
      if (c.defined()) c = index_select(c, 1, order);
    }
    return {PackedSequence<T>{x, input.batch_sizes, input.sorted_indices, input.unsorted_indices}, h, c};
  }

  // Layer l's initial states, one a direction (none when s is undefined), and its parameters.
  std::vector<Var<T, 2>> layer_states(const Var<T, 3>& s, int l) const {
    std::vector<Var<T, 2>> out;
    if (s.defined())
      for (int d = 0; d < directions(); ++d) out.push_back(s.select(0, l * directions() + d));
    return out;
  }
  std::span<const rnn::LayerWeights<T>> layer_weights(int l) const {
    return std::span<const rnn::LayerWeights<T>>(layers_).subspan(static_cast<std::size_t>(l * directions()),
                                                                  static_cast<std::size_t>(directions()));
  }

  // An unbatched input [T, I] and its states [L·D, ·] as a batch of one (batch_first does not
  // apply to it, as in PyTorch); `unbatch` removes that batch dimension from a result again.
  template <class X>
  Var<T, 3> as_batch(const X& input) const {
    return autograd::to_var(input).unsqueeze(options_.batch_first ? 0 : 1);
  }
  static Var<T, 3> state_as_batch(const Var<T, 2>& s) { return s.defined() ? s.unsqueeze(1) : Var<T, 3>(); }
  Var<T, 2> unbatch_output(const Var<T, 3>& o) const { return o.squeeze(options_.batch_first ? 0 : 1); }
  static Var<T, 2> unbatch_state(const Var<T, 3>& s) { return s.defined() ? s.squeeze(1) : Var<T, 2>(); }

  // The final states of each layer and direction as [L·D, B, ·] (one of them: a view).
  static Var<T, 3> stacked(const std::vector<Var<T, 2>>& s) {
    return s.empty() ? Var<T, 3>() : s.size() == 1 ? s[0].unsqueeze(0) : Var<T, 3>(ft::stack(s, 0));
  }

  rnn::Mode mode_ = rnn::Mode::Tanh;
  index_t input_size_ = 0, hidden_size_ = 0;
  RNNOptions options_;
  std::vector<rnn::LayerWeights<T>> layers_;
  std::uint64_t seed_ = next_seed();
  std::uint64_t calls_ = 0;
};

}  // namespace detail

// ---- RNN, LSTM, GRU: `auto [output, h_n] = gru(x, h0)`, `auto [output, h_n, c_n] = lstm(x)` ----

namespace detail {
// RNN's and GRU's forward: one state, h.
template <class Derived, class T>
class HiddenStateRecurrent : public RecurrentBase<Derived, T> {
 public:
  using RecurrentBase<Derived, T>::RecurrentBase;
  template <Expression X>
  RNNOutput<T, X::rank> forward(const X& input, const Var<T, X::rank>& h0 = {}) {
    if constexpr (X::rank == 2) {
      auto [o, h, c] = this->run(this->as_batch(input), this->state_as_batch(h0), {});
      return {this->unbatch_output(o), this->unbatch_state(h)};
    } else {
      auto [o, h, c] = this->run(input, h0, {});
      return {o, h};
    }
  }
  RNNPackedOutput<T> forward(const PackedSequence<T>& input, const Var<T, 3>& h0 = {}) {
    auto [o, h, c] = this->run_packed(input, h0, {});
    return {o, h};
  }
};
}  // namespace detail

// Elman RNN: h = tanh(W_ih·x + b_ih + W_hh·h₋ + b_hh) (or relu: options.nonlinearity).
template <class T = float>
class RNN : public detail::HiddenStateRecurrent<RNN<T>, T> {
  using Base = detail::HiddenStateRecurrent<RNN<T>, T>;

 public:
  RNN() = default;
  RNN(index_t input_size, index_t hidden_size, const RNNOptions& options = {}, Device device = kCPU)
      : Base(options.nonlinearity == RNNActivation::ReLU ? rnn::Mode::ReLU : rnn::Mode::Tanh, input_size, hidden_size,
             options, device) {}
};

template <class T = float>
class GRU : public detail::HiddenStateRecurrent<GRU<T>, T> {
  using Base = detail::HiddenStateRecurrent<GRU<T>, T>;

 public:
  GRU() = default;
  GRU(index_t input_size, index_t hidden_size, const RNNOptions& options = {}, Device device = kCPU)
      : Base(rnn::Mode::GRU, input_size, hidden_size, options, device) {}
};

template <class T = float>
class LSTM : public detail::RecurrentBase<LSTM<T>, T> {
  using Base = detail::RecurrentBase<LSTM<T>, T>;

 public:
  LSTM() = default;
  LSTM(index_t input_size, index_t hidden_size, const RNNOptions& options = {}, Device device = kCPU)
      : Base(rnn::Mode::LSTM, input_size, hidden_size, options, device) {}
  // h0 [L·D, B, P] and c0 [L·D, B, H]; either may be left out (zeros).
  template <Expression X>
  LSTMOutput<T, X::rank> forward(const X& input, const Var<T, X::rank>& h0 = {}, const Var<T, X::rank>& c0 = {}) {
    if constexpr (X::rank == 2) {
      auto [o, h, c] = this->run(this->as_batch(input), this->state_as_batch(h0), this->state_as_batch(c0));
      return {this->unbatch_output(o), this->unbatch_state(h), this->unbatch_state(c)};
    } else {
      auto [o, h, c] = this->run(input, h0, c0);
      return {o, h, c};
    }
  }
  LSTMPackedOutput<T> forward(const PackedSequence<T>& input, const Var<T, 3>& h0 = {}, const Var<T, 3>& c0 = {}) {
    auto [o, h, c] = this->run_packed(input, h0, c0);
    return {o, h, c};
  }
};

// ---- the cells: one time step, input [B, I], states [B, H] (undefined: zeros) ----
namespace detail {
template <class Derived, class T>
class CellBase : public Module<Derived> {
 public:
  Var<T, 2> weight_ih, weight_hh;
  Var<T, 1> bias_ih, bias_hh;  // undefined without bias

  CellBase() = default;
  CellBase(rnn::Mode mode, index_t input_size, index_t hidden_size, bool bias, Device device) : mode_(mode) {
    const char* name = rnn::mode_name(mode);
    check(input_size > 0 && hidden_size > 0, name, "Cell: input_size and hidden_size must be positive, got ",
          input_size, " and ", hidden_size);
    const index_t gh = rnn::gate_count(mode) * hidden_size;
    const double k = 1.0 / std::sqrt(static_cast<double>(hidden_size));
    auto make = [&]<int R>(const Shape<R>& shape) { return rnn::uniform_parameter<T>(shape, k, device); };
    weight_ih = make(Shape<2>{gh, input_size});
    weight_hh = make(Shape<2>{gh, hidden_size});
    if (bias) {
      bias_ih = make(Shape<1>{gh});
      bias_hh = make(Shape<1>{gh});
    }
  }
  index_t input_size() const { return weight_ih.size(1); }
  index_t hidden_size() const { return weight_hh.size(1); }

  template <class V>
  void visit(V&& v) {
    v("weight_ih", weight_ih);
    v("weight_hh", weight_hh);
    v("bias_ih", bias_ih);
    v("bias_hh", bias_hh);
  }

 protected:
  // One step over input [batch, input_size] with states [batch, hidden_size], or unbatched:
  // input [input_size] with states [hidden_size], run as a batch of one (as PyTorch's cells).
  template <class X, int R>
  rnn::SequenceResult<T> step(const X& input, const Var<T, R>& h, const Var<T, R>& c) {
    static_assert(X::rank == R && (R == 1 || R == 2),
                  "ft::nn cells: the input is [batch, input_size] with states [batch, hidden_size], or unbatched: "
                  "[input_size] with states [hidden_size]");
    const std::string name = std::string(rnn::mode_name(mode_)) + "Cell";
    check(weight_ih.defined(), name.c_str(), "the cell was default-constructed (no parameters)");
    const Var<T, R> x = autograd::to_var(input);
    return rnn::layer(mode_, batched(x).unsqueeze(0), batched(h), batched(c),
                      rnn::LayerWeights<T>{weight_ih, weight_hh, bias_ih, bias_hh, {}}, false,
                      name + " (input " + to_string(x.shape()) + ")");
  }
  template <int R>
  static Var<T, 2> batched(const Var<T, R>& v) {
    if constexpr (R == 1)
      return v.defined() ? Var<T, 2>(v.unsqueeze(0)) : Var<T, 2>();
    else
      return v;
  }
  // A state of the batch of one back to [hidden_size] for an unbatched step.
  template <int R>
  static Var<T, R> unbatched(const Var<T, 2>& v) {
    if constexpr (R == 1)
      return v.squeeze(0);
    else
      return v;
  }
  rnn::Mode mode_ = rnn::Mode::Tanh;
};
}  // namespace detail

// h' = tanh(W_ih·x + b_ih + W_hh·h + b_hh) (or relu).
template <class T = float>
class RNNCell : public detail::CellBase<RNNCell<T>, T> {
  using Base = detail::CellBase<RNNCell<T>, T>;

 public:
  RNNCell() = default;
  RNNCell(index_t input_size, index_t hidden_size, bool bias = true, RNNActivation nonlinearity = RNNActivation::Tanh,
          Device device = kCPU)
      : Base(nonlinearity == RNNActivation::ReLU ? rnn::Mode::ReLU : rnn::Mode::Tanh, input_size, hidden_size, bias,
             device) {}
  template <Expression X>
  Var<T, X::rank> forward(const X& input, const Var<T, X::rank>& h = {}) {
    return Base::template unbatched<X::rank>(this->step(input, h, Var<T, X::rank>()).h_n);
  }
};

// (h', c') from (h, c).
template <class T = float>
class LSTMCell : public detail::CellBase<LSTMCell<T>, T> {
  using Base = detail::CellBase<LSTMCell<T>, T>;

 public:
  LSTMCell() = default;
  LSTMCell(index_t input_size, index_t hidden_size, bool bias = true, Device device = kCPU)
      : Base(rnn::Mode::LSTM, input_size, hidden_size, bias, device) {}
  template <Expression X>
  std::pair<Var<T, X::rank>, Var<T, X::rank>> forward(const X& input, const Var<T, X::rank>& h = {},
                                                      const Var<T, X::rank>& c = {}) {
    auto r = this->step(input, h, c);
    return {Base::template unbatched<X::rank>(r.h_n), Base::template unbatched<X::rank>(r.c_n)};
  }
};

template <class T = float>
class GRUCell : public detail::CellBase<GRUCell<T>, T> {
  using Base = detail::CellBase<GRUCell<T>, T>;

 public:
  GRUCell() = default;
  GRUCell(index_t input_size, index_t hidden_size, bool bias = true, Device device = kCPU)
      : Base(rnn::Mode::GRU, input_size, hidden_size, bias, device) {}
  template <Expression X>
  Var<T, X::rank> forward(const X& input, const Var<T, X::rank>& h = {}) {
    return Base::template unbatched<X::rank>(this->step(input, h, Var<T, X::rank>()).h_n);
  }
};

}  // namespace ft::inline FT_ABI::nn
