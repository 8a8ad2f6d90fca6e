// Recurrent layers on a GPU through cuDNN's RNN API: one layer in both its directions as one
// cudnnRNNForward, its backward as cudnnRNNBackwardData_v8 then cudnnRNNBackwardWeights_v8.
// This file holds cuDNN's side (descriptors, the weight space's layout, the calls); the autograd
// node that packs the parameters and routes the gradients is rnn::cudnn_layer in recurrent.hpp.
//
// set_cudnn_rnn(false) turns the path off (as torch.backends.cudnn.enabled = False): the layers
// then run the library's own steps (one GEMM and one fused cell kernel a step) on the GPU too.
// Without cuDNN (or without CUDA) only the switch exists.
#pragma once

#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/dtype.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/cuda/cudnn.hpp"
#include "ft/linalg/gemm.hpp"

namespace ft::inline FT_ABI::nn {

namespace detail {
inline std::atomic<bool>& cudnn_rnn_flag() {
  static std::atomic<bool> flag{true};
  return flag;
}
}  // namespace detail

// Whether RNN, LSTM and GRU on a GPU call cuDNN's RNN API where it supports the layer (on by
// default). Off, they run the library's fused steps there as on the CPU. CPU results are unaffected.
inline void set_cudnn_rnn(bool enabled) { detail::cudnn_rnn_flag().store(enabled); }
inline bool cudnn_rnn_enabled() { return detail::cudnn_rnn_flag().load(); }

}  // namespace ft::inline FT_ABI::nn

#if FT_CUDNN_ENABLED

namespace ft::inline FT_ABI::nn::rnn::cudnn {

// cuDNN's RNN API takes float, double and half data (the two-byte types accumulate in float);
// bfloat16 layers run the fused steps.
template <class T>
inline constexpr bool supported_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, half>;

template <class T>
cudnnDataType_t data_type() {
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : std::is_same_v<T, double> ? CUDNN_DATA_DOUBLE : CUDNN_DATA_HALF;
}

// One layer as cuDNN sees it: the cell, both biases or none, one or two directions, the sizes
// (proj: the LSTM's projected size, or hidden when there is no projection).
struct Config {
  cudnnRNNMode_t cell = CUDNN_LSTM;
  bool bias = true;
  int directions = 1;
  index_t input = 0, hidden = 0, proj = 0;

  index_t gates() const { return cell == CUDNN_LSTM ? 4 : cell == CUDNN_GRU ? 3 : 1; }
  bool projected() const { return proj != hidden; }
  // cuDNN's linear layers of a direction: the gates' input matrices, then their recurrent ones
  // (then the LSTM's projection, id 8); a bias belongs to each of the first 2·gates().
  int linear_layers() const { return static_cast<int>(2 * gates()) + (projected() ? 1 : 0); }
  // the elements of linear layer `id`'s matrix: H × input, H × proj, or proj × H
  index_t matrix_numel(int id) const {
    return id < gates() ? hidden * input : id < 2 * gates() ? hidden * proj : proj * hidden;
  }
};

// The descriptor of one configuration and where each matrix and bias lies in its weight space
// (element offsets, −1 for none), [direction][linear layer id]. Built once, then only read.
struct Plan {
  Config config;
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  std::size_t weight_bytes = 0;
  std::vector<std::array<index_t, 9>> matrix, bias;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (rnn) (void)cudnnDestroyRNNDescriptor(rnn);
    if (dropout) (void)cudnnDestroyDropoutDescriptor(dropout);
  }
};

