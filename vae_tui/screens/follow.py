"""Following a run: a watcher that tells the explorer when training has replaced the run's best checkpoint.

The file is looked at once a second (its size and modification time); a changed one is loaded in a worker thread
through the same checks as any checkpoint, and posted as CheckpointWatcher.Loaded. A file that does not load (half
written, damaged) is never posted: the explorer keeps its model, and the file is tried again when it changes next.
"""

import os
from pathlib import Path

from textual import work
from textual.message import Message
from textual.widget import Widget

from models import Checkpoint, load_checkpoint
from models.errors import UserError

POLL_SECONDS = 1.0


def signature(path: Path) -> tuple[int, int] | None:
    """What tells a rewritten file apart: its size and modification time (None while it is missing)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class CheckpointWatcher(Widget):
    """Watches one checkpoint file; draws nothing."""

    DEFAULT_CSS = "CheckpointWatcher { display: none; }"

    class Loaded(Message):
        """The watched file changed and loaded."""

        def __init__(self, checkpoint: Checkpoint) -> None:
            super().__init__()
            self.checkpoint = checkpoint

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.seen = signature(path)

    def on_mount(self) -> None:
        self.set_interval(POLL_SECONDS, self.look)

    def look(self) -> None:
        now = signature(self.path)
        if now is not None and now != self.seen:
            self.seen = now  # a file that fails to load is tried again only once it changes again
            self._load(self.path)

    @work(thread=True, exclusive=True, group="reload")
    def _load(self, path: Path) -> None:
        try:
            checkpoint = load_checkpoint(path)
        except (UserError, OSError, ValueError):  # half written or damaged: keep what is shown
            return
        self.post_message(self.Loaded(checkpoint))
