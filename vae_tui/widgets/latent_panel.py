"""The latent panel: one row per dimension with a bar from -3 to +3 sigma and the value."""

from rich.segment import Segment
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vae_tui.state import ExplorerState

BAR_HALF = 6  # cells on each side of the centre mark; the bar spans -3..+3 sigma
BAR_START = 6  # the bar's first column in a row: marker, space, "z" and three digits


def bar_value(column: int) -> float | None:
    """The value a click on the bar's column means (-3..+3 sigma, centre 0); None off the bar."""
    cell = column - BAR_START - BAR_HALF
    return cell / BAR_HALF * 3 if -BAR_HALF <= cell <= BAR_HALF else None


def bar(value: float) -> str:
    """A bar like '----|===----': filled from the centre towards value, clipped at +-3."""
    cells = round(max(-3.0, min(3.0, value)) / 3 * BAR_HALF)
    left = ["-"] * BAR_HALF
    right = ["-"] * BAR_HALF
    if cells < 0:
        left[BAR_HALF + cells :] = ["="] * -cells
    for i in range(cells):
        right[i] = "="
    return "".join(left) + "|" + "".join(right)


class LatentPanel(ScrollView, can_focus=False):
    """Rows of z; scrolls to keep the selected dimension in view. A click selects a row; on its bar, sets it."""

    class Clicked(Message):
        """A row was clicked: select dimension index and, when the bar was hit, set it to value."""

        def __init__(self, index: int, value: float | None) -> None:
            super().__init__()
            self.index, self.value = index, value

    COMPONENT_CLASSES = {"latent-panel--selected"}
    DEFAULT_CSS = """
    LatentPanel > .latent-panel--selected { background: $accent 40%; text-style: bold; }
    """

    def __init__(self, state: ExplorerState, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.virtual_size = Size(26, state.latent_dim)
        self._drawn: list[str] = []  # row texts as last drawn, to repaint only rows that changed

    def line_text(self, index: int) -> str:
        """The text of dimension index's row."""
        marker = ">" if index == self.state.selected else " "
        value = self.state.z[index]
        return f"{marker} z{index:<3}{bar(value)} {value:+6.2f}"

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        if index >= self.state.latent_dim:
            return Strip.blank(self.size.width, self.rich_style)
        style = self.get_component_rich_style("latent-panel--selected") if index == self.state.selected else None
        text = self.line_text(index).ljust(self.size.width)
        return Strip([Segment(text, style or self.rich_style)], len(text)).crop(0, self.size.width)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = offset.y + self.scroll_offset.y
        if 0 <= index < self.state.latent_dim:
            self.post_message(self.Clicked(index, bar_value(offset.x + self.scroll_offset.x)))

    def on_resize(self) -> None:
        """Bring the selected row into view (centred when there is room) at the first layout and every resize."""
        self.scroll_to_region(Region(0, self.state.selected, 1, 1), animate=False, immediate=True, center=True)
        self._drawn = []

    def update_state(self) -> None:
        """Redraw after the state changed and keep the selection visible."""
        top, height = self.scroll_offset.y, self.size.height
        if height and not top <= self.state.selected < top + height:  # scrolling costs a layout pass
            self.scroll_to_region(Region(0, self.state.selected, 1, 1), animate=False, immediate=True)
            self._drawn = []
        texts = [self.line_text(i) for i in range(self.state.latent_dim)]
        if len(self._drawn) != len(texts):
            self.refresh()
        else:
            for index, (old, new) in enumerate(zip(self._drawn, texts, strict=True)):
                if old != new:
                    self.refresh(Region(0, index - self.scroll_offset.y, self.size.width, 1))
        self._drawn = texts
