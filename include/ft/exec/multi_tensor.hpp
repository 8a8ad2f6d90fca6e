// One launch over many tensors: the optimizer step's executor.
//
// An entry is NL same-sized contiguous arrays (a parameter, its gradient, its optimizer
// state) plus that entry's scalars H (learning rate, bias corrections...). f(h, p, i) updates
// element i of entry p (p[k] is the entry's k-th array). The entries are cut into chunks;
// on the CPU one parallel loop covers all chunks, on a GPU one kernel does (one block per
// chunk) with the table of pointers as its parameter: one launch for a model whose table fits
// a parameter block (24 KiB: about 250 chunks of 2^16 elements), and no host synchronisation.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/kernels.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/factories.hpp"

namespace ft::inline FT_ABI::exec {

template <class T, int NL, class H>
struct TensorEntry {
  T* ptr[NL];
  index_t n;
  H hyper;
};

struct TensorChunk {
  std::int32_t entry;
  index_t begin, end;
};

inline constexpr index_t kMultiTensorChunk = 1 << 16;

inline std::vector<TensorChunk> make_chunks(const std::vector<index_t>& sizes, index_t chunk) {
  std::vector<TensorChunk> out;
  for (std::size_t e = 0; e < sizes.size(); ++e)
    for (index_t b = 0; b < sizes[e]; b += chunk)
      out.push_back({static_cast<std::int32_t>(e), b, std::min(sizes[e], b + chunk)});
  return out;
}

namespace cpu {
template <class T, int NL, class H, class F>
void multi_tensor_apply(const std::vector<TensorEntry<T, NL, H>>& entries, const std::vector<TensorChunk>& chunks,
                        const F& f) {
  const auto nchunks = static_cast<std::int64_t>(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) if (nchunks > 1)
  for (std::int64_t c = 0; c < nchunks; ++c) {
    const TensorChunk ch = chunks[static_cast<std::size_t>(c)];
    const auto& e = entries[static_cast<std::size_t>(ch.entry)];
    T* p[NL];
    for (int k = 0; k < NL; ++k) p[k] = e.ptr[k];
    const H h = e.hyper;
#pragma omp simd
    for (index_t i = ch.begin; i < ch.end; ++i) f(h, p, i);
  }
}

// partials[c] = the sum (or max) over chunk c of f(h, p, i), in double.
template <class T, int NL, class H, class F>
void multi_tensor_reduce(const std::vector<TensorEntry<T, NL, H>>& entries, const std::vector<TensorChunk>& chunks,
                         const F& f, bool is_max, double* partials) {
  const auto nchunks = static_cast<std::int64_t>(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) if (nchunks > 1)
  for (std::int64_t c = 0; c < nchunks; ++c) {
    const TensorChunk ch = chunks[static_cast<std::size_t>(c)];
    const auto& e = entries[static_cast<std::size_t>(ch.entry)];
    T* p[NL];
    for (int k = 0; k < NL; ++k) p[k] = e.ptr[k];
    const H h = e.hyper;
    double acc = 0;
    if (is_max) {
      for (index_t i = ch.begin; i < ch.end; ++i) {
        const double v = f(h, p, i);
        acc = (v > acc || v != v) ? v : acc;  // NaN propagates
      }
    } else {
#pragma omp simd reduction(+ : acc)
      for (index_t i = ch.begin; i < ch.end; ++i) acc += f(h, p, i);
    }
    partials[c] = acc;
  }
}
}  // namespace cpu

#if FT_CUDA_ENABLED
namespace gpu {
// The chunks of one launch and the entries they name, passed as the kernel's parameter (sm_70+
// with CUDA ≥ 12.1 accepts 32,764 bytes of parameters): no table is copied to the device, so a
// step does not wait for the host. A table larger than one parameter block is covered by
// several launches, each a run of whole chunks in order.
inline constexpr std::size_t kParamTableBytes = 24 * 1024;

template <class T, int NL, class H>
struct ChunkTable {
  using Entry = TensorEntry<T, NL, H>;
  // each chunk brings at most one new entry
  static constexpr int kChunks = static_cast<int>(kParamTableBytes / (sizeof(Entry) + sizeof(TensorChunk)));
  static_assert(kChunks >= 1, "ft::multi_tensor_apply: an entry's scalars do not fit a kernel parameter");
  Entry entries[kChunks];
  TensorChunk chunks[kChunks];  // .entry indexes `entries`
};

// Calls launch(table, n) for consecutive runs of the chunks, each run at most kChunks long.
template <class T, int NL, class H, class Launch>
void for_each_table(const std::vector<TensorEntry<T, NL, H>>& entries, const std::vector<TensorChunk>& chunks,
                    const Launch& launch) {
  using Table = ChunkTable<T, NL, H>;
  auto table = std::make_unique<Table>();
  int n = 0, ne = 0, last_entry = -1;
  for (const TensorChunk& ch : chunks) {
    if (n == Table::kChunks) {
      launch(*table, n);
      n = ne = 0;
      last_entry = -1;
    }
    if (ch.entry != last_entry) {
      table->entries[ne++] = entries[static_cast<std::size_t>(ch.entry)];
      last_entry = ch.entry;
    }
    table->chunks[n++] = {ne - 1, ch.begin, ch.end};
  }
  if (n > 0) launch(*table, n);
}

// The two kernels over chunks of several tensors: f on every element, and a per-chunk reduction.
template <class T, int NL, class H, class F>
struct MultiTensorApplyKernel {
  static void launch(const ChunkTable<T, NL, H>& table, unsigned n, const F& f);
};
template <class T, int NL, class H, class F>
struct MultiTensorReduceKernel {
  static void launch(const ChunkTable<T, NL, H>& table, unsigned n, const F& f, bool is_max, double* partials);
};

#if FT_CUDA_KERNELS
template <class T, int NL, class H, class F>
__global__ void __launch_bounds__(256) multi_tensor_kernel(const __grid_constant__ ChunkTable<T, NL, H> table, F f) {
  const TensorChunk ch = table.chunks[blockIdx.x];
  const TensorEntry<T, NL, H>& e = table.entries[ch.entry];
  T* p[NL];
#pragma unroll
  for (int k = 0; k < NL; ++k) p[k] = e.ptr[k];
  const H h = e.hyper;
  for (index_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x) f(h, p, i);
}

template <class T, int NL, class H, class F>
__global__ void __launch_bounds__(256)
    multi_tensor_reduce_kernel(const __grid_constant__ ChunkTable<T, NL, H> table, F f, bool is_max, double* partials) {
  __shared__ double warp_acc[8];
  const TensorChunk ch = table.chunks[blockIdx.x];
  const TensorEntry<T, NL, H>& e = table.entries[ch.entry];
  T* p[NL];
#pragma unroll
  for (int k = 0; k < NL; ++k) p[k] = e.ptr[k];
  const H h = e.hyper;
  auto combine = [is_max](double a, double b) { return is_max ? ((b > a || b != b) ? b : a) : a + b; };
  double acc = 0;
  for (index_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x) acc = combine(acc, f(h, p, i));
  for (int o = 16; o > 0; o >>= 1) acc = combine(acc, __shfl_down_sync(0xffffffffu, acc, o));
  if ((threadIdx.x & 31) == 0) warp_acc[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double r = 0;
    for (int w = 0; w < 8; ++w) r = combine(r, warp_acc[w]);
    partials[blockIdx.x] = r;
  }
}

template <class T, int NL, class H, class F>
void MultiTensorApplyKernel<T, NL, H, F>::launch(const ChunkTable<T, NL, H>& table, unsigned n, const F& f) {
  multi_tensor_kernel<T, NL, H, F><<<n, 256, 0, cuda::current_stream()>>>(table, f);
  FT_CUDA_CHECK(cudaGetLastError());
}
template <class T, int NL, class H, class F>
void MultiTensorReduceKernel<T, NL, H, F>::launch(const ChunkTable<T, NL, H>& table, unsigned n, const F& f,
                                                  bool is_max, double* partials) {
  multi_tensor_reduce_kernel<T, NL, H, F><<<n, 256, 0, cuda::current_stream()>>>(table, f, is_max, partials);
  FT_CUDA_CHECK(cudaGetLastError());
}
#endif  // FT_CUDA_KERNELS

template <class T, int NL, class H, class F>
void multi_tensor_apply(Device device, const std::vector<TensorEntry<T, NL, H>>& entries,
                        const std::vector<TensorChunk>& chunks, const F& f) {
  cuda::DeviceGuard guard(device);
  for_each_table(entries, chunks, [&](const ChunkTable<T, NL, H>& table, int n) {
    stats::detail::record_launch(device);
    cuda::launch_kernel<MultiTensorApplyKernel<T, NL, H, F>>("multi_tensor_apply", table, static_cast<unsigned>(n), f);
  });
}

// The per-chunk partials into `partials` (on the device): nothing waits for them.
template <class T, int NL, class H, class F>
void multi_tensor_reduce(Device device, const std::vector<TensorEntry<T, NL, H>>& entries,
                         const std::vector<TensorChunk>& chunks, const F& f, bool is_max, double* partials) {
  cuda::DeviceGuard guard(device);
  index_t done = 0;
  for_each_table(entries, chunks, [&](const ChunkTable<T, NL, H>& table, int n) {
    stats::detail::record_launch(device);
    cuda::launch_kernel<MultiTensorReduceKernel<T, NL, H, F>>("multi_tensor_reduce", table, static_cast<unsigned>(n), f,
                                                              is_max, partials + done);
    done += n;
  });
}
}  // namespace gpu
#endif

// Runs f over every element of every entry on `device`: one launch (none when empty).
template <class T, int NL, class H, class F>
void multi_tensor_apply(Device device, const std::vector<TensorEntry<T, NL, H>>& entries, const F& f) {
  std::vector<index_t> sizes;
  for (const auto& e : entries) sizes.push_back(e.n);
  const auto chunks = make_chunks(sizes, kMultiTensorChunk);
  if (chunks.empty()) return;
  if (device.is_cpu()) {
    stats::detail::record_launch(device);
    cpu::multi_tensor_apply(entries, chunks, f);
  } else {
#if FT_CUDA_ENABLED
    gpu::multi_tensor_apply(device, entries, chunks, f);
#else
    cuda::require_device(device, "multi_tensor_apply");
#endif
  }
}

// The partial sums (or, with is_max, maxima) of f(h, p, i) (a double) over every element of
// every entry, one per chunk in chunk order, on `device`: one launch, and the host does not wait
// (combine them with ft::sum / ft::max, deterministic). No entries: one partial, 0.
template <class T, int NL, class H, class F>
Tensor<double, 1> multi_tensor_reduce(Device device, const std::vector<TensorEntry<T, NL, H>>& entries, const F& f,
                                      bool is_max = false) {
  std::vector<index_t> sizes;
  for (const auto& e : entries) sizes.push_back(e.n);
  const auto chunks = make_chunks(sizes, kMultiTensorChunk);
  if (chunks.empty()) return ft::zeros<double>({1}, device);
  Tensor<double, 1> partials(Shape<1>{static_cast<index_t>(chunks.size())}, device);
  if (device.is_cpu()) {
    stats::detail::record_launch(device);
    cpu::multi_tensor_reduce(entries, chunks, f, is_max, partials.data());
  } else {
#if FT_CUDA_ENABLED
    gpu::multi_tensor_reduce(device, entries, chunks, f, is_max, partials.data());
#else
    cuda::require_device(device, "multi_tensor_reduce");
#endif
  }
  return partials;
}

}  // namespace ft::inline FT_ABI::exec
