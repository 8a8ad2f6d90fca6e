// Only floating values have gradients.
// expect: ft::Var: gradients need float or double values
#include <ft/ft.hpp>
int main() { ft::Var<int, 1> v; }
