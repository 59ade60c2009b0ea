"""Training throughput of 1 process with 2 threads against 2 processes (torchrun, gloo) with 1 thread each.

Runs `vae-tui train --epochs E --no-preview` on the real FashionMNIST (Debian's dataset-fashion-mnist), interleaved,
--repeats times each: `--threads 2` in one process, then `--nproc 2 --threads 1`. Reads each run's metrics.jsonl and
takes the images per second of every epoch after the first (training steps only; the first pays for warm-up).
Prints each run, the medians, and the ratio 2 processes / 1 process (above 1: the two processes are faster).
Usage: python bench/ddp_throughput.py [--epochs 3] [--repeats 3] [--arch mlp|conv]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(out: Path, epochs: int, arch: str, nproc: int | None) -> list[float]:
    command = [sys.executable, "-m", "vae_tui", "train", "--epochs", str(epochs), "--arch", arch, "--no-preview"]
    command += ["--out", str(out), "--device", "cpu"]
    command += ["--threads", "2"] if nproc is None else ["--nproc", str(nproc), "--threads", "1"]
    subprocess.run(command, check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [row["images_per_s"] for row in rows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="mlp", choices=["mlp", "conv"])
    args = parser.parse_args()
    speeds: dict[str, list[float]] = {"1 process x 2 threads": [], "2 processes x 1 thread": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, nproc in (("1 process x 2 threads", None), ("2 processes x 1 thread", 2)):
                rates = run(Path(tmp) / f"{i}-{nproc}", args.epochs, args.arch, nproc)
                speeds[name].append(statistics.median(rates))
                print(f"{name}: {speeds[name][-1]:,.0f} img/s", flush=True)
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    for name, value in medians.items():
        print(f"{name}: median {value:,.0f} img/s")
    ratio = medians["2 processes x 1 thread"] / medians["1 process x 2 threads"]
    print(f"ratio 2 processes / 1 process ({args.arch}): {ratio:.2f}")


if __name__ == "__main__":
    main()
