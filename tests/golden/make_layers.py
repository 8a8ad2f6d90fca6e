#!/usr/bin/env python3
"""Writes tests/golden/layers.txt: PyTorch's forward and backward of the ft::nn layers.

For each case (torch.manual_seed(case index) first): the module's state_dict entries after any
overwrite below (<case>.param.<key>, keys as PyTorch names them), the input (<case>.input), the
output (<case>.output), a random r (<case>.seed_grad) and the gradients of (output * r).sum() for
a float input (<case>.grad.input) and each parameter (<case>.grad.<name>). BatchNorm in training
mode also records its state_dict after the forward (<case>.after.<key>: running stats and
num_batches_tracked). Options: "affine" overwrites weight and bias with randn, "weight" the weight alone, "stats" sets
running_mean = randn and running_var = rand + 0.5, "eval" calls module.eval().

Run from the repository root (needs torch; Debian's python3-torch is enough):
    python3 tests/golden/make_layers.py
The output is committed; CI does not run this script.

Record format: see tests/golden/golden.hpp.
"""

import os
import sys

import torch
from torch import nn

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers.txt")


def randn(*shape, scale=1.0):
    return lambda: torch.randn(*shape) * scale


def ints(values):
    return lambda: torch.tensor(values, dtype=torch.int64)


ACT = randn(4, 6, scale=2.0)

