// nn / optim: one training step (zero_grad, forward, cross_entropy, backward, Adam step) of
//
//   mlp_step:   784-1024-1024-10 MLP with ReLU, batch 256 (ft_autocast: its GEMMs under
//               ft::autocast, bfloat16 on the CPU / float16 on a GPU; on a GPU also
//               ft_autocast_bf16 and ft_tf32, float with TF32 GEMMs);
//   lenet_step: LeNet-5 style CNN on 1×28×28, batch 128 (conv 1→6 k5 pad 2, ReLU, max-pool 2,
//               conv 6→16 k5, ReLU, max-pool 2, flatten, 400→120, ReLU, 120→84, ReLU, 84→10);
//
//   mlp_blocks_step: two pre-norm transformer MLP blocks with residuals,
//               x + fc2(gelu(fc1(layer_norm(x)))), d 256, hidden 1024, 2048 tokens, MSE loss
//               against a fixed target, AdamW (lr 1e-3, weight decay 0.01): the fusion-heavy
//               case (layer_norm, GELU, bias and residual around every GEMM);
//
//   lstm_step:  a 2-layer LSTM, input and hidden 256, batch 32, 64 time steps, MSE of its
//               output against a fixed target (ft::nn::LSTM: per step one GEMM and one fused
//               cell kernel, forward and backward); lstm_packed_step: the same batch with
//               lengths 64 − (13·b mod 48) (17 … 64, unsorted), packed, the output padded back;
//               on a GPU a layer is one cuDNN call, and ft_fused runs the fused steps instead;
//   encoder_step: a TransformerEncoderLayer (d 256, 4 heads, feed-forward 1024, dropout 0,
//               batch-first), batch 8 of 512 tokens, MSE against a fixed target;
//
// and adam_100: the Adam step alone over 100 float tensors of mixed sizes (10M values in all,
// gradients preset). Adam lr 1e-3 everywhere. When configured with -DFT_BENCH_LIBTORCH=ON the
// same three run in LibTorch in this binary (bench_nn_torch.cpp), at as many threads as OpenMP.
//
// Counters: launches_per_iter (ft::stats::launches), peak_MB (the most bytes the case held
// during one step: parameters, gradients, Adam state, the batch, activations, and scratch it
// created; bytes live before the case was built are not counted), extra_MB (the part of the
// peak beyond what was live just before the step), fwd_ms / bwd_ms / opt_ms (medians of the
// three phases timed apart) with their launches, items_per_second (samples; adam_100: values)
// and, for adam_100, bytes/s of its logical traffic (param, grad, exp_avg, exp_avg_sq read;
// param, exp_avg, exp_avg_sq written).
//
// `bench_nn --peak_rss` instead runs each case (ft and LibTorch) in a child process of its own
// and prints the growth of its resident set over a few steps (getrusage/VmHWM): the one peak
// memory figure that LibTorch on the CPU gives and that compares like with like.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "ft/nn/attention.hpp"
#include "ft/nn/layers.hpp"
#include "ft/nn/loss.hpp"
#include "ft/nn/recurrent.hpp"
#include "ft/optim/adam.hpp"
#include "ft/optim/sgd.hpp"

#if FT_BENCH_HAVE_LIBTORCH
// Defined in bench_nn_torch.cpp (C++17, LibTorch's headers).
namespace ft_bench_torch {
void register_benches(int threads);
bool run_rss_case(const std::string& name, int steps);
}  // namespace ft_bench_torch
#endif

extern char** environ;

