"""Checkpoint loading: a tiny checkpoint, the bundled VAE, and one whose metadata claims absurd sizes.

The absurd one holds the tiny weights but says hidden_dim = input_dim = 60000: a loader that
built the model from the metadata first would initialise 60000 x 60000 floats (14 GB) before
finding that the weights disagree. vae-tui compares the shapes first, so refusing it should
cost about as much as loading the tiny one. Rows are timed interleaved in one process (so all
see the same machine load), medians over --repeats, ratios against the tiny checkpoint.
Measured here (2-core CPU shared with other work, load average 2.8, 200 repeats): tiny 4.26 ms,
bundled VAE 22.2 ms (x5.21), absurd sizes refused in 2.96 ms (x0.69); peak RSS grew 3.4 MB.
Usage: python bench/checkpoint_load.py [--repeats 200]
"""

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import Checkpoint, CheckpointError, ModelConfig, build_model, load_checkpoint, save_checkpoint  # noqa: E402
from vae_tui.commands.explore import pretrained_path  # noqa: E402

TINY = ModelConfig(hidden_dim=32, latent_dim=4)


def tiny_checkpoint() -> Checkpoint:
    torch.manual_seed(0)
    return Checkpoint(
        model=build_model(TINY),
        dataset="mnist",
        class_names=[str(i) for i in range(10)],
        epoch=1,
        class_centroids=torch.randn(10, TINY.latent_dim),
    )


def write_files(folder: Path) -> dict[str, Path]:
    """The tiny checkpoint and the absurd one: the same weights, signed, under metadata that lies about sizes."""
    tiny = save_checkpoint(folder / "tiny.safetensors", tiny_checkpoint())
    absurd = tiny_checkpoint()
    absurd.model.config = replace(TINY, hidden_dim=60000, input_dim=60000)  # what save_checkpoint writes as sizes
    return {"tiny": tiny, "absurd": save_checkpoint(folder / "absurd.safetensors", absurd)}


def load_tiny(path: Path) -> None:
    load_checkpoint(path)


def refuse_absurd(path: Path) -> None:
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        if "has shape" not in str(e):
            raise SystemExit(f"refused for another reason: {e}") from None
    else:
        raise SystemExit("the absurd checkpoint loaded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", default="bench/results/checkpoint_load.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `vae-tui explore` loads
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(Path(folder))
        rows: dict[str, tuple[Callable[[Path], None], Path]] = {
            "tiny (reference)": (load_tiny, files["tiny"]),
            "bundled VAE": (load_tiny, pretrained_path("vae")),
            "absurd sizes (refused)": (refuse_absurd, files["absurd"]),
        }
        times: dict[str, list[float]] = {name: [] for name in rows}
        for load, path in rows.values():  # warm-up: imports, first allocations
            load(path)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(args.repeats):
            for name, (load, path) in rows.items():
                started = time.perf_counter()
                load(path)
                times[name].append(time.perf_counter() - started)
        rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    reference = statistics.median(times["tiny (reference)"])
    print(f"checkpoint load, medians of {args.repeats}, interleaved, 1 thread:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<24} {1000 * median:8.3f} ms  x{median / reference:6.2f}")
    print(f"peak RSS growth over the timed loads: {rss_growth_mb:.1f} MB")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    result = {name: {"median_s": statistics.median(v), "ratio": statistics.median(v) / reference, "s": v}
              for name, v in times.items()}  # fmt: skip
    Path(args.json).write_text(json.dumps({"rows": result, "peak_rss_growth_mb": rss_growth_mb}, indent=2))


if __name__ == "__main__":
    main()
