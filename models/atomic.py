"""Atomic file writes: a temp file in the same folder, fsync, then os.replace."""

import contextlib
import os
import tempfile
from pathlib import Path

from models.points import reach

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write data to path so that readers see the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; keep files as open() would
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        reach("written", path.name)  # the temp file is whole; the rename has not happened yet
        os.replace(tmp_name, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(e, OSError) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path
