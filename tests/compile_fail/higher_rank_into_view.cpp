// Writing a rank-2 expression into a rank-1 tensor.
// expect: cannot write an expression of higher rank into a tensor
#include <ft/tensor.hpp>
int main() {
  auto a = ft::zeros<float>({2, 3});
  auto b = ft::zeros<float>({3});
  b = a + 1.0f;
}
