// Nary<Op, A...>: op applied elementwise to several operands broadcast together — a functor
// that needs more than two values of one position (a colour conversion reading a pixel's three
// channels) as one node, instead of a tree of unary and binary nodes that repeats its shared
// subexpressions (each repeat is another copy of the leaves in the kernel's argument).
//
// No gradient rule: an operand that reads a Var is refused at compile time (make_nary).
#pragma once

#include <cstddef>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ft/core/config.hpp"
#include "ft/expr/expression.hpp"

namespace ft::inline FT_ABI {

namespace detail {

// The evaluators of a node's operands, as one trivially copyable aggregate (std::tuple is not
// one, and a kernel argument is copied as bytes).
template <class... E>
struct EvalPack;
template <>
struct EvalPack<> {};
template <class E, class... Rest>
struct EvalPack<E, Rest...> {
  E head;
  EvalPack<Rest...> tail;
};

template <std::size_t I, class E, class... Rest>
FT_HD FT_INLINE const auto& pack_get(const EvalPack<E, Rest...>& p) {
  if constexpr (I == 0)
    return p.head;
  else
    return pack_get<I - 1>(p.tail);
}

FT_HD FT_INLINE EvalPack<> make_eval_pack() { return {}; }
template <class E, class... Rest>
FT_HD FT_INLINE EvalPack<E, Rest...> make_eval_pack(const E& e, const Rest&... rest) {
  return {e, make_eval_pack(rest...)};
}

// The operands' shapes broadcast together, from the left.
template <int R>
Shape<R> broadcast_all(const char*, const Shape<R>& s) {
  return s;
}
template <int R, class X, class... Rest>
auto broadcast_all(const char* op, const Shape<R>& s, const X& x, const Rest&... rest) {
  return broadcast_all(op, broadcast_shapes(op, s, x.shape()), rest...);
}

template <class... T>
struct promote_types;
template <class T>
struct promote_types<T> : std::type_identity<T> {};
template <class T, class U, class... Rest>
struct promote_types<T, U, Rest...> : promote_types<promote_t<T, U>, Rest...> {};

template <class Op, class... A>
using nary_result_t = typename op_result<Op, decltype(std::declval<const Op&>()(std::declval<compute_t<A>>()...)),
                                         typename promote_types<A...>::type>::type;

}  // namespace detail

template <class Op, class... A>
class Nary {
  static_assert(sizeof...(A) >= 1, "ft::Nary: at least one operand");

 public:
  using value_type = detail::nary_result_t<Op, typename A::value_type...>;
  using compute_type = compute_t<value_type>;
  static constexpr int rank = [] {
    int r = 0;
    ((r = A::rank > r ? A::rank : r), ...);
    return r;
  }();

  // Broadcasts the shapes and checks the devices now, before anything is launched.
  explicit Nary(Op op, A... a) : op_(op), operands_(std::move(a)...) {
    shape_ = std::apply([](const auto&... x) { return detail::broadcast_all(Op::name, Shape<0>{}, x...); }, operands_);
    std::optional<Device> d;
    for_each_operand([&](const auto& x) { d = detail::common_device(Op::name, d, detail::device_of(x)); });
    device_ = d;
  }

  struct Eval {
    Op op;
    detail::EvalPack<decltype(std::declval<const A&>().evaluator(EvalContext{}))...> e;
    template <class Ix>
    FT_HD FT_INLINE compute_type operator()(const Ix& ix) const {
      return apply(ix, std::index_sequence_for<A...>{});
    }
    template <int N, class I>
    FT_HD FT_INLINE Vec<compute_type, N> load(I i) const {
      return load_all<N>(i, std::index_sequence_for<A...>{});
    }

   private:
    template <class Ix, std::size_t... K>
    FT_HD FT_INLINE compute_type apply(const Ix& ix, std::index_sequence<K...>) const {
      return static_cast<compute_type>(op(detail::pack_get<K>(e)(ix)...));
    }
    template <int N, class I, std::size_t... K>
    FT_HD FT_INLINE Vec<compute_type, N> load_all(I i, std::index_sequence<K...>) const {
      const auto x = detail::make_eval_pack(detail::pack_get<K>(e).template load<N>(i)...);
      Vec<compute_type, N> r;
      for (int k = 0; k < N; ++k) r.v[k] = static_cast<compute_type>(op(detail::pack_get<K>(x).v[k]...));
      return r;
    }
  };

  const Shape<rank>& shape() const { return shape_; }
  std::optional<Device> device_opt() const { return device_; }
  Device device() const { return device_.value_or(kCPU); }
  Eval evaluator(const EvalContext& ctx) const {
    return std::apply(
        [&](const auto&... x) {
          return Eval{op_, detail::make_eval_pack(x.evaluator(ctx)...)};
        },
        operands_);
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    for_each_operand([&](const auto& x) { x.for_each_leaf(f); });
  }

  const Op& op() const { return op_; }
  static constexpr const char* op_name() { return Op::name; }
  template <std::size_t I>
  const auto& operand() const {
    return std::get<I>(operands_);
  }

 private:
  template <class F>
  void for_each_operand(F&& f) const {
    std::apply([&](const auto&... x) { (f(x), ...); }, operands_);
  }
  Op op_;
  std::tuple<A...> operands_;
  Shape<rank> shape_;
  std::optional<Device> device_;
};

namespace detail {
template <class Op, class... A>
inline constexpr bool is_expression_node_v<Nary<Op, A...>> = true;
template <class Op, class... A>
struct has_var<Nary<Op, A...>> : std::bool_constant<(has_var_v<A> || ...)> {};
}  // namespace detail

// op(a, b, c, …) at every position of the operands broadcast together, one node (fuses into the
// statement around it like any elementwise op). The operands are expressions; the functor is
// called with their compute types (float for the two-byte types) on host and device (FT_HD).
template <class Op, Expression... A>
auto make_nary(Op op, const A&... a) {
  static_assert(!(detail::has_var_v<A> || ...),
                "ft::make_nary has no gradient rule: its operands cannot read an ft::Var");
  return Nary<Op, A...>(op, a...);
}

}  // namespace ft::inline FT_ABI
