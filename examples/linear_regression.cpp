// Linear regression, the hello world of training: synthetic data in a TensorDataset, a
// shuffled DataLoader, nn::Linear, MSE and SGD with momentum; checks the learned weights.
#include <cmath>
#include <cstdio>

#include "ft/data.hpp"
#include "ft/ft.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"

int main() {
  ft::manual_seed(0);
  const ft::index_t n = 1024, features = 3;
  // y = X · [2, -3.4, 0.5] + 4.2 + noise
  auto true_w = ft::from_vector<float>({2.0f, -3.4f, 0.5f}, {features, 1});
  const float true_b = 4.2f;
  auto X = ft::randn<float>({n, features});
  ft::Tensor<float, 2> y = ft::matmul(X, true_w) + true_b + ft::randn<float>({n, 1}) * 0.01f;

  ft::data::DataLoader loader(ft::data::TensorDataset(X, y), {.batch_size = 32, .shuffle = true, .seed = 1});
  ft::nn::Linear<float> model(features, 1);
  ft::optim::SGD opt(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  for (int epoch = 1; epoch <= 5; ++epoch) {
    double total = 0;
    for (auto& [xb, yb] : loader) {
      opt.zero_grad();
      ft::Var<float, 0> loss = ft::nn::functional::mse_loss(model(xb), yb);
      loss.backward();
      opt.step();
      total += loss.value().item() * double(xb.size(0));
    }
    std::printf("epoch %d: mse %.6f\n", epoch, total / double(n));
  }
  auto w = model.weight.value().to_vector();
  const float b = model.bias.value().item();
  std::printf("learned w = [%.3f, %.3f, %.3f], b = %.3f (true [2, -3.4, 0.5], 4.2)\n", w[0], w[1], w[2], b);
  const bool ok = std::abs(w[0] - 2.0f) < 0.01f && std::abs(w[1] + 3.4f) < 0.01f && std::abs(w[2] - 0.5f) < 0.01f &&
                  std::abs(b - true_b) < 0.01f;
  return ok ? 0 : 1;
}
