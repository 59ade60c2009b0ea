"""The runs under a folder: what each one is and in what state, read from metadata and metrics only.

A run folder's state is one of: running (a training holds its lock), finished (its last
checkpoint is past the planned epochs), interrupted (resumable from last.safetensors), empty
(nothing in it yet), not a run (files, none of them vae-tui's) or damaged (what is wrong is
said). Only checkpoint headers and
metrics.jsonl are read, never the weights.
"""

import fcntl
import json
import math
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import CheckpointError, UserError
from models.text import printable

METADATA_KEY = "vae_tui"  # models.checkpoint_file's
MAX_HEADER_BYTES = 1 << 20  # models.checkpoint_file's
MAX_METRICS_BYTES = 16 << 20  # a metrics.jsonl past this is not vae-tui's (20 epochs are 4 KB)
RUN_FILES = ("last.safetensors", "best.safetensors", "metrics.jsonl")
COLUMNS = ("run", "model", "dataset", "epochs", "best test", "state", "changed")


@dataclass
class Run:
    """One run folder as the runs listing shows it."""

    name: str
    path: Path
    state: str  # running, finished, interrupted, empty, damaged, or "not a run" (files, none of them vae-tui's)
    problem: str = ""  # for a damaged run: what is wrong
    model: str | None = None
    arch: str | None = None
    dataset: str | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None
    best_loss: float | None = None
    best_epoch: int | None = None
    changed: float = 0.0  # the newest modification time of its files (seconds since the epoch)
    metrics: list[dict] = field(default_factory=list, repr=False)

    @property
    def resume_command(self) -> str | None:
        """How to go on with an interrupted run."""
        if self.state != "interrupted":
            return None
        return f"vae-tui train --resume {printable(str(self.path / 'last.safetensors'))}"

    def as_json(self) -> dict:
        """The row of `vae-tui runs --json`."""
        return {
            "name": self.name,
            "path": str(self.path),
            "state": self.state,
            "problem": self.problem or None,
            "model": self.model,
            "arch": self.arch,
            "dataset": self.dataset,
            "epochs_done": self.epochs_done,
            "epochs_planned": self.epochs_planned,
            "best_test_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "changed": self.changed,
            "resume": self.resume_command,
        }


def lock_held(folder: Path) -> bool:
    """Whether a training holds the folder's lock now (train/output.py takes it exclusively)."""
    try:
        with open(folder / ".lock", "rb") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(file, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def read_metrics(path: Path) -> tuple[list[dict], str]:
    """metrics.jsonl's rows, and what is wrong with it ("" when nothing): the rows before a bad line are kept."""
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            return [], f"metrics.jsonl is over {MAX_METRICS_BYTES >> 20} MB"
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], ""
    except (OSError, UnicodeDecodeError) as e:
        return [], f"metrics.jsonl cannot be read ({printable(str(getattr(e, 'strerror', None) or e))[:60]})"
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError:
            return rows, f"metrics.jsonl line {number} is not JSON (truncated?)"
        if not (
            isinstance(row, dict)
            and type(row.get("epoch")) is int
            and isinstance(row.get("test_loss"), int | float)
            and isinstance(row.get("train_loss"), int | float)
            and all(math.isfinite(row[k]) for k in ("test_loss", "train_loss"))
        ):
            return rows, f"metrics.jsonl line {number} is not an epoch's metrics"
        rows.append(row)
    return rows, ""


def checkpoint_info(path: Path) -> dict:
    """A checkpoint's vae-tui metadata from its header alone; CheckpointError when the header is damaged.

    Not models.checkpoint_file.read_layout: that module imports torch (its dtypes), which alone takes longer than a
    listing of 500 runs may; this reads the same header fields with the same bounds, and checks the file's size
    against the header's length (models.checkpoint checks the rest when a run is opened).
    """
    try:
        with open(path, "rb") as file:
            prefix = file.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path.name} is empty or truncated")
            header_len = struct.unpack("<Q", prefix)[0]
            if header_len > MAX_HEADER_BYTES or 8 + header_len > os.fstat(file.fileno()).st_size:
                raise CheckpointError(f"{path.name} is truncated or not a safetensors file")
            header = json.loads(file.read(header_len).decode("utf-8"))
    except OSError as e:
        raise CheckpointError(f"{path.name} cannot be read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path.name} has a damaged header") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    text = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    try:
        info = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path.name} is not a vae-tui checkpoint (no vae-tui metadata)")
    return info


def _newest_change(folder: Path) -> float:
    times = [folder.stat().st_mtime]
    for child in folder.iterdir():
        try:
            times.append(child.stat().st_mtime)
        except OSError:
            continue
    return max(times)


