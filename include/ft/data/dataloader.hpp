// ft::data::DataLoader: batches of a dataset, shuffled reproducibly by seed, prepared ahead
// by worker threads into a bounded queue, and (for a CUDA target) stacked in pinned memory
// and copied asynchronously so the copy overlaps the previous batch's kernels.
//
//   ft::data::DataLoader loader(train, {.batch_size = 64, .shuffle = true, .num_workers = 2});
//   for (auto& [x, y] : loader) { ... }
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/cuda/pinned.hpp"
#include "ft/data/dataset.hpp"

namespace ft::inline FT_ABI::data {

// torch.utils.data.DistributedSampler: rank `rank` of `num_replicas` takes every
// num_replicas-th index of the epoch's order (shuffled by (seed, epoch), the same on every
// rank), starting at its rank. Without drop_last the order is padded with its own first indices
// to a multiple of num_replicas (every rank gets ⌈n / num_replicas⌉ samples); with it, the tail
// is dropped (⌊n / num_replicas⌋ each). Give it to DataLoaderOptions::sampler; the loader's
// epoch (set_epoch, advanced by each begin()) is the sampler's epoch.
struct DistributedSampler {
  int num_replicas = 1;
  int rank = 0;
  bool shuffle = true;
  std::uint64_t seed = 0;
  bool drop_last = false;

  // Samples this rank takes an epoch from a dataset of n.
  index_t num_samples(index_t n) const {
    validate();
    const index_t r = num_replicas;
    return drop_last ? n / r : (n + r - 1) / r;
  }
  // This rank's indices for `epoch`, in order.
  std::vector<index_t> indices(index_t n, std::uint64_t epoch) const {
    const index_t per = num_samples(n), total = per * num_replicas;
    std::vector<index_t> order;
    if (shuffle) {
      detail::SplitMix64 mix{seed ^ (epoch * 0xD1B54A32D192ED03ull)};
      order = randperm(n, mix.next());
    } else {
      order.resize(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), index_t{0});
    }
    for (index_t i = 0; static_cast<index_t>(order.size()) < total; ++i)
      order.push_back(order[static_cast<std::size_t>(i)]);
    std::vector<index_t> mine;
    mine.reserve(static_cast<std::size_t>(per));
    for (index_t i = rank; i < total; i += num_replicas) mine.push_back(order[static_cast<std::size_t>(i)]);
    return mine;
  }
  void validate() const {
    check(num_replicas >= 1, "DistributedSampler", "num_replicas must be positive, got ", num_replicas);
    check(rank >= 0 && rank < num_replicas, "DistributedSampler", "rank ", rank, " is outside [0, ", num_replicas, ")");
  }
};

struct DataLoaderOptions {
  index_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;   // drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;   // epoch e's order (with shuffle) and its random transforms depend only on (seed, e)
  int num_workers = 0;      // 0: batches are made on the calling thread when asked for
  bool pin_memory = false;  // stack batches in page-locked memory (implied by a CUDA device)
  Device device = kCPU;     // where the batches are delivered
  int prefetch_factor = 2;  // batches prepared ahead per worker
  // This process's share of each epoch (then `shuffle` must stay false: the sampler shuffles).
  std::optional<DistributedSampler> sampler = std::nullopt;
};

template <Dataset D>
class DataLoader {
 public:
  using Sample = sample_t<D>;
  using Batch = batch_t<Sample>;

  explicit DataLoader(D dataset, const DataLoaderOptions& options = {})
      : dataset_(std::make_shared<const D>(std::move(dataset))), options_(options) {
    check(options_.batch_size > 0, "DataLoader", "batch_size must be positive, got ", options_.batch_size);
    check(options_.num_workers >= 0, "DataLoader", "num_workers must be non-negative, got ", options_.num_workers);
    check(options_.prefetch_factor > 0, "DataLoader", "prefetch_factor must be positive, got ",
          options_.prefetch_factor);
    check(!(options_.sampler && options_.shuffle), "DataLoader",
          "shuffle and a sampler are exclusive (the sampler's own shuffle option orders each epoch)");
    if (options_.sampler) options_.sampler->validate();
    if (options_.device.is_cuda()) cuda::require_device(options_.device, "DataLoader");
    pool_ = cuda::PinnedPool::create(options_.pin_memory || options_.device.is_cuda());
  }
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Batches per epoch (PyTorch's len(loader)).
  index_t len() const {
    const index_t b = options_.batch_size;
    const index_t n = options_.sampler ? options_.sampler->num_samples(dataset_->size()) : dataset_->size();
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  index_t size() const { return len(); }
  const D& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }
  // The epoch the next begin() starts (each begin() advances it), for resuming a shuffle.
  std::uint64_t epoch() const { return epoch_; }
  void set_epoch(std::uint64_t e) { epoch_ = e; }

  class iterator;

 private:
  class Epoch;

 public:
  // Starts an epoch (stopping the workers of an unfinished one).
  iterator begin() {
    current_.reset();
    current_ = std::make_shared<Epoch>(dataset_, options_, order(epoch_), EpochSeed{options_.seed, epoch_}, pool_);
    ++epoch_;
    return iterator(current_);
  }
  std::default_sentinel_t end() const { return {}; }

  class iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    Batch& operator*() const { return *batch_; }
    Batch* operator->() const { return &*batch_; }
    iterator& operator++() {
      ++index_;
      load();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return !it.epoch_ || it.index_ >= it.epoch_->batches();
    }
    index_t index() const { return index_; }

   private:
    friend class DataLoader;
    explicit iterator(std::shared_ptr<Epoch> epoch) : epoch_(std::move(epoch)) { load(); }
    void load() {
      batch_.reset();
      if (index_ < epoch_->batches()) batch_.emplace(epoch_->take(index_));
    }
    std::shared_ptr<Epoch> epoch_;
    index_t index_ = 0;
    mutable std::optional<Batch> batch_;
  };

