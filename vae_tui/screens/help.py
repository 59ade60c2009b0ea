"""The help screen: every key and what it does."""

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vae_tui.keys import APP_KEYS, EXPLORER_KEYS


def keys_table() -> Table:
    """Every key in one table, digits folded into one row."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    for key in EXPLORER_KEYS + APP_KEYS:
        if key.display in "123456789" and len(key.display) == 1:
            continue
        if key.display == "0":
            table.add_row("0-9", "Pick that class (CVAE: same z, new condition; VAE: the class's centroid)")
            continue
        table.add_row(key.display, key.description)
    table.add_row("escape", "Close this help")
    return table


class HelpScreen(ModalScreen[None]):
    """Modal list of keys; escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 86; max-width: 95%; height: auto; max-height: 90%;
                                  border: round $accent; padding: 0 1; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "vae-tui keys"
            yield Static(keys_table())
