"""Where a model written elsewhere prints while the explorer is up: a log file in the user cache, not the screen.

Textual takes sys.stdout and sys.stderr while an app runs (prints, warnings, tracebacks written there); the explorer
on `--code` hands what reaches them to an OutputLog, and logging handlers the user's code set up on the terminal's
streams (`logging.basicConfig()` at import) write there meanwhile too. The file is
$XDG_CACHE_HOME/vae-tui/logs/explore-DATE-TIME-PID.log (~/.cache by default), made on the first write: the cache
holds what vae-tui keeps for itself, the exports folder what the user saves. Writes to the file descriptors
themselves (a C extension's printf) are not caught: Textual draws on the same terminal.
"""

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from models.text import printable
from train.cache import user_cache_dir


class OutputLog:
    """A log file, created on the first write; each write appends and closes, so a crash loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = False  # something was written (or tried): the path is worth saying at exit
        self.problem: str | None = None  # why the file cannot be written, once it could not

    @classmethod
    def for_explorer(cls) -> "OutputLog":
        """A new log for this explorer process, under the user cache."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return cls(user_cache_dir() / "logs" / f"explore-{stamp}-{os.getpid()}.log")

    def write(self, text: str) -> bool:
        """Append text; True the first time (when the log's notice is due)."""
        first = not self.written
        self.written = True
        if self.problem is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8", errors="backslashreplace") as log:
                    log.write(text)
            except OSError as e:
                self.problem = e.strerror or str(e)
        return first

    def notice(self) -> str:
        """Where what the model prints goes, in one line."""
        if self.problem is not None:
            return printable(f"What the model prints is dropped: {self.path} cannot be written ({self.problem})")
        return printable(f"What the model prints goes to {self.path}, not over the screen")

    def summary(self) -> str:
        """Where what the model printed went, in one line for stderr once the explorer has closed."""
        if self.problem is not None:
            return printable(f"what the model printed was dropped: {self.path} cannot be written ({self.problem})")
        return printable(f"what the model printed, and the tracebacks of its failures, are in {self.path}")


def redirect_logging(streams: Iterable[TextIO], to: TextIO) -> Callable[[], None]:
    """Every logging handler that writes to one of streams writes to `to` instead, until the function returned is
    called."""
    terminal = {id(stream) for stream in streams}
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {h for logger in loggers if isinstance(logger, logging.Logger) for h in logger.handlers}
    moved = [(h, h.stream) for h in handlers if isinstance(h, logging.StreamHandler) and id(h.stream) in terminal]
    for handler, _ in moved:
        handler.setStream(to)

    def restore() -> None:
        for handler, stream in moved:
            handler.setStream(stream)

    return restore
