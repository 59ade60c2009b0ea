"""The help screen: every key and what it does, and how to turn truecolor on when it is off."""

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vae_tui.keys import APP_KEYS, EXPLORER_KEYS


def truecolor_hint(environ: dict[str, str]) -> str | None:
    """How to turn truecolor on, when the environment says it is off (else None)."""
    if environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return None
    return (
        "256 colours: COLORTERM does not say truecolor, so images use xterm's 256 colours (its grey ramp, its 6x6x6 "
        "colour cube). If your terminal shows "
        "24-bit colour (most do), start with\n"
        "  COLORTERM=truecolor vae-tui explore\n"
        "and over SSH, export COLORTERM=truecolor on the server. In tmux, also add to ~/.tmux.conf:\n"
        "  set -as terminal-features ',*:RGB'"
    )


def keys_table(left_out: frozenset[str] = frozenset()) -> Table:
    """Every key in one table, digits folded into one row; those whose action is in left_out (the model cannot do
    it) left out."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    for key in EXPLORER_KEYS + APP_KEYS:
        if (key.display in "123456789" and len(key.display) == 1) or key.action in left_out:
            continue
        if key.display == "0":
            table.add_row("0-9", "Pick that class (CVAE: same z, new condition; VAE: the class's centroid)")
            continue
        table.add_row(key.display, key.description)
    table.add_row("escape", "Close this help")
    return table


class HelpScreen(ModalScreen[None]):
    """Modal list of keys, under the truecolor hint when there is one; escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 86; max-width: 95%; height: auto; max-height: 90%;
                                  border: round $accent; padding: 0 1; background: $surface; }
    HelpScreen #colour-hint { color: $text-warning; margin-bottom: 1; }
    """

    def __init__(self, colour_hint: str | None = None, left_out: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.colour_hint = colour_hint
        self.left_out = left_out  # the actions the model cannot do: their keys are not listed

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "vae-tui keys"
            scroll.border_subtitle = "up/down, pgup/pgdn: scroll · escape: close"
            if self.colour_hint:
                yield Static(Text(self.colour_hint), id="colour-hint")
            yield Static(keys_table(self.left_out))
