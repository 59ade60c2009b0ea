"""What the explorer's App and the runs browser's App share: the explorer's app-wide keys, its command-palette
entries, notifications that do not stack, and the way back from an explorer the browser opened.

The explorer is a screen (vae_tui.screens.explorer.ExplorerScreen): `vae-tui explore` runs it as the only screen of
an ExplorerApp, and the runs browser pushes it over its table, so leaving it finds the browser as it was. Nothing here
imports torch, so the browser's table is up before torch would have loaded.
"""

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.markup import escape
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen

from models.text import printable
from vae_tui.keys import APP_KEYS, EXPLORER_KEYS, bindings, palette_title
from vae_tui.screens.help import HelpScreen

LEFT_OUT_COMMANDS = {"Keys", "Theme"}


class VaeApp(App):
    """An App that may hold explorer screens: `?` and `q` act on the topmost one, and escape or q leave one that was
    pushed over another screen (the runs browser) back to it."""

    CSS_PATH = "app.tcss"
    BINDINGS = [
        *(b for b in bindings(APP_KEYS) if b.action != "command_palette"),
        Binding("escape", "hide_help_panel", "Close the keys panel", show=False),
        Binding("escape", "back_to_runs", "Back to the runs", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown_notifications: dict[tuple[str, str, str], Notification] = {}  # by (message, title, severity)

    @property
    def explorer(self):  # noqa: ANN201 (ExplorerScreen | None: naming it would import torch)
        """The topmost explorer screen (also while a dialog is on top of it), or None."""
        for screen in reversed(self.screen_stack):
            if getattr(screen, "IS_EXPLORER", False):
                return screen
        return None

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """As App.notify, except that notices never stack: the same message still on screen stays the toast it is
        (its time starts again), and another one replaces whatever is shown."""
        timeout = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        notification = Notification(message, title, severity, timeout, markup=markup)
        shown = self.shown_notifications.get((message, title, severity))
        if shown is not None and not shown.has_expired:
            notification.identity = shown.identity  # Textual keeps one toast per identity
        else:
            self._notifications.clear()  # Textual's own clear leaves each toast's (empty) holder in the rack
            for holder in self.screen.query("ToastHolder"):
                holder.remove()
            self.shown_notifications = {(message, title, severity): notification}
        self.post_message(Notify(notification))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_help_panel":  # escape closes Textual's keys panel, and only it
            return bool(self.screen.query("HelpPanel"))
        explorer = self.explorer
        if action == "help":  # the explorer's keys; the browser's screens have their own `?`
            return explorer is not None
        if action == "back_to_runs":  # escape with nothing else to close, in an explorer pushed over the browser
            return explorer is not None and explorer.from_browser and self.screen is explorer
        return super().check_action(action, parameters)

    def action_back_to_runs(self) -> None:
        self.pop_screen()

    async def action_quit(self) -> None:
        """q in an explorer the browser opened goes back to the browser (closing any dialog on top); else quit."""
        explorer = self.explorer
        if explorer is None or not explorer.from_browser:
            self.exit()
            return
        while self.screen is not explorer:
            self.pop_screen()
        self.pop_screen()

    def action_help(self) -> None:
        explorer = self.explorer
        if explorer is not None and not isinstance(self.screen, HelpScreen):
            left_out = frozenset(key.action for key in EXPLORER_KEYS if not explorer.offers(key.action))
            self.push_screen(HelpScreen(explorer.colour_hint, left_out))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's keys panel (`?` lists every key in a dialog that fits 80x24) and its themes (the pictures and
        # the dimmed dimensions are drawn for the dark one) are left out of the palette
        yield from (c for c in super().get_system_commands(screen) if c.title not in LEFT_OUT_COMMANDS)
        explorer = self.explorer
        if explorer is None:
            return
        names = explorer.checkpoint.class_names
        for key in EXPLORER_KEYS:
            if not explorer.offers(key.action):  # the model cannot do it: left out, as from the footer and the help
                continue
            if key.action.startswith("pick_class("):
                label = int(key.action.removeprefix("pick_class(").rstrip(")"))
                if label >= len(names):
                    continue
                title = f"Pick class {label}: {escape(printable(names[label]))}"  # the palette reads titles as markup
            else:
                title = palette_title(key)
            yield SystemCommand(
                title, f"key: {key.display}", lambda action=key.action: self.call_later(explorer.run_action, action)
            )
        help_key = next(key for key in APP_KEYS if key.action == "help")
        yield SystemCommand(palette_title(help_key), f"key: {help_key.display}", self.action_help)
