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


def resume_command(checkpoint: Path, flags: Sequence[str] = ()) -> str:
    """The command that goes on with an interrupted training from its last.safetensors, repeating flags (those the
    checkpoint does not store: --threads, --device, --data-dir ...)."""
    words = [shell_path(checkpoint), *(printable(shlex.quote(flag)) for flag in flags)]
    return f"vae-tui train --resume {' '.join(words)}"


def explore_command(target: Path) -> str:
    """The command that opens the explorer on a checkpoint or a run folder."""
    return f"vae-tui explore {shell_path(target)}"
