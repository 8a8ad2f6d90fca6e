// CUDA runtime glue: availability, the library's current stream, error checks, the
// stream-ordered allocator and copies. Compiles to CPU-only stubs without nvcc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"

#if FT_CUDA_ENABLED
#include <cuda_runtime.h>
#endif

namespace ft::inline FT_ABI::cuda {

#if FT_CUDA_ENABLED
using Stream = cudaStream_t;
#else
using Stream = void*;  // CPU builds: no streams; Storage keeps the field for one layout of code
#endif

#if FT_CUDA_ENABLED

// Throws ft::Error naming the call, the CUDA status and the source location. The runtime keeps
// a failed call's status as the thread's last error; it is cleared here, so that a caught error
// (an out-of-memory the caller handles) does not make the next good launch's
// cudaGetLastError() throw. (A sticky error of a broken context cannot be cleared and stays.)
inline void check_status(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(ft::detail::concat("CUDA error: ", call, " failed with ", cudaGetErrorName(status), " (",
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

// The device current on this thread (cudaGetDevice), checked against the library's limit.
inline int current_device() {
  int device = 0;
  FT_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices)
    fail("current_stream", "device cuda:", device, " is current but fusedtensor supports at most ", kMaxDevices,
         " CUDA devices a process");
  return device;
}

// Each thread has one current stream per device, as in PyTorch: a stream belongs to the device
// that was current when it was created, so switching devices switches streams with them.
inline cudaStream_t& stream_slot(int device) {
  thread_local cudaStream_t streams[kMaxDevices] = {};  // the legacy default stream until set
  return streams[device];
}
// The stream every fusedtensor launch, allocation and copy on `device` (on this thread) is
// ordered on.
inline cudaStream_t current_stream(Device device) { return stream_slot(device.index); }
// The current stream of the current device.
inline cudaStream_t current_stream() { return stream_slot(current_device()); }
// Makes `s` the current stream of `device` (of the current device) on this thread. `s` must
// belong to that device.
inline void set_stream(Device device, cudaStream_t s) { stream_slot(device.index) = s; }
inline void set_stream(cudaStream_t s) { stream_slot(current_device()) = s; }

// Makes `s` the current stream of the current device for the scope and restores the previous
// one after, also when the scope is left by an exception.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t s) : device_(current_device()), previous_(stream_slot(device_)) {
    stream_slot(device_) = s;
  }
  ~StreamGuard() { stream_slot(device_) = previous_; }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  cudaStream_t previous_;
};

// The CUDA graph capture running on this thread (cuda::Graph), if any: its device, a number
// that tells its allocations from older ones, and the blocks of older allocations freed during
// it, which are freed only once it has ended (freeing them inside the capture would make the
// graph free them again at each replay).
struct DeferredFree {
  void* ptr;
  Device device;
  cudaStream_t stream;
};
struct CaptureState {
  int device = -1;
  std::uint64_t id = 0;           // 0: none
  cudaStream_t origin = nullptr;  // the stream current when the capture began
  std::vector<DeferredFree> deferred;
};
inline CaptureState& capture_state() {
  thread_local CaptureState state;
  return state;
}
// Whether this thread is capturing a CUDA graph (of any device, or of `d`).
inline bool capturing() { return capture_state().id != 0; }
inline bool capturing(Device d) { return d.is_cuda() && capture_state().id != 0 && capture_state().device == d.index; }
// Throws the error of an operation that needs the host to wait for the device, or another
// thing a capture cannot record, during a capture on `d` (any device when `d` is the CPU).
inline void require_not_capturing(const char* op, const char* what) {
  if (capturing())
    fail(op, what, " inside a CUDA graph capture (cuda::Graph on cuda:", capture_state().device,
         "): a graph replays device work only. Move it out of the captured region");
}

// Makes `waiter`, a stream of the current device, wait (on the device) for the work issued so
// far to `stream`, a stream of `device`, through an event; the host does not wait.
inline void stream_wait(cudaStream_t waiter, cudaStream_t stream, int device) {
  int previous = 0;
  FT_CUDA_CHECK(cudaGetDevice(&previous));
  if (waiter == stream && previous == device) return;  // one stream: already in order
  if (previous != device) FT_CUDA_CHECK(cudaSetDevice(device));
  cudaEvent_t event = nullptr;
  cudaError_t status = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
  if (status == cudaSuccess) status = cudaEventRecord(event, stream);
  if (previous != device) (void)cudaSetDevice(previous);
  if (status == cudaSuccess) status = cudaStreamWaitEvent(waiter, event, 0);
  if (event) (void)cudaEventDestroy(event);  // released once the wait is satisfied
  FT_CUDA_CHECK(status);
}

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

inline void check_reports(Device d);  // below: throws what a kernel on d reported

// Waits for the current stream (counted in stats::host_syncs), then throws what a kernel's
// check reported (check_reports).
inline void synchronize() {
  require_not_capturing("synchronize", "the host waits for the device (item(), to(kCPU), a copy to the host)");
  const int device = current_device();
  stats::detail::record_host_sync(Device(DeviceType::CUDA, device));
  FT_CUDA_CHECK(cudaStreamSynchronize(stream_slot(device)));
  check_reports(Device(DeviceType::CUDA, device));
}

#else

inline int device_count() { return 0; }
inline void synchronize() {}
inline Stream current_stream(Device) { return nullptr; }
inline bool capturing() { return false; }
inline bool capturing(Device) { return false; }
inline void require_not_capturing(const char*, const char*) {}

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

// ---- Checks made inside kernels (bounds of gathered indices, say) ----
// A kernel that finds bad input cannot throw: it writes its check's code into the device's
// report word and carries on with a harmless value; the host throws an ft::Error with the
// check's message at the next synchronisation of that device (cuda::synchronize, item(),
// to_vector(), a copy to the host) — as PyTorch's device-side asserts, without stopping the
// context. On the CPU the statement has finished when the launch returns, so the caller
// checks at once (check_reports). The word lives in mapped page-locked host memory: the
// device writes it directly, the host reads it after the stream's work is done, no copy.
struct CheckMessages {
  std::mutex mutex;
  std::vector<std::string> text;  // code k (1-based) is text[k - 1]
};
inline CheckMessages& check_messages() {
  static CheckMessages m;
  return m;
}

// The code a kernel reports when the check described by `message` fails (the same message gets
// the same code; past 4096 distinct messages they share one generic code).
inline int check_code(const std::string& message) {
  auto& m = check_messages();
  std::lock_guard lock(m.mutex);
  for (std::size_t k = 0; k < m.text.size(); ++k)
    if (m.text[k] == message) return static_cast<int>(k) + 1;
  if (m.text.size() >= 4096) return 1;
  if (m.text.empty()) m.text.push_back("a check inside a kernel failed");
  m.text.push_back(message);
  return static_cast<int>(m.text.size());
}

// The report word of `d`, as a pointer the kernels on `d` write (a host int for the CPU).
inline int* report_word(Device d) {
  static int cpu_word = 0;
  if (d.is_cpu()) return &cpu_word;
#if FT_CUDA_ENABLED
  require_device(d, "report_word");
  static std::once_flag made[kMaxDevices];
  static int* words[kMaxDevices] = {};
  std::call_once(made[d.index], [&] {
    DeviceGuard guard(d);
    void* p = nullptr;
    FT_CUDA_CHECK(cudaHostAlloc(&p, sizeof(int), cudaHostAllocMapped | cudaHostAllocPortable));
    *static_cast<volatile int*>(p) = 0;
    words[d.index] = static_cast<int*>(p);  // unified addressing: the host pointer is the device's
  });
  return words[d.index];
#else
  return &cpu_word;
#endif
}

// Called by a kernel (or a CPU loop) whose check failed.
FT_HD FT_INLINE void report(int* word, int code) {
#if defined(__CUDA_ARCH__)
  *static_cast<volatile int*>(word) = code;
#else
  std::atomic_ref<int>(*word).store(code, std::memory_order_relaxed);
#endif
}

// The offending value of the last failed check of a CPU loop that gave one (a bad index), named
// in the error; INT64_MIN when none was given. (A GPU's report word holds the code only.)
inline std::int64_t& cpu_reported_value() {
  static std::int64_t value = std::numeric_limits<std::int64_t>::min();
  return value;
}

// report() with the offending value, for the CPU's error message.
FT_HD FT_INLINE void report(int* word, int code, [[maybe_unused]] std::int64_t value) {
#if !defined(__CUDA_ARCH__)
  std::atomic_ref<std::int64_t>(cpu_reported_value()).store(value, std::memory_order_relaxed);
#endif
  report(word, code);
}

// Throws the reported check's message (and clears the report) if a kernel on `d` reported one
// since the last call; the caller has waited for the work that could have reported it.
inline void check_reports(Device d) {
  int* word = report_word(d);
  if (std::atomic_ref<int>(*word).load(std::memory_order_relaxed) == 0) return;  // the common case: no locked op
  const int code = std::atomic_ref<int>(*word).exchange(0, std::memory_order_relaxed);
  if (code == 0) return;
  std::string message;
  {
    auto& m = check_messages();
    std::lock_guard lock(m.mutex);
    message = code >= 1 && static_cast<std::size_t>(code) <= m.text.size() ? m.text[code - 1] : "unknown check";
  }
  std::string value;
  if (d.is_cpu()) {
    const std::int64_t v = std::atomic_ref<std::int64_t>(cpu_reported_value())
                               .exchange(std::numeric_limits<std::int64_t>::min(), std::memory_order_relaxed);
    if (v != std::numeric_limits<std::int64_t>::min()) value = ft::detail::concat("; the value read: ", v);
  }
  throw Error(ft::detail::concat(message, value,
                                 d.is_cuda() ? " (found on the GPU by a kernel; reported at this synchronisation of "
                                             : " (found by the CPU loop on ",
                                 d, ")"));
}

// Stream-ordered device allocation from the driver's memory pool, which acts as the
// caching allocator: its release threshold is raised so freed blocks are kept for reuse. The
// block is allocated on the current stream of `d`; the caller keeps that stream and frees the
// block on it (deallocate), so the stream must outlive the block.
inline void* allocate(std::size_t bytes, Device d) {
  require_device(d, "allocate");
#if FT_CUDA_ENABLED
  DeviceGuard guard(d);
  static std::once_flag pool_ready[kMaxDevices];
  std::call_once(pool_ready[d.index], [&] {
    cudaMemPool_t pool;
    FT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, d.index));
    unsigned long long threshold = ~0ull;
    FT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  });
  void* p = nullptr;
  FT_CUDA_CHECK(cudaMallocAsync(&p, bytes, current_stream(d)));
  return p;
