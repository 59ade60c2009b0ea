"""The preview: the decoded image at the largest integer scale that fits, in half-block cells."""

import torch
from textual.strip import Strip
from textual.widget import Widget

from vae_tui.render import fit_scale, half_block_strips, thumbnail, to_levels


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
        """The image's lines for the current size, centred in its width, cached until the image or size changes."""
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
            self._cache = (size, self._centred(lines))
        return self._cache[1]

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        top = (self.size.height - len(lines)) // 2
        if not lines or not 0 <= y - top < len(lines):
            return Strip.blank(self.size.width, self.rich_style)
        return lines[y - top]

    def _centred(self, lines: list[Strip]) -> list[Strip]:
        """Each line centred in the widget's width, padded with its background."""
        width, style = self.size.width, self.rich_style
        centred = []
        for line in lines:
            left = max(0, (width - line.cell_length) // 2)
            padded = Strip.join([Strip.blank(left, style), line])
            centred.append(padded.extend_cell_length(width, style).crop(0, width))
        return centred
