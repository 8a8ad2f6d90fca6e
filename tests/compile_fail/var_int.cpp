// Only floating values have gradients.
// expect: ft::Var: gradients need floating values \(float, double, half, bfloat16\)
#include <ft/tensor.hpp>
int main() { ft::Var<int, 1> v; }
