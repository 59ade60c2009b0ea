"""The explorer's footer: Textual's, rebuilt only when the keys it shows change."""

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

KeysShown = tuple[tuple[object, ...], ...]


class KeysFooter(Footer):
    """Textual's Footer recomposes (some twenty key widgets, each styled anew) whenever its screen says its bindings
    may have changed: on every focus change, and each time the screen comes back from a dialog, the help or the
    palette. In the explorer the keys are nearly always the same ones; this footer keeps its widgets then (Textual
    8.2, measured: the command palette opened, searched and closed at 80x24 costs half the CPU, 0.2 s rather than
    0.4 s a time)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._keys_shown: KeysShown | None = None  # what the last compose drew its key widgets from

    def _keys(self) -> KeysShown:
        """Everything compose draws the keys from: each active binding, whether it is enabled, its tooltip and how
        its key is displayed."""
        return tuple(
            (binding, enabled, tooltip, self.app.get_key_display(binding))
            for _, binding, enabled, tooltip in self.screen.active_bindings.values()
        )

    def bindings_changed(self, screen: Screen) -> None:
        unchanged = self._keys_shown is not None and screen is self.screen and self._keys() == self._keys_shown
        if not unchanged:
            super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        self._keys_shown = self._keys() if self._bindings_ready else None
        yield from super().compose()
