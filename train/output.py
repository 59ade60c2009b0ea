"""The output folder: one training at a time."""

import fcntl
import json
import math
import os
import time
from pathlib import Path

from models import UserError

LOCK_BYTES = 4096  # what a reader takes of a lock file: its pid line and the status line under it
STATUS_SECONDS = 1.0  # between status writes: `vae-tui runs` looks every 2 s


class OutputLock:
    """An exclusive lock on the output folder, so two trainings never write the same files."""

    def __init__(self, out_dir: Path) -> None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.file = open(out_dir / ".lock", "a+")  # noqa: SIM115 (held open: closing releases the lock)
        except OSError as e:
            raise UserError(f"cannot write to --out {out_dir}: {e.strerror}") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read(LOCK_BYTES).partition("\n")[0].strip() or "another process"
            self.file.close()
            raise UserError(f"another training ({holder}) is writing to {out_dir}: choose another --out") from None
        try:  # straight to the descriptor: nothing stays buffered, so closing after a failure cannot fail again
            os.ftruncate(self.file.fileno(), 0)
            os.write(self.file.fileno(), f"pid {os.getpid()}".encode())
            self.told = -math.inf
            for stale in out_dir.glob(".*.tmp"):  # left by a process killed mid-write; we hold the lock now
                stale.unlink(missing_ok=True)
        except OSError as e:  # a full or read-only file system
            self.file.close()
            raise UserError(f"cannot write to --out {out_dir}: {e.strerror}") from None

    def tell(self, status: dict) -> None:
        """Write what the training is doing (epoch, step, speed: train/loop.py's status) into the lock file under
        its pid line, as a line of JSON, for `vae-tui runs` to show between epochs' metrics; at most once every
        STATUS_SECONDS. It is news, not a record: written in place, not synced, and a failed write is let go."""
        now = time.monotonic()
        if now - self.told < STATUS_SECONDS:
            return
        self.told = now
        text = f"pid {os.getpid()}\n{json.dumps(status, allow_nan=False)}\n".encode()
        try:  # the file is open to append: emptied, then written from its start
            os.ftruncate(self.file.fileno(), 0)
            os.write(self.file.fileno(), text)
        except (OSError, ValueError):
            pass

    def release(self) -> None:
        """Unlock (closing the file releases the lock)."""
        self.file.close()