namespace {

using namespace ft::bench;
using ft::nn::Conv2d;
using ft::nn::Flatten;
using ft::nn::Linear;
using ft::nn::MaxPool2d;
using ft::nn::ReLU;

constexpr index_t kMlpBatch = 256, kLenetBatch = 128;

// The 100 tensors of adam_100: 25 times (512, 4096, 65536, 329856) values, 10'000'000 in all
// (biases, small and large weight matrices interleaved). bench/torch_nn.py uses the same list.
std::vector<index_t> adam_sizes() {
  std::vector<index_t> s;
  for (int i = 0; i < 25; ++i) s.insert(s.end(), {512, 4096, 65536, 329856});
  return s;
}
constexpr double kAdamValues = 10'000'000;
constexpr double kAdamBytes = 7.0 * 4 * kAdamValues;  // 4 arrays read, 3 written

using Mlp = ft::nn::Sequential<Linear<float>, ReLU, Linear<float>, ReLU, Linear<float>>;
Mlp make_mlp(ft::Device dev) {
  return Mlp(Linear<float>(784, 1024, true, dev), ReLU(), Linear<float>(1024, 1024, true, dev), ReLU(),
             Linear<float>(1024, 10, true, dev));
}

using Lenet = ft::nn::Sequential<Conv2d<float>, ReLU, MaxPool2d, Conv2d<float>, ReLU, MaxPool2d, Flatten, Linear<float>,
                                 ReLU, Linear<float>, ReLU, Linear<float>>;
Lenet make_lenet(ft::Device dev) {
  return Lenet(Conv2d<float>(1, 6, 5, {.padding = 2}, true, dev), ReLU(), MaxPool2d(2),
               Conv2d<float>(6, 16, 5, {}, true, dev), ReLU(), MaxPool2d(2), Flatten(),
               Linear<float>(400, 120, true, dev), ReLU(), Linear<float>(120, 84, true, dev), ReLU(),
               Linear<float>(84, 10, true, dev));
}

ft::Tensor<std::int64_t, 1> class_targets(index_t n, ft::Device dev) {
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = (i * 7) % 10;
  return ft::from_vector(y, {n}, dev);
}

// A model, its optimizer, one batch: the three phases of a step, callable apart.
struct CrossEntropy {
  template <class Out, class Y>
  ft::Var<float, 0> operator()(const Out& out, const Y& y) const {
    return ft::nn::functional::cross_entropy(out, y);
  }
};
struct Mse {
  template <class Out, class Y>
  ft::Var<float, 0> operator()(const Out& out, const Y& y) const {
    return ft::nn::functional::mse_loss(out, y);
  }
};

template <class Net, class X, class Y, class Loss = CrossEntropy, class Opt = ft::optim::Adam>
struct Trainer {
  Net net;
  Opt opt;
  X x;
  Y y;
  ft::Var<float, 0> loss;

