"""A strip of small decoded images under a caption, each over its label; the current one is marked, a click picks."""

import torch
from rich.segment import Segment
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from train.render import fitting_labels, label_cells
from vae_tui.layout import GAP, Grid
from vae_tui.render import image_row


class Thumbnails(Widget, can_focus=False):
    """Thumbnails in a grid whose size the screen sets (see vae_tui.layout)."""

    COMPONENT_CLASSES = {"thumbnails--current"}
    DEFAULT_CSS = """
    Thumbnails { height: auto; width: auto; }
    Thumbnails > .thumbnails--current { color: $text-accent; text-style: bold; }
    """

    class Picked(Message):
        """A thumbnail was clicked."""

        def __init__(self, thumbnails: "Thumbnails", index: int) -> None:
            super().__init__()
            self.thumbnails, self.index = thumbnails, index

        @property
        def control(self) -> "Thumbnails":
            return self.thumbnails

    def __init__(self, label_variants: list[list[str]], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.label_variants = label_variants  # longest first: the first whose labels fit the thumbnails is shown
        self.grid = Grid(len(label_variants[0]), 2, 1)
        self.caption = ""
        self.images: torch.Tensor | None = None  # (count, H, W)
        self.current: int | None = None
        self._rows: tuple[Grid, list[list[Strip]]] | None = None  # each grid row's lines, for the grid they fit

    def arrange(self, grid: Grid) -> None:
        """Draw at this grid's thumbnail size and columns."""
        if grid != self.grid:
            self.grid = grid
            self.refresh(layout=True)

    def show(self, caption: str, images: torch.Tensor, current: int | None) -> None:
        """Display images under caption, marking the current one; repaint only when something changed."""
        same_images = self.images is not None and torch.equal(self.images, images)
        if same_images and (caption, current) == (self.caption, self.current):
            return
        self.caption, self.current = caption, current
        if not same_images:
            self.images = images
            self._rows = None
        self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.grid.height

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self.grid.width

    def _image_rows(self) -> list[list[Strip]]:
        """Each grid row's half-block lines, cached while the images and the grid stay the same."""
        if self._rows is None or self._rows[0] != self.grid:  # show() drops them when the images change
            columns, size = self.grid.columns, self.grid.size
            assert self.images is not None
            rows = [image_row(self.images[i : i + columns], size, GAP) for i in range(0, len(self.images), columns)]
            self._rows = (self.grid, rows)
        return self._rows[1]

    def _label_line(self, start: int) -> Strip:
        labels = fitting_labels(self.label_variants, self.grid.size)[start : start + self.grid.columns]
        current = None if self.current is None else self.current - start
        marked = self.get_component_rich_style("thumbnails--current")
        segments = []
        for index, cell in enumerate(label_cells(labels, self.grid.size, current)):
            if index:
                segments.append(Segment(" " * GAP, self.rich_style))
            segments.append(Segment(cell, marked if index == current else self.rich_style))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.images is None:
            return Strip.blank(width, self.rich_style)
        if y == 0:
            line = Strip([Segment(self.caption, self.rich_style)])
        else:
            lines_per_row = (self.grid.size + 1) // 2 + 1
            row, line_index = divmod(y - 1, lines_per_row)
            rows = self._image_rows()
            if row >= len(rows):
                return Strip.blank(width, self.rich_style)
            start = row * self.grid.columns
            line = rows[row][line_index] if line_index < lines_per_row - 1 else self._label_line(start)
        return line.extend_cell_length(width, self.rich_style).crop(0, width)

    def index_at(self, x: int, y: int) -> int | None:
        """The thumbnail (or its label) at content cell (x, y), if any."""
        lines_per_row = (self.grid.size + 1) // 2 + 1
        if y < 1 or x < 0:
            return None
        row, column = (y - 1) // lines_per_row, min(x // (self.grid.size + GAP), self.grid.columns - 1)
        index = row * self.grid.columns + column
        return index if index < self.grid.count and x < self.grid.width else None

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and (index := self.index_at(offset.x, offset.y)) is not None:
            self.post_message(self.Picked(self, index))
