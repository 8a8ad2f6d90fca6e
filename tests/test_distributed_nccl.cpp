// The NCCL path of the process group and DistributedDataParallel on CUDA tensors. Compiled by
// nvcc (its CUDA copy, linked with ft::distributed_cuda); run where a GPU is, as one process
// (a world of one: NCCL's collectives are then copies, but every call, the communicator's set-up
// from MPI and the stream ordering run) or under mpirun with one GPU a rank.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <vector>

#include "common.hpp"
#include "ft/distributed.hpp"
#include "ft/nn.hpp"
#include "ft/optim/sgd.hpp"

namespace dist = ft::distributed;

TEST_CASE("NCCL collectives on CUDA tensors, ordered on the stream without a host wait") {
  const int world = dist::world_size(), me = dist::rank();
  const ft::Device dev(ft::DeviceType::CUDA, me % ft::cuda::device_count());
  ft::Tensor<float, 2> t = ft::full<float>({64, 33}, static_cast<float>(me + 1), dev);
  ft::stats::reset();
  dist::all_reduce(t.transpose(0, 1));  // strided: through a contiguous copy, written back
  dist::all_reduce(t, dist::ReduceOp::Avg);
  CHECK(ft::stats::host_syncs(dev) == 0);
  const float sum = static_cast<float>(world * (world + 1) / 2);
  CHECK(t.to_vector() == std::vector<float>(64 * 33, sum * world / world));
  ft::Tensor<double, 1> b = ft::full<double>({10}, static_cast<double>(me), dev);
  dist::broadcast(b, world - 1);
  CHECK(b.to_vector() == std::vector<double>(10, world - 1));
  ft::Tensor<std::int64_t, 1> in = ft::full<std::int64_t>({4}, me, dev);
  ft::Tensor<std::int64_t, 1> all(ft::Shape<1>{4 * world}, dev);
  dist::all_gather_into_tensor(all, in);
  for (int r = 0; r < world; ++r) CHECK(all.slice(0, 4 * r, 4 * r + 4).to_vector() == std::vector<std::int64_t>(4, r));
  ft::Tensor<float, 1> big = ft::ones<float>({3 * world}, dev), mine(ft::Shape<1>{3}, dev);
  dist::reduce_scatter_tensor(mine, big);
  CHECK(mine.to_vector() == std::vector<float>(3, static_cast<float>(world)));
}

TEST_CASE("DistributedDataParallel on a GPU: the step's gradients are averaged") {
  const int me = dist::rank();
  const ft::Device dev(ft::DeviceType::CUDA, me % ft::cuda::device_count());
  ft::nn::Linear<float> fc(8, 4, true, dev);
  ft::nn::parallel::DistributedDataParallel ddp(fc, {.bucket_cap_mb = 0.0001});
  ft::optim::SGD opt(fc.parameters(), {.lr = 0.1});
  ft::Tensor<float, 2> x = ft::test::random_tensor<float>({6, 8}, dev, 3);
  ft::Var<float, 0> loss = ft::sum(ddp(x));
  loss.backward();
  CHECK(fc.bias.grad().to_vector() == std::vector<float>(4, 6.f));
  opt.step();
}

int main(int argc, char** argv) {
  if (!ft::cuda::is_available()) {
    std::printf("SKIPPED: no CUDA device or driver on this machine; the NCCL tests did not run\n");
    return 77;
  }
  dist::init_process_group({.backend = "nccl"});
  doctest::Context context(argc, argv);
  const int failed = context.run();
  dist::destroy_process_group();
  return failed ? 1 : 0;
}
