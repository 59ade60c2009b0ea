"""`vae-tui runs` on 500 run folders: a fresh process listing them, and the browser's first screen.

Builds 500 copies of one real finished run (a tiny model trained 3 epochs on IDX files written
here: its checkpoints, metrics and PNGs) in a temporary folder, then times, --repeats times
each and interleaved: `vae-tui runs DIR` with stdout piped (every header and metrics file is
read), a fresh process that opens the browser headless (80x24) and exits once its table holds
every run, and the interpreter's own start. Medians.
Usage: python bench/runs_listing.py [--runs 500] [--repeats 5]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.explorer_latency import wall  # noqa: E402 (after the path it needs)

BROWSER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from textual.widgets import DataTable
from vae_tui.runs_app import RunsApp
app = RunsApp(Path({runs!r}))
async def until_listed(pilot):
    while app.screen.query(DataTable).first().row_count < {count}:
        await asyncio.sleep(0.005)
    app.exit()
app.run(headless=True, size=(80, 24), auto_pilot=until_listed)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from dataclasses import replace

    import torch

    from tests.conftest import TINY_SETTINGS, QuietProgress, write_dataset
    from train.data import load_dataset
    from train.loop import StopFlag, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dataset(tmp / "data")
        one = tmp / "one"
        one.mkdir()
        data = load_dataset("mnist", data_dir=tmp / "data")
        Trainer(replace(TINY_SETTINGS, epochs=3), data, one, torch.device("cpu"), QuietProgress()).run(StopFlag())
        for i in range(args.runs):
            shutil.copytree(one, tmp / "runs" / f"run-{i:03d}")
        vae_tui = [sys.executable, "-m", "vae_tui", "runs", str(tmp / "runs")]
        browser = [sys.executable, "-c", BROWSER.format(root=str(ROOT), runs=str(tmp / "runs"), count=args.runs)]
        listing, python, first_screen = [], [], []
        for _ in range(args.repeats):
            python.append(wall([sys.executable, "-c", "pass"]))
            listing.append(wall(vae_tui))
            first_screen.append(wall(browser))
    print(f"python -c pass: median {statistics.median(python):.3f} s")
    print(f"vae-tui runs on {args.runs} runs, piped: median {statistics.median(listing):.3f} s over {args.repeats}")
    print(f"the browser's first screen, {args.runs} runs: median {statistics.median(first_screen):.3f} s")


if __name__ == "__main__":
    main()
