// Neural-network modules, initialisers, losses and gradient clipping, as torch.nn.
#pragma once

#include "ft/nn/attention.hpp"
#include "ft/nn/clip_grad.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/layers.hpp"
#include "ft/nn/loss.hpp"
#include "ft/nn/module.hpp"
#include "ft/nn/parameter.hpp"
#include "ft/nn/recurrent.hpp"
#include "ft/nn/state_dict.hpp"
