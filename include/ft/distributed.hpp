// Data-parallel training across processes: the process group and its collectives over MPI
// (CPU tensors) and NCCL (CUDA tensors), and DistributedDataParallel. Link the CMake target
// ft::distributed (ft::distributed_cuda for NCCL) and start the program with mpirun.
#pragma once

#include "ft/distributed/ddp.hpp"
#include "ft/distributed/process_group.hpp"
