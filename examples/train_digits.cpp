// The main demo: an MLP and a small CNN trained on the shipped 8×8 digits, on the best device
// there is, with a progress bar, TensorBoard logs and a checkpoint; prints the test accuracy.
//
//   ./train_digits [--epochs N] [--device cpu|cuda] [--logdir runs/digits] [--workers N] [--amp]
//   tensorboard --logdir runs          # then open http://localhost:6006
//
// --amp: mixed precision — the forward (and so the backward) under ft::autocast (bfloat16 GEMMs
// and convolutions on the CPU, float16 on CUDA), with a gradient scaler on CUDA.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ft/data.hpp"
#include "ft/ft.hpp"
#include "ft/io.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"
#include "ft/utils.hpp"

namespace nn = ft::nn;
namespace F = ft::nn::functional;

// 64 pixels → 128 → 64 → 10 classes.
struct MLP : nn::Module<MLP> {
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

// Two 3×3 convolutions with pooling (8×8 → 4×4 → 2×2), then a linear classifier.
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

struct Settings {
  int epochs = 30;
  int workers = 0;
  ft::Device device = ft::cuda::is_available() ? ft::Device(ft::kCUDA, 0) : ft::Device(ft::kCPU);
  std::string logdir = "runs/digits";
  bool amp = false;
};

// Fraction of the loader's samples whose largest logit is the label.
template <class Model, class Loader>
double accuracy(Model& model, Loader& loader) {
  ft::NoGradGuard no_grad;
  model.eval();
  std::int64_t correct = 0, total = 0;
  for (auto& [x, y] : loader) {
    ft::Var<float, 2> logits = model(x);
    ft::Tensor<std::int64_t, 0> hits = ft::sum(ft::cast<std::int64_t>(ft::argmax(logits.value(), 1) == y));
    correct += hits.item();
    total += y.size(0);
  }
  model.train();
  return double(correct) / double(total);
}

// TensorBoard's image panels: the test digits the model gets wrong (up to 32, 8 a row, enlarged)
// and the confusion matrix (row: the true digit, column: the predicted one; brighter: more of
// the row's samples).
template <class Model, class Loader>
void log_mistakes(Model& model, Loader& loader, ft::utils::SummaryWriter& writer, std::int64_t step) {
  ft::NoGradGuard no_grad;
  model.eval();
  std::vector<ft::Tensor<float, 3>> wrong;
  std::vector<double> confusion(100, 0.0);
  for (auto& [x, y] : loader) {
    ft::Var<float, 2> logits = model(x);
    const auto pred = ft::Tensor<std::int64_t, 1>(ft::argmax(logits.value(), 1)).to_vector();
    const auto truth = y.to_vector();
    const ft::Tensor<float, 4> images = x.to(ft::kCPU);
    for (std::size_t i = 0; i < pred.size(); ++i) {
      confusion[static_cast<std::size_t>(truth[i] * 10 + pred[i])] += 1;
      if (pred[i] != truth[i] && wrong.size() < 32) wrong.push_back(images.select(0, static_cast<ft::index_t>(i)));
    }
  }
  model.train();
  if (!wrong.empty()) {
    ft::Tensor<float, 4> batch = ft::interpolate(ft::stack(wrong), {32, 32}, "nearest");  // 8×8 → 32×32
    writer.add_images("test/misclassified", batch, step);
  }
  auto matrix = ft::zeros<float>({1, 160, 160});  // 16×16 pixels a cell
  for (int t = 0; t < 10; ++t) {
    double row = 0;
    for (int p = 0; p < 10; ++p) row += confusion[static_cast<std::size_t>(t * 10 + p)];
    for (int p = 0; p < 10; ++p)
      matrix.slice(1, 16 * t, 16 * t + 16).slice(2, 16 * p, 16 * p + 16) =
          static_cast<float>(row > 0 ? confusion[static_cast<std::size_t>(t * 10 + p)] / row : 0.0);
  }
  writer.add_image("test/confusion_matrix", matrix, step);
}

template <class Model, class Train, class Test>
double fit(const char* name, Model& model, Train& train, Test& test, const Settings& s) {
  model.to(s.device);
  ft::optim::AdamW opt(model.parameters(), {.lr = 3e-3, .weight_decay = 1e-4});
  ft::optim::OneCycleLR schedule(opt, 1e-2, {.total_steps = s.epochs * static_cast<int>(train.len())});
  ft::utils::SummaryWriter writer(s.logdir + "/" + name);
  // float16 gradients can underflow: a scaler for CUDA's float16 (bfloat16 has float's range)
  ft::amp::GradScaler scaler({.enabled = s.amp && s.device.is_cuda()});
  std::int64_t step = 0;
  double test_acc = 0;
  for (int epoch = 1; epoch <= s.epochs; ++epoch) {
    char desc[64];  // (a chain of std::string + trips GCC 12's -Wrestrict false positive at -O3)
    std::snprintf(desc, sizeof desc, "%s epoch %d", name, epoch);
    ft::utils::ProgressBar bar(train.len(), {.desc = desc});
    double loss_sum = 0;
    for (auto& [x, y] : train) {
      opt.zero_grad();
      std::optional<ft::autocast> mixed;
      if (s.amp) mixed.emplace(s.device.type);  // the GEMMs and convolutions in the lower precision
      ft::Var<float, 0> loss = F::cross_entropy(model(x), y);
      mixed.reset();
      ft::Var<float, 0> scaled = scaler.scale(loss);
      scaled.backward();
      scaler.step(opt);
      scaler.update();
      schedule.step();
      const double l = loss.value().item();
      loss_sum += l;
      writer.add_scalar("train/loss", l, step++);
      bar.set_postfix({{"loss", l}});
      bar.update();
    }
    test_acc = accuracy(model, test);
    bar.set_postfix({{"loss", loss_sum / double(train.len())}, {"test_acc", test_acc}});
    bar.close();
    writer.add_scalar("test/accuracy", test_acc, step);
    writer.add_scalar("train/lr", opt.lr(), step);
    for (const auto& [pname, p] : model.named_parameters()) writer.add_histogram("weights/" + pname, p.value(), step);
  }
  log_mistakes(model, test, writer, step);
  ft::io::save_checkpoint(s.logdir + "/" + name + ".ckpt", model, opt,
                          {{"epochs", std::to_string(s.epochs)}, {"test_accuracy", std::to_string(test_acc)}});
  return test_acc;
}

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const bool value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--amp")) {
      s.amp = true;
    } else if (value && !std::strcmp(argv[i], "--epochs")) {
      s.epochs = std::atoi(argv[++i]);
    } else if (value && !std::strcmp(argv[i], "--workers")) {
      s.workers = std::atoi(argv[++i]);
    } else if (value && !std::strcmp(argv[i], "--logdir")) {
      s.logdir = argv[++i];
    } else if (value && !std::strcmp(argv[i], "--device")) {
      s.device = std::strcmp(argv[++i], "cuda") ? ft::Device(ft::kCPU) : ft::Device(ft::kCUDA, 0);
    } else {
      std::fprintf(stderr, "usage: %s [--epochs N] [--device cpu|cuda] [--logdir DIR] [--workers N] [--amp]\n",
                   argv[0]);
      return 2;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  ft::manual_seed(0);
  ft::data::Digits digits;  // data/digits.csv.gz
  auto [train_set, test_set] = ft::data::train_test_split(digits, 0.2, /*seed=*/0);
  ft::data::DataLoader train(
      train_set, {.batch_size = 64, .shuffle = true, .seed = 0, .num_workers = s.workers, .device = s.device});
  ft::data::DataLoader test(test_set, {.batch_size = 512, .device = s.device});
  std::printf("digits: %lld training and %lld test images of 8x8 on %s%s; logs in %s\n", (long long)train_set.size(),
              (long long)test_set.size(), s.device.is_cuda() ? "CUDA" : "the CPU",
              s.amp ? (s.device.is_cuda() ? ", float16 autocast" : ", bfloat16 autocast") : "", s.logdir.c_str());

  MLP mlp;
  CNN cnn;
  const double mlp_acc = fit("mlp", mlp, train, test, s);
  const double cnn_acc = fit("cnn", cnn, train, test, s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("test accuracy: MLP %.2f%%, CNN %.2f%% (%.1f s; checkpoints %s/{mlp,cnn}.ckpt)\n", 100 * mlp_acc,
              100 * cnn_acc, seconds, s.logdir.c_str());
  return std::max(mlp_acc, cnn_acc) >= 0.97 ? 0 : 1;
}
