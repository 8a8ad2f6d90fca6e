// The library's version and what it runs on: compiler, CUDA runtime and driver, cuBLAS, cuDNN,
// OpenMP and the CPU BLAS (PyTorch's collect_env, for one program).
#pragma once

#include <dlfcn.h>

#include <ostream>
#include <sstream>
#include <string>

#include "ft/core/config.hpp"
#include "ft/cuda/cudnn.hpp"
#include "ft/cuda/runtime.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(FT_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.h>
#endif
#if FT_CUDA_ENABLED
#include <cublas_v2.h>
#endif

#define FT_VERSION_MAJOR 0
#define FT_VERSION_MINOR 1
#define FT_VERSION_PATCH 0
#define FT_VERSION_STRING "0.1.0"

namespace ft::inline FT_ABI {

struct VersionInfo {
  std::string library = FT_VERSION_STRING;
  std::string compiler;
  bool cuda_compiled = false;
  int cuda_runtime = 0, cuda_driver = 0;  // 12080 = 12.8; driver 0: no driver
  int cublas = 0;                         // 0: not available
  int cudnn_compiled = 0, cudnn_loaded = 0;
  std::string openmp;  // "5.0 (201811), 2 threads" or "off"
  std::string blas;
  std::string bf16_gemm;                 // how a bfloat16 product runs on the CPU
  std::string cpu_loops = FT_CPU_LOOPS;  // how the fused CPU loops were compiled (FT_CPU_ISA)
};

namespace detail {

inline std::string cuda_version_string(int v) {
  return v ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : std::string("none");
}

// cuDNN's run-time version without linking it: ft-info must start (and say so) without cuDNN.
inline int loaded_cudnn_version() {
#if FT_CUDNN_ENABLED
  return static_cast<int>(cudnnGetVersion());
#else
  for (const char* lib : {"libcudnn.so.9", "libcudnn.so"}) {
    if (void* h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL)) {
      using Fn = std::size_t (*)();
      auto fn = reinterpret_cast<Fn>(dlsym(h, "cudnnGetVersion"));
      const int v = fn ? static_cast<int>(fn()) : 0;
      dlclose(h);
      return v;
    }
  }
  return 0;
#endif
}

}  // namespace detail

inline VersionInfo version_info() {
  VersionInfo v;
#if defined(__clang__)
  v.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  v.compiler = "g++ " __VERSION__;
#else
  v.compiler = "unknown";
#endif
#if FT_CUDA_KERNELS
  v.compiler = "nvcc " + std::to_string(__CUDACC_VER_MAJOR__) + "." + std::to_string(__CUDACC_VER_MINOR__) + " with " +
               v.compiler;
#endif
#if FT_CUDA_ENABLED
  v.cuda_compiled = true;
  (void)cudaRuntimeGetVersion(&v.cuda_runtime);
  (void)cudaDriverGetVersion(&v.cuda_driver);
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    v.cublas = major * 10000 + minor * 100 + patch;
#endif
#if FT_CUDNN_ENABLED
  v.cudnn_compiled = CUDNN_VERSION;
#endif
  v.cudnn_loaded = detail::loaded_cudnn_version();
#if defined(_OPENMP)
  const int spec = _OPENMP;
  const char* name = spec >= 202011 ? "5.1" : spec >= 201811 ? "5.0" : spec >= 201511 ? "4.5" : "4.0 or older";
  v.openmp =
      std::string(name) + " (" + std::to_string(spec) + "), " + std::to_string(omp_get_max_threads()) + " threads";
#else
  v.openmp = "off (compiled without -fopenmp: CPU loops run on one thread)";
#endif
#if defined(FT_HAVE_CBLAS)
  using Config = char* (*)();
  if (auto config = reinterpret_cast<Config>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    v.blas = config();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
  else
    v.blas = "a CBLAS (cblas_sgemm)";
#else
  v.blas = "none: matmul uses fusedtensor's blocked kernel";
#endif
#if defined(FT_HAVE_DNNL)
  const dnnl_version_t* dv = dnnl_version();
  v.bf16_gemm = "oneDNN " + std::to_string(dv->major) + "." + std::to_string(dv->minor) + "." +
                std::to_string(dv->patch) +
                (dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_amx
                     ? std::string(" on AMX")
                     : std::string(" found, but no AMX on this CPU: operands widened to float"));
#else
  v.bf16_gemm = "operands widened to float (oneDNN not compiled in)";
#endif
  return v;
}

inline std::ostream& operator<<(std::ostream& os, const VersionInfo& v) {
  os << "fusedtensor " << v.library << "\n"
     << "  compiler      " << v.compiler << "\n"
     << "  CUDA runtime  " << (v.cuda_compiled ? detail::cuda_version_string(v.cuda_runtime) : "not compiled in")
     << "\n"
     << "  CUDA driver   " << (v.cuda_compiled ? detail::cuda_version_string(v.cuda_driver) : "-") << "\n"
     << "  cuBLAS        "
     << (v.cublas ? std::to_string(v.cublas / 10000) + "." + std::to_string(v.cublas / 100 % 100) + "." +
                        std::to_string(v.cublas % 100)
                  : std::string("-"))
     << "\n"
     << "  cuDNN         "
     << (v.cudnn_loaded ? std::to_string(v.cudnn_loaded / 10000) + "." + std::to_string(v.cudnn_loaded / 100 % 100) +
                              "." + std::to_string(v.cudnn_loaded % 100)
                        : std::string("not found"))
     << (v.cudnn_compiled ? " (compiled against " + std::to_string(v.cudnn_compiled) + ")" : std::string()) << "\n"
     << "  OpenMP        " << v.openmp << "\n"
     << "  CPU BLAS      " << v.blas << "\n"
     << "  bf16 GEMM     " << v.bf16_gemm << "\n"
     << "  CPU loops     " << v.cpu_loops << "\n";
  return os;
}

inline std::string to_string(const VersionInfo& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace ft::inline FT_ABI
