"""What the tests share besides fixtures (tests/conftest.py): tiny data, models and checkpoints, the command line,
a pseudo-terminal and its screen, the explorer's waits, hostile names, colour differences and fuzzing strategies.

pytest rewrites this module's asserts (conftest.py registers it), so they check under `python -O` as well.
"""

import asyncio
import copy
import fcntl
import gzip
import hashlib
import json
import math
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from safetensors import safe_open
from textual.pilot import Pilot

from models import Checkpoint, ModelConfig, ResumeState, build_model, save_checkpoint
from models.checkpoint import METADATA_KEY, _data_offset
from models.limits import MAX_EPOCHS, MAX_SEED, MAX_SIZE
from train.data import DEBIAN_DIRS, SPLIT_FILES
from train.progress import EpochResult, PlainProgress
from train.settings import TrainSettings

REAL_FASHION_MNIST = DEBIAN_DIRS["fashion-mnist"]
needs_fashion_mnist = pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# --- data ----------------------------------------------------------------------------------


def idx_bytes(data: torch.Tensor) -> bytes:
    """An IDX file of unsigned bytes holding data (uint8, any number of dimensions)."""
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    return header + data.contiguous().numpy().tobytes()


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n 28x28 images: one fixed blob pattern per class plus noise, so a model can learn them."""
    generator = torch.Generator().manual_seed(1234)
    templates = (torch.rand(10, 28, 28, generator=generator) > 0.6).float()
    generator.manual_seed(seed)
    labels = torch.arange(n) % 10
    noise = torch.rand(n, 28, 28, generator=generator) * 0.3
    images = ((templates[labels] * 0.7 + noise).clamp(0, 1) * 255).to(torch.uint8)
    return images, labels.to(torch.uint8)


def write_dataset(folder: Path, n_train: int = 512, n_test: int = 128, gz: bool = False) -> dict[str, bytes]:
    """Write the four IDX files into folder; return each file's bytes by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = make_split(n, seed)
        for name, data in zip(SPLIT_FILES[split], (images, labels), strict=True):
            content = idx_bytes(data)
            name, content = (f"{name}.gz", gzip.compress(content, mtime=0)) if gz else (name, content)
            (folder / name).write_bytes(content)
            written[name] = content
    return written


# --- models and checkpoints ----------------------------------------------------------------

TINY = ModelConfig(hidden_dim=32, latent_dim=4)
RESUME_PROGRESS = {"epoch": 2, "step": 5, "best_test_loss": 250.5, "best_epoch": 1}
HUGE = "9" * 5000  # past the 4,300 digits Python parses


def make_checkpoint(kind: str = "vae", resume: bool = False) -> Checkpoint:
    """A tiny seeded checkpoint, with a resume state if asked."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, hidden_dim=TINY.hidden_dim, latent_dim=TINY.latent_dim))
    state = None
    if resume:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.loss(torch.rand(8, 784), torch.arange(8))[0].backward()
        optimizer.step()
        state = ResumeState(optimizer.state_dict(), {"rng_now.cpu": torch.get_rng_state()}, dict(RESUME_PROGRESS))
    return Checkpoint(
        model=model,
        dataset="mnist",
        class_names=[str(i) for i in range(10)],
        epoch=1,
        class_centroids=torch.randn(10, TINY.latent_dim),
        metrics={"test_loss": 123.5},
        training={"lr": 1e-3, "batch_size": 64},
        resume=state,
    )


def resign(path: Path, edit_info: Callable | None = None, edit_tensors: Callable | None = None, raw: str = "") -> Path:
    """Change a checkpoint's metadata and tensors and sign it again, as a buggy writer would; the JSON string
    "RAW" in the edited metadata is written as raw (a number json.dumps cannot write)."""
    tensors = safetensors.torch.load_file(path)
    with safe_open(path, "pt") as f:
        info = json.loads(f.metadata()[METADATA_KEY])
    if edit_info:
        edit_info(info)
    if edit_tensors:
        edit_tensors(tensors)
    unsigned = safetensors.torch.save(tensors)
    info["sha256"] = hashlib.sha256(unsigned[_data_offset(unsigned) :]).hexdigest()
    text = json.dumps(info).replace('"RAW"', raw) if raw else json.dumps(info)
    path.write_bytes(safetensors.torch.save(tensors, metadata={METADATA_KEY: text}))
    return path


def huge_offset_in_header(path: Path) -> Path:
    """The first tensor's data_offsets start replaced by a 5000-digit integer, in the safetensors header itself."""
    blob = path.read_bytes()
    length = struct.unpack("<Q", blob[:8])[0]
    header = re.sub(r'"data_offsets":\[\d+,', f'"data_offsets":[{HUGE},', blob[8 : 8 + length].decode(), count=1)
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + blob[8 + length :])
    return path


