// ft::Device: where a tensor lives.
#pragma once

#include <functional>
#include <ostream>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI {

enum class DeviceType : int { CPU = 0, CUDA = 1 };

inline constexpr DeviceType kCPU = DeviceType::CPU;
inline constexpr DeviceType kCUDA = DeviceType::CUDA;

// The most CUDA devices a process may use: every per-device table (statistics, cuBLAS handles,
// SM counts, memory pools) has this many entries, and require_device rejects a higher index.
inline constexpr int kMaxDevices = 16;

// A device type and index; converts implicitly from kCPU / kCUDA (index 0), like torch.device.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}  // NOLINT: implicit by design

  constexpr bool is_cpu() const { return type == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type == DeviceType::CUDA; }
  friend constexpr bool operator==(Device a, Device b) {
    return a.type == b.type && (a.type == DeviceType::CPU || a.index == b.index);
  }
};

inline std::ostream& operator<<(std::ostream& os, Device d) {
  if (d.is_cpu()) return os << "cpu";
  return os << "cuda:" << d.index;
}

}  // namespace ft::inline FT_ABI
