// Optimizers and learning-rate schedulers, as torch.optim.
#pragma once

#include "ft/nn/clip_grad.hpp"
#include "ft/optim/adam.hpp"
#include "ft/optim/grad_scaler.hpp"
#include "ft/optim/lbfgs.hpp"
#include "ft/optim/lr_scheduler.hpp"
#include "ft/optim/optimizer.hpp"
#include "ft/optim/rmsprop.hpp"
#include "ft/optim/sgd.hpp"
