// gradcheck of the structure ops (ft/ops/structure.hpp), registered into the one table that
// tests/test_gradcheck.cpp runs and checks for completeness.
#include "ft/ops/structure.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
std::vector<Case> structure_cases() {
  using namespace ft;
  using V2 = Var<double, 2>;
  using V4 = Var<double, 4>;
  std::vector<Case> c;
  c.push_back(general("flip", {3, 4}, [](const V2& x) { return V2(flip(x, {0, 1}) * x); }));
  c.push_back(general("roll", {3, 4}, [](const V2& x) { return V2(roll(x, {1, -3}, {0, 1}) * x + roll(x, 5)); }));
  c.push_back(general("repeat", {2, 3}, [](const V2& x) { return Var<double, 3>(repeat(x * x, {2, 2, 3})); }));
  c.push_back(general("tile", {2, 3}, [](const V2& x) { return V2(tile(x, {3})); }));
  c.push_back(general("pad", {1, 2, 4, 5}, [](const V4& x) {
    return V4(pad(x, {2, 1, 1, 3}, "reflect") + pad(x, {2, 1, 1, 3}, "circular") * 2 +
              pad(x, {2, 1, 1, 3}, "replicate") * 3 + pad(x, {2, 1, 1, 3}, "constant", 0.5) * 4);
  }));
  c.push_back(general("pixel_shuffle", {1, 8, 2, 3},
                      [](const V4& x) { return V4(pixel_unshuffle(pixel_shuffle(x, 2) * pixel_shuffle(x, 2), 2)); }));
  c.push_back(general("interpolate", {1, 2, 3, 5}, [](const V4& x) {
    return V4(interpolate(x, {7, 4}) + interpolate(x, {7, 4}, "nearest-exact") + interpolate(x, {7, 4}, "bilinear") +
              sum(interpolate(x, {4, 9}, "bilinear", true)) + sum(interpolate(x, {1.75, 0.6}, "bilinear")));
  }));
  c.push_back(general("interpolate bicubic", {1, 2, 3, 5}, [](const V4& x) {
    return V4(interpolate(x, {7, 4}, "bicubic") + sum(interpolate(x, {4, 9}, "bicubic", true)) +
              sum(interpolate(x, {1.75, 0.6}, "bicubic")) + sum(interpolate(x, {1, 2}, "bicubic")));
  }));
  c.push_back(general("interpolate antialias", {1, 2, 9, 7}, [](const V4& x) {
    // shrinking (windows of several inputs), growing, align_corners, a scale factor
    return V4(interpolate(x, {4, 3}, "bilinear", false, true) + interpolate(x, {4, 3}, "bicubic", false, true) +
              sum(interpolate(x, {11, 2}, "bicubic", true, true)) +
              sum(interpolate(x, {0.4, 1.5}, "bilinear", false, true)));
  }));
  c.push_back(general("tril", {3, 4}, [](const V2& x) { return V2(tril(x, 1) * x + triu(x, -1)); }));
  c.push_back(general("diagonal", {3, 4, 5},
                      [](const Var<double, 3>& x) { return V2(diagonal(x, 1, 0, 2) * diagonal(x, -1, 2, 0)); }));
  c.push_back(general("diag", {4, 4}, [](const V2& x) { return V2(diag(diag(x, 1), -1) * x + trace(x)); }));
  c.push_back(general("cat", {3, 4}, [](const V2& x) {
    V2 y = x * x;
    return V2(cat({x, y, x}, 1));
  }));
  c.push_back(general("stack", {3, 4}, [](const V2& x) {
    V2 y = exp(x);
    return Var<double, 3>(stack({x, y}, -1));
  }));
  return c;
}
const bool registered = [] {
  for (auto& k : structure_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace
