// matmul takes rank 1, 2 or 3 operands: a rank-4 operand is a compile-time error.
// expect: ft::matmul: operands must have rank 1, 2 or 3; fold extra batch dimensions into one with reshape
#include <ft/tensor.hpp>
int main() {
  auto a = ft::zeros<float>({2, 2, 3, 4});
  auto b = ft::zeros<float>({4, 5});
  auto c = ft::matmul(a, b);
}
