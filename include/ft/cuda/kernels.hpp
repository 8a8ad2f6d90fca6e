// How a CUDA build runs a kernel from any translation unit. Kernels compile under nvcc only;
// a g++ file of the same CUDA build (FT_CUDA=1, core/config.hpp) sees the same types and calls
// the same launchers, found at run time among those the program's nvcc files instantiated.
//
// A kernel is a type K with `static void launch(...)`, declared in every file and defined only
// under nvcc (FT_CUDA_KERNELS). launch_kernel<K>(op, args...) calls K::launch directly under
// nvcc, which also registers &K::launch under typeid(K) at start-up; in a g++ file it looks the
// launcher up and, when no nvcc file of the program instantiated it, throws an ft::Error that
// says where the statement has to be compiled.
#pragma once

#include "ft/core/config.hpp"

#if FT_CUDA_ENABLED

#include <mutex>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>

#include "ft/core/error.hpp"

namespace ft::inline FT_ABI::detail {

struct KernelRegistry {
  std::mutex mutex;
  std::unordered_map<std::type_index, void*> launchers;
};
inline KernelRegistry& kernel_registry() {
  static KernelRegistry r;
  return r;
}
inline bool register_kernel(const std::type_info& kernel, void* launcher) {
  KernelRegistry& r = kernel_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.launchers.emplace(kernel, launcher);
  return true;
}
inline void* find_kernel(const std::type_info& kernel) {
  KernelRegistry& r = kernel_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.launchers.find(kernel);
  return it == r.launchers.end() ? nullptr : it->second;
}

#if FT_CUDA_KERNELS
// Instantiated with K::launch by every nvcc file that launches K: registered before main.
template <class K>
inline const bool kernel_registered = register_kernel(typeid(K), reinterpret_cast<void*>(&K::launch));
#endif

}  // namespace ft::inline FT_ABI::detail

namespace ft::inline FT_ABI::cuda {

// Runs kernel K's launcher with `args` (see above); `op` names the statement in the error.
template <class K, class... Args>
void launch_kernel(const char* op, Args&&... args) {
#if FT_CUDA_KERNELS
  static_cast<void>(&ft::detail::kernel_registered<K>);  // odr-used: registered at start-up
  static_cast<void>(op);                                 // named only in the g++ files' error
  K::launch(std::forward<Args>(args)...);
#else
  // decltype does not odr-use K::launch: this file needs no definition of it
  auto launcher = reinterpret_cast<decltype(&K::launch)>(ft::detail::find_kernel(typeid(K)));
  if (!launcher)
    fail(op,
         "this statement runs on a GPU, but its CUDA kernel was not compiled: kernels are compiled by nvcc, "
         "and no .cu file of this program evaluates the same statement. Evaluate it in a .cu file (a function "
         "the C++ file calls), or compile this file with nvcc");
  launcher(std::forward<Args>(args)...);
#endif
}

}  // namespace ft::inline FT_ABI::cuda

#endif  // FT_CUDA_ENABLED
