// Kernels with several outputs of one shape: out_k = e_k, or out_k += e_k, all in one launch
// (autograd writes every same-shaped leaf gradient of a statement this way).
//
// Every output's value is computed before any is stored, so an expression may read what
// another output overwrites, and outputs may alias each other (one gradient accumulated from
// two occurrences of a leaf): stores run from the last output to the first, and an output
// that accumulates reads what the later ones stored at the same element.
#pragma once

#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/index.hpp"
#include "ft/exec/cpu.hpp"
#include "ft/exec/cuda.hpp"
#include "ft/exec/launch.hpp"

namespace ft::inline FT_ABI::exec {

template <class T, class Ev>
struct Output {
  T* ptr;  // contiguous, with the kernel's shape
  Ev ev;
  // 1: out += value; 0: out = value. A number, not a bool: the CPU vectoriser turns a select on a
  // loop-invariant float comparison into a blend, but not a select on a bool byte.
  compute_t<T> add;
};

// out = v, or out += v where add is nonzero: one output's store at one element (the sum in the
// compute type, rounded once).
template <class T, class C>
FT_HD FT_INLINE void store_or_add(T& o, C v, C add) {
#if defined(__CUDA_ARCH__)
  // a GPU thread reads a fresh output's memory never (compute-sanitizer's initcheck)
  if (add != C(0))
    store_value(o, static_cast<C>(static_cast<C>(o) + v));
  else
    store_value(o, v);
#else
  // read unconditionally and select: a conditional load would stop the CPU loop from
  // vectorising (a fresh output's bytes are read and discarded)
  const C prev = static_cast<C>(o);
  store_value(o, add != C(0) ? static_cast<C>(prev + v) : v);
#endif
}

template <class... O>
struct Outputs;

template <>
struct Outputs<> {
  template <class Ix>
  FT_HD FT_INLINE void operator()(const Ix&) const {}
  template <int N, class I>
  FT_HD FT_INLINE void step(I) const {}
};

template <class T, class Ev, class... Rest>
struct Outputs<Output<T, Ev>, Rest...> {
  Output<T, Ev> head;
  Outputs<Rest...> tail;

  template <class Ix>
  FT_HD FT_INLINE void operator()(const Ix& ix) const {
    using C = compute_t<T>;
    const C v = static_cast<C>(head.ev(ix));
    tail(ix);
    store_or_add(head.ptr[ix.linear], v, head.add);
  }
  // N elements from i (dense, 16-byte aligned leaves and outputs).
  template <int N, class I>
  FT_HD FT_INLINE void step(I i) const {
    using C = compute_t<T>;
    const auto x = head.ev.template load<N>(i);
    tail.template step<N>(i);
    auto* o = reinterpret_cast<Vec<T, N>*>(head.ptr + i);
    Vec<T, N> y;
    if (head.add != C(0)) {
      const Vec<T, N> p = *o;
      for (int k = 0; k < N; ++k) store_value(y.v[k], static_cast<C>(p.v[k]) + static_cast<C>(x.v[k]));
    } else {
      for (int k = 0; k < N; ++k) store_value(y.v[k], x.v[k]);
    }
    *o = y;
  }
};

inline Outputs<> make_outputs() { return {}; }
template <class O, class... Rest>
Outputs<O, Rest...> make_outputs(const O& head, const Rest&... rest) {
  return {head, make_outputs(rest...)};
}

// Runs `body` over every element of `shape` on `device`: one launch.
template <int R, class... T, class... Ev>
void run_outputs(const Outputs<Output<T, Ev>...>& body, const Shape<R>& shape, Device device, const Plan& plan) {
  if (shape.numel() == 0) return;
  if (device.is_cpu()) {
    cpu::run_each(body, shape, plan.dense);
  } else {
#if FT_CUDA_ENABLED
    // one 16-byte access an output per step when the outputs' elements have one size
    constexpr std::size_t sizes[] = {sizeof(T)...};
    constexpr std::size_t first = sizes[0];
    constexpr int N = ((sizeof(T) == first) && ...) ? static_cast<int>(16 / first) : 1;
    gpu::run_each<N>(body, shape, device, plan);
#else
    cuda::require_device(device, "backward");
#endif
  }
}

}  // namespace ft::inline FT_ABI::exec
