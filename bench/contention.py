"""Training beside other busy processes: `vae-tui train` and the demo's loop with 0, 1 and 2 competitors.

Each competitor is a Python process spinning on one core (`while True: pass`), the simplest job another user runs.
For each load, the settings are run interleaved, --repeats times each:
  default      `vae-tui train --epochs E --no-preview` as a user types it (the thread count follows the load)
  threads=N    the same with --threads N, for every N from 1 to the usable CPUs (the best of these is the target)
  demo         bench/demo_loop.py's loop, one epoch at torch's default threads (--demo to include it: under load,
               its epoch takes minutes)
Prints, per load, the median wall time of the whole command and of its epochs (metrics.jsonl's train_seconds summed),
the threads each epoch trained on, and default's ratio to --threads 1 and to the best fixed setting; writes JSON.
Usage: python bench/contention.py [--loads 0 1 2] [--epochs 2] [--repeats 3] [--fixed 1 2] [--demo] [--arch mlp]
       [--json out.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.threads import usable_cpus  # noqa: E402

SPIN = "while True: pass"


def start_competitors(count: int) -> list[subprocess.Popen]:
    """count busy processes, one core each."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]


def run_train(flags: list[str], epochs: int, arch: str) -> dict:
    """One `vae-tui train` in a fresh process: its wall time, its epochs' training seconds and thread counts."""
    with tempfile.TemporaryDirectory(prefix="contention-") as folder:
        out = Path(folder) / "run"
        command = [sys.executable, "-m", "vae_tui", "train", "--epochs", str(epochs), "--arch", arch]
        command += ["--no-preview", "--out", str(out), *flags]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        wall = time.perf_counter() - started
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "wall": wall,
        "epochs": sum(r["train_seconds"] for r in rows),
        "threads": [r.get("threads") for r in rows],
        "test_loss": rows[-1]["test_loss"],
    }


def run_demo() -> dict:
    """One epoch of the demo's loop in a fresh process."""
    code = (
        "import time; from bench.demo_loop import run_demo, torchvision_root; seconds = [];"
        "run_demo(1, root=torchvision_root(), on_epoch=lambda e, s: seconds.append(s)); print(seconds[0])"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return {"wall": time.perf_counter() - started, "epochs": float(result.stdout.split()[-1]), "threads": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--demo", action="store_true")
    parser.add_argument(
        "--fixed", type=int, nargs="+", help="the --threads settings to run (default: 1 to the usable CPUs)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = args.fixed or range(1, usable_cpus() + 1)
    fixed = {f"threads={n}": ["--threads", str(n)] for n in counts}
    settings = {"default": [], **fixed}
    env_note = {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_", "MKL_"))}
    print(f"usable CPUs {usable_cpus()}, epochs {args.epochs}, arch {args.arch}, repeats {args.repeats} {env_note}")
    report = {}
    for load in args.loads:
        competitors = start_competitors(load)
        try:
            time.sleep(0.5)
            results: dict[str, list[dict]] = {name: [] for name in settings}
            if args.demo:
                results["demo"] = []
            for _ in range(args.repeats):
                for name, flags in settings.items():
                    results[name].append(run_train(flags, args.epochs, args.arch))
                if args.demo:
                    results["demo"].append(run_demo())
        finally:
            for process in competitors:
                process.kill()
                process.wait()
        medians = {name: statistics.median(r["wall"] for r in runs) for name, runs in results.items()}
        best = min(fixed, key=lambda name: medians[name])
        print(f"\n{load} competitor(s): median of {args.repeats} (wall s of the command; epochs' training s)")
        for name, runs in results.items():
            epochs = statistics.median(r["epochs"] for r in runs)
            threads = " ".join(str(r["threads"]) for r in runs) if name != "demo" else "torch's default"
            print(f"  {name:<10} {medians[name]:7.1f} s  {epochs:7.1f} s  threads per epoch: {threads}")
        one = (
            f"default / threads=1: {medians['default'] / medians['threads=1']:.2f}   " if "threads=1" in medians else ""
        )
        print(f"  {one}default / best fixed ({best}): {medians['default'] / medians[best]:.2f}")
        report[str(load)] = {"runs": results, "medians": medians, "best_fixed": best}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
