// gradcheck of the indexing ops (ft/ops/indexing.hpp), registered into the one table that
// tests/test_gradcheck.cpp runs and checks for completeness. Indices repeat, so the gradients'
// grouped sums are exercised.
#include "ft/ops/indexing.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
template <std::size_t R>
ft::Tensor<std::int64_t, static_cast<int>(R)> ix(const std::vector<std::int64_t>& v, const index_t (&shape)[R]) {
  return ft::from_vector(v, shape);
}

std::vector<Case> indexing_cases() {
  using namespace ft;
  using V2 = Var<double, 2>;
  std::vector<Case> c;
  c.push_back(general("index_select dim 1, repeated", {3, 4}, [](const V2& x) {
    return V2(exp(index_select(x, 1, ix({2, 0, 2}, {3}))) * x.slice(1, 0, 3));
  }));
  c.push_back(general("gather dim 0, repeated", {3, 4}, [](const V2& x) {
    return V2(gather(x * x, 0, ix({2, 0, 2, 2, 0, 0, 1, 2}, {2, 4})) + sum(gather(x, -1, ix({3, 3, 0}, {3, 1}))));
  }));
  c.push_back(general("take_along_dim broadcast", {1, 4}, [](const V2& x) {
    return V2(take_along_dim(x, ix({3, 0, 1, 1, 2, 3}, {3, 2}), 1) * 2.0);
  }));
  c.push_back(binary("scatter src", {3, 5}, {3, 2}, [](const V2& a, const V2& b) {
    return scatter(a, 1, ix({0, 2, 4, 1, 3, 0}, {3, 2}), b);
  }));
  c.push_back(general("scatter value", {3, 5}, [](const V2& x) {
    return scatter(x * x, 1, ix({0, 2, 4, 1}, {2, 2}), 1.5);
  }));
  c.push_back(binary("scatter_add repeated", {3, 5}, {3, 4}, [](const V2& a, const V2& b) {
    return scatter_add(a, 1, ix({0, 2, 0, 0, 4, 1, 4, 1, 3, 3, 3, 3}, {3, 4}), b * b);
  }));
  for (const char* reduce : {"sum", "mean", "amax", "amin", "prod"})
    c.push_back(binary(std::string("scatter_reduce ") + reduce, {3, 5}, {3, 4}, [reduce](const V2& a, const V2& b) {
      const auto i = ix({0, 2, 0, 0, 4, 1, 4, 1, 3, 3, 3, 3}, {3, 4});
      V2 with_self = scatter_reduce(a, 1, i, b, reduce);
      V2 without = scatter_reduce(a, 1, i, b, reduce, false);
      return V2(with_self + without * 2.0);
    }));
  c.push_back(binary("index_add alpha", {4, 3}, {3, 3}, [](const V2& a, const V2& b) {
    return index_add(a, 0, ix({0, 2, 0}, {3}), b, 2.0);
  }));
  c.push_back(binary("index_put accumulate", {4, 3}, {3, 3}, [](const V2& a, const V2& b) {
    return index_put(a, ix({0, 2, 0}, {3}), b, true);
  }));
  c.push_back(binary("index_put two indices, broadcast values", {4, 3}, {1}, [](const V2& a, const Var<double, 1>& b) {
    return index_put(a, std::array{ix({0, -1}, {2}), ix({2, 0}, {2})}, b);
  }));
  c.push_back(general("index repeated", {4, 3}, [](const V2& x) {
    return V2(index(x, ix({3, 0, 3}, {3})) * x.slice(0, 0, 3));
  }));
  c.push_back(general("masked_fill", {3, 4}, [](const V2& x) {
    return V2(masked_fill(x * x, from_vector<bool>({true, false, false, true}, {4}), 0.5));
  }));
  c.push_back(general("masked_select", {3, 4},
                      [](const V2& x) { return Var<double, 1>(masked_select(exp(x), x > 0.0) * 2.0); }));
  return c;
}
const bool registered = [] {
  for (auto& k : indexing_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace
