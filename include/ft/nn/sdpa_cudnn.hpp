// scaled_dot_product_attention on a GPU through cuDNN's fused attention (cuDNN 9's graph API,
// built with the cuDNN frontend's `sdpa` and `sdpa_backward` nodes): half and bfloat16 operands,
// no dropout, no mask, a causal mask or an additive mask of the operands' type.
//
// The frontend's headers are large (a file that includes them takes 25 s more to compile), so
// they are compiled once, into the small library that src/cudnn_sdpa.cpp builds; CMake links it
// into ft::ft_cuda and defines FT_HAVE_CUDNN_SDPA when cuDNN and the frontend's headers are
// found (scripts/deps.sh installs them). Elsewhere (a header-only build, no frontend) the
// fused kernels of linalg/flash.hpp run instead. set_cudnn_sdpa(false) chooses them too.
#pragma once

#include <atomic>
#include <cstdint>

#include "ft/core/config.hpp"
#include "ft/cuda/cudnn.hpp"

#if FT_CUDNN_ENABLED && defined(FT_HAVE_CUDNN_SDPA)
#define FT_CUDNN_SDPA_ENABLED 1
#else
#define FT_CUDNN_SDPA_ENABLED 0
#endif

namespace ft::inline FT_ABI {

namespace detail {
inline std::atomic<bool>& cudnn_sdpa_flag() {
  static std::atomic<bool> flag{true};
  return flag;
}
}  // namespace detail

// Whether scaled_dot_product_attention on a GPU calls cuDNN's fused attention where it takes the
// call (on by default, as torch.backends.cuda.enable_cudnn_sdp). Off, the fused kernels run.
inline void set_cudnn_sdpa(bool enabled) { detail::cudnn_sdpa_flag().store(enabled); }
inline bool cudnn_sdpa_enabled() { return detail::cudnn_sdpa_flag().load(); }

}  // namespace ft::inline FT_ABI

#if FT_CUDNN_SDPA_ENABLED

namespace ft::inline FT_ABI::attention::cudnn {

// An operand as cuDNN sees it: [b, h, s, d] sizes and strides in elements.
struct View {
  std::int64_t dim[4] = {}, stride[4] = {};
};

// One call: the operands' views (o: the output, as allocated; bias only with has_bias), the
// type, the scale and the causal flag. The backward's gradients are contiguous and its dout has
// o's strides. `device` is the CUDA device's index.
struct Problem {
  int device = 0;
  bool bfloat16 = false;  // else float16
  bool causal = false;
  bool has_bias = false;
  bool training = false;  // the forward keeps the softmax statistics for the backward
  float scale = 1;
  View q, k, v, o, bias;
};

// o ← softmax(q·kᵀ·scale + bias, causal)·v; stats [b, h, s_q] (float, training only) keeps
// each row's log-sum-exp for the backward. One cuDNN execution on the current stream, or false
// (nothing run) when cuDNN (or this GPU) does not take `p` (in training, its backward too):
// the graphs are built and checked once per problem and cached.
bool forward(const Problem& p, const void* q, const void* k, const void* v, const void* bias, void* o, float* stats);

// dq, dk, dv (contiguous) from dout (o's strides) and the forward's o and stats.
void backward(const Problem& p, const void* q, const void* k, const void* v, const void* bias, const void* o,
              const float* stats, const void* dout, void* dq, void* dk, void* dv);

}  // namespace ft::inline FT_ABI::attention::cudnn

#endif  // FT_CUDNN_SDPA_ENABLED
