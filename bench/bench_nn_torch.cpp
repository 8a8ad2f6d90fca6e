// The LibTorch peer of bench_nn (CPU): the same MLP, LeNet and transformer-MLP-block training
// steps and the same
// 100-tensor Adam step, in LibTorch's eager mode (torch::nn::Sequential, torch::optim::Adam).
// Compiled as C++17 (LibTorch 1.13's headers) and linked into bench_nn when configured with
// -DFT_BENCH_LIBTORCH=ON; bench_nn.cpp calls register_benches() and run_rss_case().
//
// Gradients are reset to none before each forward (PyTorch 2's zero_grad default, and what
// ft's zero_grad does); LibTorch 1.13's Optimizer::zero_grad() would fill them with zeros.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace ft_bench_torch {

void register_benches(int threads);
bool run_rss_case(const std::string& name, int steps);

namespace {

namespace nn = torch::nn;

constexpr std::int64_t kMlpBatch = 256, kLenetBatch = 128;

nn::Sequential make_mlp() {
  return nn::Sequential(nn::Linear(784, 1024), nn::ReLU(), nn::Linear(1024, 1024), nn::ReLU(), nn::Linear(1024, 10));
}

nn::Sequential make_lenet() {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 6, 5).padding(2)), nn::ReLU(), nn::MaxPool2d(2),
                        nn::Conv2d(nn::Conv2dOptions(6, 16, 5)), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                        nn::Linear(400, 120), nn::ReLU(), nn::Linear(120, 84), nn::ReLU(), nn::Linear(84, 10));
}

torch::Tensor class_targets(std::int64_t n) { return (torch::arange(n, torch::kLong) * 7).remainder(10); }

void set_grads_to_none(const std::vector<torch::Tensor>& params) {
  for (auto p : params) p.mutable_grad().reset();
}

// A pre-norm transformer MLP block, as bench_nn.cpp's MlpBlock.
struct MlpBlockImpl : nn::Module {
  nn::LayerNorm ln{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
  MlpBlockImpl(std::int64_t d, std::int64_t hidden) {
    ln = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({d})));
    fc1 = register_module("fc1", nn::Linear(d, hidden));
    fc2 = register_module("fc2", nn::Linear(hidden, d));
  }
  torch::Tensor forward(torch::Tensor x) { return x + fc2(torch::gelu(fc1(ln(x)))); }
};
TORCH_MODULE(MlpBlock);
constexpr std::int64_t kBlockTokens = 2048, kBlockDim = 256, kBlockHidden = 1024;

enum class Loss { CrossEntropy, Mse };

// backward, update and a whole step of a case with `loss` and `opt`, after its forward().
template <class Case>
struct Steps {
  void backward() { self().loss.backward(); }
  void update() {
    self().opt.step();
    self().loss = torch::Tensor();
  }
  void step() {
    self().forward();
    backward();
    update();
  }

 private:
  Case& self() { return static_cast<Case&>(*this); }
};

template <class Opt = torch::optim::Adam, class Options = torch::optim::AdamOptions>
struct Trainer : Steps<Trainer<Opt, Options>> {
  nn::Sequential net;
  std::vector<torch::Tensor> params;
  Opt opt;
  torch::Tensor x, y, loss;
  Loss kind;

  Trainer(nn::Sequential n, torch::Tensor x_, torch::Tensor y_, Loss k = Loss::CrossEntropy)
      : net(std::move(n)),
        params(net->parameters()),
        opt(params, Options(1e-3)),
        x(std::move(x_)),
        y(std::move(y_)),
        kind(k) {}
  void forward() {
    set_grads_to_none(params);
    auto out = net->forward(x);
    loss = kind == Loss::Mse ? nn::functional::mse_loss(out, y) : nn::functional::cross_entropy(out, y);
  }
};

Trainer<> mlp_trainer() {
  torch::manual_seed(1);
  auto net = make_mlp();
  return Trainer(net, torch::randn({kMlpBatch, 784}), class_targets(kMlpBatch));
}
Trainer<> lenet_trainer() {
  torch::manual_seed(1);
  auto net = make_lenet();
  return Trainer(net, torch::randn({kLenetBatch, 1, 28, 28}), class_targets(kLenetBatch));
}