#else
  (void)bytes;
  return nullptr;
#endif
}

// Frees a block of `d` allocated on `stream`, on that stream, after the work that the freeing
// thread's current stream of `d` and the streams in `used_on` (Tensor::record_stream) have been
// given so far: an event on each other stream orders the free, so the pool cannot hand the
// block to new work while a kernel on another stream still reads it (PyTorch's recordStream
// rule). Nothing waits on the host. Errors are swallowed: this runs in destructors, possibly
// after the driver has shut down.
inline void deallocate(void* p, Device d, Stream stream, std::span<const Stream> used_on = {},
                       std::uint64_t capture = 0) noexcept {
#if FT_CUDA_ENABLED
  if (CaptureState& cs = capture_state(); cs.id != 0 && cs.device == d.index && capture != cs.id) {
    try {
      cs.deferred.push_back({p, d, stream});  // allocated before the capture: freed after it
      return;
    } catch (...) {
      return;  // out of host memory: the block leaks rather than break the capture
    }
  }
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;  // driver already shut down
  if (previous != d.index) (void)cudaSetDevice(d.index);
  auto order_after = [&](cudaStream_t other) {
    if (other == stream) return;
    cudaEvent_t event = nullptr;
    if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) return;
    if (cudaEventRecord(event, other) == cudaSuccess) (void)cudaStreamWaitEvent(stream, event, 0);
    (void)cudaEventDestroy(event);
  };
  order_after(stream_slot(d.index));
  for (Stream other : used_on) order_after(other);
  (void)cudaFreeAsync(p, stream);
  (void)cudaGetLastError();  // a failure here must not surface at the next launch's check
  if (previous != d.index) (void)cudaSetDevice(previous);
