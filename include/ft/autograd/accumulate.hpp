// Gradient accumulation: grad += g in one launch (AddTo, add_into), with the first
// accumulation written without reading and a broadcast operand's sum run straight into the
// gradient; has_non_finite for anomaly detection.
#pragma once

#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/core/tensor.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/shape_ops.hpp"
#include "ft/ops/elementwise.hpp"

namespace ft::inline FT_ABI {
namespace autograd {
template <class T, int R, class G>
class AddTo;
}
namespace detail {
template <class T, int R, class G>
inline constexpr bool is_expression_node_v<autograd::AddTo<T, R, G>> = true;
}
}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::autograd {

namespace detail {
template <class T>
bool any_non_finite(const Tensor<T, 1>& t) {
  return ft::any(!(ft::abs(t) <= std::numeric_limits<T>::max())).item();
}
}  // namespace detail

// True when any element of `t` is NaN or infinite: one fused reduction over the elements as a
// rank-1 tensor (compiled once per dtype, not per dtype and rank; a strided `t` is copied
// first, which anomaly detection can afford).
template <class T, int R>
bool has_non_finite(const Tensor<T, R>& t) {
  if (!t.defined() || t.numel() == 0) return false;
  if constexpr (R == 1) {
    return detail::any_non_finite(t);
  } else {
    const Tensor<T, R> dense = t.contiguous();
    return detail::any_non_finite(dense.reshape(Shape<1>{dense.numel()}));
  }
}

template <class G>
struct is_sum_to : std::false_type {};
template <class E, int RR>
struct is_sum_to<SumTo<E, RR>> : std::true_type {};

// dst + g, or g alone when dst is fresh (then dst is not read): the accumulation kernel.
template <class T, int R, class G>
class AddTo {
 public:
  using value_type = T;
  static constexpr int rank = R;
  AddTo(const Tensor<T, R>& dst, const G& g, bool fresh) : dst_(dst), g_(g), fresh_(fresh) {}

  struct Eval {
    TensorReader<T, R> dst;
    decltype(std::declval<const G&>().evaluator(EvalContext{})) g;
    T fresh;  // 1: dst is not read. A T, not a bool, so that the CPU loop vectorises the select
    template <class Ix>
    FT_HD FT_INLINE T operator()(const Ix& ix) const {
      const T v = static_cast<T>(g(ix));
      const T d = dst(ix);  // read unconditionally (discarded when fresh): no masked load
      return fresh != T(0) ? v : static_cast<T>(d + v);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<T, N> load(I i) const {
      auto x = g.template load<N>(i);
      Vec<T, N> r;
      if (fresh != T(0)) {
        for (int k = 0; k < N; ++k) r.v[k] = static_cast<T>(x.v[k]);
      } else {
        auto d = dst.template load<N>(i);
        for (int k = 0; k < N; ++k) r.v[k] = static_cast<T>(d.v[k] + static_cast<T>(x.v[k]));
      }
      return r;
    }
  };
  const Shape<R>& shape() const { return dst_.shape(); }
  std::optional<Device> device_opt() const { return dst_.device(); }
  Device device() const { return dst_.device(); }
  Eval evaluator(const EvalContext& ctx) const {
    return {dst_.evaluator(ctx), g_.evaluator(ctx), static_cast<T>(fresh_)};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    if (!fresh_) dst_.for_each_leaf(f);
    g_.for_each_leaf(f);
  }

 private:
  Tensor<T, R> dst_;
  G g_;
  bool fresh_;
};

// dst += g, or dst = g when dst is fresh (not read): one launch. Every gradient accumulation
// goes through here, also into views of a gradient (boundary ops, views of Vars).
template <class T, int R, class G>
void add_into(const Tensor<T, R>& dst, const G& g, bool fresh) {
  if constexpr (is_sum_to<G>::value && G::rank == R) {
    if (g.reduces() && g.shape() == dst.shape() && dst.is_contiguous()) {
      ft::detail::check_assignable(dst, g, "backward");
      dst.storage()->bump_version();
      exec::run_sum_to(dst, g, !fresh);
      return;
    }
  }
  ft::detail::assign(dst, AddTo<T, R, G>(dst, g, fresh), "backward");
}

}  // namespace ft::inline FT_ABI::autograd
