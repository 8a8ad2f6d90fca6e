// CUDA runtime glue: availability, the library's current stream, error checks, the
// stream-ordered allocator and copies. Compiles to CPU-only stubs without nvcc.
#pragma once

#include <cstddef>
#include <cstring>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"

#if FT_CUDA_ENABLED
#include <cuda_runtime.h>
#endif

namespace ft::inline FT_ABI::cuda {

#if FT_CUDA_ENABLED

// Throws ft::Error naming the call, the CUDA status and the source location. The runtime keeps
// a failed call's status as the thread's last error; it is cleared here, so that a caught error
// (an out-of-memory the caller handles) does not make the next good launch's
// cudaGetLastError() throw. (A sticky error of a broken context cannot be cleared and stays.)
inline void check_status(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(detail::concat("CUDA error: ", call, " failed with ", cudaGetErrorName(status), " (",
                               cudaGetErrorString(status), ") at ", file, ":", line));
  }
}

// A query's cudaErrorNotReady (cudaEventQuery, cudaStreamQuery) is an answer, not an error:
// returns whether the work is done, throws on a real error, and leaves no last error behind.
inline bool query_done(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaErrorNotReady) {
    if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
    return false;
  }
  check_status(status, call, file, line);
  return true;
}
#define FT_CUDA_QUERY(call) ::ft::cuda::query_done((call), #call, __FILE__, __LINE__)
#define FT_CUDA_CHECK(call) ::ft::cuda::check_status((call), #call, __FILE__, __LINE__)

inline cudaStream_t& current_stream_ref() {
  thread_local cudaStream_t stream = nullptr;  // the legacy default stream until set_stream()
  return stream;
}
// The stream every fusedtensor launch, allocation and copy on this thread is ordered on.
inline cudaStream_t current_stream() { return current_stream_ref(); }
inline void set_stream(cudaStream_t s) { current_stream_ref() = s; }

// Makes `s` the current stream for the scope and restores the previous one after, also when
// the scope is left by an exception.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t s) : previous_(current_stream()) { set_stream(s); }
  ~StreamGuard() { set_stream(previous_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  cudaStream_t previous_;
};

inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return n;
}

// Makes `d` current for the scope, restoring the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device d) {
    FT_CUDA_CHECK(cudaGetDevice(&previous_));
    if (d.index != previous_) FT_CUDA_CHECK(cudaSetDevice(d.index));
    changed_ = d.index != previous_;
  }
  ~DeviceGuard() {
    if (changed_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Waits for the current stream (counted in stats::host_syncs).
inline void synchronize() {
  int device = 0;
  FT_CUDA_CHECK(cudaGetDevice(&device));
  stats::detail::record_host_sync(Device(DeviceType::CUDA, device));
  FT_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

#else

inline int device_count() { return 0; }
inline void synchronize() {}

#endif

inline bool is_available() { return device_count() > 0; }

// Throws unless `d` names a CUDA device this process can use.
inline void require_device(Device d, const char* op) {
#if FT_CUDA_ENABLED
  int n = device_count();
  if (n == 0) fail(op, "device ", d, " requested but no CUDA device is available (no GPU or driver)");
  if (d.index < 0 || d.index >= n) fail(op, "device ", d, " requested but only ", n, " CUDA device(s) exist");
  if (d.index >= kMaxDevices)
    fail(op, "device ", d, " requested but fusedtensor supports at most ", kMaxDevices, " CUDA devices a process");
#else
  fail(op, "device ", d, " requested but this translation unit was compiled without CUDA (compile it with nvcc)");
#endif
}

// Stream-ordered device allocation from the driver's memory pool, which acts as the
// caching allocator: its release threshold is raised so freed blocks are kept for reuse.
inline void* allocate(std::size_t bytes, Device d) {
  require_device(d, "allocate");
#if FT_CUDA_ENABLED
  DeviceGuard guard(d);
  static thread_local bool pool_ready[kMaxDevices] = {};
  if (!pool_ready[d.index]) {
    cudaMemPool_t pool;
    FT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, d.index));
    unsigned long long threshold = ~0ull;
    FT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    pool_ready[d.index] = true;
  }
  void* p = nullptr;
  FT_CUDA_CHECK(cudaMallocAsync(&p, bytes, current_stream()));
  return p;
#else
  (void)bytes;
  return nullptr;
#endif
}

inline void deallocate(void* p, Device d) noexcept {
#if FT_CUDA_ENABLED
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;  // driver already shut down
  if (previous != d.index) (void)cudaSetDevice(d.index);
  (void)cudaFreeAsync(p, current_stream());
  if (previous != d.index) (void)cudaSetDevice(previous);
#else
  (void)p;
  (void)d;
#endif
}

// Copies `bytes` between any two devices; returns once the data is at `dst` (host reads are safe).
inline void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if FT_CUDA_ENABLED
  Device gpu = dst_dev.is_cuda() ? dst_dev : src_dev;
  DeviceGuard guard(gpu);
  if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev.index != src_dev.index) {
    FT_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev.index, src, src_dev.index, bytes, current_stream()));
  } else {
    FT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, current_stream()));
  }
  if (dst_dev.is_cpu() || src_dev.is_cpu()) synchronize();  // pageable host memory: finish before return
#else
  require_device(dst_dev.is_cuda() ? dst_dev : src_dev, "copy");
#endif
}

}  // namespace ft::inline FT_ABI::cuda
