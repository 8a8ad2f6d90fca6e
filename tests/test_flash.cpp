// scaled_dot_product_attention's fused kernels (ft/linalg/flash.hpp) against the composed path
// (matmul, softmax, matmul: tests/test_attention.cpp checks that one and the fused one against
// PyTorch): outputs and gradients for ranks 2 to 4, several query and key blocks, bool, float and
// broadcast masks, causal with L ≠ S, dropout (the same entries as nn::functional::dropout), views
// read in place, double and bfloat16; the launches of each pass; the memory of L = S = 4096 (O(L·E),
// not O(L·S)); bad masks. On the CPU both the blocked kernel and the row kernels (the GPU's
// algorithm, testing::row_kernels) run; the nvcc copy runs the row kernels on each GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "common.hpp"
#include "ft/nn.hpp"
#include "ft/nn/attention.hpp"

namespace flash_tests {

using namespace ft;
using ft::test::check_close;
using ft::test::devices;
using ft::test::to_double;

// The row kernels on the CPU while alive.
struct RowKernels {
  explicit RowKernels(bool on) : saved(linalg::flash::testing::row_kernels.exchange(on)) {}
  ~RowKernels() { linalg::flash::testing::row_kernels = saved; }
  bool saved;
};

// Sets for a scope whether attention on a GPU calls cuDNN's fused attention (set_cudnn_sdpa).
struct CudnnSdpa {
  explicit CudnnSdpa(bool on) : saved(cudnn_sdpa_enabled()) { set_cudnn_sdpa(on); }
  ~CudnnSdpa() { set_cudnn_sdpa(saved); }
  bool saved;
};

// The CPU twice (blocked, then the row kernels), then each GPU.
std::vector<std::pair<Device, bool>> paths() {
  std::vector<std::pair<Device, bool>> r{{kCPU, false}, {kCPU, true}};
  for (Device d : devices())
    if (d.is_cuda()) r.emplace_back(d, true);
  return r;
}

template <int R>
Tensor<float, R> normal(const Shape<R>& s, std::uint64_t seed, Device dev) {
  return randn<float>({s.numel()}, dev, seed).reshape(s);
}
template <class T, int R>
Var<T, R> leaf(const Shape<R>& s, std::uint64_t seed, Device dev) {
  return Var<T, R>(Tensor<T, R>(cast<T>(normal(s, seed, dev))), requires_grad);
}

// Forward and backward (Σ out·r) of the fused and the composed attention on fresh leaves of the
// same values: outputs and the three gradients agree.
template <class T, int R, class Make>
void compare(const std::string& name, Shape<R> qs, Shape<R> ks, Shape<R> vs, Device dev, Make&& make,
             double rtol = 1e-4, double atol = 1e-5) {
  INFO(name << " on " << dev);
  Shape<R> os = qs;
  os[R - 1] = vs[R - 1];
  const Tensor<T, R> r(cast<T>(normal(os, 99, dev)));
  std::vector<double> got[4], want[4];
  for (int fused = 0; fused < 2; ++fused) {
    Var<T, R> q = leaf<T>(qs, 1, dev), k = leaf<T>(ks, 2, dev), v = leaf<T>(vs, 3, dev);
    Var<T, R> out = make(q, k, v, fused == 1);
    Var<T, 0> loss = sum(out * r);
    loss.backward();
    auto& dst = fused ? got : want;
    dst[0] = to_double(out.value()), dst[1] = to_double(q.grad()), dst[2] = to_double(k.grad());
    dst[3] = to_double(v.grad());
  }
  const char* what[] = {"output", "grad q", "grad k", "grad v"};
  for (int i = 0; i < 4; ++i) {
    INFO(what[i]);
    check_close(got[i], want[i], rtol, atol);
  }
}

// scaled_dot_product_attention (fused) or attention::composed on the same arguments.
template <class T, int R, class M = NoMask>
Var<T, R> sdpa(bool fused, const Var<T, R>& q, const Var<T, R>& k, const Var<T, R>& v, const M& mask = {},
               const SdpaOptions& o = {}) {
  if (fused) return scaled_dot_product_attention(q, k, v, mask, o);
  const double scale = o.scale ? *o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(R - 1)));
  return attention::composed(q, k, v, mask, scale, o);
}

