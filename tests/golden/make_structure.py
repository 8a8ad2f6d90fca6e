#!/usr/bin/env python3
"""Writes tests/golden/structure.txt: PyTorch's results for ft/ops/structure.hpp.

For each case (torch.manual_seed(case index) first): the inputs (<case>.in<k>, float64), the
output (<case>.out), a random r of the output's shape (<case>.r) and the gradients of
(out * r).sum() for each input (<case>.grad<k>).

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_structure.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "structure.txt")

# name, input shapes, function of the inputs
CASES = [
    ("flip", [(2, 3, 4)], lambda x: torch.flip(x, (0, 2))),
    ("roll", [(3, 4)], lambda x: torch.roll(x, (1, -2), (0, 1))),
    ("roll_flat", [(3, 4)], lambda x: torch.roll(x, 5)),
    ("repeat", [(2, 3)], lambda x: x.repeat(2, 1, 3)),
    ("tile", [(2, 3)], lambda x: torch.tile(x, (2,))),
    ("pad_constant", [(2, 3, 4)], lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)),
    ("pad_crop", [(2, 3, 4)], lambda x: F.pad(x, (-1, 1, 2, -1))),
    ("pad_reflect", [(1, 2, 4, 5)], lambda x: F.pad(x, (2, 1, 1, 3), mode="reflect")),
    ("pad_replicate", [(1, 2, 3, 4)], lambda x: F.pad(x, (2, 3, 1, 2), mode="replicate")),
    ("pad_circular", [(1, 2, 3, 4)], lambda x: F.pad(x, (1, 2, 3, 0), mode="circular")),
    ("pixel_shuffle", [(1, 8, 2, 3)], lambda x: F.pixel_shuffle(x, 2)),
    ("pixel_unshuffle", [(1, 2, 4, 6)], lambda x: F.pixel_unshuffle(x, 2)),
    ("nearest", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(7, 4), mode="nearest")),
    ("nearest_exact", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(5, 8), mode="nearest-exact")),
    ("nearest_scale", [(1, 2, 3, 4)], lambda x: F.interpolate(x, scale_factor=(2.0, 1.5), mode="nearest")),
    ("tril", [(2, 4, 5)], lambda x: torch.tril(x, 1)),
    ("triu", [(2, 4, 5)], lambda x: torch.triu(x, -1)),
    ("diagonal", [(3, 4, 5)], lambda x: torch.diagonal(x, 1, 0, 2)),
    ("diag_vector", [(3,)], lambda x: torch.diag(x, -1)),
    ("diag_matrix", [(4, 5)], lambda x: torch.diag(x, 2)),
    ("trace", [(4, 4)], lambda x: torch.trace(x)),
    ("cat0", [(2, 3), (4, 3), (1, 3)], lambda a, b, c: torch.cat([a, b, c], 0)),
    ("cat_last", [(2, 3), (2, 1)], lambda a, b: torch.cat([a, b], -1)),
    ("stack", [(2, 3), (2, 3), (2, 3)], lambda a, b, c: torch.stack([a, b, c], 1)),
    ("bilinear", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(7, 4), mode="bilinear")),
    ("bilinear_align", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(4, 9), mode="bilinear", align_corners=True)),
    ("bilinear_scale", [(1, 2, 4, 5)], lambda x: F.interpolate(x, scale_factor=(1.75, 0.6), mode="bilinear")),
    ("linear", [(2, 3, 5)], lambda x: F.interpolate(x, size=(8,), mode="linear")),
    ("trilinear", [(1, 1, 2, 3, 4)], lambda x: F.interpolate(x, size=(3, 5, 2), mode="trilinear")),
    ("bicubic", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(7, 4), mode="bicubic")),
    ("bicubic_align", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(4, 9), mode="bicubic", align_corners=True)),
    ("bicubic_scale", [(2, 1, 4, 5)], lambda x: F.interpolate(x, scale_factor=(1.75, 0.6), mode="bicubic")),
    ("bicubic_one", [(1, 1, 1, 6)], lambda x: F.interpolate(x, size=(3, 2), mode="bicubic", align_corners=True)),
    ("aa_bilinear", [(1, 2, 9, 7)], lambda x: F.interpolate(x, size=(4, 3), mode="bilinear", antialias=True)),
    ("aa_bilinear_up", [(1, 2, 3, 5)], lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", antialias=True)),
    ("aa_bilinear_align", [(1, 2, 9, 7)],
     lambda x: F.interpolate(x, size=(4, 3), mode="bilinear", align_corners=True, antialias=True)),
    ("aa_bilinear_big", [(1, 1, 40, 33)], lambda x: F.interpolate(x, size=(5, 4), mode="bilinear", antialias=True)),
    ("aa_bicubic", [(1, 2, 9, 7)], lambda x: F.interpolate(x, size=(4, 3), mode="bicubic", antialias=True)),
    ("aa_bicubic_mixed", [(2, 1, 5, 11)], lambda x: F.interpolate(x, size=(8, 3), mode="bicubic", antialias=True)),
    ("aa_bicubic_scale", [(1, 1, 10, 9)],
     lambda x: F.interpolate(x, scale_factor=(0.4, 0.7), mode="bicubic", antialias=True)),
    ("aa_bicubic_align", [(1, 2, 9, 7)],
     lambda x: F.interpolate(x, size=(4, 3), mode="bicubic", align_corners=True, antialias=True)),
]


def main():
    with open(OUT, "w") as f:
        f.write("# PyTorch %s: tests/golden/make_structure.py\n" % torch.__version__)
        for i, (name, shapes, fn) in enumerate(CASES):
            torch.manual_seed(i)
            xs = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
            out = fn(*xs)
            r = torch.randn(out.shape, dtype=torch.float64)
            (out * r).sum().backward()
            for k, x in enumerate(xs):
                write(f, "%s.in%d" % (name, k), x)
                write(f, "%s.grad%d" % (name, k), x.grad)
            write(f, name + ".out", out)
            write(f, name + ".r", r)
        write(f, "eye", torch.eye(3, 5, dtype=torch.float64))


if __name__ == "__main__":
    main()
