#!/usr/bin/env python3
"""Writes tests/golden/ordering.txt: PyTorch's results for ft/ops/ordering.hpp.

For each case (torch.manual_seed(case index) first): the input (<case>.in, float64 or int64),
the values (<case>.out) and indices (<case>.idx, when the op has them), and for float inputs a
random r of the output's shape (<case>.r) and the gradient of (out * r).sum() (<case>.grad).
Inputs with ties are integer-valued, so that the stable order is what is checked; topk and
kthvalue cases have distinct values (torch does not fix their order among ties).

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_ordering.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import os
import sys

import torch

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ordering.txt")


def ties(*shape):
    return torch.randint(-3, 4, shape).double()


def distinct(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def with_zeros():
    x = torch.rand(4, 5, dtype=torch.float64) + 0.5
    x[0, 2] = 0  # one zero
    x[1, 1] = 0  # two zeros
    x[1, 3] = 0
    x[2, 4] = 0  # a zero at the end; row 3 has none
    return x


def with_nan():
    x = ties(2, 6)
    x[0, 1] = float("nan")
    x[0, 4] = float("nan")
    x[1, 0] = float("nan")
    x[1, 3] = -0.0
    return x


def cum_inf():
    x = distinct(2, 5)
    x[0, 0] = float("-inf")
    x[1, 2] = float("-inf")
    return x


# name, input maker, function of the input returning a tensor or (values, indices), differentiable
CASES = [
    ("sort_ties", lambda: ties(3, 7), lambda x: torch.sort(x, dim=1, stable=True), True),
    ("sort_desc_dim0", lambda: ties(5, 3), lambda x: torch.sort(x, dim=-2, descending=True, stable=True), True),
    ("sort_3d", lambda: distinct(2, 4, 3), lambda x: torch.sort(x, dim=1), True),
    ("sort_nan", with_nan, lambda x: torch.sort(x, dim=1, stable=True), False),
    ("sort_nan_desc", with_nan, lambda x: torch.sort(x, dim=1, descending=True, stable=True), False),
    ("argsort_int", lambda: ties(3, 6).long(), lambda x: torch.argsort(x, dim=1, stable=True), False),
    ("topk", lambda: distinct(3, 6), lambda x: torch.topk(x, 3, dim=1), True),
    ("topk_smallest_dim0", lambda: distinct(5, 4), lambda x: torch.topk(x, 2, dim=0, largest=False), True),
    ("topk_int", lambda: torch.randperm(12).reshape(2, 6), lambda x: torch.topk(x, 4), False),
    ("kthvalue", lambda: distinct(4, 5), lambda x: torch.kthvalue(x, 2, dim=1), True),
    ("kthvalue_keepdim", lambda: distinct(4, 5), lambda x: torch.kthvalue(x, 3, dim=0, keepdim=True), True),
    ("cumsum", lambda: distinct(3, 4), lambda x: torch.cumsum(x, 1), True),
    ("cumsum_dim0", lambda: distinct(2, 3, 4), lambda x: torch.cumsum(x, -3), True),
    ("cumsum_int", lambda: ties(3, 4).long(), lambda x: torch.cumsum(x, 1), False),
    ("cumprod", lambda: distinct(3, 4), lambda x: torch.cumprod(x, 1), True),
    ("cumprod_zeros", with_zeros, lambda x: torch.cumprod(x, 1), True),
    ("cumprod_int", lambda: ties(3, 4).long(), lambda x: torch.cumprod(x, 0), False),
    ("cummax", lambda: ties(3, 7), lambda x: torch.cummax(x, 1), True),
    ("cummin_dim0", lambda: ties(6, 3), lambda x: torch.cummin(x, 0), True),
    ("cummax_nan", with_nan, lambda x: torch.cummax(x, 1), False),
    ("cummin_int", lambda: ties(2, 7).long(), lambda x: torch.cummin(x, 1), False),
    ("logcumsumexp", lambda: distinct(3, 5), lambda x: torch.logcumsumexp(x, 1), True),
    ("logcumsumexp_dim0", lambda: distinct(4, 3), lambda x: torch.logcumsumexp(x, 0), True),
    ("logcumsumexp_inf", cum_inf, lambda x: torch.logcumsumexp(x, 1), False),
]


def main():
    with open(OUT, "w") as f:
        f.write("# PyTorch %s: tests/golden/make_ordering.py\n" % torch.__version__)
        for i, (name, make, fn, differentiable) in enumerate(CASES):
            torch.manual_seed(i)
            x = make()
            if differentiable:
                x.requires_grad_(True)
            res = fn(x)
            values, indices = (res, None) if isinstance(res, torch.Tensor) else (res[0], res[1])
            write(f, name + ".in", x)
            if name.startswith("argsort"):
                write(f, name + ".idx", values)
                continue
            write(f, name + ".out", values)
            if indices is not None:
                write(f, name + ".idx", indices)
            if differentiable:
                r = torch.randn(values.shape, dtype=torch.float64)
                (values * r).sum().backward()
                write(f, name + ".r", r)
                write(f, name + ".grad", x.grad)
        torch.manual_seed(100)
        x = ties(4, 5).long()
        values, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
        write(f, "unique_int.in", x)
        write(f, "unique_int.out", values)
        write(f, "unique_int.inverse", inverse)
        write(f, "unique_int.counts", counts)
        x = torch.tensor([[2.5, -0.0, 1.0], [0.0, 2.5, -1.0]], dtype=torch.float64)
        values, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
        write(f, "unique_float.in", x)
        write(f, "unique_float.out", values)
        write(f, "unique_float.inverse", inverse)
        write(f, "unique_float.counts", counts)


if __name__ == "__main__":
    main()
