// The reduction expression node: Reduce<Red, E, OutRank> applies a reducer Red over all of E or
// along one dimension (dropped, or kept with ft::keepdim). The reducers and the user-facing
// reductions (sum, mean, prod, max, min, argmax, argmin, norm, var, std, logsumexp, all, any)
// with their adjoint rules are the reduction family, ft/ops/reduction.hpp.
// `ft::sum(a * b, 1)` reads a and b once, in one launch.
//
// A reduction assigned to a tensor runs straight into it (one launch). Used inside a larger
// expression (`x - ft::max(x, 1, ft::keepdim)`), it is evaluated first into a temporary, which
// the outer kernel reads as a leaf: exactly two launches.
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/math.hpp"
#include "ft/expr/temporaries.hpp"

namespace ft::inline FT_ABI {

struct KeepDim {};
inline constexpr KeepDim keepdim{};

// How a reducer combines elements (red::Sum …, ft/ops/reduction.hpp): value_type (the element
// type), out_type, name, init / accumulate / combine / finalize, and, where an empty range has
// no result (max, argmax …), `static constexpr bool needs_elements = true`.
namespace red {

// The accumulator each reducer uses on the host (OnDevice = false) and on a GPU.
// The default (max, min): the element type itself (float for the two-byte types). Floating sums accumulate in double on
// the host (cheap there: a 10^7-element float sum comes out correctly rounded) and in the element type on a GPU, where
// the fixed tree order keeps the error at O(log n) ulps.
template <class Red, bool OnDevice>
struct acc_of {
  using type = compute_t<typename Red::value_type>;
};
template <class Red, bool OnDevice>
using acc_t = typename acc_of<Red, OnDevice>::type;
}  // namespace red

// Reduce<Red, E, OutRank>: Red over all of E (dim_ < 0) or along one dimension.
template <class Red, class E, int OutRank>
class Reduce {
 public:
  using value_type = typename Red::out_type;
  static constexpr int rank = OutRank;
  using input_type = E;
  using reducer_type = Red;

  Reduce(Red red, E e, int dim, bool keepdim) : red_(red), e_(std::move(e)), dim_(dim), keepdim_(keepdim) {
    const auto& s = e_.shape();
    if (dim_ >= 0) {
      for (int i = 0, j = 0; i < E::rank; ++i) {
        if (i == dim_) {
          if (keepdim_) shape_[j++] = 1;
        } else {
          shape_[j++] = s[i];
        }
      }
    } else {
      for (int i = 0; i < OutRank; ++i) shape_[i] = 1;
    }
    index_t k = reduced_size();
    if constexpr (requires { Red::needs_elements; }) {
      check(k > 0 || output_numel() == 0, Red::name, "cannot reduce over an empty dimension of ", to_string(s),
            " (the result is undefined)");
    }
  }

  const Shape<OutRank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return detail::device_of(e_); }
  Device device() const { return device_opt().value_or(kCPU); }
  const E& input() const { return e_; }
  const Red& reducer() const { return red_; }
  int dim() const { return dim_; }
  bool keepdim() const { return keepdim_; }
  // Elements combined into each output element.
  index_t reduced_size() const { return dim_ >= 0 ? e_.shape()[dim_] : e_.shape().numel(); }
  index_t output_numel() const { return shape_.numel(); }

  // Runs the reduction into `dst` (same shape): one launch. Defined in exec/reduce.hpp, which
  // ft/ops/reduction.hpp (where every reduction is made) includes.
  template <class T>
  void materialize_into(const Tensor<T, OutRank>& dst) const;

  // Inside a larger expression the reduction is a leaf: its value is a temporary of the
  // evaluation in progress (expr/temporaries.hpp), computed on first use.
  const Tensor<value_type, OutRank>& result() const {
    return detail::temporary<Tensor<value_type, OutRank>>(id_, Red::name, [&] {
      Tensor<value_type, OutRank> t(shape_, device());
      materialize_into(t);
      return t;
    });
  }
  auto evaluator(const EvalContext& ctx) const { return result().evaluator(ctx); }
  template <class F>
  void for_each_leaf(F&& f) const {
    result().for_each_leaf(f);
  }
  // Identity of this node and its copies within an evaluation.
  std::uint64_t id() const { return id_; }
  // The value of a reduction over everything, copied to the host: evaluated now, each call.
  value_type item() const {
    detail::EvaluationScope scope(detail::EvaluationScope::fresh);
    return result().item();
  }

 private:
  Red red_;
  E e_;
  int dim_;
  bool keepdim_;
  Shape<OutRank> shape_{};
  std::uint64_t id_ = detail::next_node_id();
};

namespace detail {
template <class Red, class E, int R>
inline constexpr bool is_expression_node_v<Reduce<Red, E, R>> = true;
template <class Red, class E, int R>
struct has_var<Reduce<Red, E, R>> : has_var<E> {};

template <class Red, Expression E>
auto reduce_all(Red red, const E& e) {
  return Reduce<Red, E, 0>(red, e, -1, false);
}
template <class Red, Expression E>
auto reduce_dim(Red red, const E& e, int dim) {
  static_assert(E::rank > 0, "ft: reducing along a dimension needs an operand of rank 1 or more");
  return Reduce<Red, E, E::rank - 1>(red, e, wrap_dim(dim, E::rank, Red::name), false);
}
template <class Red, Expression E>
auto reduce_keep(Red red, const E& e, int dim) {
  return Reduce<Red, E, E::rank>(red, e, wrap_dim(dim, E::rank, Red::name), true);
}
}  // namespace detail

}  // namespace ft::inline FT_ABI
