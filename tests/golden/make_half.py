#!/usr/bin/env python3
"""Writes tests/golden/half.txt: PyTorch's float16 and bfloat16 conversions and ops.

Conversions are recorded as bits (int64), so NaNs and signed zeros compare exactly:
- <t>.table_hash: FNV-1a (32-bit) over the float32 bits of all 65536 values of type t, in
  bit-pattern order, every NaN written as 0x7fc00000 (the whole table, without storing it).
- <t>.from_float.in / .out: float32 bits of inputs chosen at the edges (ties to even, subnormals,
  overflow, NaN) plus random ones, and the bits of torch's conversion to t (a NaN's bits differ
  between torch's scalar and vectorised paths: only NaN-ness is compared).
Ops (torch.manual_seed(0) first; a, b are [4, 37] of type t, b away from 0):
- autocast.*: a matmul and its gradients under torch.autocast("cpu", dtype=torch.bfloat16).
- <t>.a, <t>.b: the inputs, as float values (exact), with layer_norm's <t>.w, <t>.bb and
  cross_entropy's class indices <t>.target; <t>.<op>: torch's result, as float values.
  Single ops are torch's own half kernels where torch 1.13's CPU has them, else computed in
  float and rounded once (in_float). An op with a Python number is recorded with the number in
  float (PyTorch's CUDA kernels' opmath; torch 1.13's CPU rounds it to t first). The fused statement relu(a * b + a) is recorded
  computed in float and rounded once, which is what fusedtensor promises for one statement.

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_half.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import os
import struct
import sys

import torch

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "half.txt")
TYPES = {"f16": torch.float16, "bf16": torch.bfloat16}


def f32_bits(x):
    """int64 tensor of the float32 bits of x (a float32 tensor)."""
    return x.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def fnv1a32(words):
    h = 0x811C9DC5
    for w in words:
        for k in range(4):
            h ^= (w >> (8 * k)) & 0xFF
            h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def edge_floats():
    v = []
    for e in range(-30, 17):  # around every half exponent, subnormals included
        for m in (1.0, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.5, 1.999):
            v += [m * 2.0**e, -m * 2.0**e]
    v += [0.0, -0.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e30, 3.4e38, 2**-24, 2**-25, 3 * 2**-25, 2**-26]
    v += [1 + 2**-8, 1 + 2**-8 + 2**-20, 255.5, 3.3895e38, 3.3961776e38, 1e-39, 1e-45]
    bits = [struct.unpack("<I", struct.pack("<f", x))[0] for x in v]
    bits += [0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF, 0x00000001, 0x807FFFFF]
    g = torch.Generator().manual_seed(1)
    rnd = torch.randint(0, 2**32, (2000,), generator=g, dtype=torch.int64).tolist()
    return torch.tensor(bits + rnd, dtype=torch.int64)


def in_float(op, x):
    """op in x's type where torch 1.13's CPU has the kernel, else computed in float and rounded once."""
    try:
        return op(x)
    except RuntimeError:
        return op(x.float()).to(x.dtype)


def main():
    torch.manual_seed(0)
    with open(OUT, "w") as f:
        f.write("# PyTorch " + torch.__version__ + ": tests/golden/make_half.py\n")
        for name, t in TYPES.items():
            table = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(t).float()
            table_bits = torch.where(torch.isnan(table), torch.tensor(0x7FC00000), f32_bits(table))
            write(f, f"{name}.table_hash", fnv1a32(table_bits.tolist()))
            bits = edge_floats()
            x = (bits & 0xFFFFFFFF).to(torch.int32).view(torch.float32)
            write(f, f"{name}.from_float.in", bits)
            write(f, f"{name}.from_float.out", x.to(t).view(torch.int16).to(torch.int64) & 0xFFFF)

            a = torch.randn(4, 37).to(t)
            b = (torch.rand(4, 37) + 0.5).to(t) * torch.where(torch.rand(4, 37) < 0.5, -1, 1).to(t)
            write(f, f"{name}.a", a.double())
            write(f, f"{name}.b", b.double())
            g = torch.Generator().manual_seed(2)  # its own: the draws above stay as they were
            w = (torch.rand(37, generator=g) + 0.5).to(t)  # layer_norm's weight and bias
            bb = torch.randn(37, generator=g).to(t)
            target = torch.randint(0, 37, (4,), generator=g)
            write(f, f"{name}.w", w.double())
            write(f, f"{name}.bb", bb.double())
            write(f, f"{name}.target", target)
            ops = {
                "add": a + b,
                "mul": a * b,
                "div": a / b,
                "sub_scalar": (a.float() - 0.3).to(t),
                "mul_scalar": (a.float() * 2.5).to(t),
                "exp": in_float(torch.exp, a),
                "tanh": in_float(torch.tanh, a),
                "sigmoid": in_float(torch.sigmoid, a),
                "relu": in_float(torch.relu, a),
                "sqrt_abs": in_float(torch.sqrt, torch.abs(a)),
                "sum1": in_float(lambda x: x.sum(1), a),
                "mean1": in_float(lambda x: x.mean(1), a),
                "max1": in_float(lambda x: x.max(1).values, a),
                "argmax1": a.float().argmax(1),
                "sum": in_float(torch.sum, a),
                "mean": in_float(torch.mean, a),
                "softmax1": torch.softmax(a.float(), 1).to(t),
                "to_other": a.to(torch.bfloat16 if t == torch.float16 else torch.float16),
                "to_int": (a * 100).to(torch.int64),
                "from_int": torch.tensor([65519, 65520, 70000, -65520, 257, 2049, 16777217], dtype=torch.int64).to(t),
                "fused": torch.relu(a.float() * b.float() + a.float()).to(t),
                "mm": in_float(lambda x: x @ b.to(x.dtype).t(), a),
                # row-wise composites, ordering and scans: computed in float, rounded once
                "log_softmax1": torch.log_softmax(a.float(), 1).to(t),
                "softmax0": torch.softmax(a.float(), 0).to(t),
                "layer_norm": torch.nn.functional.layer_norm(a.float(), (37,), w.float(), bb.float()).to(t),
                "cross_entropy": torch.nn.functional.cross_entropy(a.float(), target, label_smoothing=0.1).to(t),
                "sort1.values": a.sort(dim=1, descending=True, stable=True).values,
                "sort1.indices": a.float().sort(dim=1, descending=True, stable=True).indices,
                "topk1.values": a.float().topk(5, 1).values.to(t),
                "cumsum1": a.double().cumsum(1).to(t),
                "logcumsumexp1": a.float().logcumsumexp(1).to(t),
                "cummax1.values": a.float().cummax(1).values.to(t),
                "unique.values": torch.unique(a.float(), return_counts=True)[0].to(t),
                "unique.counts": torch.unique(a.float(), return_counts=True)[1],
            }
            for op, r in ops.items():
                write(f, f"{name}.{op}", r.double() if r.is_floating_point() else r)
        write_autocast(f)


def write_autocast(f):
    """torch.autocast("cpu", bfloat16): a matmul's output (bfloat16, recorded as float values), and
    the float gradients of its float operands (the backward's GEMMs in bfloat16 too)."""
    torch.manual_seed(1)
    x = torch.randn(6, 37, requires_grad=True)
    w = torch.randn(37, 5, requires_grad=True)
    r = torch.randn(6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = x @ w
    assert y.dtype == torch.bfloat16
    (y.float() * r).sum().backward()
    for name, t in {"x": x, "w": w, "r": r, "y": y.float(), "dx": x.grad, "dw": w.grad}.items():
        write(f, f"autocast.{name}", t.detach().double())


if __name__ == "__main__":
    main()
