// Per-device counters of kernel launches and allocations, read by tests and benchmarks.
#pragma once

#include <atomic>
#include <cstdint>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"

namespace ft::inline FT_ABI::stats {

namespace detail {

struct Counters {
  std::atomic<std::int64_t> launches{0};
  std::atomic<std::int64_t> allocations{0};
  std::atomic<std::int64_t> bytes_in_use{0};
  std::atomic<std::int64_t> peak_bytes{0};
  std::atomic<std::int64_t> host_syncs{0};
};

inline Counters& counters(Device d) {
  static Counters cpu;
  static Counters cuda[kMaxDevices];
  if (d.is_cpu()) return cpu;
  return cuda[(d.index >= 0 && d.index < kMaxDevices) ? d.index : 0];
}

inline void record_launch(Device d) { counters(d).launches.fetch_add(1, std::memory_order_relaxed); }
inline void record_host_sync(Device d) { counters(d).host_syncs.fetch_add(1, std::memory_order_relaxed); }

inline void record_alloc(Device d, std::int64_t bytes) {
  Counters& c = counters(d);
  c.allocations.fetch_add(1, std::memory_order_relaxed);
  std::int64_t now = c.bytes_in_use.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::int64_t peak = c.peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !c.peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

inline void record_free(Device d, std::int64_t bytes) {
  counters(d).bytes_in_use.fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace detail

// Kernel launches (CUDA) or parallel loops (CPU) run on this device since the last reset().
inline std::int64_t launches(Device d) { return detail::counters(d).launches.load(); }
// Storage blocks allocated on this device since the last reset().
inline std::int64_t allocations(Device d) { return detail::counters(d).allocations.load(); }
// Bytes currently held by live tensors on this device.
inline std::int64_t bytes_in_use(Device d) { return detail::counters(d).bytes_in_use.load(); }
// The most bytes held at once since the last reset().
inline std::int64_t peak_bytes(Device d) { return detail::counters(d).peak_bytes.load(); }

// Times the host waited for this device's work since the last reset(): a stream synchronise,
// a copy to or from host memory, an item(). On the CPU the same call sites are counted (an
// item() of a CPU tensor), so a test on a CPU-only machine sees what a GPU step would wait for.
inline std::int64_t host_syncs(Device d) { return detail::counters(d).host_syncs.load(); }

// Zeroes launch, allocation and host-sync counts on every device; the peak restarts from what is in use.
inline void reset() {
  auto clear = [](detail::Counters& c) {
    c.launches = 0;
    c.allocations = 0;
    c.host_syncs = 0;
    c.peak_bytes = c.bytes_in_use.load();
  };
  clear(detail::counters(kCPU));
  for (int i = 0; i < kMaxDevices; ++i) clear(detail::counters(Device(kCUDA, i)));
}

}  // namespace ft::inline FT_ABI::stats
