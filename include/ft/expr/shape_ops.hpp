// Nodes that change an expression's shape without materialising it, as the adjoint rules need
// them: Unsqueeze<E> inserts a dimension of size 1 and BroadcastTo<E, R> reads E over a larger
// shape (a reduction's gradient expanded back over the reduced dimensions), and SumTo<E, R> sums
// an expression down to a shape it was broadcast from (the gradient of a broadcast operand).
#pragma once

#include <optional>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"
#include "ft/expr/temporaries.hpp"

namespace ft::inline FT_ABI {

// E with a dimension of size 1 inserted at `dim`; reads E's element at the remaining coordinates.
template <class E>
class Unsqueeze {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = E::rank + 1;
  static_assert(rank <= kMaxRank, "ft::unsqueeze: the result would exceed rank 8");

  Unsqueeze(E e, int dim) : e_(std::move(e)), dim_(wrap_dim(dim, rank, "unsqueeze")) {
    const auto& s = e_.shape();
    for (int d = 0, j = 0; d < rank; ++d) shape_[d] = d == dim_ ? 1 : s[j++];
  }

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    int from_right;  // the inserted dimension, counted from the last (0 = last)
    template <class I, int OR, bool D>
    FT_HD FT_INLINE compute_type operator()(const Index<I, OR, D>& ix) const {
      if constexpr (D) {  // every leaf has the output's layout: the linear index is valid below too
        return e(ix);
      } else {
        Index<I, OR - 1, false> c{};
        c.linear = ix.linear;
        const int skip = OR - 1 - from_right;
        for (int d = 0, j = 0; d < OR; ++d)
          if (d != skip) c.coord[j++] = ix.coord[d];
        return e(c);
      }
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return e.template load<N>(i);
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return detail::device_of(e_); }
  Device device() const { return device_opt().value_or(kCPU); }
  Eval evaluator(const EvalContext& ctx) const { return {e_.evaluator(ctx), rank - 1 - dim_}; }
  template <class F>
  void for_each_leaf(F&& f) const {
    e_.for_each_leaf(f);
  }
  const E& operand() const { return e_; }
  int dim() const { return dim_; }

 private:
  E e_;
  int dim_;
  Shape<rank> shape_{};
};

// E summed over the dimensions where `target` has size 1 (or that `target` lacks on the
// left), so that the result broadcasts to `target`: the adjoint of broadcasting. Where nothing
// needs summing it is E itself, unmaterialised; otherwise it is a boundary like a reduction,
// computed in one launch (every summed dimension at once) and read as a leaf.
template <class E, int R>
class SumTo {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = R;
  using input_type = E;
  static_assert(R <= E::rank, "ft::sum_to: the target cannot have a higher rank than the expression");

  SumTo(E e, const Shape<R>& target) : e_(std::move(e)) {
    const auto& s = e_.shape();
    constexpr int lead = E::rank - R;
    for (int j = 0; j < E::rank; ++j) {
      const bool summed = j < lead || target[j - lead] == 1;
      if (j >= lead) {
        const index_t t = target[j - lead];
        if (s[j] != t && s[j] != 1 && t != 1)
          fail("sum_to", "an expression of shape ", to_string(s), " does not broadcast to ", to_string(target));
        shape_[j - lead] = summed ? 1 : s[j];
      }
      if (summed && s[j] != 1) reduces_ = true;
    }
    // A rank-reducing SumTo is always read from its sum: E's evaluator takes E's rank of index.
    if constexpr (E::rank != R) reduces_ = true;
  }

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    TensorReader<value_type, R> sum;
    bool pass;  // nothing summed: read E itself (uniform across a launch; only when E has rank R)
    template <class Ix>
    FT_HD FT_INLINE compute_type operator()(const Ix& ix) const {
      if constexpr (E::rank == R)
        return pass ? e(ix) : sum(ix);
      else
        return sum(ix);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      if constexpr (E::rank == R)
        return pass ? e.template load<N>(i) : sum.template load<N>(i);
      else
        return sum.template load<N>(i);
    }
  };

