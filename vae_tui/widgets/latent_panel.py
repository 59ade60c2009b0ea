"""The latent panel: one row per dimension with a bar from -3 to +3 sigma, the value and the dimension's mean KL."""

from rich.segment import Segment
from rich.style import Style
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vae_tui.state import ExplorerState

BAR_HALF = 6  # cells on each side of the centre mark; the bar spans -3..+3 sigma
BAR_START = 6  # the bar's first column in a row: marker, space, "z" and three digits
KL_LEVELS = " ▁▂▃▄▅▆▇█"  # a dimension's mean KL as a fraction of the largest one's
INACTIVE_MARK = "·"  # in the KL column of a dimension whose Var(mu) is at most 0.01
STRIPS_KEPT = 512  # rows drawn, kept by their text


def kl_glyph(kl: float, largest: float) -> str:
    """One cell for a dimension's mean KL: an eighth-block level of kl / largest, at least the lowest for kl > 0."""
    if largest <= 0 or kl <= 0:
        return KL_LEVELS[0]
    return KL_LEVELS[max(1, round(min(kl / largest, 1.0) * (len(KL_LEVELS) - 1)))]


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

    COMPONENT_CLASSES = {"latent-panel--selected", "latent-panel--inactive"}
    DEFAULT_CSS = """
    LatentPanel > .latent-panel--selected { background: $accent 40%; text-style: bold; }
    LatentPanel > .latent-panel--inactive { color: $text-disabled; }
    """

    def __init__(self, state: ExplorerState, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._largest_kl = max(state.kl) if state.kl else 0.0
        self.row_width = 28 if state.kl or not all(state.active) else 26  # with the KL column, or without
        self.virtual_size = Size(self.row_width, state.latent_dim)
        self._drawn: list[str] = []  # row texts as last drawn, to repaint only rows that changed
        self._strips: dict[tuple[str, str, int], Strip] = {}

    def statistics_changed(self) -> None:
        """The state's KL levels or active dimensions changed (reloaded weights): redraw every row."""
        self._largest_kl = max(self.state.kl) if self.state.kl else 0.0
        self._drawn = []
        self.refresh()

    def line_text(self, index: int) -> str:
        """The text of dimension index's row: marker, name, bar, value, and its KL level (· when inactive)."""
        state = self.state
        marker = ">" if index == state.selected else " "
        value = state.z[index]
        text = f"{marker} z{index:<3}{bar(value)} {value:+6.2f}"
        if not state.active[index]:
            return f"{text} {INACTIVE_MARK}"
        return f"{text} {kl_glyph(state.kl[index], self._largest_kl)}" if state.kl else text

    def _row_kind(self, index: int) -> str:
        if index == self.state.selected:
            return "selected"
        return "normal" if self.state.active[index] else "inactive"

    def _style(self, kind: str) -> Style:
        if kind == "normal":
            return self.rich_style
        return self.get_component_rich_style(f"latent-panel--{kind}")

    def render_line(self, y: int) -> Strip:
        """A row's strip, kept by its text and kind: the map's updates repaint rows whose text did not change."""
        shown, width = self.state.shown, self.size.width
        row = y + self.scroll_offset.y
        if row >= len(shown):
            return Strip.blank(width, self.rich_style)
        index = shown[row]
        key = (self.line_text(index), self._row_kind(index), width)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) >= STRIPS_KEPT:  # values drift: start afresh rather than grow
                self._strips.clear()
            text = key[0].ljust(width)
            strip = self._strips[key] = Strip([Segment(text, self._style(key[1]))], len(text)).crop(0, width)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        shown = self.state.shown
        row = offset.y + self.scroll_offset.y
        if 0 <= row < len(shown):
            self.post_message(self.Clicked(shown[row], bar_value(offset.x + self.scroll_offset.x)))

    def _selected_row(self) -> int:
        shown = self.state.shown
        return shown.index(self.state.selected) if self.state.selected in shown else 0

    def on_resize(self) -> None:
        """Bring the selected row into view (centred when there is room) at the first layout and every resize."""
        self.scroll_to_region(Region(0, self._selected_row(), 1, 1), animate=False, immediate=True, center=True)
        self._drawn = []

    def update_state(self) -> None:
        """Redraw after the state changed and keep the selection visible."""
        shown = self.state.shown
        if self.virtual_size.height != len(shown):  # inactive dimensions hidden or shown again
            self.virtual_size = Size(self.row_width, len(shown))
            self._drawn = []
        top, height, row = self.scroll_offset.y, self.size.height, self._selected_row()
        if height and not top <= row < top + height:  # scrolling costs a layout pass
            self.scroll_to_region(Region(0, row, 1, 1), animate=False, immediate=True)
            self._drawn = []
        texts = [self.line_text(i) for i in shown]
        if len(self._drawn) != len(texts):
            self.refresh()
        else:
            top, width = self.scroll_offset.y, self.size.width
            changed = [
                Region(0, row - top, width, 1)
                for row, (old, new) in enumerate(zip(self._drawn, texts, strict=True))
                if old != new
            ]
            if changed:
                self.refresh(*changed)  # one call: each costs a dirty-marking pass
        self._drawn = texts
