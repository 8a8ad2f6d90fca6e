"""Manual check (not run in CI): TensorBoard's own reader loads what ft::utils::SummaryWriter
wrote. Usage: python3 tests/data/check_tensorboard.py <logdir>   (pip install tensorboard)"""
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

for run in sys.argv[1:]:
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    print(run, acc.Tags())
    for tag in acc.Tags()["scalars"]:
        print(" scalar", tag, [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)])
    for tag in acc.Tags()["histograms"]:
        for e in acc.Histograms(tag):
            h = e.histogram_value
            print(" histogram", tag, "step", e.step, "min %.4f max %.4f num %d sum %.4f buckets %d" %
                  (h.min, h.max, h.num, h.sum, len(h.bucket)))
    for tag in acc.Tags()["tensors"]:
        for e in acc.Tensors(tag):
            print(" tensor", tag, "step", e.step, e.tensor_proto.string_val)
