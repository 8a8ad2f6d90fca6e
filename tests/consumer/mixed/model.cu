// The model's half of the program, compiled by nvcc: its kernels (forward, backward,
// initialisation, and the optimizer step main.cpp calls) are compiled here.
#include <ft/nn/loss.hpp>
#include <ft/optim/sgd.hpp>

#include "model.hpp"

std::unique_ptr<Mlp> make_model(ft::Device device) {
  auto m = std::make_unique<Mlp>();
  m->fc1 = ft::nn::Linear<float>(64, 32, true, device);
  m->fc2 = ft::nn::Linear<float>(32, 10, true, device);
  return m;
}

ft::Var<float, 2> forward(Mlp& model, const ft::Tensor<float, 2>& x) {
  ft::Var<float, 2> h = ft::relu(model.fc1(x));
  return model.fc2(h);
}

ft::Var<float, 0> loss_of(Mlp& model, const ft::Tensor<float, 2>& x, const ft::Tensor<std::int64_t, 1>& y) {
  return ft::nn::functional::cross_entropy(forward(model, x), y);
}

// Never called: instantiating the optimizer step here compiles its GPU kernel, which main.cpp's
// opt.step() then finds at run time on a GPU.
void instantiate_optimizer_kernels(ft::optim::SGD& opt) { opt.step(); }

std::size_t registered_kernels() {
  auto& r = ft::detail::kernel_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.launchers.size();
}
