// Writes ONNX files of the models and layers that tests/onnx/check_onnx.py runs in ONNX Runtime:
// for each case <dir>/<case>.onnx (exported on a batch of 3; <case>.onnx.data holds the
// parameters of a case named *_external), <case>.x.npy (a batch of 5: the
// batch dimension is symbolic; a model of several inputs: <case>.x0.npy, <case>.x1.npy, ...) and <case>.y.npy
// (fusedtensor's output on it, in eval mode).
//   export_models <dir>
#include <cstdio>
#include <filesystem>
#include <string>
#include <tuple>
#include <utility>

#include "ft/ft.hpp"

namespace nn = ft::nn;
using ft::index_t;

namespace {

std::string g_dir;
int g_cases = 0;

template <class Model, class X>
void run_case(const std::string& name, Model& model, const X& example, const X& input,
              const ft::onnx::ExportOptions& options = {}) {
  ft::onnx::export_model(model, example, g_dir + "/" + name + ".onnx", options);
  ft::io::save_npy(g_dir + "/" + name + ".x.npy", input);
  ft::NoGradGuard no_grad;
  model.eval();
  using T = ft::float_promote_t<typename decltype(model(input))::value_type>;
  ft::Var<T, decltype(model(input))::rank> y = model(input);
  ft::io::save_npy(g_dir + "/" + name + ".y.npy", y.value());
  ++g_cases;
}

// A model of several inputs: the example and the run's inputs as tuples, saved as <case>.x0.npy,
// <case>.x1.npy, ...; several outputs (a tuple) as <case>.y0.npy, <case>.y1.npy, ...
template <class Model, class... X>
void run_inputs_case(const std::string& name, Model& model, const std::tuple<X...>& example,
                     const std::tuple<X...>& input, const ft::onnx::ExportOptions& options) {
  ft::onnx::export_model(model, example, g_dir + "/" + name + ".onnx", options);
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (ft::io::save_npy(g_dir + "/" + name + ".x" + std::to_string(I) + ".npy", std::get<I>(input)), ...);
  }
  (std::index_sequence_for<X...>{});
  ft::NoGradGuard no_grad;
  model.eval();
  auto y = std::apply(model, input);
  if constexpr (requires { std::tuple_size<decltype(y)>::value; }) {  // several outputs: <case>.y0.npy, ...
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (ft::io::save_npy(g_dir + "/" + name + ".y" + std::to_string(I) + ".npy", std::get<I>(y).value()), ...);
    }
    (std::make_index_sequence<std::tuple_size_v<decltype(y)>>{});
  } else {
    ft::Var<float, decltype(y)::rank> out = y;
    ft::io::save_npy(g_dir + "/" + name + ".y.npy", out.value());
  }
  ++g_cases;
}

// A module whose forward is a function (for the ops that are functions, not layers).
template <class F>
struct Fn : nn::Module<Fn<F>> {
  F f;
  explicit Fn(F fn) : f(fn) {}
  template <class V>
  void visit(V&&) {}
  template <class X>
  auto forward(const X& x) {
    return f(x);
  }
};
template <class F>
void run_fn(const std::string& name, F f, ft::Tensor<float, 2> example, ft::Tensor<float, 2> input) {
  Fn<F> m(f);
  run_case(name, m, example, input);
}

