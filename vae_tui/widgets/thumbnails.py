"""A strip of small decoded images under a caption, each over its label; the current one is marked, a click picks."""

import torch
from rich.segment import Segment
from rich.style import Style
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip

from train.render import fitting_labels, label_cells
from vae_tui.layout import GAP, Grid
from vae_tui.render import image_rows
from vae_tui.widgets.kept_lines import KeptLines


class Thumbnails(KeptLines, can_focus=False):
    """Thumbnails in a grid whose size the screen sets (see vae_tui.layout)."""

    COMPONENT_CLASSES = {"thumbnails--current"}
    LINE_COMPONENTS = ("thumbnails--current",)
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
        self._label_variants = label_variants  # longest first: the first whose labels fit the thumbnails is shown
        self.grid = Grid(len(label_variants[0]), 2, 1)
        self.caption = ""
        self.images: torch.Tensor | None = None  # (count, H, W)
        self.current: int | None = None
        self._rows: tuple[Grid, list[list[Strip]]] | None = None  # each grid row's lines, for the grid they fit
        self._lines: dict[int, Strip] = {}  # the widget's lines as drawn, by y: a repaint redraws the dirty ones
        self._lines_size, self._width = Size(0, 0), 0  # the outer size they were drawn for, and the content width

    @property
    def label_variants(self) -> list[list[str]]:
        return self._label_variants

    @label_variants.setter
    def label_variants(self, variants: list[list[str]]) -> None:
        if variants != self._label_variants:
            self._label_variants = variants
            self._lines.clear()
            self.refresh()

    def arrange(self, grid: Grid) -> None:
        """Draw at this grid's thumbnail size and columns."""
        if grid != self.grid:
            self.grid = grid
            self._lines.clear()
            self.refresh(layout=True)

    def show(self, caption: str, images: torch.Tensor, current: int | None) -> None:
        """Display images under caption, marking the current one; repaint only the lines that changed: the caption,
        the label lines of the old and the new current one, the images' lines (every line for another count).

        The new lines are drawn here, into this widget's cache and Textual's line cache, rather than when the screen
        update asks for them: Textual's screen updates run on a 1/TEXTUAL_FPS timer, and one that runs past its
        period makes the next wait a period more (a key press's frame came up to twice as late at 200x60); here the
        drawing runs as the message that brought the images is handled, before that timer fires, and the update
        only composes the cached lines."""
        same_images = self.images is not None and torch.equal(self.images, images)
        if same_images and (caption, current) == (self.caption, self.current):
            return
        full = self.images is None or self.images.shape != images.shape
        lines_per_row = (self.grid.size + 1) // 2 + 1
        changed: list[tuple[int, int]] = []  # (first line, count)
        if caption != self.caption:
            changed.append((0, 1))
        if current != self.current:
            changed.extend((self._label_y(index), 1) for index in (self.current, current) if index is not None)
        if not same_images:
            self.images = images
            self._rows = None
            rows = -(-len(images) // self.grid.columns)
            changed.extend((1 + row * lines_per_row, lines_per_row - 1) for row in range(rows))
        self.caption, self.current = caption, current
        if full:
            self._lines.clear()
            self.refresh()
        else:
            width = self.size.width
            for first, count in changed:
                for y in range(first, first + count):
                    self._lines.pop(y, None)
            self.refresh(*(Region(0, first, width, count) for first, count in changed))
        if self.display and self.outer_size.area:  # drawn now, not in the screen update that follows: see above
            self.render_lines(Region(0, 0, *self.outer_size))

    def _label_y(self, index: int) -> int:
        """The line of thumbnail index's label."""
        lines_per_row = (self.grid.size + 1) // 2 + 1
        return (index // self.grid.columns + 1) * lines_per_row

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # they carry the styles
        self._lines_size = Size(0, 0)  # the content width too (padding)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.grid.height

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self.grid.width

    def _image_rows(self) -> list[list[Strip]]:
        """Each grid row's half-block lines, cached while the images and the grid stay the same."""
        if self._rows is None or self._rows[0] != self.grid:  # show() drops them when the images change
            columns, size = self.grid.columns, self.grid.size
            assert self.images is not None
            self._rows = (self.grid, image_rows(self.images, size, columns, GAP))
        return self._rows[1]

    def _label_line(self, start: int, style: Style, marked: Style) -> Strip:
        labels = fitting_labels(self.label_variants, self.grid.size)[start : start + self.grid.columns]
        current = None if self.current is None else self.current - start
        segments = []
        for index, cell in enumerate(label_cells(labels, self.grid.size, current)):
            if index:
                segments.append(Segment(" " * GAP, style))
            segments.append(Segment(cell, marked if index == current else style))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        """Line y, kept until the images, the caption, the current one, the grid, the size or the styles change."""
        if self.outer_size != self._lines_size:  # an attribute: the content size is looked up through the screen
            self._lines.clear()
            self._lines_size, self._width = self.outer_size, self.size.width
        line = self._lines.get(y)
        if line is None:
            line = self._lines[y] = self._draw_line(y, self._width)
        return line

    def _draw_line(self, y: int, width: int) -> Strip:
        style, marked = self.line_styles()
        if self.images is None:
            return Strip.blank(width, style)
        if y == 0:
            line = Strip([Segment(self.caption, style)])
        else:
            lines_per_row = (self.grid.size + 1) // 2 + 1
            row, line_index = divmod(y - 1, lines_per_row)
            rows = self._image_rows()
            if row >= len(rows):
                return Strip.blank(width, style)
            start = row * self.grid.columns
            line = rows[row][line_index] if line_index < lines_per_row - 1 else self._label_line(start, style, marked)
        return line.extend_cell_length(width, style).crop(0, width)

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
