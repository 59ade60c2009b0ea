"""The map: the atlas' encodings as a class-coloured scatter in half-block cells, the current z marked."""

from functools import lru_cache

import torch
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.events import Click
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from models.text import printable
from vae_tui.latent_map import View, class_colour, pixel_of, scatter
from vae_tui.render import half_block_lines

BACKGROUND = "#000000"
MARKER_STYLE = Style(color="#000000", bgcolor="#ffffff", bold=True)
# the current z: "+" inside the view; outside it, an arrow on the edge pointing where it is
MARKERS = {(0, 0): "+", (-1, 0): "<", (1, 0): ">", (0, -1): "^", (0, 1): "v"}


@lru_cache(maxsize=256)
def pair_style(upper: int, lower: int) -> Style:
    """The style of a cell whose upper pixel shows class upper and lower pixel class lower (-1: empty)."""
    top = class_colour(upper) if upper >= 0 else BACKGROUND
    bottom = class_colour(lower) if lower >= 0 else BACKGROUND
    return Style(color=Color.parse(top), bgcolor=Color.parse(bottom))


def scatter_strips(drawn: torch.Tensor) -> list[Strip]:
    """Half-block lines of a class image (2 * rows, columns), -1 where empty."""
    return half_block_lines(drawn.tolist(), pair_style)


class MapView(Widget, can_focus=False):
    """Points (N, 2) in a View, coloured by class; the marker at the current z's coordinates. A click posts where."""

    DEFAULT_CSS = "MapView { width: 1fr; height: 1fr; background: #000000; }"

    class Clicked(Message):
        """The map was clicked at plane coordinates (u, v)."""

        def __init__(self, u: float, v: float) -> None:
            super().__init__()
            self.u, self.v = u, v

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.points: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.view: View | None = None
        self.marker: tuple[float, float] | None = None
        self._cache: tuple[tuple[int, int], list[Strip]] | None = None
        self._marker_cell: tuple[int, int, str] | None = None  # where it was last drawn
        self._marker_key: tuple | None = None
        self._marker_at: tuple[int, int, str] | None = None

    def show(self, points: torch.Tensor, labels: torch.Tensor, view: View) -> None:
        """Draw points (N, 2) with classes labels (N,) over view."""
        self.points, self.labels, self.view = points, labels, view
        self._cache = None
        self.refresh()

    def mark(self, u: float, v: float) -> None:
        """Put the marker at (u, v); only the rows it leaves and enters are redrawn."""
        self.marker = (u, v)
        cell = self.marker_cell()
        if cell != self._marker_cell:
            for old in (self._marker_cell, cell):
                if old is not None:
                    self.refresh(Region(0, old[1], self.size.width, 1))
            self._marker_cell = cell

    def marker_cell(self) -> tuple[int, int, str] | None:
        """The marker's (column, row, glyph): clamped to the edge, with an arrow, when outside the view."""
        if self.marker is None or self.view is None or not self.size.area:
            return None
        key = (self.marker, self.view, self.size)
        if self._marker_key != key:  # each line drawn asks: compute it once
            self._marker_key, self._marker_at = key, self._marker_cell_of(self.marker)
        return self._marker_at

    def _marker_cell_of(self, marker: tuple[float, float]) -> tuple[int, int, str]:
        width, height = self.size.width, self.size.height
        columns, rows = pixel_of(self.view, torch.tensor([marker]), width, 2 * height)
        column, row = columns.item(), rows.item() // 2
        side_x = -1 if column < 0 else 1 if column >= width else 0
        side_y = -1 if row < 0 else 1 if row >= height else 0
        glyph = MARKERS.get((side_x, 0) if side_x else (0, side_y), "+")
        return min(max(column, 0), width - 1), min(max(row, 0), height - 1), glyph

    def strips(self) -> list[Strip]:
        """The scatter's lines for the current size, cached until the points or the size change."""
        size = (self.size.width, self.size.height)
        if self.points is None or self.view is None:
            return []
        if self._cache is None or self._cache[0] != size:
            drawn = scatter(self.points, self.labels, self.view, size[0], 2 * size[1])
            self._cache = (size, scatter_strips(drawn))
        return self._cache[1]

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        if y >= len(lines):
            return Strip.blank(self.size.width, self.rich_style)
        line = lines[y]
        cell = self._marker_cell = self.marker_cell()
        if cell is not None and cell[1] == y:
            column, _, glyph = cell
            line = Strip.join(
                [
                    line.crop(0, column),
                    Strip([Segment(glyph, MARKER_STYLE)], 1),
                    line.crop(column + 1, line.cell_length),
                ]
            )
        return line

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.view is None or not self.size.area:
            return
        view, width, height = self.view, self.size.width, self.size.height
        u = view.left + (offset.x + 0.5) / width * (view.right - view.left)
        v = view.top - (offset.y + 0.5) / height * (view.top - view.bottom)
        self.post_message(self.Clicked(u, v))


def legend(names: list[str], current: int) -> Text:
    """One line per class: its colour as two blocks, digit and name; the current class in reverse video."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for label, name in enumerate(names):
        if label:
            text.append("\n")
        text.append("\u2588\u2588 ", style=class_colour(label))
        text.append(f"{label} {printable(name)}", style="bold reverse" if label == current else "")
    return text