def scan_run(folder: Path) -> Run:
    """What folder holds, as a Run."""
    run = Run(folder.name, folder, "empty", changed=_newest_change(folder))
    run.metrics, problem = read_metrics(folder / "metrics.jsonl")
    running = lock_held(folder)
    info = None
    for name in ("last.safetensors", "best.safetensors"):
        if (folder / name).exists():
            try:
                info = checkpoint_info(folder / name)
                break
            except CheckpointError as e:
                problem = problem or printable(str(e).replace(str(folder) + "/", ""))[:120]
    if info is not None:
        training = info.get("training") if isinstance(info.get("training"), dict) else {}
        resume = info.get("resume") if isinstance(info.get("resume"), dict) else {}
        run.model, run.arch = training.get("model"), training.get("arch")
        run.dataset = info.get("dataset") if isinstance(info.get("dataset"), str) else None
        planned, epoch = training.get("epochs"), info.get("epoch")
        run.epochs_planned = planned if type(planned) is int else None
        run.epochs_done = epoch if type(epoch) is int else None
        if isinstance(resume.get("best_test_loss"), int | float):
            run.best_loss, run.best_epoch = float(resume["best_test_loss"]), resume.get("best_epoch")
    if run.metrics:
        best = min(run.metrics, key=lambda row: row["test_loss"])
        run.epochs_done = max(run.epochs_done or 0, run.metrics[-1]["epoch"])
        run.best_loss, run.best_epoch = float(best["test_loss"]), best["epoch"]
    if running:
        run.state = "running"
    elif problem:
        run.state, run.problem = "damaged", problem
    elif info is None and run.metrics:
        run.state, run.problem = "damaged", "metrics.jsonl but no checkpoint"
    elif info is None:
        others = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        run.state = "not a run" if others else "empty"
    elif run.epochs_planned is not None and run.epochs_done is not None and run.epochs_done >= run.epochs_planned:
        run.state = "finished"
    else:
        run.state = "interrupted"
    return run


def scan_runs(root: Path) -> list[Run]:
    """Every run folder directly under root (hidden ones left out), by name; a UserError if root is no folder."""
    shown = printable(str(root))
    if not root.exists():
        raise UserError(f"{shown} does not exist: train a model first (vae-tui train), or give the runs folder")
    if not root.is_dir():
        raise UserError(f"{shown} is not a folder")
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise UserError(f"cannot read {shown}: {e.strerror or e}") from None
    return [scan_run(folder) for folder in folders]


def _signature(folder: Path) -> tuple:
    """What changes when a run writes anything the listing shows."""
    parts = []
    for name in RUN_FILES:
        try:
            stat = (folder / name).stat()
            parts.append((name, stat.st_size, stat.st_mtime_ns))
        except OSError:
            parts.append((name, None, None))
    return tuple(parts)


class RunCache:
    """scan_runs for a browser that looks again every few seconds: a run whose files did not change is not read
    again (only its lock is looked at, to see a training start or end)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: dict[str, tuple[tuple, Run]] = {}

    def scan(self) -> list[Run]:
        shown = printable(str(self.root))
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as e:
            raise UserError(f"cannot read {shown}: {e.strerror or e}") from None
        runs = []
        for folder in folders:
            signature = _signature(folder)
            cached = self.runs.get(folder.name)
            running = lock_held(folder)
            if cached is None or cached[0] != signature or (cached[1].state == "running") != running:
                cached = (signature, scan_run(folder))
                self.runs[folder.name] = cached
            runs.append(cached[1])
        return runs


def row_cells(run: Run) -> tuple[str, ...]:
    """A run's cells in the listing and the browser (names from the disk shown as written, never as markup)."""
    model = " ".join(part for part in (run.model, run.arch) if part) or "-"
    epochs = "-" if run.epochs_done is None else f"{run.epochs_done}/{run.epochs_planned or '?'}"
    best = "-" if run.best_loss is None else f"{run.best_loss:.2f} @{run.best_epoch}"
    state = f"damaged: {run.problem}" if run.state == "damaged" else run.state
    changed = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.changed))
    return printable(run.name), model, printable(run.dataset or "-"), epochs, best, printable(state), changed


def ordered(runs: list[Run], sort: str) -> list[Run]:
    """runs by name, by best loss (runs without one last) or newest first."""
    if sort == "loss":
        return sorted(runs, key=lambda r: (r.best_loss is None, r.best_loss or 0.0, r.name))
    if sort == "date":
        return sorted(runs, key=lambda r: (-r.changed, r.name))
    return sorted(runs, key=lambda r: r.name)
