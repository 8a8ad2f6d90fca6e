#!/usr/bin/env python3
"""Checks the ONNX files that tests/onnx/export_models.cpp wrote: onnx.checker.check_model with
full_check (types and shapes inferred through every node) passes, and ONNX Runtime's outputs on
<case>.x.npy (or <case>.x0.npy, <case>.x1.npy, ... for each input; a batch other than the one
exported: the batch is symbolic) equal fusedtensor's <case>.y.npy (or <case>.y0.npy,
<case>.y1.npy, ...) within 1e-5 (absolute, plus 1e-5 relative). A case named *_external must keep
its larger initializers in <case>.onnx.data (ONNX's external data), which both tools read.

    python3 tests/onnx/check_onnx.py <dir>      # pip install onnx onnxruntime (scripts/test.sh does)

Exit status 0 when every case passes, 1 when one fails, 77 (CTest's skip) without onnx or
onnxruntime installed.
"""
import glob
import os
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    print("skipped: %s (pip install onnx onnxruntime)" % e)
    sys.exit(77)


def main(directory):
    files = sorted(glob.glob(os.path.join(directory, "*.onnx")))
    if not files:
        print("no .onnx files in", directory)
        return 1
    failures = 0
    for path in files:
        case = os.path.basename(path)[: -len(".onnx")]
        try:
            if case.endswith("_external"):
                bare = onnx.load(path, load_external_data=False)
                outside = [t.name for t in bare.graph.initializer
                           if t.data_location == onnx.TensorProto.EXTERNAL]
                if not outside or not os.path.exists(path + ".data"):
                    raise AssertionError("no initializer in %s.data" % os.path.basename(path))
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            single = os.path.join(directory, case + ".x.npy")
            if os.path.exists(single):
                xs = [np.load(single)]
            else:  # several inputs: <case>.x0.npy, <case>.x1.npy, ... in the graph's input order
                xs = [np.load(os.path.join(directory, "%s.x%d.npy" % (case, k)))
                      for k in range(len(session.get_inputs()))]
            x = xs[0]
            results = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), xs)})
            single = os.path.join(directory, case + ".y.npy")
            wants = ([np.load(single)] if os.path.exists(single) else  # several outputs: <case>.y0.npy, ...
                     [np.load(os.path.join(directory, "%s.y%d.npy" % (case, k))) for k in range(len(results))])
            for k, (got, want) in enumerate(zip(results, wants)):
                if got.shape != want.shape:
                    raise AssertionError("output %d: shape %s, fusedtensor's %s" % (k, got.shape, want.shape))
                err = np.abs(got.astype(np.float64) - want.astype(np.float64))
                bound = 1e-5 + 1e-5 * np.abs(want.astype(np.float64))
                if not (err <= bound).all():
                    raise AssertionError("output %d: max |difference| %.3g" % (k, err.max()))
            ops = sorted({n.op_type for n in model.graph.node} - {"Identity"})
            print("ok   %-26s batch %d, %d nodes: %s" % (case, x.shape[0], len(model.graph.node), " ".join(ops)))
        except Exception as e:  # noqa: BLE001 - every case reports
            failures += 1
            print("FAIL %-26s %s: %s" % (case, type(e).__name__, e))
    print("%d of %d cases pass (onnx %s, onnxruntime %s)" % (len(files) - failures, len(files), onnx.__version__,
                                                             ort.__version__))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
