// Version and device queries.
#include <doctest/doctest.h>

#include "common.hpp"
#include "ft/cuda/device_query.hpp"
#include "ft/version.hpp"

TEST_CASE("version_info names the library version and what the build uses") {
  const ft::VersionInfo v = ft::version_info();
  CHECK(v.library == FT_VERSION_STRING);
  CHECK(v.library == std::to_string(FT_VERSION_MAJOR) + "." + std::to_string(FT_VERSION_MINOR) + "." +
                         std::to_string(FT_VERSION_PATCH));
  CHECK(!v.compiler.empty());
  CHECK(v.cuda_compiled == bool(FT_CUDA_ENABLED));
  const std::string text = ft::to_string(v);
  CHECK(text.find("fusedtensor " FT_VERSION_STRING) == 0);
  CHECK(text.find("OpenMP") != std::string::npos);
  CHECK(text.find("CPU BLAS") != std::string::npos);
  CHECK(text.find("bf16 GEMM") != std::string::npos);
  CHECK(v.cpu_loops == FT_CPU_LOOPS);  // how this file's CPU loops were compiled (FT_CPU_ISA)
  CHECK(text.find("CPU loops     " + v.cpu_loops) != std::string::npos);
#if defined(FT_HAVE_CBLAS)
  // OpenBLAS names itself when its library is loaded; a binary that never calls BLAS may not load it
  CHECK((v.blas.find("OpenBLAS") != std::string::npos || v.blas.find("CBLAS") != std::string::npos));
#endif
}

TEST_CASE("device queries: properties of each GPU, or a reason there is none") {
  const std::string reason = ft::cuda::availability_reason();
  CHECK(!reason.empty());
  const int n = ft::cuda::device_count();
  if (n == 0) {
    CHECK(reason.find("usable") == std::string::npos);
    CHECK_THROWS_AS(ft::cuda::device_properties(0), ft::Error);
  }
  for (int i = 0; i < n; ++i) {
    auto p = ft::cuda::device_properties(i);
    CHECK(p.index == i);
    CHECK(!p.name.empty());
    CHECK(p.major >= 3);
    CHECK(p.multiprocessors > 0);
    CHECK(p.total_memory > 0);
    CHECK(p.warp_size == 32);
  }
  CHECK_THROWS_AS(ft::cuda::device_properties(n), ft::Error);
}
