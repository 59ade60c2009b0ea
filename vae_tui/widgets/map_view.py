"""The map: the atlas' encodings as a scatter in half-block cells, coloured by class or by a value's step on a
colour ramp, the current z marked; and the legends of both."""

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
from vae_tui.latent_map import CLASS_COLOURS, ClassColours, View, pixel_of, scatter
from vae_tui.render import half_block_lines

BACKGROUND = "#000000"
MARKER_STYLE = Style(color="#000000", bgcolor="#ffffff", bold=True)
# the current z: "+" inside the view; outside it, an arrow on the edge pointing where it is
MARKERS = {(0, 0): "+", (-1, 0): "<", (1, 0): ">", (0, -1): "^", (0, 1): "v"}
# so that the marker is found among 2,000 points: a faint line through the empty cells of its row, and ticks at
# its column on the top and bottom rows (where those cells are empty)
GUIDE_STYLE = Style(color="#6c6c6c", bgcolor=BACKGROUND)
TICKS = ("\u25bc", "\u25b2")  # on the top row, on the bottom row


# the ramp of a value's steps, low to high (viridis' hues: ordered in lightness, readable on black and to most
# colour-blind eyes)
RAMP = ("#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725")


def colour_of(code: int, palette: tuple[str, ...]) -> str:
    """The colour of a pixel's code: its colour in palette (-1: empty)."""
    return BACKGROUND if code < 0 else palette[code]


@lru_cache(maxsize=512)
def pair_style(upper: int, lower: int, palette: tuple[str, ...] = CLASS_COLOURS) -> Style:
    """The style of a cell whose upper pixel shows code upper and lower pixel code lower (-1: empty)."""
    return Style(color=Color.parse(colour_of(upper, palette)), bgcolor=Color.parse(colour_of(lower, palette)))


def scatter_strips(drawn: torch.Tensor, palette: tuple[str, ...] = CLASS_COLOURS) -> list[Strip]:
    """Half-block lines of a code image (2 * rows, columns), -1 where empty; codes index palette."""
    return half_block_lines(drawn.tolist(), lambda upper, lower: pair_style(upper, lower, palette))


class MapView(Widget, can_focus=False):
    """Points (N, 2) in a View, each in its colour of a palette; the marker at the current z's coordinates. A click
    posts where."""

    DEFAULT_CSS = "MapView { width: 1fr; height: 1fr; background: #000000; }"

    class Clicked(Message):
        """The map was clicked at plane coordinates (u, v)."""

        def __init__(self, u: float, v: float) -> None:
            super().__init__()
            self.u, self.v = u, v

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.points: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None  # each point's colour: an index into palette
        self.palette: tuple[str, ...] = CLASS_COLOURS  # a ClassColours' palette, or RAMP
        self.view: View | None = None
        self.marker: tuple[float, float] | None = None
        self._cache: tuple[tuple[int, int], list[Strip], torch.Tensor] | None = None  # size, lines, empty cells
        self._marker_cell: tuple[int, int, str] | None = None  # where it was last drawn
        self._marker_key: tuple | None = None
        self._marker_at: tuple[int, int, str] | None = None

    @property
    def ramp(self) -> bool:
        """Whether the points are coloured by a value's step on RAMP, not by class."""
        return self.palette == RAMP

    def show(self, points: torch.Tensor, labels: torch.Tensor, view: View, palette: tuple[str, ...]) -> None:
        """Draw points (N, 2) over view, each in colour palette[labels] (labels (N,))."""
        self.points, self.labels, self.view, self.palette = points, labels, view, palette
        self._cache = None
        self.refresh()

    def mark(self, u: float, v: float) -> None:
        """Put the marker at (u, v); only the rows it leaves and enters are redrawn."""
        self.marker = (u, v)
        cell = self.marker_cell()
        if cell != self._marker_cell:
            rows = {old[1] for old in (self._marker_cell, cell) if old is not None}
            if None in (cell, self._marker_cell) or cell[0] != self._marker_cell[0]:
                rows |= {0, self.size.height - 1}  # the ticks move with the column
            for row in rows:
                self.refresh(Region(0, row, self.size.width, 1))
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
            empty = (drawn[0::2] < 0) & (drawn[1::2] < 0)  # (rows, columns): cells where no point falls
            self._cache = (size, scatter_strips(drawn, self.palette), empty)
        return self._cache[1]

    def _guided(self, line: Strip, y: int, cell: tuple[int, int, str]) -> Strip:
        """line y with the marker and the guide through the empty cells of its row, or with a tick at the
        marker's column (the top and bottom rows)."""
        column, row, glyph = cell
        empty = self._cache[2][y].tolist()
        if y != row:
            if not empty[column]:
                return line
            tick = Strip([Segment(TICKS[0] if y == 0 else TICKS[1], GUIDE_STYLE)], 1)
            return Strip.join([line.crop(0, column), tick, line.crop(column + 1, line.cell_length)])
        pieces, x, width = [], 0, len(empty)
        while x < width:  # runs of drawn cells kept as they are, runs of empty ones drawn as the guide
            if x == column:
                pieces.append(Strip([Segment(glyph, MARKER_STYLE)], 1))
                x += 1
                continue
            end = x
            while end < width and end != column and empty[end] == empty[x]:
                end += 1
            run = end - x
            pieces.append(Strip([Segment("\u2500" * run, GUIDE_STYLE)], run) if empty[x] else line.crop(x, end))
            x = end
        return Strip.join(pieces)

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        if y >= len(lines):
            return Strip.blank(self.size.width, self.rich_style)
        line = lines[y]
        cell = self._marker_cell = self.marker_cell()
        if cell is not None and (y == cell[1] or y in (0, len(lines) - 1)):
            line = self._guided(line, y, cell)
        return line

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.view is None or not self.size.area:
            return
        view, width, height = self.view, self.size.width, self.size.height
        u = view.left + (offset.x + 0.5) / width * (view.right - view.left)
        v = view.top - (offset.y + 0.5) / height * (view.top - view.bottom)
        self.post_message(self.Clicked(u, v))


