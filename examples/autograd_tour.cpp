// Autograd in a few statements: each statement over Vars is one fused forward kernel and one
// tape node; backward runs one multi-output kernel for its same-shaped leaves. Prints the gradients, the launches each
// step took, and a gradcheck of a small function.
#include <ft/ft.hpp>
#include <iostream>

int main() {
  // the example: a linear layer and a cross-entropy loss
  ft::Var<float, 2> W(ft::randn<float>({10, 784}, ft::kCPU, 1) * 0.01f, ft::requires_grad);
  ft::Var<float, 1> b(ft::zeros<float>({10}), ft::requires_grad);
  auto x = ft::randn<float>({64, 784}, ft::kCPU, 2);
  auto y = ft::arange<int64_t>(0, 64) % 10;
  ft::Var<float, 0> loss = ft::cross_entropy(ft::linear(x, W, b), y);
  loss.backward();
  std::cout << "loss " << loss.item() << ", |dW| " << ft::norm(W.grad()).item() << ", db " << b.grad() << "\n";

  // one statement, one launch forward; its backward: one kernel for both occurrences of a,
  // one fused reduction for the broadcast c
  ft::Var<float, 2> a(ft::randn<float>({256, 256}, ft::kCPU, 3), ft::requires_grad);
  ft::Var<float, 1> c(ft::randn<float>({256}, ft::kCPU, 4), ft::requires_grad);
  ft::stats::reset();
  ft::Var<float, 2> h = ft::tanh(a * a + c);  // c broadcast along the rows
  std::cout << "forward " << h.grad_fn_name() << ": " << ft::stats::launches(ft::kCPU) << " launch\n";
  auto seed = ft::ones<float>({256, 256});
  ft::stats::reset();
  h.backward(seed);
  std::cout << "backward: " << ft::stats::launches(ft::kCPU)
            << " launches (a's two occurrences in one kernel, c summed over the rows)\n";

  // a statement heavy in transcendental functions: on the CPU its forward kernel also saves
  // ∂s/∂a (one tensor), so its backward is one multiply instead of the forward again
  const auto before = ft::stats::bytes_in_use(ft::kCPU);
  ft::Var<float, 2> s = ft::tanh(ft::sin(a) * a) * ft::exp(-a);
  std::cout << "kept for the backward: " << (ft::stats::bytes_in_use(ft::kCPU) - before) / 1024
            << " KiB (s and ds/da)\n";
  s.backward(seed);
  // ... or recomputed by the backward, keeping nothing (the choice on a GPU)
  const auto was = ft::autograd::set_statement_derivatives(ft::autograd::StatementDerivatives::recompute);
  ft::Var<float, 2> r = ft::tanh(ft::sin(a) * a) * ft::exp(-a);
  r.backward(seed);
  ft::autograd::set_statement_derivatives(was);

  // dynamic control flow: the tape records what ran
  ft::Var<double, 1> v(ft::from_vector<double>({1.0, 2.0}, {2}), ft::requires_grad);
  ft::Var<double, 1> p = v * 1.0;
  while (ft::sum(p.value()).item() < 100) p = p * p + 1.0;
  ft::Var<double, 0>(ft::sum(p)).backward();
  std::cout << "d sum(p) / dv = " << v.grad() << "\n";

  // inference without recording
  {
    ft::NoGradGuard no_grad;
    ft::Var<float, 2> logits = ft::linear(x, W, b);
    std::cout << "under NoGradGuard: requires_grad = " << logits.requires_grad() << "\n";
  }

  // finite differences against the analytic gradient
  ft::Var<double, 2> z(ft::randn<double>({3, 4}, ft::kCPU, 5), ft::requires_grad);
  auto report = ft::gradcheck([](const auto& z) { return ft::Var<double, 1>(ft::logsumexp(ft::sin(z) * z, 1)); }, z);
  std::cout << "gradcheck " << (report.ok ? "passed" : "FAILED") << "\n" << report.report;
  return report.ok ? 0 : 1;
}
