// A rank-2 tensor cannot hold a rank-3 expression.
// expect: the expression's rank differs from the tensor's
#include <ft/tensor.hpp>
int main() {
  auto a = ft::zeros<float>({2, 3, 4});
  ft::Tensor<float, 2> y = a * 2.0f;
}