TEST_CASE("fused attention equals the composed one: blocks, masks, causal, dropout, views, double") {
  for (auto [dev, rows] : paths()) {
    RowKernels use_rows(rows);
    INFO(std::string(rows ? "row kernels" : "blocked kernel"));
    // several query (64) and key (128) blocks, Ev ≠ E
    compare<float, 3>("blocks", {2, 70, 16}, {2, 150, 16}, {2, 150, 24}, dev,
                      [](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v); });
    compare<float, 2>("rank 2", {9, 5}, {11, 5}, {11, 3}, dev,
                      [](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v); });
    for (auto [L, S] : {std::pair<index_t, index_t>{33, 33}, {70, 20}, {20, 140}}) {
      compare<float, 4>("causal " + std::to_string(L) + "x" + std::to_string(S), {2, 3, L, 8}, {2, 3, S, 8},
                        {2, 3, S, 8}, dev,
                        [](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v, NoMask{}, {.is_causal = true}); });
    }
    // a bool mask [L, S] keeping about 70 % (every row keeps its diagonal key)
    const Tensor<bool, 2> keep = logical_or(rand<float>({40, 130}, dev, 5) < 0.7f,
                                            arange<std::int64_t>(0, 40, 1, dev).reshape(Shape<2>{40, 1}) ==
                                                arange<std::int64_t>(0, 130, 1, dev).reshape(Shape<2>{1, 130}));
    compare<float, 3>("bool mask", {3, 40, 8}, {3, 130, 8}, {3, 130, 8}, dev,
                      [&](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v, keep); });
    // a key-padding mask [N, 1, 1, S] broadcast over heads and queries
    const Tensor<bool, 4> padded = arange<std::int64_t>(0, 30, 1, dev).reshape(Shape<4>{1, 1, 1, 30}) <
                                   from_vector<std::int64_t>({30, 17}, {2, 1, 1, 1}).to(dev);
    compare<float, 4>("padding mask", {2, 3, 12, 8}, {2, 3, 30, 8}, {2, 3, 30, 8}, dev,
                      [&](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v, padded); });
    // a float mask of the scores' full shape, and a scale
    const Tensor<float, 4> add = randn<float>({2, 2, 10, 20}, dev, 6);
    compare<float, 4>("float mask", {2, 2, 10, 8}, {2, 2, 20, 8}, {2, 2, 20, 4}, dev,
                      [&](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v, add, {.scale = 0.3}); });
    // dropout: the same seed drops the same probabilities on both paths
    compare<float, 3>("dropout", {2, 70, 8}, {2, 140, 8}, {2, 140, 8}, dev, [](auto q, auto k, auto v, bool f) {
      return sdpa(f, q, k, v, NoMask{}, {.dropout_p = 0.3, .seed = 7});
    });
    // a head split read in place: [N, L, H, d] → [N, H, L, d], and its output laid out as q
    compare<float, 4>(
        "head split view", {2, 3, 20, 8}, {2, 3, 20, 8}, {2, 3, 20, 8}, dev, [](auto q, auto k, auto v, bool f) {
          auto split = [](const Var<float, 4>& x) { return x.reshape({2, 20, 3, 8}).permute({0, 2, 1, 3}); };
          return sdpa(f, split(q), split(k), split(v));
        });
    compare<double, 3>(
        "double", {2, 70, 16}, {2, 150, 16}, {2, 150, 16}, dev,
        [](auto q, auto k, auto v, bool f) { return sdpa(f, q, k, v); }, 1e-10, 1e-12);
  }
}

TEST_CASE("fused attention: a query whose every key is masked gets NaN, as PyTorch 1.13; the others are exact") {
  for (auto [dev, rows] : paths()) {
    RowKernels use_rows(rows);
    const Tensor<float, 3> q = randn<float>({1, 4, 8}, dev, 1), k = randn<float>({1, 6, 8}, dev, 2),
                           v = randn<float>({1, 6, 8}, dev, 3);
    Tensor<bool, 2> keep = ones<bool>({4, 6}, dev);
    keep.select(0, 2) = false;
    const Tensor<float, 3> got = scaled_dot_product_attention(q, k, v, keep).value();
    const Tensor<float, 3> want =
        attention::composed(Var<float, 3>(q), Var<float, 3>(k), Var<float, 3>(v), keep, 1 / std::sqrt(8.0), {}).value();
    check_close(to_double(got), to_double(want));
    CHECK(std::isnan(got.to(kCPU).data()[2 * 8]));
  }
}

