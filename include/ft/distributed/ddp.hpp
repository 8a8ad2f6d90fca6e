// ft::nn::parallel::DistributedDataParallel (torch.nn.parallel.DistributedDataParallel): data
// parallel training over the process group (ft/distributed/process_group.hpp).
//
//   ft::distributed::init_process_group({.backend = "mpi"});
//   Net net;
//   ft::nn::parallel::DistributedDataParallel ddp(net);  // rank 0's parameters everywhere
//   ft::optim::SGD opt(net.parameters(), {.lr = 0.1});
//   auto loss = ft::nn::functional::mse_loss(ddp(x), y);  // this rank's share of the batch
//   loss.backward();  // gradients averaged over the ranks, bucket by bucket, during the backward
//   opt.step();
//
// - Construction broadcasts rank 0's parameters and buffers (its shape check names a parameter
//   that differs between ranks) and lays the gradients out in buckets of about bucket_cap_mb,
//   in reverse parameter order (the order a backward finishes them), one dtype and device each.
// - A forward through the wrapper arms the next backward. The backward engine tells the wrapper
//   when a parameter's gradient is final (its last reader has run: autograd::BackwardObserver);
//   when every gradient of a bucket is final the bucket is copied into its flat buffer and its
//   all-reduce (average) starts on the group's communication thread, while the backward goes on
//   with the earlier layers. Buckets start in index order on every rank (collectives must be
//   issued in the same order). On CUDA tensors the all-reduce is NCCL's on the stream, after the
//   kernels that made the gradients. When the backward ends, the
//   wrapper waits for the buckets and writes the averages into the gradients, so backward()
//   returns with them final and optimizer.step() needs nothing more.
// - no_sync() (a guard) skips the reduction: gradients accumulate locally, and the next synced
//   backward averages the accumulated sum, as in PyTorch.
// - A parameter that requires a gradient but is not reached by an armed backward is an
//   ft::Error naming it (PyTorch's find_unused_parameters = False).
#pragma once

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ft/autograd/engine.hpp"
#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/distributed/process_group.hpp"
#include "ft/exec/factories.hpp"
#include "ft/nn/module.hpp"

namespace ft::inline FT_ABI::nn::parallel {

struct DistributedDataParallelOptions {
  double bucket_cap_mb = 25;      // a bucket closes once it holds this much gradient
  bool broadcast_buffers = true;  // each forward first broadcasts rank 0's buffers
};

// What the last synced backward did, for tests and tuning: the leaf-ready event (0-based) at
// which each bucket's all-reduce started, of `leaves` events in all.
struct ReduceTrace {
  std::vector<int> launched_at;
  int leaves = 0;
};

template <class M>
class DistributedDataParallel : private autograd::BackwardObserver {
 public:
  explicit DistributedDataParallel(M& module, const DistributedDataParallelOptions& options = {})
      : module_(module), options_(options), registration_(this) {
    check(options_.bucket_cap_mb > 0, "DistributedDataParallel", "bucket_cap_mb must be positive, got ",
          options_.bucket_cap_mb);
    distributed::detail::require_group("DistributedDataParallel");
    for (auto& [name, p] : module_.named_parameters()) {
      distributed::broadcast_any(p.value(), 0, name);
      if (p.requires_grad()) slots_.push_back(Slot{p, name, 0, p.numel(), -1, false});
    }
    module_.for_each_buffer([&](const std::string& name, auto& t) { distributed::broadcast_any(t, 0, name); });
    make_buckets();
  }
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // The module's forward; arms the reduction of the next backward (unless no_sync()).
  template <class... A>
  auto operator()(A&&... a) {
    prepare();
    return module_(std::forward<A>(a)...);
  }
  M& module() { return module_; }
  int buckets() const { return static_cast<int>(buckets_.size()); }
  const ReduceTrace& trace() const { return trace_; }

  // Within its scope, backward passes accumulate gradients locally without a reduction.
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& d) : d_(d), prev_(d.sync_) { d_.sync_ = false; }
    ~NoSync() { d_.sync_ = prev_; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& d_;
    bool prev_;
  };
  [[nodiscard]] NoSync no_sync() { return NoSync(*this); }

 private:
  struct Slot {
    Parameter p;
    std::string name;
    index_t offset;  // in its bucket's buffer
    index_t numel;
    int bucket;
    bool ready = false;  // its gradient is final in this backward
  };
  struct Bucket {
    AnyTensor buffer;  // flat, of the slots' dtype and device
    std::vector<int> slots;
    int pending = 0;  // slots whose gradient is not final yet
    bool launched = false;
    distributed::Work work;
  };

