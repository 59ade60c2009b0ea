"""A command in a pseudo-terminal of a fixed size, and a small screen model of what it drew there."""

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

CONTROL = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r|\n)")


@dataclass
class Screen:
    """The cells a terminal of `columns` shows after some output: rows grow without limit (no scrolling).

    Handles what rich writes: text, CR, LF, cursor up/down, erase line and colours (ignored). A line
    longer than the terminal wraps, as a terminal would, and is recorded in `wraps`.
    """

    columns: int
    rows: list[list[str]] = field(default_factory=lambda: [[]])
    row: int = 0
    column: int = 0
    wraps: list[str] = field(default_factory=list)  # each row at the moment it overflowed

    def feed(self, output: str) -> "Screen":
        """Apply output to the screen; return self."""
        for token in CONTROL.split(output):
            if token == "\r":
                self.column = 0
            elif token == "\n":
                self._move_to(self.row + 1)
                self.column = 0
            elif token.startswith("\x1b["):
                self._csi(token)
            elif token and not token.startswith("\x1b]"):
                for char in token:
                    self._put(char)
        return self

    def lines(self) -> list[str]:
        """What each row shows, trailing blanks dropped, empty rows at the end dropped."""
        shown = ["".join(cells).rstrip() for cells in self.rows]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def _move_to(self, row: int) -> None:
        self.row = max(0, row)
        while len(self.rows) <= self.row:
            self.rows.append([])

    def _csi(self, token: str) -> None:
        command, argument = token[-1], token[2:-1]
        count = int(argument) if argument.isdigit() else 1
        if command == "A":
            self._move_to(self.row - count)
        elif command == "B":
            self._move_to(self.row + count)
        elif command == "K":
            self.rows[self.row] = [] if argument == "2" else self.rows[self.row][: self.column]
        elif command == "G":
            self.column = count - 1

    def _put(self, char: str) -> None:
        if self.column >= self.columns:
            self.wraps.append("".join(self.rows[self.row]))
            self._move_to(self.row + 1)
            self.column = 0
        cells = self.rows[self.row]
        cells.extend(" " * (self.column + 1 - len(cells)))
        cells[self.column] = char
        self.column += 1


@dataclass
class PtyResult:
    """What a command did in a pseudo-terminal: exit status and everything it wrote (stdout and stderr)."""

    code: int
    output: str

    def screen(self, columns: int = 80) -> Screen:
        """The output as a terminal of that width shows it."""
        return Screen(columns).feed(self.output)


def _take_terminal() -> None:
    """In the child: make the pseudo-terminal (its stdin) the controlling terminal, so Ctrl-C typed there signals it."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_pty(
    args: list[str], cwd: Path, columns: int = 80, rows: int = 24, timeout: float = 300, keys: dict | None = None
) -> PtyResult:
    """`python -m vae_tui ARGS` in a pseudo-terminal of columns x rows, as its controlling terminal.

    keys maps a piece of output to bytes typed into the terminal when that text first appears (b"\x03": Ctrl-C,
    which the terminal turns into SIGINT and echoes as "^C").
    """
    main, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "vae_tui", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=cwd,
        env=env,
        start_new_session=True,  # a session of its own, whose controlling terminal this one becomes
        preexec_fn=_take_terminal,
    )
    os.close(secondary)
    chunks, pending = [], dict(keys or {})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                text = b"".join(chunks).decode(errors="replace")
                for piece, typed in list(pending.items()):
                    if piece in text:
                        os.write(main, typed)
                        del pending[piece]
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return PtyResult(code, b"".join(chunks).decode(errors="replace"))
