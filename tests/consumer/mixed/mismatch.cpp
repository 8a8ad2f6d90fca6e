// Built for the CPU configuration (ft::ft, FT_CUDA=0) but calling model.cu, built for CUDA:
// the library's names differ between the two (ft::abi_cpu vs ft::abi_cuda), so this must not
// link. tests/consumer/run_consumer.cmake checks that it does not.
#include "model.hpp"

int main() {
  auto model = make_model(ft::kCPU);
  return forward(*model, ft::zeros<float>({1, 64})).value().numel() == 10 ? 0 : 1;
}