  Trainer(Net n, X x_, Y y_)
      : net(std::move(n)), opt(net.parameters(), {.lr = 1e-3}), x(std::move(x_)), y(std::move(y_)) {}
  void forward() {
    opt.zero_grad();
    loss = Loss{}(net.forward(x), y);
  }
  void backward() { loss.backward(); }
  void update() {
    opt.step();
    loss = ft::Var<float, 0>();  // as a loop body's local: the step's graph goes here
  }
  void step() {
    forward();
    backward();
    update();
  }
};

// A pre-norm transformer MLP block: x + fc2(gelu(fc1(layer_norm(x)))).
struct MlpBlock : ft::nn::Module<MlpBlock> {
  ft::nn::LayerNorm<float> ln;
  Linear<float> fc1, fc2;
  MlpBlock(index_t d, index_t hidden, ft::Device dev)
      : ln(d, 1e-5, true, true, dev), fc1(d, hidden, true, dev), fc2(hidden, d, true, dev) {}
  template <class V>
  void visit(V&& v) {
    v("ln", ln);
    v("fc1", fc1);
    v("fc2", fc2);
  }
  template <class In>
  ft::Var<float, 2> forward(const In& x) {
    return ft::Var<float, 2>(x + fc2(ft::gelu(fc1(ln(x)))));
  }
};
constexpr index_t kBlockTokens = 2048, kBlockDim = 256, kBlockHidden = 1024;
using Blocks = ft::nn::Sequential<MlpBlock, MlpBlock>;

auto mlp_trainer(ft::Device dev) {
  ft::manual_seed(1);
  return Trainer<Mlp, ft::Tensor<float, 2>, ft::Tensor<std::int64_t, 1>>(
      make_mlp(dev), ft::randn<float>({kMlpBatch, 784}, dev, 2), class_targets(kMlpBatch, dev));
}
auto lenet_trainer(ft::Device dev) {
  ft::manual_seed(1);
  return Trainer<Lenet, ft::Tensor<float, 4>, ft::Tensor<std::int64_t, 1>>(
      make_lenet(dev), ft::randn<float>({kLenetBatch, 1, 28, 28}, dev, 2), class_targets(kLenetBatch, dev));
}
auto blocks_trainer(ft::Device dev) {
  ft::manual_seed(1);
  Blocks net(MlpBlock(kBlockDim, kBlockHidden, dev), MlpBlock(kBlockDim, kBlockHidden, dev));
  return Trainer<Blocks, ft::Tensor<float, 2>, ft::Tensor<float, 2>, Mse, ft::optim::AdamW>(
      std::move(net), ft::randn<float>({kBlockTokens, kBlockDim}, dev, 2),
      ft::randn<float>({kBlockTokens, kBlockDim}, dev, 3));
}

// lstm_step's model: the LSTM's output sequence.
constexpr index_t kLstmSize = 256, kLstmBatch = 32, kLstmSteps = 64;
struct LstmNet : ft::nn::Module<LstmNet> {
  ft::nn::LSTM<float> lstm;
  explicit LstmNet(ft::Device dev) : lstm(kLstmSize, kLstmSize, {.num_layers = 2}, dev) {}
  template <class V>
  void visit(V&& v) {
    v("lstm", lstm);
  }
  template <class In>
  ft::Var<float, 3> forward(const In& x) {
    return lstm(x).output;
  }
};
// lengths 64 − (13·b mod 48) of the 32 sequences: 17 … 64 steps, unsorted (bench_nn_torch.cpp too)
std::vector<std::int64_t> lstm_lengths() {
  std::vector<std::int64_t> len;
  for (std::int64_t b = 0; b < kLstmBatch; ++b) len.push_back(kLstmSteps - (13 * b) % 48);
  return len;
}
// lstm_packed_step's model: the batch packed, the LSTM, the output padded back.
struct LstmPackedNet : ft::nn::Module<LstmPackedNet> {
  ft::nn::LSTM<float> lstm;
  std::vector<std::int64_t> lengths = lstm_lengths();
  explicit LstmPackedNet(ft::Device dev) : lstm(kLstmSize, kLstmSize, {.num_layers = 2}, dev) {}
  template <class V>
  void visit(V&& v) {
    v("lstm", lstm);
  }
  template <class In>
  ft::Var<float, 3> forward(const In& x) {
    auto out = lstm(ft::nn::pack_padded_sequence(x, lengths, false, false)).output;
    return ft::nn::pad_packed_sequence(out).output;
  }
};
auto lstm_packed_trainer(ft::Device dev) {
  ft::manual_seed(1);
  return Trainer<LstmPackedNet, ft::Tensor<float, 3>, ft::Tensor<float, 3>, Mse>(
      LstmPackedNet(dev), ft::randn<float>({kLstmSteps, kLstmBatch, kLstmSize}, dev, 2),
      ft::randn<float>({kLstmSteps, kLstmBatch, kLstmSize}, dev, 3));
}
// encoder_step's model: one TransformerEncoderLayer.
constexpr index_t kEncDim = 256, kEncHeads = 4, kEncFf = 1024, kEncBatch = 8, kEncTokens = 512;
struct EncoderNet : ft::nn::Module<EncoderNet> {
  ft::nn::TransformerEncoderLayer<float> layer;
  explicit EncoderNet(ft::Device dev)
      : layer(kEncDim, kEncHeads, {.dim_feedforward = kEncFf, .dropout = 0.0, .batch_first = true}, dev) {}
  template <class V>
  void visit(V&& v) {
    v("layer", layer);
  }
  template <class In>
  ft::Var<float, 3> forward(const In& x) {
    return layer(x);
  }
};
auto encoder_trainer(ft::Device dev) {
  ft::manual_seed(1);
  return Trainer<EncoderNet, ft::Tensor<float, 3>, ft::Tensor<float, 3>, Mse>(
      EncoderNet(dev), ft::randn<float>({kEncBatch, kEncTokens, kEncDim}, dev, 2),
      ft::randn<float>({kEncBatch, kEncTokens, kEncDim}, dev, 3));
}
auto lstm_trainer(ft::Device dev) {
  ft::manual_seed(1);
  return Trainer<LstmNet, ft::Tensor<float, 3>, ft::Tensor<float, 3>, Mse>(
      LstmNet(dev), ft::randn<float>({kLstmSteps, kLstmBatch, kLstmSize}, dev, 2),
      ft::randn<float>({kLstmSteps, kLstmBatch, kLstmSize}, dev, 3));
}

// The adam_100 case: the parameters with their gradients set (a leaf's backward(seed) stores
// the seed as its gradient), and the optimizer. No zero_grad: every step reuses them.
struct AdamCase {
  std::vector<ft::Var<float, 1>> params;
  ft::optim::Adam opt;
  static ft::nn::ParameterList make(std::vector<ft::Var<float, 1>>& params, ft::Device dev) {
    ft::nn::ParameterList list;
    std::uint64_t seed = 10;
    for (index_t n : adam_sizes()) {
      params.emplace_back(ft::randn<float>({n}, dev, seed++), ft::requires_grad);
      params.back().backward(ft::randn<float>({n}, dev, seed++));
      list.push_back(ft::nn::Parameter(params.back()));
    }
    return list;
  }
  explicit AdamCase(ft::Device dev) : opt(make(params, dev), {.lr = 1e-3}) {}
  void forward() {}
  void backward() {}
  void update() { opt.step(); }
  void step() { update(); }
};

#if FT_CUDA_ENABLED
// The MLP step with SGD + momentum, eagerly (arg 0) and replayed as a CUDA graph (arg 1): what
// the graph saves in launch overhead (Adam is not used here: its bias corrections come from the
// host each step, so its step cannot be captured). GPU only.
void BM_mlp_sgd_step(benchmark::State& state) {
  const bool graph = state.range(0) != 0;
  const ft::Device dev = ft::kCUDA;
  ft::manual_seed(1);
  Mlp net = make_mlp(dev);
  ft::optim::SGD opt(net.parameters(), {.lr = 1e-3, .momentum = 0.9});
  auto x = ft::randn<float>({kMlpBatch, 784}, dev, 2);
  auto y = class_targets(kMlpBatch, dev);
  ft::Var<float, 0> loss;
  auto step = [&] {
    opt.zero_grad();
    loss = ft::nn::functional::cross_entropy(net.forward(x), y);
    loss.backward();
    opt.step();
  };
  step();  // warm-up: the momentum buffers, cuBLAS's workspace
  ft::cuda::Graph replay;
  if (graph) replay.capture(dev, step);
  timed_loop(state, dev, 0, [&] {
    if (graph)
      replay.replay();
    else
      step();
  });
  state.SetItemsProcessed(state.iterations() * kMlpBatch);
}
#endif

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// fwd_ms, bwd_ms, opt_ms: each phase timed apart (synchronised on a GPU), medians of 7 steps.
template <class C>
void phase_counters(benchmark::State& state, C& c, ft::Device dev) {
  auto now = [dev] {
    if (dev.is_cuda()) ft::cuda::synchronize();
    return std::chrono::steady_clock::now();
  };
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  std::vector<double> f, b, o;
  std::int64_t launches[3] = {0, 0, 0};
  for (int r = 0; r < 7; ++r) {
    const auto l0 = ft::stats::launches(dev);
    auto t0 = now();
    c.forward();
    auto t1 = now();
    const auto l1 = ft::stats::launches(dev);
    c.backward();
    auto t2 = now();
    const auto l2 = ft::stats::launches(dev);
    c.update();
    auto t3 = now();
    f.push_back(ms(t0, t1));
    b.push_back(ms(t1, t2));
    o.push_back(ms(t2, t3));
    launches[0] = l1 - l0, launches[1] = l2 - l1, launches[2] = ft::stats::launches(dev) - l2;
  }
  state.counters["fwd_ms"] = median(f);
  state.counters["bwd_ms"] = median(b);
  state.counters["opt_ms"] = median(o);
  state.counters["fwd_launches"] = static_cast<double>(launches[0]);
  state.counters["bwd_launches"] = static_cast<double>(launches[1]);
  state.counters["opt_launches"] = static_cast<double>(launches[2]);
}

// One warm step (creates the Adam state), the peak of one measured step, the timed loop, the
// phases. `outside`: the bytes live before the case was built.
template <class C>
void run_case(benchmark::State& state, C& c, ft::Device dev, double items, double bytes, std::int64_t outside) {
  c.step();
  if (dev.is_cuda()) ft::cuda::synchronize();
  ft::stats::reset();
  const auto before = ft::stats::bytes_in_use(dev);
  c.step();
  if (dev.is_cuda()) ft::cuda::synchronize();
  const double peak = static_cast<double>(ft::stats::peak_bytes(dev));
  timed_loop(state, dev, bytes, [&] { c.step(); });
  state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * items));
  if (bytes == 0) {  // a model step's traffic has no single meaningful figure
    state.counters.erase("bytes_per_second");
    state.counters.erase("of_copy_bw");
  }
  state.counters["peak_MB"] = (peak - static_cast<double>(outside)) / (1 << 20);
  state.counters["extra_MB"] = (peak - static_cast<double>(before)) / (1 << 20);
  phase_counters(state, c, dev);
}