def tiny_cvae(path: Path, **sizes: int) -> Path:
    """A tiny CVAE checkpoint of mnist with the given sizes (input_dim, num_classes ...)."""
    torch.manual_seed(0)
    config = ModelConfig(kind="cvae", hidden_dim=32, latent_dim=4, **sizes)
    checkpoint = Checkpoint(
        model=build_model(config),
        dataset="mnist",
        class_names=[str(i) for i in range(config.num_classes)],
        epoch=1,
        class_centroids=torch.zeros(config.num_classes, 4),
    )
    return save_checkpoint(path, checkpoint)


SMALL = {"hidden_dim": 16, "latent_dim": 3}  # sizes of a model that is built and saved, never trained


def untrained_checkpoint(config: ModelConfig) -> Checkpoint:
    """A checkpoint of a seeded, untrained model of config, its centroids zero."""
    torch.manual_seed(0)
    return Checkpoint(
        model=build_model(config),
        dataset="mnist",
        class_names=[str(i) for i in range(config.num_classes)],
        epoch=1,
        class_centroids=torch.zeros(config.num_classes, config.latent_dim),
    )


# markup that crashes Rich or Textual, markup that would restyle, escape sequences that clear the
# screen and rename the terminal, a C1 control sequence introducer and a bidi override
HOSTILE_NAMES = [
    "[/]",
    "[link=http://x]a[/link]",
    "\x1b]2;pwned\x07",
    "\x1b[2J",
    "[red]x",
    "[b",
    "\\",
    "\x9b31m",
    "\u202eevil",
    "9",
]
CONTROL_BYTES = ("\x1b", "\x07", "\x9b", "\u202e")


def hostile_checkpoint(
    path: Path, kind: str = "cvae", class_names: list[str] = HOSTILE_NAMES, dataset: str = "mnist"
) -> Path:
    """A tiny checkpoint whose metadata carries the given names."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, hidden_dim=32, latent_dim=4))
    checkpoint = Checkpoint(
        model=model,
        dataset=dataset,
        class_names=list(class_names),
        epoch=1,
        class_centroids=torch.randn(10, 4),
        metrics={"test_loss": 1.5},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, checkpoint)


# --- training ------------------------------------------------------------------------------

TINY_FLAGS = ["--dataset", "mnist", "--batch-size", "32", "--hidden-dim", "32", "--latent-dim", "4"]
TINY_TRAIN = ["--dataset", "mnist", "--batch-size", "64", "--hidden-dim", "32", "--latent-dim", "4", "--epochs", "1"]
TINY_SETTINGS = TrainSettings(dataset="mnist", epochs=2, batch_size=32, lr=1e-2, latent_dim=4, hidden_dim=32, seed=3)


class QuietProgress(PlainProgress):
    """Progress that keeps each epoch's result and message in `lines` instead of printing."""

    def __init__(self) -> None:
        self.total_epochs, self.lines = 0, []

    def epoch_done(self, result: EpochResult) -> None:
        self.lines.append(result)

    def message(self, text: str) -> None:
        self.lines.append(text)


# --- the command line ------------------------------------------------------------------------


class CliResult(NamedTuple):
    """What a `vae-tui` command did: exit status, stdout and stderr."""

    code: int
    stdout: str
    stderr: str

    @classmethod
    def of(cls, process: subprocess.CompletedProcess) -> "CliResult":
        return cls(process.returncode, process.stdout, process.stderr)

    def assert_one_line_error(self, *fragments: str) -> None:
        """A failure reported as one line on stderr (no traceback) that contains every fragment."""
        assert self.code != 0, self
        assert "Traceback" not in self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        for fragment in fragments:
            assert fragment in lines[0]