// The digits demo's models (examples/train_digits.cpp).
struct DigitsMLP : nn::Module<DigitsMLP> {
  nn::Flatten flatten;
  nn::Linear<float> fc1{64, 128}, fc2{128, 64}, fc3{64, 10};
  template <class V>
  void visit(V&& v) {
    v("fc1", fc1), v("fc2", fc2), v("fc3", fc3);
  }
  template <class X>
  auto forward(const X& x) {
    return fc3(ft::relu(fc2(ft::relu(fc1(flatten(x))))));
  }
};
struct DigitsCNN : nn::Module<DigitsCNN> {
  nn::Conv2d<float> conv1{1, 16, 3, {.padding = 1}}, conv2{16, 32, 3, {.padding = 1}};
  nn::Flatten flatten;
  nn::Dropout drop{0.2};
  nn::Linear<float> fc{32 * 2 * 2, 10};
  template <class V>
  void visit(V&& v) {
    v("conv1", conv1), v("conv2", conv2), v("drop", drop), v("fc", fc);
  }
  template <class X>
  auto forward(const X& x) {
    auto h = ft::max_pool2d(ft::relu(conv1(x)), 2);
    return fc(drop(flatten(ft::max_pool2d(ft::relu(conv2(h)), 2))));
  }
};
// The nn tour's model (examples/nn_tour.cpp): BatchNorm in eval mode, a reshape by sizes.
struct TourCNN : nn::Module<TourCNN> {
  nn::Conv2d<float> conv{1, 8, 3, {.padding = 1}};
  nn::BatchNorm2d<float> bn{8};
  nn::Linear<float> fc{8 * 4 * 4, 2};
  nn::Dropout drop{0.1};
  template <class V>
  void visit(V&& v) {
    v("conv", conv), v("bn", bn), v("fc", fc), v("drop", drop);
  }
  template <class X>
  auto forward(const X& x) {
    auto h = ft::max_pool2d(ft::relu(bn(conv(x))), 2);
    return fc(drop(h.reshape({h.size(0), -1})));
  }
};
// A pre-norm transformer MLP block on [N, 16, 32] tokens: x + fc2(gelu(fc1(layer_norm(x)))).
struct MlpBlock : nn::Module<MlpBlock> {
  nn::LayerNorm<float, 1> norm{32};
  nn::Linear<float> fc1{32, 64}, fc2{64, 32};
  template <class V>
  void visit(V&& v) {
    v("norm", norm), v("fc1", fc1), v("fc2", fc2);
  }
  template <class X>
  auto forward(const X& x) {
    return x + fc2(ft::gelu(fc1(norm(x))));
  }
};

// Recurrent layers: each layer and direction one ONNX RNN/GRU/LSTM node.
struct LstmTagger : nn::Module<LstmTagger> {  // [B, T, 6] -> [B, T, 16]
  nn::LSTM<float> lstm{6, 8, {.num_layers = 2, .bias = true, .batch_first = true, .bidirectional = true}};
  template <class V>
  void visit(V&& v) {
    v("lstm", lstm);
  }
  template <class X>
  auto forward(const X& x) {
    return lstm(x).output;
  }
};
struct ProjectedLstm : nn::Module<ProjectedLstm> {  // proj_size (unrolled): [B, 5, 6] -> [B, 5, 6]
  nn::LSTM<float> lstm{6, 8, {.num_layers = 2, .batch_first = true, .bidirectional = true, .proj_size = 3}};
  template <class V>
  void visit(V&& v) {
    v("lstm", lstm);
  }
  template <class X>
  auto forward(const X& x) {
    return lstm(x).output;
  }
};
struct ProjectedLstmState : nn::Module<ProjectedLstmState> {  // proj_size, initial states: h_n, c_n
  nn::LSTM<float> lstm{4, 6, {.proj_size = 2}};
  nn::Linear<float> init_h{4, 2}, init_c{4, 6};
  template <class V>
  void visit(V&& v) {
    v("lstm", lstm), v("init_h", init_h), v("init_c", init_c);
  }
  template <class X>
  auto forward(const X& x) {  // x [B, T, 4], sequence-first inside
    const ft::Var<float, 3> s = ft::autograd::to_var(x).transpose(0, 1);
    const ft::Var<float, 2> first = s.select(0, 0);
    const ft::Var<float, 2> h0 = init_h(first), c0 = init_c(first);
    auto r = lstm(s, h0.unsqueeze(0), c0.unsqueeze(0));
    return std::make_tuple(r.h_n.select(0, 0), r.c_n.select(0, 0));
  }
};
struct LstmState : nn::Module<LstmState> {  // [B, T, 5] -> the last cell state as [B, 1, 7]
  nn::LSTM<float> lstm{5, 7, {.batch_first = true}};
  template <class V>
  void visit(V&& v) {
    v("lstm", lstm);
  }
  template <class X>
  auto forward(const X& x) {
    return lstm(x).c_n.transpose(0, 1);
  }
};
struct GruWithState : nn::Module<GruWithState> {  // h0 from the first step: [B, T, 4] -> [B, T, 6]
  nn::Linear<float> init{4, 6};
  nn::GRU<float> gru{4, 6, {.batch_first = true}};
  template <class V>
  void visit(V&& v) {
    v("init", init), v("gru", gru);
  }
  template <class X>
  auto forward(const X& x) {
    ft::Var<float, 2> first = ft::autograd::to_var(x).select(1, 0);
    ft::Var<float, 2> h0 = ft::tanh(init(first));
    return gru(x, h0.unsqueeze(0)).output;
  }
};
struct ReluRnn : nn::Module<ReluRnn> {  // sequence first, [T, 2, 3] -> [T, 2, 5]: the symbolic size is T
  nn::RNN<float> rnn{3, 5, {.num_layers = 2, .bias = false, .nonlinearity = nn::RNNActivation::ReLU}};
  template <class V>
  void visit(V&& v) {
    v("rnn", rnn);
  }
  template <class X>
  auto forward(const X& x) {
    return rnn(x).output;
  }
};

