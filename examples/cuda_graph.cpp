// A training step captured once as a CUDA graph and replayed: one launch a step instead of a
// few hundred. Without a GPU (or built without CUDA) the same loop runs eagerly on the CPU.
#include <cstdio>

#include "ft/ft.hpp"

int main() {
  const bool gpu = ft::cuda::is_available();
  const ft::Device dev = gpu ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU);
  ft::manual_seed(0);
  ft::nn::Linear<float> fc1(32, 64, true, dev), fc2(64, 4, true, dev);
  ft::nn::ParameterList params = fc1.parameters();
  for (const auto& p : fc2.parameters()) params.push_back(p);
  ft::optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});

  // the graph's static inputs: refilled in place before each replay (an expression assigned to
  // a tensor writes its elements; a tensor assigned to a temporary handle copies them)
  auto x = ft::zeros<float>({128, 32}, dev);
  auto y = ft::zeros<std::int64_t>({128}, dev);
  auto next_batch = [&](int k) {
    auto xs = ft::randn<float>({128, 32}, dev, 10 + static_cast<std::uint64_t>(k));
    std::move(x) = xs;  // copies the values in (a named `x = xs` would rebind x)
    y = ft::cast<std::int64_t>(xs.select(1, 0) > 0.0f) + ft::cast<std::int64_t>(xs.select(1, 1) > 0.0f) * 2;
  };
  ft::Var<float, 0> loss;
  auto step = [&] {
    opt.zero_grad();
    loss = ft::nn::functional::cross_entropy(fc2(ft::relu(fc1(x))), y);
    loss.backward();
    opt.step();
  };

  next_batch(0);
  step();  // warm-up: creates the momentum buffers (a capture cannot)
  ft::cuda::Graph graph;
  if (gpu) graph.capture(dev, step);  // records the step; runs nothing
  for (int k = 1; k <= 200; ++k) {
    next_batch(k);
    if (gpu)
      graph.replay();  // one launch
    else
      step();
  }
  const float last = loss.value().item();
  std::printf("%s: loss after 200 steps %.4f\n", gpu ? "CUDA graph replays" : "eager CPU steps (no GPU)", last);
  return last < 0.5f ? 0 : 1;
}
