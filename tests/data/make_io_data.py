"""Writes the reference files of tests/test_io.cpp with the real packages (run with the
pyenv python3 that has numpy 2.x and safetensors 0.8; the outputs are committed):
    python3 tests/data/make_io_data.py"""
import os
import numpy as np
from safetensors.numpy import save_file

here = os.path.dirname(os.path.abspath(__file__))
p = lambda name: os.path.join(here, name)

# every dtype, ranks 0..3, an empty tensor, one metadata key (the package orders metadata
# keys by hash, so only one key gives reproducible bytes)
save_file({
    "weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "bias": np.array([-1.5, 2.25], dtype=np.float64),
    "steps": np.array(7, dtype=np.int64),
    "index": np.array([[1, -2], [3, -4]], dtype=np.int32),
    "pixels": np.array([0, 127, 255], dtype=np.uint8),
    "mask": np.array([[[True, False]]]),
    "empty": np.zeros((0, 3), dtype=np.float32),
}, p("reference.safetensors"), metadata={"format": "pt"})

np.save(p("f4_2x3.npy"), np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
np.save(p("i8_scalar.npy"), np.array(-42, dtype=np.int64))
np.save(p("b1_vector.npy"), np.array([True, False, True]))
np.save(p("u1_empty.npy"), np.zeros((2, 0), dtype=np.uint8))
np.save(p("f8_bigendian.npy"), np.array([1.5, -2.0, 3.25], dtype=">f8"))
np.save(p("i4_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)))
np.save(p("f4_fortran_2x3x4.npy"), np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)))
with open(p("f4_v2.npy"), "wb") as f:  # the 2.0 header (4-byte length)
    np.lib.format.write_array(f, np.array([1.0, 2.0], dtype=np.float32), version=(2, 0))

# the two-byte floating types: numpy has float16 but no bfloat16, whose bits (uint16) are
# serialised through the package's TensorSpec with the dtype named
from safetensors import TensorSpec, serialize  # noqa: E402

halves = np.array([[1.5, -2.0], [65504.0, 2.0**-24]], dtype=np.float16)
bf_bits = np.array([0x3FC0, 0xC000, 0x7F7F, 0x0001, 0xFF80], dtype=np.uint16)  # 1.5 -2 max denorm_min -inf
with open(p("half.safetensors"), "wb") as f:
    f.write(serialize({
        "h": TensorSpec(dtype="float16", shape=list(halves.shape), data_ptr=halves.ctypes.data, data_len=halves.nbytes),
        "bf": TensorSpec(dtype="bfloat16", shape=[5], data_ptr=bf_bits.ctypes.data, data_len=bf_bits.nbytes),
        "f": TensorSpec(dtype="float32", shape=[1], data_ptr=np.array([0.5], np.float32).ctypes.data, data_len=4),
    }, metadata={"format": "pt"}))
np.save(p("f2_2x2.npy"), halves)

# a PyTorch LSTM's state_dict as safetensors.torch.save_file writes it: the parameters of
# tests/golden/rnn.txt's case lstm_2bi_bf (torch 1.13 wrote them), float32, PyTorch's names
# (tests/test_rnn.cpp loads the file into ft::nn::LSTM and compares the outputs)
state = {}
with open(os.path.join(here, "..", "golden", "rnn.txt")) as f:
    for line in f:
        parts = line.split()
        if not parts or not parts[0].startswith("lstm_2bi_bf.param."):
            continue
        rank = int(parts[2])
        shape = [int(v) for v in parts[3:3 + rank]]
        state[parts[0][len("lstm_2bi_bf.param."):]] = np.array(
            [float(v) for v in parts[3 + rank:]], dtype=np.float32).reshape(shape)
save_file(state, p("lstm_2bi.safetensors"), metadata={"format": "pt"})