#else
  (void)p;
  (void)d;
  (void)stream;
  (void)used_on;
  (void)capture;
#endif
}

#if FT_CUDA_ENABLED
// The library's own non-blocking streams, one of each kind a device for the process, created on
// first use and never destroyed: the blocks allocated on them (batches the DataLoader copies,
// a CUDA graph's allocations) may outlive whoever used them, and a block is freed on the
// stream it was allocated on.
enum class OwnStream { side, capture };
inline cudaStream_t own_stream(Device d, OwnStream kind) {
  require_device(d, "stream");
  constexpr int kKinds = 2;
  static std::once_flag made[kKinds][kMaxDevices];
  static cudaStream_t streams[kKinds][kMaxDevices] = {};
  const int k = static_cast<int>(kind);
  std::call_once(made[k][d.index], [&] {
    DeviceGuard guard(d);
    FT_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[k][d.index], cudaStreamNonBlocking));
  });
  return streams[k][d.index];
}
// The side stream of `d`: the DataLoader's host-to-device copies.
inline cudaStream_t side_stream(Device d) { return own_stream(d, OwnStream::side); }
#endif

// Copies `bytes` between any two devices; returns once the data is at `dst` (host reads are
// safe). A copy between two GPUs runs on the destination's current stream after the work already
// given to the source's current stream (which may still be writing `src`), and the source's
// stream waits for the copy in turn, so that nothing later on it (a write, the free of `src`)
// overtakes the copy. Events on both sides; the host does not wait.
inline void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if FT_CUDA_ENABLED
  if (dst_dev.is_cpu() || src_dev.is_cpu()) require_not_capturing("copy", "a copy between the host and the device");
  Device gpu = dst_dev.is_cuda() ? dst_dev : src_dev;
  DeviceGuard guard(gpu);
  if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev.index != src_dev.index) {
    cudaStream_t dst_stream = current_stream(dst_dev);
    cudaStream_t src_stream = current_stream(src_dev);
    stream_wait(dst_stream, src_stream, src_dev.index);
    FT_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev.index, src, src_dev.index, bytes, dst_stream));
    DeviceGuard on_source(src_dev);
    stream_wait(src_stream, dst_stream, dst_dev.index);
  } else {
    FT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, current_stream(gpu)));
  }
  if (dst_dev.is_cpu() || src_dev.is_cpu()) synchronize();  // pageable host memory: finish before return
#else
  require_device(dst_dev.is_cuda() ? dst_dev : src_dev, "copy");
#endif
}

}  // namespace ft::inline FT_ABI::cuda
