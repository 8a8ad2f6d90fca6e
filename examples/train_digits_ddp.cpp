// The digits MLP trained data-parallel: every process takes its share of each batch
// (DistributedSampler), DistributedDataParallel averages the gradients during the backward, and
// every rank steps to the same weights. Rank 0 alone logs and writes the checkpoint.
//
//   mpirun -np 2 ./train_digits_ddp [--epochs N] [--logdir runs/digits_ddp]
//   (as root: mpirun --allow-run-as-root …; more processes than cores: --oversubscribe)
#include <cstdio>
#include <cstring>
#include <string>

#include "ft/data.hpp"
#include "ft/distributed.hpp"
#include "ft/ft.hpp"
#include "ft/io.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"
#include "ft/utils.hpp"

namespace nn = ft::nn;
namespace F = ft::nn::functional;
namespace dist = ft::distributed;

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

int main(int argc, char** argv) {
  int epochs = 30;
  std::string logdir = "runs/digits_ddp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--epochs"))
      epochs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--logdir"))
      logdir = argv[i + 1];
  }
  dist::init_process_group({.backend = "mpi"});
  const int rank = dist::rank(), world = dist::world_size();

  ft::manual_seed(0);
  ft::data::Digits digits;  // data/digits.csv.gz
  auto [train_set, test_set] = ft::data::train_test_split(digits, 0.2, /*seed=*/0);
  // the global batch is 64: each of the `world` processes takes 64 / world of it
  ft::data::DataLoader train(train_set,
                             {.batch_size = 64 / world,
                              .sampler = ft::data::DistributedSampler{.num_replicas = world, .rank = rank, .seed = 0}});
  ft::data::DataLoader test(test_set, {.batch_size = 512});

  MLP model;
  nn::parallel::DistributedDataParallel ddp(model);  // rank 0's initial weights on every rank
  ft::optim::AdamW opt(model.parameters(), {.lr = 3e-3, .weight_decay = 1e-4});
  std::optional<ft::utils::SummaryWriter> writer;
  if (rank == 0) writer.emplace(logdir);
  if (rank == 0)
    std::printf("digits on %d processes: %lld training images, %lld a rank an epoch, batches of %lld a rank\n", world,
                (long long)train_set.size(), (long long)(train.len() * (64 / world)), (long long)(64 / world));

  double accuracy = 0;
  std::int64_t step = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    double loss_sum = 0;
    for (auto& [x, y] : train) {
      opt.zero_grad();
      ft::Var<float, 0> loss = F::cross_entropy(ddp(x), y);
      loss.backward();  // returns with the gradients averaged over the ranks
      opt.step();
      loss_sum += loss.value().item();
      if (writer) writer->add_scalar("train/loss", loss.value().item(), step);
      ++step;
    }
    // every rank holds the same weights: each measures the whole test set, rank 0 reports
    ft::NoGradGuard no_grad;
    std::int64_t correct = 0, total = 0;
    for (auto& [x, y] : test) {
      ft::Tensor<float, 2> logits = model(x);
      correct += ft::Tensor<std::int64_t, 0>(ft::sum(ft::cast<std::int64_t>(ft::argmax(logits, 1) == y))).item();
      total += y.size(0);
    }
    accuracy = double(correct) / double(total);
    if (writer) writer->add_scalar("test/accuracy", accuracy, step);
    if (rank == 0 && (epoch % 10 == 0 || epoch == epochs))
      std::printf("epoch %d: loss %.4f (rank 0's share), test accuracy %.2f%%\n", epoch, loss_sum / double(train.len()),
                  100 * accuracy);
  }
  if (rank == 0) ft::io::save_checkpoint(logdir + "/mlp.ckpt", model, opt, {{"epochs", std::to_string(epochs)}});
  // the weights agree across ranks (the sum of every rank's copy is world × rank 0's)
  ft::Tensor<float, 2> w = model.fc1.weight.value().clone(), w0 = w.clone();
  dist::all_reduce(w);
  const bool same = ft::Tensor<bool, 0>(ft::all(ft::abs(w - w0 * float(world)) <= 1e-5f * ft::abs(w) + 1e-6f)).item();
  if (rank == 0) std::printf("weights identical on all %d ranks: %s\n", world, same ? "yes" : "NO");
  dist::destroy_process_group();
  return accuracy >= 0.95 && same ? 0 : 1;
}
