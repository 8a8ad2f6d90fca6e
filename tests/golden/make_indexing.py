#!/usr/bin/env python3
"""Writes tests/golden/indexing.txt: PyTorch's results for ft/ops/indexing.hpp.

For each case (torch.manual_seed(case index) first): the float inputs (<case>.in<k>, float64),
the integer and bool inputs (<case>.idx<k>, int64), the output (<case>.out), and for the cases
with a gradient a random r of the output's shape (<case>.r) and the gradients of (out * r).sum()
for each float input (<case>.grad<k>).

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_indexing.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

warnings.filterwarnings("ignore", message="scatter_reduce")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "indexing.txt")


def t(v):
    return torch.tensor(v, dtype=torch.int64)


def randint_float(*shape):
    """Integer-valued doubles in [-2, 2]: ties for amax/amin."""
    return torch.randint(-2, 3, shape).double()


SCATTER_IDX = [[0, 2, 0, 0], [4, 1, 4, 1], [3, 3, 3, 3]]

# name, float inputs (shapes, or a function making the tensor), index inputs, function
CASES = [
    ("index_select", [(3, 4, 5)], [t([2, 0, 2, 3])], lambda x, i: x.index_select(1, i)),
    ("index_select_neg", [(4, 3)], [t([2, 0, 2])], lambda x, i: x.index_select(-1, i)),
    ("gather", [(3, 4)], [t([[0, 0, 3], [1, 2, 1], [3, 3, 0]])], lambda x, i: torch.gather(x, 1, i)),
    ("gather_dim0", [(3, 4)], [t([[2, 0, 1, 2], [0, 0, 2, 1]])], lambda x, i: torch.gather(x, -2, i)),
    ("take_along_dim", [(3, 4)], [t([[3, 0], [1, 1], [2, 3]])], lambda x, i: torch.take_along_dim(x, i, 1)),
    ("take_along_dim_bcast", [(1, 4)], [t([[3, 0], [1, 1], [2, 3]])], lambda x, i: torch.take_along_dim(x, i, 1)),
    ("take_along_dim_flat", [(3, 4)], [t([[11, 0], [5, 5]])], lambda x, i: torch.take_along_dim(x, i)),
    ("scatter", [(3, 5), (3, 2)], [t([[0, 2], [4, 1], [3, 0]])], lambda x, s, i: torch.scatter(x, 1, i, s)),
    ("scatter_value", [(3, 5)], [t([[0, 2], [4, 1], [3, 0]])], lambda x, i: torch.scatter(x, 1, i, 1.5)),
    ("scatter_add", [(3, 5), (3, 4)], [t(SCATTER_IDX)], lambda x, s, i: torch.scatter_add(x, 1, i, s)),
    ("scatter_add_dim0", [(4, 3), (2, 3)], [t([[3, 0, 3], [3, 1, 0]])], lambda x, s, i: torch.scatter_add(x, 0, i, s)),
    ("index_add", [(4, 3), (3, 3)], [t([0, 2, 0])], lambda x, s, i: torch.index_add(x, 0, i, s, alpha=2)),
    ("index_add_dim1", [(3, 4), (3, 3)], [t([3, 3, 1])], lambda x, s, i: torch.index_add(x, -1, i, s)),
    ("index_put_acc", [(4, 3), (3, 3)], [t([0, 2, 0])], lambda x, v, i: x.index_put((i,), v, accumulate=True)),
    ("index_put_two", [(4, 3, 2), (2,)], [t([0, -1]), t([2, 0])], lambda x, v, i, j: x.index_put((i, j), v)),
    ("index", [(4, 3, 2)], [t([[0, 3], [0, 1]]), t([2, 0])], lambda x, i, j: x[i, j]),
    ("masked_fill", [(3, 4)], [t([1, 0, 1, 0])], lambda x, m: x.masked_fill(m.bool(), 0.5)),
    ("masked_select", [(3, 4)], [t([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]])],
     lambda x, m: torch.masked_select(x, m.bool())),
    ("masked_select_bcast", [(1, 4)], [t([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]])],
     lambda x, m: torch.masked_select(x, m.bool())),
]
for reduce in ["sum", "mean", "amax", "amin", "prod"]:
    for include_self in [True, False]:
        CASES.append(("scatter_reduce_%s_%s" % (reduce, "self" if include_self else "noself"),
                      [lambda: randint_float(3, 5), lambda: randint_float(3, 4)], [t(SCATTER_IDX)],
                      lambda x, s, i, r=reduce, inc=include_self: torch.scatter_reduce(x, 1, i, s, r,
                                                                                       include_self=inc)))

# bool masks (given as int64, made bool in the function): x[mask] = v, x[mask] += v, x[mask]
MASK2 = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]]
CASES += [
    ("index_put_mask", [(4, 3), (3, 3)], [t([1, 0, 1, 1])], lambda x, v, m: x.index_put((m.bool(),), v)),
    ("index_put_mask_acc_bcast", [(3, 4, 2), (2,)], [t(MASK2)],
     lambda x, v, m: x.index_put((m.bool(),), v, accumulate=True)),
    ("index_mask", [(3, 4, 2)], [t(MASK2)], lambda x, m: x[m.bool()]),
]

# integer and bool cases (no gradient): name, inputs (int64), function
INT_CASES = [
    ("one_hot", [t([[0, 4, 2], [1, 1, 3]])], lambda c: F.one_hot(c, 5)),
    ("one_hot_infer", [t([[0, 4, 2], [1, 1, 3]])], lambda c: F.one_hot(c)),
    ("nonzero", [t([[0, 3, 0, 1], [0, 0, 0, 0], [2, 0, 5, 0]])], lambda x: torch.nonzero(x)),
    ("gather_int", [t([[1, -2, 3, 4], [5, 6, -7, 8]]), t([[3, 3], [0, 2]])], lambda x, i: torch.gather(x, 1, i)),
    ("scatter_add_int", [t([[1, 2, 3], [4, 5, 6]]), t([[0, 0, 2], [1, 1, 1]]), t([[7, 8, 9], [10, 11, 13]])],
     lambda x, i, s: torch.scatter_add(x, 1, i, s)),
    ("scatter_mean_int", [t([[1, 2, 3], [4, 5, 6]]), t([[0, 0, 2], [1, 1, 1]]), t([[7, 8, 9], [10, 11, 13]])],
     lambda x, i, s: torch.scatter_reduce(x, 1, i, s, "mean")),
    ("scatter_mean_int_neg", [t([[-1, -2, -3], [-4, -5, -6]]), t([[0, 0, 2], [1, 1, 1]]),
                              t([[-7, -8, -9], [-10, -11, -13]])],
     lambda x, i, s: torch.scatter_reduce(x, 1, i, s, "mean", include_self=False)),
]


def main():
    with open(OUT, "w") as f:
        f.write("# PyTorch %s: tests/golden/make_indexing.py\n" % torch.__version__)
        for n, (name, shapes, idx, fn) in enumerate(CASES):
            torch.manual_seed(n)
            xs = []
            for s in shapes:
                x = s() if callable(s) else torch.randn(*s, dtype=torch.float64)
                xs.append(x.requires_grad_(True))
            out = fn(*xs, *idx)
            r = torch.randn(out.shape, dtype=torch.float64)
            (out * r).sum().backward()
            for k, x in enumerate(xs):
                write(f, "%s.in%d" % (name, k), x)
                write(f, "%s.grad%d" % (name, k), x.grad)
            for k, i in enumerate(idx):
                write(f, "%s.idx%d" % (name, k), i)
            write(f, name + ".out", out)
            write(f, name + ".r", r)
        for name, inputs, fn in INT_CASES:
            for k, i in enumerate(inputs):
                write(f, "%s.idx%d" % (name, k), i)
            write(f, name + ".out", fn(*inputs))


if __name__ == "__main__":
    main()
