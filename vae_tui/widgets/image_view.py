"""The preview: the decoded image at the largest integer scale that fits, in half-block cells."""

import torch
from rich.segment import Segment
from textual.strip import Strip
from textual.widget import Widget

from train.render import fit_scale, thumbnail, to_levels
from vae_tui.render import half_block_strips


class ImageView(Widget, can_focus=False):
    """Shows one greyscale image, centred."""

    DEFAULT_CSS = "ImageView { width: 1fr; height: 1fr; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.pixels: torch.Tensor | None = None
        self._cache: tuple[tuple[int, int], list[Strip]] | None = None

    def show(self, pixels: torch.Tensor) -> None:
        """Display pixels (H, W) in [0, 1]."""
        if self.pixels is not None and torch.equal(self.pixels, pixels):
            return
        self.pixels = pixels
        self._cache = None
        self.refresh()

    @property
    def scale(self) -> int:
        """The integer scale the image is drawn at for the current size (0: shrunk to fit)."""
        if self.pixels is None:
            return 0
        return fit_scale(*self.pixels.shape, self.size.height, self.size.width)

    def strips(self) -> list[Strip]:
        """Every line for the current size: the image's, centred in the width, with blank lines above and below;
        cached until the image, the size or the styles change, so a repaint only indexes it."""
        size = (self.size.width, self.size.height)
        if self.pixels is None:
            return []
        if self._cache is None or self._cache[0] != size:
            if scale := self.scale:
                lines = half_block_strips(to_levels(self.pixels), scale)
            else:  # smaller than one cell per pixel: shrink to what fits, the aspect kept
                height, width = self.pixels.shape
                fraction = min(self.size.width / width, 2 * self.size.height / height)
                shape = (max(2, int(height * fraction)), max(2, int(width * fraction)))
                lines = half_block_strips(to_levels(thumbnail(self.pixels, shape)))
            self._cache = (size, self._framed(lines))
        return self._cache[1]

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        if not 0 <= y < len(lines):
            return Strip.blank(self.size.width, self.rich_style)
        return lines[y]

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache = None  # the blank lines carry the background

    def _framed(self, lines: list[Strip]) -> list[Strip]:
        """The widget's lines: each image line centred in its width, blank lines above and below (the image's
        last lines dropped where it is taller than the widget)."""
        width, height, style = self.size.width, self.size.height, self.rich_style
        blank = Strip.blank(width, style)
        top = max(0, (height - len(lines)) // 2)
        framed = [blank] * top
        for line in lines[: height - top]:
            if line.cell_length > width:
                framed.append(line.crop(0, width))
                continue
            left = (width - line.cell_length) // 2
            right = width - left - line.cell_length
            segments = [Segment(" " * left, style), *line, Segment(" " * right, style)]
            framed.append(Strip([segment for segment in segments if segment.text], width))  # one Strip: they cost
        return framed + [blank] * (height - len(framed))
