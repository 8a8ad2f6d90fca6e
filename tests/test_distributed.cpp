// The process group's collectives and DistributedDataParallel, run by CTest under
// `mpirun -np 2` and `-np 3`: every rank runs every test case in the same order, so the
// collectives inside them match. Values are checked against what one process computes from
// every rank's inputs (each rank can make every other rank's input from its seed).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "ft/data/dataloader.hpp"
#include "ft/distributed.hpp"
#include "ft/nn.hpp"
#include "ft/optim/adam.hpp"
#include "ft/optim/sgd.hpp"

namespace dist = ft::distributed;
using ft::index_t;

namespace {

bool before_init_was_error = false;

// Rank r's input: a deterministic function of (r, seed).
template <class T, int R>
ft::Tensor<T, R> input_of(int r, const ft::index_t (&shape)[R], unsigned seed) {
  if constexpr (std::is_floating_point_v<T>)
    return ft::test::random_tensor<T>(shape, ft::kCPU, seed * 100 + static_cast<unsigned>(r));
  else
    return ft::test::random_tensor<T>(shape, ft::kCPU, seed * 100 + static_cast<unsigned>(r), -1000, 1000);
}

// The bits of every rank's copy of `t`, compared with this rank's: the reduction gave every rank
// the same result.
template <class T, int R>
bool same_on_every_rank(const ft::Tensor<T, R>& t) {
  std::vector<ft::Tensor<T, R>> all = dist::all_gather(t.contiguous());
  const std::vector<T> mine = t.to_vector();
  for (const auto& other : all)
    if (std::memcmp(other.to_vector().data(), mine.data(), mine.size() * sizeof(T)) != 0) return false;
  return true;
}

template <class T>
void check_all_reduce(dist::ReduceOp op) {
  CAPTURE(dist::to_string(op));
  CAPTURE(ft::dtype_of<T>());
  const int world = dist::world_size(), me = dist::rank();
  for (bool strided : {false, true}) {
    CAPTURE(strided);
    ft::Tensor<T, 2> base = input_of<T, 2>(me, {37, 21}, 1);
    ft::Tensor<T, 2> t = strided ? ft::Tensor<T, 2>(base.transpose(0, 1)) : base.clone();
    ft::Tensor<T, 2> view = strided ? t.transpose(0, 1) : t;  // [37, 21] either way
    dist::all_reduce(view, op);
    // the same reduction on one process, in rank order
    std::vector<double> want(37 * 21);
    for (int r = 0; r < world; ++r) {
      const std::vector<T> v = input_of<T, 2>(r, {37, 21}, 1).to_vector();
      for (std::size_t i = 0; i < want.size(); ++i) {
        const double x = static_cast<double>(v[i]);
        if (r == 0)
          want[i] = x;
        else if (op == dist::ReduceOp::Max)
          want[i] = std::max(want[i], x);
        else if (op == dist::ReduceOp::Min)
          want[i] = std::min(want[i], x);
        else
          want[i] += x;
      }
    }
    if (op == dist::ReduceOp::Avg)
      for (double& w : want) w /= world;
    const std::vector<T> got = view.contiguous().to_vector();
    for (std::size_t i = 0; i < want.size(); ++i) {
      if constexpr (std::is_floating_point_v<T>)
        REQUIRE(static_cast<double>(got[i]) == doctest::Approx(want[i]).epsilon(1e-6));
      else
        REQUIRE(static_cast<double>(got[i]) == want[i]);  // exact for integers
    }
    CHECK(same_on_every_rank(view.contiguous()));
  }
}

}  // namespace

TEST_CASE("the group: rank and world size, an error before init_process_group") {
  CHECK(before_init_was_error);
  CHECK(dist::is_initialized());
  CHECK(dist::world_size() >= 1);
  CHECK(dist::rank() >= 0);
  CHECK(dist::rank() < dist::world_size());
  CHECK_THROWS_WITH_AS(dist::init_process_group(), doctest::Contains("already initialized"), ft::Error);
}

