"""Large latents: the explorer's key press and the latent panel's redraw at latent 512 against latent 20.

The models are MLP VAEs of 28x28 images (hidden 16, seeded, untrained, every fourth dimension made active) with an
atlas of 200 seeded random images, as tests/test_large_latents.py builds them: only the latent size differs, so
the ratio is what 512 rows cost. Key press: bench/explorer_latency.py's measurement (key event to the paint of its
frame, 100x32, strip on; l l h h j, so one press in five moves the selection and may scroll the panel).
Panel: LatentPanel.update_state alone after a nudge, the work a key press asks of the panel. Rounds interleave the
two sizes, so both see the same machine load.
Usage: python bench/large_latents.py [--rounds 3] [--presses 300]
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import vae_tui  # noqa: E402, F401  first, as in `vae-tui explore`: it sets Textual's frame pacing

SIZES = (20, 512)


def checkpoint(latent_dim: int) -> "Checkpoint":  # noqa: F821 (imported inside)
    """The MLP VAE of latent_dim described above, with its atlas."""
    import torch

    from models import Checkpoint, ModelConfig, build_model
    from train.atlas import atlas_of

    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=latent_dim, hidden_dim=16, input_dim=784)).eval()
    with torch.no_grad():
        model.to_mu.weight[::4] *= torch.linspace(3, 12, len(model.to_mu.weight[::4]))[:, None]
    images = torch.randint(0, 256, (200, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(200) % 10
    atlas = atlas_of(model, images.reshape(200, -1).float() / 255, labels, images)
    centroids = atlas.mu.reshape(-1, 10, latent_dim).mean(0)  # each class's mean encoding: z starts inside the data
    return Checkpoint(model, "mnist", [str(i) for i in range(10)], 1, centroids, atlas=atlas)


async def panel_update_ms(latent_dim: int, updates: int = 2000) -> float:
    """The median time of the latent panel's update_state after a nudge, in ms."""
    from vae_tui.app import create_app
    from vae_tui.widgets.latent_panel import LatentPanel

    app = create_app(checkpoint(latent_dim), "bench", Path("exports"))
    async with app.run_test(size=(100, 32)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        state, panel = app.explorer.state, app.explorer.query_one(LatentPanel)
        state.listeners.clear()  # the panel alone: no decoding, no screen update
        times = []
        for i in range(updates):
            state.nudge(1 if i % 2 else -1)
            started = time.perf_counter()
            panel.update_state()
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def key_ms(latent_dim: int, presses: int) -> tuple[float, float]:
    """Median and p95 key press to painted frame, in ms, through bench/explorer_latency.py's measurement."""
    import explorer_latency

    explorer_latency.rgb64_checkpoint = lambda: checkpoint(latent_dim)  # the model its kind rgb64-conv opens
    ms = [1000 * s for s in asyncio.run(explorer_latency.key_latencies("rgb64-conv", presses, (100, 32)))[10:]]
    return statistics.median(ms), explorer_latency.percentile(ms, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presses", type=int, default=300)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as `vae-tui explore` runs
    panel: dict[int, list[float]] = {size: [] for size in SIZES}
    keys: dict[int, list[tuple[float, float]]] = {size: [] for size in SIZES}
    for _ in range(args.rounds):
        for size in SIZES:
            panel[size].append(asyncio.run(panel_update_ms(size)))
            keys[size].append(key_ms(size, args.presses))
    for size in SIZES:
        medians = ", ".join(f"{m:.1f}" for m, _ in keys[size])
        p95s = ", ".join(f"{p:.1f}" for _, p in keys[size])
        print(f"latent {size:>3}: key press median {medians} ms, p95 {p95s} ms")
        print(f"            panel update_state median {', '.join(f'{m:.3f}' for m in panel[size])} ms")
    ratio = statistics.median(m for m, _ in keys[512]) / statistics.median(m for m, _ in keys[20])
    print(f"key press, latent 512 / latent 20 (medians of the rounds' medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
