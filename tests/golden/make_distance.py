#!/usr/bin/env python3
"""Writes tests/golden/distance.txt: PyTorch's values of ft's norms and distances, for
tests/test_distance.cpp.

torch.linalg.vector_norm with p = 0, 1, 2, 3, inf; F.normalize, F.pairwise_distance,
F.cosine_similarity, torch.outer, torch.cdist (direct, the GEMM form for p = 2 with many
points, batched, p = 0, 1, 3, inf) and torch.einsum (one to four operands, diagonals, size-1 broadcasts). For each: the result and the gradient of each float input for
(result * r).sum() with a recorded r. float32 inputs; a zero row where the gradient has a special
case.

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_distance.py
The output is committed; CI does not run this script.
"""

import os

import torch
import torch.nn.functional as F

from golden_io import write

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distance.txt")


def case(f, name, fn, *inputs):
    """fn(*inputs) and the gradient of each input for (out * r).sum()."""
    xs = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*xs)
    r = torch.randn(out.shape)
    (out * r).sum().backward()
    write(f, f"{name}.out", out)
    write(f, f"{name}.r", r)
    for i, x in enumerate(xs):
        write(f, f"{name}.grad{i}", x.grad if x.grad is not None else torch.zeros_like(x))


def main():
    torch.manual_seed(0)
    with open(OUT, "w") as f:
        f.write("# PyTorch's norms and distances for tests/test_distance.cpp, written by "
                "tests/golden/make_distance.py\n")
        f.write(f"# torch {torch.__version__}\n")
        x = torch.randn(5, 4)
        x[2] = 0.0  # a zero row: normalize's clamp, the norm's gradient 0
        y = torch.randn(5, 4)
        write(f, "x", x)
        write(f, "y", y)
        for p in (0, 1, 2, 3, float("inf")):
            tag = "inf" if p == float("inf") else str(p)
            case(f, f"norm_p{tag}", lambda a, p=p: torch.linalg.vector_norm(a, p, dim=1), x)
        case(f, "normalize", lambda a: F.normalize(a), x)
        case(f, "normalize_p1_d0", lambda a: F.normalize(a, p=1, dim=0), x)
        case(f, "normalize_p3", lambda a: F.normalize(a, p=3), x)
        case(f, "pairwise", lambda a, b: F.pairwise_distance(a, b), x, y)
        case(f, "pairwise_p1", lambda a, b: F.pairwise_distance(a, b, p=1, eps=1e-3), x, y)
        case(f, "cosine", lambda a, b: F.cosine_similarity(a, b), x + 0.5, y)
        case(f, "cosine_d0", lambda a, b: F.cosine_similarity(a, b, dim=0), x + 0.5, y)
        u = torch.randn(5)
        v = torch.randn(3)
        write(f, "u", u)
        write(f, "v", v)
        case(f, "outer", torch.outer, u, v)

        a = torch.randn(6, 3)
        b = torch.randn(4, 3)
        b[1] = a[2]  # a zero distance: gradient 0 there
        write(f, "a", a)
        write(f, "b", b)
        for p in (0, 1, 2, 3, float("inf")):
            tag = "inf" if p == float("inf") else str(p)
            case(f, f"cdist_p{tag}", lambda s, t, p=p: torch.cdist(s, t, p=p), a, b)
        big_a = torch.randn(30, 8)
        big_b = torch.randn(27, 8)
        write(f, "big_a", big_a)
        write(f, "big_b", big_b)
        case(f, "cdist_mm", lambda s, t: torch.cdist(s, t), big_a, big_b)
        ba = torch.randn(2, 4, 3)
        bb = torch.randn(2, 5, 3)
        write(f, "ba", ba)
        write(f, "bb", bb)
        case(f, "cdist_batch", lambda s, t: torch.cdist(s, t), ba, bb)
        case(f, "cdist_batch_mm", lambda s, t: torch.cdist(s, t, compute_mode="use_mm_for_euclid_dist"), ba, bb)

        # einsum: each case's operands are recorded as <name>.in0, <name>.in1
        einsum_cases = [
            ("bmm", "bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
            ("mm_t", "ij,jk->ki", [(3, 4), (4, 5)]),
            ("dot", "i,i->", [(6,), (6,)]),
            ("outer", "i,j->ij", [(3,), (4,)]),
            ("attn", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
            ("mv", "ij,j->i", [(3, 4), (4,)]),
            ("contract2", "ijk,ik->j", [(2, 3, 4), (2, 4)]),
            ("sum_first", "ij,jk->k", [(3, 4), (4, 5)]),
            ("implicit", "ij,kj", [(3, 4), (5, 4)]),
            ("batch_free", "bi,bj->bij", [(2, 3), (2, 4)]),
            ("transpose", "ij->ji", [(3, 4)]),
            ("total", "ij->", [(3, 4)]),
            ("sum_perm", "ijk->ki", [(2, 3, 4)]),
            ("ell_bmm", "...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 2)]),
            ("ell_rank", "...ij,jk->...ik", [(2, 3, 4), (4, 5)]),
            ("ell_implicit", "b...i,b...j", [(2, 3, 4), (2, 3, 5)]),
            ("ell_sum", "...i,...i->", [(3, 4), (3, 4)]),
            ("ell_one", "i...->...i", [(3, 2, 4)]),
            ("diag", "ii->i", [(4, 4)]),
            ("trace", "ii", [(4, 4)]),
            ("diag_batch", "bii,bj->bij", [(2, 3, 3), (2, 4)]),
            ("diag_mid", "iji->j", [(3, 2, 3)]),
            ("diag_contract", "ii,ij->j", [(3, 3), (3, 4)]),
            ("bcast", "ij,ij->ij", [(3, 1), (3, 4)]),
            ("bcast_con", "ij,jk->ik", [(3, 1), (4, 5)]),
            ("bcast_ell", "...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),
            ("chain3", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
            ("dot3", "i,i,i->", [(3,), (3,), (3,)]),
            ("four", "bi,bj,bk,b->bijk", [(2, 3), (2, 2), (2, 4), (2,)]),
            ("ell3", "...ij,...jk,...k->...i", [(2, 3, 4), (2, 4, 5), (2, 5)]),
            ("diag3", "ii,ij,j", [(3, 3), (3, 4), (4,)]),
        ]
        for name, eq, shapes in einsum_cases:
            ins = [torch.randn(s) for s in shapes]
            for i, t in enumerate(ins):
                write(f, f"einsum_{name}.in{i}", t)
            case(f, f"einsum_{name}", lambda *xs, eq=eq: torch.einsum(eq, *xs), *ins)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
