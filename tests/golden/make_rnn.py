#!/usr/bin/env python3
"""Writes tests/golden/rnn.txt: PyTorch's RNN, LSTM, GRU and their cells, forward and backward.

For each case (torch.manual_seed(case index) first) the module is built in float32 (PyTorch's
initialisation), then run in float64 on float32-representable values, so the records are the
exact results a float test compares with: the state_dict (<case>.param.<key>), the input
(<case>.input), the initial states when the case passes them (<case>.h0, <case>.c0), the outputs
(<case>.output, <case>.h_n, <case>.c_n; a cell's are h_n and c_n), random weights of the loss
L = Σ output·r + Σ h_n·rh + Σ c_n·rc (<case>.r, .rh, .rc) and the gradients of L for the input,
the initial states and every parameter (<case>.grad.<name>).

Run from the repository root with Debian's python3 (torch 1.13):
    /usr/bin/python3 tests/golden/make_rnn.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import os
import sys

import torch
from torch import nn

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rnn.txt")

# (case, module factory, input shape, states passed: "" / "h" / "hc")
CASES = [
    ("lstm", lambda: nn.LSTM(5, 7), (4, 3, 5), "hc"),
    ("lstm_2bi_bf", lambda: nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True), (3, 4, 5), ""),
    ("lstm_proj", lambda: nn.LSTM(5, 8, num_layers=2, proj_size=3), (4, 2, 5), "hc"),
    ("lstm_proj_bi", lambda: nn.LSTM(4, 5, proj_size=2, bidirectional=True), (3, 2, 4), ""),
    ("gru", lambda: nn.GRU(5, 7), (4, 3, 5), "h"),
    ("gru_2bi", lambda: nn.GRU(5, 6, num_layers=2, bidirectional=True), (5, 2, 5), "h"),
    ("gru_nobias_bf", lambda: nn.GRU(3, 4, bias=False, batch_first=True), (2, 5, 3), ""),
    ("rnn_tanh", lambda: nn.RNN(5, 7, num_layers=2), (4, 3, 5), "h"),
    ("rnn_relu_bi_bf", lambda: nn.RNN(5, 6, nonlinearity="relu", bidirectional=True, batch_first=True), (3, 4, 5), ""),
    ("lstm_cell", lambda: nn.LSTMCell(5, 7), (3, 5), "hc"),
    ("lstm_cell_nostate", lambda: nn.LSTMCell(4, 3, bias=False), (2, 4), ""),
    ("gru_cell", lambda: nn.GRUCell(5, 7), (3, 5), "h"),
    ("rnn_cell", lambda: nn.RNNCell(5, 7), (3, 5), "h"),
    ("rnn_cell_relu", lambda: nn.RNNCell(5, 6, nonlinearity="relu"), (3, 5), "h"),
]


# Packed batches (torch.nn.utils.rnn.pack_padded_sequence of a padded input): (case, module,
# padded input shape, lengths, enforce_sorted, states). Records as above, the output being the
# packed data (<case>.output, with <case>.batch_sizes and <case>.lengths), and pad_packed_sequence's
# padded output (<case>.padded).
PACKED_CASES = [
    ("packed_lstm_2bi", lambda: nn.LSTM(4, 5, num_layers=2, bidirectional=True), (5, 4, 4), [3, 5, 1, 4], False, "hc"),
    ("packed_gru_bf", lambda: nn.GRU(4, 5, batch_first=True), (3, 4, 4), [4, 2, 2], True, ""),
    ("packed_rnn_relu_bi", lambda: nn.RNN(3, 4, nonlinearity="relu", bidirectional=True), (4, 3, 3), [2, 4, 3], False,
     "h"),
    ("packed_lstm_proj", lambda: nn.LSTM(4, 6, proj_size=2), (4, 3, 4), [4, 3, 1], True, "hc"),
]


def state_shapes(m, x):
    """The initial states' shapes: [L·D, B, P] and [L·D, B, H] for layers, [B, ·] for cells."""
    if isinstance(m, nn.RNNCellBase):
        return (x.shape[0], m.hidden_size), (x.shape[0], m.hidden_size)
    batch = x.shape[0] if m.batch_first else x.shape[1]
    ld = m.num_layers * (2 if m.bidirectional else 1)
    p = getattr(m, "proj_size", 0) or m.hidden_size
    return (ld, batch, p), (ld, batch, m.hidden_size)


