"""The explorer app: one factory shared by the CLI, the tests and the benchmarks."""

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.markup import escape
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen

from models import Checkpoint
from models.text import printable
from vae_tui.keys import APP_KEYS, EXPLORER_KEYS, bindings, palette_title
from vae_tui.screens.explorer import ExplorerScreen, StartImage
from vae_tui.screens.help import HelpScreen


class ExplorerApp(App):
    """Pick classes, nudge latent dimensions, watch the decoded image."""

    CSS_PATH = "app.tcss"
    TITLE = "vae-tui"
    BINDINGS = [
        *(b for b in bindings(APP_KEYS) if b.action != "command_palette"),
        Binding("escape", "hide_help_panel", "Close the keys panel", show=False),
        Binding("escape", "back_to_runs", "Back to the runs", show=False),
    ]

    def __init__(
        self,
        checkpoint: Checkpoint,
        source: str,
        exports_dir: Path = Path("exports"),
        start_image: StartImage | None = None,
        follow: Path | None = None,
        from_browser: bool = False,
    ) -> None:
        super().__init__()
        self.checkpoint, self.source, self.exports_dir = checkpoint, source, exports_dir
        self.start_image, self.follow = start_image, follow
        self.from_browser = from_browser  # opened from `vae-tui runs`: escape goes back there
        self.shown_notifications: dict[tuple[str, str, str], Notification] = {}  # by (message, title, severity)

    def get_default_screen(self) -> Screen:
        return ExplorerScreen(self.checkpoint, self.source, self.exports_dir, self.start_image, self.follow)

    @property
    def explorer(self) -> ExplorerScreen:
        """The main screen (also while a dialog is on top)."""
        return self.screen_stack[0]  # type: ignore[return-value]

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """As App.notify, except that a message still on screen is not stacked again: the toast shown stays."""
        timeout = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        notification = Notification(message, title, severity, timeout, markup=markup)
        shown = self.shown_notifications.get((message, title, severity))
        if shown is not None and not shown.has_expired:
            notification.identity = shown.identity  # Textual keeps one toast per identity
        else:
            self.shown_notifications[message, title, severity] = notification
        self.post_message(Notify(notification))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_help_panel":  # escape closes Textual's keys panel, and only it
            return bool(self.screen.query("HelpPanel"))
        if action == "back_to_runs":  # escape with nothing else to close, in an explorer the browser opened
            return self.from_browser and self.screen is self.explorer
        return super().check_action(action, parameters)

    def action_back_to_runs(self) -> None:
        self.exit()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.explorer.colour_hint))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        names = self.checkpoint.class_names
        for key in EXPLORER_KEYS:
            if key.action.startswith("pick_class("):
                label = int(key.action.removeprefix("pick_class(").rstrip(")"))
                if label >= len(names):
                    continue
                title = f"Pick class {label}: {escape(printable(names[label]))}"  # the palette reads titles as markup
            else:
                title = palette_title(key)
            yield SystemCommand(title, f"key: {key.display}", lambda action=key.action: self._run_on_explorer(action))
        help_key = next(key for key in APP_KEYS if key.action == "help")
        yield SystemCommand(palette_title(help_key), f"key: {help_key.display}", self.action_help)

    def _run_on_explorer(self, action: str) -> None:
        self.call_later(self.explorer.run_action, action)


def create_app(
    checkpoint: Checkpoint,
    source: str,
    exports_dir: Path = Path("exports"),
    start_image: StartImage | None = None,
    follow: Path | None = None,
    from_browser: bool = False,
) -> ExplorerApp:
    """The app for a loaded checkpoint; source says where it came from (shown in the header); start_image, a
    picture (name, (28, 28) pixels) whose encoding z starts from; follow, a checkpoint file reloaded when it
    changes (a run still training)."""
    return ExplorerApp(checkpoint, source, exports_dir, start_image, follow, from_browser)
