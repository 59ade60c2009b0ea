"""Interpolation playback: frames put on screen per second while `p` plays, headless at 120x40.

Marks a at the start z and b at a prior draw, presses p, and counts for 5 s the frames the
player put on screen (each counted by the `call_after_refresh` after it was shown). The target
is at least 12 of the 15 frames/s the player aims for. Median of --runs runs.
Usage: python bench/playback_fps.py [--kind cvae|vae|cvae-conv|vae-conv] [--runs 3] [--seconds 5]
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vae_tui  # noqa: E402, F401  first, as in `vae-tui explore`: it sets Textual's frame pacing


async def frames_per_second(kind: str, seconds: float) -> float:
    import torch

    from models import load_checkpoint
    from vae_tui.app import create_app
    from vae_tui.commands.explore import pretrained_path

    torch.set_num_threads(1)  # as `vae-tui explore` runs
    app = create_app(load_checkpoint(pretrained_path(kind)), "bench", Path("exports"))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("a", "r")
        await app.workers.wait_for_complete()
        await pilot.press("b", "p")
        player = app.explorer.playback.player
        started, counted = time.perf_counter(), player.count
        await asyncio.sleep(seconds)
        shown, elapsed = player.count - counted, time.perf_counter() - started
        await pilot.press("x")
    return shown / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="cvae", choices=["vae", "cvae", "vae-conv", "cvae-conv"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rates = [asyncio.run(frames_per_second(args.kind, args.seconds)) for _ in range(args.runs)]
    shown = ", ".join(f"{rate:.1f}" for rate in rates)
    print(
        f"playback ({args.kind}, 120x40): median {statistics.median(rates):.1f} frames/s"
        f" over {args.runs} runs ({shown})"
    )


if __name__ == "__main__":
    main()
