"""Files under a run folder opened the one safe way: regular files only, never blocking, read up to a byte cap.

A run folder is anyone's folder: its .lock, metrics.jsonl or checkpoint may be a FIFO (opening it for reading
waits for a writer forever), a link to /dev/zero (st_size 0, endless bytes) or a device. Each is opened with
O_NONBLOCK and refused by its fstat unless it is a regular file; reads stop one byte past the caller's cap,
whatever st_size says.
"""

import errno
import os
import stat
from pathlib import Path

KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a socket or a folder where a file was expected."""

    def __init__(self, path: Path, mode: int) -> None:
        kind = KINDS.get(stat.S_IFMT(mode), "not a file")
        super().__init__(errno.EINVAL, f"{kind}, not a regular file", str(path))


class FileTooLarge(OSError):
    """A file with more bytes than its reader's cap."""

    def __init__(self, path: Path, cap: int) -> None:
        super().__init__(errno.EFBIG, f"over {cap} bytes", str(path))
        self.cap = cap


def open_regular(path: Path | str) -> int:
    """A read-only descriptor of path if it is a regular file (links followed); NotRegularFile or OSError if not."""
    return open_regular_stat(path)[0]


def open_regular_stat(path: Path | str) -> tuple[int, os.stat_result]:
    """open_regular's descriptor and the file's stat, taken once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, info.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_upto(fd: int, count: int) -> bytes:
    """Up to count bytes from fd's position: fewer only at the end of the file."""
    chunks, left = [], count
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_capped(path: Path, cap: int) -> bytes:
    """The whole of the regular file at path; FileTooLarge past cap bytes (at most cap + 1 are read)."""
    fd = open_regular(path)
    try:
        data = read_upto(fd, cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        raise FileTooLarge(path, cap)
    return data