Trainer<torch::optim::AdamW, torch::optim::AdamWOptions> blocks_trainer() {
  torch::manual_seed(1);
  nn::Sequential net(MlpBlock(kBlockDim, kBlockHidden), MlpBlock(kBlockDim, kBlockHidden));
  return {net, torch::randn({kBlockTokens, kBlockDim}), torch::randn({kBlockTokens, kBlockDim}), Loss::Mse};
}

// bench_nn.cpp's lstm_step: a 2-layer LSTM (256 → 256), batch 32, 64 steps, MSE, Adam.
struct LstmCase : Steps<LstmCase> {
  nn::LSTM lstm;
  std::vector<torch::Tensor> params;
  torch::optim::Adam opt;
  torch::Tensor x, y, loss;
  static nn::LSTM make() {
    torch::manual_seed(1);
    return nn::LSTM(nn::LSTMOptions(256, 256).num_layers(2));
  }
  LstmCase()
      : lstm(make()),
        params(lstm->parameters()),
        opt(params, torch::optim::AdamOptions(1e-3)),
        x(torch::randn({64, 32, 256})),
        y(torch::randn({64, 32, 256})) {}
  void forward() {
    set_grads_to_none(params);
    loss = nn::functional::mse_loss(std::get<0>(lstm->forward(x)), y);
  }
};

// lstm_packed_step: the same batch with bench_nn.cpp's lstm_lengths(), packed (unsorted), the
// output padded back.
struct LstmPackedCase : Steps<LstmPackedCase> {
  LstmCase base;
  torch::Tensor lengths;
  std::vector<torch::Tensor>& params = base.params;
  torch::optim::Adam& opt = base.opt;
  torch::Tensor loss;
  LstmPackedCase() {
    std::vector<std::int64_t> len;
    for (std::int64_t b = 0; b < 32; ++b) len.push_back(64 - (13 * b) % 48);
    lengths = torch::tensor(len);
  }
  void forward() {
    set_grads_to_none(params);
    auto packed = nn::utils::rnn::pack_padded_sequence(base.x, lengths, false, false);
    auto out = std::get<0>(base.lstm->forward_with_packed_input(packed));
    loss = nn::functional::mse_loss(std::get<0>(nn::utils::rnn::pad_packed_sequence(out)), base.y);
  }
};

// bench_nn.cpp's encoder_step: a TransformerEncoderLayer (256, 4 heads, 1024, dropout 0,
// batch-first), batch 8 of 512 tokens, MSE, Adam.
struct EncoderCase : Steps<EncoderCase> {
  nn::TransformerEncoderLayer layer;
  std::vector<torch::Tensor> params;
  torch::optim::Adam opt;
  torch::Tensor x, y, loss;
  static nn::TransformerEncoderLayer make() {
    torch::manual_seed(1);
    return nn::TransformerEncoderLayer(nn::TransformerEncoderLayerOptions(256, 4).dim_feedforward(1024).dropout(0.0));
  }
  EncoderCase()
      : layer(make()),
        params(layer->parameters()),
        opt(params, torch::optim::AdamOptions(1e-3)),
        x(torch::randn({512, 8, 256})),
        y(torch::randn({512, 8, 256})) {}
  void forward() {
    set_grads_to_none(params);
    loss = nn::functional::mse_loss(layer->forward(x), y);
  }
};

// The same 100 tensors as bench_nn.cpp's adam_sizes(), gradients preset.
struct AdamCase {
  std::vector<torch::Tensor> params;
  torch::optim::Adam opt;
  static std::vector<torch::Tensor> make() {
    torch::manual_seed(10);
    std::vector<torch::Tensor> ps;
    for (int i = 0; i < 25; ++i)
      for (std::int64_t n : {512, 4096, 65536, 329856}) {
        auto p = torch::randn({n}).requires_grad_(true);
        p.mutable_grad() = torch::randn({n});
        ps.push_back(p);
      }
    return ps;
  }
  AdamCase() : params(make()), opt(params, torch::optim::AdamOptions(1e-3)) {}
  void forward() {}
  void backward() {}
  void update() { opt.step(); }
  void step() { update(); }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class C>
void run_case(benchmark::State& state, C& c, double items, double bytes) {
  c.step();  // creates the Adam state
  for (auto _ : state) {
    c.step();
    benchmark::ClobberMemory();
  }
  const double it = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(it * items));
  if (bytes > 0) state.SetBytesProcessed(static_cast<std::int64_t>(it * bytes));
  state.counters["threads"] = torch::get_num_threads();
  using clock = std::chrono::steady_clock;
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  std::vector<double> f, b, o;
  for (int r = 0; r < 7; ++r) {
    auto t0 = clock::now();
    c.forward();
    auto t1 = clock::now();
    c.backward();
    auto t2 = clock::now();
    c.update();
    auto t3 = clock::now();
    f.push_back(ms(t0, t1));
    b.push_back(ms(t1, t2));
    o.push_back(ms(t2, t3));
  }
  state.counters["fwd_ms"] = median(f);
  state.counters["bwd_ms"] = median(b);
  state.counters["opt_ms"] = median(o);
}

