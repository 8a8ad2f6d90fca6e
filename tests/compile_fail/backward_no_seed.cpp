// backward() without a seed is for a loss (rank 0).
// expect: only a rank-0 Var \(a loss\) has an implicit seed
#include <ft/tensor.hpp>
int main() {
  ft::Var<float, 1> x(ft::ones<float>({3}), ft::requires_grad);
  ft::Var<float, 1> y = x * 2.0f;
  y.backward();
}
