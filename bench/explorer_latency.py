"""Explorer latency: key press to refreshed frame, on the map too, and launch to first image next to `import torch`.

Key latency is measured from posting the key event to the end of the compositor update that
first paints the frame it produced (the screen's frame listener says which frame; it can run
before that paint, so the paint itself is timed; headless, so writing it to a terminal is not),
with the strip on, over a few hundred presses back to back (no Pilot pause loops). The map rows
do the same in map mode at 120x40 (the atlas' 2,000 points), each press a cursor move: z
changes, the map's marker, the image beside it and the latent panel are redrawn.
Launch is the wall time of a fresh process that opens the bundled CVAE headless and
exits on its first decoded frame, beside that of `python -c "import torch"`, both medians.
The kind outside64 is docs/examples/vanilla_vae.py's model (a 64x64 RGB tanh VAE of latent 128 in the VAE
collections' style, 2.1 M decoder weights), seeded and untrained, through models/outside.py as `explore --code`
opens it, with an atlas of 2,000 seeded random test images. The kind rgb64-conv is no bundled model: a conv
CVAE of 3x64x64 images (10 classes, the conv recipe's sizes:
hidden 384, latent 20), seeded and untrained (a decode costs the same whatever the weights), with an atlas of 2,000
seeded random test images, made in this process; its launch row is left out.
Usage: python bench/explorer_latency.py [--presses 300] [--kind cvae|vae|cvae-conv|vae-conv|rgb64-conv]
       [--kind outside64] [--size 100x32]
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vae_tui  # noqa: E402, F401  first, as in `vae-tui explore`: it sets Textual's frame pacing

LAUNCH_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import argparse, asyncio, torch
from pathlib import Path
from vae_tui.commands.explore import resolve
torch.set_num_threads(1)
checkpoint, source = resolve(argparse.Namespace(checkpoint=None, pretrained="{kind}"))
from vae_tui.app import create_app
app = create_app(checkpoint, source, Path("exports"))
async def first_frame(pilot):
    while app.explorer.frame is None:
        await asyncio.sleep(0.001)
    app.exit()
app.run(headless=True, size=(100, 32), auto_pilot=first_frame)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def key_latencies(kind: str, presses: int, size: tuple[int, int], on_map: bool = False) -> list[float]:
    import torch
    from textual import events

    from models import load_checkpoint
    from vae_tui.app import create_app
    from vae_tui.commands.explore import pretrained_path

    torch.set_num_threads(1)  # as `vae-tui explore` runs
    if kind == "rgb64-conv":
        checkpoint = rgb64_checkpoint()
    elif kind == "outside64":
        checkpoint = outside64_checkpoint()
    else:
        checkpoint = load_checkpoint(pretrained_path(kind))
    app = create_app(checkpoint, "bench", Path("exports"))
    latencies: list[float] = []
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.explorer
        progress = asyncio.Event()  # a frame reported on screen, or painted
        paints: dict[int, float] = {}  # by frame version: when the first compositor update after it was set ended
        shown: list[int] = []  # the versions of the frames the screen reports on screen
        compositor_refresh = screen._compositor_refresh

        def paint() -> None:  # the screen's own, noting when each frame reached the terminal
            frame = screen.frame
            compositor_refresh()
            if frame is not None and frame.version not in paints:
                paints[frame.version] = time.perf_counter()
                progress.set()

        def on_shown(frame) -> None:
            shown.append(frame.version)
            progress.set()

        screen._compositor_refresh = paint
        screen.frame_listeners.append(on_shown)
        keys = ["l", "l", "h", "h", "j"]  # every press changes the picture; z stays bounded
        if on_map:
            await pilot.press("m")
            await app.workers.wait_for_complete()
            await pilot.pause()
            keys = ["l", "l", "h", "h", "k", "k", "j", "j"]  # cursor moves about where it starts
        for i in range(presses):
            key = keys[i % len(keys)]
            if on_map:
                pass
            elif key == "j" and screen.state.selected == screen.state.latent_dim - 1:
                keys[-1] = key = "k"
            elif key == "k" and screen.state.selected == 0:
                keys[-1] = key = "j"
            shown.clear()
            paints.clear()
            started = time.perf_counter()
            app.post_message(events.Key(key, key))
            deadline = time.perf_counter() + 5
            # the screen's report can come before the paint (call_after_refresh ahead of the widgets' updates)
            while not shown or shown[-1] not in paints:
                progress.clear()
                try:  # asyncio.wait_for, not asyncio.timeout: Python 3.10 has only the former
                    await asyncio.wait_for(progress.wait(), max(0.0, deadline - time.perf_counter()))
                except asyncio.TimeoutError:
                    raise SystemExit(f"no frame within 5 s after press {i} ({key})") from None
            latencies.append(paints[shown[-1]] - started)
    return latencies


def rgb64_checkpoint() -> "Checkpoint":  # noqa: F821 (imported inside)
    """A seeded, untrained conv CVAE of 3x64x64 images with an atlas of 2,000 random test images."""
    import torch

    from models import Checkpoint, ModelConfig, build_model
    from train.atlas import atlas_of

    torch.manual_seed(0)
    config = ModelConfig.for_images(3, 64, kind="cvae", arch="conv", hidden_dim=384, latent_dim=20, num_classes=10)
    model = build_model(config).eval()
    images = torch.randint(0, 256, (2000, 3, 64, 64), dtype=torch.uint8)
    labels = torch.arange(2000) % 10
    checkpoint = Checkpoint(
        model=model,
        dataset="folder:rgb64",
        class_names=[f"class {i}" for i in range(10)],
        epoch=1,
        class_centroids=torch.zeros(10, 20),
    )
    with torch.no_grad():
        checkpoint.atlas = atlas_of(model, images.reshape(2000, -1).float() / 255, labels, images)
    return checkpoint


def outside64_checkpoint() -> "Checkpoint":  # noqa: F821 (imported inside)
    """docs/examples/vanilla_vae.py's model, seeded and untrained, as explore --code opens it, with an atlas."""
    import argparse

    import torch

    from models.outside import OutsideVAE
    from train.atlas import atlas_of
    from vae_tui.outside import outside_checkpoint

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "examples"))
    from vanilla_vae import VanillaVAE

    torch.manual_seed(0)
    model = OutsideVAE(VanillaVAE(), decoder_output="tanh")
    checkpoint = outside_checkpoint(model, argparse.Namespace(class_names=None))
    images = torch.randint(0, 256, (2000, 3, 64, 64), dtype=torch.uint8)
    model.use_classes(10)
    checkpoint.class_names = [f"class {i}" for i in range(10)]
    checkpoint.class_centroids = torch.zeros(10, 128)
    checkpoint.atlas = atlas_of(model, images.reshape(2000, -1).float() / 255, torch.arange(2000) % 10, images)
    return checkpoint


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=300)
    parser.add_argument(
        "--kind",
        default="cvae",
        choices=["vae", "cvae", "vae-conv", "cvae-conv", "rgb64-conv", "outside64"],
        help="model",
    )
    parser.add_argument("--size", default="100x32")
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--json", default="bench/results/explorer_latency.json")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    latencies = asyncio.run(key_latencies(args.kind, args.presses, (width, height)))[10:]  # skip warm-up
    ms = [1000 * s for s in latencies]
    print(
        f"key -> refreshed frame ({args.kind}, {args.size}, strip on, {len(ms)} presses): "
        f"median {statistics.median(ms):.2f} ms, p95 {percentile(ms, 0.95):.2f} ms, max {max(ms):.2f} ms"
    )
    map_ms = [1000 * s for s in asyncio.run(key_latencies(args.kind, args.presses, (120, 40), on_map=True))[10:]]
    print(
        f"map: cursor move -> refreshed map and image ({args.kind}, 120x40, {len(map_ms)} presses): "
        f"median {statistics.median(map_ms):.2f} ms, p95 {percentile(map_ms, 0.95):.2f} ms, max {max(map_ms):.2f} ms"
    )
    if args.kind in ("rgb64-conv", "outside64"):
        return
    root = str(Path(__file__).resolve().parents[1])
    launch_code = LAUNCH_SCRIPT.format(root=root, kind=args.kind)
    torch_times, launch_times = [], []
    for _ in range(args.launches):  # interleaved, so both see the same machine load
        torch_times.append(wall([sys.executable, "-c", "import torch"]))
        launch_times.append(wall([sys.executable, "-c", launch_code]))
    torch_median, launch_median = statistics.median(torch_times), statistics.median(launch_times)
    print(f"python -c 'import torch': median {torch_median:.2f} s over {args.launches}")
    over = launch_median - torch_median
    print(f"launch to first image:    median {launch_median:.2f} s ({over:+.2f} s over import torch)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {
                "key_latency_ms": {
                    "median": statistics.median(ms),
                    "p95": percentile(ms, 0.95),
                    "max": max(ms),
                    "n": len(ms),
                },
                "map_cursor_latency_ms": {
                    "median": statistics.median(map_ms),
                    "p95": percentile(map_ms, 0.95),
                    "max": max(map_ms),
                    "n": len(map_ms),
                },
                "import_torch_s": torch_times,
                "launch_to_first_image_s": launch_times,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