  const Shape<R>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return detail::device_of(e_); }
  Device device() const { return device_opt().value_or(kCPU); }
  const E& input() const { return e_; }
  // True when some dimension is summed (a launch); false when this is E unchanged.
  bool reduces() const { return reduces_; }

  // Writes the sum into `dst` (contiguous, this shape): one launch. Defined in exec/reduce.hpp.
  template <class T>
  void materialize_into(const Tensor<T, R>& dst) const;

  const Tensor<value_type, R>& result() const {
    return detail::temporary<Tensor<value_type, R>>(id_, "sum_to", [&] {
      Tensor<value_type, R> t(shape_, device());
      materialize_into(t);
      return t;
    });
  }
  Eval evaluator(const EvalContext& ctx) const {
    if constexpr (E::rank == R)
      if (!reduces_) return {e_.evaluator(ctx), {}, true};
    return {e_.evaluator(ctx), result().evaluator(ctx), false};
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    if (reduces_)
      result().for_each_leaf(f);
    else
      e_.for_each_leaf(f);
  }
  std::uint64_t id() const { return id_; }

 private:
  E e_;
  Shape<R> shape_{};
  bool reduces_ = false;
  std::uint64_t id_ = detail::next_node_id();
};

// E read at every coordinate of `shape`, to which it broadcasts (E's size-1 and missing leading
// dimensions repeat; E reads such coordinates as 0 itself, as any broadcast operand does). The
// adjoint rules expand a reduction's gradient back to the reduced input's shape with it, so that
// the SumTo of an operand broadcast along a reduced dimension counts every element: the
// gradient of b in sum(a[4, 3] + b[3]) is 4 for each element, not the 1 a gradient of shape
// [1, 1] would sum to.
template <class E, int R>
class BroadcastTo {
 public:
  using value_type = typename E::value_type;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = R;
  static_assert(E::rank <= R, "ft::BroadcastTo: the target cannot have a lower rank than the expression");

  BroadcastTo(E e, const Shape<R>& shape) : e_(std::move(e)), shape_(shape) {}

  struct Eval {
    decltype(std::declval<const E&>().evaluator(EvalContext{})) e;
    template <class Ix>
    FT_HD FT_INLINE compute_type operator()(const Ix& ix) const {
      return e(ix);
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return e.template load<N>(i);  // dense only when E's leaves span the whole shape (or E has none)
    }
  };

  const Shape<R>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return detail::device_of(e_); }
  Device device() const { return device_opt().value_or(kCPU); }
  Eval evaluator(const EvalContext& ctx) const { return {e_.evaluator(ctx)}; }
  template <class F>
  void for_each_leaf(F&& f) const {
    e_.for_each_leaf(f);
  }
  const E& input() const { return e_; }

 private:
  E e_;
  Shape<R> shape_;
};

namespace detail {
template <class E, int R>
inline constexpr bool is_expression_node_v<BroadcastTo<E, R>> = true;
template <class E, int R>
struct has_var<BroadcastTo<E, R>> : has_var<E> {};
template <class E>
inline constexpr bool is_expression_node_v<Unsqueeze<E>> = true;
template <class E, int R>
inline constexpr bool is_expression_node_v<SumTo<E, R>> = true;
template <class E>
struct has_var<Unsqueeze<E>> : has_var<E> {};
template <class E, int R>
struct has_var<SumTo<E, R>> : has_var<E> {};
}  // namespace detail

namespace detail {
// A lazy view of an expression with a new dimension of size 1 (used by the adjoint rules).
template <Expression E>
auto unsqueeze(const E& e, int dim) {
  return Unsqueeze<E>(e, dim);
}
// e read over `shape`, which it broadcasts to (see BroadcastTo).
template <int R, Expression E>
auto broadcast_to(const E& e, const Shape<R>& shape) {
  return BroadcastTo<E, R>(e, shape);
}
// e with dimensions of size 1 prepended up to rank R: the same values, as broadcasting reads them.
template <int R, Expression E>
auto raise_rank(const E& e) {
  static_assert(E::rank <= R);
  if constexpr (E::rank == R)
    return e;
  else
    return raise_rank<R>(Unsqueeze<E>(e, 0));
}
}  // namespace detail

// sum_to(e, shape): e summed over the dimensions it was broadcast along to reach its shape
// from `shape` (torch's sum_to_size). One launch when something is summed, none otherwise.
template <Expression E, int R>
auto sum_to(const E& e, const Shape<R>& shape) {
  return SumTo<E, R>(e, shape);
}

}  // namespace ft::inline FT_ABI
