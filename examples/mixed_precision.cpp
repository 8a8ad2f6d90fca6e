// Mixed precision in fusedtensor: the two-byte types, a model built in bfloat16 with fp32 master
// weights, and ft::autocast with a gradient scaler for a float model.
#include <cstdio>

#include "ft/ft.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"

namespace F = ft::nn::functional;

int main() {
  // Storage types: two bytes a value; a statement computes in float and rounds once, at its store.
  ft::Tensor<float, 1> x = ft::linspace<float>(-1.0, 3.0, 8);
  ft::Tensor<ft::bfloat16, 1> b = ft::cast<ft::bfloat16>(x);
  ft::Tensor<ft::bfloat16, 1> y = ft::tanh(b) * 3 + b;  // bfloat16 (a weak scalar keeps the type): one launch
  std::printf("bfloat16 uses %zu bytes a value; sum in float, rounded: %g\n", sizeof(ft::bfloat16),
              static_cast<float>(ft::Tensor<ft::bfloat16, 0>(ft::sum(y)).item()));

  // A model in bfloat16: parameters, activations and gradients take half the bytes; the optimizer
  // steps fp32 master copies of the parameters (set_master_weights(false) to save that memory).
  ft::manual_seed(0);
  ft::nn::Linear<ft::bfloat16> fc(16, 4);
  ft::optim::AdamW opt(fc.parameters(), {.lr = 1e-2});
  ft::Tensor<ft::bfloat16, 2> inputs = ft::cast<ft::bfloat16>(ft::randn<float>({32, 16}));
  ft::Tensor<std::int64_t, 1> labels = ft::randint<std::int64_t>(0, 4, {32});
  for (int step = 0; step < 20; ++step) {
    opt.zero_grad();
    ft::Var<ft::bfloat16, 0> loss = F::cross_entropy(fc(inputs), labels);
    loss.backward();
    opt.step();
    if (step % 10 == 0)
      std::printf("bfloat16 model, step %2d: loss %.4f\n", step, static_cast<float>(loss.value().item()));
  }

  // A float model under autocast: its matmuls and convolutions run in bfloat16 (float16 on CUDA)
  // with float accumulation, everything else in float; the scaler guards float16's range.
  ft::nn::Linear<float> fc32(16, 4);
  ft::optim::SGD sgd(fc32.parameters(), {.lr = 0.1});
  ft::amp::GradScaler scaler;
  ft::Tensor<float, 2> inputs32 = ft::cast<float>(inputs);
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    ft::Var<float, 0> loss;
    {
      ft::autocast guard(ft::kCPU, ft::kBFloat16);
      loss = F::cross_entropy(fc32(inputs32), labels);
    }
    ft::Var<float, 0> scaled = scaler.scale(loss);
    scaled.backward();  // the linear's gradient GEMMs run in bfloat16 too
    scaler.step(sgd);   // unscales, skips the step if a gradient is inf or NaN
    scaler.update();
    if (step % 10 == 0)
      std::printf("autocast, step %2d: loss %.4f (scale %g)\n", step, loss.value().item(), scaler.get_scale());
  }
  return 0;
}