TEST_CASE("fused attention: one launch forward; the backward one on the CPU, two on a GPU, plus Σ dout·o") {
  for (auto [dev, rows] : paths()) {
    RowKernels use_rows(rows);
    INFO(dev << (rows ? " row kernels" : " blocked"));
    Var<float, 3> q = leaf<float>(Shape<3>{2, 70, 16}, 1, dev), k = leaf<float>(Shape<3>{2, 90, 16}, 2, dev),
                  v = leaf<float>(Shape<3>{2, 90, 16}, 3, dev);
    const Tensor<float, 3> g = ones<float>({2, 70, 16}, dev);
    stats::reset();
    Var<float, 3> out = scaled_dot_product_attention(q, k, v);
    CHECK(stats::launches(dev) == 1);
    stats::reset();
    out.backward(g);
    // Σ dout·o, the kernel(s); each fresh gradient is the kernel's output (no copy)
    CHECK(stats::launches(dev) == (rows ? 3 : 2));
  }
}

TEST_CASE("fused attention: L = S = 4096, E = 64 forward and backward hold O(L·E) memory, not the 64 MiB of scores") {
  const index_t L = 4096, E = 64;
  for (Device dev : devices()) {
    INFO(dev);
    Var<float, 2> q = leaf<float>(Shape<2>{L, E}, 1, dev), k = leaf<float>(Shape<2>{L, E}, 2, dev),
                  v = leaf<float>(Shape<2>{L, E}, 3, dev);
    const Tensor<float, 2> g = randn<float>({L, E}, dev, 4);
    stats::reset();
    const std::int64_t before = stats::bytes_in_use(dev);
    {
      Var<float, 2> out = scaled_dot_product_attention(q, k, v, NoMask{}, {.is_causal = true});
      out.backward(g);
    }
    const std::int64_t peak = stats::peak_bytes(dev) - before, scores = L * L * std::int64_t(sizeof(float));
    MESSAGE("peak " << peak / 1024 << " KiB above the inputs; the scores alone would be " << scores / 1024 << " KiB");
    // out, lse, delta, dq, dk, dv and the per-thread blocks: ~6 L·E floats, 16 L·E at most
    CHECK(peak <= 16 * L * E * std::int64_t(sizeof(float)));
    // and query 0 sees key 0 only (causal): P = 1, so dq₀ = 0 (up to the rounding of Σ dout·o)
    CHECK(Tensor<float, 0>(max(abs(q.grad().select(0, 0)))).item() <= 1e-5f);
  }
}

TEST_CASE("fused attention in bfloat16 computes in float: as float attention of the rounded inputs") {
  const CudnnSdpa fused(false);  // the library's kernels on a GPU too
  for (auto [dev, rows] : paths()) {
    RowKernels use_rows(rows);
    const Tensor<bfloat16, 3> q(cast<bfloat16>(randn<float>({2, 30, 16}, dev, 1))),
        k(cast<bfloat16>(randn<float>({2, 50, 16}, dev, 2))), v(cast<bfloat16>(randn<float>({2, 50, 16}, dev, 3)));
    Var<bfloat16, 3> qv(q, requires_grad);
    const Var<bfloat16, 3> out = scaled_dot_product_attention(qv, k, v, NoMask{}, {.is_causal = true});
    Var<float, 3> qf(Tensor<float, 3>(cast<float>(q)), requires_grad);
    const Var<float, 3> ref =
        scaled_dot_product_attention(qf, cast<float>(k), cast<float>(v), NoMask{}, {.is_causal = true});
    check_close(to_double(out.value()), to_double(Tensor<bfloat16, 3>(cast<bfloat16>(ref.value()))), 1e-2, 1e-2);
    Var<bfloat16, 0> l1 = sum(out);
    Var<float, 0> l2 = sum(ref);
    l1.backward();
    l2.backward();
    check_close(to_double(qv.grad()), to_double(qf.grad()), 2e-2, 2e-2);
  }
}

// cuDNN's fused attention (on) against the library's kernels (off), through compare(): the
// switch is read when the node is made, so the backward follows the forward's choice.
template <class T, int R, class Make>
void cudnn_vs_kernels(const std::string& name, Shape<R> qs, Shape<R> ks, Shape<R> vs, Device dev, Make&& make,
                      double tol) {
  compare<T, R>(
      name, qs, ks, vs, dev,
      [&](auto q, auto k, auto v, bool on) {
        const CudnnSdpa use(on);
        return make(q, k, v);
      },
      tol, tol);
}

