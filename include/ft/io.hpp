// ft::io: safetensors, NumPy .npy, checkpoints.
#pragma once

#include "ft/io/checkpoint.hpp"
#include "ft/io/dlpack.hpp"
#include "ft/io/file.hpp"
#include "ft/io/npy.hpp"
#include "ft/io/safetensors.hpp"
