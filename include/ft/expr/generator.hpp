// Generator<F, R>: elements computed from their own linear index (random numbers, arange,
// linspace). F is a trivially copyable functor `value_type operator()(index_t) const`.
#pragma once

#include <cstdint>
#include <optional>

#include "ft/core/config.hpp"
#include "ft/core/philox.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/math.hpp"

namespace ft::inline FT_ABI {

template <class F, int R>
class Generator {
 public:
  using value_type = decltype(std::declval<F>()(index_t{}));
  using compute_type = compute_t<value_type>;
  static constexpr int rank = R;

  Generator(F f, const Shape<R>& shape, Device device)
      : f_(f), shape_(shape), strides_(contiguous_strides(shape)), device_(device) {}

  struct Eval {
    F f;
    Array<index_t, R> strides;  // own row-major strides, 0 where broadcast
    bool dense;
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      if constexpr (D) {
        return f(static_cast<index_t>(ix.linear));
      } else {
        if (dense) return f(static_cast<index_t>(ix.linear));
        index_t lin = 0;
        for (int d = 0; d < R; ++d) lin += static_cast<index_t>(ix.coord[OR - R + d]) * strides[d];
        return f(lin);
      }
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      Vec<compute_type, N> r;
      for (int k = 0; k < N; ++k) r.v[k] = f(static_cast<index_t>(i) + k);
      return r;
    }
  };

  const Shape<R>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_; }
  const F& functor() const { return f_; }
  Eval evaluator(const EvalContext& ctx) const {
    Eval e{f_, strides_, shape_.numel() == ctx.numel};
    for (int d = 0; d < R; ++d)
      if (shape_[d] == 1) e.strides[d] = 0;
    return e;
  }
  // Reported as a contiguous leaf with no storage, so the executor knows when it is broadcast.
  template <class Fn>
  void for_each_leaf(Fn&& f) const {
    f(LeafInfo{nullptr, nullptr, 0, device_, R, shape_.begin(), strides_.begin()});
  }

 private:
  F f_;
  Shape<R> shape_;
  Array<index_t, R> strides_;
  Device device_;
};

namespace detail {
template <class F, int R>
inline constexpr bool is_expression_node_v<Generator<F, R>> = true;
}

namespace gen {

// U[low, high) from Philox.
template <class T>
struct Uniform {
  std::uint64_t seed;
  T low, high;
  FT_HD FT_INLINE T operator()(index_t i) const {
    philox::U32x4 w = philox::philox4x32_10(static_cast<std::uint64_t>(i), seed);
    if constexpr (std::is_same_v<compute_t<T>, float>) {  // a two-byte T: float, rounded
      return philox::fma_rn(philox::uniform_float(w.v[0]), philox::add_rn(high, -low), low);
    } else {
      return math::fma(high - low, philox::uniform_double(w.v[0], w.v[1]), low);
    }
  }
};

// N(mean, std²) from Philox by Box–Muller.
template <class T>
struct Normal {
  std::uint64_t seed;
  T mean, std;
  FT_HD FT_INLINE T operator()(index_t i) const {
    philox::U32x4 w = philox::philox4x32_10(static_cast<std::uint64_t>(i), seed);
    if constexpr (std::is_same_v<compute_t<T>, float>) {
      return philox::fma_rn(philox::normal_float(w.v[0], w.v[1]), std, mean);
    } else {
      return math::fma(std, philox::normal_double(w), mean);
    }
  }
};

// Integers uniform in [low, high).
template <class T>
struct RandInt {
  std::uint64_t seed;
  std::int64_t low;
  std::uint64_t range;
  FT_HD FT_INLINE T operator()(index_t i) const {
    philox::U32x4 w = philox::philox4x32_10(static_cast<std::uint64_t>(i), seed);
    std::uint64_t x = (static_cast<std::uint64_t>(w.v[0]) << 32) | w.v[1];
    return static_cast<T>(low + static_cast<std::int64_t>(x % range));
  }
};

// start + i·step, computed in double (one fma: the same bits on every device) for floating
// types, exactly for integers.
template <class T>
struct Arange {
  T start, step;
  FT_HD FT_INLINE T operator()(index_t i) const {
    if constexpr (is_floating_v<T>)
      return static_cast<T>(math::fma(static_cast<double>(step), static_cast<double>(i), static_cast<double>(start)));
    else
      return static_cast<T>(start + step * static_cast<T>(i));
  }
};

// torch.linspace: the first half counts up from start, the second half down from end, so
// both ends are exact.
template <class T>
struct Linspace {
  double start, end, step;
  index_t steps;
  FT_HD FT_INLINE T operator()(index_t i) const {
    if (steps == 1) return static_cast<T>(start);
    double v = i < steps / 2 ? math::fma(step, static_cast<double>(i), start)
                             : math::fma(-step, static_cast<double>(steps - 1 - i), end);
    return static_cast<T>(v);
  }
};

}  // namespace gen

}  // namespace ft::inline FT_ABI
