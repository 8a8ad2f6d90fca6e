// Images from a folder tree, as a torchvision user keeps them: the shipped digits are written as
// PNG files into <dir>/{train,test}/<digit>/<n>.png, read back by ft::vision::ImageFolder with
// torchvision-style augmentation (seeded per sample by the DataLoader, the same with any number
// of workers), a small CNN is trained on them, and a grid of augmented samples is saved.
//
//   ./image_folder [--dir runs/digits_png] [--epochs N] [--workers N]
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "ft/ft.hpp"

namespace nn = ft::nn;
namespace v = ft::vision;

struct CNN : nn::Module<CNN> {
  nn::Conv2d<float> conv1{1, 16, 3, {.padding = 1}}, conv2{16, 32, 3, {.padding = 1}};
  nn::Flatten flatten;
  nn::Linear<float> fc{32 * 4 * 4, 10};
  template <class V>
  void visit(V&& visitor) {
    visitor("conv1", conv1), visitor("conv2", conv2), visitor("fc", fc);
  }
  template <class X>
  auto forward(const X& x) {  // 16×16 → 8×8 → 4×4
    auto h = ft::max_pool2d(ft::relu(conv1(x)), 2);
    return fc(flatten(ft::max_pool2d(ft::relu(conv2(h)), 2)));
  }
};

// Each digit (8×8 in [0, 1]) as a 16×16 gray PNG in <root>/<label>/<index>.png.
template <class Dataset>
void write_pngs(const Dataset& digits, const std::filesystem::path& root) {
  for (ft::index_t i = 0; i < digits.size(); ++i) {
    auto [image, label] = digits.get(i);
    const auto dir = root / std::to_string(label.item());
    std::filesystem::create_directories(dir);
    ft::Tensor<float, 3> big = v::resize(image, {16, 16});
    ft::vision::write_png(v::to_uint8_image(big), (dir / (std::to_string(i) + ".png")).string());
  }
}

int main(int argc, char** argv) {
  std::string dir = "runs/digits_png";
  int epochs = 8, workers = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--workers")) workers = std::atoi(argv[i + 1]);
  }
  ft::manual_seed(0);
  ft::data::Digits digits;
  auto [train_digits, test_digits] = ft::data::train_test_split(digits, 0.2, /*seed=*/0);
  std::filesystem::remove_all(dir);
  write_pngs(train_digits, std::filesystem::path(dir) / "train");
  write_pngs(test_digits, std::filesystem::path(dir) / "test");

  // gray images; training crops 16×16 from the image padded by 2, and varies brightness and contrast
  // (saturation and hue would change nothing on one channel)
  const v::ImageFolderOptions gray{.mode = v::ImageReadMode::GRAY};
  v::ImageFolder train(
      dir + "/train",
      v::Compose(v::RandomCrop(16, {.padding = {2}}), v::ColorJitter{.brightness = 0.3, .contrast = 0.3}, v::ToTensor(),
                 v::Normalize({0.5}, {0.5})),
      gray);
  v::ImageFolder test(dir + "/test", v::Compose(v::ToTensor(), v::Normalize({0.5}, {0.5})), gray);
  std::printf("%s: %lld training and %lld test PNGs in %zu classes\n", dir.c_str(), (long long)train.size(),
              (long long)test.size(), train.classes().size());
  ft::data::DataLoader train_loader(train, {.batch_size = 64, .shuffle = true, .seed = 1, .num_workers = workers});
  ft::data::DataLoader test_loader(test, {.batch_size = 256});

  CNN model;
  ft::optim::AdamW opt(model.parameters(), {.lr = 3e-3});
  ft::optim::CosineAnnealingLR schedule(opt, epochs);  // the last epochs settle at small steps
  double acc = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    for (auto& [x, y] : train_loader) {
      opt.zero_grad();
      ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(model(x), y);
      loss.backward();
      opt.step();
    }
    schedule.step();
    ft::NoGradGuard no_grad;
    std::int64_t correct = 0;
    for (auto& [x, y] : test_loader) {
      ft::Var<float, 2> logits = model(x);
      correct +=
          ft::Tensor<std::int64_t, 0>(ft::sum(ft::cast<std::int64_t>(ft::argmax(logits.value(), 1) == y))).item();
    }
    acc = double(correct) / double(test.size());
    std::printf("epoch %d: test accuracy %.2f%%\n", epoch, 100 * acc);
  }
  // the first augmented batch of the next epoch, as torchvision.utils.save_image would write it
  auto first = *train_loader.begin();
  v::save_image(first.data, dir + "/augmented.png", {.nrow = 16, .normalize = true});
  // read_frames gives every frame of an animated WebP or every page of a TIFF (a PNG has one)
  std::printf("augmented samples: %s/augmented.png (%zu frame)\n", dir.c_str(),
              v::read_frames(dir + "/augmented.png").size());
  return acc >= 0.95 ? 0 : 1;
}
