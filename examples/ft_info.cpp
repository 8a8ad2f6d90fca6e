// ft-info: the install check. Prints the library's and toolchain's versions, the machine, every
// GPU's properties (like CUDA's deviceQuery), then runs a small fused self-test on the CPU and
// on each GPU and ends with PASS, or FAIL and the reason.
//
//   ft-info                 # PASS when the CPU works (a missing GPU is reported, not a failure)
//   ft-info --require-cuda  # also FAIL when no GPU is usable
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "ft/cuda/device_query.hpp"
#include "ft/tensor.hpp"
#include "ft/version.hpp"

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

void print_device(const ft::cuda::DeviceProperties& d) {
  std::printf("\nDevice %d: \"%s\"\n", d.index, d.name.c_str());
  std::printf("  compute capability           %d.%d\n", d.major, d.minor);
  std::printf("  multiprocessors              %d\n", d.multiprocessors);
  std::printf("  global memory                %.1f GiB (%.1f GiB free)\n", d.total_memory / 1073741824.0,
              d.free_memory / 1073741824.0);
  std::printf("  GPU / memory clock           %d MHz / %d MHz, %d-bit bus (%.0f GB/s peak)\n", d.clock_khz / 1000,
              d.memory_clock_khz / 1000, d.memory_bus_bits, d.peak_bandwidth_gbps);
  std::printf("  L2 cache                     %d KiB\n", d.l2_bytes / 1024);
  std::printf("  shared memory                %zu KiB a block (%zu opt-in), %zu KiB a multiprocessor\n",
              d.shared_per_block / 1024, d.shared_per_block_optin / 1024, d.shared_per_multiprocessor / 1024);
  std::printf("  registers a block, warp size %d, %d\n", d.registers_per_block, d.warp_size);
  std::printf("  threads                      %d a block, %d a multiprocessor\n", d.max_threads_per_block,
              d.max_threads_per_multiprocessor);
  std::printf("  max block / grid             %d x %d x %d / %d x %d x %d\n", d.max_block[0], d.max_block[1],
              d.max_block[2], d.max_grid[0], d.max_grid[1], d.max_grid[2]);
  std::printf("  ECC, concurrent kernels      %s, %s\n", d.ecc ? "on" : "off", d.concurrent_kernels ? "yes" : "no");
  std::printf("  copy engines, UVA, managed   %d, %s, %s\n", d.async_engines, d.unified_addressing ? "yes" : "no",
              d.managed_memory ? "yes" : "no");
  std::printf("  PCI domain:bus:device        %04x:%02x:%02x\n", d.pci_domain, d.pci_bus, d.pci_device);
}

// sum(relu(a * b + c)) in one fused launch, a matmul, and a reduction along a dimension,
// each checked against a plain host loop. Returns "" or what went wrong.
std::string self_test(ft::Device dev) {
  try {
    const ft::index_t n = 1 << 16;
    auto a = ft::randn<float>({n}, dev, 1), b = ft::randn<float>({n}, dev, 2), c = ft::randn<float>({n}, dev, 3);
    const auto ha = a.to_vector(), hb = b.to_vector(), hc = c.to_vector();
    ft::stats::reset();
    ft::Tensor<float, 0> s = ft::sum(ft::relu(a * b + c));
    const auto launches = ft::stats::launches(dev);
    double want = 0;
    for (ft::index_t i = 0; i < n; ++i) want += std::max(0.0f, ha[i] * hb[i] + hc[i]);
    if (std::abs(s.item() - want) > 1e-3 * std::abs(want))
      return "fused sum(relu(a * b + c)) = " + std::to_string(s.item()) + ", expected " + std::to_string(want);
    if (launches != 1) return "fused statement took " + std::to_string(launches) + " launches, expected 1";

    auto x = ft::randn<float>({64, 48}, dev, 4), w = ft::randn<float>({48, 32}, dev, 5);
    ft::Tensor<float, 2> y = ft::matmul(x, w);
    const auto hx = x.to_vector(), hw = w.to_vector(), hy = y.to_vector();
    for (int i = 0; i < 64; ++i)
      for (int j = 0; j < 32; ++j) {
        double r = 0;
        for (int k = 0; k < 48; ++k) r += double(hx[i * 48 + k]) * hw[k * 32 + j];
        if (std::abs(hy[i * 32 + j] - r) > 1e-3 * (1 + std::abs(r)))
          return "matmul element (" + std::to_string(i) + ", " + std::to_string(j) + ") is wrong";
      }
    ft::Tensor<float, 1> rows = ft::max(y, 1);
    const auto hr = rows.to_vector();
    for (int i = 0; i < 64; ++i) {
      float m = hy[i * 32];
      for (int j = 1; j < 32; ++j) m = std::max(m, hy[i * 32 + j]);
      if (hr[i] != m) return "max along dim 1 is wrong in row " + std::to_string(i);
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const bool require_cuda = argc > 1 && !std::strcmp(argv[1], "--require-cuda");
  std::cout << ft::version_info();
  utsname u{};
  uname(&u);
  std::printf("  system        %s %s %s\n", u.sysname, u.release, u.machine);
  std::printf("  CPU           %s, %ld cores\n", cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN));

  const int gpus = ft::cuda::device_count();
  std::printf("\nCUDA available: %s (%s)\n", gpus > 0 ? "yes" : "no", ft::cuda::availability_reason().c_str());
  for (int i = 0; i < gpus; ++i) print_device(ft::cuda::device_properties(i));

  std::printf("\nSelf-test (one fused statement, a matmul, a reduction):\n");
  std::vector<std::string> failures;
  std::vector<ft::Device> devices{ft::kCPU};
  for (int i = 0; i < gpus; ++i) devices.emplace_back(ft::kCUDA, i);
  for (ft::Device d : devices) {
    const std::string why = self_test(d);
    std::cout << "  " << d << ": " << (why.empty() ? "ok" : "FAILED: " + why) << "\n";
    if (!why.empty()) failures.push_back(why);
  }
  if (!failures.empty()) {
    std::printf("FAIL: %s\n", failures.front().c_str());
    return 1;
  }
  if (gpus == 0 && require_cuda) {
    std::printf("FAIL: --require-cuda, but %s\n", ft::cuda::availability_reason().c_str());
    return 1;
  }
  std::printf("PASS%s\n", gpus == 0 ? " (CPU only: no GPU is usable)" : "");
  return 0;
}
