// ft::nn's recurrent layers against PyTorch's (tests/golden/rnn.txt, written by
// tests/golden/make_rnn.py; parameters loaded by PyTorch's names): RNN, LSTM (proj_size), GRU and
// the cells, one and two layers, both directions, batch_first both ways, initial states given or
// not, padded and packed batches (unsorted lengths); outputs, final states and every gradient.
// Then the launch counts of the fused steps, and bad input.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common.hpp"
#include "ft/io.hpp"
#include "ft/nn.hpp"
#include "golden/golden.hpp"

namespace {

using ft::index_t;
using ft::Var;
using ft::test::devices;
using ft::test::Golden;
namespace nn = ft::nn;

const Golden& golden() {
  static const Golden g("rnn.txt");
  return g;
}

// Sets for a scope whether layers on a GPU call cuDNN's RNN API (nn::set_cudnn_rnn).
class CudnnRnn {
 public:
  explicit CudnnRnn(bool on) : previous_(nn::cudnn_rnn_enabled()) { nn::set_cudnn_rnn(on); }
  ~CudnnRnn() { nn::set_cudnn_rnn(previous_); }
  CudnnRnn(const CudnnRnn&) = delete;
  CudnnRnn& operator=(const CudnnRnn&) = delete;

 private:
  bool previous_;
};

// Each device, and on a GPU each of its two paths: cuDNN's RNN API (the default) and the fused
// steps (cuDNN switched off).
struct Path {
  ft::Device dev;
  bool cudnn;
};
std::vector<Path> paths() {
  std::vector<Path> p;
  for (ft::Device dev : devices()) {
    p.push_back({dev, true});
    if (dev.is_cuda()) p.push_back({dev, false});
  }
  return p;
}

template <class M>
void load_case(M& m, const std::string& name, ft::Device dev) {
  ft::test::load_params(m, golden(), name + ".param.", dev);
}

// A state of rank R from the golden file, as a leaf that requires grad (undefined when the case
// passes none).
template <int R>
Var<float, R> state(const std::string& key, ft::Device dev) {
  if (!golden().has(key)) return {};
  return Var<float, R>(golden().tensor<float, R>(key, dev), ft::requires_grad);
}

// L = Σ output·r + Σ h_n·rh + Σ c_n·rc, as make_rnn.py's loss.
template <class O, class H, class C>
Var<float, 0> loss_of(const std::string& name, ft::Device dev, const O& output, const H& h_n, const C& c_n) {
  Var<float, 0> loss = ft::sum(h_n * golden().tensor<float, H::rank>(name + ".rh", dev));
  if constexpr (!std::is_same_v<O, std::nullptr_t>)
    loss = loss + ft::sum(output * golden().tensor<float, 3>(name + ".r", dev));
  if constexpr (!std::is_same_v<C, std::nullptr_t>)
    loss = loss + ft::sum(c_n * golden().tensor<float, C::rank>(name + ".rc", dev));
  return loss;
}

template <class M, class X, class S>
void check_grads(const std::string& name, M& m, const X& x, const S& h0, const S& c0) {
  constexpr double rtol = 2e-5, atol = 2e-6;
  ft::test::check_close(x.grad(), golden().values(name + ".grad.input"), rtol, atol);
  if (h0.defined()) ft::test::check_close(h0.grad(), golden().values(name + ".grad.h0"), rtol, atol);
  if (c0.defined()) ft::test::check_close(c0.grad(), golden().values(name + ".grad.c0"), rtol, atol);
  for (auto& [pname, p] : m.named_parameters()) {
    INFO(pname);
    REQUIRE(p.has_grad());
    ft::test::check_close(ft::test::any_values(p.grad()), golden().values(name + ".grad." + pname), rtol, atol);
  }
}

// A layer case: forward on the golden input and states, the loss's backward, everything compared.
template <class M>
void check_layer(const std::string& name, M& m, ft::Device dev) {
  INFO(name << " on " << dev);
  load_case(m, name, dev);
  Var<float, 3> x(golden().tensor<float, 3>(name + ".input", dev), ft::requires_grad);
  auto h0 = state<3>(name + ".h0", dev);
  auto c0 = state<3>(name + ".c0", dev);
  constexpr double rtol = 1e-5, atol = 1e-6;
  Var<float, 0> loss;
  if constexpr (requires { m.forward(x, h0, c0).c_n; }) {
    auto [out, h_n, c_n] = m.forward(x, h0, c0);
    ft::test::check_close(out.value(), golden().values(name + ".output"), rtol, atol);
    ft::test::check_close(h_n.value(), golden().values(name + ".h_n"), rtol, atol);
    ft::test::check_close(c_n.value(), golden().values(name + ".c_n"), rtol, atol);
    loss = loss_of(name, dev, out, h_n, c_n);
  } else {
    auto [out, h_n] = m.forward(x, h0);
    ft::test::check_close(out.value(), golden().values(name + ".output"), rtol, atol);
    ft::test::check_close(h_n.value(), golden().values(name + ".h_n"), rtol, atol);
    loss = loss_of(name, dev, out, h_n, nullptr);
  }
  loss.backward();
  check_grads(name, m, x, h0, c0);
}

template <class M>
void check_cell(const std::string& name, M& m, ft::Device dev) {
  INFO(name << " on " << dev);
  load_case(m, name, dev);
  Var<float, 2> x(golden().tensor<float, 2>(name + ".input", dev), ft::requires_grad);
  auto h0 = state<2>(name + ".h0", dev);
  auto c0 = state<2>(name + ".c0", dev);
  constexpr double rtol = 1e-5, atol = 1e-6;
  Var<float, 0> loss;
  if constexpr (requires { m.forward(x, h0, c0).second; }) {
    auto [h, c] = m.forward(x, h0, c0);
    ft::test::check_close(h.value(), golden().values(name + ".h_n"), rtol, atol);
    ft::test::check_close(c.value(), golden().values(name + ".c_n"), rtol, atol);
    loss = loss_of(name, dev, nullptr, h, c);
  } else {
    Var<float, 2> h = m.forward(x, h0);
    ft::test::check_close(h.value(), golden().values(name + ".h_n"), rtol, atol);
    loss = loss_of(name, dev, nullptr, h, nullptr);
  }
  loss.backward();
  check_grads(name, m, x, h0, c0);
}

}  // namespace

