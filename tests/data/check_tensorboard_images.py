"""Manual check (not run in CI: it needs `pip install tensorboard pillow`): TensorBoard's own
reader loads the images ft::utils::SummaryWriter wrote, and they decode to the sizes recorded.
Usage: python3 tests/data/check_tensorboard_images.py <logdir>..."""
import io
import sys

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

for run in sys.argv[1:]:
    acc = EventAccumulator(run, size_guidance={"images": 0})
    acc.Reload()
    for tag in acc.Tags()["images"]:
        for e in acc.Images(tag):
            im = Image.open(io.BytesIO(e.encoded_image_string))
            assert im.size == (e.width, e.height), (tag, im.size, e.width, e.height)
            print(run, "image", tag, "step", e.step, "%dx%d" % (e.width, e.height), im.mode)