void BM_mlp_step(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = mlp_trainer(dev);
  run_case(state, c, dev, kMlpBatch, 0, outside);
}

// The MLP step with its GEMMs (forward and backward) under ft::autocast: bfloat16 on the CPU,
// float16 on a GPU, float accumulation (issue #17).
void BM_mlp_step_autocast(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = mlp_trainer(dev);
  ft::autocast guard(dev.type);
  run_case(state, c, dev, kMlpBatch, 0, outside);
}

// On a GPU also in bfloat16 (PyTorch's CUDA autocast default is float16), and in float with
// TF32 tensor-core GEMMs: the three ways a GPU user trains this MLP.
void BM_mlp_step_autocast_bf16(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = mlp_trainer(dev);
  ft::autocast guard(dev.type, ft::kBFloat16);
  run_case(state, c, dev, kMlpBatch, 0, outside);
}
void BM_mlp_step_tf32(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = mlp_trainer(dev);
  ft::set_allow_tf32(true);
  run_case(state, c, dev, kMlpBatch, 0, outside);
  ft::set_allow_tf32(false);
}

void BM_lenet_step(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = lenet_trainer(dev);
  run_case(state, c, dev, kLenetBatch, 0, outside);
}

void BM_lstm_step(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = lstm_trainer(dev);
  run_case(state, c, dev, kLstmBatch * kLstmSteps, 0, outside);
}

