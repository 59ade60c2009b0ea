"""The explorer app: one factory shared by the CLI, the tests and the benchmarks."""

from pathlib import Path

from textual.screen import Screen

from models import Checkpoint
from vae_tui.base_app import VaeApp
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

    def get_default_screen(self) -> Screen:
        return ExplorerScreen(self.checkpoint, self.source, self.exports_dir, self.start_image, self.follow)


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
