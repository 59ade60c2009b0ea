"""The explorer's start: from the app's creation to the first frame of its state on screen, headless, in-process.

Loads a bundled checkpoint once, then starts the explorer --starts times at --size (Textual's run_test), each
until the frame of its state is drawn (tests/helpers.py's settle), and prints the median wall and CPU time of a
start and the number of full screen renders Textual made per start (each costs tens of milliseconds).
Usage: python bench/explorer_start.py [--kind cvae] [--size 100x32] [--starts 10]
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COLORTERM", "truecolor")

import textual._compositor  # noqa: E402 (after the path and the environment)

from models import load_checkpoint  # noqa: E402
from tests.helpers import settle  # noqa: E402
from vae_tui.app import create_app  # noqa: E402
from vae_tui.commands.explore import pretrained_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="cvae")
    parser.add_argument("--size", default="100x32")
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    checkpoint = load_checkpoint(pretrained_path(args.kind))
    full_renders = 0
    render = textual._compositor.Compositor.render_full_update

    def counted(self: object, *a: object, **k: object) -> object:
        nonlocal full_renders
        full_renders += 1
        return render(self, *a, **k)

    textual._compositor.Compositor.render_full_update = counted

    async def start() -> None:
        app = create_app(checkpoint, "bench")
        async with app.run_test(size=(width, height)) as pilot:
            await settle(app, pilot)

    asyncio.run(start())  # imports and caches warm
    walls, cpus = [], []
    full_renders = 0
    for _ in range(args.starts):
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(start())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(
        f"{args.kind} at {args.size}: a start takes {statistics.median(walls) * 1000:.0f} ms "
        f"({statistics.median(cpus) * 1000:.0f} ms of CPU), {full_renders / args.starts:.1f} full renders "
        f"(medians of {args.starts})"
    )


if __name__ == "__main__":
    main()