TEST_CASE("LSTM: outputs, final states and gradients equal PyTorch's") {
  for (auto [dev, cudnn] : paths()) {
    CAPTURE(cudnn);
    const CudnnRnn path(cudnn);
    nn::LSTM<float> a(5, 7, {}, dev);
    check_layer("lstm", a, dev);
    nn::LSTM<float> b(5, 6, {.num_layers = 2, .batch_first = true, .bidirectional = true}, dev);
    check_layer("lstm_2bi_bf", b, dev);
    nn::LSTM<float> c(5, 8, {.num_layers = 2, .proj_size = 3}, dev);
    check_layer("lstm_proj", c, dev);
    nn::LSTM<float> d(4, 5, {.bidirectional = true, .proj_size = 2}, dev);
    check_layer("lstm_proj_bi", d, dev);
  }
}

TEST_CASE("GRU and RNN: outputs, final states and gradients equal PyTorch's") {
  for (auto [dev, cudnn] : paths()) {
    CAPTURE(cudnn);
    const CudnnRnn path(cudnn);
    nn::GRU<float> a(5, 7, {}, dev);
    check_layer("gru", a, dev);
    nn::GRU<float> b(5, 6, {.num_layers = 2, .bidirectional = true}, dev);
    check_layer("gru_2bi", b, dev);
    nn::GRU<float> c(3, 4, {.bias = false, .batch_first = true}, dev);
    check_layer("gru_nobias_bf", c, dev);
    nn::RNN<float> d(5, 7, {.num_layers = 2}, dev);
    check_layer("rnn_tanh", d, dev);
    nn::RNN<float> e(5, 6, {.batch_first = true, .bidirectional = true, .nonlinearity = nn::RNNActivation::ReLU}, dev);
    check_layer("rnn_relu_bi_bf", e, dev);
  }
}

TEST_CASE("LSTMCell, GRUCell and RNNCell equal PyTorch's") {
  for (ft::Device dev : devices()) {
    nn::LSTMCell<float> a(5, 7, true, dev);
    check_cell("lstm_cell", a, dev);
    nn::LSTMCell<float> b(4, 3, false, dev);
    check_cell("lstm_cell_nostate", b, dev);
    nn::GRUCell<float> c(5, 7, true, dev);
    check_cell("gru_cell", c, dev);
    nn::RNNCell<float> d(5, 7, true, nn::RNNActivation::Tanh, dev);
    check_cell("rnn_cell", d, dev);
    nn::RNNCell<float> e(5, 6, true, nn::RNNActivation::ReLU, dev);
    check_cell("rnn_cell_relu", e, dev);
  }
}