// Attention: the composed form (MatMul, Softmax, MatMul) of the fused kernel.
struct CausalSelfAttention : nn::Module<CausalSelfAttention> {  // [B, 6, 16] -> [B, 6, 16]
  nn::MultiheadAttention<float> mha{16, 4, {.batch_first = true}};
  template <class V>
  void visit(V&& v) {
    v("mha", mha);
  }
  template <class X>
  auto forward(const X& x) {
    return mha.forward(x, x, x, {}, false, {}, true).output;
  }
};
struct EncoderLayer : nn::Module<EncoderLayer> {  // a pre-norm Transformer encoder layer
  nn::TransformerEncoderLayer<float> layer{16, 4, {.dim_feedforward = 32, .batch_first = true, .norm_first = true}};
  template <class V>
  void visit(V&& v) {
    v("layer", layer);
  }
  template <class X>
  auto forward(const X& x) {
    return layer(x);
  }
};

// An encoder layer over padded sequences: forward(x, key_padding_mask), the mask a second graph
// input (true at the padding), read by a traced view, so that each batch brings its own.
struct PaddedEncoder : nn::Module<PaddedEncoder> {
  nn::TransformerEncoderLayer<float> layer{16, 4, {.dim_feedforward = 32, .batch_first = true}};
  template <class V>
  void visit(V&& v) {
    v("layer", layer);
  }
  template <class X>
  auto forward(const X& x, const ft::Tensor<bool, 2>& key_padding_mask) {
    return layer(x, ft::NoMask{}, key_padding_mask);
  }
};
// Self-attention returning its averaged weights too (need_weights): two graph outputs.
struct AttentionWithWeights : nn::Module<AttentionWithWeights> {
  nn::MultiheadAttention<float> mha{16, 4, {.batch_first = true}};
  template <class V>
  void visit(V&& v) {
    v("mha", mha);
  }
  template <class X>
  auto forward(const X& x, const ft::Tensor<bool, 2>& key_padding_mask) {
    auto r = mha.forward(x, x, x, key_padding_mask, /*need_weights=*/true);
    return std::make_tuple(r.output, r.weights);
  }
};
// sequences of length 6 - (b mod 3) in a batch of n: the padding's mask [n, 6]
ft::Tensor<bool, 2> padding_mask(index_t n) {
  const ft::Tensor<std::int64_t, 1> length = 6 - ft::arange<std::int64_t>(0, n) % 3;
  return ft::arange<std::int64_t>(0, 6).reshape({1, 6}) >= length.reshape({n, 1});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  std::filesystem::create_directories(g_dir);
  ft::manual_seed(1);
  auto img = [](index_t n, index_t c, index_t h, std::uint64_t seed) {
    return ft::randn<float>({n, c, h, h}, ft::kCPU, seed);
  };
  auto rows = [](index_t n, index_t k, std::uint64_t seed) { return ft::randn<float>({n, k}, ft::kCPU, seed); };

  // whole models
  DigitsMLP mlp;
  run_case("digits_mlp", mlp, img(3, 1, 8, 1), img(5, 1, 8, 2));
  DigitsCNN cnn;
  run_case("digits_cnn", cnn, img(3, 1, 8, 3), img(5, 1, 8, 4));
  // its parameters of 1 KB or more in digits_cnn_external.onnx.data (check_onnx.py checks that)
  run_case("digits_cnn_external", cnn, img(3, 1, 8, 3), img(5, 1, 8, 4),
           {.external_data = ft::onnx::ExternalData::Always});
  TourCNN tour;  // running statistics that are not the defaults
  tour.bn.running_mean = ft::randn<float>({8}, ft::kCPU, 5);
  tour.bn.running_var = ft::uniform<float>({8}, 0.5f, 2.0f, ft::kCPU, 6);
  run_case("tour_cnn", tour, img(3, 1, 8, 7), img(5, 1, 8, 8));
  MlpBlock block;
  run_case("mlp_block", block, ft::randn<float>({3, 16, 32}, ft::kCPU, 9), ft::randn<float>({5, 16, 32}, ft::kCPU, 10));

  LstmTagger tagger;
  run_case("lstm_bidirectional_2layer", tagger, ft::randn<float>({3, 7, 6}, ft::kCPU, 41),
           ft::randn<float>({5, 7, 6}, ft::kCPU, 42));
  ProjectedLstm projected;
  run_case("lstm_proj_size_bidirectional_2layer", projected, ft::randn<float>({3, 5, 6}, ft::kCPU, 65),
           ft::randn<float>({5, 5, 6}, ft::kCPU, 66));
  ProjectedLstmState projected_state;
  run_inputs_case("lstm_proj_size_initial_state", projected_state,
                  std::make_tuple(ft::randn<float>({3, 4, 4}, ft::kCPU, 67)),
                  std::make_tuple(ft::randn<float>({5, 4, 4}, ft::kCPU, 68)), {.output_names = {"h_n", "c_n"}});
  LstmState lstm_state;
  run_case("lstm_cell_state", lstm_state, ft::randn<float>({3, 4, 5}, ft::kCPU, 43),
           ft::randn<float>({5, 4, 5}, ft::kCPU, 44));
  GruWithState gru;
  run_case("gru_initial_state", gru, ft::randn<float>({3, 6, 4}, ft::kCPU, 45),
           ft::randn<float>({5, 6, 4}, ft::kCPU, 46));
  ReluRnn rnn;
  run_case("rnn_relu_2layer", rnn, ft::randn<float>({3, 2, 3}, ft::kCPU, 47),
           ft::randn<float>({5, 2, 3}, ft::kCPU, 48));

  CausalSelfAttention attention;
  run_case("causal_self_attention", attention, ft::randn<float>({3, 6, 16}, ft::kCPU, 49),
           ft::randn<float>({5, 6, 16}, ft::kCPU, 50));
  EncoderLayer encoder;
  run_case("transformer_encoder_layer", encoder, ft::randn<float>({3, 6, 16}, ft::kCPU, 51),
           ft::randn<float>({5, 6, 16}, ft::kCPU, 52));

  PaddedEncoder padded;
  run_inputs_case("transformer_key_padding_mask", padded,
                  std::make_tuple(ft::randn<float>({3, 6, 16}, ft::kCPU, 61), padding_mask(3)),
                  std::make_tuple(ft::randn<float>({5, 6, 16}, ft::kCPU, 62), padding_mask(5)),
                  {.input_names = {"input", "key_padding_mask"}});
  AttentionWithWeights weighted;
  run_inputs_case("attention_need_weights", weighted,
                  std::make_tuple(ft::randn<float>({3, 6, 16}, ft::kCPU, 63), padding_mask(3)),
                  std::make_tuple(ft::randn<float>({5, 6, 16}, ft::kCPU, 64), padding_mask(5)),
                  {.input_names = {"input", "key_padding_mask"}, .output_names = {"output", "weights"}});

  // layers alone
  nn::Linear<float> linear(12, 7);
  run_case("linear", linear, rows(3, 12, 11), rows(5, 12, 12));
  nn::Conv2d<float> conv(4, 6, 3, {.stride = 2, .padding = {1, 2}, .groups = 2});
  run_case("conv2d_strided_grouped", conv, img(3, 4, 9, 13), img(5, 4, 9, 14));
  nn::Conv2d<float> dilated(3, 5, 3, {.padding = 2, .dilation = 2}, /*has_bias=*/false);
  run_case("conv2d_dilated_nobias", dilated, img(3, 3, 10, 15), img(5, 3, 10, 16));
  nn::Conv1d<float> conv1d(3, 4, 5, {.stride = 2, .padding = 1});
  run_case("conv1d", conv1d, ft::randn<float>({3, 3, 20}, ft::kCPU, 17), ft::randn<float>({5, 3, 20}, ft::kCPU, 18));
  nn::MaxPool2d maxpool(3, 2, 1);
  run_case("max_pool2d", maxpool, img(3, 2, 9, 19), img(5, 2, 9, 20));
  nn::AvgPool2d avgpool(3, 2, 1, /*ceil=*/false, /*include_pad=*/false);
  run_case("avg_pool2d", avgpool, img(3, 2, 9, 21), img(5, 2, 9, 22));
  nn::AdaptiveAvgPool2d global(1);
  run_case("global_avg_pool", global, img(3, 4, 6, 23), img(5, 4, 6, 24));
  nn::AdaptiveAvgPool2d half(3);
  run_case("adaptive_avg_pool", half, img(3, 4, 6, 25), img(5, 4, 6, 26));
  nn::BatchNorm1d<float> bn1(6);
  bn1.running_mean = ft::randn<float>({6}, ft::kCPU, 27);
  bn1.running_var = ft::uniform<float>({6}, 0.5f, 2.0f, ft::kCPU, 28);
  run_case("batch_norm1d", bn1, rows(3, 6, 29), rows(5, 6, 30));
  nn::BatchNorm1d<float> bn_seq(4, {.eps = 1e-3, .affine = false});  // [N, C, L], scale 1 and bias 0
  bn_seq.running_mean = ft::randn<float>({4}, ft::kCPU, 57);
  bn_seq.running_var = ft::uniform<float>({4}, 0.5f, 2.0f, ft::kCPU, 58);
  run_case("batch_norm1d_sequence_no_affine", bn_seq, ft::randn<float>({3, 4, 7}, ft::kCPU, 59),
           ft::randn<float>({5, 4, 7}, ft::kCPU, 60));
  nn::LayerNorm<float, 1> ln(10);
  run_case("layer_norm", ln, rows(3, 10, 31), rows(5, 10, 32));
  nn::LayerNorm<float, 1> ln_plain(10, 1e-5, /*elementwise_affine=*/false);
  run_case("layer_norm_no_affine", ln_plain, rows(3, 10, 33), rows(5, 10, 34));
  nn::Flatten flatten;
  run_case("flatten", flatten, img(3, 2, 4, 35), img(5, 2, 4, 36));
  nn::Embedding<float> embed(20, 6);
  run_case("embedding", embed, ft::randint<std::int64_t>(0, 20, {3, 7}, ft::kCPU, 37),
           ft::randint<std::int64_t>(0, 20, {5, 7}, ft::kCPU, 38));

  // activations and elementwise statements, reductions (as functions)
  const auto a = rows(3, 9, 39), b = rows(5, 9, 40);
  run_fn(
      "relu_sigmoid_tanh", [](const auto& x) { return ft::relu(x) + ft::sigmoid(x) * ft::tanh(x); }, a, b);
  run_fn(
      "gelu_tanh_silu", [](const auto& x) { return ft::gelu(x, "tanh") - ft::silu(x); }, a, b);
  run_fn(
      "leaky_elu_softplus",
      [](const auto& x) { return ft::leaky_relu(x, 0.2) + ft::elu(x, 0.7) + ft::softplus(x) + ft::softplus(x, 2.0); },
      a, b);
  run_fn(
      "exp_log_sqrt_pow",
      [](const auto& x) {
        return ft::exp(x * 0.5f) + ft::log(ft::abs(x) + 1.0f) * ft::sqrt(ft::square(x) + 2.0f) -
               ft::pow(ft::abs(x), 1.5f);
      },
      a, b);
  run_fn(
      "where_clamp_compare",
      [](const auto& x) {
        return ft::where(x > 0.0f, x, x * 0.1f) + ft::clamp(x, -0.5f, 0.5f) + ft::cast<float>(x <= 0.25f);
      },
      a, b);
  run_fn(
      "softmax", [](const auto& x) { return ft::softmax(x, 1); }, a, b);
  run_fn(
      "log_softmax", [](const auto& x) { return ft::log_softmax(x * 2.0f, -1); }, a, b);
  run_fn(
      "sum_mean_max",
      [](const auto& x) {
        return ft::sum(x * x, 1, ft::keepdim) + ft::mean(x, 1, ft::keepdim) - ft::max(x, 1, ft::keepdim) + x;
      },
      a, b);
  run_fn(
      "transpose_matmul", [](const auto& x) { return ft::matmul(x, x.transpose(0, 1)); }, a, b);
  run_fn(
      "selu_celu_shrinks",
      [](const auto& x) {
        return nn::functional::selu(x) + nn::functional::celu(x, 0.6) + nn::functional::softsign(x) +
               nn::functional::tanhshrink(x) + nn::functional::softshrink(x, 0.4) + nn::functional::hardshrink(x, 0.3) +
               nn::functional::logsigmoid(x * 4.0f) + nn::functional::threshold(x, 0.2, -1.0);
      },
      a, b);
  run_fn(
      "softmin_glu",
      [](const auto& x) {
        return nn::functional::softmin(x, 1) + nn::functional::glu(ft::cat({x, x}, 1) * 2.0f);
      },
      a, b);
  nn::PReLU<float> prelu(4);
  prelu.weight.data() = ft::randn<float>({4}, ft::kCPU, 69);
  run_case("prelu_channels", prelu, img(3, 4, 5, 70), img(5, 4, 5, 71));
  nn::MaxPool1d pool1d(3, 2, 1);
  run_case("max_pool1d", pool1d, ft::randn<float>({3, 4, 11}, ft::kCPU, 74),
           ft::randn<float>({5, 4, 11}, ft::kCPU, 75));
  nn::AdaptiveMaxPool2d global_max(1), max_half(3);
  run_case("global_max_pool", global_max, img(3, 4, 6, 78), img(5, 4, 6, 79));
  run_case("adaptive_max_pool", max_half, img(3, 4, 6, 80), img(5, 4, 6, 81));
  nn::LocalResponseNorm lrn(3, 0.3, 0.6, 1.5);
  run_case("local_response_norm", lrn, img(3, 5, 4, 76), img(5, 5, 4, 77));
  nn::RReLU rrelu(0.1, 0.3);  // exported in eval mode: the mean slope
  run_case("rrelu_eval", rrelu, rows(3, 9, 72), rows(5, 9, 73));
  std::printf("exported %d cases into %s\n", g_cases, g_dir.c_str());
  return 0;
}
