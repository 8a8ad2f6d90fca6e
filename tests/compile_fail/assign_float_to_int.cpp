// A floating expression is not written into an integer tensor implicitly (NaN and huge values
// have no integer; PyTorch refuses the same): ft::cast says what the conversion is.
// expect: would narrow it implicitly.*ft::cast
#include <ft/tensor.hpp>
int main() {
  ft::Tensor<float, 1> x({1.5f, 2.5f});
  ft::Tensor<int, 1> i = ft::zeros<int>({2});
  i = x * 2.0f;
}