namespace {
// A packed case: pack_padded_sequence of the golden input, the layer on the packed batch; the
// packed output, pad_packed_sequence's padding of it, the final states and every gradient.
template <class M>
void check_packed(const std::string& name, M& m, ft::Device dev, bool enforce_sorted) {
  INFO(name << " on " << dev);
  load_case(m, name, dev);
  Var<float, 3> x(golden().tensor<float, 3>(name + ".input", dev), ft::requires_grad);
  const std::vector<std::int64_t> lengths = golden().tensor<std::int64_t, 1>(name + ".lengths").to_vector();
  auto h0 = state<3>(name + ".h0", dev);
  auto c0 = state<3>(name + ".c0", dev);
  const bool batch_first = m.options().batch_first;
  auto packed = nn::pack_padded_sequence(x, lengths, batch_first, enforce_sorted);
  CHECK(packed.batch_sizes == golden().tensor<std::int64_t, 1>(name + ".batch_sizes").to_vector());
  CHECK(packed.lengths() == lengths);
  constexpr double rtol = 1e-5, atol = 1e-6;
  Var<float, 0> loss;
  auto check_output = [&](const nn::PackedSequence<float>& out) {
    ft::test::check_close(out.data.value(), golden().values(name + ".output"), rtol, atol);
    CHECK(out.batch_sizes == packed.batch_sizes);
    auto padded = nn::pad_packed_sequence(out, batch_first);
    ft::test::check_close(padded.output.value(), golden().values(name + ".padded"), rtol, atol);
    CHECK(padded.lengths == lengths);
  };
  if constexpr (requires { m.forward(packed, h0, c0).c_n; }) {
    auto [out, h_n, c_n] = m.forward(packed, h0, c0);
    check_output(out);
    ft::test::check_close(h_n.value(), golden().values(name + ".h_n"), rtol, atol);
    ft::test::check_close(c_n.value(), golden().values(name + ".c_n"), rtol, atol);
    loss = loss_of(name, dev, nullptr, h_n, c_n) + ft::sum(out.data * golden().tensor<float, 2>(name + ".r", dev));
  } else {
    auto [out, h_n] = m.forward(packed, h0);
    check_output(out);
    ft::test::check_close(h_n.value(), golden().values(name + ".h_n"), rtol, atol);
    loss = loss_of(name, dev, nullptr, h_n, nullptr) + ft::sum(out.data * golden().tensor<float, 2>(name + ".r", dev));
  }
  loss.backward();
  check_grads(name, m, x, h0, c0);
}
}  // namespace

