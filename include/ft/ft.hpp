// The one umbrella header: everything fusedtensor offers.
#pragma once

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/dtype.hpp"
#include "ft/core/error.hpp"
#include "ft/core/print.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/stats.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/exec/assign.hpp"
#include "ft/exec/factories.hpp"
#include "ft/exec/fast_divmod.hpp"
#include "ft/exec/reduce.hpp"
#include "ft/expr/operators.hpp"
