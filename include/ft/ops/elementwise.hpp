// Every elementwise op family, and their ops gathered for the completeness tests
// (tests/test_gradcheck.cpp: each op has an adjoint rule and a gradcheck case).
#pragma once

#include "ft/core/config.hpp"
#include "ft/ops/activation.hpp"
#include "ft/ops/arithmetic.hpp"
#include "ft/ops/common.hpp"
#include "ft/ops/comparison.hpp"
#include "ft/ops/composite.hpp"
#include "ft/ops/unary_math.hpp"

namespace ft::inline FT_ABI::op {
using UnaryOps = concat_t<UnaryMathOps, ActivationOps, ArithmeticUnaryOps, ComparisonUnaryOps, List<CastTo<double>>>;
using BinaryOps = concat_t<ArithmeticBinaryOps, ComparisonBinaryOps>;
}  // namespace ft::inline FT_ABI::op