 private:
  std::vector<index_t> order(std::uint64_t epoch) const {
    const index_t n = dataset_->size();
    if (options_.sampler) return options_.sampler->indices(n, epoch);
    if (!options_.shuffle) {
      std::vector<index_t> o(static_cast<std::size_t>(n));
      std::iota(o.begin(), o.end(), index_t{0});
      return o;
    }
    detail::SplitMix64 mix{options_.seed ^ (epoch * 0xD1B54A32D192ED03ull)};
    return randperm(n, mix.next());
  }

  // One pass over the data: the order, the workers and the queue of finished batches.
  class Epoch {
   public:
    Epoch(std::shared_ptr<const D> dataset, const DataLoaderOptions& options, std::vector<index_t> order,
          EpochSeed seed, std::shared_ptr<cuda::PinnedPool> pool)
        : dataset_(std::move(dataset)),
          options_(options),
          order_(std::move(order)),
          seed_(seed),
          pool_(std::move(pool)) {
      const index_t n = static_cast<index_t>(order_.size()), b = options_.batch_size;
      batches_ = options_.drop_last ? n / b : (n + b - 1) / b;
      alloc_ = [p = pool_](std::size_t bytes) { return p->allocate(bytes); };
      if (options_.device.is_cuda()) copier_.emplace(options_.device);
      capacity_ = static_cast<index_t>(options_.num_workers) * options_.prefetch_factor;
      for (int w = 0; w < options_.num_workers; ++w) workers_.emplace_back([this] { work(); });
    }
    ~Epoch() {
      {
        std::lock_guard lock(mutex_);
        stop_ = true;
      }
      space_.notify_all();
      for (auto& t : workers_) t.join();
    }
    Epoch(const Epoch&) = delete;
    Epoch& operator=(const Epoch&) = delete;

    index_t batches() const { return batches_; }

    // Batch i on the target device; batches are taken in order.
    Batch take(index_t i) {
      Batch host = options_.num_workers == 0 ? make(i) : wait_for(i);
      if (!copier_) return host;
      for_each_tensor(host, [&](auto& t) { t = copier_->copy(t); });
      copier_->finish();
      return host;
    }

   private:
    Batch make(index_t i) const {
      const index_t begin = i * options_.batch_size;
      const index_t end = std::min<index_t>(begin + options_.batch_size, static_cast<index_t>(order_.size()));
      std::span<const index_t> indices(order_.data() + begin, static_cast<std::size_t>(end - begin));
      return get_batch(*dataset_, indices, alloc_, seed_);
    }
    // Workers claim batches in order, at most `capacity_` ahead of the consumer.
    void work() {
      for (;;) {
        index_t i;
        {
          std::unique_lock lock(mutex_);
          space_.wait(lock, [&] { return stop_ || next_ >= batches_ || next_ < consumed_ + capacity_; });
          if (stop_ || next_ >= batches_) return;
          i = next_++;
        }
        Result r;
        try {
          r.batch = std::make_shared<Batch>(make(i));
        } catch (...) {
          r.error = std::current_exception();
        }
        {
          std::lock_guard lock(mutex_);
          ready_.emplace(i, std::move(r));
        }
        filled_.notify_all();
      }
    }
    Batch wait_for(index_t i) {
      Result r;
      {
        std::unique_lock lock(mutex_);
        filled_.wait(lock, [&] { return ready_.count(i) != 0; });
        auto it = ready_.find(i);
        r = std::move(it->second);
        ready_.erase(it);
        consumed_ = i + 1;
      }
      space_.notify_all();
      if (r.error) std::rethrow_exception(r.error);  // the dataset's own error, on the consumer's thread
      return std::move(*r.batch);
    }

    struct Result {
      std::shared_ptr<Batch> batch;
      std::exception_ptr error;
    };
    std::shared_ptr<const D> dataset_;
    DataLoaderOptions options_;
    std::vector<index_t> order_;
    EpochSeed seed_;
    std::shared_ptr<cuda::PinnedPool> pool_;
    HostAllocator alloc_;
    std::optional<cuda::AsyncCopier> copier_;
    index_t batches_ = 0, capacity_ = 0, next_ = 0, consumed_ = 0;
    bool stop_ = false;
    std::mutex mutex_;
    std::condition_variable space_, filled_;
    std::map<index_t, Result> ready_;
    std::vector<std::thread> workers_;
  };

  std::shared_ptr<const D> dataset_;
  DataLoaderOptions options_;
  std::shared_ptr<cuda::PinnedPool> pool_;
  std::shared_ptr<Epoch> current_;
  std::uint64_t epoch_ = 0;
};

}  // namespace ft::inline FT_ABI::data
