"""The conv model's training step in NCHW against channels-last, and per thread count, interleaved in one process.

A third variant, "transposed", is the channels-last model with its last layer computed by
PyTorch's transposed convolution rather than models/conv.py's matrix product and fold.
Usage: python bench/conv_layout.py [--steps 40] [--repeats 5] [--threads 1,2]
Prints the median seconds per step of each variant and the ratio to NCHW at the same thread count.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import build_model  # noqa: E402
from train.settings import TrainSettings  # noqa: E402

torch.set_flush_denormal(True)


def step_seconds(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> float:
    """Median seconds of `steps` forward-backward-Adam steps on x."""
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        total = model.loss(x)[0]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def variant(layout: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model(TrainSettings(arch="conv").model_config(10))  # what `vae-tui train --arch conv` trains
    if layout == "nchw":
        model.to(memory_format=torch.contiguous_format)
    if layout == "transposed":
        model.fold_last = False
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    x = torch.rand(args.batch_size, 784, generator=torch.Generator().manual_seed(0))
    threads = sorted({int(t) for t in args.threads.split(",")})
    variants = {(layout, n): variant(layout) for n in threads for layout in ("nchw", "channels_last", "transposed")}
    seconds: dict[tuple[str, int], list[float]] = {key: [] for key in variants}
    for _ in range(args.repeats):  # interleaved: a slow spell of the machine hits every variant
        for (layout, n), (model, optimizer) in variants.items():
            torch.set_num_threads(n)
            step_seconds(model, optimizer, x, 3)  # warm-up
            seconds[layout, n].append(step_seconds(model, optimizer, x, args.steps))
    steps_per_epoch = -(-60000 // args.batch_size)
    for (layout, n), values in seconds.items():
        median = statistics.median(values)
        base = statistics.median(seconds["nchw", n])
        print(
            f"{layout:13} {n} thread(s): {median * 1e3:7.2f} ms/step = {median * steps_per_epoch:6.2f} s per epoch"
            f" of steps, x{median / base:.3f} of NCHW"
        )


if __name__ == "__main__":
    main()
