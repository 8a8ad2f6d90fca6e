// Binary<Op, A, B>: op applied elementwise to A and B broadcast together.
#pragma once

#include <optional>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"

namespace ft::inline FT_ABI {

template <class Op, class A, class B>
class Binary {
 public:
  using value_type = detail::binary_result_t<Op, typename A::value_type, typename B::value_type>;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = A::rank > B::rank ? A::rank : B::rank;

  // Broadcasts the shapes and checks the devices now, before anything is launched.
  Binary(Op op, A a, B b)
      : op_(op),
        a_(std::move(a)),
        b_(std::move(b)),
        shape_(detail::broadcast_shapes(Op::name, a_.shape(), b_.shape())),
        device_(detail::common_device(Op::name, detail::device_of(a_), detail::device_of(b_))) {}

  struct Eval {
    Op op;
    decltype(std::declval<const A&>().evaluator(EvalContext{})) a;
    decltype(std::declval<const B&>().evaluator(EvalContext{})) b;
    template <class Ix>
    FT_HD FT_INLINE compute_type operator()(const Ix& ix) const {
      return op(a(ix), b(ix));
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      auto x = a.template load<N>(i);
      auto y = b.template load<N>(i);
      Vec<compute_type, N> r;
      for (int k = 0; k < N; ++k) r.v[k] = op(x.v[k], y.v[k]);
      return r;
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  Eval evaluator(const EvalContext& ctx) const { return {op_, a_.evaluator(ctx), b_.evaluator(ctx)}; }
  template <class F>
  void for_each_leaf(F&& f) const {
    a_.for_each_leaf(f);
    b_.for_each_leaf(f);
  }

  const Op& op() const { return op_; }
  static constexpr const char* op_name() { return Op::name; }
  const A& lhs() const { return a_; }
  const B& rhs() const { return b_; }

 private:
  Op op_;
  A a_;
  B b_;
  Shape<rank> shape_;
  std::optional<Device> device_;
};

namespace detail {
template <class Op, class A, class B>
inline constexpr bool is_expression_node_v<Binary<Op, A, B>> = true;
template <class Op, class A, class B>
struct has_var<Binary<Op, A, B>> : std::bool_constant<has_var_v<A> || has_var_v<B>> {};
}  // namespace detail

}  // namespace ft::inline FT_ABI
