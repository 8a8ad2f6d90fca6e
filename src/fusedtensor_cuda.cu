// The compiled-once part of ft::ft_cuda: src/fusedtensor.cpp compiled by nvcc, so that the
// kernels it instantiates (the optimizers' steps, gradient clipping) are compiled here once.
#include "fusedtensor.cpp"
