"""The epoch preview under the training bars: test images beside their reconstructions, and samples, in
half-block cells drawn by the renderer the explorer uses too (train/render.py), sized to the terminal."""

import torch
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.text import Text

from train.render import image_row

RESERVED_ROWS = 6  # the preview takes at most the terminal's height minus these (the bars, the prompt)
MAX_SIDE = 28  # pixels per image side: the images' own size up to this (larger ones shrunk), else half that
GAP = 1


class Preview:
    """One epoch's pictures: originals and reconstructions (N, H, W) grey or (N, 3, H, W) RGB, samples (M, ...)
    (for the CVAE, one per class), pixel values in [0, 1]; a rich renderable that fits the console it is drawn on."""

    def __init__(
        self, epoch: int, originals: torch.Tensor, reconstructions: torch.Tensor, samples: torch.Tensor, per_class: bool
    ) -> None:
        self.epoch, self.per_class = epoch, per_class
        self.originals, self.reconstructions, self.samples = originals, reconstructions, samples
        self._drawn: tuple[tuple[int, int], list] | None = None

    def side(self, width: int, height: int) -> int | None:
        """The largest image side whose two rows (each under a caption) fit in width x height cells, at least one
        pair wide; None when not even 2:1 fits."""
        own = min(MAX_SIDE, self.originals.shape[-1])
        for side in (own, own // 2):
            if 2 * (1 + (side + 1) // 2) <= height and 2 * side <= width:
                return side
        return None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The preview's lines, computed once per size: the bars around it are redrawn several times a second."""
        size = (options.max_width, console.height)
        if self._drawn is None or self._drawn[0] != size:
            self._drawn = (size, list(self._lines(*size)))
        yield from self._drawn[1]

    def _lines(self, width: int, height: int) -> RenderResult:
        side = self.side(width, height - RESERVED_ROWS)
        if side is None:
            return
        pairs = min(len(self.originals), (width + GAP) // (2 * side + GAP))
        images = torch.cat([self.originals[:pairs], self.reconstructions[:pairs]], dim=-1)  # (pairs, ..., H, 2W)
        samples = min(len(self.samples), (width + GAP) // (side + GAP))
        what = f"one per class, 0 to {len(self.samples) - 1} left to right" if self.per_class else "prior draws"
        yield Text(f"epoch {self.epoch}: test images beside their reconstructions", style="bold", no_wrap=True)
        yield from self._row(images, (side, 2 * side))
        yield Text(f"samples ({what})", style="bold", no_wrap=True)
        yield from self._row(self.samples[:samples], (side, side))

    @staticmethod
    def _row(images: torch.Tensor, shape: tuple[int, int]) -> RenderResult:
        """Images shrunk to shape (h, w) side by side, GAP blank columns between, as lines of segments."""
        for line in image_row(images, shape, GAP):
            yield from line
            yield Segment.line()


def preview_images(
    originals: torch.Tensor, reconstructions: torch.Tensor, samples: torch.Tensor, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the preview shows from the grids' tensors (on the CPU): the samples, for the CVAE (num_classes given,
    samples in rows of one class), the first of every class."""
    if num_classes:
        samples = samples.view(num_classes, -1, *samples.shape[1:])[:, 0]
    return originals.cpu(), reconstructions.cpu(), samples.cpu()
