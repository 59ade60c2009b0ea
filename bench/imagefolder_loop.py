"""`vae-tui train --data` against the usual loop: torchvision's ImageFolder and a DataLoader with a worker per core.

Needs the PNG folder that bench/folder_decode.py writes (FashionMNIST as train/<class>/N.png, test/<class>/N.png).
The reference, kept here: ImageFolder(FOLDER/train) with Grayscale + ToTensor, DataLoader(batch 128, shuffle,
num_workers = usable cores), the demo's MLP VAE (bench/demo_loop.py: 784-400-20, BCE-sum + KL, Adam 1e-3),
--epochs epochs, every file decoded again each epoch, and its test loss on ImageFolder(FOLDER/test) at the end.
vae-tui: `vae-tui train --data FOLDER --epochs E --no-preview` in a fresh process with an empty cache, so its
whole run includes listing and decoding the folder into its store (and its own test evaluation, atlas, grids and
checkpoints every epoch). Both are timed whole, interleaved, --repeats times; prints the medians and the ratio
(issue 24 asks vae-tui to be at least 2x faster over 5 epochs).
Usage: python bench/imagefolder_loop.py [--folder /tmp/vae-tui-bench/fashion-png] [--epochs 5] [--repeats 1]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.demo_loop import DemoVAE  # noqa: E402 (after the path it needs)
from train.threads import usable_cpus  # noqa: E402


def imagefolder_loop(folder: Path, epochs: int, workers: int) -> tuple[float, float]:
    """The usual loop, whole: (seconds, test loss per image)."""
    from torchvision import datasets, transforms

    started = time.perf_counter()
    torch.manual_seed(0)
    transform = transforms.Compose([transforms.Grayscale(), transforms.ToTensor()])
    train = datasets.ImageFolder(str(folder / "train"), transform=transform)
    test = datasets.ImageFolder(str(folder / "test"), transform=transform)
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True, num_workers=workers)
    model = DemoVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for x, _ in loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(x)
            bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
            loss = bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss.backward()
            optimizer.step()
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x, _ in torch.utils.data.DataLoader(test, batch_size=1000, num_workers=workers):
            recon, mu, logvar = model(x)
            bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
            total += (bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())).item()
    return time.perf_counter() - started, total / len(test)


def vae_tui_run(folder: Path, epochs: int) -> tuple[float, str]:
    """`vae-tui train --data` in a fresh process with an empty cache: (seconds, its last epoch line)."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        command = [sys.executable, "-m", "vae_tui", "train", "--data", str(folder), "--epochs", str(epochs)]
        started = time.perf_counter()
        result = subprocess.run(
            [*command, "--no-preview", "--out", f"{out}/run"], env=env, cwd=ROOT, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        result.check_returncode()
    last = [line for line in result.stdout.splitlines() if line.startswith("epoch")][-1]
    return seconds, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "vae-tui-bench" / "fashion-png")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not (args.folder / ".complete").exists():
        sys.exit(f"{args.folder}: run bench/folder_decode.py first (it writes the PNG folder)")
    workers = usable_cpus()
    usual, ours = [], []
    for run in range(args.repeats):
        seconds, loss = imagefolder_loop(args.folder, args.epochs, workers)
        usual.append(seconds)
        print(f"run {run + 1}: ImageFolder + DataLoader({workers} workers): {seconds:.1f} s, test loss {loss:.2f}")
        seconds, last = vae_tui_run(args.folder, args.epochs)
        ours.append(seconds)
        print(f"run {run + 1}: vae-tui train --data, cold store: {seconds:.1f} s ({last})")
    ratio = statistics.median(usual) / statistics.median(ours)
    print(f"medians: the usual loop {statistics.median(usual):.1f} s, vae-tui {statistics.median(ours):.1f} s;")
    print(f"vae-tui is {ratio:.2f}x faster over {args.epochs} epochs, its decode included (target >= 2)")


if __name__ == "__main__":
    main()