// The plan of `c` for element type T on `device`, or null when cuDNN does not support the
// configuration (the caller runs the fused steps instead). Cached per (configuration, type,
// device, TF32 flag); a configuration cuDNN refused is cached as refused (null).
template <class T>
const Plan* plan(const Config& c, cudnnHandle_t handle, Device device) {
  constexpr bool f32 = std::is_same_v<T, float>;
  const bool tf32 = f32 && allow_tf32();
  using Key = std::tuple<int, bool, int, index_t, index_t, index_t, int, int, bool>;
  const Key key{static_cast<int>(c.cell),        c.bias,       c.directions, c.input, c.hidden, c.proj,
                static_cast<int>(dtype_of<T>()), device.index, tf32};
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Plan>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second.get();

  auto p = std::make_unique<Plan>();
  p->config = c;
  const cudnnDataType_t type = data_type<T>();
  const cudnnDataType_t compute = std::is_same_v<T, double> ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  // FMA keeps float layers in full fp32 (DEFAULT_MATH would allow TF32); half runs on tensor cores
  const cudnnMathType_t math = is_half_v<T> ? CUDNN_TENSOR_OP_MATH : f32 && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  // no dropout inside a one-layer descriptor: the layers' dropout is the library's, between layers
  FT_CUDNN_CHECK(cudnnCreateDropoutDescriptor(&p->dropout));
  FT_CUDNN_CHECK(cudnnSetDropoutDescriptor(p->dropout, handle, 0.0f, nullptr, 0, 0));
  FT_CUDNN_CHECK(cudnnCreateRNNDescriptor(&p->rnn));
  const cudnnStatus_t set = cudnnSetRNNDescriptor_v8(
      p->rnn, CUDNN_RNN_ALGO_STANDARD, c.cell, c.bias ? CUDNN_RNN_DOUBLE_BIAS : CUDNN_RNN_NO_BIAS,
      c.directions == 2 ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, type, compute, math,
      static_cast<std::int32_t>(c.input), static_cast<std::int32_t>(c.hidden), static_cast<std::int32_t>(c.proj), 1,
      p->dropout, CUDNN_RNN_PADDED_IO_DISABLED);
  if (set == CUDNN_STATUS_NOT_SUPPORTED) return (cache[key] = nullptr).get();
  FT_CUDNN_CHECK(set);
  FT_CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(handle, p->rnn, &p->weight_bytes));

  // the layout: ask for each matrix's and bias's address in a weight space of that size
  const Storage space = make_storage(p->weight_bytes, device);
  const auto* base = static_cast<const char*>(space->data());
  cudnnTensorDescriptor_t m = nullptr, b = nullptr;
  FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m));
  FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&b));
  auto numel = [](cudnnTensorDescriptor_t d) {
    cudnnDataType_t t;
    int rank = 0, dims[8] = {}, strides[8] = {};
    FT_CUDNN_CHECK(cudnnGetTensorNdDescriptor(d, 8, &t, &rank, dims, strides));
    index_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  };
  auto offset = [&](const void* addr) {
    return addr ? static_cast<index_t>((static_cast<const char*>(addr) - base) / sizeof(T)) : index_t(-1);
  };
  std::string layout_error;
  for (int d = 0; d < c.directions && layout_error.empty(); ++d) {
    std::array<index_t, 9> mo, bo;
    mo.fill(-1);
    bo.fill(-1);
    for (int id = 0; id < c.linear_layers(); ++id) {
      void *ma = nullptr, *ba = nullptr;
      FT_CUDNN_CHECK(cudnnGetRNNWeightParams(handle, p->rnn, d, p->weight_bytes, space->data(), id, m, &ma, b, &ba));
      mo[static_cast<std::size_t>(id)] = offset(ma);
      bo[static_cast<std::size_t>(id)] = offset(ba);
      const bool want_bias = c.bias && id < 2 * c.gates();
      if (!ma || numel(m) != c.matrix_numel(id) || (want_bias && (!ba || numel(b) != c.hidden)) || (!want_bias && ba))
        layout_error = ft::detail::concat("direction ", d, ", linear layer ", id, ": matrix of ", ma ? numel(m) : 0,
                                          " elements (expected ", c.matrix_numel(id), "), bias ", ba ? numel(b) : 0,
                                          " (expected ", want_bias ? c.hidden : 0, ")");
    }
    p->matrix.push_back(mo);
    p->bias.push_back(bo);
  }
  (void)cudnnDestroyTensorDescriptor(m);
  (void)cudnnDestroyTensorDescriptor(b);
  check(layout_error.empty(), "cuDNN RNN", "the weight space's layout is not the one expected: ", layout_error);
  return (cache[key] = std::move(p)).get();
}

// One forward's data descriptors and buffers, kept by its node for the backward (make_call:
// null when cuDNN refuses the layout). The batch is sequence-major and packed (cuDNN's
// SEQ_MAJOR_PACKED, as a PackedSequence's rows; a padded batch of equal lengths is the same
// memory): `lengths` non-increasing, one a sequence.
struct Call {
  const Plan* plan = nullptr;
  Device device;
  cudnnForwardMode_t mode = CUDNN_FWD_MODE_INFERENCE;
  cudnnRNNDataDescriptor_t x = nullptr, y = nullptr;
  cudnnTensorDescriptor_t h = nullptr, c = nullptr;
  Storage lengths;  // the lengths as int32 on the device (cuDNN's devSeqLengths)
  std::size_t workspace_bytes = 0, reserve_bytes = 0;
  Storage reserve;  // written by a training forward, read by its backward

