// Distributed benches, run under mpirun (every rank runs the same fixed sequence of collectives:
// Google Benchmark's adaptive iteration counts would differ between ranks, so this is a plain
// program with fixed repetitions, medians, the two sides interleaved):
//
//   mpirun -np 2 ./bench/bench_distributed [allreduce|ddp]
//
// allreduce  ft::distributed::all_reduce (sum, float, blocking) against a bare MPI_Allreduce on
//            the same buffer, 1 KB to 256 MB; bus bandwidth = 2 (n − 1) / n · bytes / time.
// ddp        a training step of two pre-norm transformer MLP blocks (d 256, hidden 1024, 2048
//            tokens a rank, AdamW, MSE): DistributedDataParallel (buckets reduced during the
//            backward) against the loop LibTorch users write: backward, then one all_reduce a
//            parameter.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ft/distributed.hpp"
#include "ft/nn.hpp"
#include "ft/optim/adam.hpp"

namespace dist = ft::distributed;
using ft::index_t;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds of f, timed between barriers so that every rank measures the same collective.
template <class F>
double timed(F&& f) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void bench_allreduce() {
  const int world = dist::world_size();
  if (dist::rank() == 0)
    std::printf("%10s %12s %12s %10s %10s %7s\n", "bytes", "ft (us)", "MPI (us)", "ft GB/s", "MPI GB/s", "ft/MPI");
  for (index_t bytes = 1024; bytes <= (index_t(256) << 20); bytes *= 4) {
    const index_t n = bytes / 4;
    ft::Tensor<float, 1> t = ft::ones<float>({n});
    const int reps = bytes >= (index_t(16) << 20) ? 7 : bytes >= (index_t(1) << 20) ? 21 : 101;
    std::vector<double> ft_s, mpi_s;
    for (int r = 0; r < reps; ++r) {  // interleaved: machine noise hits both alike
      ft_s.push_back(timed([&] { dist::all_reduce(t); }));
      mpi_s.push_back(timed(
          [&] { MPI_Allreduce(MPI_IN_PLACE, t.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }));
    }
    const double f = median(ft_s), m = median(mpi_s), bus = 2.0 * (world - 1) / world * double(bytes);
    if (dist::rank() == 0)
      std::printf("%10lld %12.1f %12.1f %10.2f %10.2f %7.3f\n", (long long)bytes, f * 1e6, m * 1e6, bus / f / 1e9,
                  bus / m / 1e9, f / m);
  }
}

struct MlpBlock : ft::nn::Module<MlpBlock> {
  ft::nn::LayerNorm<float> ln{256};
  ft::nn::Linear<float> fc1{256, 1024}, fc2{1024, 256};
  template <class V>
  void visit(V&& v) {
    v("ln", ln);
    v("fc1", fc1);
    v("fc2", fc2);
  }
  template <class In>
  ft::Var<float, 2> forward(const In& x) {
    return ft::Var<float, 2>(x + fc2(ft::gelu(fc1(ln(x)))));
  }
};
struct Blocks : ft::nn::Module<Blocks> {
  MlpBlock b1, b2;
  template <class V>
  void visit(V&& v) {
    v("b1", b1);
    v("b2", b2);
  }
  template <class In>
  ft::Var<float, 2> forward(const In& x) {
    return b2(b1(x));
  }
};

void bench_ddp() {
  const int me = dist::rank();
  ft::manual_seed(1);
  Blocks model;
  ft::Tensor<float, 2> x = ft::randn<float>({2048, 256}, ft::kCPU, 10 + static_cast<unsigned>(me));
  ft::Tensor<float, 2> y = ft::randn<float>({2048, 256}, ft::kCPU, 20 + static_cast<unsigned>(me));
  ft::nn::parallel::DistributedDataParallel ddp(model);  // 25 MB buckets: the model's 4.2 MB in one
  ft::nn::parallel::DistributedDataParallel small(model, {.bucket_cap_mb = 1});  // 1 MB: several, overlapped
  ft::optim::AdamW opt(model.parameters(), {.lr = 1e-4});
  const auto params = model.parameters();
  auto ddp_step = [&] {
    opt.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::mse_loss(ddp(x), y);
    loss.backward();
    opt.step();
  };
  auto small_step = [&] {
    opt.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::mse_loss(small(x), y);
    loss.backward();
    opt.step();
  };
  auto manual_step = [&] {
    opt.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::mse_loss(model(x), y);
    loss.backward();
    for (const auto& p : params) dist::all_reduce_any(p.grad(), dist::ReduceOp::Avg);
    opt.step();
  };
  auto local_step = [&] {  // no communication: the floor
    opt.zero_grad();
    ft::Var<float, 0> loss = ft::nn::functional::mse_loss(model(x), y);
    loss.backward();
    opt.step();
  };
  for (int w = 0; w < 2; ++w) {
    ddp_step();
    small_step();
    manual_step();
  }
  std::vector<double> a, b, c, d;
  for (int r = 0; r < 9; ++r) {
    a.push_back(timed(ddp_step));
    b.push_back(timed(small_step));
    c.push_back(timed(manual_step));
    d.push_back(timed(local_step));
  }
  if (me == 0)
    std::printf(
        "step (ms): DDP %d bucket(s) %.2f | DDP %d buckets of 1 MB %.2f | backward, then an all_reduce a "
        "parameter (%zu) %.2f | no communication %.2f\n",
        ddp.buckets(), median(a) * 1e3, small.buckets(), median(b) * 1e3, params.size(), median(c) * 1e3,
        median(d) * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  dist::init_process_group();
  const std::string what = argc > 1 ? argv[1] : "all";
  if (dist::rank() == 0)
    std::printf("%d ranks, %d OpenMP threads a rank\n", dist::world_size(), ft::exec::cpu::num_threads());
  if (what == "all" || what == "allreduce") bench_allreduce();
  if (what == "all" || what == "ddp") bench_ddp();
  dist::destroy_process_group();
}