void BM_lstm_packed_step(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = lstm_packed_trainer(dev);
  double steps = 0;
  for (auto l : lstm_lengths()) steps += static_cast<double>(l);
  run_case(state, c, dev, steps, 0, outside);
}

// On a GPU, the two LSTM steps with cuDNN's RNN API switched off: the library's fused steps
// (one GEMM and one cell kernel a step) against cuDNN's (lstm_step/ft, lstm_packed_step/ft).
void BM_lstm_step_fused(benchmark::State& state) {
  ft::nn::set_cudnn_rnn(false);
  BM_lstm_step(state);
  ft::nn::set_cudnn_rnn(true);
}
void BM_lstm_packed_step_fused(benchmark::State& state) {
  ft::nn::set_cudnn_rnn(false);
  BM_lstm_packed_step(state);
  ft::nn::set_cudnn_rnn(true);
}

void BM_encoder_step(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = encoder_trainer(dev);
  run_case(state, c, dev, kEncBatch * kEncTokens, 0, outside);
}

void BM_mlp_blocks_step(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  auto c = blocks_trainer(dev);
  run_case(state, c, dev, kBlockTokens, 0, outside);
}

void BM_adam_100(benchmark::State& state) {
  const ft::Device dev = device_of(state);
  const auto outside = ft::stats::bytes_in_use(dev);
  AdamCase c(dev);
  run_case(state, c, dev, kAdamValues, kAdamBytes, outside);
}

// ---- peak resident memory, a process a case ----

// VmHWM (peak resident set) and RssFile (file-backed pages: code of the libraries) in bytes.
double proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string k;
  double v = 0;
  while (f >> k) {
    if (k == key) {
      f >> v;
      return v * 1024;
    }
    std::getline(f, k);
  }
  return -1;
}

// In a fresh process: the growth of the peak resident set from before the model is built to
// after `steps` steps, and the part of it that is file-backed (library code first touched),
// which is not tensor memory.
template <class F>
void rss_report(const std::string& name, F&& run) {
  const double rss0 = proc_status_kb("VmRSS:"), file0 = proc_status_kb("RssFile:");
  ft::stats::reset();
  run();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double hwm = static_cast<double>(ru.ru_maxrss) * 1024;
  const double file = proc_status_kb("RssFile:") - file0;
  std::printf(
      "peak_rss/%-18s peak RSS growth %7.1f MB, of which file-backed (code) %5.1f MB: anonymous %7.1f MB; "
      "ft::stats peak %7.1f MB\n",
      name.c_str(), (hwm - rss0) / (1 << 20), file / (1 << 20), (hwm - rss0 - file) / (1 << 20),
      static_cast<double>(ft::stats::peak_bytes(ft::kCPU)) / (1 << 20));
}

constexpr int kRssSteps = 5;

