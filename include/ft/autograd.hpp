// Reverse-mode autodiff: ft::Var, the statement tape, the adjoint rules, boundary ops on Vars,
// user functions and gradcheck.
#pragma once

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/function.hpp"
#include "ft/autograd/functional.hpp"
#include "ft/autograd/gradcheck.hpp"
#include "ft/autograd/statement.hpp"
#include "ft/autograd/var.hpp"
