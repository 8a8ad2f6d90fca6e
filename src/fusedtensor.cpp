// The compiled-once part of fusedtensor (core/config.hpp, "Separate compilation"): the
// definitions that the headers only declare where FT_SEPARATE_COMPILATION is defined. CMake
// builds it into a static library for each configuration that a target links (ft::ft here;
// src/fusedtensor_cuda.cu for ft::ft_cuda, whose kernels only nvcc can compile).
#ifndef FT_BUILDING_LIBRARY
#define FT_BUILDING_LIBRARY
#endif
#include "ft/ft.hpp"
