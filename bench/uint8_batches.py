"""Training steps on a training set kept as uint8 (each batch made float as drawn) against one kept as floats.

The training loop keeps the training set on the device as uint8 (train/device.py to_device_levels): a quarter of
the memory. This times the step that reads it (train/steps.py EagerStep) on the real FashionMNIST with the demo's
MLP (784-400-20, batch 128, Adam 1e-3) and with the conv recipe, both ways, interleaved in this process: --epochs
passes over the 60,000 training images each way and --repeats rounds, the same batches in the same order. Prints
the seconds per pass, their medians and the ratio uint8 / float (1.0: no cost).
Usage: python bench/uint8_batches.py [--arch mlp|conv] [--repeats 3] [--threads N]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import ModelConfig, build_model  # noqa: E402 (after the path it needs)
from train.data import load_dataset  # noqa: E402
from train.device import to_device_images, to_device_levels  # noqa: E402
from train.steps import EagerStep  # noqa: E402


def one_pass(train_x: torch.Tensor, train_y: torch.Tensor, arch: str, batch: int) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, hidden_dim=400 if arch == "mlp" else 384))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    step = EagerStep(model, optimizer, train_x, train_y, torch.zeros(()), torch.zeros(10, 20))
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        step(order[start : start + batch])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist")
    device = torch.device("cpu")
    floats, levels = to_device_images(data.train.images, device), to_device_levels(data.train.images, device)
    labels = data.train.labels
    times: dict[str, list[float]] = {"float": [], "uint8": []}
    for _ in range(args.repeats):
        for name, train_x in (("float", floats), ("uint8", levels)):
            times[name].append(one_pass(train_x, labels, args.arch, 128))
            print(f"{name:6s} {times[name][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"{args.arch}, {torch.get_num_threads()} threads: float median {medians['float']:.2f} s, uint8 median "
        f"{medians['uint8']:.2f} s, ratio uint8/float {medians['uint8'] / medians['float']:.3f}"
    )


if __name__ == "__main__":
    main()