TEST_CASE("packed sequences: unsorted lengths through LSTM, GRU and RNN equal PyTorch's; padding is never computed") {
  for (auto [dev, cudnn] : paths()) {
    CAPTURE(cudnn);
    const CudnnRnn path(cudnn);
    nn::LSTM<float> a(4, 5, {.num_layers = 2, .bidirectional = true}, dev);
    check_packed("packed_lstm_2bi", a, dev, false);
    nn::GRU<float> b(4, 5, {.batch_first = true}, dev);
    check_packed("packed_gru_bf", b, dev, true);
    nn::RNN<float> c(3, 4, {.bidirectional = true, .nonlinearity = nn::RNNActivation::ReLU}, dev);
    check_packed("packed_rnn_relu_bi", c, dev, false);
    nn::LSTM<float> d(4, 6, {.proj_size = 2}, dev);
    check_packed("packed_lstm_proj", d, dev, true);
    // the batch shrinks as sequences end: GEMM rows = Σ lengths, not steps × batch
    CAPTURE(dev);
    nn::GRU<float> g(4, 8, {}, dev);
    const ft::Tensor<float, 3> x = ft::randn<float>({6, 3, 4}, dev, 9);
    auto packed = nn::pack_padded_sequence(x, {6, 2, 1});
    CHECK(packed.data.size(0) == 9);
    CHECK(packed.batch_sizes == std::vector<std::int64_t>{3, 2, 1, 1, 1, 1});
    const auto before = ft::stats::launches(dev);
    auto [out, h_n] = g(packed);
    if (!cudnn || dev.is_cpu())  // initial rows, bias fill, input GEMM, a GEMM and a cell kernel a step, h_n's gather
      CHECK(ft::stats::launches(dev) - before == 3 + 2 * 6 + 1);
    else  // the weights copied in (w_ih, w_hh, b_ih, b_hh), one cuDNN call (the lengths: a copy)
      CHECK(ft::stats::launches(dev) - before == 4 + 1);
    CHECK(out.data.size(0) == 9);
    // a sequence's final state is its output at its last step
    auto padded = nn::pad_packed_sequence(out);
    const auto p = ft::test::to_double(padded.output.value().to(ft::kCPU)),
               h = ft::test::to_double(h_n.value().to(ft::kCPU));
    for (int k = 0; k < 8; ++k) {
      CHECK(h[static_cast<std::size_t>(0 * 8 + k)] == p[static_cast<std::size_t>((5 * 3 + 0) * 8 + k)]);
      CHECK(h[static_cast<std::size_t>(1 * 8 + k)] == p[static_cast<std::size_t>((1 * 3 + 1) * 8 + k)]);
      CHECK(h[static_cast<std::size_t>(2 * 8 + k)] == p[static_cast<std::size_t>((0 * 3 + 2) * 8 + k)]);
      CHECK(p[static_cast<std::size_t>((3 * 3 + 1) * 8 + k)] == 0);  // padding
    }
  }
}

TEST_CASE("an unbatched input [T, I] runs as a batch of one, as PyTorch's (batch_first does not apply)") {
  nn::LSTM<float> lstm(3, 4, {.num_layers = 2, .bidirectional = true});
  nn::GRU<float> gru(3, 4, {.batch_first = true});
  const ft::Tensor<float, 2> x = ft::randn<float>({5, 3}, ft::kCPU, 11);
  const ft::Tensor<float, 2> h0 = ft::randn<float>({4, 4}, ft::kCPU, 12);
  auto [o, h, c] = lstm(x, Var<float, 2>(h0));
  auto [o3, h3, c3] = lstm(x.unsqueeze(1), Var<float, 3>(h0.unsqueeze(1)));
  CHECK(ft::to_string(o.shape()) == "[5, 8]");
  CHECK(ft::to_string(h.shape()) == "[4, 4]");
  CHECK(ft::to_string(c.shape()) == "[4, 4]");
  CHECK(o.value().to_vector() == o3.value().contiguous().to_vector());
  CHECK(h.value().contiguous().to_vector() == h3.value().contiguous().to_vector());
  CHECK(c.value().contiguous().to_vector() == c3.value().contiguous().to_vector());
  auto [g, gh] = gru(x);
  auto [g3, gh3] = gru(x.unsqueeze(0));  // batch-first [1, T, I]
  CHECK(ft::to_string(g.shape()) == "[5, 4]");
  CHECK(g.value().contiguous().to_vector() == g3.value().contiguous().to_vector());
}

TEST_CASE("the cells take an unbatched input [I] with states [H], as PyTorch's: the batch of one's row") {
  nn::LSTMCell<float> lstm(3, 4);
  nn::GRUCell<float> gru(3, 4);
  nn::RNNCell<float> rnn(3, 4, true, nn::RNNActivation::ReLU);
  const ft::Tensor<float, 1> x = ft::randn<float>({3}, ft::kCPU, 13), h0 = ft::randn<float>({4}, ft::kCPU, 14),
                             c0 = ft::randn<float>({4}, ft::kCPU, 15);
  auto row = [](const Var<float, 2>& v) { return v.value().contiguous().to_vector(); };
  auto [h, c] = lstm(x, Var<float, 1>(h0), Var<float, 1>(c0));
  auto [h2, c2] = lstm(x.unsqueeze(0), Var<float, 2>(h0.unsqueeze(0)), Var<float, 2>(c0.unsqueeze(0)));
  CHECK(ft::to_string(h.shape()) == "[4]");
  CHECK(h.value().to_vector() == row(h2));
  CHECK(c.value().to_vector() == row(c2));
  Var<float, 1> g = gru(x);  // the state left out: zeros
  CHECK(g.value().to_vector() == row(gru(x.unsqueeze(0))));
  Var<float, 1> r = rnn(x, Var<float, 1>(h0));
  CHECK(r.value().to_vector() == row(rnn(x.unsqueeze(0), Var<float, 2>(h0.unsqueeze(0)))));
  // and the gradient flows to the unbatched input
  Var<float, 1> xv(x, ft::requires_grad);
  Var<float, 0> loss = ft::sum(gru(xv));
  loss.backward();
  CHECK(ft::to_string(xv.grad().shape()) == "[3]");
}

