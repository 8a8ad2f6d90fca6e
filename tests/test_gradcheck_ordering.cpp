// gradcheck cases of the ordering ops and scans (ft/ops/ordering.hpp), run by
// test_gradcheck.cpp with the others. Inputs are random doubles, so values are distinct and
// finite differences do not cross a tie.
#include "ft/ops/ordering.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
std::vector<Case> ordering_cases() {
  using namespace ft;
  using V2 = Var<double, 2>;
  using V3 = Var<double, 3>;
  std::vector<Case> c;
  // ---- sort, topk, kthvalue: the gradient goes back to where each output came from ----
  c.push_back(general("sort dim 1", {3, 5}, [](const V2& x) { return sort(x, 1).values; }));
  c.push_back(general("sort descending dim 0 of an expression", {4, 3},
                      [](const V2& x) { return Var<double, 2>(sort(x * x, -2, true).values * 2); }));
  c.push_back(general("topk largest", {3, 6}, [](const V2& x) { return topk(x, 3, 1).values; }));
  c.push_back(general("topk smallest dim 1 of 3", {2, 4, 3}, [](const V3& x) { return topk(x, 2, 1, false).values; }));
  c.push_back(general("kthvalue", {4, 5}, [](const V2& x) { return kthvalue(x, 2, 1).values; }));
  c.push_back(general("kthvalue keepdim", {4, 5}, [](const V2& x) { return kthvalue(x, 3, 0, keepdim).values; }));
  // ---- scans ----
  c.push_back(general("cumsum", {3, 4}, [](const V2& x) { return cumsum(x, 1); }));
  c.push_back(general("cumsum dim 0 of an expression", {2, 3, 4}, [](const V3& x) { return cumsum(exp(x), 0); }));
  c.push_back(general("cumprod", {3, 5}, [](const V2& x) { return cumprod(x, 1); }));
  c.push_back({"cumprod with zeros", [] {
                 // row 0 one zero, row 1 two zeros, row 2 a zero at the end, row 3 none
                 auto x = leaf({4, 5}, 61, 0.5, 1.5);
                 for (index_t k : {2, 6, 8, 14}) x.data().data()[k] = 0;
                 return gradcheck([](const V2& v) { return cumprod(v, 1); }, x);
               }});
  c.push_back(general("cummax", {3, 6}, [](const V2& x) { return cummax(x, 1).values; }));
  c.push_back(general("cummin dim 0", {6, 3}, [](const V2& x) { return cummin(x, 0).values; }));
  c.push_back(general("logcumsumexp", {3, 5}, [](const V2& x) { return logcumsumexp(x, 1); }));
  c.push_back(general("logcumsumexp dim 0", {5, 3}, [](const V2& x) { return logcumsumexp(x * 3, 0); }));
  return c;
}
const bool registered = [] {
  for (auto& k : ordering_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace
