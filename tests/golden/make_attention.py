#!/usr/bin/env python3
"""Writes tests/golden/attention.txt: PyTorch's attention and Transformer layers.

torch 1.13 has no F.scaled_dot_product_attention: its cases (sdpa_*) are the explicit
softmax(q·kᵀ·scale + mask)·v in float64, with the inputs (<case>.q, .k, .v, .mask), the output
(<case>.output), the loss weights (<case>.r) and the gradients of Σ output·r (<case>.grad.q, …).
nn.MultiheadAttention, the Transformer's layers, stacks and nn.Transformer (eval mode, dropout 0) are
built in float32
(PyTorch's initialisation; <case>.param.<key>), run in float64 on float32-representable values:
inputs, masks, outputs (<case>.output, MultiheadAttention's averaged weights <case>.weights) and
the gradients of Σ output·r for the inputs and every parameter.

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_attention.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import math
import os
import sys

import torch
from torch import nn

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention.txt")


def leaf(*shape):
    return torch.randn(*shape).double().requires_grad_(True)


def sdpa_reference(q, k, v, mask=None, causal=False, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, -1) @ v


def write_sdpa(f):
    torch.manual_seed(0)
    for case, mask_kind, causal, scale in (("sdpa", None, False, None), ("sdpa_bool", "bool", False, None),
                                           ("sdpa_float", "float", False, 0.3), ("sdpa_causal", None, True, None)):
        q, k, v = leaf(2, 3, 4, 5), leaf(2, 3, 6, 5), leaf(2, 3, 6, 7)
        mask = None
        if mask_kind == "bool":
            mask = torch.rand(4, 6) < 0.7
            mask[:, 0] = True  # every query keeps a key
        elif mask_kind == "float":
            mask = torch.randn(4, 6).double()
        for name, t in (("q", q), ("k", k), ("v", v)):
            write(f, f"{case}.{name}", t.float())
        if mask is not None:
            write(f, f"{case}.mask", mask.long() if mask.dtype == torch.bool else mask.float())
        out = sdpa_reference(q, k, v, mask, causal, scale)
        r = torch.randn(*out.shape).double()
        write(f, f"{case}.output", out)
        write(f, f"{case}.r", r)
        (out * r).sum().backward()
        for name, t in (("q", q), ("k", k), ("v", v)):
            write(f, f"{case}.grad.{name}", t.grad)


def write_module_case(f, case, m, inputs, call):
    """The module's state, the inputs, call(m, *inputs) → (output, weights or None), the gradients.
    Every parameter is moved by 0.2·randn first, so that zero biases and unit norm weights are
    tested as parameters too."""
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    for key, t in m.state_dict().items():
        write(f, f"{case}.param.{key}", t)
    m = m.double().eval()
    for name, t in inputs.items():
        write(f, f"{case}.{name}", t.float() if t.is_floating_point() else t.long())
    out, weights = call(m, inputs)
    write(f, f"{case}.output", out)
    if weights is not None:
        write(f, f"{case}.weights", weights)
    r = torch.randn(*out.shape).double()
    write(f, f"{case}.r", r)
    (out * r).sum().backward()
    for name, t in inputs.items():
        if t.is_floating_point() and t.requires_grad:
            write(f, f"{case}.grad.{name}", t.grad)
    for name, p in m.named_parameters():
        write(f, f"{case}.grad.{name}", p.grad)


def main():
    with open(OUT, "w") as f:
        f.write("# PyTorch's attention layers for the ft::nn tests, written by tests/golden/make_attention.py\n")
        f.write(f"# torch {torch.__version__}\n")
        write_sdpa(f)

        # MultiheadAttention: L = 4 queries, S = 5 keys, N = 3, E = 8, 2 heads
        torch.manual_seed(1)
        m = nn.MultiheadAttention(8, 2)
        kpm = torch.zeros(3, 5, dtype=torch.bool)
        kpm[0, 4] = kpm[2, 3] = kpm[2, 4] = True
        inputs = {"query": leaf(4, 3, 8), "key": leaf(5, 3, 8), "value": leaf(5, 3, 8), "key_padding_mask": kpm,
                  "attn_mask": torch.randn(4, 5).double()}
        write_module_case(f, "mha", m, inputs, lambda m, i: m(i["query"], i["key"], i["value"],
                                                              key_padding_mask=i["key_padding_mask"],
                                                              attn_mask=i["attn_mask"]))
        torch.manual_seed(2)
        m = nn.MultiheadAttention(8, 4, batch_first=True, bias=False)
        am = torch.rand(4, 4) < 0.3
        am.fill_diagonal_(False)  # a query may always attend to itself
        x = leaf(3, 4, 8)
        write_module_case(f, "mha_self_bf", m, {"x": x, "attn_mask": am},
                          lambda m, i: m(i["x"], i["x"], i["x"], attn_mask=i["attn_mask"]))

        # TransformerEncoderLayer: d_model 8, 2 heads, feed-forward 16, dropout 0
        torch.manual_seed(3)
        m = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
        kpm = torch.zeros(3, 5, dtype=torch.bool)
        kpm[1, 4] = True
        write_module_case(f, "encoder_post", m, {"src": leaf(5, 3, 8), "src_key_padding_mask": kpm},
                          lambda m, i: (m(i["src"], src_key_padding_mask=i["src_key_padding_mask"]), None))
        torch.manual_seed(4)
        m = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
        mask = nn.Transformer.generate_square_subsequent_mask(5).double()
        write_module_case(f, "encoder_pre_causal_bf", m, {"src": leaf(3, 5, 8), "src_mask": mask},
                          lambda m, i: (m(i["src"], src_mask=i["src_mask"]), None))
        torch.manual_seed(5)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
        m = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=False)
        write_module_case(f, "encoder_stack", m, {"src": leaf(4, 2, 8)}, lambda m, i: (m(i["src"]), None))

        # MultiheadAttention with kdim and vdim ≠ embed_dim (q_proj_weight, k_proj_weight, v_proj_weight)
        torch.manual_seed(6)
        m = nn.MultiheadAttention(8, 2, kdim=6, vdim=5)
        kpm = torch.zeros(3, 5, dtype=torch.bool)
        kpm[1, 0] = kpm[2, 4] = True
        write_module_case(f, "mha_kvdim", m,
                          {"query": leaf(4, 3, 8), "key": leaf(5, 3, 6), "value": leaf(5, 3, 5),
                           "key_padding_mask": kpm},
                          lambda m, i: m(i["query"], i["key"], i["value"], key_padding_mask=i["key_padding_mask"]))

        # TransformerDecoderLayer: a causal float target mask and a memory key padding mask (post-norm);
        # pre-norm GELU batch-first with a target key padding mask and a bool memory mask
        torch.manual_seed(7)
        m = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
        mkpm = torch.zeros(3, 6, dtype=torch.bool)
        mkpm[0, 5] = mkpm[2, 0] = True
        write_module_case(f, "decoder_post", m,
                          {"tgt": leaf(5, 3, 8), "memory": leaf(6, 3, 8),
                           "tgt_mask": nn.Transformer.generate_square_subsequent_mask(5).double(),
                           "memory_key_padding_mask": mkpm},
                          lambda m, i: (m(i["tgt"], i["memory"], tgt_mask=i["tgt_mask"],
                                          memory_key_padding_mask=i["memory_key_padding_mask"]), None))
        torch.manual_seed(8)
        m = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
        tkpm = torch.zeros(3, 5, dtype=torch.bool)
        tkpm[1, 3] = tkpm[1, 4] = True
        mm = torch.rand(5, 4) < 0.3
        mm[:, 0] = False  # every query may attend to memory position 0
        write_module_case(f, "decoder_pre_bf", m,
                          {"tgt": leaf(3, 5, 8), "memory": leaf(3, 4, 8), "tgt_key_padding_mask": tkpm,
                           "memory_mask": mm},
                          lambda m, i: (m(i["tgt"], i["memory"], memory_mask=i["memory_mask"],
                                          tgt_key_padding_mask=i["tgt_key_padding_mask"]), None))
        torch.manual_seed(9)
        layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
        m = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8))
        write_module_case(f, "decoder_stack", m, {"tgt": leaf(4, 2, 8), "memory": leaf(3, 2, 8)},
                          lambda m, i: (m(i["tgt"], i["memory"]), None))

        # nn.Transformer: 2 encoder layers, 1 decoder layer, a causal target mask
        torch.manual_seed(10)
        m = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16,
                           dropout=0.0)
        write_module_case(f, "transformer", m,
                          {"src": leaf(5, 2, 8), "tgt": leaf(4, 2, 8),
                           "tgt_mask": nn.Transformer.generate_square_subsequent_mask(4).double()},
                          lambda m, i: (m(i["src"], i["tgt"], tgt_mask=i["tgt_mask"]), None))

        # MultiheadAttention with add_bias_kv and add_zero_attn (S + 2 keys): a float attn_mask and a
        # key padding mask, which both tools extend over the appended keys
        torch.manual_seed(11)
        m = nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True)
        kpm = torch.zeros(3, 5, dtype=torch.bool)
        kpm[0, 4] = kpm[2, 0] = True
        write_module_case(f, "mha_bias_kv_zero_attn", m,
                          {"query": leaf(4, 3, 8), "key": leaf(5, 3, 8), "value": leaf(5, 3, 8),
                           "key_padding_mask": kpm, "attn_mask": torch.randn(4, 5).double()},
                          lambda m, i: m(i["query"], i["key"], i["value"], key_padding_mask=i["key_padding_mask"],
                                         attn_mask=i["attn_mask"]))
        # add_zero_attn alone: self-attention, batch-first, a bool [N·heads, L, S] mask
        torch.manual_seed(12)
        m = nn.MultiheadAttention(8, 2, add_zero_attn=True, batch_first=True)
        write_module_case(f, "mha_zero_attn_bf", m, {"x": leaf(3, 4, 8), "attn_mask": torch.rand(6, 4, 4) < 0.4},
                          lambda m, i: m(i["x"], i["x"], i["x"], attn_mask=i["attn_mask"]))


if __name__ == "__main__":
    main()