TEST_CASE("a PyTorch LSTM's state_dict saved as safetensors loads and gives PyTorch's outputs") {
  // tests/data/lstm_2bi.safetensors: safetensors' save_file of lstm_2bi_bf's parameters (make_io_data.py)
  const auto sd = ft::io::load_safetensors(std::string(FT_GOLDEN_DIR) + "/../data/lstm_2bi.safetensors");
  nn::LSTM<float> lstm(5, 6, {.num_layers = 2, .batch_first = true, .bidirectional = true});
  lstm.load_state_dict(sd);
  auto [out, h_n, c_n] = lstm(golden().tensor<float, 3>("lstm_2bi_bf.input"));
  ft::test::check_close(out.value(), golden().values("lstm_2bi_bf.output"), 1e-5, 1e-6);
  ft::test::check_close(c_n.value(), golden().values("lstm_2bi_bf.c_n"), 1e-5, 1e-6);
}

TEST_CASE("pad_sequence and pack_sequence, as torch.nn.utils.rnn's") {
  const ft::Tensor<float, 2> a = ft::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  const ft::Tensor<float, 2> b = ft::from_vector<float>({7, 8}, {1, 2});
  Var<float, 3> padded = nn::pad_sequence(std::vector<ft::Tensor<float, 2>>{a, b}, true, -1.0);
  CHECK(ft::to_string(padded.shape()) == "[2, 3, 2]");
  CHECK(padded.value().to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, -1});
  auto packed = nn::pack_sequence(std::vector<ft::Tensor<float, 2>>{b, a}, false);
  CHECK(packed.batch_sizes == std::vector<std::int64_t>{2, 1, 1});
  CHECK(packed.sorted_indices == std::vector<std::int64_t>{1, 0});
  CHECK(packed.data.value().to_vector() == std::vector<float>{1, 2, 7, 8, 3, 4, 5, 6});
}

TEST_CASE("recurrent layers: names, parameter shapes and initialisation as PyTorch's") {
  nn::LSTM<float> m(10, 20, {.num_layers = 2, .bidirectional = true, .proj_size = 5});
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  const std::vector<std::string> l0 = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"};
  REQUIRE(names.size() == 20);
  for (std::size_t k = 0; k < 5; ++k) {
    CHECK(names[k] == l0[k]);
    CHECK(names[5 + k] == l0[k] + "_reverse");
  }
  CHECK(names[10] == "weight_ih_l1");
  auto sd = m.state_dict();
  CHECK(sd.at("weight_ih_l0").shape_string() == "[80, 10]");
  CHECK(sd.at("weight_hh_l0").shape_string() == "[80, 5]");
  CHECK(sd.at("weight_hr_l0").shape_string() == "[5, 20]");
  CHECK(sd.at("weight_ih_l1").shape_string() == "[80, 10]");  // 2 directions × proj_size 5
  // U(±1/√hidden): every value inside, and spread over the interval
  const double k = 1.0 / std::sqrt(20.0);
  double lo = 1, hi = -1;
  for (float v : m.state_dict().at("weight_hh_l1_reverse").padded<float>().to_vector()) {
    CHECK(std::fabs(v) <= k);
    lo = std::min(lo, static_cast<double>(v));
    hi = std::max(hi, static_cast<double>(v));
  }
  CHECK(lo < -0.8 * k);
  CHECK(hi > 0.8 * k);
  nn::GRU<float> g(3, 4, {.bias = false});
  CHECK(g.named_parameters().size() == 2);
}

namespace {
// The launches of m over `steps` steps of a batch of 4 (input size 8): its forward, or the
// backward of Σ output.
template <class M>
std::int64_t step_launches(M& m, ft::Device dev, index_t steps, bool backward) {
  Var<float, 3> x(ft::randn<float>({steps, 4, 8}, dev, 3), ft::requires_grad);
  const auto before = ft::stats::launches(dev);
  auto r = m(x);
  const auto forward = ft::stats::launches(dev) - before;
  if (!backward) return forward;
  Var<float, 0> loss = ft::sum(r.output);
  const auto b2 = ft::stats::launches(dev);
  loss.backward();
  return ft::stats::launches(dev) - b2;
}
}  // namespace

