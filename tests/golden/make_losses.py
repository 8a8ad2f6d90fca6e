#!/usr/bin/env python3
"""Writes tests/golden/losses.txt: PyTorch's values of the ft::nn losses, for tests/test_loss.cpp.

For each loss (mse, l1, smooth_l1, huber, cross_entropy, nll, binary_cross_entropy,
binary_cross_entropy_with_logits, kl_div, margin_ranking, cosine_embedding, triplet_margin,
soft_margin, hinge_embedding, poisson_nll, gaussian_nll, multilabel_soft_margin), some
options (class weights, probability targets, kl_div's log_target and batchmean, margins, swap) (smooth_l1 beta = 0.5 and 0, huber delta = 0.7,
cross_entropy with ignored rows, an in-range ignore_index and label_smoothing = 0.1, nll with
ignore_index, bce_with_logits with pos_weight) and each reduction (none, mean, sum) it records
the loss and the gradient of the input for loss.sum() (for reduction none: (loss * r).sum() with
a recorded r). Inputs are float32 and small; the logits losses get some inputs of magnitude 30 to
test their stability.

Run from the repository root (needs torch; Debian's python3-torch is enough):
    python3 tests/golden/make_losses.py
The output is committed; CI does not run this script.

Record format: see tests/golden/golden.hpp.
"""

import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "losses.txt")
REDUCTIONS = ("none", "mean", "sum")


def record(lines, name, t):
    """One record: name dtype rank sizes... values... (floats as repr: exact round trip)."""
    t = t.detach().cpu().contiguous()
    dtype = {torch.float32: "f32", torch.float64: "f64", torch.int64: "i64"}[t.dtype]
    values = t.reshape(-1).tolist()
    text = [repr(int(v)) if dtype == "i64" else repr(float(v)) for v in values]
    lines.append(" ".join([name, dtype, str(t.dim())] + [str(s) for s in t.shape] + text))


def loss_cases(lines, name, x, r, loss):
    """The loss of x and the gradient of x, for each reduction; loss(x, reduction)."""
    for red in REDUCTIONS:
        xi = x.clone().requires_grad_(True)
        out = loss(xi, red)
        (out * r if red == "none" else out).sum().backward()
        record(lines, f"{name}.{red}.loss", out)
        record(lines, f"{name}.{red}.grad", xi.grad)


