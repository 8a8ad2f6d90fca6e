// cuDNN's fused attention for scaled_dot_product_attention (include/ft/nn/sdpa_cudnn.hpp): the
// forward and backward graphs built with the cuDNN frontend's `sdpa` and `sdpa_backward` nodes,
// checked and planned once per problem, then executed. Compiled once by the host compiler into
// the library that ft::ft_cuda links (the frontend's headers are too heavy for every file).
#include "ft/nn/sdpa_cudnn.hpp"

#if FT_CUDNN_SDPA_ENABLED

#include <cudnn_frontend.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ft/core/device.hpp"
#include "ft/core/error.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/storage.hpp"
#include "ft/cuda/runtime.hpp"

namespace ft::inline FT_ABI::attention::cudnn {

namespace {

namespace fe = cudnn_frontend;
using Graph = fe::graph::Graph;
using TensorRef = std::shared_ptr<fe::graph::Tensor_attributes>;

// The tensors' ids in the graphs' variant packs.
enum Uid : std::int64_t { kQ = 1, kK, kV, kBias, kO, kStats, kDout, kDq, kDk, kDv };

// A planned problem: its graphs (the backward only in training) and their workspaces; null
// graphs where cuDNN refused it.
struct Plans {
  std::shared_ptr<Graph> forward, backward;
  std::int64_t forward_workspace = 0, backward_workspace = 0;
};

std::vector<std::int64_t> key_of(const Problem& p) {
  std::int32_t scale_bits = 0;
  std::memcpy(&scale_bits, &p.scale, sizeof scale_bits);
  std::vector<std::int64_t> key = {p.device, p.bfloat16, p.causal, p.has_bias, p.training, scale_bits};
  for (const View* v : {&p.q, &p.k, &p.v, &p.o, &p.bias})
    for (int i = 0; i < 4; ++i) key.push_back(v->dim[i]), key.push_back(v->stride[i]);
  return key;
}

std::vector<std::int64_t> dims(const View& v) { return {v.dim[0], v.dim[1], v.dim[2], v.dim[3]}; }
std::vector<std::int64_t> strides(const View& v) { return {v.stride[0], v.stride[1], v.stride[2], v.stride[3]}; }
std::vector<std::int64_t> contiguous_strides(const View& v) {
  return {v.dim[1] * v.dim[2] * v.dim[3], v.dim[2] * v.dim[3], v.dim[3], 1};
}

std::shared_ptr<Graph> new_graph(const Problem& p) {
  auto g = std::make_shared<Graph>();
  g->set_io_data_type(p.bfloat16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

TensorRef input(Graph& g, const char* name, Uid uid, const View& v) {
  return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dims(v)).set_stride(strides(v)));
}

// The softmax statistics: float [b, h, s_q, 1], contiguous.
std::vector<std::int64_t> stats_dims(const Problem& p) { return {p.q.dim[0], p.q.dim[1], p.q.dim[2], 1}; }
std::vector<std::int64_t> stats_strides(const Problem& p) { return {p.q.dim[1] * p.q.dim[2], p.q.dim[2], 1, 1}; }

// Validates, plans and builds g for this GPU; false when any step refuses.
bool build(Graph& g, cudnnHandle_t handle, std::int64_t& workspace) {
  return g.validate().is_good() && g.build_operation_graph(handle).is_good() &&
         g.create_execution_plans({fe::HeurMode_t::A}).is_good() && g.check_support(handle).is_good() &&
         g.build_plans(handle).is_good() && g.get_workspace_size(workspace).is_good();
}

std::shared_ptr<Graph> forward_graph(const Problem& p, cudnnHandle_t handle, std::int64_t& workspace) {
  auto g = new_graph(p);
  auto options = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(p.training).set_attn_scale(p.scale);
  if (p.causal) options.set_causal_mask(true);
  if (p.has_bias) options.set_bias(input(*g, "bias", kBias, p.bias));
  auto [o, stats] = g->sdpa(input(*g, "q", kQ, p.q), input(*g, "k", kK, p.k), input(*g, "v", kV, p.v), options);
  o->set_output(true).set_uid(kO).set_dim(dims(p.o)).set_stride(strides(p.o));
  if (p.training)
    stats->set_output(true)
        .set_uid(kStats)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim(stats_dims(p))
        .set_stride(stats_strides(p));
  return build(*g, handle, workspace) ? g : nullptr;
}

std::shared_ptr<Graph> backward_graph(const Problem& p, cudnnHandle_t handle, std::int64_t& workspace) {
  auto g = new_graph(p);
  auto options = fe::graph::SDPA_backward_attributes()
                     .set_name("sdpa_backward")
                     .set_attn_scale(p.scale)
                     .set_deterministic_algorithm(true);  // the same gradients run after run
  if (p.causal) options.set_causal_mask(true);
  if (p.has_bias) options.set_bias(input(*g, "bias", kBias, p.bias));
  auto stats = g->tensor(fe::graph::Tensor_attributes()
                             .set_name("stats")
                             .set_uid(kStats)
                             .set_data_type(fe::DataType_t::FLOAT)
                             .set_dim(stats_dims(p))
                             .set_stride(stats_strides(p)));
  View dout = p.o;  // dout is passed in o's strides
  auto [dq, dk, dv] = g->sdpa_backward(input(*g, "q", kQ, p.q), input(*g, "k", kK, p.k), input(*g, "v", kV, p.v),
                                       input(*g, "o", kO, p.o), input(*g, "dout", kDout, dout), stats, options);
  dq->set_output(true).set_uid(kDq).set_dim(dims(p.q)).set_stride(contiguous_strides(p.q));
  dk->set_output(true).set_uid(kDk).set_dim(dims(p.k)).set_stride(contiguous_strides(p.k));
  dv->set_output(true).set_uid(kDv).set_dim(dims(p.v)).set_stride(contiguous_strides(p.v));
  return build(*g, handle, workspace) ? g : nullptr;
}

// The plans of p, built on first use (null graphs: unsupported). A plan is built once and then
// only executed, which the frontend allows from several threads.
const Plans& plans(const Problem& p) {
  static std::mutex mutex;
  static std::map<std::vector<std::int64_t>, Plans> cache;
  const std::vector<std::int64_t> key = key_of(p);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const Device device(kCUDA, p.device);
  cuda::DeviceGuard guard(device);
  cudnnHandle_t handle = cuda::cudnn_handle(device);
  Plans made;
  made.forward = forward_graph(p, handle, made.forward_workspace);
  if (made.forward && p.training) {
    made.backward = backward_graph(p, handle, made.backward_workspace);
    if (!made.backward) made.forward = nullptr;  // both or neither
  }
  return cache.emplace(key, std::move(made)).first->second;
}

void execute(const Problem& p, const Graph& g, std::int64_t workspace_bytes,
             std::unordered_map<std::int64_t, void*>& pack) {
  const Device device(kCUDA, p.device);
  cuda::DeviceGuard guard(device);
  cudnnHandle_t handle = cuda::cudnn_handle(device);
  const Storage workspace =
      workspace_bytes > 0 ? make_storage(static_cast<std::size_t>(workspace_bytes), device) : nullptr;
  stats::detail::record_launch(device);
  auto status = g.execute(handle, pack, workspace ? workspace->data() : nullptr);
  check(status.is_good(), "scaled_dot_product_attention", "cuDNN's fused attention failed on ", device, ": ",
        status.get_message());
}

}  // namespace

bool forward(const Problem& p, const void* q, const void* k, const void* v, const void* bias, void* o, float* stats) {
  const Plans& plan = plans(p);
  if (!plan.forward) return false;
  std::unordered_map<std::int64_t, void*> pack = {
      {kQ, const_cast<void*>(q)}, {kK, const_cast<void*>(k)}, {kV, const_cast<void*>(v)}, {kO, o}};
  if (p.has_bias) pack[kBias] = const_cast<void*>(bias);
  if (p.training) pack[kStats] = stats;
  execute(p, *plan.forward, plan.forward_workspace, pack);
  return true;
}

void backward(const Problem& p, const void* q, const void* k, const void* v, const void* bias, const void* o,
              const float* stats, const void* dout, void* dq, void* dk, void* dv) {
  const Plans& plan = plans(p);
  check(plan.backward != nullptr, "scaled_dot_product_attention",
        "cuDNN's fused attention has no backward for this call");
  std::unordered_map<std::int64_t, void*> pack = {{kQ, const_cast<void*>(q)},
                                                  {kK, const_cast<void*>(k)},
                                                  {kV, const_cast<void*>(v)},
                                                  {kO, const_cast<void*>(o)},
                                                  {kStats, const_cast<float*>(stats)},
                                                  {kDout, const_cast<void*>(dout)},
                                                  {kDq, dq},
                                                  {kDk, dk},
                                                  {kDv, dv}};
  if (p.has_bias) pack[kBias] = const_cast<void*>(bias);
  execute(p, *plan.backward, plan.backward_workspace, pack);
}

}  // namespace ft::inline FT_ABI::attention::cudnn

#endif  // FT_CUDNN_SDPA_ENABLED
