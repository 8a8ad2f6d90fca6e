# Detects a usable CUDA compiler. Sets FT_HAS_CUDA; when ON, the CUDA language is enabled
# and CMAKE_CUDA_ARCHITECTURES defaults to 90 (H100/H200) when the user sets none.
include(CheckLanguage)
set(FT_HAS_CUDA OFF)
if(FT_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(FT_HAS_CUDA ON)
    # cuDNN for conv2d on CUDA (CMake 3.25's FindCUDAToolkit has no CUDA::cudnn target).
    # Without it the CUDA builds still compile; conv2d on a GPU then throws.
    find_library(FT_CUDNN_LIB cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
    find_path(FT_CUDNN_INCLUDE cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
    if(FT_CUDNN_LIB AND FT_CUDNN_INCLUDE)
      message(STATUS "fusedtensor: cuDNN ${FT_CUDNN_LIB}")
    else()
      message(WARNING "fusedtensor: cuDNN not found; conv2d on CUDA will throw")
    endif()
  endif()
endif()
message(STATUS "fusedtensor: CUDA ${FT_HAS_CUDA}")

# FT_GPU_VISIBLE: a GPU answers `nvidia-smi -L` at configure time. The nvcc copies of benches
# and training examples (slow to compile, useless without a GPU) default to it.
set(FT_GPU_VISIBLE OFF)
find_program(FT_NVIDIA_SMI nvidia-smi)
if(FT_HAS_CUDA AND FT_NVIDIA_SMI)
  execute_process(COMMAND ${FT_NVIDIA_SMI} -L RESULT_VARIABLE smi_rc OUTPUT_QUIET ERROR_QUIET)
  if(smi_rc EQUAL 0)
    set(FT_GPU_VISIBLE ON)
  endif()
endif()

# ft_cuda_copy_sources(<var> <target> <sources...>): sets <var> to a generated .cu file for each
# C++ source, one that includes it, so that nvcc compiles the same file.
function(ft_cuda_copy_sources var target)
  set(cu_sources)
  foreach(src IN LISTS ARGN)
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(name ${src} NAME_WE)
    set(cu ${CMAKE_CURRENT_BINARY_DIR}/${target}_cu/${name}.cu)
    file(CONFIGURE OUTPUT ${cu} CONTENT "#include \"${abs}\"\n")
    list(APPEND cu_sources ${cu})
  endforeach()
  set(${var} ${cu_sources} PARENT_SCOPE)
endfunction()

# ft_add_cuda_copy(<target> <sources...>): an executable whose sources are the given C++
# files compiled by nvcc.
function(ft_add_cuda_copy target)
  ft_cuda_copy_sources(cu_sources ${target} ${ARGN})
  add_executable(${target} ${cu_sources})
  target_link_libraries(${target} PRIVATE ft::ft_cuda)
endfunction()
