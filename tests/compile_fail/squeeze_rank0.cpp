// A rank-0 tensor has nothing to squeeze.
// expect: a rank-0 tensor has no dimension to squeeze
#include <ft/tensor.hpp>
int main() {
  ft::Tensor<float, 0> s = ft::zeros<float>({1}).squeeze(0);
  auto t = s.squeeze(0);
}
