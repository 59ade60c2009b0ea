"""Deleting a run folder, and its size on disk: never through a link, never onto another file system.

The tree is walked by descriptors (os.scandir on a folder's fd, children opened with O_NOFOLLOW relative to it),
so a link is removed as a link and a folder swapped for a link mid-walk is not entered. Every entry's st_dev is
compared with the run folder's: a file system mounted inside a run (a tmpfs at runs/x/data) makes the whole
delete a refusal, naming it, and an entry found on another device during the delete itself is left alone.
"""

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from models.errors import UserError
from models.text import printable

MAX_DEPTH = 64  # vae-tui writes no folders inside a run; a tree deeper than this is not one of its runs
TOP = PurePath()  # the run folder itself, as a path relative to it
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """One name under the run folder, as lstat saw it, with the descriptor of the folder that holds it."""

    parent_fd: int
    name: str
    relative: PurePath  # from the run folder, for messages
    info: os.stat_result


class DeleteRefused(UserError):
    """A run folder that is not deleted: a link, a mount point, another file system inside, or too deep."""


def on_device(info: os.stat_result, device: int) -> bool:
    """Whether an entry lies on the run folder's file system (a mount point inside it does not)."""
    return info.st_dev == device


def entries_under(folder_fd: int, device: int, relative: PurePath = TOP, depth: int = 0) -> Iterator[Entry]:
    """Every entry under the folder open at folder_fd, children before their folder; folders on another device
    and links are yielded but never entered."""
    if depth > MAX_DEPTH:
        raise DeleteRefused(f"a run with folders nested more than {MAX_DEPTH} deep is not vae-tui's: not deleted")
    with os.scandir(folder_fd) as listing:
        names = [entry.name for entry in listing]
    for name in names:
        try:
            info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone meanwhile
        if stat.S_ISDIR(info.st_mode) and on_device(info, device):
            child_fd = os.open(name, DIRECTORY_FLAGS, dir_fd=folder_fd)
            try:
                inside = os.fstat(child_fd)
                if on_device(inside, device):
                    yield from entries_under(child_fd, device, relative / name, depth + 1)
                else:
                    info = inside  # mounted over between the lstat and the open: not entered
            finally:
                os.close(child_fd)
        yield Entry(folder_fd, name, relative / name, info)


def _open_run(folder: Path) -> tuple[int, int]:
    """The run folder's descriptor and device; DeleteRefused for a link, a non-folder or a mount point."""
    shown = printable(folder.name)
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        raise DeleteRefused(f"{shown} is a link, not a run folder: not deleted (remove the link yourself)")
    if not stat.S_ISDIR(info.st_mode):
        raise DeleteRefused(f"{shown} is not a folder: not deleted")
    if info.st_dev != os.lstat(folder.parent).st_dev:
        raise DeleteRefused(f"{shown} is a mount point (another file system): not deleted")
    return os.open(folder, DIRECTORY_FLAGS), info.st_dev


def deletable_size(folder: Path) -> int:
    """The bytes deleting folder would free (its regular files); DeleteRefused where it is never deleted: a link, a
    mount point, or a folder with another file system mounted inside."""
    folder_fd, device = _open_run(folder)
    size, elsewhere = 0, []
    try:
        for entry in entries_under(folder_fd, device):
            if not on_device(entry.info, device):
                elsewhere.append(entry.relative)
            elif stat.S_ISREG(entry.info.st_mode):
                size += entry.info.st_size
    finally:
        os.close(folder_fd)
    if elsewhere:
        where = printable(str(elsewhere[0]))
        raise DeleteRefused(
            f"{printable(folder.name)} holds another file system at {where}: not deleted (unmount it first)"
        )
    return size


def delete_run(folder: Path) -> None:
    """Remove folder and everything under it (links as links); DeleteRefused, with nothing removed, where
    deletable_size refuses; OSError when a removal fails."""
    deletable_size(folder)
    folder_fd, device = _open_run(folder)
    kept = []
    try:
        for entry in entries_under(folder_fd, device):
            if not on_device(entry.info, device):
                kept.append(entry.relative)  # mounted since the look above: left alone
            elif stat.S_ISDIR(entry.info.st_mode):
                if not any(entry.relative in k.parents for k in kept):
                    os.rmdir(entry.name, dir_fd=entry.parent_fd)
            else:
                os.unlink(entry.name, dir_fd=entry.parent_fd)
    finally:
        os.close(folder_fd)
    if kept:
        where = printable(str(kept[0]))
        raise DeleteRefused(f"{printable(folder.name)}: another file system at {where} was left alone")
    os.rmdir(folder)
