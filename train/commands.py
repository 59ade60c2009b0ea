"""The vae-tui command lines printed for the user to paste, each built in one place with its paths shell-quoted."""

import shlex
from collections.abc import Sequence
from pathlib import Path

from models.text import printable


def shell_path(path: Path) -> str:
    """path as one shell word that cannot run anything when pasted (a name like `x;touch PWNED;#` stays a name),
    never read as a flag, and printable."""
    text = str(path)
    if text.startswith("-"):
        text = f"./{text}"
    return printable(shlex.quote(text))


def resume_command(checkpoint: Path, flags: Sequence[tuple[str, str | None]] = (), lines: bool = False) -> str:
    """The command that goes on with an interrupted training from its last.safetensors, repeating flags, (flag,
    value or None) each: those the checkpoint does not store (--threads, --device, --data-dir ...). With lines and
    flags, each flag (--resume too) starts a continuation line, so that no line is much wider than its path."""
    words = [f"--resume {shell_path(checkpoint)}"]
    words += [flag if value is None else f"{flag} {shell_path(Path(value))}" for flag, value in flags]
    separator = " \\\n    " if lines and flags else " "
    return "vae-tui train" + separator + separator.join(words)


def explore_command(target: Path) -> str:
    """The command that opens the explorer on a checkpoint or a run folder."""
    return f"vae-tui explore {shell_path(target)}"