void BM_mlp_step(benchmark::State& state) {
  auto c = mlp_trainer();
  run_case(state, c, kMlpBatch, 0);
}
void BM_lenet_step(benchmark::State& state) {
  auto c = lenet_trainer();
  run_case(state, c, kLenetBatch, 0);
}
void BM_mlp_blocks_step(benchmark::State& state) {
  auto c = blocks_trainer();
  run_case(state, c, kBlockTokens, 0);
}
void BM_lstm_step(benchmark::State& state) {
  LstmCase c;
  run_case(state, c, 32 * 64, 0);
}
void BM_lstm_packed_step(benchmark::State& state) {
  LstmPackedCase c;
  run_case(state, c, static_cast<double>(c.lengths.sum().item<std::int64_t>()), 0);
}
void BM_encoder_step(benchmark::State& state) {
  EncoderCase c;
  run_case(state, c, 8 * 512, 0);
}
void BM_adam_100(benchmark::State& state) {
  AdamCase c;
  run_case(state, c, 1e7, 7.0 * 4 * 1e7);
}

double proc_status_bytes(const char* key) {
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

}  // namespace

void register_benches(int threads) {
  torch::set_num_threads(threads);
  benchmark::RegisterBenchmark("cpu/mlp_step/libtorch", BM_mlp_step)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("cpu/mlp_blocks_step/libtorch", BM_mlp_blocks_step)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("cpu/lstm_step/libtorch", BM_lstm_step)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("cpu/lstm_packed_step/libtorch", BM_lstm_packed_step)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("cpu/encoder_step/libtorch", BM_encoder_step)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("cpu/adam_100/libtorch", BM_adam_100)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("cpu/lenet_step/libtorch", BM_lenet_step)->Unit(benchmark::kMillisecond)->UseRealTime();
}

// As bench_nn.cpp's rss_report: the growth of the peak resident set over building the case
// and `steps` steps, and its file-backed part.
bool run_rss_case(const std::string& name, int steps) {
  const double rss0 = proc_status_bytes("VmRSS:"), file0 = proc_status_bytes("RssFile:");
  if (name == "mlp/libtorch") {
    auto c = mlp_trainer();
    for (int i = 0; i < steps; ++i) c.step();
  } else if (name == "lenet/libtorch") {
    auto c = lenet_trainer();
    for (int i = 0; i < steps; ++i) c.step();
  } else if (name == "mlp_blocks/libtorch") {
    auto c = blocks_trainer();
    for (int i = 0; i < steps; ++i) c.step();
  } else if (name == "lstm/libtorch") {
    LstmCase c;
    for (int i = 0; i < steps; ++i) c.step();
  } else if (name == "encoder/libtorch") {
    EncoderCase c;
    for (int i = 0; i < steps; ++i) c.step();
  } else if (name == "adam_100/libtorch") {
    AdamCase c;
    for (int i = 0; i < steps; ++i) c.step();
  } else {
    return false;
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double hwm = static_cast<double>(ru.ru_maxrss) * 1024;
  const double file = proc_status_bytes("RssFile:") - file0;
  std::printf("peak_rss/%-18s peak RSS growth %7.1f MB, of which file-backed (code) %5.1f MB: anonymous %7.1f MB\n",
              name.c_str(), (hwm - rss0) / (1 << 20), file / (1 << 20), (hwm - rss0 - file) / (1 << 20));
  return true;
}

}  // namespace ft_bench_torch
