// The interface between the two halves: types of the library cross it freely, since both
// files are built with FT_CUDA=1 (ft::ft_cuda).
#pragma once

// Each file includes the headers it uses: in an nvcc file every kernel that an inline function of
// an included header instantiates is compiled (model.cu with ft/ft.hpp took 54 s at the quick
// settings, with these 26 s).
#include <ft/nn/layers.hpp>
#include <ft/nn/module.hpp>
#include <memory>

struct Mlp : ft::nn::Module<Mlp> {
  ft::nn::Linear<float> fc1, fc2;
  template <class V>
  void visit(V&& v) {
    v("fc1", fc1);
    v("fc2", fc2);
  }
};

// Defined in model.cu (nvcc): construction (initialisation kernels), forward and loss.
std::unique_ptr<Mlp> make_model(ft::Device device);
ft::Var<float, 2> forward(Mlp& model, const ft::Tensor<float, 2>& x);
ft::Var<float, 0> loss_of(Mlp& model, const ft::Tensor<float, 2>& x, const ft::Tensor<std::int64_t, 1>& y);
// How many launchers model.cu registered for the program's g++ files (kernels.hpp).
std::size_t registered_kernels();
