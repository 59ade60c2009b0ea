"""A base for the image widgets: they keep their drawn lines, and hand them to the screen update as they are."""

from collections.abc import Sequence

from rich.style import Style
from textual.filter import LineFilter
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from vae_tui.render import truecolor, without_truecolor_filter


class KeptLines(Widget):
    """A widget whose render_line gives lines it keeps, each exactly as wide as the widget.

    Textual passes every line a widget redraws through its per-line styling (borders, padding, tint, opacity) and
    its line filters. Where the widget has none of those styles, the styling gives each line back as it was, and
    where every colour in the lines is truecolor (the half-block cells always are), so does the filter that turns
    ANSI colours into truecolor: both cost per line and per segment (one a cell, in a picture), so they are
    skipped then, and render_lines returns the kept lines themselves."""

    LINE_COMPONENTS: tuple[str, ...] = ()  # component classes whose styles the lines use, beside the widget's own

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._line_styles: tuple[Style, ...] | None = None

    def line_styles(self) -> tuple[Style, ...]:
        """The widget's style, then each of LINE_COMPONENTS': kept until the styles change (each lookup walks the
        ancestors)."""
        if self._line_styles is None:
            components = (self.get_component_rich_style(name) for name in self.LINE_COMPONENTS)
            self._line_styles = (self.rich_style, *components)
        return self._line_styles

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_styles = None

    def get_line_filters(self) -> Sequence[LineFilter]:
        filters = super().get_line_filters()
        return without_truecolor_filter(filters) if truecolor(*self.line_styles()) else filters

    def _plain(self) -> bool:
        """Whether Textual's per-line styling would give this widget's lines back unchanged."""
        styles = self.styles
        return (
            not any(edge for edge, _ in styles.border)
            and not any(edge for edge, _ in styles.outline)
            and not any(styles.padding)
            and not styles.tint.a
            and styles.text_opacity == 1.0
            and self.opacity == 1.0
            and not (styles.has_rule("hatch") and styles.hatch != "none")
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        if not self._plain():
            return super().render_lines(crop)
        width = self.outer_size.width
        lines = [self.render_line(y) for y in crop.line_range]
        if any(line.cell_length != width for line in lines):  # not as kept: let Textual fit them
            return super().render_lines(crop)
        background = self.background_colors[1]
        for line_filter in self.get_line_filters():
            lines = [line.apply_filter(line_filter, background) for line in lines]
        if crop.column_span != (0, width):
            x1, x2 = crop.column_span
            lines = [line.crop(x1, x2) for line in lines]
        return lines
