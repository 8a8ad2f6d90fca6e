// Autograd (issue #4): forward + backward of 10-op elementwise statements on 2^24 floats,
//
//   exp_family:      y = sigmoid(x·w + x)·w − exp(0.5·x) + 2·(w·x)
//   transcendental:  y = tanh(x·w + sin(x))·sigmoid(w) − exp(0.5·x) + w (the costlier ops)
//
// then y.backward(seed),
// written as one statement (one tape node; backward is one multi-output kernel) against the
// same written as 10 statements (one node an op, every intermediate kept: PyTorch's eager
// tape), and, when LibTorch is found, against LibTorch on the CPU (bench_autograd_torch.cpp).
// On the CPU `transcendental` saves its derivatives at the forward (autograd/saved_derivatives.hpp,
// the default there); `fused_recompute` is the same statement with the backward recomputing
// its forward instead (StatementDerivatives::recompute: less memory).
//
// Counters: launches_per_iter, extra_MB (the peak allocated during one forward + backward
// beyond the leaves and the seed; the two gradients and any saved derivatives are part of it), bytes/s of the logical
// traffic (forward: 2 reads + 1 write; backward: a seed read + 2 leaves read + 1 gradient
// written, per leaf) and of_copy_bw against the copy bandwidth measured in the same run.
#include <string>

#include "bench_common.hpp"

namespace {

using namespace ft::bench;

constexpr index_t kN = index_t(1) << 24;
constexpr double kBytes = (3.0 + 2 * 4.0) * kN * 4;

struct Leaves {
  ft::Var<float, 1> x, w;
  ft::Tensor<float, 1> seed;
};
Leaves& leaves(ft::Device dev) {
  static Leaves l[2];
  auto& s = l[dev.is_cuda() ? 1 : 0];
  if (!s.seed.defined()) {
    s.x = ft::Var<float, 1>(ft::uniform<float>({kN}, -1.f, 1.f, dev, 1), ft::requires_grad);
    s.w = ft::Var<float, 1>(ft::uniform<float>({kN}, -1.f, 1.f, dev, 2), ft::requires_grad);
    s.seed = ft::ones<float>({kN}, dev);
  }
  return s;
}

void fused(Leaves& l) {
  const auto& x = l.x;
  const auto& w = l.w;
  ft::Var<float, 1> y = ft::tanh(x * w + ft::sin(x)) * ft::sigmoid(w) - ft::exp(x * 0.5f) + w;
  y.backward(l.seed);
}

void fused_recompute(Leaves& l) {
  const auto was = ft::autograd::set_statement_derivatives(ft::autograd::StatementDerivatives::recompute);
  fused(l);
  ft::autograd::set_statement_derivatives(was);
}

void op_by_op(Leaves& l) {
  using V = ft::Var<float, 1>;
  const auto& x = l.x;
  const auto& w = l.w;
  V a = x * w;
  V b = ft::sin(x);
  V c = a + b;
  V d = ft::tanh(c);
  V e = ft::sigmoid(w);
  V f = d * e;
  V h = x * 0.5f;
  V i = ft::exp(h);
  V j = f - i;
  V y = j + w;
  y.backward(l.seed);
}

void fused_exp(Leaves& l) {
  const auto& x = l.x;
  const auto& w = l.w;
  ft::Var<float, 1> y = ft::sigmoid(x * w + x) * w - ft::exp(x * 0.5f) + (w * x) * 2.0f;
  y.backward(l.seed);
}

void op_by_op_exp(Leaves& l) {
  using V = ft::Var<float, 1>;
  const auto& x = l.x;
  const auto& w = l.w;
  V a = x * w;
  V b = a + x;
  V c = ft::sigmoid(b);
  V d = c * w;
  V h = x * 0.5f;
  V i = ft::exp(h);
  V j = d - i;
  V k = w * x;
  V m = k * 2.0f;
  V y = j + m;
  y.backward(l.seed);
}

template <void (*Body)(Leaves&)>
void BM_fwd_bwd(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  auto& l = leaves(dev);
  auto body = [&] {
    l.x.zero_grad();
    l.w.zero_grad();
    Body(l);
  };
  body();
  if (dev.is_cuda()) ft::cuda::synchronize();
  ft::stats::reset();
  const auto before = ft::stats::bytes_in_use(dev);
  body();
  if (dev.is_cuda()) ft::cuda::synchronize();
  const double extra = static_cast<double>(ft::stats::peak_bytes(dev) - before);
  timed_loop(state, dev, kBytes, body);
  state.counters["extra_MB"] = extra / (1 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<int> devs{0};
  if (ft::cuda::is_available()) devs.push_back(1);
  for (int d : devs) {
    g_copy_bw[d] = measure_copy_bw(d ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU));
    std::printf("copy bandwidth on %s: %.1f GB/s (read + written)\n", d ? "cuda:0" : "cpu", g_copy_bw[d] / 1e9);
    const std::string dn = d ? "gpu" : "cpu";
    using Bench = void (*)(benchmark::State&);
    const std::pair<const char*, Bench> benches[] = {
        {"/fwd_bwd_10op/exp_family/fused_statement", BM_fwd_bwd<fused_exp>},
        {"/fwd_bwd_10op/exp_family/op_by_op", BM_fwd_bwd<op_by_op_exp>},
        {"/fwd_bwd_10op/transcendental/fused_statement", BM_fwd_bwd<fused>},
        {"/fwd_bwd_10op/transcendental/fused_recompute", BM_fwd_bwd<fused_recompute>},
        {"/fwd_bwd_10op/transcendental/op_by_op", BM_fwd_bwd<op_by_op>}};
    for (auto [name, fn] : benches) {
      auto* b = benchmark::RegisterBenchmark((dn + name).c_str(), fn)->Args({d})->Unit(benchmark::kMillisecond);
      if (d)
        b->UseManualTime();
      else
        b->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
