"""The runs under a folder: what each one is and in what state, read from metadata and metrics only.

A run folder's state is one of: running (a training holds its lock), finished (its last
checkpoint is past the planned epochs), interrupted (resumable from last.safetensors), empty
(nothing in it yet), not a run (files, none of them vae-tui's) or damaged (what is wrong is
said). Only checkpoint headers and metrics.jsonl are read, never the weights, and only through
train.run_files (regular files, never blocking, up to a cap). Every value read is checked
before it is kept: strings are made printable, counts and losses bounded, anything else absent.
"""

import fcntl
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import CheckpointError, UserError
from models.names import FOLDER_PREFIX, MAX_HEADER_BYTES, METADATA_KEY
from models.text import printable
from train.commands import resume_command
from train.output import LOCK_BYTES
from train.run_files import FileTooLarge, open_regular, read_capped, read_upto
from train.run_values import epoch_count, loss_value, metrics_row, parse_json, text_value

MAX_METRICS_BYTES = 16 << 20  # a metrics.jsonl past this is not vae-tui's (20 epochs are 4 KB)
MAX_STEPS = 10**9  # steps of an epoch in a lock file's status: past any real run's
POLL_SECONDS = 2.0  # how often the browser looks again: a run still training shows its new epochs within this
RUN_FILES = ("last.safetensors", "best.safetensors", "metrics.jsonl")
COLUMNS = ("run", "model", "dataset", "epochs", "best test", "state", "changed")


