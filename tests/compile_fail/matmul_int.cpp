// matmul runs on floating types: an integer product is a compile-time error that says how to fix it.
// expect: ft::matmul: operands must be floating \(float, double, half, bfloat16\); convert integer operands with
#include <ft/tensor.hpp>
int main() {
  auto a = ft::zeros<std::int32_t>({2, 3});
  auto b = ft::zeros<std::int32_t>({3, 4});
  auto c = ft::matmul(a, b);
}
