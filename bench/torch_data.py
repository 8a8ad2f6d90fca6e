"""PyTorch's DataLoader on the workload of bench_data.cpp: one shuffled epoch of 60000 float
images of 1x28x28 and int64 labels in batches of 256 (TensorDataset, default collate).
Run: /usr/bin/python3 bench/torch_data.py [--cuda]   (prints the median of 5 epochs)"""
import statistics, sys, time
import torch
from torch.utils.data import DataLoader, TensorDataset


def epoch_ms(loader, cuda):
    t0 = time.perf_counter()
    for x, y in loader:
        if cuda:
            x, y = x.cuda(non_blocking=True), y.cuda(non_blocking=True)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def main():
    cuda = "--cuda" in sys.argv
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(60000, 1, 28, 28), torch.randint(0, 10, (60000,)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for workers in (0, 1, 2, 4):
        for pin in ((True,) if cuda else (False, True)):
            if pin and not torch.cuda.is_available():
                continue
            loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=workers, pin_memory=pin,
                                persistent_workers=workers > 0)
            epoch_ms(loader, cuda)  # warm up (starts the workers)
            times = [epoch_ms(loader, cuda) for _ in range(5)]
            print(f"workers={workers} pin={int(pin)}: {statistics.median(times):.1f} ms an epoch")


if __name__ == "__main__":
    main()
