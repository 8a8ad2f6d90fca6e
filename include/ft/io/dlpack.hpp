// DLPack exchange with PyTorch, CuPy, JAX ...: zero copy in both directions.
//
//   DLManagedTensor* m = ft::io::to_dlpack(t);     // the consumer calls m->deleter(m) when done
//   ft::AnyTensor u = ft::io::from_dlpack(m);      // takes ownership: the producer's deleter runs
//                                              // when the last handle to u's storage goes
// from_dlpack takes ownership only when it succeeds; on ft::Error the caller still owns it.
#pragma once

#include <cstdint>
#include <string>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/dlpack/dlpack.h"

namespace ft::inline FT_ABI::io {

namespace detail {

inline DLDataType dlpack_dtype(DType t) {
  return {dtype_info(t).dlpack_code, static_cast<std::uint8_t>(8 * dtype_size(t)), 1};
}

static_assert(kDLInt == 0 && kDLUInt == 1 && kDLFloat == 2 && kDLBfloat == 4 && kDLBool == 6, "DTypeInfo::dlpack_code");

inline DType dtype_from_dlpack(DLDataType t) {
  const DTypeInfo* known =
      find_dtype([&](const DTypeInfo& i) { return t.lanes == 1 && t.code == i.dlpack_code && t.bits == 8 * i.size; });
  if (known) return known->dtype;
  fail("from_dlpack", "unsupported dtype (code ", int(t.code), ", ", int(t.bits), " bits, ", t.lanes,
       " lanes); fusedtensor has float16/32/64, bfloat16, int32/64, uint8 and bool");
}

// What a DLManagedTensor(Versioned) made by to_dlpack owns: the storage and the shape arrays.
template <class Managed>
struct DLPackContext {
  Storage storage;
  std::int64_t shape[kMaxRank > 0 ? kMaxRank : 1];
  std::int64_t strides[kMaxRank > 0 ? kMaxRank : 1];
  Managed managed{};
};

template <class Managed>
Managed* export_dlpack(const AnyTensor& t) {
  check(t.defined(), "to_dlpack", "the tensor is undefined");
  auto* ctx = new DLPackContext<Managed>();
  ctx->storage = t.storage();
  for (int d = 0; d < t.dim(); ++d) ctx->shape[d] = t.shape()[d], ctx->strides[d] = t.strides()[d];
  DLTensor& dl = ctx->managed.dl_tensor;
  dl.data = t.data();
  dl.device = t.device().is_cuda() ? DLDevice{kDLCUDA, t.device().index} : DLDevice{kDLCPU, 0};
  dl.ndim = t.dim();
  dl.dtype = dlpack_dtype(t.dtype());
  dl.shape = ctx->shape;
  dl.strides = ctx->strides;
  dl.byte_offset = 0;
  ctx->managed.manager_ctx = ctx;
  ctx->managed.deleter = [](Managed* self) { delete static_cast<DLPackContext<Managed>*>(self->manager_ctx); };
  return &ctx->managed;
}

// Wraps a DLTensor's memory; `release` runs when the last handle to it goes.
inline AnyTensor import_dlpack(const DLTensor& dl, std::function<void()> release) {
  const char* op = "from_dlpack";
  check(dl.ndim >= 0 && dl.ndim <= kMaxRank, op, "ndim ", dl.ndim, " is outside 0..", kMaxRank);
  const DType dtype = dtype_from_dlpack(dl.dtype);
  Device device = kCPU;
  switch (dl.device.device_type) {
    case kDLCPU:
    case kDLCUDAHost:
      break;  // page-locked host memory is host memory
    case kDLCUDA:
    case kDLCUDAManaged:
      device = Device(kCUDA, dl.device.device_id);
      cuda::require_device(device, op);
      break;
    default:
      fail(op, "device type ", int(dl.device.device_type), " is not supported (CPU, CUDA, CUDA host memory)");
  }
  check(dl.ndim == 0 || dl.shape, op, "shape is null for a tensor of ", dl.ndim, " dimensions");
  std::int64_t numel = 1, extent = 1, compact = 1;
  std::int64_t strides[kMaxRank > 0 ? kMaxRank : 1] = {};
  for (int d = dl.ndim - 1; d >= 0; --d) {
    const std::int64_t s = dl.shape[d];
    check(s >= 0, op, "negative extent ", s, " in dimension ", d);
    strides[d] = dl.strides ? dl.strides[d] : compact;  // null strides: compact row-major
    check(strides[d] >= 0, op, "negative stride ", strides[d], " in dimension ", d,
          " is not supported (copy it first)");
    compact *= s;
    numel *= s;
    if (s > 0) extent += (s - 1) * strides[d];
  }
  const std::size_t bytes = numel == 0 ? 0 : static_cast<std::size_t>(extent) * dtype_size(dtype);
  void* first = static_cast<char*>(dl.data) + dl.byte_offset;
  Storage storage = wrap_storage(first, bytes, device, [release = std::move(release)](void*) { release(); });
  return with_dtype_rank(dtype, dl.ndim, [&]<class T, int R>() -> AnyTensor {
    Shape<R> s;
    Array<index_t, R> st;
    for (int d = 0; d < R; ++d) s[d] = dl.shape[d], st[d] = strides[d];
    return Tensor<T, R>(storage, static_cast<T*>(first), s, st);
  });
}

}  // namespace detail

// A DLPack view of `t` sharing its storage (kept alive until the consumer calls the deleter).
inline DLManagedTensor* to_dlpack(const AnyTensor& t) { return detail::export_dlpack<DLManagedTensor>(t); }
inline DLManagedTensorVersioned* to_dlpack_versioned(const AnyTensor& t) {
  auto* m = detail::export_dlpack<DLManagedTensorVersioned>(t);
  m->version = {DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION};
  m->flags = 0;
  return m;
}

// Takes ownership of `m` on success: its deleter runs when the last handle to the data goes.
inline AnyTensor from_dlpack(DLManagedTensor* m) {
  check(m != nullptr, "from_dlpack", "null DLManagedTensor");
  return detail::import_dlpack(m->dl_tensor, [m] {
    if (m->deleter) m->deleter(m);
  });
}
inline AnyTensor from_dlpack(DLManagedTensorVersioned* m) {
  check(m != nullptr, "from_dlpack", "null DLManagedTensorVersioned");
  check(m->version.major == DLPACK_MAJOR_VERSION, "from_dlpack", "DLPack version ", m->version.major, ".",
        m->version.minor, " is not supported (major version ", DLPACK_MAJOR_VERSION, ")");
  check(!(m->flags & DLPACK_FLAG_BITMASK_READ_ONLY), "from_dlpack",
        "the tensor is read-only, and fusedtensor tensors are writable; copy it first");
  return detail::import_dlpack(m->dl_tensor, [m] {
    if (m->deleter) m->deleter(m);
  });
}
// The typed form: checks the dtype and rank before taking ownership.
template <class T, int R, class Managed>
Tensor<T, R> from_dlpack(Managed* m) {
  check(m != nullptr, "from_dlpack", "null managed tensor");
  check(detail::dtype_from_dlpack(m->dl_tensor.dtype) == dtype_of<T>() && m->dl_tensor.ndim == R, "from_dlpack",
        "the tensor is ", detail::dtype_from_dlpack(m->dl_tensor.dtype), " of rank ", m->dl_tensor.ndim, ", requested ",
        dtype_of<T>(), " of rank ", R);
  return from_dlpack(m).template as<T, R>();
}

}  // namespace ft::inline FT_ABI::io
