// Page-locked host memory and asynchronous host-to-device copies, for the DataLoader: batches
// are stacked into pinned buffers (recycled through a pool, since cudaFreeHost synchronises
// the device) and copied on a side stream that the compute stream waits on, so the copy of
// the next batch overlaps the kernels of the current one. Without CUDA, or without a usable
// device, pinned memory is ordinary host memory and copies are synchronous.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/storage.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/runtime.hpp"

namespace ft::inline FT_ABI::cuda {

// A pool of host blocks, page-locked when asked for and a CUDA device is usable. Storages handed out keep the pool
// alive and return their block to it when released; blocks are freed when the pool and every storage are gone.
class PinnedPool : public std::enable_shared_from_this<PinnedPool> {
 public:
  // page_locked = false keeps ordinary memory but still recycles it: a batch-sized block from
  // the pool costs no page faults, where a fresh allocation of that size is a new mapping.
  static std::shared_ptr<PinnedPool> create(bool page_locked = true) {
    return std::shared_ptr<PinnedPool>(new PinnedPool(page_locked));
  }
  ~PinnedPool() {
    for (auto& [bytes, blocks] : free_)
      for (void* p : blocks) release_block(p, pinned_);
  }
  PinnedPool(const PinnedPool&) = delete;
  PinnedPool& operator=(const PinnedPool&) = delete;

  // Host storage of `bytes`, page-locked when a CUDA device is usable.
  Storage allocate(std::size_t bytes) {
    const std::size_t rounded = round_up(bytes);
    void* p = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto it = free_.find(rounded);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
      }
    }
    if (!p) p = allocate_block(rounded);
    std::weak_ptr<PinnedPool> pool = weak_from_this();
    return wrap_storage(p, bytes, kCPU, [pool, rounded, pinned = pinned_](void* block) {
      if (auto owner = pool.lock()) {
        owner->give_back(block, rounded);
      } else {
        release_block(block, pinned);
      }
    });
  }
  bool pinned() const { return pinned_; }

 private:
  explicit PinnedPool(bool page_locked) : pinned_(page_locked && is_available()) {}

  static constexpr std::size_t kGranule = 64 * 1024;  // batches of one loader round to the same block size
  static constexpr std::size_t kMaxFreeBlocks = 64;   // bounds what an idle pool holds

  static std::size_t round_up(std::size_t b) { return (b + kGranule - 1) / kGranule * kGranule; }

  void* allocate_block(std::size_t bytes) {
#if FT_CUDA_ENABLED
    if (pinned_) {
      void* p = nullptr;
      FT_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
      return p;
    }
#endif
    return ::operator new(bytes, std::align_val_t(kCpuAlignment));
  }
  static void release_block(void* p, [[maybe_unused]] bool pinned) {
#if FT_CUDA_ENABLED
    if (pinned) {
      (void)cudaFreeHost(p);
      return;
    }
#endif
    ::operator delete(p, std::align_val_t(kCpuAlignment));
  }
  void give_back(void* p, std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      auto& blocks = free_[bytes];
      if (blocks.size() < kMaxFreeBlocks) {
        blocks.push_back(p);
        return;
      }
    }
    release_block(p, pinned_);
  }

  bool pinned_;
  std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
};

// Copies host tensors to one device asynchronously, on a side stream that the caller's
// current stream then waits on (an event, not a host synchronisation). The host tensors are
// kept alive until their copy has finished.
class AsyncCopier {
 public:
  explicit AsyncCopier(Device device) : device_(device) {
    if (device.is_cuda()) require_device(device, "DataLoader");
  }
  // Waits for the copies it issued (their host buffers are released here). Never throws: every
  // status is ignored (the driver may already be shut down at exit). The side stream stays: the
  // copied batches were allocated on it and are freed on it.
  ~AsyncCopier() {
#if FT_CUDA_ENABLED
    if (stream_) {
      int previous = 0;
      const bool have_device = cudaGetDevice(&previous) == cudaSuccess;
      if (have_device && previous != device_.index) (void)cudaSetDevice(device_.index);
      cudaEvent_t all = nullptr;
      if (cudaEventCreateWithFlags(&all, cudaEventDisableTiming) == cudaSuccess) {
        if (cudaEventRecord(all, stream_) == cudaSuccess) (void)cudaEventSynchronize(all);
        (void)cudaEventDestroy(all);
      }
      for (auto& f : in_flight_) (void)cudaEventDestroy(f.done);
      for (cudaEvent_t e : spare_events_) (void)cudaEventDestroy(e);
      if (have_device && previous != device_.index) (void)cudaSetDevice(previous);
      (void)cudaGetLastError();
    }
#endif
  }
  AsyncCopier(const AsyncCopier&) = delete;
  AsyncCopier& operator=(const AsyncCopier&) = delete;

  Device device() const { return device_; }

  // A device copy of a host tensor, ordered before any later work on the current stream once
  // finish() is called for the batch.
  template <class T, int R>
  Tensor<T, R> copy(const Tensor<T, R>& host) {
#if FT_CUDA_ENABLED
    if (device_.is_cuda()) {
      DeviceGuard guard(device_);
      ensure_stream();
      Tensor<T, R> src = host.contiguous();
      // allocate on the copy stream, so the allocation is ordered before the copy into it
      Tensor<T, R> dst = [&] {
        StreamGuard on_copy_stream(stream_);
        return Tensor<T, R>(src.shape(), device_);
      }();
      FT_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), static_cast<std::size_t>(src.numel()) * sizeof(T),
                                    cudaMemcpyHostToDevice, stream_));
      pending_.push_back(src.storage());
      return dst;
    }
#endif
    return host.to(device_);
  }

  // Makes the current stream wait for every copy issued since the last call.
  void finish() {
#if FT_CUDA_ENABLED
    if (device_.is_cuda() && stream_) {
      DeviceGuard guard(device_);
      cudaEvent_t done = take_event();
      FT_CUDA_CHECK(cudaEventRecord(done, stream_));
      FT_CUDA_CHECK(cudaStreamWaitEvent(current_stream(), done, 0));
      in_flight_.push_back({done, std::move(pending_)});
      pending_.clear();
      retire();
    }
#endif
  }

 private:
#if FT_CUDA_ENABLED
  struct InFlight {
    cudaEvent_t done;
    std::vector<Storage> hosts;  // source buffers: reused only after `done`
  };
  void ensure_stream() {
    if (!stream_) stream_ = side_stream(device_);
  }
  cudaEvent_t take_event() {
    if (!spare_events_.empty()) {
      cudaEvent_t e = spare_events_.back();
      spare_events_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    FT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  // Releases the source buffers of finished copies; waits only when too many are outstanding.
  void retire() {
    constexpr std::size_t kMaxInFlight = 4;
    while (!in_flight_.empty()) {
      const bool done = FT_CUDA_QUERY(cudaEventQuery(in_flight_.front().done));
      if (!done && in_flight_.size() <= kMaxInFlight) return;
      if (!done) FT_CUDA_CHECK(cudaEventSynchronize(in_flight_.front().done));
      spare_events_.push_back(in_flight_.front().done);
      in_flight_.pop_front();
    }
  }
  cudaStream_t stream_ = nullptr;
  std::deque<InFlight> in_flight_;
  std::vector<cudaEvent_t> spare_events_;
  std::vector<Storage> pending_;
#endif
  Device device_;
};

}  // namespace ft::inline FT_ABI::cuda
