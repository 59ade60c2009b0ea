"""Training steps with freed memory kept in the process (train/memory.py) against glibc's default.

malloc's settings are per process and the default's dynamic thresholds cannot be put back
once changed, so each measurement is a fresh process: pairs of them, default then kept, one
after the other, so that a slow spell of the machine hits both. Each times --steps training
steps (forward, backward, fused Adam, batch 128) of the model `vae-tui train --arch ARCH` fits,
after 5 warm-up steps, and counts the page faults they took.
Prints each pair, the median ms per step of each mode, and the median of the pairs' ratios.
Usage: python bench/malloc_keep.py [--arch conv|mlp] [--pairs 5] [--steps 60]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import train.loop  # noqa: F401  denormals flushed, as for training
from models import build_model
from train.memory import keep_freed_memory
from train.settings import TrainSettings
if sys.argv[2] == "kept":
    assert keep_freed_memory()
torch.manual_seed(0)
model = build_model(TrainSettings(arch=sys.argv[3]).model_config(10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
x = torch.rand(128, 784)
def step():
    total = model.loss(x)[0]
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
for _ in range(5):
    step()
seconds, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(int(sys.argv[4])):
    started = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - started)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"ms": statistics.median(seconds) * 1e3, "faults_per_step": faults / len(seconds)}))
"""


def measure(mode: str, arch: str, steps: int) -> dict:
    argv = [sys.executable, "-c", CHILD, str(ROOT), mode, arch, str(steps)]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("mlp", "conv"), default="conv")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"default": [], "kept": []}
    for pair in range(args.pairs):
        for mode in runs:
            runs[mode].append(measure(mode, args.arch, args.steps))
        default, kept = runs["default"][-1], runs["kept"][-1]
        print(
            f"pair {pair + 1}: default {default['ms']:.2f} ms/step ({default['faults_per_step']:.0f} faults/step), "
            f"kept {kept['ms']:.2f} ({kept['faults_per_step']:.0f}), x{kept['ms'] / default['ms']:.3f}",
            flush=True,
        )
    for mode, values in runs.items():
        print(f"{mode:8} median {statistics.median(v['ms'] for v in values):.2f} ms/step")
    ratios = [k["ms"] / d["ms"] for d, k in zip(runs["default"], runs["kept"], strict=True)]
    print(f"kept/default: median of the pairs' ratios x{statistics.median(ratios):.3f} (arch {args.arch})")


if __name__ == "__main__":
    main()
