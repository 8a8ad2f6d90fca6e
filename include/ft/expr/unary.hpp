// Unary<Op, A>: op applied to each element of A (also cast<U>).
#pragma once

#include <optional>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"

namespace ft::inline FT_ABI {

template <class Op, class A>
class Unary {
 public:
  using value_type = detail::unary_result_t<Op, typename A::value_type>;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = A::rank;

  Unary(Op op, A a) : op_(op), a_(std::move(a)) {}

  struct Eval {
    Op op;
    decltype(std::declval<const A&>().evaluator(EvalContext{})) a;
    template <class Ix>
    FT_HD FT_INLINE compute_type operator()(const Ix& ix) const {
      return op(a(ix));
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      auto x = a.template load<N>(i);
      Vec<compute_type, N> r;
      for (int k = 0; k < N; ++k) r.v[k] = op(x.v[k]);
      return r;
    }
  };

  Shape<rank> shape() const { return a_.shape(); }
  std::optional<Device> device_opt() const { return detail::device_of(a_); }
  Device device() const { return device_opt().value_or(kCPU); }
  Eval evaluator(const EvalContext& ctx) const { return {op_, a_.evaluator(ctx)}; }
  template <class F>
  void for_each_leaf(F&& f) const {
    a_.for_each_leaf(f);
  }

  const Op& op() const { return op_; }
  static constexpr const char* op_name() { return Op::name; }
  const A& operand() const { return a_; }

 private:
  Op op_;
  A a_;
};

namespace detail {
template <class Op, class A>
inline constexpr bool is_expression_node_v<Unary<Op, A>> = true;
template <class Op, class A>
struct has_var<Unary<Op, A>> : has_var<A> {};
}  // namespace detail

}  // namespace ft::inline FT_ABI
