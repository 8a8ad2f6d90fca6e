// CUDA Graphs (torch.cuda.CUDAGraph): record the kernels, copies and stream-ordered allocations
// that a region of code issues on one GPU, then replay all of them with one launch. A training
// step is hundreds of small launches; replayed as a graph, the host's launch overhead is paid
// once.
//
//   ft::cuda::Graph graph;
//   step();                                    // warm-up: optimizer state, cuBLAS/cuDNN plans
//   graph.capture(gpu, [&] { step(); });       // records; nothing runs
//   for (...) { copy the batch into x, y; graph.replay(); }
//
// The rules are PyTorch's: the replay reads and writes the same memory as the capture, so the
// inputs are static tensors the caller refills, and the tensors that the region created (its
// outputs: the loss, new gradients) are valid after each replay and refilled by the next.
// Memory the region allocates comes from the stream-ordered pool and stays valid across replays;
// memory allocated before the capture and released during it is freed after the capture ends.
// Whatever the host computes during the capture is frozen into the graph: a host
// synchronisation (item(), a copy to the host) throws, and so do the optimizers whose per-step
// scalars come from the host (Adam's bias corrections, Adagrad's lr decay) and a first step that
// creates optimizer state; a learning-rate scheduler's change does not reach the replays.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"
#include "ft/cuda/runtime.hpp"

namespace ft::inline FT_ABI::cuda {

class Graph {
 public:
  Graph() = default;
  ~Graph() { reset(); }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Captures what `region` issues on `device`, ending the capture also when it throws (then the
  // exception propagates and the graph stays empty).
  template <class F>
  void capture(Device device, F&& region) {
    capture_begin(device);
    try {
      std::forward<F>(region)();
    } catch (...) {
      abort_capture();
      throw;
    }
    capture_end();
  }

  // Starts capturing on `device`: its current stream on this thread becomes a capture stream
  // (ordered after the work already given to the previous one) until capture_end().
  void capture_begin(Device device) {
    check(device.is_cuda(), "Graph::capture_begin", "a CUDA graph captures the work of a GPU, got device ", device);
    require_device(device, "Graph::capture_begin");
#if FT_CUDA_ENABLED
    check(!exec_ && !capturing_, "Graph::capture_begin", "this graph already holds a capture: reset() it first");
    check(!capturing(), "Graph::capture_begin",
          "this thread is already capturing a CUDA graph (on cuda:", capture_state().device, ")");
    DeviceGuard guard(device);
    device_ = device;
    previous_ = current_stream(device);
    stream_ = own_stream(device, OwnStream::capture);  // outlives the graph's blocks
    stream_wait(stream_, previous_, device.index);     // the region may read tensors made before it
    FT_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    static std::atomic<std::uint64_t> next_id{1};
    CaptureState& cs = capture_state();
    cs.device = device.index;
    cs.id = next_id.fetch_add(1);
    cs.origin = previous_;
    set_stream(device, stream_);
    capturing_ = true;
#endif
  }

  // Ends the capture and makes the graph ready to replay.
  void capture_end() {
    check(capturing_, "Graph::capture_end", "no capture was begun");
#if FT_CUDA_ENABLED
    DeviceGuard guard(device_);
    cudaGraph_t graph = nullptr;
    const cudaError_t status = cudaStreamEndCapture(stream_, &graph);
    finish_capture();
    if (status != cudaSuccess && graph) (void)cudaGraphDestroy(graph);
    FT_CUDA_CHECK(status);
    graph_ = graph;
    // the replays free what the region allocated and left alive, and allocate it anew at the
    // same addresses: the region's outputs stay valid
    FT_CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec_, graph_, cudaGraphInstantiateFlagAutoFreeOnLaunch));
#endif
  }

  // Runs the captured work once more, on the caller's current stream of the graph's device:
  // one launch.
  void replay() {
    check(captured(), "Graph::replay", "nothing was captured");
#if FT_CUDA_ENABLED
    DeviceGuard guard(device_);
    stats::detail::record_launch(device_);
    FT_CUDA_CHECK(cudaGraphLaunch(exec_, current_stream(device_)));
#endif
  }

  bool captured() const {
#if FT_CUDA_ENABLED
    return exec_ != nullptr;
#else
    return false;
#endif
  }
  Device device() const { return device_; }

  // Drops the capture (the graph's own memory is released once no replay is running).
  void reset() noexcept {
#if FT_CUDA_ENABLED
    if (capturing_) abort_capture();
    if (exec_) (void)cudaGraphExecDestroy(exec_);
    if (graph_) (void)cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
#endif
  }

 private:
#if FT_CUDA_ENABLED
  // Restores the stream, leaves capture mode and frees what was released during the capture.
  void finish_capture() noexcept {
    set_stream(device_, previous_);
    CaptureState& cs = capture_state();
    std::vector<DeferredFree> deferred = std::move(cs.deferred);
    cs.deferred.clear();
    cs.id = 0;
    cs.device = -1;
    cs.origin = nullptr;
    capturing_ = false;
    for (const DeferredFree& f : deferred) deallocate(f.ptr, f.device, f.stream);
    (void)cudaGetLastError();
  }
  void abort_capture() noexcept {
    if (!capturing_) return;
    int previous = 0;
    const bool have_device = cudaGetDevice(&previous) == cudaSuccess;
    if (have_device && previous != device_.index) (void)cudaSetDevice(device_.index);
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_, &graph);  // an invalidated capture ends with an error
    if (graph) (void)cudaGraphDestroy(graph);
    finish_capture();
    if (have_device && previous != device_.index) (void)cudaSetDevice(previous);
  }
  cudaStream_t stream_ = nullptr, previous_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
#else
  void abort_capture() noexcept {}
#endif
  Device device_{DeviceType::CUDA, 0};
  bool capturing_ = false;
};

}  // namespace ft::inline FT_ABI::cuda
