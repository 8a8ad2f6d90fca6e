// Train, then deploy: the digits CNN trained for a few epochs and exported as an ONNX file,
// which ONNX Runtime (or TensorRT, OpenVINO) runs without fusedtensor. The batch dimension of
// the file is symbolic: any batch size runs.
//
//   ./export_onnx [--out runs/digits_cnn.onnx] [--epochs N]
//   python3 -c "import onnxruntime as ort, numpy as np
//   s = ort.InferenceSession('runs/digits_cnn.onnx')
//   print(s.run(None, {'pixels': np.random.rand(5, 1, 8, 8).astype('float32')})[0].argmax(1))"
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>

#include "ft/ft.hpp"

namespace nn = ft::nn;

struct CNN : nn::Module<CNN> {
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

// Several outputs: a forward that returns a std::tuple (the logits and the probabilities) has one
// graph output each; a std::tuple of example inputs would make one graph input each.
struct WithProbabilities : nn::Module<WithProbabilities> {
  CNN* cnn;
  explicit WithProbabilities(CNN& m) : cnn(&m) {}
  template <class V>
  void visit(V&& v) {
    v("cnn", *cnn);
  }
  template <class X>
  auto forward(const X& x) {
    ft::Var<float, 2> logits = (*cnn)(x);
    return std::make_tuple(logits, ft::Var<float, 2>(ft::softmax(logits, 1)));
  }
};

int main(int argc, char** argv) {
  std::string out = "runs/digits_cnn.onnx";
  int epochs = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::atoi(argv[i + 1]);
  }
  ft::manual_seed(0);
  ft::data::Digits digits;
  auto [train_set, test_set] = ft::data::train_test_split(digits, 0.2, /*seed=*/0);
  ft::data::DataLoader train(train_set, {.batch_size = 64, .shuffle = true, .seed = 0});
  ft::data::DataLoader test(test_set, {.batch_size = 512});

  CNN model;
  ft::optim::AdamW opt(model.parameters(), {.lr = 3e-3});
  for (int epoch = 0; epoch < epochs; ++epoch)
    for (auto& [x, y] : train) {
      opt.zero_grad();
      ft::Var<float, 0> loss = nn::functional::cross_entropy(model(x), y);
      loss.backward();
      opt.step();
    }
  model.eval();
  ft::NoGradGuard no_grad;
  std::int64_t correct = 0;
  for (auto& [x, y] : test) {
    ft::Var<float, 2> logits = model(x);
    correct += ft::Tensor<std::int64_t, 0>(ft::sum(ft::cast<std::int64_t>(ft::argmax(logits.value(), 1) == y))).item();
  }
  const double acc = double(correct) / double(test_set.size());

  // the graph of the forward on an example batch; its first dimension becomes "batch"
  if (std::filesystem::path(out).has_parent_path())
    std::filesystem::create_directories(std::filesystem::path(out).parent_path());
  ft::onnx::export_model(model, ft::zeros<float>({1, 1, 8, 8}), out,
                         {.opset = 17, .input_names = {"pixels"}, .output_names = {"logits"}});
  std::printf("test accuracy %.2f%%; exported %s (%ju bytes)\n", 100 * acc, out.c_str(),
              static_cast<std::uintmax_t>(std::filesystem::file_size(out)));
  WithProbabilities both(model);
  const std::string two = (std::filesystem::path(out).parent_path() / "digits_cnn_probabilities.onnx").string();
  ft::onnx::export_model(both, ft::zeros<float>({1, 1, 8, 8}), two,
                         {.input_names = {"pixels"}, .output_names = {"logits", "probabilities"}});
  std::printf("and %s (two outputs: logits, probabilities)\n", two.c_str());
  std::printf(
      "run it:\n  python3 -c \"import onnxruntime as ort, numpy as np; s = ort.InferenceSession('%s'); "
      "print(s.run(None, {'pixels': np.random.rand(5, 1, 8, 8).astype('float32')})[0].argmax(1))\"\n",
      out.c_str());
  return acc >= 0.95 ? 0 : 1;
}
