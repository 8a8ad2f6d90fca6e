// The host half, compiled by g++: data, the training loop, the optimizer and a checkpoint.
// The model's forward is in model.cu; tensors and Vars cross between the two.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ft/data.hpp>
#include <ft/io/checkpoint.hpp>
#include <ft/optim/sgd.hpp>

#include "model.hpp"

// A kernel no nvcc file of the program compiled: launching it from g++ is an ft::Error.
struct NeverCompiled {
  static void launch(int);
};

int main() {
  static_assert(FT_CUDA_ENABLED && !FT_CUDA_KERNELS, "main.cpp is the g++ half of a CUDA build");
  try {
    ft::cuda::launch_kernel<NeverCompiled>("probe", 1);
    return 1;
  } catch (const ft::Error& e) {
    if (!std::strstr(e.what(), "its CUDA kernel was not compiled")) return 1;
  }
  const ft::Device device = ft::cuda::is_available() ? ft::Device(ft::kCUDA, 0) : ft::kCPU;
  ft::data::Digits digits;
  ft::data::DataLoader loader(digits, {.batch_size = 128, .shuffle = true, .seed = 1, .device = device});
  auto model = make_model(device);
  ft::optim::SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 3; ++epoch) {
    double total = 0;
    int batches = 0;
    for (auto& [x, y] : loader) {
      opt.zero_grad();
      ft::Var<float, 0> loss = loss_of(*model, x.reshape({x.size(0), 64}), y);
      loss.backward();
      opt.step();
      total += loss.value().item();
      ++batches;
    }
    (epoch == 0 ? first : last) = total / batches;
  }
  // copies and checkpoints need no kernel of this file's own
  auto w = model->fc1.weight.value().to(ft::kCPU).clone();
  const auto path = std::filesystem::temp_directory_path() / "ft_consumer_mixed.ckpt";
  ft::io::save_checkpoint(path.string(), *model, opt, {{"epochs", "3"}});
  auto restored = make_model(device);
  ft::optim::SGD opt2(restored->parameters(), {.lr = 0.1});
  ft::io::load_checkpoint(path.string(), *restored, opt2);
  std::filesystem::remove(path);
  const bool same = restored->fc1.weight.value().to(ft::kCPU).to_vector() == w.to_vector();
  std::printf("mixed consumer on %s: loss %.3f -> %.3f, checkpoint %s, %zu kernels registered by model.cu\n",
              device.is_cpu() ? "cpu" : "cuda", first, last, same ? "restored" : "DIFFERS", registered_kernels());
  if (!(last < first) || !same || registered_kernels() == 0) return 1;
  std::printf("consumer ok\n");
  return 0;
}
