// The gradcheck case table shared by test_gradcheck*.cpp: each file registers its cases at
// start-up; test_gradcheck.cpp runs them all and checks that every op has one.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common.hpp"

namespace ft::test::gradcheck_cases {

using ft::index_t;
using ft::test::random_tensor;

template <std::size_t R>
ft::Var<double, static_cast<int>(R)> leaf(const index_t (&shape)[R], unsigned seed, double lo = -2, double hi = 2) {
  return {random_tensor<double>(shape, ft::kCPU, seed, lo, hi), ft::requires_grad};
}

struct Case {
  std::string name;
  std::function<ft::GradcheckResult()> run;
};

// f applied to one [3, 4] input with values in (lo, hi); the result materialised as one statement.
template <class F>
Case unary(std::string name, F f, double lo = -2, double hi = 2, ft::GradcheckOptions opt = {}) {
  return {name, [=] {
            auto x = leaf({3, 4}, 11, lo, hi);
            return ft::gradcheck([&](const auto& a) { return ft::Var<double, 2>(f(a)); }, x, opt);
          }};
}
// f of two inputs of the given shapes (broadcasting), values in (lo, hi) and (lo2, hi2).
template <std::size_t RA, std::size_t RB, class F>
Case binary(std::string name, const index_t (&sa)[RA], const index_t (&sb)[RB], F f, double lo = -2, double hi = 2,
            double lo2 = -2, double hi2 = 2) {
  std::vector<index_t> va(sa, sa + RA), vb(sb, sb + RB);
  return {name, [=] {
            index_t a_[RA], b_[RB];
            std::copy(va.begin(), va.end(), a_);
            std::copy(vb.begin(), vb.end(), b_);
            auto x = leaf(a_, 21, lo, hi);
            auto y = leaf(b_, 22, lo2, hi2);
            return ft::gradcheck(
                [&](const auto& a, const auto& b) {
                  auto e = f(a, b);
                  return ft::Var<double, decltype(e)::rank>(e);
                },
                x, y);
          }};
}
// Any function of one input of shape `s`; f returns a Var.
template <std::size_t R, class F>
Case general(std::string name, const index_t (&s)[R], F f, double lo = -2, double hi = 2) {
  std::vector<index_t> v(s, s + R);
  return {name, [=] {
            index_t s_[R];
            std::copy(v.begin(), v.end(), s_);
            auto x = leaf(s_, 31, lo, hi);
            return ft::gradcheck(f, x);
          }};
}

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

}  // namespace ft::test::gradcheck_cases
