#!/usr/bin/env python3
"""Writes tests/golden/schedulers.txt: the learning rates torch.optim.lr_scheduler gives.

Every case wraps an optimizer with two parameter groups (lr 0.1 and 0.05): SGD with momentum 0.9,
or Adam (betas (0.9, 0.999)) for one OneCycleLR case. It records
  <case>.lr        f64 [31, 2]  the groups' lrs after construction (row 0), then after each of
                                30 rounds of opt.step(); sched.step()
  <case>.momentum  f64 [31, 2]  the same for the groups' momentum (SGD) or beta1 (Adam), OneCycleLR only
  <case>.metrics   f64 [30]     the values passed to ReduceLROnPlateau.step(metric)
tests/test_lr_scheduler.cpp builds the same schedulers in C++ under the same names.

Run from the repository root (needs torch; Debian's python3-torch is enough, e.g. /usr/bin/python3):
    python3 tests/golden/make_schedulers.py
The output is committed; CI does not run this script.

Record format (tests/golden/golden.hpp): one record a line,
    <name> <dtype> <rank> <sizes...> <values...>
values in C order printed with repr(), which round-trips a double exactly.
"""

import os
import warnings

import torch
from torch.optim import SGD, Adam
from torch.optim import lr_scheduler as S

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedulers.txt")
STEPS = 30
LRS = (0.1, 0.05)


def groups():
    return [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in LRS]


def sgd():
    return SGD(groups(), lr=LRS[0], momentum=0.9)


def adam():
    return Adam(groups(), lr=LRS[0], betas=(0.9, 0.999))


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


# Metric sequences for ReduceLROnPlateau: improvements, plateaus, and changes below the threshold.
FALLING = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79999, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.65, 0.62,
           0.61, 0.6, 0.6, 0.59995, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.49, 0.49, 0.49, 0.49]
NOISY = [2.0, 1.9, 1.87, 1.86, 1.7, 1.72, 1.69, 1.66, 1.5, 1.52, 1.48, 1.47, 1.46, 1.3, 1.31,
         1.29, 1.28, 1.27, 1.26, 1.1, 1.12, 1.09, 1.08, 1.02, 1.01, 1.0, 0.99, 0.98, 0.97, 0.96]
RISING = [0.1, 0.2, 0.3, 0.301, 0.302, 0.3, 0.31, 0.4, 0.4, 0.4, 0.4, 0.4, 0.41, 0.5, 0.5,
          0.505, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7]
FLAT = [1.0] + [0.5] * 29


def sequential(opt, make, milestones):
    return S.SequentialLR(opt, [m(opt) for m in make], milestones=milestones)


# (case, optimizer factory, scheduler factory, metrics or None)
CASES = [
    ("step", sgd, lambda o: S.StepLR(o, step_size=7, gamma=0.5), None),
    ("step_default_gamma", sgd, lambda o: S.StepLR(o, 3), None),
    ("multistep", sgd, lambda o: S.MultiStepLR(o, [4, 10, 10, 21], gamma=0.5), None),
    ("multistep_default_gamma", sgd, lambda o: S.MultiStepLR(o, [5, 15]), None),
    ("exponential", sgd, lambda o: S.ExponentialLR(o, 0.9), None),
    ("cosine", sgd, lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), None),
    ("cosine_default_eta", sgd, lambda o: S.CosineAnnealingLR(o, 7), None),
    ("linear_default", sgd, lambda o: S.LinearLR(o), None),
    ("linear_warmup", sgd, lambda o: S.LinearLR(o, start_factor=0.1, total_iters=10), None),
    ("linear_decay", sgd, lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=12), None),
    ("onecycle", sgd, lambda o: S.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=30), None),
    ("onecycle_linear_three_phase", sgd,
     lambda o: S.OneCycleLR(o, max_lr=0.4, epochs=7, steps_per_epoch=5, pct_start=0.25, anneal_strategy="linear",
                            base_momentum=0.8, max_momentum=0.9, div_factor=10.0, final_div_factor=100.0,
                            three_phase=True), None),
    ("onecycle_no_cycle_momentum", sgd,
     lambda o: S.OneCycleLR(o, max_lr=0.3, total_steps=40, pct_start=0.4, cycle_momentum=False), None),
    ("onecycle_adam", adam,
     lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=32, base_momentum=[0.8, 0.85], max_momentum=0.95,
                            three_phase=True), None),
    ("lambda", sgd, lambda o: S.LambdaLR(o, lambda e: 0.95 ** e), None),
    ("lambda_per_group", sgd, lambda o: S.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1.0 / (e + 1)]), None),
    ("plateau_default", sgd, lambda o: S.ReduceLROnPlateau(o), FLAT),
    ("plateau_min", sgd, lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2), FALLING),
    ("plateau_cooldown_abs", sgd,
     lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.05, threshold_mode="abs", cooldown=3,
                                   min_lr=[0.01, 0.004]), NOISY),
    ("plateau_eps", sgd, lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=0, eps=0.01), FALLING),
    ("plateau_max", sgd,
     lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.3, patience=3, threshold=0.01, min_lr=0.002), RISING),
    ("sequential", sgd,
     lambda o: sequential(o, [lambda o: S.LinearLR(o, start_factor=0.1, total_iters=5),
                              lambda o: S.CosineAnnealingLR(o, T_max=25)], [5]), None),
    ("sequential_three", sgd,
     lambda o: sequential(o, [lambda o: S.LinearLR(o, start_factor=0.25, total_iters=4),
                              lambda o: S.StepLR(o, 3, gamma=0.5),
                              lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)], [4, 14]), None),
    ("sequential_exp_lambda_multistep", sgd,
     lambda o: sequential(o, [lambda o: S.ExponentialLR(o, 0.9),
                              lambda o: S.LambdaLR(o, lambda e: 0.95 ** e),
                              lambda o: S.MultiStepLR(o, [3, 6], gamma=0.5)], [8, 20]), None),
]


def record(out, name, rows):
    flat = [v for row in rows for v in row] if isinstance(rows[0], list) else list(rows)
    shape = [len(rows), len(rows[0])] if isinstance(rows[0], list) else [len(rows)]
    fields = [name, "f64", str(len(shape))] + [str(s) for s in shape] + [repr(float(v)) for v in flat]
    out.write(" ".join(fields) + "\n")


def main():
    warnings.simplefilter("ignore")  # step(0) inside SequentialLR warns that epoch arguments are deprecated
    with open(OUT, "w") as out:
        out.write("# Written by tests/golden/make_schedulers.py with torch %s; do not edit.\n" % torch.__version__)
        for name, make_opt, make_sched, metrics in CASES:
            opt = make_opt()
            sched = make_sched(opt)
            lrs = [[g["lr"] for g in opt.param_groups]]
            moms = [[momentum_of(g) for g in opt.param_groups]]
            for k in range(STEPS):
                opt.step()
                if metrics is None:
                    sched.step()
                else:
                    sched.step(metrics[k])
                lrs.append([g["lr"] for g in opt.param_groups])
                moms.append([momentum_of(g) for g in opt.param_groups])
            record(out, name + ".lr", lrs)
            if name.startswith("onecycle"):
                record(out, name + ".momentum", moms)
            if metrics is not None:
                record(out, name + ".metrics", metrics)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
