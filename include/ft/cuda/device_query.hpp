// Device queries: what torch.cuda.get_device_properties and CUDA's deviceQuery report, and
// why no GPU is usable when none is. Compiles to "no CUDA" answers without nvcc.
#pragma once

#include <cstddef>
#include <string>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/cuda/runtime.hpp"

namespace ft::inline FT_ABI::cuda {

struct DeviceProperties {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  std::size_t total_memory = 0, free_memory = 0;  // bytes
  int clock_khz = 0, memory_clock_khz = 0, memory_bus_bits = 0;
  double peak_bandwidth_gbps = 0;  // 2 × memory clock × bus width (DDR)
  int l2_bytes = 0;
  std::size_t shared_per_block = 0, shared_per_multiprocessor = 0, shared_per_block_optin = 0;
  int registers_per_block = 0, warp_size = 0;
  int max_threads_per_block = 0, max_threads_per_multiprocessor = 0;
  int max_block[3] = {0, 0, 0}, max_grid[3] = {0, 0, 0};
  bool ecc = false, concurrent_kernels = false, unified_addressing = false, managed_memory = false;
  int async_engines = 0;
  int pci_domain = 0, pci_bus = 0, pci_device = 0;
};

#if FT_CUDA_ENABLED

inline DeviceProperties device_properties(int i) {
  const int n = device_count();
  check(i >= 0 && i < n, "device_properties", "device ", i, " requested but ", n, " CUDA device(s) are usable");
  cudaDeviceProp p{};
  FT_CUDA_CHECK(cudaGetDeviceProperties(&p, i));
  DeviceProperties d;
  d.index = i;
  d.name = p.name;
  d.major = p.major, d.minor = p.minor;
  d.multiprocessors = p.multiProcessorCount;
  d.total_memory = p.totalGlobalMem;
  {
    DeviceGuard guard(Device(kCUDA, i));
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) d.free_memory = free;
  }
  // CUDA 13 removed the clock fields from cudaDeviceProp: they are attributes now
  (void)cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, i);
  (void)cudaDeviceGetAttribute(&d.memory_clock_khz, cudaDevAttrMemoryClockRate, i);
  d.memory_bus_bits = p.memoryBusWidth;
  d.peak_bandwidth_gbps = 2.0 * d.memory_clock_khz * 1e3 * (d.memory_bus_bits / 8.0) / 1e9;
  d.l2_bytes = p.l2CacheSize;
  d.shared_per_block = p.sharedMemPerBlock;
  d.shared_per_multiprocessor = p.sharedMemPerMultiprocessor;
  d.shared_per_block_optin = p.sharedMemPerBlockOptin;
  d.registers_per_block = p.regsPerBlock;
  d.warp_size = p.warpSize;
  d.max_threads_per_block = p.maxThreadsPerBlock;
  d.max_threads_per_multiprocessor = p.maxThreadsPerMultiProcessor;
  for (int k = 0; k < 3; ++k) d.max_block[k] = p.maxThreadsDim[k], d.max_grid[k] = p.maxGridSize[k];
  d.ecc = p.ECCEnabled, d.concurrent_kernels = p.concurrentKernels;
  d.unified_addressing = p.unifiedAddressing, d.managed_memory = p.managedMemory;
  d.async_engines = p.asyncEngineCount;
  d.pci_domain = p.pciDomainID, d.pci_bus = p.pciBusID, d.pci_device = p.pciDeviceID;
  return d;
}

// Why CUDA is or is not usable, in words: "usable: N device(s)" or the reason there are none.
inline std::string availability_reason() {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();
  int runtime = 0, driver = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDriverGetVersion(&driver);
  auto v = [](int x) { return std::to_string(x / 1000) + "." + std::to_string(x % 1000 / 10); };
  if (status == cudaSuccess && n > 0) return "usable: " + std::to_string(n) + " device(s)";
  if (driver == 0)
    return "no CUDA driver found (libcuda is not installed or not loadable; is this machine's GPU passed through?)";
  if (driver < runtime)
    return "the driver supports CUDA " + v(driver) + ", older than this program's runtime " + v(runtime) +
           " (update the NVIDIA driver)";
  if (status == cudaErrorNoDevice || n == 0) return "the driver found no CUDA-capable device";
  return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
         ")";
}

#else

inline DeviceProperties device_properties(int i) {
  fail("device_properties", "device ", i,
       " requested but this translation unit was compiled without CUDA (compile it with nvcc)");
}
inline std::string availability_reason() {
  return "built without CUDA (this program was compiled by a plain C++ compiler; build it with nvcc)";
}

#endif

}  // namespace ft::inline FT_ABI::cuda