# (case, module factory, input factory, options)
CASES = [
    ("linear", lambda: nn.Linear(5, 3), randn(4, 5), ()),
    ("linear_nobias", lambda: nn.Linear(5, 3, bias=False), randn(4, 5), ()),
    ("linear_3d", lambda: nn.Linear(5, 3), randn(2, 4, 5), ()),
    ("conv2d", lambda: nn.Conv2d(3, 4, 3, padding=1), randn(2, 3, 6, 6), ()),
    ("conv2d_stride", lambda: nn.Conv2d(2, 3, 3, stride=2, bias=False), randn(2, 2, 7, 7), ()),
    ("maxpool", lambda: nn.MaxPool2d(2), randn(2, 3, 6, 6), ()),
    ("maxpool_pad", lambda: nn.MaxPool2d(3, stride=2, padding=1), randn(2, 3, 7, 7), ()),
    ("avgpool", lambda: nn.AvgPool2d(2), randn(2, 3, 6, 6), ()),
    ("avgpool_pad", lambda: nn.AvgPool2d(3, stride=2, padding=1), randn(2, 3, 7, 7), ()),
    ("adaptive_avgpool", lambda: nn.AdaptiveAvgPool2d((2, 3)), randn(2, 3, 7, 8), ()),
    ("batchnorm1d", lambda: nn.BatchNorm1d(4), randn(6, 4), ("affine",)),
    ("batchnorm1d_3d", lambda: nn.BatchNorm1d(4), randn(3, 4, 5), ()),
    ("batchnorm1d_eval", lambda: nn.BatchNorm1d(4), randn(6, 4), ("affine", "stats", "eval")),
    ("batchnorm2d", lambda: nn.BatchNorm2d(4, momentum=0.2), randn(3, 4, 5, 5), ("affine",)),
    ("batchnorm2d_eval", lambda: nn.BatchNorm2d(4), randn(3, 4, 5, 5), ("affine", "stats", "eval")),
    ("layernorm", lambda: nn.LayerNorm([4, 5]), randn(3, 4, 5), ("affine",)),
    ("layernorm_last", lambda: nn.LayerNorm(6, eps=1e-3), randn(2, 3, 6), ("affine",)),
    ("embedding", lambda: nn.Embedding(10, 4), ints([1, 3, 3, 9, 0, 1]), ()),
    ("embedding_2d", lambda: nn.Embedding(7, 3, padding_idx=2), ints([[0, 2, 5], [2, 6, 0]]), ()),
    ("flatten", lambda: nn.Flatten(), randn(2, 3, 4), ()),
    ("identity", lambda: nn.Identity(), randn(3, 4), ()),
    ("relu", lambda: nn.ReLU(), ACT, ()),
    ("leaky_relu", lambda: nn.LeakyReLU(0.1), ACT, ()),
    ("gelu", lambda: nn.GELU(), ACT, ()),
    ("gelu_tanh", lambda: nn.GELU(approximate="tanh"), ACT, ()),
    ("silu", lambda: nn.SiLU(), ACT, ()),
    ("tanh", lambda: nn.Tanh(), ACT, ()),
    ("sigmoid", lambda: nn.Sigmoid(), ACT, ()),
    ("softmax", lambda: nn.Softmax(dim=1), ACT, ()),
    ("log_softmax", lambda: nn.LogSoftmax(dim=1), ACT, ()),
    ("softmax_last", lambda: nn.Softmax(dim=-1), randn(2, 3, 5, scale=2.0), ()),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 2.0), ACT, ()),
    ("relu6", lambda: nn.ReLU6(), randn(4, 6, scale=4.0), ()),
    ("hardsigmoid", lambda: nn.Hardsigmoid(), ACT, ()),
    ("hardswish", lambda: nn.Hardswish(), ACT, ()),
    ("mish", lambda: nn.Mish(), ACT, ()),
    ("groupnorm", lambda: nn.GroupNorm(2, 6), randn(3, 6, 4, 5), ("affine",)),
    ("groupnorm_plain", lambda: nn.GroupNorm(3, 6, eps=1e-3, affine=False), randn(2, 6, 5), ()),
    ("instancenorm", lambda: nn.InstanceNorm2d(3, affine=True), randn(2, 3, 4, 5), ("affine",)),
    ("instancenorm_plain", lambda: nn.InstanceNorm2d(3), randn(2, 3, 4, 5), ()),
    ("pixel_shuffle", lambda: nn.PixelShuffle(2), randn(2, 8, 3, 3), ()),
    ("upsample", lambda: nn.Upsample(scale_factor=2), randn(1, 2, 3, 4), ()),
    ("upsample_bilinear", lambda: nn.Upsample(size=(5, 7), mode="bilinear"), randn(1, 2, 3, 4), ()),
    # appended, so the cases above keep their seeds
    ("conv1d", lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), randn(2, 4, 9), ()),
    ("conv1d_dilation", lambda: nn.Conv1d(3, 4, 3, dilation=2, bias=False), randn(2, 3, 10), ()),
    (
        "conv_transpose2d",
        lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
        randn(2, 3, 4, 5),
        (),
    ),
    (
        "conv_transpose2d_groups",
        lambda: nn.ConvTranspose2d(4, 6, (3, 2), stride=(1, 2), groups=2, bias=False),
        randn(2, 4, 3, 4),
        (),
    ),
    # output_padding 1 ≥ stride 1, allowed below the dilation 2
    (
        "conv_transpose2d_dilation",
        lambda: nn.ConvTranspose2d(2, 3, 3, padding=1, output_padding=1, dilation=2),
        randn(1, 2, 4, 4),
        (),
    ),
    # the remaining activations of torch.nn
    ("elu", lambda: nn.ELU(0.7), ACT, ()),
    ("selu", lambda: nn.SELU(), ACT, ()),
    ("celu", lambda: nn.CELU(0.6), ACT, ()),
    ("softplus", lambda: nn.Softplus(2.0, 3.0), ACT, ()),  # beta·x above 3 is linear
    ("softsign", lambda: nn.Softsign(), ACT, ()),
    ("tanhshrink", lambda: nn.Tanhshrink(), ACT, ()),
    ("softshrink", lambda: nn.Softshrink(0.7), ACT, ()),
    ("hardshrink", lambda: nn.Hardshrink(0.7), ACT, ()),
    ("logsigmoid", lambda: nn.LogSigmoid(), randn(4, 6, scale=12.0), ()),
    ("threshold", lambda: nn.Threshold(0.3, -2.0), ACT, ()),
    ("softmin", lambda: nn.Softmin(dim=1), ACT, ()),
    ("softmax2d", lambda: nn.Softmax2d(), randn(2, 3, 4, 5), ()),
    ("glu", lambda: nn.GLU(), randn(3, 8), ()),
    ("glu_dim1", lambda: nn.GLU(dim=1), randn(2, 6, 3), ()),
    ("prelu", lambda: nn.PReLU(), ACT, ()),
    ("prelu_channels", lambda: nn.PReLU(3), randn(2, 3, 4, 5), ("weight",)),
    ("rrelu_eval", lambda: nn.RReLU(0.1, 0.3), ACT, ("eval",)),
    # one-dimensional pooling, the other instance norms, local response normalisation
    ("maxpool1d", lambda: nn.MaxPool1d(3, stride=2, padding=1), randn(2, 3, 9), ()),
    ("maxpool1d_dilated_ceil", lambda: nn.MaxPool1d(2, stride=2, dilation=2, ceil_mode=True), randn(2, 3, 10), ()),
    ("avgpool1d", lambda: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False), randn(2, 3, 9), ()),
    ("avgpool1d_unbatched", lambda: nn.AvgPool1d(2), randn(3, 8), ()),
    ("adaptive_avgpool1d", lambda: nn.AdaptiveAvgPool1d(4), randn(2, 3, 10), ()),
    ("instancenorm1d", lambda: nn.InstanceNorm1d(3, affine=True), randn(2, 3, 7), ("affine",)),
    ("instancenorm3d", lambda: nn.InstanceNorm3d(2, eps=1e-3), randn(2, 2, 3, 4, 5), ()),
    ("lrn", lambda: nn.LocalResponseNorm(3, alpha=0.3, beta=0.6, k=1.5), randn(2, 5, 7), ()),
    ("lrn_4d_even", lambda: nn.LocalResponseNorm(2, alpha=0.5), randn(2, 5, 3, 4), ()),
    ("adaptive_maxpool", lambda: nn.AdaptiveMaxPool2d((3, 2)), randn(2, 3, 7, 5), ()),  # overlapping windows
    ("adaptive_maxpool_global", lambda: nn.AdaptiveMaxPool2d(1), randn(2, 3, 4, 4), ()),
    ("adaptive_maxpool1d", lambda: nn.AdaptiveMaxPool1d(4), randn(2, 3, 10), ()),
]