template <class T>
void cudnn_cases(Device dev, double tol) {
  auto plain = [](auto q, auto k, auto v) { return scaled_dot_product_attention(q, k, v); };
  cudnn_vs_kernels<T, 4>("heads", {2, 3, 64, 64}, {2, 3, 64, 64}, {2, 3, 64, 64}, dev, plain, tol);
  cudnn_vs_kernels<T, 3>("rank 3, L ≠ S", {4, 50, 32}, {4, 90, 32}, {4, 90, 32}, dev, plain, tol);
  for (auto [L, S] : {std::pair<index_t, index_t>{70, 70}, {40, 90}})
    cudnn_vs_kernels<T, 4>(
        "causal " + std::to_string(L) + "x" + std::to_string(S), {2, 2, L, 64}, {2, 2, S, 64}, {2, 2, S, 64}, dev,
        [](auto q, auto k, auto v) { return scaled_dot_product_attention(q, k, v, NoMask{}, {.is_causal = true}); },
        tol);
  // additive masks of T: [L, S] for every batch and head, [N, 1, L, S] per sequence; a scale
  const Tensor<T, 2> add(cast<T>(normal(Shape<2>{30, 40}, 5, dev)));
  cudnn_vs_kernels<T, 4>(
      "mask [L, S]", {2, 2, 30, 64}, {2, 2, 40, 64}, {2, 2, 40, 64}, dev,
      [&](auto q, auto k, auto v) { return scaled_dot_product_attention(q, k, v, add); }, tol);
  const Tensor<T, 4> per_sequence(cast<T>(normal(Shape<4>{2, 1, 30, 40}, 6, dev)));
  cudnn_vs_kernels<T, 4>(
      "mask [N, 1, L, S], scale", {2, 2, 30, 64}, {2, 2, 40, 64}, {2, 2, 40, 64}, dev,
      [&](auto q, auto k, auto v) { return scaled_dot_product_attention(q, k, v, per_sequence, {.scale = 0.2}); }, tol);
  // a head split read in place: [N, L, H, d] → [N, H, L, d]; the output laid out as q
  cudnn_vs_kernels<T, 4>(
      "head split view", {2, 4, 48, 64}, {2, 4, 48, 64}, {2, 4, 48, 64}, dev,
      [](auto q, auto k, auto v) {
        auto split = [](const Var<T, 4>& x) { return x.reshape({2, 48, 4, 64}).permute({0, 2, 1, 3}); };
        return scaled_dot_product_attention(split(q), split(k), split(v));
      },
      tol);
}

FT_GPU_TEST_CASE("cuDNN's fused attention in half and bfloat16 equals the library's kernels; one launch each way") {
  for (Device dev : devices()) {
    if (dev.is_cpu()) continue;
    cudnn_cases<ft::half>(dev, 2e-2);
    cudnn_cases<ft::bfloat16>(dev, 5e-2);
    // cuDNN's path is one execution forward and one backward (dq, dk, dv together); the
    // library's kernels take more (in half: the casts to float and back, Σ dout·o, two kernels)
    auto launches = [&](auto make) {
      Var<ft::half, 4> q = leaf<ft::half>(Shape<4>{2, 3, 64, 64}, 1, dev),
                       k = leaf<ft::half>(Shape<4>{2, 3, 64, 64}, 2, dev),
                       v = leaf<ft::half>(Shape<4>{2, 3, 64, 64}, 3, dev);
      const Tensor<ft::half, 4> g = ones<ft::half>({2, 3, 64, 64}, dev);
      stats::reset();
      Var<ft::half, 4> out = make(q, k, v);
      const auto forward = stats::launches(dev);
      stats::reset();
      out.backward(g);
      return std::pair(forward, stats::launches(dev));
    };
    auto plain = [](auto q, auto k, auto v) { return scaled_dot_product_attention(q, k, v); };
    CHECK(launches(plain) == std::pair<std::int64_t, std::int64_t>(1, 1));
    // dropout keeps the library's kernels (their masks are the seed's), as set_cudnn_sdpa(false) does
    auto dropped = [](auto q, auto k, auto v) {
      return scaled_dot_product_attention(q, k, v, NoMask{}, {.dropout_p = 0.1, .seed = 3});
    };
    CHECK(launches(dropped).second > 1);
    const CudnnSdpa off(false);
    CHECK(launches(plain).second > 1);
  }
}

TEST_CASE("fused attention: a mask that does not broadcast to the scores is an ft::Error naming the shapes") {
  const Tensor<float, 3> q = randn<float>({2, 4, 8}), k = randn<float>({2, 6, 8});
  const Tensor<bool, 2> bad = ones<bool>({4, 5});
  try {
    scaled_dot_product_attention(q, k, k, bad);
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("scaled_dot_product_attention") != std::string::npos);
    CHECK(msg.find("[4, 5]") != std::string::npos);
    CHECK(msg.find("[2, 4, 6]") != std::string::npos);
  }
}

}  // namespace flash_tests
