// ft::autocast: PyTorch's automatic mixed precision, as an RAII guard per device type.
//
//   {
//     ft::autocast guard(ft::kCPU, ft::kBFloat16);   // ft::kCUDA: float16 by default, as torch
//     ft::Var<float, 2> y = ft::relu(fc.forward(x));   // the GEMM in bfloat16, float accumulation
//   }
//
// Inside the guard, the ops of PyTorch's lower-precision list — matmul, linear, bmm, conv2d,
// conv1d, conv_transpose2d — with float operands on that device type run in the guard's type:
// the operands are rounded to it, the product is accumulated in float, and the result is the
// product rounded to the guard's type, as PyTorch's output. Their gradients run the same way
// (the node remembers the guard). Everything else — elementwise statements, softmax,
// log_softmax, layer_norm, the losses, reductions — runs as outside the guard: in float for
// float operands, in float inside the kernel for half ones (PyTorch's float list), with the same
// launches.
//
// One difference from PyTorch follows from static types: the result of an autocast matmul is a
// float tensor holding the rounded values (PyTorch's holds them as bfloat16), so activations keep
// float's memory. For half the activation memory, build the model in the two-byte type
// (nn::Linear<ft::bfloat16>) with float master weights in the optimizer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/dtype.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI {

namespace amp::detail {
struct AutocastState {
  bool enabled = false;
  DType dtype = DType::BFloat16;
};
inline AutocastState& autocast_state(DeviceType type) {
  thread_local AutocastState state[2];
  return state[type == DeviceType::CPU ? 0 : 1];
}

// PyTorch's autocast cache: the lower-precision copy of a parameter (a block a leaf Var that
// requires grad holds) made by the first autocast op that reads it is kept while an enabled
// guard on this thread lives, so a weight read by several ops (a recurrent cell called each
// step, a tied embedding, the backward inside the guard) is cast once. Keyed by the block, the
// view (data, shape, strides), the kind of copy and the block's version (a write through the
// library makes a new copy); the source block is kept alive with its entry, so an address never
// names another tensor. Emptied when the outermost enabled guard ends.
struct CastCacheEntry {
  std::shared_ptr<const void> source;  // the source block (kept alive)
  const void* data = nullptr;
  std::vector<std::int64_t> shape, strides;
  int kind = 0;  // which copy (its element type and rounding)
  std::uint64_t version = 0;
  std::shared_ptr<const void> copy;  // the typed copy (a Tensor)
};
struct CastCache {
  int guards = 0;  // enabled guards alive on this thread
  std::vector<CastCacheEntry> entries;
};
inline CastCache& cast_cache(DeviceType type) {
  thread_local CastCache cache[2];
  return cache[type == DeviceType::CPU ? 0 : 1];
}
}  // namespace amp::detail

namespace amp {
// The guard's type on `device`'s type when a guard is active on this thread, else nothing.
inline std::optional<DType> autocast_dtype(Device device) {
  const detail::AutocastState& s = detail::autocast_state(device.type);
  if (!s.enabled) return std::nullopt;
  return s.dtype;
}
inline bool is_autocast_enabled(DeviceType type) { return detail::autocast_state(type).enabled; }
}  // namespace amp

// Enables (or, with enabled = false, disables) autocast on `type` for this thread until the
// guard's scope ends; guards nest. The default type is PyTorch's: float16 on CUDA, bfloat16 on
// the CPU.
class autocast {
 public:
  explicit autocast(DeviceType type, std::optional<DType> dtype = std::nullopt, bool enabled = true)
      : type_(type), saved_(amp::detail::autocast_state(type)) {
    const DType d = dtype.value_or(type == DeviceType::CUDA ? DType::Float16 : DType::BFloat16);
    check(d == DType::Float16 || d == DType::BFloat16, "autocast",
          "the lower precision must be float16 or bfloat16, got ", d);
    amp::detail::autocast_state(type) = {enabled, d};
    if (enabled) ++amp::detail::cast_cache(type).guards;
    counted_ = enabled;
  }
  ~autocast() {
    amp::detail::autocast_state(type_) = saved_;
    if (counted_ && --amp::detail::cast_cache(type_).guards == 0) amp::detail::cast_cache(type_).entries.clear();
  }
  autocast(const autocast&) = delete;
  autocast& operator=(const autocast&) = delete;

 private:
  DeviceType type_;
  amp::detail::AutocastState saved_;
  bool counted_ = false;
};

namespace amp {
using ft::autocast;

// f.template operator()<H>() with H the two-byte type of the guard active on `device`'s type;
// nullopt when no guard is (f returns what the autocast op returns).
template <class F>
auto with_autocast_type(Device device, F&& f) -> std::optional<decltype(f.template operator()<bfloat16>())> {
  const auto d = autocast_dtype(device);
  if (!d) return std::nullopt;
  if (*d == DType::BFloat16) return f.template operator()<bfloat16>();
  return f.template operator()<half>();
}

// Re-establishes a remembered autocast state for a scope (a node's backward runs its GEMMs as its
// forward did).
class AutocastScope {
 public:
  AutocastScope(DeviceType type, std::optional<DType> dtype) : type_(type), saved_(detail::autocast_state(type)) {
    detail::autocast_state(type) = {dtype.has_value(), dtype.value_or(DType::BFloat16)};
  }
  ~AutocastScope() { detail::autocast_state(type_) = saved_; }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  DeviceType type_;
  detail::AutocastState saved_;
};
}  // namespace amp

}  // namespace ft::inline FT_ABI