TEST_CASE("a recurrent step is one GEMM and one fused cell kernel, forward and backward") {
  const CudnnRnn fused(false);  // on a GPU too
  for (ft::Device dev : devices()) {
    CAPTURE(dev);
    auto launches = [&](auto& m, index_t steps, bool backward) { return step_launches(m, dev, steps, backward); };
    nn::LSTM<float> lstm(8, 16, {}, dev);
    nn::GRU<float> gru(8, 16, {}, dev);
    nn::RNN<float> rnn(8, 16, {}, dev);
    // 6 more steps cost 6 × (GEMM + cell) forward, and 6 × (cell + GEMM) backward
    CHECK(launches(lstm, 10, false) - launches(lstm, 4, false) == 12);
    CHECK(launches(lstm, 10, true) - launches(lstm, 4, true) == 12);
    CHECK(launches(gru, 10, false) - launches(gru, 4, false) == 12);
    CHECK(launches(gru, 10, true) - launches(gru, 4, true) == 12);
    CHECK(launches(rnn, 10, false) - launches(rnn, 4, false) == 12);
    CHECK(launches(rnn, 10, true) - launches(rnn, 4, true) == 12);
    // the whole LSTM forward: the initial rows (2), the biases and the input GEMM (2), then
    // 2 a step (the first has no recurrent GEMM: the state is zero)
    CHECK(launches(lstm, 5, false) == 4 + 2 * 5 - 1);
  }
}

namespace {
// Everything a layer gives on one path (cuDNN's or the fused steps'), as doubles: the output, the
// final states, then the gradients of the input, the initial states (with_states) and each
// parameter of L = Σ output·r + Σ h_n·r′ (+ Σ c_n·r″). Packed: the batch of 3 packed with
// unsorted lengths 4, 6, 2.
template <class T, class M>
std::vector<double> everything(M& m, ft::Device dev, bool packed, bool with_states, bool cudnn) {
  const CudnnRnn path(cudnn);
  m.zero_grad();
  const auto& o = m.options();
  const index_t B = 3, steps = 6, LD = o.num_layers * (o.bidirectional ? 2 : 1);
  std::uint64_t seed = 1;
  auto random = [&]<int R>(const ft::Shape<R>& shape) {
    return ft::Tensor<T, R>(ft::cast<T>(ft::randn<float>({shape.numel()}, dev, seed++).reshape(shape)));
  };
  const ft::Shape<3> xs =
      o.batch_first ? ft::Shape<3>{B, steps, m.input_size()} : ft::Shape<3>{steps, B, m.input_size()};
  Var<T, 3> x(random(xs), ft::requires_grad), h0, c0;
  constexpr bool lstm = requires { m.forward(x, h0, c0).c_n; };
  if (with_states) {
    h0 = Var<T, 3>(random(ft::Shape<3>{LD, B, m.output_size()}), ft::requires_grad);
    if (lstm) c0 = Var<T, 3>(random(ft::Shape<3>{LD, B, m.hidden_size()}), ft::requires_grad);
  }
  std::vector<double> all;
  auto keep = [&](const auto& t) {
    std::vector<double> v;
    if constexpr (requires { t.to(ft::kCPU); })
      v = ft::test::to_double(t.to(ft::kCPU));
    else
      v = t;
    all.insert(all.end(), v.begin(), v.end());
  };
  auto term = [&](const auto& v) {
    keep(v.value());
    return ft::sum(v * random(v.shape()));
  };
  auto run = [&](const auto& in) {
    if constexpr (lstm) {
      auto r = m.forward(in, h0, c0);
      return std::tuple(r.output, r.h_n, r.c_n);
    } else {
      auto r = m.forward(in, h0);
      return std::tuple(r.output, r.h_n, Var<T, 3>());
    }
  };
  Var<T, 0> loss;
  if (packed) {
    auto [out, h_n, c_n] = run(nn::pack_padded_sequence(x, {4, 6, 2}, o.batch_first, false));
    loss = term(out.data) + term(h_n);
    if constexpr (lstm) loss = loss + term(c_n);
  } else {
    auto [out, h_n, c_n] = run(x);
    loss = term(out) + term(h_n);
    if constexpr (lstm) loss = loss + term(c_n);
  }
  loss.backward();
  keep(x.grad());
  if (h0.defined()) keep(h0.grad());
  if (c0.defined()) keep(c0.grad());
  for (auto& [name, p] : m.named_parameters()) keep(ft::test::any_values(p.grad()));
  return all;
}

template <class T, class M>
void same_on_both_paths(const char* what, M& m, ft::Device dev, bool packed, bool with_states, double tol) {
  INFO(what << " on " << dev);
  const std::vector<double> a = everything<T>(m, dev, packed, with_states, true),
                            b = everything<T>(m, dev, packed, with_states, false);
  REQUIRE(a.size() == b.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= tol * (1 + std::abs(b[i])))) first = bad++ ? first : i;
  INFO("first difference at " << first << " of " << a.size() << ": " << a[first] << " (cuDNN) vs " << b[first]);
  CHECK(bad == 0);
}
}  // namespace

