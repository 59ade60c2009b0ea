"""The strip under the preview: a traversal of the selected dimension and, for the CVAE, every class."""

import torch
from rich.segment import Segment
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from vae_tui.decoding import TRAVERSAL_VALUES, Frame
from vae_tui.render import image_row

MIN_THUMBNAIL = 8  # pixels: smaller than this, show one strip at a time
MAX_THUMBNAIL = 28
RESERVED_ROWS = 17  # title, footer and the smallest preview stay visible


class StripView(Widget, can_focus=False):
    """Rows of small decoded images, each under a one-line caption."""

    DEFAULT_CSS = "StripView { height: auto; }"

    def __init__(self, class_names: list[str], conditional: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.class_names, self.conditional = class_names, conditional
        self.frame: Frame | None = None
        self.dim = 0
        self.show_classes = False  # when only one strip fits: which one
        self._cache: dict[str, tuple] | None = None  # per strip: (size and caption, images, lines)

    def show(self, frame: Frame, dim: int) -> None:
        """Display the strips of frame, for the selected dimension dim; repaint only strips that changed."""
        first = self.frame is None
        before = self._strips()
        self.frame, self.dim = frame, dim
        if first:
            self.refresh(layout=True)  # the height depends on the size and the toggle, not on the images
            return
        shown, size = self._layout(self.size.width, self.size.height)
        rows = 1 + (size + 1) // 2
        for index, (caption, images) in enumerate(self._strips()):
            old_caption, old_images = before[index]
            if caption != old_caption or not torch.equal(images, old_images):
                position = 0 if len(shown) == 1 else index
                if len(shown) > 1 or shown[0][0] == caption:
                    self.refresh(Region(0, position * rows, self.size.width, rows))

    def toggle(self) -> None:
        """Switch between traversal and classes when only one fits."""
        self.show_classes = not self.show_classes and self.conditional
        self._cache = None
        self.refresh(layout=True)

    def _strips(self) -> list[tuple[str, torch.Tensor]]:
        if self.frame is None:
            return []
        low, high = TRAVERSAL_VALUES[0], TRAVERSAL_VALUES[-1]
        strips = [(f"Traversal of z{self.dim} from {low:+.0f} to {high:+.0f}", self.frame.traversal)]
        if self.conditional and self.frame.classes is not None:
            names = " ".join(str(i) for i in range(len(self.class_names)))
            strips.append((f"Every class at this z: {names}", self.frame.classes))
        return strips

    def _layout(self, width: int, max_rows: int) -> tuple[list[tuple[str, torch.Tensor]], int]:
        """Which strips to show and at what thumbnail size, for width columns and max_rows rows."""
        strips = self._strips()
        if not strips:
            return [], 0
        for shown in (strips, [strips[1 if self.show_classes and len(strips) > 1 else 0]]):
            widest = max(len(images) for _, images in shown)
            by_width = (width - (widest - 1)) // widest
            by_height = 2 * (max_rows // len(shown) - 1)
            size = min(MAX_THUMBNAIL, by_width, by_height)
            if size >= MIN_THUMBNAIL or len(shown) == 1:
                return shown, max(size, 2)
        raise AssertionError("unreachable")

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        shown, size = self._layout(width, max(4, viewport.height - RESERVED_ROWS))
        return sum(1 + (size + 1) // 2 for _ in shown)

    def _lines(self) -> list[Strip]:
        """All lines at the current size; each strip's lines are cached while its images stay the same."""
        shown, size = self._layout(self.size.width, self.size.height)
        lines = []
        for caption, images in shown:
            hint = "  (t: other strip)" if len(shown) < len(self._strips()) else ""
            key = (size, caption + hint)
            cached = self._cache.get(caption.split(" ")[0]) if self._cache else None
            if cached is None or cached[0] != key or not torch.equal(cached[1], images):
                cached = (key, images, [Strip([Segment(caption + hint, self.rich_style)]), *image_row(images, size)])
                self._cache = {**(self._cache or {}), caption.split(" ")[0]: cached}
            lines.extend(cached[2])
        return lines

    def render_line(self, y: int) -> Strip:
        lines = self._lines()
        line = lines[y] if y < len(lines) else Strip.blank(self.size.width)
        return line.extend_cell_length(self.size.width, self.rich_style).crop(0, self.size.width)
