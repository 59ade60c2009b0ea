"""The explorer app: one factory shared by the CLI, the tests and the benchmarks."""

import sys
from pathlib import Path

from textual import events
from textual.screen import Screen

from models import Checkpoint
from models.outside import OutsideVAE
from vae_tui.base_app import VaeApp
from vae_tui.output_log import OutputLog, redirect_logging
from vae_tui.screens.explorer import ExplorerScreen, StartImage


class ExplorerApp(VaeApp):
    """Pick classes, nudge latent dimensions, watch the decoded image."""

    TITLE = "vae-tui"

    def __init__(
        self,
        checkpoint: Checkpoint,
        source: str,
        exports_dir: Path = Path("exports"),
        start_image: StartImage | None = None,
        follow: Path | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint, self.source, self.exports_dir = checkpoint, source, exports_dir
        self.start_image, self.follow = start_image, follow
        # a model written elsewhere may print: into a log file, not over the screen (vae_tui/output_log.py)
        self.output_log = OutputLog.for_explorer() if isinstance(checkpoint.model, OutsideVAE) else None
        self._terminal = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)  # before Textual takes them
        self._restore_logging = None

    def get_default_screen(self) -> Screen:
        return ExplorerScreen(self.checkpoint, self.source, self.exports_dir, self.start_image, self.follow)

    def on_mount(self) -> None:
        if self.output_log is not None:
            self.begin_capture_print(self)
            self._restore_logging = redirect_logging(self._terminal, sys.stderr)  # Textual's, which reaches on_print

    def on_unmount(self) -> None:
        if self._restore_logging is not None:
            self._restore_logging()

    def on_print(self, event: events.Print) -> None:
        """What the model's code printed (or warned, or logged) goes to the log; the first time, a notice says where."""
        if self.output_log.write(event.text):
            self.notify(self.output_log.notice(), title="Output", timeout=10, markup=False)


def create_app(
    checkpoint: Checkpoint,
    source: str,
    exports_dir: Path = Path("exports"),
    start_image: StartImage | None = None,
    follow: Path | None = None,
) -> ExplorerApp:
    """The app for a loaded checkpoint; source says where it came from (shown in the header); start_image, a
    picture (name, (28, 28) pixels) whose encoding z starts from; follow, a checkpoint file reloaded when it
    changes (a run still training)."""
    return ExplorerApp(checkpoint, source, exports_dir, start_image, follow)
