"""What the training preview costs: drawing it on an 80x24 terminal against the epoch time of the same run.

Trains the default VAE on FashionMNIST for --epochs epochs with the rich bars and the preview
drawn to an 80x24, 256-colour terminal console (in memory), then times, on the last epoch's
preview: its first draw (the thumbnails computed), and one redraw of the bars with the preview
under them less the bars alone (what each of the bars' 4 refreshes a second adds). Medians.
Usage: python bench/preview_cost.py [--epochs 3] [--repeats 50]
"""

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import tempfile
    from dataclasses import replace

    import torch
    from rich.console import Console, Group

    from train.data import load_dataset
    from train.loop import StopFlag, Trainer
    from train.preview import Preview
    from train.progress import REFRESHES_WITH_PREVIEW, RichProgress
    from train.settings import TrainSettings

    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True, color_system="256")
    epochs: list[float] = []
    shown: list[Preview] = []

    class Recording(RichProgress):
        def epoch_done(self, result: object) -> None:
            super().epoch_done(result)
            epochs.append(result.seconds)

        def preview(self, preview: Preview) -> None:
            super().preview(preview)
            shown.append(preview)

    data = load_dataset("fashion-mnist")
    settings = replace(TrainSettings(), epochs=args.epochs)
    with tempfile.TemporaryDirectory() as out:
        progress = Recording(console)
        trainer = Trainer(settings, data, Path(out), torch.device("cpu"), progress)
        with progress:
            trainer.run(StopFlag())
    last = shown[-1]

    def draw(renderable: object) -> float:
        console.file = io.StringIO()
        started = time.perf_counter()
        console.print(renderable)
        return time.perf_counter() - started

    first = []
    for _ in range(args.repeats):
        fresh = Preview(last.epoch, last.originals, last.reconstructions, last.samples, last.per_class)
        first.append(draw(fresh))
    bars = progress.bars
    with_preview = [draw(Group(bars.make_tasks_table(bars.tasks), last)) for _ in range(args.repeats)]
    alone = [draw(bars.make_tasks_table(bars.tasks)) for _ in range(args.repeats)]
    epoch = statistics.median(epochs)
    first_ms, redraw_ms = (
        1000 * statistics.median(first),
        1000 * (statistics.median(with_preview) - statistics.median(alone)),
    )
    print(f"epoch (median of {len(epochs)}): {epoch:.2f} s")
    print(f"preview, first draw: {first_ms:.2f} ms = {100 * first_ms / 1000 / epoch:.3f}% of an epoch")
    rate = REFRESHES_WITH_PREVIEW
    print(
        f"preview, each redraw under the bars: {redraw_ms:.2f} ms;"
        f" at {rate} a second, {rate * redraw_ms / 10:.2f}% of the time"
    )


if __name__ == "__main__":
    main()