def main():
    with open(OUT, "w") as f:
        f.write("# PyTorch's layers for the ft::nn tests, written by tests/golden/make_layers.py\n")
        f.write(f"# torch {torch.__version__}\n")
        for index, (case, make, make_input, options) in enumerate(CASES):
            torch.manual_seed(index)
            m = make()
            with torch.no_grad():
                if "weight" in options:
                    m.weight.copy_(torch.randn_like(m.weight))
                if "affine" in options:
                    m.weight.copy_(torch.randn_like(m.weight))
                    m.bias.copy_(torch.randn_like(m.bias))
                if "stats" in options:
                    m.running_mean.copy_(torch.randn_like(m.running_mean))
                    m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
            if "eval" in options:
                m.eval()
            for key, t in m.state_dict().items():
                write(f, f"{case}.param.{key}", t)

            x = make_input()
            if x.is_floating_point():
                x.requires_grad_(True)
            write(f, f"{case}.input", x)
            y = m(x)
            write(f, f"{case}.output", y)
            r = torch.randn_like(y)
            write(f, f"{case}.seed_grad", r)
            (y * r).sum().backward()
            if x.is_floating_point():
                write(f, f"{case}.grad.input", x.grad)
            for name, p in m.named_parameters():
                write(f, f"{case}.grad.{name}", p.grad)
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
                for key, t in m.state_dict().items():
                    write(f, f"{case}.after.{key}", t)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
