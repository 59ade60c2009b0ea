"""The output folder: one training at a time."""

import fcntl
import os
from pathlib import Path

from models import UserError


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
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise UserError(f"another training ({holder}) is writing to {out_dir}: choose another --out") from None
        try:  # straight to the descriptor: nothing stays buffered, so closing after a failure cannot fail again
            os.ftruncate(self.file.fileno(), 0)
            os.write(self.file.fileno(), f"pid {os.getpid()}".encode())
            for stale in out_dir.glob(".*.tmp"):  # left by a process killed mid-write; we hold the lock now
                stale.unlink(missing_ok=True)
        except OSError as e:  # a full or read-only file system
            self.file.close()
            raise UserError(f"cannot write to --out {out_dir}: {e.strerror}") from None

    def release(self) -> None:
        """Unlock (closing the file releases the lock)."""
        self.file.close()