def legend(names: list[str], current: int, colours: ClassColours, width: int = 0) -> Text:
    """One line per coloured class: its colour as two blocks, number and name, the current class in reverse video;
    then, past ten classes, one grey line for the others ("15 other classes", or "15 others" where width, if
    known, is too narrow for that)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for line, label in enumerate(colours.coloured):
        if line:
            text.append("\n")
        text.append("\u2588\u2588 ", style=colours.palette[line])
        text.append(f"{label} {printable(names[label])}", style="bold reverse" if label == current else "")
    if colours.others:
        others = f"{colours.others} other classes"
        if width and 3 + len(others) > width:
            others = f"{colours.others} others"
        text.append("\n\u2588\u2588 ", style=colours.palette[-1])
        text.append(others)
    return text


def ramp_steps(values: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Each value's step on RAMP (N,), and the len(RAMP) + 1 edges between steps: evenly spaced from the 2nd to the
    98th percentile, so that a few extreme values do not squeeze the rest into one colour."""
    values = values.float().contiguous()
    low, high = (torch.quantile(values, q).item() for q in (0.02, 0.98))
    if not high > low:
        high = low + 1.0
    edges = torch.linspace(low, high, len(RAMP) + 1)
    steps = torch.bucketize(values, edges[1:-1], right=True)
    return steps, edges.tolist()


def short_number(value: float) -> str:
    """value in a few characters: whole from 100 up (319), else two significant digits (-0.54, 45)."""
    return f"{value:.0f}" if abs(value) >= 99.5 else f"{value:.2g}"


def ramp_legend(title: str, edges: list[float], current: float | None) -> Text:
    """What the colours mean: title, then one line per step, its colour and its range (the ends open); the step
    holding current (the cursor's value, if known) in reverse video."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(title, style="bold")
    steps = len(edges) - 1
    for step in reversed(range(steps)):  # high values at the top, as on a y axis
        low, high = edges[step], edges[step + 1]
        low_text, high_text = short_number(low), short_number(high)
        label = f">= {low_text}" if step == steps - 1 else f"< {high_text}" if step == 0 else f"{low_text}..{high_text}"
        inside = current is not None and (step == 0 or current >= low) and (step == steps - 1 or current < high)
        text.append("\n")
        text.append("\u2588\u2588 ", style=RAMP[step])
        text.append(label, style="bold reverse" if inside else "")
    return text
