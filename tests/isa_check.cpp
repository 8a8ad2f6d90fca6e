// FT_CPU_ISA=host's start-up check (core/config.hpp): this program's CPU loops are built for
// x86-64-v4 whatever the build machine is. On a CPU with AVX-512 it runs a fused statement and
// prints "isa check ok"; on one without (CTest runs it on qemu-user's emulated Haswell) it must
// stop at start-up with a message naming FT_CPU_ISA, not at an illegal instruction.
#undef FT_CPU_HOST_ISA
#define FT_CPU_HOST_ISA 4
#include <cmath>
#include <cstdio>

#include "ft/tensor.hpp"

int main() {
  auto a = ft::arange<float>(0, 1000);
  ft::Tensor<float, 1> y = ft::exp(-a) * 2.0f + a;  // one fused loop, the AVX-512 one
  if (std::fabs(y.to_vector()[3] - (2.0f * std::exp(-3.0f) + 3.0f)) > 1e-5f) return 1;
  std::printf("isa check ok: loops %s\n", FT_CPU_LOOPS);
  return 0;
}
