// expand cannot drop dimensions.
// expect: the new shape cannot have fewer dimensions than the tensor
#include <ft/tensor.hpp>
int main() {
  auto a = ft::zeros<float>({2, 3});
  auto b = a.expand({3});
}
