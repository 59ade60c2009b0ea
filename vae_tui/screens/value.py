"""A small dialog to type an exact value for one latent dimension."""

import math

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class ValueScreen(ModalScreen[float | None]):
    """Returns the typed value, or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]
    DEFAULT_CSS = """
    ValueScreen { align: center middle; }
    ValueScreen > Vertical { width: 36; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    ValueScreen Label { color: $text-muted; }
    """

    def __init__(self, dim: int, value: float) -> None:
        super().__init__()
        self.dim, self.value = dim, value

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"z{self.dim}, in prior sigmas"
            yield Input(value=f"{self.value:.2f}", type="number", select_on_focus=True)
            yield Label("enter: set · escape: cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = float(event.value)
        except ValueError:
            self.notify(f"{event.value!r} is not a number", severity="error", markup=False)
            return
        self.dismiss(value if math.isfinite(value) else None)
