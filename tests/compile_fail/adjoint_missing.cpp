// An elementwise op without an adjoint rule cannot be recorded on the tape.
// expect: this unary op has no adjoint rule; specialise ft::autograd::UnaryGrad<Op>
#include <ft/tensor.hpp>
struct Twice {
  static constexpr const char* name = "twice";
  template <class T>
  T operator()(T x) const {
    return x + x;
  }
};
int main() {
  ft::Var<float, 1> x(ft::ones<float>({3}), ft::requires_grad);
  ft::Var<float, 1> y = ft::make_unary(Twice{}, x);
  ft::Var<float, 0>(ft::sum(y)).backward();
}