FT_GPU_TEST_CASE("on a GPU a layer in both directions is one cuDNN call, equal to the fused steps") {
  for (ft::Device dev : devices()) {
    if (dev.is_cpu()) continue;
    nn::LSTM<float> a(5, 7, {.num_layers = 2, .bidirectional = true}, dev);
    same_on_both_paths<float>("LSTM 2 layers, bidirectional", a, dev, false, true, 1e-5);
    nn::LSTM<float> b(4, 6, {.batch_first = true, .bidirectional = true, .proj_size = 3}, dev);
    same_on_both_paths<float>("LSTM proj_size, packed", b, dev, true, true, 1e-5);
    nn::GRU<float> c(5, 6, {.bias = false, .batch_first = true, .bidirectional = true}, dev);
    same_on_both_paths<float>("GRU without bias", c, dev, false, false, 1e-5);
    nn::GRU<float> d(5, 6, {.num_layers = 2}, dev);
    same_on_both_paths<float>("GRU packed", d, dev, true, true, 1e-5);
    nn::RNN<float> e(4, 5, {.bidirectional = true, .nonlinearity = nn::RNNActivation::ReLU}, dev);
    same_on_both_paths<float>("RNN relu, packed", e, dev, true, true, 1e-5);
    nn::RNN<double> f(4, 5, {.num_layers = 2}, dev);
    same_on_both_paths<double>("RNN tanh in double", f, dev, false, true, 1e-12);
    nn::LSTM<ft::half> g(8, 16, {}, dev);
    same_on_both_paths<ft::half>("LSTM in half", g, dev, false, true, 2e-2);

    // the steps are inside the one call: launches do not grow with the sequence
    auto launches = [&](auto& m, index_t steps, bool backward) { return step_launches(m, dev, steps, backward); };
    nn::LSTM<float> lstm(8, 16, {}, dev);
    CHECK(launches(lstm, 10, false) == launches(lstm, 4, false));
    CHECK(launches(lstm, 10, true) == launches(lstm, 4, true));
    // w_ih, w_hh, b_ih, b_hh copied in; the lengths filled on the device; cudnnRNNForward
    CHECK(launches(lstm, 10, false) == 4 + 1 + 1);
    // off: the fused steps, a GEMM and a cell kernel a step
    const CudnnRnn off(false);
    CHECK(launches(lstm, 10, false) - launches(lstm, 4, false) == 12);
  }
}

TEST_CASE("set_cudnn_rnn switches only the GPU path: CPU results are the same either way") {
  CHECK(nn::cudnn_rnn_enabled());
  {
    const CudnnRnn off(false);
    CHECK(!nn::cudnn_rnn_enabled());
  }
  CHECK(nn::cudnn_rnn_enabled());
  nn::LSTM<float> a(4, 6, {.batch_first = true, .bidirectional = true, .proj_size = 3});
  same_on_both_paths<float>("LSTM proj_size, packed", a, ft::kCPU, true, true, 0);
  nn::GRU<ft::half> b(5, 6, {.num_layers = 2});
  same_on_both_paths<ft::half>("GRU in half", b, ft::kCPU, false, true, 0);
}

