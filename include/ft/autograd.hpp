// Reverse-mode autodiff: ft::Var, the statement tape, the adjoint rules, boundary ops on Vars,
// user functions and gradcheck.
#pragma once

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/function.hpp"
#include "ft/autograd/gradcheck.hpp"
#include "ft/autograd/statement.hpp"
#include "ft/autograd/var.hpp"
// the boundary ops on Vars live beside their forwards
#include "ft/linalg/conv.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/linalg/pool.hpp"
#include "ft/linalg/rowwise.hpp"
