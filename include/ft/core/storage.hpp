// Storage: one reference-counted block of memory on one device.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
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

#if defined(__SANITIZE_ADDRESS__)
#define FT_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FT_ASAN_BUILD 1
#endif
#endif
#if !defined(FT_ASAN_BUILD)
#define FT_ASAN_BUILD 0
#endif

// Large CPU blocks (at least kCachedBlock bytes, sizes rounded up to 64 KiB) that tensors free
// are kept for the next allocation of the same rounded size instead of going back to the OS. A
// training step allocates the same activation and gradient sizes every step, and glibc maps a
// block this large afresh (or trims its heap), so each step first-touched every 4 KiB page of
// its temporaries again: 5–8 % of a transformer block's step. At most limit() bytes are kept
// (1 GiB unless the environment variable FT_CPU_CACHE_MB says otherwise; 0 turns the cache
// off; 0 by default under AddressSanitizer); ft::empty_cpu_cache() gives them back.
// Thread-safe; never destroyed (tensors in static storage may be freed after every other
// static).
class CpuBlockCache {
 public:
  static constexpr std::size_t kCachedBlock = std::size_t(1) << 20, kGranule = std::size_t(64) << 10;

  static CpuBlockCache& instance() {
    static CpuBlockCache* cache = new CpuBlockCache();
    return *cache;
  }
  // The size a block of `bytes` is allocated with (cached sizes are rounded to the granule).
  static std::size_t rounded(std::size_t bytes) {
    return bytes >= kCachedBlock ? (bytes + kGranule - 1) / kGranule * kGranule : bytes;
  }
  // A kept block of exactly `bytes` (a rounded size), or null.
  void* take(std::size_t bytes) {
    if (bytes < kCachedBlock) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(bytes);
    if (it == free_.end()) return nullptr;
    void* p = it->second;
    free_.erase(it);
    cached_ -= bytes;
    return p;
  }
  // Keeps block p of `bytes` (a rounded size); false when it is small or the cache is full, and
  // the caller frees it.
  bool keep(void* p, std::size_t bytes) {
    if (bytes < kCachedBlock) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_ + bytes > limit_) return false;
    free_.emplace(bytes, p);
    cached_ += bytes;
    return true;
  }
  std::size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
  std::size_t limit() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_;
  }
  void set_limit(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
    }
    trim(bytes);
  }
  // Frees kept blocks until at most `bytes` remain.
  void trim(std::size_t bytes = 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.begin(); it != free_.end() && cached_ > bytes;) {
      ::operator delete(it->second, std::align_val_t(cpu_alignment(it->first)));
      cached_ -= it->first;
      it = free_.erase(it);
    }
  }

 private:
  CpuBlockCache() {
    if (const char* env = std::getenv("FT_CPU_CACHE_MB")) limit_ = std::strtoull(env, nullptr, 10) << 20;
  }
  std::mutex mutex_;
  std::unordered_multimap<std::size_t, void*> free_;
  std::size_t cached_ = 0;
  // off under AddressSanitizer, so that every free reaches it (a use after free of a kept block
  // would go unseen)
  std::size_t limit_ = FT_ASAN_BUILD ? 0 : std::size_t(1) << 30;
};

// Gives every CPU block the cache keeps back to the OS (torch.cuda.empty_cache's CPU twin).
inline void empty_cpu_cache() { CpuBlockCache::instance().trim(0); }
// The most bytes of freed CPU blocks kept for reuse (0: none).
inline void set_cpu_cache_limit(std::size_t bytes) { CpuBlockCache::instance().set_limit(bytes); }
// Bytes of freed CPU blocks kept for reuse now.
inline std::size_t cpu_cache_bytes() { return CpuBlockCache::instance().cached_bytes(); }

class StorageImpl {
 public:
  StorageImpl(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
    std::size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded == 0) rounded = kCpuAlignment;  // a 0-size tensor still has a valid pointer
    if (device.is_cpu()) {
      rounded = CpuBlockCache::rounded(rounded);
      ptr_ = CpuBlockCache::instance().take(rounded);
      if (!ptr_) {
        const std::size_t alignment = cpu_alignment(rounded);
        ptr_ = ::operator new(rounded, std::align_val_t(alignment));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (alignment == kHugePage) (void)::madvise(ptr_, rounded / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
      }
      cpu_bytes_ = rounded;
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
      if (!CpuBlockCache::instance().keep(ptr_, cpu_bytes_))
        ::operator delete(ptr_, std::align_val_t(cpu_alignment(cpu_bytes_)));
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
  // Set when a leaf Var that requires grad (a parameter) holds this block: ft::autocast keeps
  // its lower-precision copies for the guard's scope, as PyTorch's autocast cache.
  void mark_leaf_parameter() { leaf_parameter_.store(true, std::memory_order_relaxed); }
  bool leaf_parameter() const { return leaf_parameter_.load(std::memory_order_relaxed); }
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
  std::atomic<bool> leaf_parameter_{false};
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t cpu_bytes_ = 0;  // the size the CPU block was allocated with
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
