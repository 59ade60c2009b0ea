"""`train --data` on FashionMNIST written as PNG files against `train` on its IDX files: test loss and epoch time.

Needs the PNG folder that bench/folder_decode.py writes (train/<class>/N.png, test/<class>/N.png, the real 70,000
images) and Debian's dataset-fashion-mnist. For each seed, interleaved, runs `vae-tui train --epochs E --seed S
--no-preview` in a fresh process on the IDX files, then with `--data FOLDER` (its store built once before the
timed runs, as a second run on the same folder finds it), and reads each run's metrics.jsonl: the last epoch's
test loss and every epoch's seconds. Prints both paths' test losses per seed with their spread (max - min), and
the ratio of the folder path's median epoch time to the IDX path's (issue 24 asks at most 1.1 with the store warm).
Usage: python bench/folder_train.py [--folder /tmp/vae-tui-bench/fashion-png] [--epochs 1] [--seeds 0 1 2]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(out: Path, epochs: int, seed: int, data: Path | None) -> list[dict]:
    """One `vae-tui train` in a fresh process; its metrics rows."""
    command = [sys.executable, "-m", "vae_tui", "train", "--epochs", str(epochs), "--seed", str(seed)]
    command += ["--no-preview", "--out", str(out)] + (["--data", str(data)] if data else [])
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "vae-tui-bench" / "fashion-png")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not (args.folder / ".complete").exists():
        sys.exit(f"{args.folder}: run bench/folder_decode.py first (it writes the PNG folder)")
    subprocess.run(
        [sys.executable, "-m", "vae_tui", "data", str(args.folder)], check=True, cwd=ROOT, capture_output=True
    )
    losses: dict[str, list[float]] = {"idx": [], "folder": []}
    seconds: dict[str, list[float]] = {"idx": [], "folder": []}
    with tempfile.TemporaryDirectory() as runs:
        for seed in args.seeds:
            for path, data in (("idx", None), ("folder", args.folder)):
                rows = train(Path(runs) / f"{path}-{seed}", args.epochs, seed, data)
                losses[path].append(rows[-1]["test_loss"])
                seconds[path] += [row["seconds"] for row in rows]
                print(f"seed {seed} {path:6}: test loss {rows[-1]['test_loss']:.2f}, epoch {rows[-1]['seconds']:.2f} s")
    for path in ("idx", "folder"):
        values = losses[path]
        print(
            f"{path:6}: test loss after {args.epochs} epochs {', '.join(f'{v:.2f}' for v in values)}"
            f" (spread {max(values) - min(values):.2f}); median epoch {statistics.median(seconds[path]):.2f} s"
        )
    ratio = statistics.median(seconds["folder"]) / statistics.median(seconds["idx"])
    print(f"folder epoch / IDX epoch: {ratio:.2f} (medians of every epoch; target <= 1.1)")


if __name__ == "__main__":
    main()
