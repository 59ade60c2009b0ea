"""The preview: the decoded image at the largest integer scale that fits, in half-block cells."""

import torch
from rich.segment import Segment
from textual.geometry import Region, Size
from textual.strip import Strip

from train.render import Line, fit_scale, image_lines, thumbnail
from vae_tui.widgets.kept_lines import KeptLines


class ImageView(KeptLines, can_focus=False):
    """Shows one image, (H, W) grey or (3, H, W) RGB, centred."""

    DEFAULT_CSS = "ImageView { width: 1fr; height: 1fr; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.pixels: torch.Tensor | None = None
        self._cache: tuple[Size, list[Strip]] | None = None  # the lines, for the widget's outer size
        self._image_lines: tuple[Size, tuple[int, ...], int, int] | None = None  # for a size and an image shape:
        # where the image's lines are (the first, how many); the blank ones around them stay as long as these do

    def show(self, pixels: torch.Tensor) -> None:
        """Display pixels (H, W) or (3, H, W) in [0, 1]; an image of the shape shown before repaints only its own
        lines."""
        if self.pixels is not None and torch.equal(self.pixels, pixels):
            return
        self.pixels = pixels
        self._cache = None
        placed = self._image_lines
        if placed is not None and placed[:2] == (self.outer_size, tuple(pixels.shape)):
            self.refresh(Region(0, placed[2], self.size.width, placed[3]))
        else:
            self.refresh()
        if self.display and self.outer_size.area:  # drawn now, not in the screen update: see Thumbnails.show
            self.render_lines(Region(0, 0, *self.outer_size))

    @property
    def scale(self) -> int:
        """The integer scale the image is drawn at for the current size (0: shrunk to fit)."""
        if self.pixels is None:
            return 0
        return fit_scale(*self.pixels.shape[-2:], self.size.height, self.size.width)

    def strips(self) -> list[Strip]:
        """Every line for the current size: the image's, centred in the width, with blank lines above and below;
        cached until the image, the size or the styles change, so a repaint only indexes it."""
        if self.pixels is None:
            return []
        outer = self.outer_size  # an attribute: the content size is looked up through the screen
        if self._cache is None or self._cache[0] != outer:
            size = self.size
            if scale := self.scale:
                lines = image_lines(self.pixels, scale)
                line_width = self.pixels.shape[-1] * scale
            else:  # smaller than one cell per pixel: shrink to what fits (area averaging), the aspect kept
                height, width = self.pixels.shape[-2:]
                fraction = min(size.width / width, 2 * size.height / height)
                shape = (max(2, int(height * fraction)), max(2, int(width * fraction)))
                lines = image_lines(thumbnail(self.pixels, shape))
                line_width = shape[1]
            self._cache = (outer, self._framed(lines, line_width, size))
        return self._cache[1]

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        if not 0 <= y < len(lines):
            return Strip.blank(self.size.width, self.line_styles()[0])
        return lines[y]

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache = self._image_lines = None  # the blank lines carry the background

    def _framed(self, lines: list[Line], line_width: int, size: Size) -> list[Strip]:
        """The widget's lines: each image line (line_width cells) centred in its width, blank lines above and below
        (the image's last lines dropped where it is taller than the widget)."""
        width, height, style = size.width, size.height, self.line_styles()[0]
        blank = Strip.blank(width, style)
        top = max(0, (height - len(lines)) // 2)
        framed = [blank] * top
        left = (width - line_width) // 2
        right = width - left - line_width
        before = [Segment(" " * left, style)] if left > 0 else []
        after = [Segment(" " * right, style)] if right > 0 else []
        for line in lines[: height - top]:
            if line_width > width:
                framed.append(Strip(line, line_width).crop(0, width))
            else:
                framed.append(Strip(before + line + after, width))  # one Strip a line: they cost
        assert self.pixels is not None
        self._image_lines = (self.outer_size, tuple(self.pixels.shape), top, len(framed) - top)
        return framed + [blank] * (height - len(framed))
