#!/usr/bin/env python3
"""PyTorch peers of bench/bench_nn.cpp (nn / optim), on a CUDA GPU.

One training step (zero_grad(set_to_none=True), forward, cross_entropy, backward, Adam lr 1e-3) of

    mlp_step:   784-1024-1024-10 MLP with ReLU, batch 256;
    lenet_step: LeNet-5 style CNN on 1x28x28, batch 128 (conv 1->6 k5 pad 2, ReLU, max-pool 2,
                conv 6->16 k5, ReLU, max-pool 2, flatten, 400->120, ReLU, 120->84, ReLU, 84->10);
    mlp_blocks_step: two pre-norm transformer MLP blocks, x + fc2(gelu(fc1(layer_norm(x)))),
                d 256, hidden 1024, 2048 tokens, MSE loss against a fixed target, AdamW
                (lr 1e-3, weight decay 0.01) instead of cross_entropy and Adam;

in eager mode and with the model under torch.compile, and adam_100: the Adam step alone over 100
float tensors of mixed sizes (25 times 512, 4096, 65536, 329856 values: 10M in all, the same list
as the C++ bench), gradients preset, with Adam's for-loop, foreach=True and fused=True
implementations.

Printed for each: the median ms a step (CUDA events around the step, as the C++ bench on a GPU),
the kernels launched a step (torch.profiler: kernel events on the GPU, memcpy/memset not
counted, and those listed apart), peak_MB (torch.cuda.max_memory_allocated during one step,
everything live included: parameters, gradients, Adam state, the batch; the C++ bench's peak_MB)
and extra_MB (the part beyond what was allocated before the step; its extra_MB).

TF32 is off for matmuls and convolutions (PyTorch leaves it on for cuDNN convolutions by
default; ft does not use it unless asked), so both compute in full fp32; --tf32 turns it on.

Usage:  python3 bench/torch_nn.py [--reps 50] [--no-compile] [--tf32]
        python3 bench/torch_nn.py --cpu      # a check that the script runs (no GPU needed):
                                             # wall-clock times, no memory or kernel counts
Needs PyTorch >= 2.0 for torch.compile and fused Adam (skipped, with a note, where missing).
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MLP_BATCH, LENET_BATCH = 256, 128
ADAM_SIZES = [512, 4096, 65536, 329856] * 25  # 10'000'000 values; bench_nn.cpp's adam_sizes()
assert len(ADAM_SIZES) == 100 and sum(ADAM_SIZES) == 10_000_000


def make_mlp():
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def make_lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


BLOCK_TOKENS, BLOCK_DIM, BLOCK_HIDDEN = 2048, 256, 1024


class MlpBlock(nn.Module):
    """A pre-norm transformer MLP block: x + fc2(gelu(fc1(layer_norm(x)))), as bench_nn.cpp's MlpBlock."""

    def __init__(self, d, hidden):
        super().__init__()
        self.ln, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.ln(x))))


def make_blocks():
    return nn.Sequential(MlpBlock(BLOCK_DIM, BLOCK_HIDDEN), MlpBlock(BLOCK_DIM, BLOCK_HIDDEN))


def class_targets(n, device):
    return (torch.arange(n, device=device) * 7) % 10


class Timer:
    """Median ms of a function: CUDA events on a GPU, wall clock on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def median_ms(self, fn, reps):
        times = []
        for _ in range(reps):
            if self.cuda:
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                times.append(start.elapsed_time(stop))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


def kernel_count(fn, device):
    """Kernels launched by one call of fn (and the memcpy/memset operations apart), from torch.profiler."""
    if device.type != "cuda":
        return None, None
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    kernels = copies = 0
    for evt in prof.events():
        if evt.device_type != torch.autograd.DeviceType.CUDA:
            continue
        if evt.name.startswith(("Memcpy", "Memset")):
            copies += 1
        else:
            kernels += 1
    return kernels, copies


def peak_memory(fn, device):
    """(peak_MB, extra_MB) of one call of fn: the most allocated at once, and that beyond what was allocated before."""
    if device.type != "cuda":
        return None, None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return peak / 2**20, (peak - base) / 2**20


def measure(name, step, device, reps, warmup=5):
    timer = Timer(device)
    for _ in range(warmup):  # creates the Adam state; lets torch.compile and cuDNN pick their kernels
        step()
    timer.sync()
    peak_mb, extra_mb = peak_memory(step, device)
    kernels, copies = kernel_count(step, device)
    ms = timer.median_ms(step, reps)
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    print(f"{device.type}/{name:34s} {ms:9.3f} ms   kernels {fmt(kernels, '4d')} (+{fmt(copies, 'd')} copies)"
          f"   peak {fmt(peak_mb, '8.1f')} MB   extra {fmt(extra_mb, '7.1f')} MB", flush=True)


def model_step(net, x, y, opt, loss_fn=F.cross_entropy):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    return step


def adam_variant(kind):
    """Adam's keyword arguments for an implementation, or None where this PyTorch lacks it."""
    import inspect

    params = inspect.signature(torch.optim.Adam).parameters
    if kind == "for_loop":
        return {"foreach": False} if "foreach" in params else {}
    if kind not in params:
        return None
    return {kind: True}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmuls and convolutions")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (a check of the script)")
    args = ap.parse_args()

    device = torch.device("cpu" if args.cpu else "cuda")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}, threads {torch.get_num_threads()}, tf32 {args.tf32}")

    models = [("mlp_step", make_mlp, (MLP_BATCH, 784)), ("lenet_step", make_lenet, (LENET_BATCH, 1, 28, 28)),
              ("mlp_blocks_step", make_blocks, (BLOCK_TOKENS, BLOCK_DIM))]
    can_compile = hasattr(torch, "compile") and not args.no_compile
    for case, make, xshape in models:
        for compiled in (False, True):
            if compiled and not can_compile:
                if not args.no_compile:
                    print(f"{device.type}/{case}/torch.compile: skipped (torch {torch.__version__} has no torch.compile)")
                continue
            torch.manual_seed(1)
            net = make().to(device)
            fwd = torch.compile(net) if compiled else net
            x = torch.randn(*xshape, device=device)
            blocks = case == "mlp_blocks_step"
            y = torch.randn(*xshape, device=device) if blocks else class_targets(xshape[0], device)
            opt = (torch.optim.AdamW if blocks else torch.optim.Adam)(net.parameters(), lr=1e-3)
            step = model_step(fwd, x, y, opt, F.mse_loss if blocks else F.cross_entropy)
            measure(f"{case}/{'torch.compile' if compiled else 'eager'}", step, device, args.reps)
            del net, fwd, opt, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()

    for kind in ("for_loop", "foreach", "fused"):
        kw = adam_variant(kind)
        if kw is None:
            print(f"{device.type}/adam_100/{kind}: skipped (torch {torch.__version__}'s Adam has no {kind}=)")
            continue
        torch.manual_seed(10)
        params = [torch.randn(n, device=device, requires_grad=True) for n in ADAM_SIZES]
        for p in params:
            p.grad = torch.randn_like(p)
        try:
            opt = torch.optim.Adam(params, lr=1e-3, **kw)
            opt.step()
        except RuntimeError as e:  # e.g. fused=True on the CPU before PyTorch 2.4
            print(f"{device.type}/adam_100/{kind}: skipped ({str(e).splitlines()[0]})")
            continue
        measure(f"adam_100/{kind}", opt.step, device, args.reps)
        del params, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