  Call() = default;
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  ~Call() {
    if (x) (void)cudnnDestroyRNNDataDescriptor(x);
    if (y) (void)cudnnDestroyRNNDataDescriptor(y);
    if (h) (void)cudnnDestroyTensorDescriptor(h);
    if (c) (void)cudnnDestroyTensorDescriptor(c);
  }
  const std::int32_t* device_lengths() const { return static_cast<const std::int32_t*>(lengths->data()); }
  Storage workspace() const { return workspace_bytes ? make_storage(workspace_bytes, device) : nullptr; }
};

// `lengths` on the host (for the descriptors) and `on_device`, the same as int32 on `device`.
template <class T>
std::shared_ptr<Call> make_call(const Plan& p, cudnnHandle_t handle, Device device,
                                const std::vector<std::int32_t>& lengths, Storage on_device, bool training) {
  const Config& c = p.config;
  const cudnnDataType_t type = data_type<T>();
  auto call = std::make_shared<Call>();
  call->plan = &p;
  call->device = device;
  call->mode = training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE;
  const int B = static_cast<int>(lengths.size()), steps = lengths.empty() ? 0 : lengths[0];
  FT_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&call->x));
  FT_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&call->y));
  FT_CUDNN_CHECK(cudnnSetRNNDataDescriptor(call->x, type, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED, steps, B,
                                           static_cast<int>(c.input), lengths.data(), nullptr));
  FT_CUDNN_CHECK(cudnnSetRNNDataDescriptor(call->y, type, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED, steps, B,
                                           static_cast<int>(c.directions * c.proj), lengths.data(), nullptr));
  auto state = [&](cudnnTensorDescriptor_t& d, index_t size) {
    FT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    const int dims[3] = {c.directions, B, static_cast<int>(size)},
              strides[3] = {B * static_cast<int>(size), static_cast<int>(size), 1};
    FT_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, type, 3, dims, strides));
  };
  state(call->h, c.proj);
  state(call->c, c.hidden);
  call->lengths = std::move(on_device);
  // (some configurations are refused only here, with the data's layout: the caller falls back)
  const cudnnStatus_t sizes =
      cudnnGetRNNTempSpaceSizes(handle, p.rnn, call->mode, call->x, &call->workspace_bytes, &call->reserve_bytes);
  if (sizes == CUDNN_STATUS_NOT_SUPPORTED) return nullptr;
  FT_CUDNN_CHECK(sizes);
  if (call->reserve_bytes) call->reserve = make_storage(call->reserve_bytes, device);
  return call;
}

// y, hy, cy from x, hx, cx (hx, cx null: zeros; cx, cy only for an LSTM).
template <class T>
void forward(const Call& call, cudnnHandle_t handle, const T* w, const T* x, T* y, const T* hx, T* hy, const T* cx,
             T* cy) {
  const Storage work = call.workspace();
  stats::detail::record_launch(call.device);
  FT_CUDNN_CHECK(cudnnRNNForward(handle, call.plan->rnn, call.mode, call.device_lengths(), call.x, x, call.y, y, call.h,
                                 hx, hy, call.c, cx, cy, call.plan->weight_bytes, w, call.workspace_bytes,
                                 work ? work->data() : nullptr, call.reserve_bytes,
                                 call.reserve ? call.reserve->data() : nullptr));
}

// dx, dhx, dcx from dy, dhy, dcy (dhx, dcx null: not wanted), then dw += the weights' gradient.
// Both read the training forward's reserve space, in this order.
template <class T>
void backward(const Call& call, cudnnHandle_t handle, const T* w, const T* x, const T* y, const T* dy, T* dx,
              const T* hx, const T* dhy, T* dhx, const T* cx, const T* dcy, T* dcx, T* dw) {
  const Storage work = call.workspace();
  void* ws = work ? work->data() : nullptr;
  stats::detail::record_launch(call.device);
  FT_CUDNN_CHECK(cudnnRNNBackwardData_v8(handle, call.plan->rnn, call.device_lengths(), call.y, y, dy, call.x, dx,
                                         call.h, hx, dhy, dhx, call.c, cx, dcy, dcx, call.plan->weight_bytes, w,
                                         call.workspace_bytes, ws, call.reserve_bytes, call.reserve->data()));
  if (!dw) return;
  stats::detail::record_launch(call.device);
  FT_CUDNN_CHECK(cudnnRNNBackwardWeights_v8(handle, call.plan->rnn, CUDNN_WGRAD_MODE_ADD, call.device_lengths(), call.x,
                                            x, call.h, hx, call.y, y, call.plan->weight_bytes, dw, call.workspace_bytes,
                                            ws, call.reserve_bytes, call.reserve->data()));
}

}  // namespace ft::inline FT_ABI::nn::rnn::cudnn

#endif  // FT_CUDNN_ENABLED
