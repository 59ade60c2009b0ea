"""The runs browser's comparison of 4 runs of 100 epochs: from the key press to the plot on screen.

Four run folders are written here (100 metrics rows each, with the test loss's parts and the epoch's seconds; no
checkpoint is needed to plot), torch is imported first (as it is once a run has been opened), and then `c` is pressed
over the four marked runs in a headless browser at 120x40, --repeats times: each time until the comparison's plot
holds its 8 curves and a frame has been drawn after them, then escape. Also times `k` (the test reconstruction's
curves) on the open comparison. Prints the medians; the target is 0.5 s.
Usage: python bench/compare_plot.py [--repeats 7]
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EPOCHS = 100


def write_runs(root: Path, count: int = 4) -> None:
    """count run folders of EPOCHS metrics rows each, losses falling like a training's."""
    for run in range(count):
        folder = root / f"run-{run}"
        folder.mkdir(parents=True)
        rows = []
        for epoch in range(1, EPOCHS + 1):
            test = 240 + 60 / epoch + run
            rows.append(
                {
                    "epoch": epoch,
                    "train_loss": test + 2,
                    "test_loss": test,
                    "test_reconstruction": test - 12,
                    "test_kl": 12.0,
                    "seconds": 3.0,
                    "images_per_s": 20000.0,
                }
            )
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


async def measure(root: Path, repeats: int) -> tuple[list[float], list[float]]:
    import torch  # noqa: F401 (imported before the key press, as it is once a run has been opened)

    from vae_tui.run_view import CompareScreen, LossPlot
    from vae_tui.runs_app import RunsApp

    app = RunsApp(root)
    opened, cycled = [], []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("space", "down", "space", "down", "space", "down", "space")
        for _ in range(repeats):
            started = time.perf_counter()
            await pilot.press("c")
            while not (isinstance(app.screen, CompareScreen) and len(app.screen.query_one(LossPlot)._datasets) == 8):
                await asyncio.sleep(0.001)
            await app.screen.query_one(LossPlot).wait_for_refresh()
            opened.append(time.perf_counter() - started)
            started = time.perf_counter()
            await pilot.press("k")
            await app.screen.query_one(LossPlot).wait_for_refresh()
            cycled.append(time.perf_counter() - started)
            await pilot.press("escape")
            await pilot.pause()
    return opened, cycled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_runs(Path(tmp))
        opened, cycled = asyncio.run(measure(Path(tmp), args.repeats))
    print(f"c over 4 runs of {EPOCHS} epochs: median {statistics.median(opened) * 1000:.0f} ms", end="")
    print(f" (min {min(opened) * 1000:.0f}, max {max(opened) * 1000:.0f}; target 500)")
    print(f"k on the comparison: median {statistics.median(cycled) * 1000:.0f} ms (max {max(cycled) * 1000:.0f})")


if __name__ == "__main__":
    main()
