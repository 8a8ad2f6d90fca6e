// Negating booleans is not defined (as in PyTorch).
// expect: negation of a bool tensor is not defined; use logical_not
#include <ft/tensor.hpp>
int main() {
  auto a = ft::zeros<bool>({4});
  ft::Tensor<bool, 1> b = -a;
}