def main():
    torch.manual_seed(0)
    lines = [
        "# PyTorch's losses for tests/test_loss.cpp, written by tests/golden/make_losses.py",
        f"# torch {torch.__version__}",
    ]

    # ---- elementwise losses on [5, 4] ----
    x = torch.randn(5, 4) * 2
    t = torch.randn(5, 4) * 2
    t[0, 0] = x[0, 0]  # a tie: the L1 gradient there is 0
    t[1, 1] = x[1, 1] + 0.25  # inside every threshold used below
    r = torch.randn(5, 4)
    record(lines, "reg.input", x)
    record(lines, "reg.target", t)
    record(lines, "reg.r", r)
    loss_cases(lines, "mse", x, r, lambda a, red: F.mse_loss(a, t, reduction=red))
    loss_cases(lines, "l1", x, r, lambda a, red: F.l1_loss(a, t, reduction=red))
    loss_cases(lines, "smooth_l1", x, r, lambda a, red: F.smooth_l1_loss(a, t, reduction=red))
    loss_cases(lines, "smooth_l1_b05", x, r, lambda a, red: F.smooth_l1_loss(a, t, reduction=red, beta=0.5))
    # beta = 0 is l1_loss in torch >= 2.0 (gradient 0 at a tie); 1.13's kernel gave -g there
    loss_cases(lines, "smooth_l1_b0", x, r, lambda a, red: F.l1_loss(a, t, reduction=red))
    loss_cases(lines, "huber", x, r, lambda a, red: F.huber_loss(a, t, reduction=red))
    loss_cases(lines, "huber_d07", x, r, lambda a, red: F.huber_loss(a, t, reduction=red, delta=0.7))

    # ---- classification on [6, 5] ----
    logits = torch.randn(6, 5) * 3
    logits[1, 2] = 30.0
    logits[4, 0] = -30.0
    logits[5, 3] = 30.0
    target = torch.tensor([0, 4, 2, -100, 1, 3])  # row 3 ignored (default ignore_index)
    target2 = torch.tensor([2, 4, 2, 0, 1, 3])  # rows 0 and 2 ignored with ignore_index = 2
    rc = torch.randn(6)
    record(lines, "ce.input", logits)
    record(lines, "ce.target", target)
    record(lines, "ce.target2", target2)
    record(lines, "ce.r", rc)
    loss_cases(lines, "ce", logits, rc, lambda a, red: F.cross_entropy(a, target, reduction=red))
    loss_cases(lines, "ce_ls", logits, rc,
               lambda a, red: F.cross_entropy(a, target, reduction=red, label_smoothing=0.1))
    loss_cases(lines, "ce_ig2", logits, rc,
               lambda a, red: F.cross_entropy(a, target2, reduction=red, ignore_index=2))
    loss_cases(lines, "ce_ls_ig2", logits, rc,
               lambda a, red: F.cross_entropy(a, target2, reduction=red, ignore_index=2, label_smoothing=0.1))

    log_probs = F.log_softmax(torch.randn(6, 5) * 2, dim=1)
    record(lines, "nll.input", log_probs)
    loss_cases(lines, "nll", log_probs, rc, lambda a, red: F.nll_loss(a, target, reduction=red))
    loss_cases(lines, "nll_ig2", log_probs, rc,
               lambda a, red: F.nll_loss(a, target2, reduction=red, ignore_index=2))

    # ---- binary losses on [5, 4] ----
    probs = torch.sigmoid(torch.randn(5, 4) * 2)
    soft = torch.rand(5, 4)
    soft[0, :2] = 0.0
    soft[1, :2] = 1.0
    record(lines, "bce.input", probs)
    record(lines, "bce.target", soft)
    loss_cases(lines, "bce", probs, r, lambda a, red: F.binary_cross_entropy(a, soft, reduction=red))

    blogits = torch.randn(5, 4) * 3
    blogits[0, 0], blogits[0, 1], blogits[2, 3], blogits[3, 2] = 30.0, -30.0, 29.5, -30.0
    blogits[4, 1] = 0.0  # the kink of max(-x, 0)
    pos_weight = torch.rand(4) * 2 + 0.5
    record(lines, "bcel.input", blogits)
    record(lines, "bcel.pos_weight", pos_weight)
    loss_cases(lines, "bcel", blogits, r,
               lambda a, red: F.binary_cross_entropy_with_logits(a, soft, reduction=red))
    loss_cases(lines, "bcel_pw", blogits, r,
               lambda a, red: F.binary_cross_entropy_with_logits(a, soft, reduction=red, pos_weight=pos_weight))

    # ---- class weights and probability targets on the [6, 5] logits ----
    weight = torch.rand(5) + 0.5
    record(lines, "ce.weight", weight)
    loss_cases(lines, "ce_w", logits, rc, lambda a, red: F.cross_entropy(a, target, weight=weight, reduction=red))
    loss_cases(lines, "ce_w_ls_ig2", logits, rc,
               lambda a, red: F.cross_entropy(a, target2, weight=weight, reduction=red, ignore_index=2,
                                              label_smoothing=0.1))
    probs_t = F.softmax(torch.randn(6, 5) * 2, dim=1)
    record(lines, "ce.probs", probs_t)
    loss_cases(lines, "ce_p", logits, rc, lambda a, red: F.cross_entropy(a, probs_t, reduction=red))
    loss_cases(lines, "ce_p_w_ls", logits, rc,
               lambda a, red: F.cross_entropy(a, probs_t, weight=weight, reduction=red, label_smoothing=0.1))
    loss_cases(lines, "nll_w", log_probs, rc, lambda a, red: F.nll_loss(a, target, weight=weight, reduction=red))
    loss_cases(lines, "nll_w_ig2", log_probs, rc,
               lambda a, red: F.nll_loss(a, target2, weight=weight, reduction=red, ignore_index=2))

    # ---- kl_div on [5, 4]: log-probabilities against probabilities (one exactly 0) ----
    kl_in = F.log_softmax(torch.randn(5, 4), dim=1)
    kl_t = F.softmax(torch.randn(5, 4), dim=1)
    kl_t[2, 1] = 0.0
    record(lines, "kl.input", kl_in)
    record(lines, "kl.target", kl_t)
    loss_cases(lines, "kl", kl_in, r, lambda a, red: F.kl_div(a, kl_t, reduction=red))
    loss_cases(lines, "kl_log", kl_in, r, lambda a, red: F.kl_div(a, kl_t.clamp_min(1e-3).log(), reduction=red,
                                                                  log_target=True))
    for name, log_target in (("kl", False), ("kl_log", True)):
        xi = kl_in.clone().requires_grad_(True)
        tt = kl_t.clamp_min(1e-3).log() if log_target else kl_t
        out = F.kl_div(xi, tt, reduction="batchmean", log_target=log_target)
        out.backward()
        record(lines, f"{name}.batchmean.loss", out)
        record(lines, f"{name}.batchmean.grad", xi.grad)

    # ---- ranking and embedding losses: the gradient is the first input's ----
    m1 = torch.randn(7)
    m2 = torch.randn(7)
    my = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
    mr = torch.randn(7)
    record(lines, "mr.x1", m1)
    record(lines, "mr.x2", m2)
    record(lines, "mr.y", my)
    record(lines, "mr.r", mr)
    loss_cases(lines, "mr", m1, mr, lambda a, red: F.margin_ranking_loss(a, m2, my, reduction=red))
    loss_cases(lines, "mr_m03", m1, mr, lambda a, red: F.margin_ranking_loss(a, m2, my, margin=0.3, reduction=red))

    c1 = torch.randn(6, 4)
    c2 = torch.randn(6, 4)
    c2[3] = c1[3] * 2  # cos = 1
    cy = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    record(lines, "cos.x1", c1)
    record(lines, "cos.x2", c2)
    record(lines, "cos.y", cy)
    loss_cases(lines, "cos", c1, rc, lambda a, red: F.cosine_embedding_loss(a, c2, cy, reduction=red))
    loss_cases(lines, "cos_m02", c1, rc,
               lambda a, red: F.cosine_embedding_loss(a, c2, cy, margin=0.2, reduction=red))

    ta = torch.randn(6, 4)
    tp = ta + 0.5 * torch.randn(6, 4)
    tn = torch.randn(6, 4)
    tn[1] = ta[1] + 0.1 * torch.randn(4)  # a hard negative: the hinge is active
    record(lines, "tri.anchor", ta)
    record(lines, "tri.positive", tp)
    record(lines, "tri.negative", tn)
    loss_cases(lines, "tri", ta, rc, lambda a, red: F.triplet_margin_loss(a, tp, tn, reduction=red))
    loss_cases(lines, "tri_swap_p1", ta, rc,
               lambda a, red: F.triplet_margin_loss(a, tp, tn, margin=0.5, p=1, swap=True, reduction=red))

    # ---- margins, counts and variances on [5, 4] (appended: the draws above keep their values) ----
    sy = torch.where(torch.rand(5, 4) < 0.5, -1.0, 1.0)
    record(lines, "sm.y", sy)
    loss_cases(lines, "soft_margin", x, r, lambda a, red: F.soft_margin_loss(a, sy, reduction=red))
    loss_cases(lines, "hinge", x, r, lambda a, red: F.hinge_embedding_loss(a, sy, reduction=red))
    loss_cases(lines, "hinge_m05", x, r, lambda a, red: F.hinge_embedding_loss(a, sy, margin=0.5, reduction=red))

    counts = torch.poisson(torch.rand(5, 4) * 4)
    counts[0, :3] = torch.tensor([0.0, 1.0, 2.0])  # Stirling's term only above 1
    rates = torch.rand(5, 4) * 3 + 0.1
    record(lines, "pois.target", counts)
    record(lines, "pois.rates", rates)
    record(lines, "pois.input", x * 0.5)
    loss_cases(lines, "pois", x * 0.5, r, lambda a, red: F.poisson_nll_loss(a, counts, reduction=red))
    loss_cases(lines, "pois_full", x * 0.5, r, lambda a, red: F.poisson_nll_loss(a, counts, full=True, reduction=red))
    loss_cases(lines, "pois_rate", rates, r,
               lambda a, red: F.poisson_nll_loss(a, counts, log_input=False, reduction=red))
    loss_cases(lines, "pois_rate_full", rates, r,
               lambda a, red: F.poisson_nll_loss(a, counts, log_input=False, full=True, eps=1e-3, reduction=red))

    var = torch.rand(5, 4) + 0.1
    var[2, 1] = 1e-8  # below eps: raised to it, the gradient as if it were not
    var5 = torch.rand(5) + 0.2
    var51 = torch.rand(5, 1) + 0.2
    record(lines, "gauss.var", var)
    record(lines, "gauss.var5", var5)
    record(lines, "gauss.var51", var51)
    loss_cases(lines, "gauss", x, r, lambda a, red: F.gaussian_nll_loss(a, t, var, reduction=red))
    loss_cases(lines, "gauss_full", x, r, lambda a, red: F.gaussian_nll_loss(a, t, var, full=True, reduction=red))
    loss_cases(lines, "gauss_v5", x, r, lambda a, red: F.gaussian_nll_loss(a, t, var5, reduction=red))
    loss_cases(lines, "gauss_v51", x, r, lambda a, red: F.gaussian_nll_loss(a, t, var51, eps=0.3, reduction=red))
    vi = var.clone().requires_grad_(True)
    F.gaussian_nll_loss(x, t, vi).backward()
    record(lines, "gauss.mean.grad_var", vi.grad)

    labels = (torch.rand(5, 4) < 0.4).float()
    class_w = torch.rand(4) + 0.5
    r5 = torch.randn(5)
    record(lines, "mlsm.target", labels)
    record(lines, "mlsm.weight", class_w)
    record(lines, "mlsm.r", r5)
    loss_cases(lines, "mlsm", x, r5, lambda a, red: F.multilabel_soft_margin_loss(a, labels, reduction=red))
    loss_cases(lines, "mlsm_w", x, r5,
               lambda a, red: F.multilabel_soft_margin_loss(a, labels, weight=class_w, reduction=red))

    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} lines to {OUT}")


if __name__ == "__main__":
    main()