TEST_CASE("recurrent layers: training a 2-layer LSTM lowers its loss; clipping and the optimizer work unchanged") {
  nn::LSTM<float> lstm(3, 8, {.num_layers = 2, .dropout = 0.1});
  nn::Linear<float> head(8, 1);
  auto params = lstm.parameters();
  for (auto& p : head.parameters()) params.push_back(p);
  ft::optim::Adam opt(params, {.lr = 0.01});
  const ft::Tensor<float, 3> x = ft::randn<float>({6, 16, 3}, ft::kCPU, 5);
  const ft::Tensor<float, 2> target = ft::Tensor<float, 2>(ft::sum(x, 0)) * 0.3f;  // a running sum to learn
  double first = 0, last = 0;
  for (int it = 0; it < 60; ++it) {
    auto [out, h_n, c_n] = lstm(x);
    Var<float, 2> y = head(out.select(0, 5));
    Var<float, 0> loss = ft::mean((y - target.slice(1, 0, 1)) * (y - target.slice(1, 0, 1)));
    opt.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(params, 1.0);
    opt.step();
    (it == 0 ? first : last) = loss.value().item();
  }
  CHECK(last < 0.5 * first);
}

TEST_CASE("recurrent layers: bad input is an ft::Error naming the shapes") {
  nn::LSTM<float> lstm(5, 7);
  nn::GRU<float> gru(5, 7, {.num_layers = 2});
  const ft::Tensor<float, 3> x = ft::randn<float>({4, 3, 5});
  CHECK_THROWS_WITH_AS(lstm(ft::Tensor<float, 3>(ft::randn<float>({4, 3, 6}))),
                       doctest::Contains("input.size(-1) must be equal to input_size. Expected 5, got 6"), ft::Error);
  CHECK_THROWS_WITH_AS(lstm(ft::Tensor<float, 3>(ft::randn<float>({0, 3, 5}))), doctest::Contains("zero time steps"),
                       ft::Error);
  CHECK_THROWS_WITH_AS(gru(x, Var<float, 3>(ft::randn<float>({1, 3, 7}))),
                       doctest::Contains("Expected hidden size (2, 3, 7), got [1, 3, 7]"), ft::Error);
  CHECK_THROWS_WITH_AS(lstm(x, Var<float, 3>(ft::randn<float>({1, 3, 7})), Var<float, 3>(ft::randn<float>({1, 2, 7}))),
                       doctest::Contains("Expected cell size (1, 3, 7), got [1, 2, 7]"), ft::Error);
  nn::LSTMCell<float> cell(5, 7);
  CHECK_THROWS_WITH_AS(cell(ft::Tensor<float, 2>(ft::randn<float>({3, 5})), Var<float, 2>(ft::randn<float>({2, 7}))),
                       doctest::Contains("Expected hidden state of size (3, 7), got [2, 7]"), ft::Error);
  CHECK_THROWS_WITH_AS(nn::LSTM<float>(5, 7, {.proj_size = 7}), doctest::Contains("has to be smaller than hidden_size"),
                       ft::Error);
  CHECK_THROWS_WITH_AS(nn::GRU<float>(5, 7, {.proj_size = 2}), doctest::Contains("proj_size is an LSTM option"),
                       ft::Error);
  // packing: lengths longer than the sequence, a zero length, unsorted lengths when sorted ones are promised
  CHECK_THROWS_WITH_AS(nn::pack_padded_sequence(x, {4, 5, 1}),
                       doctest::Contains("length 5 of sequence 1 is longer than the 4 steps of input [4, 3, 5]"),
                       ft::Error);
  CHECK_THROWS_WITH_AS(nn::pack_padded_sequence(x, {4, 0, 1}),
                       doctest::Contains("Length of all samples has to be greater than 0"), ft::Error);
  CHECK_THROWS_WITH_AS(nn::pack_padded_sequence(x, {2, 4, 1}), doctest::Contains("enforce_sorted"), ft::Error);
  CHECK_THROWS_WITH_AS(nn::pack_padded_sequence(x, {2, 4}), doctest::Contains("expected 3 lengths"), ft::Error);
  auto packed = nn::pack_padded_sequence(x, {2, 4, 1}, false, false);
  CHECK_THROWS_WITH_AS(gru(packed, Var<float, 3>(ft::randn<float>({2, 2, 7}))),
                       doctest::Contains("Expected hidden size (2, 3, 7), got [2, 2, 7]"), ft::Error);
}
