"""Training speed: the demo's loop, vae-tui's loop and the floor, in one process.

Rows (same data, model of --arch (mlp: 784-400-20), Adam 1e-3 and batch size):
  demo       torchvision FashionMNIST + ToTensor + DataLoader(shuffle=True), loss.item() per step
  vae-tui    train.loop.Trainer exactly as `vae-tui train` runs it (eval, PNGs, checkpoints)
  floor      forward, backward and fused Adam on one batch already in place: no data handling
  reference  (--arch conv only) issue 11's reference conv VAE as plain PyTorch (bench/conv_reference.py),
             in the demo's loop; the speed target is vae-tui's conv epoch at most 0.88x this row

vae-tui's row keeps freed memory in the process (train/memory.py) for the rest of it, so the rows
after it (the floor) run so too; those before it have glibc's defaults.
Every row runs with denormals flushed to zero (train.loop sets it on import, before the
thread pool starts, and a thread pool started without it cannot get it later): the demo
gets that speed-up too, so the ratio is not inflated by it. Alone, in its default mode,
the demo is slower: `python bench/demo_loop.py`.
Prints images/s and seconds per epoch (median of the epochs after the first), the ratios
and the peak RSS, and writes the same as JSON. vae-tui's last epoch also computes the exact
class centroids (a sixth of an epoch, once a run): with 4 or more epochs its row is the
median of the epochs between the first and the last, plus that extra spread over the
recipe's 20 epochs, as a run of the recipe pays it; with fewer the last epoch counts whole.
Usage: python bench/train_speed.py [--arch mlp|conv] [--device cpu] [--batch-size 128] [--epochs 5]
"""

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.conv_reference import DemoStyle, ReferenceConvVAE  # noqa: E402
from bench.demo_loop import run_demo, torchvision_root  # noqa: E402
from models import build_model  # noqa: E402
from train.data import load_dataset  # noqa: E402
from train.device import resolve_device  # noqa: E402
from train.loop import StopFlag, Trainer, TrainSettings  # noqa: E402
from train.progress import PlainProgress  # noqa: E402

TRAIN_IMAGES = 60000
RECIPE_EPOCHS = 20  # a run of the recipe: the one-off work of a run's last epoch is spread over these


class EpochClock(PlainProgress):
    """Records the wall time between epoch ends, writes included."""

    def __init__(self) -> None:
        self.total_epochs, self.seconds = 0, []

    def epoch_started(self, epoch: int, first_step: int) -> None:
        self.started = time.perf_counter()

    def epoch_done(self, result: object) -> None:
        self.seconds.append(time.perf_counter() - self.started)

    def message(self, text: str) -> None:
        pass


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def settings_for(arch: str, epochs: int, batch_size: int) -> TrainSettings:
    """What `vae-tui train --arch ARCH` runs with these epochs and batch size."""
    return TrainSettings(arch=arch, epochs=epochs, batch_size=batch_size)


def demo_seconds(epochs: int, batch_size: int, device: torch.device, **model: object) -> list[float]:
    """Seconds of each epoch of the demo's loop, on the demo's model or make_model's."""
    seconds: list[float] = []
    run_demo(epochs, batch_size, str(device), torchvision_root(), on_epoch=lambda e, s: seconds.append(s), **model)
    return seconds


def bench_demo(epochs: int, batch_size: int, device: torch.device, arch: str) -> list[float]:
    config = settings_for(arch, epochs, batch_size).model_config(10)
    if arch == "conv":
        return demo_seconds(epochs, batch_size, device, make_model=lambda: DemoStyle(build_model(config)))
    return demo_seconds(epochs, batch_size, device)


def bench_reference(epochs: int, batch_size: int, device: torch.device, arch: str) -> list[float]:
    return demo_seconds(epochs, batch_size, device, make_model=ReferenceConvVAE)


def bench_vae_tui(epochs: int, batch_size: int, device: torch.device, arch: str) -> list[float]:
    data = load_dataset("fashion-mnist")
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as out:
        Trainer(settings_for(arch, epochs, batch_size), data, Path(out), device, clock).run(StopFlag())
    return clock.seconds


def bench_floor(epochs: int, batch_size: int, device: torch.device, arch: str) -> list[float]:
    torch.manual_seed(0)
    model = build_model(settings_for(arch, epochs, batch_size).model_config(10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type in ("cpu", "cuda"))
    x = torch.rand(batch_size, 784, device=device)
    steps = -(-TRAIN_IMAGES // batch_size)
    seconds = []
    for _ in range(epochs):
        sync(device)
        started = time.perf_counter()
        for _ in range(steps):
            total = model.loss(x)[0]
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        sync(device)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="per row; the first is a warm-up")
    parser.add_argument("--rows", help="default: demo,vae-tui,floor; with --arch conv: reference first")
    parser.add_argument("--json", help="default: bench/results/train_speed[_conv].json")
    args = parser.parse_args()
    args.rows = args.rows or ("reference,demo,vae-tui,floor" if args.arch == "conv" else "demo,vae-tui,floor")
    args.json = args.json or f"bench/results/train_speed{'_conv' if args.arch == 'conv' else ''}.json"
    device = resolve_device(args.device)
    benches = {"demo": bench_demo, "vae-tui": bench_vae_tui, "floor": bench_floor, "reference": bench_reference}
    results = {}
    print(
        f"arch {args.arch}, device {device}, batch {args.batch_size}, {args.epochs} epochs per row, "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for row in args.rows.split(","):
        seconds = benches[row](args.epochs, args.batch_size, device, args.arch)
        steady = seconds[1:] if len(seconds) > 1 else seconds
        once = 0.0
        if row == "vae-tui" and len(seconds) >= 4:  # its last epoch also computes exact centroids, once a run
            steady = seconds[1:-1]
            once = max(0.0, seconds[-1] - statistics.median(steady))
        median = statistics.median(steady) + once / RECIPE_EPOCHS
        results[row] = {
            "seconds_per_epoch": median,
            "images_per_s": TRAIN_IMAGES / median,
            "epochs": seconds,
            "once_per_run_s": once,
            "peak_rss_mb_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        print(
            f"{row:9} {median:7.3f} s/epoch  {TRAIN_IMAGES / median:10,.0f} img/s  "
            f"(epochs: {', '.join(f'{s:.2f}' for s in seconds)})",
            flush=True,
        )
        if once:
            print(
                f"          of which {once / RECIPE_EPOCHS:.3f} s is the last epoch's {once:.2f} s extra (exact class "
                f"centroids, once a run) spread over the recipe's {RECIPE_EPOCHS} epochs"
            )
    ratios = {}
    if "vae-tui" in results:
        for other in ("reference", "demo", "floor"):
            if other in results:
                ratio = results["vae-tui"]["seconds_per_epoch"] / results[other]["seconds_per_epoch"]
                ratios[f"vae-tui/{other}"] = ratio
                print(f"vae-tui/{other}: {ratio:.3f} (time per epoch)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {
                "arch": args.arch,
                "device": str(device),
                "batch_size": args.batch_size,
                "rows": results,
                "ratios": ratios,
                "peak_rss_mb": peak,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
