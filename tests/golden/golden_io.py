"""Shared writer for the golden files read by tests/golden/golden.hpp.

One record per line: <name> <dtype f32|f64|i64> <rank> <sizes...> <values...>, values in C order.
Floats are written with repr() of the exact (double) value, so they round-trip exactly.
"""

import torch

_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.int64: "i64"}


def write(f, name, tensor):
    """Writes one record to the text file f. A python float / int is a rank-0 f64 / i64."""
    if isinstance(tensor, bool) or not isinstance(tensor, (int, float, torch.Tensor)):
        raise TypeError(f"{name}: cannot write {type(tensor).__name__}")
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.tensor(tensor, dtype=torch.int64 if isinstance(tensor, int) else torch.float64)
    t = tensor.detach().cpu().contiguous()
    dtype = _DTYPES[t.dtype]
    conv = int if dtype == "i64" else float
    values = [repr(conv(v)) for v in t.reshape(-1).tolist()]
    f.write(" ".join([name, dtype, str(t.dim())] + [str(s) for s in t.shape] + values) + "\n")
