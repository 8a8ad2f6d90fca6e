// Storage: one reference-counted block of memory on one device.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/stats.hpp"
#include "ft/cuda/runtime.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ft::inline FT_ABI {

inline constexpr std::size_t kCpuAlignment = 64;  // one cache line; also every SIMD width

// A CPU block of at least kHugeBlock bytes is aligned to kHugePage and, on Linux, marked for
// transparent huge pages (madvise): glibc maps a block this large afresh at every allocation, and
// first-touching it page by page costs more than the work on it (a 64 MB cumsum: half its time
// in page faults). With huge pages a fault maps 2 MB. Where the kernel has none to give, it falls
// back to small pages; with THP set to `never` the advice does nothing.
inline constexpr std::size_t kHugePage = std::size_t(2) << 20, kHugeBlock = std::size_t(32) << 20;

inline std::size_t cpu_alignment(std::size_t bytes) { return bytes >= kHugeBlock ? kHugePage : kCpuAlignment; }

class StorageImpl {
 public:
  StorageImpl(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
    std::size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded == 0) rounded = kCpuAlignment;  // a 0-size tensor still has a valid pointer
    if (device.is_cpu()) {
      const std::size_t alignment = cpu_alignment(bytes);
      ptr_ = ::operator new(rounded, std::align_val_t(alignment));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (alignment == kHugePage) (void)::madvise(ptr_, rounded / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
    } else {
      ptr_ = cuda::allocate(rounded, device);
      stream_ = cuda::current_stream(device);
#if FT_CUDA_ENABLED
      if (cuda::capturing(device)) capture_ = cuda::capture_state().id;
#endif
    }
    stats::detail::record_alloc(device_, static_cast<std::int64_t>(bytes_));
  }
  // Memory owned by someone else (a DLPack producer, a pinned-memory pool): `release(ptr)` runs
  // when the last handle goes, instead of the library's own deallocation.
  StorageImpl(void* ptr, std::size_t bytes, Device device, std::function<void(void*)> release)
      : ptr_(ptr), bytes_(bytes), device_(device), release_(std::move(release)) {
    stats::detail::record_alloc(device_, static_cast<std::int64_t>(bytes_));
  }
  ~StorageImpl() {
    if (release_) {
      release_(ptr_);
    } else if (device_.is_cpu()) {
      ::operator delete(ptr_, std::align_val_t(cpu_alignment(bytes_)));
    } else {
      cuda::deallocate(ptr_, device_, stream_, used_on_, capture_);
    }
    stats::detail::record_free(device_, static_cast<std::int64_t>(bytes_));
  }
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  // Bumped by every write through the library (assignment, compound ops, optimizer steps), so
  // autograd can tell when a value it will recompute from was changed in place.
  std::uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }
  // The stream the block was allocated on (and will be freed on); CUDA blocks only.
  cuda::Stream stream() const { return stream_; }
  // Marks the block as used by work on `s`, a stream of its device other than the one it was
  // allocated on and the one current when it is freed: the free then waits for the work given
  // to `s` until that moment (torch.Tensor.record_stream). Not thread-safe with itself.
  void record_stream(cuda::Stream s) {
    if (s == stream_ || !device_.is_cuda()) return;
    for (cuda::Stream u : used_on_)
      if (u == s) return;
    used_on_.push_back(s);
  }

 private:
  std::atomic<std::uint64_t> version_{0};
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
  std::function<void(void*)> release_;
  cuda::Stream stream_ = nullptr;
  std::vector<cuda::Stream> used_on_;
  std::uint64_t capture_ = 0;  // the CUDA graph capture that allocated the block, if any
};

using Storage = std::shared_ptr<StorageImpl>;

inline Storage make_storage(std::size_t bytes, Device device) { return std::make_shared<StorageImpl>(bytes, device); }
// Storage over memory the library did not allocate; `release` frees it (or returns it to a pool).
inline Storage wrap_storage(void* ptr, std::size_t bytes, Device device, std::function<void(void*)> release) {
  return std::make_shared<StorageImpl>(ptr, bytes, device, std::move(release));
}

}  // namespace ft::inline FT_ABI
