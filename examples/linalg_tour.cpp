// Reductions, row-wise composites and the library boundaries (matmul, conv, pooling) in one
// small classifier forward pass, and einsum. Prints each result and how many launches it took.
#include <cstdio>
#include <ft/ft.hpp>
#include <iostream>

int main() {
  ft::Device dev = ft::cuda::is_available() ? ft::Device(ft::kCUDA) : ft::Device(ft::kCPU);
  auto count = [&](const char* what, auto&& f) {
    ft::stats::reset();
    f();
    std::printf("%-44s %lld launch(es)\n", what, static_cast<long long>(ft::stats::launches(dev)));
  };

  // a dense head: linear → softmax → argmax → cross-entropy (issue #3's "done when")
  auto x = ft::randn<float>({256, 1000}, dev, 3);
  auto W = ft::randn<float>({10, 1000}, dev, 4);
  auto b = ft::zeros<float>({10}, dev);
  ft::Tensor<float, 2> logits, p;
  ft::Tensor<std::int64_t, 1> t;
  count("logits = linear(x, W, b)", [&] { logits = ft::linear(x, W, b); });  // GEMM + bias add
  count("p = softmax(logits, 1)", [&] { p = ft::softmax(logits, 1); });
  count("t = argmax(p, 1)", [&] { t = ft::argmax(p, 1); });
  float loss = 0;
  count("loss = cross_entropy(logits, t)", [&] { loss = ft::cross_entropy(logits, t).item(); });
  ft::Tensor<float, 1> s;
  count("s = sum(x * x, 1)", [&] { s = ft::sum(x * x, 1); });  // fused: one launch
  ft::Tensor<float, 2> centred;
  count("centred = x - max(x, 1, keepdim)", [&] { centred = x - ft::max(x, 1, ft::keepdim); });  // two
  std::printf("loss %.4f, |x| %.2f, mean(s) %.2f\n", loss, ft::eval(ft::norm(x)).item(), ft::eval(ft::mean(s)).item());

  // a convolutional stem: conv → relu → max-pool → layer norm over (C, H, W)
  auto img = ft::randn<float>({2, 3, 16, 16}, dev, 5);
  auto k = ft::randn<float>({8, 3, 3, 3}, dev, 6) * 0.2f;
  auto kb = ft::zeros<float>({8}, dev);
  ft::Tensor<float, 4> h;
  count("h = max_pool2d(relu(conv2d(img, k, kb)), 2)",
        [&] { h = ft::max_pool2d(ft::relu(ft::conv2d(img, k, kb, {.stride = 1, .padding = 1})), 2); });
  // a thumbnail: antialiased bicubic (each output reads a 4·scale window, as PIL), fused with its consumer
  ft::Tensor<float, 4> thumb;
  count("thumb = relu(interpolate(img, {4, 4}, bicubic, antialias))", [&] {
    thumb = ft::relu(ft::interpolate(img, {4, 4}, "bicubic", false, /*antialias=*/true));
  });
  auto ln = ft::layer_norm(h, 3);
  std::cout << "pooled shape " << h.shape() << ", per-sample mean after layer_norm "
            << ft::eval(ft::mean(ln.output.reshape({2, -1}), 1)) << "\n";

  // einsum: subscripts checked at compile time; one GEMM per pair of operands
  auto q = ft::randn<float>({2, 4, 5, 8}, dev, 7), kk = ft::randn<float>({2, 4, 6, 8}, dev, 8);
  ft::Tensor<float, 4> scores;
  count("scores = einsum<\"bhqd,bhkd->bhqk\">(q, k)", [&] { scores = ft::einsum<"bhqd,bhkd->bhqk">(q, kk); });
  auto A = ft::randn<float>({6, 6}, dev, 9), B = ft::randn<float>({6, 3}, dev, 10),
       C = ft::randn<float>({3, 2}, dev, 11);
  ft::Tensor<float, 2> chain;
  count("chain = einsum<\"ij,jk,kl->il\">(A, B, C)", [&] { chain = ft::einsum<"ij,jk,kl->il">(A, B, C); });
  ft::Tensor<float, 0> tr = ft::einsum<"ii">(A);  // a repeated label: the diagonal, here summed (the trace)
  std::cout << "scores " << scores.shape() << ", chain " << chain.shape() << ", trace(A) " << tr.item() << "\n";
}
