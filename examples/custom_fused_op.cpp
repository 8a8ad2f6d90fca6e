// A user-defined elementwise op with its derivative, used inside a model: the op fuses into
// the kernels around it, forward and backward, like the built-in ones.
//
// Two pieces: a functor that computes one element on host and device, and a specialisation of
// ft::autograd::UnaryGrad that gives dL/dx as an expression of g = dL/dy and x.
#include <cmath>
#include <cstdio>
#include <vector>

#include "ft/ft.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"

// Softsign with a learnable-free sharpness: y = x / (1 + |k x|).
struct Softsign {
  static constexpr const char* name = "softsign";  // used in error messages
  float k = 1;
  template <class T>
  FT_HD FT_INLINE T operator()(T x) const {
    const T kx = static_cast<T>(k) * x;
    return x / (T(1) + (kx < T(0) ? -kx : kx));
  }
};

// The lazy node, like ft::relu(x): nothing runs until a tensor or Var is assigned from it.
template <ft::Expression X>
auto softsign(const X& x, float k = 1) {
  return ft::make_unary(Softsign{k}, x);
}

// The adjoint: d/dx x / (1 + |kx|) = 1 / (1 + |kx|)^2.
template <>
struct ft::autograd::UnaryGrad<Softsign> {
  static constexpr Rule rule = Rule::differentiable;
  template <class G, class A>
  static auto grad(const Softsign& op, const G& g, const A& a) {
    return g / ft::square(ft::abs(a * op.k) + 1);
  }
};

// A functor of three operands (no derivative: make_nary is for tensors, not Vars): a blend of a
// and b by t clamped to [0, 1].
struct ClampedLerp {
  static constexpr const char* name = "clamped_lerp";
  FT_HD FT_INLINE float operator()(float a, float b, float t) const {
    const float u = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    return a + (b - a) * u;
  }
};

// A two-layer network with the custom activation between its layers.
struct Net : ft::nn::Module<Net> {
  ft::nn::Linear<double> fc1{1, 32}, fc2{32, 1};
  template <class V>
  void visit(V&& v) {
    v("fc1", fc1), v("fc2", fc2);
  }
  template <class X>
  auto forward(const X& x) {
    return fc2(softsign(fc1(x), 2.0f));
  }
};

int main() {
  // 1. The derivative is right: analytic gradient against finite differences.
  ft::Var<double, 2> x(ft::randn<double>({4, 5}, ft::kCPU, 1), ft::requires_grad);
  auto check = ft::gradcheck([](const auto& v) { return ft::Var<double, 0>(ft::sum(softsign(v * 3, 0.5f))); }, x);
  std::printf("gradcheck: %s\n", check.ok ? "ok" : check.report.c_str());

  // 2. It fuses: softsign(a * b + 1) and its gradient are one kernel each.
  ft::Var<double, 2> a(ft::randn<double>({256, 256}), ft::requires_grad), b(ft::randn<double>({256, 256}));
  auto before = ft::stats::launches(ft::kCPU);
  ft::Var<double, 0> loss = ft::sum(softsign(a * b + 1));
  auto forward = ft::stats::launches(ft::kCPU) - before;
  loss.backward();
  auto backward = ft::stats::launches(ft::kCPU) - before - forward;
  std::printf("sum(softsign(a * b + 1)): %lld forward launch, %lld backward launch\n", (long long)forward,
              (long long)backward);

  // 3. In a model: fit y = sin(3x) on [-1, 1].
  ft::manual_seed(0);
  Net net;
  ft::optim::Adam opt(net.parameters(), {.lr = 1e-2});
  auto xs = ft::linspace<double>(-1, 1, 128).reshape({128, 1});
  ft::Tensor<double, 2> ys = ft::sin(xs * 3.0);
  double first = 0, last = 0;
  for (int step = 0; step < 500; ++step) {
    opt.zero_grad();
    ft::Var<double, 0> mse = ft::nn::functional::mse_loss(net(xs), ys);
    mse.backward();
    opt.step();
    (step == 0 ? first : last) = mse.value().item();
  }
  std::printf("fit sin(3x) with softsign units: mse %.4f -> %.5f\n", first, last);

  // 4. Several operands, broadcast together, in one kernel with the ops around it.
  auto p = ft::zeros<float>({2, 3}), q = ft::ones<float>({2, 3});
  auto t = ft::from_vector<float>({-1.0f, 0.25f, 2.0f}, {3});  // one weight per column
  before = ft::stats::launches(ft::kCPU);
  ft::Tensor<float, 2> blend = 2.0f * ft::make_nary(ClampedLerp{}, p, q, t);
  const auto blend_launches = ft::stats::launches(ft::kCPU) - before;
  const auto bv = blend.to_vector();  // rows [0, 0.5, 2]
  std::printf("2 * clamped_lerp(0, 1, [-1, 0.25, 2]): [%g, %g, %g], %lld launch\n", bv[0], bv[1], bv[2],
              (long long)blend_launches);
  const bool blend_ok = bv == std::vector<float>{0, 0.5f, 2, 0, 0.5f, 2} && blend_launches == 1;
  return check.ok && forward == 1 && last < 0.01 && blend_ok ? 0 : 1;
}
