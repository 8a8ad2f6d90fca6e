// A tour of ft::nn and ft::optim: modules, a training loop, schedulers, state dicts, metric
// learning with a triplet loss and cdist, and the recurrent layers.
#include <cstdio>

#include "ft/ft.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"

// A model of your own: members listed once in visit(), forward() as a template.
struct SmallCNN : ft::nn::Module<SmallCNN> {
  ft::nn::Conv2d<float> conv{1, 8, 3, {.padding = 1}};
  ft::nn::BatchNorm2d<float> bn{8};
  ft::nn::Linear<float> fc{8 * 4 * 4, 2};
  ft::nn::Dropout drop{0.1};
  template <class V>
  void visit(V&& v) {
    v("conv", conv), v("bn", bn), v("fc", fc), v("drop", drop);
  }
  template <class X>
  auto forward(const X& x) {
    // BatchNorm's output, the relu and the pooling's input: the relu fuses into the pooling's read
    auto h = ft::max_pool2d(ft::relu(bn(conv(x))), 2);
    return fc(drop(h.reshape({h.size(0), -1})));
  }
};

int main() {
  ft::manual_seed(0);

  // 1. The example: an MLP driven to near-zero loss with Adam.
  ft::nn::Sequential<ft::nn::Linear<float>, ft::nn::ReLU, ft::nn::Linear<float>> net(
      ft::nn::Linear<float>(784, 128), ft::nn::ReLU(), ft::nn::Linear<float>(128, 10));
  ft::optim::Adam opt(net.parameters(), {.lr = 1e-3});
  auto x = ft::randn<float>({32, 784}, ft::kCPU, 1);
  auto y = ft::arange<int64_t>(0, 32) % 10;
  float first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    opt.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(net.forward(x), y);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.value().item();
  }
  std::printf("MLP: loss %.4f -> %.6f\n", first, last);
  for (const auto& [name, p] : net.named_parameters())
    std::printf("  %-10s %s\n", name.c_str(), p.value().shape_string().c_str());

  // 2. A CNN with SGD + momentum, gradient clipping and a warm-up-then-cosine schedule.
  SmallCNN cnn;
  auto images = ft::randn<float>({16, 1, 8, 8}, ft::kCPU, 2);
  ft::Tensor<std::int64_t, 1> labels = ft::arange<int64_t>(0, 16) % 2;
  ft::optim::SGD sgd(cnn.parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  auto warmup =
      std::make_shared<ft::optim::LinearLR>(sgd, ft::optim::LinearLROptions{.start_factor = 0.1, .total_iters = 5});
  auto cosine = std::make_shared<ft::optim::CosineAnnealingLR>(sgd, 45);
  ft::optim::SequentialLR schedule(sgd, {warmup, cosine}, {5});
  for (int step = 0; step < 50; ++step) {
    sgd.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::cross_entropy(cnn(images), labels);
    loss.backward();
    ft::nn::clip_grad_norm_(cnn.parameters(), 5.0);
    sgd.step();
    schedule.step();
    if (step % 10 == 0) std::printf("CNN step %2d: loss %.4f, lr %.4f\n", step, loss.value().item(), sgd.lr());
  }

  // 3. State dicts: PyTorch's names, strict loading.
  cnn.eval();
  SmallCNN copy;
  copy.load_state_dict(cnn.state_dict());
  copy.eval();
  {
    ft::NoGradGuard no_grad;
    ft::Var<float, 2> a = cnn(images), b = copy(images);
    std::printf("state_dict keys: %zu (e.g. %s); reloaded model agrees: %s\n", cnn.state_dict().size(),
                cnn.state_dict().keys()[2].c_str(), a.value().to_vector() == b.value().to_vector() ? "yes" : "no");
  }

  // 4. Metric learning: unit-length embeddings (ft::normalize fuses into the linear layer's
  // consumer) trained with a triplet loss, then nearest neighbours by ft::cdist.
  ft::nn::Linear<float> embed(8, 4);
  ft::optim::Adam embed_opt(embed.parameters(), {.lr = 0.05});
  auto centres = ft::randn<float>({3, 8});  // three classes
  auto sample = [&](const ft::Tensor<std::int64_t, 1>& cls) {
    return ft::Tensor<float, 2>(ft::index_select(centres, 0, cls) + ft::randn<float>({cls.size(0), 8}) * 0.3f);
  };
  auto cls = ft::arange<std::int64_t>(0, 30) % 3;
  ft::Tensor<std::int64_t, 1> other = (cls + 1) % 3;
  ft::nn::TripletMarginLoss triplet{.margin = 0.5};
  float triplet_loss = 0;
  for (int step = 0; step < 40; ++step) {
    embed_opt.zero_grad();
    // each embedding one statement (a Var): the loss's statement then reads three leaves
    auto emb = [&](const auto& x) { return ft::Var<float, 2>(ft::normalize(embed(x))); };
    ft::Var<float, 0> loss = triplet(emb(sample(cls)), emb(sample(cls)), emb(sample(other)));
    loss.backward();
    embed_opt.step();
    triplet_loss = loss.value().item();
  }
  ft::NoGradGuard no_grad;
  ft::Var<float, 2> queries = ft::normalize(embed(sample(cls))), gallery = ft::normalize(embed(centres));
  ft::Tensor<std::int64_t, 1> nearest = ft::argmin(ft::cdist(queries, gallery).value(), 1);
  const double hits = ft::sum(nearest == cls).item();
  std::printf("triplet loss %.3f, nearest class centre right for %.0f of 30 queries\n", triplet_loss, hits);

  // 5. Sequence models (README, "Sequence models"): an LSTM over a batch-first sequence, a GRU cell's step.
  bool shapes = false;
  {
    const ft::Tensor<float, 3> x = ft::randn<float>({4, 10, 32});
    ft::nn::LSTM<float> lstm(32, 64, {.num_layers = 2, .batch_first = true});  // PyTorch's options
    auto [output, h_n, c_n] = lstm(x);  // x [batch, seq, 32]: output [batch, seq, 64]
    ft::nn::GRUCell<float> cell(32, 64);
    ft::Var<float, 2> h = cell(x.select(1, 0));                                 // one step; h0 left out: zeros
    auto packed = ft::nn::pack_padded_sequence(x, {10, 7, 9, 3}, true, false);  // lengths, unsorted
    auto [out, h_last, c_last] = lstm(packed);                                  // no step of padding computed
    ft::nn::TransformerEncoderLayer<float> layer(32, 4, {.dim_feedforward = 64, .batch_first = true});
    ft::Var<float, 3> y = layer(x, ft::nn::generate_square_subsequent_mask(10));  // causal
    // attention (README, after the sequence models): a decoder layer, the fused attention
    ft::nn::TransformerDecoderLayer<float> dec(32, 4, {.dim_feedforward = 64, .batch_first = true});
    ft::Var<float, 3> z = dec(y, x, ft::nn::generate_square_subsequent_mask(10));  // causal over y, attends to x
    ft::Tensor<float, 4> q = ft::randn<float>({4, 2, 10, 16});                     // [batch, heads, L, E]
    ft::Var<float, 4> a = ft::scaled_dot_product_attention(q, q, q, ft::NoMask{}, {.is_causal = true});
    std::printf("LSTM output %s, h_n %s, c_n %s; GRUCell h %s\n", ft::to_string(output.shape()).c_str(),
                ft::to_string(h_n.shape()).c_str(), ft::to_string(c_n.shape()).c_str(),
                ft::to_string(h.shape()).c_str());
    shapes = output.size(2) == 64 && h_n.size(0) == 2 && h.size(1) == 64 && out.data.size(0) == 29 &&
             h_last.size(1) == 4 && z.shape() == y.shape() && a.shape() == q.shape();
  }
  return last < 0.01f && hits >= 27 && shapes ? 0 : 1;
}
