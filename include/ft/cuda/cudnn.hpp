// cuDNN glue: FT_CUDNN_CHECK, and one cuDNN handle per device and host thread, bound to the
// library's current stream. FT_CUDNN_ENABLED is 1 under nvcc when cudnn.h is found (and
// FT_NO_CUDNN is not defined); the program then links libcudnn. Otherwise this is empty and
// conv2d on a GPU throws.
#pragma once

#include "ft/core/config.hpp"

#if FT_CUDA_ENABLED && !defined(FT_NO_CUDNN) && __has_include(<cudnn.h>)
#define FT_CUDNN_ENABLED 1
#else
#define FT_CUDNN_ENABLED 0
#endif

#if FT_CUDNN_ENABLED

#include <cudnn.h>

#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/cuda/runtime.hpp"

namespace ft::inline FT_ABI::cuda {

// Throws ft::Error naming the call, cuDNN's status string and the source location.
inline void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw Error(ft::detail::concat("cuDNN error: ", call, " failed with ", cudnnGetErrorString(status), " at ", file,
                                   ":", line));
}
#define FT_CUDNN_CHECK(call) ::ft::cuda::check_cudnn((call), #call, __FILE__, __LINE__)

// The calling thread's handle for device `d`, created on first use and kept for the process
// (destroying it at exit could run after the driver has shut down), set to current_stream().
// A handle is not thread-safe, hence one per thread; the caller makes `d` current.
inline cudnnHandle_t cudnn_handle(Device d) {
  thread_local cudnnHandle_t handles[kMaxDevices] = {};
  if (d.index < 0 || d.index >= kMaxDevices) fail("cudnn", "device ", d, " is beyond the ", kMaxDevices, " supported");
  cudnnHandle_t& h = handles[d.index];
  if (!h) FT_CUDNN_CHECK(cudnnCreate(&h));
  FT_CUDNN_CHECK(cudnnSetStream(h, current_stream()));
  return h;
}

}  // namespace ft::inline FT_ABI::cuda

#endif
