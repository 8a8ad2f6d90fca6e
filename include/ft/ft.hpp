// The one umbrella header: everything fusedtensor offers. ft/tensor.hpp is its core (tensors,
// ops, linear algebra, autograd); ft/nn.hpp, optim.hpp, data.hpp, io.hpp and utils.hpp the rest.
#pragma once

#include "ft/data.hpp"
#include "ft/io.hpp"
#include "ft/nn.hpp"
#include "ft/onnx.hpp"
#include "ft/optim.hpp"
#include "ft/tensor.hpp"
#include "ft/utils.hpp"
#include "ft/vision.hpp"