@dataclass
class Run:
    """One run folder as the runs listing shows it; every field read from a file is already checked."""

    name: str
    path: Path
    state: str  # running, finished, interrupted, empty, damaged, or "not a run" (files, none of them vae-tui's)
    problem: str = ""  # for a damaged run: what is wrong (printable)
    model: str | None = None  # printable, at most run_values.MAX_TEXT characters
    arch: str | None = None
    dataset: str | None = None
    epochs_done: int | None = None  # 0 to models.limits.MAX_EPOCHS
    epochs_planned: int | None = None
    best_loss: float | None = None  # finite, below run_values.MAX_LOSS in size
    best_epoch: int | None = None
    changed: float = 0.0  # the newest modification time of its files (seconds since the epoch)
    metrics: list[dict] = field(default_factory=list, repr=False)  # checked rows: epoch, train_loss, test_loss
    settings: dict[str, str] = field(default_factory=dict, repr=False)  # SETTINGS found in the header, as text
    live: dict | None = field(default=None, repr=False)  # a running run's status (live_status), read at each look

    @property
    def seconds_per_epoch(self) -> float | None:
        """The median time of an epoch (training and test), from the metrics rows that record it."""
        times = sorted(row["seconds"] for row in self.metrics if "seconds" in row)
        return times[len(times) // 2] if times else None

    @property
    def resume_command(self) -> str | None:
        """How to go on with an interrupted run; a run on an image folder needs the folder again, which the checkpoint
        names but does not locate (it records no paths): --data DIR, and a shell comment naming the folder."""
        if self.state != "interrupted":
            return None
        if self.dataset and self.dataset.startswith(FOLDER_PREFIX):
            command = resume_command(self.path / "last.safetensors", [("--data", "DIR")])
            return f"{command}  # DIR: the image folder {self.dataset.removeprefix(FOLDER_PREFIX)} it trained on"
        return resume_command(self.path / "last.safetensors")

    def as_json(self) -> dict:
        """The row of `vae-tui runs --json` (name and path as on disk: json.dumps escapes their control characters)."""
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


def _reason(e: OSError) -> str:
    return printable(str(e.strerror or e))[:60]


def live_status(folder: Path) -> dict | None:
    """What a training writes under its pid in the lock file (train/output.py's OutputLock.tell): epoch and epochs,
    step and steps, images_per_s, left_s (this epoch's training) and epoch_s (a whole epoch's at that speed), each
    checked; None when there is none, or any of it is off (a line half written reads as none)."""
    try:
        fd = open_regular(folder / ".lock")
    except OSError:
        return None
    try:
        text = read_upto(fd, LOCK_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    lines = text.split("\n")
    try:
        status = parse_json(lines[1]) if len(lines) > 2 else None
    except ValueError:
        return None
    if not isinstance(status, dict):
        return None
    counts = {key: epoch_count(status.get(key)) for key in ("epoch", "epochs")}
    steps = {key: status.get(key) for key in ("step", "steps")}
    times = {key: loss_value(status.get(key)) for key in ("images_per_s", "left_s", "epoch_s")}
    if None in counts.values() or None in times.values() or min(times.values()) < 0:
        return None
    if not all(type(v) is int for v in steps.values()) or not 0 <= steps["step"] <= steps["steps"] <= MAX_STEPS:
        return None
    if not 1 <= counts["epoch"] <= counts["epochs"]:
        return None
    return {**counts, **steps, **times}


def lock_held(folder: Path) -> bool:
    """Whether a training holds the folder's lock now (train/output.py takes it exclusively); a .lock that is not a
    regular file is held by no training."""
    try:
        fd = open_regular(folder / ".lock")
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_metrics(path: Path) -> tuple[list[dict], str]:
    """metrics.jsonl's checked rows, and what is wrong with it ("" when nothing): the rows before a bad line are
    kept."""
    try:
        text = read_capped(path, MAX_METRICS_BYTES).decode("utf-8")
    except FileNotFoundError:
        return [], ""
    except FileTooLarge:
        return [], f"metrics.jsonl is over {MAX_METRICS_BYTES >> 20} MB"
    except OSError as e:
        return [], f"metrics.jsonl cannot be read ({_reason(e)})"
    except UnicodeDecodeError:
        return [], "metrics.jsonl cannot be read (not UTF-8 text)"
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            row = metrics_row(parse_json(line))
        except ValueError:
            return rows, f"metrics.jsonl line {number} is not JSON (truncated?)"
        if row is None:
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
        fd = open_regular(path)
        try:
            prefix = read_upto(fd, 8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path.name} is empty or truncated")
            header_len = struct.unpack("<Q", prefix)[0]
            if header_len > MAX_HEADER_BYTES or 8 + header_len > os.fstat(fd).st_size:
                raise CheckpointError(f"{path.name} is truncated or not a safetensors file")
            header = parse_json(read_upto(fd, header_len).decode("utf-8"))
        finally:
            os.close(fd)
    except OSError as e:
        raise CheckpointError(f"{path.name} cannot be read ({_reason(e)})") from None
    except ValueError:  # not JSON, too deep, or not UTF-8 (UnicodeDecodeError is a ValueError)
        raise CheckpointError(f"{path.name} has a damaged header") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    text = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    try:
        info = parse_json(text) if isinstance(text, str) else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path.name} is not a vae-tui checkpoint (no vae-tui metadata)")
    return info


def _newest_change(folder: Path) -> float:
    """The newest modification time of folder and its entries (links not followed)."""
    times = [folder.stat().st_mtime]
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                times.append(entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return max(times)


SETTINGS = {  # the training settings a run's view shows, by their key in the header, with their label
    "arch": "arch",
    "lr": "lr",
    "lr_schedule": "schedule",
    "beta": "beta",
    "kl_warmup": "KL warm-up",
    "batch_size": "batch",
    "latent_dim": "latent",
    "hidden_dim": "hidden",
    "seed": "seed",
}


def setting_text(value: object) -> str | None:
    """A setting from a header as text: a finite number or a printable string (cut), else None."""
    if type(value) is bool:
        return None
    if type(value) in (int, float):
        number = loss_value(value)
        return None if number is None else f"{number:g}"
    return text_value(value)


def _fill_from_info(run: Run, info: dict) -> None:
    """run's model, arch, dataset, epochs and best loss from a checkpoint's metadata, each checked."""
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    resume = info.get("resume") if isinstance(info.get("resume"), dict) else {}
    run.model, run.arch = text_value(training.get("model")), text_value(training.get("arch"))
    run.dataset = text_value(info.get("dataset"))
    run.epochs_planned = epoch_count(training.get("epochs"))
    run.epochs_done = epoch_count(info.get("epoch"))
    run.best_loss = loss_value(resume.get("best_test_loss"))
    run.best_epoch = epoch_count(resume.get("best_epoch")) if run.best_loss is not None else None
    run.settings = {key: text for key in SETTINGS if (text := setting_text(training.get(key))) is not None}


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
        _fill_from_info(run, info)
    if run.metrics:
        best = min(run.metrics, key=lambda row: row["test_loss"])
        run.epochs_done = max(run.epochs_done or 0, run.metrics[-1]["epoch"])
        run.best_loss, run.best_epoch = best["test_loss"], best["epoch"]
    if running:
        run.state, run.live = "running", live_status(folder)
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
            elif running:
                cached[1].live = live_status(folder)  # the epoch moves on between the files' changes
            runs.append(cached[1])
        return runs


def row_cells(run: Run) -> tuple[str, ...]:
    """A run's cells in the listing and the browser (names from the disk shown as written, never as markup)."""
    model = " ".join(part for part in (run.model, run.arch) if part) or "-"
    epochs = "-" if run.epochs_done is None else f"{run.epochs_done}/{run.epochs_planned or '?'}"
    best_epoch = "?" if run.best_epoch is None else run.best_epoch
    best = "-" if run.best_loss is None else f"{shown_loss(run.best_loss)} @{best_epoch}"
    state = f"damaged: {run.problem}" if run.state == "damaged" else run.state
    changed = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.changed))
    return printable(run.name), model, printable(run.dataset or "-"), epochs, best, printable(state), changed


def shown_loss(loss: float) -> str:
    """A loss with two decimals, as vae-tui's are (hundreds of nats); one far larger in three significant digits."""
    return f"{loss:.2f}" if abs(loss) < 1e6 else f"{loss:.3g}"


def ordered(runs: list[Run], sort: str) -> list[Run]:
    """runs by name, by best loss (runs without one last) or newest first."""
    if sort == "loss":
        return sorted(runs, key=lambda r: (r.best_loss is None, r.best_loss or 0.0, r.name))
    if sort == "date":
        return sorted(runs, key=lambda r: (-r.changed, r.name))
    return sorted(runs, key=lambda r: r.name)
