"""The latent panel: one row per dimension with a bar from -3 to +3 sigma, the value and the dimension's mean KL."""

from rich.segment import Segment
from rich.style import Style
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vae_tui.layout import LATENT_COLUMNS
from vae_tui.state import ExplorerState

BAR_HALF = 6  # cells on each side of the centre mark; the bar spans -3..+3 sigma
BAR_START = 6  # the bar's first column in a row: marker, space, "z" and three digits
WIDE_NAMES = 100  # past this many dimensions (z100 on), a space between the name and its bar, from the value's
KL_LEVELS = " ▁▂▃▄▅▆▇█"  # a dimension's mean KL as a fraction of the largest one's
INACTIVE_MARK = "·"  # in the KL column of a dimension whose Var(mu) is at most 0.01
STRIPS_KEPT = 512  # rows drawn, kept by their text
TITLE_WIDTH = LATENT_COLUMNS - 2  # the panel's title, padded by a cell on each side


def panel_title(state: ExplorerState, width: int = TITLE_WIDTH) -> str:
    """The panel's title: which dimensions it lists ("Active z (128)"), in what order ("by KL") and the step,
    shortened to fit width ("128 active by KL · 0.015625")."""
    count, order, step = len(state.shown), " by KL" if state.by_kl else "", f"{state.step:g}"
    what, short = (f"Active z ({count})", f"{count} active") if state.hide_inactive else ("Latent z", "z")
    variants = [f"{what}{order} · step {step}", f"{short}{order} · step {step}", f"{short}{order} · {step}"]
    return next((v for v in variants if len(v) <= width), variants[-1])


def kl_glyph(kl: float, largest: float) -> str:
    """One cell for a dimension's mean KL: an eighth-block level of kl / largest, at least the lowest for kl > 0."""
    if largest <= 0 or kl <= 0:
        return KL_LEVELS[0]
    return KL_LEVELS[max(1, round(min(kl / largest, 1.0) * (len(KL_LEVELS) - 1)))]


def bar_value(column: int, bar_start: int = BAR_START) -> float | None:
    """The value a click on the bar's column means (-3..+3 sigma, centre 0); None off the bar, which starts at
    bar_start."""
    cell = column - bar_start - BAR_HALF
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
        # past 99 dimensions, "z123" would touch its bar: the name takes a column from the space before the value
        self.wide_names = state.latent_dim > WIDE_NAMES
        self.bar_start = BAR_START + self.wide_names
        self.virtual_size = Size(self.row_width, state.latent_dim)
        self._drawn: list[str] = []  # the texts of the rows in view as last drawn, to repaint only those that changed
        self._drawn_top = 0  # the row at the top of the view then
        self._order = state.shown  # the shown dimensions as last drawn: another list when the order changes
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
        if self.wide_names:  # the value in 6 columns, its sign's space before it: "+10.0" where "+10.00" is long
            value_text = f"{value:+.2f}" if abs(value) < 9.995 else f"{value:+.1f}"
            text = f"{marker} z{index:<4}{bar(value)} {value_text:>5}"
        else:
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
            self.post_message(self.Clicked(shown[row], bar_value(offset.x + self.scroll_offset.x, self.bar_start)))

    def _selected_row(self) -> int:
        shown = self.state.shown
        return shown.index(self.state.selected) if self.state.selected in shown else 0

    def on_resize(self) -> None:
        """Bring the selected row into view (centred when there is room) at the first layout and every resize."""
        self.scroll_to_region(Region(0, self._selected_row(), 1, 1), animate=False, immediate=True, center=True)
        self._drawn = []

    def update_state(self) -> None:
        """Redraw the rows in view whose text changed, after the state changed, and keep the selection visible: a
        key press formats the rows on screen, not all 512 of a large latent."""
        shown = self.state.shown
        if shown is not self._order:  # another order, or inactive dimensions hidden or shown again
            self._order = shown
            self.virtual_size = Size(self.row_width, len(shown))
            self._drawn = []
            self.scroll_to_region(Region(0, self._selected_row(), 1, 1), animate=False, immediate=True, center=True)
        top, height, row = self.scroll_offset.y, self.size.height, self._selected_row()
        if height and not top <= row < top + height:  # scrolling costs a layout pass
            self.scroll_to_region(Region(0, row, 1, 1), animate=False, immediate=True)
            top = self.scroll_offset.y
        texts = [self.line_text(index) for index in shown[top : top + height]]
        if self._drawn_top != top or len(self._drawn) != len(texts):
            self.refresh()
        else:
            width = self.size.width
            changed = [
                Region(0, y, width, 1)
                for y, (old, new) in enumerate(zip(self._drawn, texts, strict=True))
                if old != new
            ]
            if changed:
                self.refresh(*changed)  # one call: each costs a dirty-marking pass
        self._drawn, self._drawn_top = texts, top
