#!/usr/bin/env python3
"""PyTorch peers of bench/bench_elementwise.cpp (issue #2), on a CUDA GPU.

The same three cases, each in eager mode and under torch.compile, timed with CUDA events,
reported as GB/s of the case's logical traffic (every input read once, the output written
once: the same definition as the C++ benches) and as a ratio to a device-to-device copy of
the same bytes measured in the same run.

    1. expr:      out = a * b + c * sigmoid(d) - e   at 2^24 and 2^26 float elements
    2. bcast:     out = x + row                      x [4096, 4096], row [4096]
    3. transpose: out = x.t() * 2 + 1                x [4096, 4096] (a strided read)

Usage:  python3 bench/torch_elementwise.py [--reps 50] [--no-compile] [--json out.json]
Needs a CUDA GPU and PyTorch >= 2.0 (for torch.compile).
"""

import argparse
import json
import statistics
import sys

import torch

SIDE = 4096
FLOAT_BYTES = 4


def time_ms(fn, reps, warmup=5):
    """Median milliseconds of fn() on the current stream, one event pair per call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def copy_fn(n_floats, device):
    """A D2D copy of n_floats floats: n read + n written."""
    src = torch.rand(n_floats, device=device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def expr(a, b, c, d, e):
    return a * b + c * torch.sigmoid(d) - e


def bcast(x, row):
    return x + row


def transpose(x):
    return x.t() * 2.0 + 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=50, help="timed calls per benchmark (median reported)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        sys.exit("torch_elementwise.py: no CUDA device; these are GPU benchmarks")
    device = torch.device("cuda")
    torch.manual_seed(0)
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")

    # The copy yardstick, as bench_elementwise.cpp measures it: 3 * 2^24 floats, read + written.
    n_copy = 3 << 24
    copy_ms = time_ms(copy_fn(n_copy, device), args.reps)
    copy_bw = 2 * n_copy * FLOAT_BYTES / (copy_ms * 1e-3)
    print(f"d2d copy bandwidth (read + write): {copy_bw * 1e-9:.1f} GB/s\n")

    variants = [("eager", lambda f: f)]
    if not args.no_compile:
        variants.append(("compile", lambda f: torch.compile(f, fullgraph=True, dynamic=False)))

    cases = []
    for n in (1 << 24, 1 << 26):
        a, b, c, e = (torch.rand(n, device=device) * 2 - 1 for _ in range(4))
        d = torch.rand(n, device=device) * 8 - 4
        cases.append((f"expr/{n}", expr, (a, b, c, d, e), 6 * n * FLOAT_BYTES, 3 * n))
    x = torch.rand(SIDE, SIDE, device=device) * 2 - 1
    row = torch.rand(SIDE, device=device) * 2 - 1
    cases.append(("bcast", bcast, (x, row), (2 * SIDE * SIDE + SIDE) * FLOAT_BYTES, SIDE * SIDE))
    cases.append(("transpose", transpose, (x,), 2 * SIDE * SIDE * FLOAT_BYTES, SIDE * SIDE))

    results = []
    header = f"{'benchmark':<28}{'time ms':>10}{'GB/s':>10}{'of copy':>10}{'vs eager':>10}"
    print(header)
    print("-" * len(header))
    for name, fn, inputs, nbytes, copy_floats in cases:
        same_copy_ms = time_ms(copy_fn(copy_floats, device), args.reps)
        rows = [(f"{name}/copy", same_copy_ms)]
        reference = fn(*inputs)
        eager_ms = None
        for label, wrap in variants:
            f = wrap(fn)
            got = f(*inputs)
            torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5)
            ms = time_ms(lambda: f(*inputs), args.reps)
            eager_ms = ms if label == "eager" else eager_ms
            rows.append((f"{name}/{label}", ms))
        for label, ms in rows:
            bw = nbytes / (ms * 1e-3)
            speedup = f"{eager_ms / ms:.2f}x" if eager_ms and not label.endswith("copy") else ""
            print(f"{label:<28}{ms:>10.3f}{bw * 1e-9:>10.1f}{bw / copy_bw:>10.3f}{speedup:>10}")
            results.append({"name": label, "ms": ms, "bytes": nbytes, "GBps": bw * 1e-9, "of_copy_bw": bw / copy_bw})
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"device": torch.cuda.get_device_name(device), "torch": torch.__version__,
                       "copy_GBps": copy_bw * 1e-9, "results": results}, out, indent=2)


if __name__ == "__main__":
    main()
