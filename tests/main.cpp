// The test runner. The CUDA copy of the suite (compiled by nvcc) runs every test on the CPU
// and on each GPU; on a machine without a GPU it reports itself skipped (exit code 77,
// which CTest shows as "Skipped"), never passed.
//
// The CPU suites share one compiled copy (tests/CMakeLists.txt: ft_test_main), which includes
// doctest alone; the GPU copies (FT_CUDA=1) also ask for a device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#if defined(FT_CUDA) && FT_CUDA
#include "common.hpp"
#endif

int main(int argc, char** argv) {
#if defined(FT_CUDA) && FT_CUDA
  if (!ft::cuda::is_available()) {
    std::printf("SKIPPED: no CUDA device or driver on this machine; the GPU tests did not run\n");
    return 77;
  }
  std::printf("running on cpu and %d CUDA device(s)\n", ft::cuda::device_count());
#endif
  doctest::Context context(argc, argv);
  return context.run();
}