TEST_CASE("all_reduce: sum, avg, max and min of float, double and int64, contiguous and strided") {
  for (auto op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg, dist::ReduceOp::Max, dist::ReduceOp::Min}) {
    check_all_reduce<float>(op);
    check_all_reduce<double>(op);
    if (op != dist::ReduceOp::Avg) check_all_reduce<std::int64_t>(op);
  }
  ft::Tensor<std::int64_t, 1> i = ft::zeros<std::int64_t>({3});
  CHECK_THROWS_WITH_AS(dist::all_reduce(i, dist::ReduceOp::Avg), doctest::Contains("avg needs a floating tensor"),
                       ft::Error);
}

TEST_CASE("all_reduce is the same bits run to run, and async works complete on wait") {
  const int me = dist::rank();
  ft::Tensor<float, 1> a = input_of<float, 1>(me, {100003}, 2), b = a.clone();
  dist::all_reduce(a);
  dist::all_reduce(b);
  CHECK(std::memcmp(a.to_vector().data(), b.to_vector().data(), 100003 * sizeof(float)) == 0);
  // two in flight at once, completed in either order
  ft::Tensor<float, 1> c = input_of<float, 1>(me, {100003}, 2);
  ft::Tensor<double, 1> d = input_of<double, 1>(me, {5000}, 3), d0 = d.clone();
  dist::Work wc = dist::all_reduce(c, dist::ReduceOp::Sum, {.async_op = true});
  dist::Work wd = dist::all_reduce(d, dist::ReduceOp::Max, {.async_op = true});
  wd.wait();
  wc.wait();
  CHECK(wc.is_completed());
  CHECK(std::memcmp(c.to_vector().data(), a.to_vector().data(), 100003 * sizeof(float)) == 0);
  CHECK(ft::all(d >= d0).item());
}

TEST_CASE("broadcast, all_gather, reduce_scatter and barrier") {
  const int world = dist::world_size(), me = dist::rank();
  // broadcast from the last rank, into a strided view
  ft::Tensor<double, 2> t = input_of<double, 2>(me, {6, 5}, 4);
  ft::Tensor<double, 2> tv = t.transpose(0, 1);
  dist::broadcast(tv, world - 1);
  CHECK(t.to_vector() == input_of<double, 2>(world - 1, {6, 5}, 4).to_vector());
  CHECK_THROWS_WITH_AS(dist::broadcast(t, world), doctest::Contains("outside the world"), ft::Error);
  // all_gather_into_tensor: rank r's rows at [r·n, (r+1)·n)
  ft::Tensor<std::int64_t, 2> in = input_of<std::int64_t, 2>(me, {3, 4}, 5);
  ft::Tensor<std::int64_t, 2> out(ft::Shape<2>{3 * world, 4});
  dist::all_gather_into_tensor(out, in);
  for (int r = 0; r < world; ++r)
    CHECK(out.slice(0, 3 * r, 3 * r + 3).contiguous().to_vector() ==
          input_of<std::int64_t, 2>(r, {3, 4}, 5).to_vector());
  if (world > 1)
    CHECK_THROWS_WITH_AS(dist::all_gather_into_tensor(in, in), doctest::Contains("the output must be"), ft::Error);
  std::vector<ft::Tensor<float, 1>> parts = dist::all_gather(input_of<float, 1>(me, {7}, 6));
  REQUIRE(static_cast<int>(parts.size()) == world);
  for (int r = 0; r < world; ++r) CHECK(parts[r].to_vector() == input_of<float, 1>(r, {7}, 6).to_vector());
  // reduce_scatter_tensor: rank r gets the sum over ranks of rows [r·n, (r+1)·n)
  ft::Tensor<std::int64_t, 2> big = input_of<std::int64_t, 2>(me, {2 * world, 3}, 7);
  ft::Tensor<std::int64_t, 2> mine(ft::Shape<2>{2, 3});
  dist::reduce_scatter_tensor(mine, big);
  std::vector<std::int64_t> want(6, 0);
  for (int r = 0; r < world; ++r) {
    const auto v =
        input_of<std::int64_t, 2>(r, {2 * world, 3}, 7).slice(0, 2 * me, 2 * me + 2).contiguous().to_vector();
    for (std::size_t i = 0; i < 6; ++i) want[i] += v[i];
  }
  CHECK(mine.to_vector() == want);
  dist::barrier();
  dist::barrier({.async_op = true}).wait();
}

