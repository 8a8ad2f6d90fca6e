// ft::onnx: a model's forward exported as an ONNX file (ft/onnx/export.hpp).
#pragma once

#include "ft/onnx/export.hpp"
