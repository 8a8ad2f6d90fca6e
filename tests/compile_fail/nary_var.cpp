// make_nary has no gradient rule: an operand that reads a Var must be refused at compile time.
// expect: ft::make_nary has no gradient rule
#include <ft/tensor.hpp>

struct Fma {
  static constexpr const char* name = "fma";
  FT_HD FT_INLINE float operator()(float a, float b, float c) const { return a * b + c; }
};

int main() {
  ft::Var<float, 1> w(ft::ones<float>({3}), ft::requires_grad);
  auto x = ft::ones<float>({3});
  auto y = ft::make_nary(Fma{}, w, x, x);
  return static_cast<int>(y.shape()[0]);
}