TEST_CASE("tensors that differ across ranks are an ft::Error on every rank, naming each rank's shape") {
  const int me = dist::rank();
  if (dist::world_size() < 2) return;
  ft::Tensor<float, 2> t = ft::zeros<float>({4, me == 1 ? 2 : 3});
  try {
    dist::all_reduce(t);
    FAIL("no error");
  } catch (const ft::Error& e) {
    const std::string m = e.what();
    CHECK(m.find("all_reduce") != std::string::npos);
    CHECK(m.find("rank 0: float32 [4, 3]") != std::string::npos);
    CHECK(m.find("rank 1: float32 [4, 2]") != std::string::npos);
  }
  ft::Tensor<double, 1> d = ft::zeros<double>({3});
  ft::Tensor<float, 1> f = ft::zeros<float>({3});
  CHECK_THROWS_WITH_AS(me == 0 ? dist::broadcast(d) : dist::broadcast(f), doctest::Contains("float64 [3]"), ft::Error);
  // the group still works afterwards
  ft::Tensor<float, 1> ok = ft::ones<float>({5});
  dist::all_reduce(ok);
  CHECK(ok.to_vector() == std::vector<float>(5, static_cast<float>(dist::world_size())));
}

TEST_CASE("a rank that does not join is an ft::Error after the timeout, not a hang") {
  if (dist::world_size() < 2) return;
  using namespace std::chrono_literals;
  if (dist::rank() == 0) {
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(dist::barrier({.timeout = 300ms}), doctest::Contains("timed out after 300 ms"), ft::Error);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  } else {
    std::this_thread::sleep_for(900ms);  // late: rank 0's abandoned barrier completes with this one
    dist::barrier();
  }
  dist::barrier();  // the group is in step again
}

TEST_CASE("DistributedSampler: each index once per epoch across ranks, reshuffled by epoch, PyTorch's padding") {
  for (int replicas : {1, 2, 3, 4}) {
    for (index_t n : {0, 1, 10, 11, 12}) {
      for (bool drop_last : {false, true}) {
        CAPTURE(replicas);
        CAPTURE(n);
        CAPTURE(drop_last);
        std::vector<int> count(static_cast<std::size_t>(n), 0);
        index_t per = -1;
        for (int r = 0; r < replicas; ++r) {
          ft::data::DistributedSampler s{.num_replicas = replicas, .rank = r, .seed = 7, .drop_last = drop_last};
          const auto idx = s.indices(n, 3);
          if (per < 0) per = static_cast<index_t>(idx.size());
          CHECK(static_cast<index_t>(idx.size()) == per);  // equal shares
          CHECK(per == s.num_samples(n));
          for (index_t i : idx) ++count[static_cast<std::size_t>(i)];
        }
        CHECK(per == (drop_last ? n / replicas : (n + replicas - 1) / replicas));
        int total = 0, repeats = 0;
        for (int c : count) {
          total += c;
          repeats += c > 1 ? c - 1 : 0;
          if (drop_last) CHECK(c <= 1);   // the tail dropped, nothing repeated
          if (!drop_last) CHECK(c >= 1);  // every index at least once; padding repeats the first ones
        }
        CHECK(total == per * replicas);
        CHECK(repeats == (drop_last ? 0 : per * replicas - n));
      }
    }
  }
  ft::data::DistributedSampler s{.num_replicas = 2, .rank = 1, .seed = 3};
  CHECK(s.indices(100, 0) == s.indices(100, 0));  // the same on every call (and rank) for a seed
  CHECK(s.indices(100, 0) != s.indices(100, 1));  // a new order each epoch
  ft::data::DistributedSampler fixed{.num_replicas = 3, .rank = 2, .shuffle = false};
  CHECK(fixed.indices(7, 5) == std::vector<index_t>{2, 5, 1});  // 0..6 padded with 0, 1; every third from 2
  ft::data::DistributedSampler bad{.num_replicas = 2, .rank = 2};
  CHECK_THROWS_WITH_AS(bad.num_samples(4), doctest::Contains("rank 2 is outside [0, 2)"), ft::Error);
}