def one_line_error(err: str, *fragments: str) -> str:
    """err is one line (no traceback) containing every fragment; that line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- a pseudo-terminal, and what a terminal shows ----------------------------------------------

TERMINAL_OUT = Path("runs") / "vae-fashion-mnist-20261129-144628"  # relative, as long as the default name

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


def terminal_environment(columns: int, rows: int) -> dict[str, str | None]:
    """The variables a command in a terminal of columns x rows sees (None: unset), rich's overrides left out."""
    unset = dict.fromkeys(("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"))
    return {"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows), **unset}


def set_environment(values: dict[str, str | None]) -> None:
    """Set each variable of values in os.environ, or unset it where its value is None."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class Forked:
    """`vae-tui ARGS` in a child forked from this process: a real process (its own pid, signals, stdout and stderr,
    exit status) that runs what `python -m vae_tui ARGS` runs, `vae_tui.cli.main(ARGS)`, without the 2-4 s of CPU
    a fresh interpreter spends importing torch. A Popen look-alike for what the tests use (communicate, wait,
    poll, kill, pid, returncode).

    The child takes the environment changes (None unsets), the folder, and the points that VAE_TUI_POINTS and
    VAE_TUI_SIGNAL_AT name; SIGINT and SIGTERM get Python's own handling back. With terminal (a pseudo-terminal's
    secondary end), the child starts a session whose controlling terminal it is, and takes it as stdin, stdout and
    stderr, so Ctrl-C typed there signals it; without, stdin is /dev/null and stdout and stderr are pipes. Where
    the entry point itself is the point, the tests start `python -m vae_tui` (tests/test_cli.py).
    """

    def __init__(
        self,
        args: list[str],
        env: dict[str, str | None] | None = None,
        cwd: Path | None = None,
        terminal: int | None = None,
    ) -> None:
        self.returncode: int | None = None
        pipes = None if terminal is not None else (os.pipe(), os.pipe())
        sys.stdout.flush(), sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            code = 1
            try:
                if terminal is not None:
                    os.setsid()  # a session of its own, whose controlling terminal this one becomes
                    fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)
                    for fd in (0, 1, 2):
                        os.dup2(terminal, fd)
                else:
                    (out_r, out), (err_r, err) = pipes
                    os.dup2(out, 1), os.dup2(err, 2)
                    null = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(null, 0)
                    for fd in (out_r, out, err_r, err, null):
                        os.close(fd)
                code = self._child(args, env or {}, cwd, tty=terminal is not None)
            except BaseException:  # before main ran: said on the child's stderr, not lost
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        if pipes is not None:
            (out_r, out_w), (err_r, err_w) = pipes
            os.close(out_w), os.close(err_w)
            self._out, self._err = out_r, err_r

    @staticmethod
    def _child(args: list[str], env: dict[str, str | None], cwd: Path | None, tty: bool) -> int:
        import signal
        import traceback

        from models.points import listen_as_the_environment_says
        from vae_tui.cli import main

        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        set_environment(env)
        listen_as_the_environment_says()
        if cwd is not None:
            os.chdir(cwd)
        # as a Python process's own streams: line-buffered on a terminal; stdout block-buffered on a pipe
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1 if tty else -1, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        return code

    def _status(self, status: int) -> int:
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"vae-tui (forked, pid {self.pid})", timeout)
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, 9)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Everything the child wrote to stdout and to stderr, once it has ended (within timeout seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks: dict[int, list[bytes]] = {self._out: [], self._err: []}
        open_fds = [fd for fd in chunks if fd >= 0]
        while open_fds:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"vae-tui (forked, pid {self.pid})", timeout)
            ready, _, _ = select.select(open_fds, [], [], left)
            for fd in ready:
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.remove(fd)
                    os.close(fd)
        self._out = self._err = -1
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()) + 1)
        out, err = (b"".join(chunks[fd]).decode(errors="replace") for fd in chunks)
        return out, err


def run_in_pty(
    args: list[str], cwd: Path, columns: int = 80, rows: int = 24, timeout: float = 300, keys: dict | None = None
) -> PtyResult:
    """`vae-tui ARGS` in a process (Forked) in a pseudo-terminal of columns x rows, as its controlling terminal.

    keys maps a piece of output to bytes typed into the terminal when that text first appears (b"\x03": Ctrl-C,
    which the terminal turns into SIGINT and echoes as "^C").
    """
    main, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    # NOFLSH: a Ctrl-C does not make the terminal discard the output not yet read, which cuts a line (even a
    # character) short at a random byte; the output read here is then all the program wrote, the echoed ^C between
    # two of its writes
    attributes = termios.tcgetattr(secondary)
    attributes[3] |= termios.NOFLSH
    termios.tcsetattr(secondary, termios.TCSANOW, attributes)
    process = Forked(args, terminal_environment(columns, rows), cwd, terminal=secondary)
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


def run_cli_in_pty(args: list[str], cwd: Path, columns: int = 80, rows: int = 24) -> PtyResult:
    """`vae-tui ARGS` in this process, its stdout and stderr on a pseudo-terminal of columns x rows: what a command
    draws on a terminal, where the process is not the point (run_in_pty starts one, for signals from the terminal).

    The environment is run_in_pty's; torch's thread count, the streams, the folder and the environment are put back.
    """
    from vae_tui.cli import main

    main_fd, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    environment = terminal_environment(columns, rows)
    saved = {name: os.environ.get(name) for name in environment}
    streams, folder, threads = (sys.stdout, sys.stderr), Path.cwd(), torch.get_num_threads()
    try:
        # line-buffered, as a Python process's stdout on a terminal; closing it closes the last writer
        with open(secondary, "w", buffering=1, encoding="utf-8", errors="backslashreplace") as terminal:
            set_environment(environment)
            os.chdir(cwd)
            sys.stdout = sys.stderr = terminal
            try:
                code = main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
            finally:
                sys.stdout, sys.stderr = streams
    finally:
        os.chdir(folder)
        torch.set_num_threads(threads)
        set_environment(saved)
        reader.join(timeout=30)  # the terminal closed: the reader gets EIO once it has read everything
        os.close(main_fd)
    return PtyResult(code, b"".join(chunks).decode(errors="replace"))


# --- the explorer --------------------------------------------------------------------------


async def wait_until(pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Let the app run until condition() holds, else fail. The deadline only ends a wait that would never finish; a
    busy machine must not fail a test."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)  # polling, not a fixed wait: lets a worker thread run before the next look


async def resize(app: object, pilot: Pilot, width: int, height: int) -> None:
    """Resize the terminal, then wait until the screen is laid out at the new size. Textual hands a resize on to the
    screen 1/120 s after it comes (App._on_resize's timer), and Pilot's wait for an idle process can end sooner, on
    a busy machine or with a short idle window: the test would then look at the old layout."""
    await pilot.resize_terminal(width, height)
    laid_out = f"the screen laid out at {width}x{height}"
    await wait_until(pilot, lambda: app.screen.outer_size == (width, height), laid_out)


async def settle(app: object, pilot: Pilot) -> None:
    """Wait until the frame of the newest state is on screen (decoding runs in a thread)."""
    screen = app.explorer
    await wait_until(
        pilot,
        lambda: (
            screen.frame is not None and screen.frame.version == screen.state.version and not screen.strips_missing()
        ),  # only the strips on screen are decoded
        "the frame of the newest state on screen",
    )
    await pilot.pause()


def toast_shows(app: object, text: str) -> bool:
    """Whether a notification drawn on the current screen shows text (wraps ignored)."""
    for toast in app.screen.query("Toast"):
        drawn = "".join(seg.text for y in range(toast.size.height) for seg in toast.render_line(y))
        if "".join(text.split()) in "".join(drawn.split()):
            return True
    return False


def screen_text(app: object) -> list[str]:
    """The terminal's lines as drawn, dialogs and toasts included: the full screen update that Textual's screenshot
    (App.export_screenshot) prints, read as text instead of as its SVG (3 ms against 70 ms at 120x40)."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return ["".join(segment.text for segment in line).rstrip() for line in update.strips]


# --- image files -----------------------------------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height grey pixels and whose data is one empty compressed block."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# --- colour difference (CIEDE2000; Sharma, Wu and Dalal, 2005), for the map's class colours ------------------


def srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an 8-bit sRGB colour."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1: tuple[float, float, float], lab2: tuple[float, float, float]) -> float:
    """The CIEDE2000 difference of two L*a*b* colours (kL = kC = kH = 1)."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    dh_big = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    if not c1p * c2p:
        h_mean = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_mean = (h1p + h2p) / 2
    else:
        h_mean = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (
        1
        - 0.17 * math.cos(math.radians(h_mean - 30))
        + 0.24 * math.cos(math.radians(2 * h_mean))
        + 0.32 * math.cos(math.radians(3 * h_mean + 6))
        - 0.20 * math.cos(math.radians(4 * h_mean - 63))
    )
    theta = 30 * math.exp(-(((h_mean - 275) / 25) ** 2))
    rc = 2 * math.sqrt(cp_mean**7 / (cp_mean**7 + 25**7))
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    sc, sh = 1 + 0.045 * cp_mean, 1 + 0.015 * cp_mean * t
    rt = -math.sin(math.radians(2 * theta)) * rc
    return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dh_big / sh) ** 2 + rt * (dc / sc) * (dh_big / sh))


# --- fuzzing: hypothesis' settings and the strategies several modules share ---------------------------------

EXAMPLES = int(os.environ.get("VAE_TUI_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def mutate(data: bytes, edits: list[tuple[int, int, int]], cut: int | None) -> bytes:
    """Apply (position, kind, byte) edits: 0 overwrites, 1 inserts, 2 deletes; then maybe truncate."""
    out = bytearray(data)
    for position, kind, value in edits:
        if not out:
            break
        position %= len(out)
        if kind == 0:
            out[position] = value
        elif kind == 1:
            out.insert(position, value)
        else:
            del out[position]
    return bytes(out[:cut] if cut is not None else out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 2), st.integers(0, 255)), max_size=8)
HEADER_EDITS = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 2), st.integers(32, 126)), min_size=1, max_size=4
)


HUGE_INTEGER = "HUGE_INTEGER"  # written into the JSON text as 5000 digits: json.dumps cannot write such an int
HOSTILE_STRINGS = [
    "",
    "[/]",
    "[link=http://x]a[/link]",
    "\x1b]2;pwned\x07",
    "\x1b[2J",
    "\x9b31m",
    "\u202eevil",
    "\ud800",
]
HOSTILE_STRINGS += [
    "128",
    "1e-3",
    "abc",
    "vae",
    "cvae",
    "mnist",
    "fashion-mnist",
    "NaN",
    HUGE_INTEGER,
    "-" + HUGE_INTEGER,
]
BOUNDS = [0, 1, -1, 2, 9, 10, 784, 2**31, MAX_SIZE, MAX_SIZE + 1, MAX_EPOCHS + 1, MAX_SEED, MAX_SEED + 1, 2**64, 10**30]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BOUNDS),
    st.floats(allow_subnormal=False),  # train.loop flushes denormals to zero (hypothesis checks)
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def edited(info: dict, edits: list[tuple[tuple, bool, object]]) -> dict:
    """A copy of info with each edit applied where its path still leads to an object or list."""
    info = copy.deepcopy(info)
    for path, delete, value in edits:
        parent = info
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent, dict | list) and _has(parent, key) else None
        if isinstance(parent, dict | list) and (_has(parent, path[-1]) or isinstance(parent, dict)):
            if delete and _has(parent, path[-1]):
                del parent[path[-1]]
            elif not delete:
                parent[path[-1]] = value
    return info


def _has(container: dict | list, key: object) -> bool:
    return key in container if isinstance(container, dict) else isinstance(key, int) and key < len(container)


def signed(tensors: dict, info: dict) -> bytes:
    """A checkpoint of tensors with metadata info, its checksum matching (the HUGE strings as 5000-digit integers)."""
    unsigned = safetensors.torch.save(tensors)
    info = {**info, "sha256": hashlib.sha256(unsigned[_data_offset(unsigned) :]).hexdigest()}
    text = json.dumps(info).replace(f'"{HUGE_INTEGER}"', "9" * 5000).replace(f'"-{HUGE_INTEGER}"', "-" + "9" * 5000)
    return safetensors.torch.save(tensors, metadata={METADATA_KEY: text})