  // Reverse parameter order, a bucket per dtype and device until it holds bucket_cap_mb.
  void make_buckets() {
    const double cap = options_.bucket_cap_mb * 1024 * 1024;
    std::vector<int> open;  // the open bucket of each (dtype, device) seen, by index in buckets_
    for (int i = static_cast<int>(slots_.size()) - 1; i >= 0; --i) {
      Slot& s = slots_[static_cast<std::size_t>(i)];
      const AnyTensor v = s.p.value();
      int b = -1;
      for (int o : open) {
        const AnyTensor& first =
            slots_[static_cast<std::size_t>(buckets_[static_cast<std::size_t>(o)].slots[0])].p.value();
        if (first.dtype() == v.dtype() && first.device() == v.device()) b = o;
      }
      if (b >= 0 && static_cast<double>(bytes(buckets_[static_cast<std::size_t>(b)]) + v.nbytes()) > cap &&
          !buckets_[static_cast<std::size_t>(b)].slots.empty()) {
        std::erase(open, b);
        b = -1;
      }
      if (b < 0) {
        b = static_cast<int>(buckets_.size());
        buckets_.emplace_back();
        open.push_back(b);
      }
      Bucket& bk = buckets_[static_cast<std::size_t>(b)];
      s.offset = 0;
      for (int j : bk.slots) s.offset += slots_[static_cast<std::size_t>(j)].numel;
      s.bucket = b;
      bk.slots.push_back(i);
      by_state_[s.p.id()] = i;
    }
    for (Bucket& bk : buckets_) {
      const AnyTensor first = slots_[static_cast<std::size_t>(bk.slots[0])].p.value();
      index_t n = 0;
      for (int j : bk.slots) n += slots_[static_cast<std::size_t>(j)].numel;
      bk.buffer = with_dtype_rank(
          first.dtype(), 1, [&]<class T, int R>() -> AnyTensor { return Tensor<T, 1>(Shape<1>{n}, first.device()); });
    }
  }
  std::size_t bytes(const Bucket& bk) const {
    std::size_t n = 0;
    for (int j : bk.slots) n += slots_[static_cast<std::size_t>(j)].p.value().nbytes();
    return n;
  }

  void prepare() {
    if (options_.broadcast_buffers)
      module_.for_each_buffer([&](const std::string& name, auto& t) { distributed::broadcast_any(t, 0, name); });
    armed_ = sync_;
    trace_ = ReduceTrace{};
    for (Bucket& bk : buckets_) {
      bk.pending = static_cast<int>(bk.slots.size());
      bk.launched = false;
      bk.work = distributed::Work();
    }
    for (Slot& s : slots_) s.ready = false;
  }

  void leaf_ready(autograd::VarState& leaf) override {
    if (!armed_) return;
    auto it = by_state_.find(&leaf);
    if (it == by_state_.end()) return;
    Slot& s = slots_[static_cast<std::size_t>(it->second)];
    if (s.ready) return;
    s.ready = true;
    ++trace_.leaves;
    --buckets_[static_cast<std::size_t>(s.bucket)].pending;
    launch_ready();
  }

  // Starts every bucket whose gradients are final, in index order.
  void launch_ready() {
    for (Bucket& bk : buckets_) {
      if (bk.launched) continue;
      if (bk.pending > 0) return;
      for (int j : bk.slots) copy_slot(slots_[static_cast<std::size_t>(j)], bk, true);
      bk.work = distributed::all_reduce_any(bk.buffer, distributed::ReduceOp::Avg, {.async_op = true, .agreed = true});
      bk.launched = true;
      trace_.launched_at.push_back(trace_.leaves - 1);
    }
  }

  // Waits for the buckets and writes the averages back. A parameter the armed backward did not
  // reach is an error, after the reductions (as zeros from this rank), so that no rank is left
  // waiting in a collective the others never start.
  void finished() override {
    if (!armed_) return;
    armed_ = false;
    std::string unused;
    for (Bucket& bk : buckets_) {
      if (bk.launched) continue;
      for (int j : bk.slots)
        if (!slots_[static_cast<std::size_t>(j)].ready)
          unused += (unused.empty() ? "\"" : ", \"") + slots_[static_cast<std::size_t>(j)].name + "\"";
      bk.pending = 0;
    }
    launch_ready();
    for (Bucket& bk : buckets_) {
      bk.work.wait();
      for (int j : bk.slots) copy_slot(slots_[static_cast<std::size_t>(j)], bk, false);
    }
    if (!unused.empty())
      fail("DistributedDataParallel", "parameters ", unused,
           " got no gradient in this backward: every parameter that requires a gradient must take part in the "
           "loss on every rank (or set requires_grad false on it before wrapping the module)");
  }

  // The slot's gradient into its bucket (in) or back from it.
  static void copy_slot(const Slot& s, const Bucket& bk, bool in) {
    visit_elements(s.p.grad_or_zeros(), [&](auto g) {
      using T = typename decltype(g)::value_type;
      auto flat = bk.buffer.template as<T, 1>().slice(0, s.offset, s.offset + s.numel).reshape(g.shape());
      if (in)
        std::move(flat) = g;
      else
        std::move(g) = flat;
    });
  }

  M& module_;
  DistributedDataParallelOptions options_;
  autograd::ObserverRegistration registration_;
  std::vector<Slot> slots_;  // the parameters that require a gradient, in parameter order
  std::vector<Bucket> buckets_;
  std::unordered_map<const void*, int> by_state_;  // a parameter's Var state → its slot
  ReduceTrace trace_;
  bool sync_ = true;
  bool armed_ = false;
};

template <class M>
DistributedDataParallel(M&) -> DistributedDataParallel<M>;
template <class M>
DistributedDataParallel(M&, const DistributedDataParallelOptions&) -> DistributedDataParallel<M>;

}  // namespace ft::inline FT_ABI::nn::parallel