TEST_CASE("a DataLoader with a DistributedSampler gives this rank its share") {
  const int world = dist::world_size(), me = dist::rank();
  ft::Tensor<float, 2> x = ft::arange<float>(0.f, 50.f).reshape(ft::Shape<2>{25, 2});
  ft::Tensor<std::int64_t, 1> y = ft::arange<std::int64_t>(0, 25);
  ft::data::DataLoader loader(
      ft::data::TensorDataset(x, y),
      {.batch_size = 4, .sampler = ft::data::DistributedSampler{.num_replicas = world, .rank = me, .seed = 1}});
  const index_t per = (25 + world - 1) / world;
  CHECK(loader.len() == (per + 3) / 4);
  std::vector<std::int64_t> seen;
  for (auto& [bx, by] : loader)
    for (auto v : by.to_vector()) seen.push_back(v);
  CHECK(static_cast<index_t>(seen.size()) == per);
  // across ranks: every label at least once
  ft::Tensor<std::int64_t, 1> mine = ft::from_vector<std::int64_t>(seen, {per});
  std::vector<int> hit(25, 0);
  for (const auto& part : dist::all_gather(mine))
    for (auto v : part.to_vector()) hit[static_cast<std::size_t>(v)] = 1;
  CHECK(std::count(hit.begin(), hit.end(), 1) == 25);
  CHECK_THROWS_WITH_AS(
      ft::data::DataLoader(ft::data::TensorDataset(x, y), {.shuffle = true, .sampler = ft::data::DistributedSampler{}}),
      doctest::Contains("exclusive"), ft::Error);
}

namespace {

struct Mlp : ft::nn::Module<Mlp> {
  ft::nn::Linear<double> fc1{6, 16}, fc2{16, 8}, fc3{8, 3};
  template <class V>
  void visit(V&& v) {
    v("fc1", fc1);
    v("fc2", fc2);
    v("fc3", fc3);
  }
  template <class X>
  auto forward(const X& x) {
    return fc3(ft::tanh(fc2(ft::relu(fc1(x)))));
  }
};

// Makes every rank's model differ before wrapping (DDP broadcasts rank 0's).
void perturb(Mlp& m, int rank) {
  for (auto& p : m.parameters())
    ft::visit_elements(p.value(), [&](auto v) {
      if constexpr (std::is_floating_point_v<typename decltype(v)::value_type>) std::move(v) = v + 0.01 * rank;
    });
}

// 20 steps of the optimizer on batch B, either in one process or split over the ranks.
template <class Opt, class Options>
std::vector<double> train(bool distributed, const Options& options, double bucket_mb) {
  const int world = dist::world_size(), me = dist::rank();
  const index_t B = 12 * world;
  ft::manual_seed(11);  // the same initial parameters in both runs
  Mlp m;
  std::vector<double> out;
  ft::Tensor<double, 2> x = ft::test::random_tensor<double>({B, 6}, ft::kCPU, 21);
  ft::Tensor<double, 2> y = ft::test::random_tensor<double>({B, 3}, ft::kCPU, 22);
  if (!distributed) {
    Opt opt(m.parameters(), options);
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      ft::Var<double, 0> loss = ft::nn::functional::mse_loss(m(x), y);
      loss.backward();
      opt.step();
    }
  } else {
    perturb(m, me);
    ft::nn::parallel::DistributedDataParallel ddp(m, {.bucket_cap_mb = bucket_mb});
    Opt opt(m.parameters(), options);
    const index_t b = B / world;
    const auto xs = x.slice(0, me * b, (me + 1) * b), ys = y.slice(0, me * b, (me + 1) * b);
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      ft::Var<double, 0> loss = ft::nn::functional::mse_loss(ddp(xs), ys);
      loss.backward();
      opt.step();
    }
  }
  for (auto& p : m.parameters())
    ft::visit_elements(p.value(), [&](auto v) {
      for (auto e : v.contiguous().to_vector()) out.push_back(static_cast<double>(e));
    });
  return out;
}

}  // namespace