bool run_rss_case(const std::string& name) {
  const ft::Device cpu(ft::kCPU);
  auto steps = [](auto& c) {
    for (int i = 0; i < kRssSteps; ++i) c.step();
  };
  if (name == "mlp/ft") {
    rss_report(name, [&] {
      auto c = mlp_trainer(cpu);
      steps(c);
    });
  } else if (name == "lenet/ft") {
    rss_report(name, [&] {
      auto c = lenet_trainer(cpu);
      steps(c);
    });
  } else if (name == "mlp_blocks/ft") {
    rss_report(name, [&] {
      auto c = blocks_trainer(cpu);
      steps(c);
    });
  } else if (name == "lstm/ft") {
    rss_report(name, [&] {
      auto c = lstm_trainer(cpu);
      steps(c);
    });
  } else if (name == "encoder/ft") {
    rss_report(name, [&] {
      auto c = encoder_trainer(cpu);
      steps(c);
    });
  } else if (name == "adam_100/ft") {
    rss_report(name, [&] {
      AdamCase c(cpu);
      steps(c);
    });
  } else {
#if FT_BENCH_HAVE_LIBTORCH
    return ft_bench_torch::run_rss_case(name, kRssSteps);
#else
    return false;
#endif
  }
  return true;
}

// Runs this binary once a case with --rss_case=<case>.
int peak_rss_all() {
  std::vector<std::string> cases{"mlp/ft", "lenet/ft", "mlp_blocks/ft", "lstm/ft", "encoder/ft", "adam_100/ft"};
#if FT_BENCH_HAVE_LIBTORCH
  for (const char* c : {"mlp/libtorch", "lenet/libtorch", "mlp_blocks/libtorch", "lstm/libtorch", "encoder/libtorch",
                        "adam_100/libtorch"})
    cases.emplace_back(c);
#endif
  int rc = 0;
  for (const auto& c : cases) {
    std::fflush(stdout);
    std::string arg = "--rss_case=" + c;
    char* argv[] = {const_cast<char*>("bench_nn"), arg.data(), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ) != 0) return 1;
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--peak_rss") return peak_rss_all();
    if (a.rfind("--rss_case=", 0) == 0) return run_rss_case(a.substr(11)) ? 0 : 2;
  }
  benchmark::Initialize(&argc, argv);
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  std::vector<int> devs{0};
  if (ft::cuda::is_available()) devs.push_back(1);
  for (int d : devs) {
    g_copy_bw[d] = measure_copy_bw(d ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU));
    std::printf("copy bandwidth on %s: %.1f GB/s (read + written); %d OpenMP threads\n", d ? "cuda:0" : "cpu",
                g_copy_bw[d] / 1e9, threads);
    const std::string dn = d ? "gpu" : "cpu";
    using Bench = void (*)(benchmark::State&);
    // lenet_step last: the im2col scratch its convolutions keep (per thread, a tensor) is then
    // counted in its own first run's peak_MB; later repetitions find it live already.
    const std::pair<const char*, Bench> benches[] = {{"/mlp_step/ft", BM_mlp_step},
                                                     {"/mlp_step/ft_autocast", BM_mlp_step_autocast},
                                                     {"/mlp_blocks_step/ft", BM_mlp_blocks_step},
                                                     {"/lstm_step/ft", BM_lstm_step},
                                                     {"/lstm_packed_step/ft", BM_lstm_packed_step},
                                                     {"/encoder_step/ft", BM_encoder_step},
                                                     {"/adam_100/ft", BM_adam_100},
                                                     {"/lenet_step/ft", BM_lenet_step}};
    for (auto [name, fn] : benches) {
      auto* b = benchmark::RegisterBenchmark((dn + name).c_str(), fn)->Args({d})->Unit(benchmark::kMillisecond);
      if (d)
        b->UseManualTime();
      else
        b->UseRealTime();
    }
    if (d) {  // the GPU's other precisions (autocast bfloat16 is the CPU's ft_autocast already)
      for (auto [name, fn] : {std::pair<const char*, Bench>{"/mlp_step/ft_autocast_bf16", BM_mlp_step_autocast_bf16},
                              std::pair<const char*, Bench>{"/mlp_step/ft_tf32", BM_mlp_step_tf32},
                              std::pair<const char*, Bench>{"/lstm_step/ft_fused", BM_lstm_step_fused},
                              std::pair<const char*, Bench>{"/lstm_packed_step/ft_fused", BM_lstm_packed_step_fused}})
        benchmark::RegisterBenchmark((dn + name).c_str(), fn)
            ->Args({d})
            ->Unit(benchmark::kMillisecond)
            ->UseManualTime();
    }
  }
#if FT_CUDA_ENABLED
  if (ft::cuda::is_available()) {
    benchmark::RegisterBenchmark("gpu/mlp_sgd_step/eager", BM_mlp_sgd_step)
        ->Arg(0)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("gpu/mlp_sgd_step/graph", BM_mlp_sgd_step)
        ->Arg(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
#endif
#if FT_BENCH_HAVE_LIBTORCH
  ft_bench_torch::register_benches(threads);
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
