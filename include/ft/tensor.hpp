// Tensors, elementwise expressions and their fusion, reductions, linear algebra (matmul, conv,
// pooling, row-wise ops) and autograd: ft/ft.hpp without nn, optim, data, io and utils, for a
// file that wants less to compile.
#pragma once

#include "ft/autograd.hpp"
#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/dtype.hpp"
#include "ft/core/error.hpp"
#include "ft/core/print.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/device_query.hpp"
#include "ft/cuda/graph.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/factories.hpp"
#include "ft/exec/fast_divmod.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/linalg/conv.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/linalg/pool.hpp"
#include "ft/linalg/rowwise.hpp"
#include "ft/ops/elementwise.hpp"
#include "ft/ops/reduction.hpp"
#include "ft/version.hpp"