TEST_CASE("DistributedDataParallel: N ranks on B/N equal one process on B (SGD and Adam, 20 steps)") {
  for (double bucket_mb : {25.0, 0.001}) {  // one bucket; a bucket a parameter or two
    CAPTURE(bucket_mb);
    const auto one = train<ft::optim::SGD>(false, ft::optim::SGDOptions{.lr = 0.1, .momentum = 0.9}, bucket_mb);
    const auto many = train<ft::optim::SGD>(true, ft::optim::SGDOptions{.lr = 0.1, .momentum = 0.9}, bucket_mb);
    REQUIRE(one.size() == many.size());
    for (std::size_t i = 0; i < one.size(); ++i) REQUIRE(many[i] == doctest::Approx(one[i]).epsilon(1e-6));
    const auto a1 = train<ft::optim::Adam>(false, ft::optim::AdamOptions{.lr = 0.01}, bucket_mb);
    const auto an = train<ft::optim::Adam>(true, ft::optim::AdamOptions{.lr = 0.01}, bucket_mb);
    for (std::size_t i = 0; i < a1.size(); ++i) REQUIRE(an[i] == doctest::Approx(a1[i]).epsilon(1e-6));
    CHECK(same_on_every_rank(ft::from_vector<double>(an, {static_cast<index_t>(an.size())})));
  }
}

TEST_CASE("DistributedDataParallel: buckets start during the backward; no_sync accumulates; unused parameters") {
  const int me = dist::rank();
  Mlp m;
  ft::nn::parallel::DistributedDataParallel ddp(m, {.bucket_cap_mb = 0.001});
  CHECK(ddp.buckets() >= 3);
  ft::Tensor<double, 2> x = ft::test::random_tensor<double>({4, 6}, ft::kCPU, 30 + static_cast<unsigned>(me));
  ft::Var<double, 0> loss = ft::sum(ddp(x));
  loss.backward();
  const auto& trace = ddp.trace();
  REQUIRE(static_cast<int>(trace.launched_at.size()) == ddp.buckets());
  CHECK(trace.leaves == 6);
  CHECK(trace.launched_at.front() < trace.leaves - 1);  // the first bucket started before the last gradient was final
  // the averaged gradient is the same on every rank
  CHECK(same_on_every_rank(m.fc1.weight.grad()));
  // no_sync: two local backwards, then a synced one averages the accumulated sum
  m.zero_grad();
  {
    auto guard = ddp.no_sync();
    ft::Var<double, 0> l1 = ft::sum(ddp(x));
    l1.backward();
  }
  const auto local = m.fc3.bias.grad().to_vector();
  CAPTURE(local[0]);
  CHECK(local == std::vector<double>(3, 4.0));  // d sum / d bias = batch size, not averaged
  ft::Var<double, 0> l2 = ft::sum(ddp(x));
  l2.backward();
  CHECK(m.fc3.bias.grad().to_vector() == std::vector<double>(3, 8.0));  // (4 + 4) on every rank, averaged
  // a parameter outside the loss is an error naming it, on every rank, with no rank left waiting
  m.zero_grad();
  ft::Var<double, 0> partial = ft::sum(m.fc1(x) * 1.0);
  (void)ddp(x);  // arms the backward
  CHECK_THROWS_WITH_AS(partial.backward(), doctest::Contains("\"fc2.weight\""), ft::Error);
  dist::barrier();
}

int main(int argc, char** argv) {
  try {
    dist::rank();
  } catch (const ft::Error&) {
    before_init_was_error = true;
  }
  dist::init_process_group({.timeout = std::chrono::seconds(120)});
  doctest::Context context(argc, argv);
  if (dist::rank() != 0) context.setOption("out", "/dev/null");  // one report: rank 0's
  const int failed = context.run();
  // every rank's result decides: a failure on any rank fails the run
  ft::Tensor<std::int64_t, 1> f = ft::full<std::int64_t>({1}, failed ? 1 : 0);
  dist::all_reduce(f, dist::ReduceOp::Max);
  const bool any = f.item() != 0;
  if (failed) std::fprintf(stderr, "rank %d: tests failed\n", dist::rank());
  dist::destroy_process_group();
  return any ? 1 : 0;
}
