#!/usr/bin/env python3
"""Writes tests/golden/optim.txt: PyTorch's optimizer trajectories and gradient clipping.

One least-squares problem (x [8,4], y [8,3], W [3,4], b [3]; loss = ((x @ W.T + b - y)**2).mean()),
records problem.{x,y,weight,bias}. For each torch.optim config below, 5 steps from the same start:
<cfg>.loss<k> (loss before step k, i.e. the value opt.step(closure) returns) and
<cfg>.step<k>.{weight,bias} (parameters after step k), k = 1..5. Then the gradients at the start
(clip.grad.*) and what clip_grad_norm_ (L2, L1, inf) and clip_grad_value_ make of them.

Run from the repository root (needs torch; Debian's python3-torch is enough):
    python3 tests/golden/make_optim.py
The output is committed; CI does not run this script.

Record format: see tests/golden/golden.hpp.
"""

import os
import sys

import torch
from torch.nn.utils import clip_grad_norm_, clip_grad_value_
from torch.optim import LBFGS, SGD, Adagrad, Adam, AdamW, RMSprop

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim.txt")
STEPS = 5

CONFIGS = [
    ("sgd", lambda W, b: SGD([W, b], lr=0.1)),
    ("sgd_momentum", lambda W, b: SGD([W, b], lr=0.1, momentum=0.9)),
    ("sgd_dampening", lambda W, b: SGD([W, b], lr=0.1, momentum=0.9, dampening=0.5)),
    ("sgd_nesterov_wd", lambda W, b: SGD([W, b], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd_maximize", lambda W, b: SGD([W, b], lr=0.1, momentum=0.9, maximize=True)),
    ("adam", lambda W, b: Adam([W, b], lr=0.01)),
    ("adam_wd_amsgrad",
     lambda W, b: Adam([W, b], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("adamw", lambda W, b: AdamW([W, b], lr=0.01, weight_decay=0.1)),
    ("adamw_amsgrad", lambda W, b: AdamW([W, b], lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", lambda W, b: RMSprop([W, b], lr=0.01)),
    ("rmsprop_centered_momentum",
     lambda W, b: RMSprop([W, b], lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.5, centered=True)),
    ("adagrad", lambda W, b: Adagrad([W, b], lr=0.1)),
    ("adagrad_decay",
     lambda W, b: Adagrad([W, b], lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("sgd_groups",
     lambda W, b: SGD([{"params": [W], "lr": 0.1, "momentum": 0.9}, {"params": [b], "lr": 0.01}], lr=0.5)),
    # L-BFGS runs in float64: near convergence it amplifies rounding (PyTorch's own float32 and float64
    # trajectories differ by 1e-4 relative after two steps), and ft's L-BFGS does its algebra in double
    ("lbfgs", lambda W, b: LBFGS([W, b], lr=1, max_iter=5)),
    ("lbfgs_wolfe", lambda W, b: LBFGS([W, b], lr=1, max_iter=5, line_search_fn="strong_wolfe")),
    # on this quadratic, lr=1 accepts every first trial step; lr=5 makes the line search bracket and zoom
    ("lbfgs_wolfe_lr5", lambda W, b: LBFGS([W, b], lr=5, max_iter=5, line_search_fn="strong_wolfe")),
]

CLIPS = [
    ("clip_norm", lambda ps: clip_grad_norm_(ps, max_norm=0.5)),
    ("clip_norm1", lambda ps: clip_grad_norm_(ps, max_norm=0.5, norm_type=1.0)),
    ("clip_norminf", lambda ps: clip_grad_norm_(ps, max_norm=0.5, norm_type=float("inf"))),
    ("clip_value", lambda ps: clip_grad_value_(ps, clip_value=0.1)),
]


def main():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randn(8, 3)
    W0, b0 = torch.randn(3, 4) * 0.5, torch.randn(3) * 0.5

    def params(dtype=torch.float32):
        return W0.to(dtype).clone().requires_grad_(True), b0.to(dtype).clone().requires_grad_(True)

    def loss_fn(W, b):
        return ((x.to(W.dtype) @ W.T + b - y.to(W.dtype)) ** 2).mean()

    with open(OUT, "w") as f:
        f.write("# PyTorch's optimizers for the ft::optim tests, written by tests/golden/make_optim.py\n")
        f.write(f"# torch {torch.__version__}\n")
        for name, t in (("x", x), ("y", y), ("weight", W0), ("bias", b0)):
            write(f, f"problem.{name}", t)

        for cfg, make in CONFIGS:
            torch.manual_seed(0)
            W, b = params(torch.float64 if cfg.startswith("lbfgs") else torch.float32)
            opt = make(W, b)

            def closure():
                opt.zero_grad()
                loss = loss_fn(W, b)
                loss.backward()
                return loss

            for k in range(1, STEPS + 1):
                # for the non-LBFGS optimizers this is zero_grad; loss; backward; step
                write(f, f"{cfg}.loss{k}", opt.step(closure))
                write(f, f"{cfg}.step{k}.weight", W)
                write(f, f"{cfg}.step{k}.bias", b)

        W, b = params()
        loss_fn(W, b).backward()
        grads = (W.grad.clone(), b.grad.clone())
        write(f, "clip.grad.weight", grads[0])
        write(f, "clip.grad.bias", grads[1])
        for cfg, clip in CLIPS:
            W.grad, b.grad = grads[0].clone(), grads[1].clone()
            total = clip([W, b])
            if total is not None:
                write(f, f"{cfg}.total", total)
            write(f, f"{cfg}.weight", W.grad)
            write(f, f"{cfg}.bias", b.grad)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
