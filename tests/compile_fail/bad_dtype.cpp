// Only the library's dtypes can be tensor elements.
// expect: element type must be float, double, half, bfloat16, int32_t, int64_t, uint8_t or bool
#include <ft/tensor.hpp>
int main() { ft::Tensor<char, 1> t; }
