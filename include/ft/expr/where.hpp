// Where<C, A, B>: cond ? a : b elementwise, all three broadcast together.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"

namespace ft::inline FT_ABI {

template <class C, class A, class B>
class Where {
 public:
  using value_type = promote_t<typename A::value_type, typename B::value_type>;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = C::rank > (A::rank > B::rank ? A::rank : B::rank)
                                  ? C::rank
                                  : (A::rank > B::rank ? A::rank : B::rank);

  Where(C c, A a, B b)
      : c_(std::move(c)),
        a_(std::move(a)),
        b_(std::move(b)),
        shape_(
            detail::broadcast_shapes("where", c_.shape(), detail::broadcast_shapes("where", a_.shape(), b_.shape()))),
        device_(detail::common_device("where", detail::device_of(c_),
                                      detail::common_device("where", detail::device_of(a_), detail::device_of(b_)))) {}

  struct Eval {
    decltype(std::declval<const C&>().evaluator(EvalContext{})) c;
    decltype(std::declval<const A&>().evaluator(EvalContext{})) a;
    decltype(std::declval<const B&>().evaluator(EvalContext{})) b;
    template <class Ix>
    FT_HD FT_INLINE compute_type operator()(const Ix& ix) const {
#if !defined(__CUDA_ARCH__)
      if constexpr (std::is_floating_point_v<compute_type>) {
        // on a CPU both sides first, then a select: a loop the compiler cannot if-convert
        // (strided reads) would otherwise branch on data, mispredicted half the time. No
        // expression traps (integer division is true division, integer modulo by 0 gives 0,
        // gathers clamp); integer results keep the branch (an unselected side may overflow).
        const auto x = static_cast<compute_type>(a(ix));
        const auto y = static_cast<compute_type>(b(ix));
        return static_cast<bool>(c(ix)) ? x : y;
      }
#endif
      return static_cast<bool>(c(ix)) ? static_cast<compute_type>(a(ix)) : static_cast<compute_type>(b(ix));
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      auto z = c.template load<N>(i);
      auto x = a.template load<N>(i);
      auto y = b.template load<N>(i);
      Vec<compute_type, N> r;
      for (int k = 0; k < N; ++k)
        r.v[k] = static_cast<bool>(z.v[k]) ? static_cast<compute_type>(x.v[k]) : static_cast<compute_type>(y.v[k]);
      return r;
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  Eval evaluator(const EvalContext& ctx) const { return {c_.evaluator(ctx), a_.evaluator(ctx), b_.evaluator(ctx)}; }
  template <class F>
  void for_each_leaf(F&& f) const {
    c_.for_each_leaf(f);
    a_.for_each_leaf(f);
    b_.for_each_leaf(f);
  }

  const C& condition() const { return c_; }
  const A& lhs() const { return a_; }
  const B& rhs() const { return b_; }

 private:
  C c_;
  A a_;
  B b_;
  Shape<rank> shape_;
  std::optional<Device> device_;
};

namespace detail {
template <class C, class A, class B>
inline constexpr bool is_expression_node_v<Where<C, A, B>> = true;
template <class C, class A, class B>
struct has_var<Where<C, A, B>> : std::bool_constant<has_var_v<C> || has_var_v<A> || has_var_v<B>> {};
}  // namespace detail

}  // namespace ft::inline FT_ABI