def write_results(f, case, m, x, h0, c0, out, h_n, c_n):
    """The outputs (None: absent), the loss's random weights, and the gradients of the loss."""
    loss = 0
    for name, t in (("output", out), ("h_n", h_n), ("c_n", c_n)):
        if t is None:
            continue
        write(f, f"{case}.{name}", t)
        r = torch.randn(*t.shape).double()
        write(f, f"{case}.r" + {"output": "", "h_n": "h", "c_n": "c"}[name], r)
        loss = loss + (t * r).sum()
    loss.backward()
    write(f, f"{case}.grad.input", x.grad)
    if h0 is not None:
        write(f, f"{case}.grad.h0", h0.grad)
    if c0 is not None:
        write(f, f"{case}.grad.c0", c0.grad)
    for name, p in m.named_parameters():
        write(f, f"{case}.grad.{name}", p.grad)


def main():
    with open(OUT, "w") as f:
        f.write("# PyTorch's recurrent layers for the ft::nn tests, written by tests/golden/make_rnn.py\n")
        f.write(f"# torch {torch.__version__}\n")
        for index, (case, make, shape, states) in enumerate(CASES):
            torch.manual_seed(index)
            m = make()
            for key, t in m.state_dict().items():
                write(f, f"{case}.param.{key}", t)
            m = m.double()
            x = torch.randn(*shape).double().requires_grad_(True)
            write(f, f"{case}.input", x.float())
            hs, cs = state_shapes(m, x)
            h0 = torch.randn(*hs).double().requires_grad_(True) if "h" in states else None
            c0 = torch.randn(*cs).double().requires_grad_(True) if "c" in states else None
            if h0 is not None:
                write(f, f"{case}.h0", h0.float())
            if c0 is not None:
                write(f, f"{case}.c0", c0.float())
            cell = isinstance(m, nn.RNNCellBase)
            lstm = isinstance(m, (nn.LSTM, nn.LSTMCell))
            if lstm:
                state = None if h0 is None else (h0, c0)
            else:
                state = h0
            y = m(x, state)
            if cell:
                out = None
                h_n, c_n = y if lstm else (y, None)
            else:
                out, rest = y
                h_n, c_n = rest if lstm else (rest, None)
            write_results(f, case, m, x, h0, c0, out, h_n, c_n)
        for index, (case, make, shape, lengths, enforce_sorted, states) in enumerate(PACKED_CASES):
            torch.manual_seed(100 + index)
            m = make()
            for key, t in m.state_dict().items():
                write(f, f"{case}.param.{key}", t)
            m = m.double()
            x = torch.randn(*shape).double().requires_grad_(True)
            write(f, f"{case}.input", x.float())
            write(f, f"{case}.lengths", torch.tensor(lengths))
            batch = len(lengths)
            ld = m.num_layers * (2 if m.bidirectional else 1)
            p = getattr(m, "proj_size", 0) or m.hidden_size
            h0 = torch.randn(ld, batch, p).double().requires_grad_(True) if "h" in states else None
            c0 = torch.randn(ld, batch, m.hidden_size).double().requires_grad_(True) if "c" in states else None
            if h0 is not None:
                write(f, f"{case}.h0", h0.float())
            if c0 is not None:
                write(f, f"{case}.c0", c0.float())
            packed = nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=m.batch_first,
                                                       enforce_sorted=enforce_sorted)
            lstm = isinstance(m, nn.LSTM)
            state = (None if h0 is None else (h0, c0)) if lstm else h0
            out, rest = m(packed, state)
            h_n, c_n = rest if lstm else (rest, None)
            write(f, f"{case}.batch_sizes", out.batch_sizes)
            padded, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=m.batch_first)
            write(f, f"{case}.padded", padded)
            write_results(f, case, m, x, h0, c0, out.data, h_n, c_n)


if __name__ == "__main__":
    main()
