#!/usr/bin/env python3
"""PyTorch peers of bench/bench_autograd.cpp (issue #4), on a CUDA GPU.

Forward + backward of the 10-op statement on 2^24 floats,

    y = tanh(x * w + sin(x)) * sigmoid(w) - exp(0.5 * x) + w;   y.backward(seed)

in eager mode and under torch.compile, timed with CUDA events (median ms), with the peak
memory allocated during one step beyond the leaves and the seed (torch.cuda.max_memory_allocated),
the same "extra_MB" counter as the C++ bench.

Usage:  python3 bench/torch_autograd.py [--reps 50] [--no-compile]
Needs a CUDA GPU and PyTorch >= 2.0 (for torch.compile).
"""

import argparse
import statistics

import torch

N = 1 << 24


def statement(x, w):
    return torch.tanh(x * w + torch.sin(x)) * torch.sigmoid(w) - torch.exp(0.5 * x) + w


def measure(fn, reps):
    x = (torch.rand(N, device="cuda") * 2 - 1).requires_grad_(True)
    w = (torch.rand(N, device="cuda") * 2 - 1).requires_grad_(True)
    seed = torch.ones(N, device="cuda")

    def step():
        x.grad = None
        w.grad = None
        fn(x, w).backward(seed)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    extra_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times), extra_mb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    variants = [("eager", statement)]
    if not args.no_compile:
        variants.append(("torch.compile", torch.compile(statement)))
    for name, fn in variants:
        ms, mb = measure(fn, args.reps)
        print(f"gpu/fwd_bwd_10op/{name:14s} {ms:8.3f} ms   extra {mb:8.1f} MB")


if __name__ == "__main__":
    main()
