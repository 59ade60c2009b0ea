"""`vae-tui train` on several processes: `--nproc N` through torchrun's launcher, and a rank's start."""

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from models.errors import UserError
from train.stop import STOP_SIGNALS

LAUNCHER_ENV = "VAE_TUI_LAUNCHER"  # set by `train --nproc`: it prints the one line of a rank's failure itself
LAUNCHER_FLAGS = ("--nproc", "--max-restarts")
PEER_LOST = "stopped answering"  # train.distributed.PEER_LOST (this module loads before torch)

if TYPE_CHECKING:
    import torch

    from train.distributed import Ranks
    from train.stop import StopFlag
    from vae_tui.commands.train import Start


def under_torchrun() -> bool:
    """Whether torchrun started this process as one of several ranks (torch-free: read before torch loads)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_other_rank() -> bool:
    """Whether this process is a rank other than 0, which prints nothing of its own."""
    return under_torchrun() and os.environ.get("RANK", "0") != "0"


def without_nproc(argv: list[str]) -> list[str]:
    """The train command's arguments with the launcher's own flags (--nproc N, --max-restarts N, or with =) left
    out."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCHER_FLAGS:
            skip = True
        elif not arg.startswith(tuple(f"{flag}=" for flag in LAUNCHER_FLAGS)):
            kept.append(arg)
    return kept


def launch(args: argparse.Namespace) -> int:
    """Run this training on args.nproc processes of this node with torch.distributed.run (torchrun) and return its
    exit status; SIGINT and SIGTERM are passed on to it, and it passes them on to every rank. A new run's folder is
    fixed here, so that ranks torchrun restarts (--max-restarts) go on with the same run. torchrun's failure report
    goes to a log file, and one line names the rank that failed and its error."""
    n = args.nproc
    if n < 1:
        raise UserError(f"--nproc {n}: give 1 or more processes")
    if args.max_restarts is not None and args.max_restarts < 0:
        raise UserError(f"--max-restarts {args.max_restarts}: give 0 or more")
    if under_torchrun():
        raise UserError("--nproc inside torchrun: torchrun already started the processes; leave out --nproc")
    if args.device.startswith(("cuda", "auto")):  # not for cpu: this process need not load torch (seconds of CPU)
        import torch

        cuda = args.device.startswith("cuda") or torch.cuda.is_available()
        if cuda and n > (count := torch.cuda.device_count()):
            raise UserError(f"--nproc {n}: this node has {count} CUDA GPU(s), one a rank: use --nproc {count} at most")
    argv = without_nproc(args.argv)
    out_dir = Path(args.resume).parent if args.resume else Path(args.out) if args.out else None
    if out_dir is None:
        out_dir = planned_out_dir(args)
        argv += ["--out", str(out_dir)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"]
    command += [f"--max-restarts={args.max_restarts or 0}"]
    env = {**os.environ, LAUNCHER_ENV: "1"}
    process = subprocess.Popen(
        [*command, "-m", "vae_tui", *argv], env=env, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    report = TorchrunReport(process.stderr)  # type: ignore[arg-type]
    signalled: list[int] = []

    def pass_on(signum: int, frame: object) -> None:
        signalled.append(signum)
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in STOP_SIGNALS}
    try:
        status = process.wait()
        report.thread.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if status != 0 and not signalled and report.held and (line := report.summary(out_dir)):
        print(f"vae-tui train: {line}", file=sys.stderr)
    return status


def planned_out_dir(args: argparse.Namespace) -> Path:
    """The folder a new run started now writes to when --out is not given."""
    from train.settings import TrainSettings
    from vae_tui.commands.train import _given_settings, default_out_dir

    settings = TrainSettings(**_given_settings(args))
    return default_out_dir(args, settings.model, settings.dataset, time.strftime("%Y%m%d-%H%M%S"))


# torchrun's own lines: its logger's ("W1206 22:53:21.590000 123 torch/distributed/run.py:793] ...") and its report
TORCHRUN_LINE = re.compile(r"^\[?[WEIDC]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ .*torch/distributed/")
TORCHRUN_BANNER = ("*****", "Setting OMP_NUM_THREADS")  # its note on threads, framed by stars
REPORT_START = "Traceback (most recent call last):"  # the ranks print no tracebacks: this one is torchrun's


class TorchrunReport:
    """Reads torchrun's stderr in a thread: the ranks' lines are passed on at once, torchrun's own lines and its
    failure report are held back, for a log file and one line."""

    def __init__(self, stream: TextIO) -> None:
        self.held: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: TextIO) -> None:
        in_report = False
        for line in stream:
            in_report = in_report or line.startswith(REPORT_START)
            own = TORCHRUN_LINE.match(line) or "torch.distributed.elastic" in line or line.startswith(TORCHRUN_BANNER)
            if in_report or own:
                self.held.append(line)
            else:
                sys.stderr.write(line)
                sys.stderr.flush()

    def summary(self, out_dir: Path | None) -> str | None:
        """One line naming the rank that failed and its error, torchrun's report written to a log file (in the run
        folder where it exists, else the user cache's logs/); None where that rank already printed its own line."""
        failures = parse_failures("".join(self.held))
        if not failures:
            return None
        # the first failure that is not a rank losing its peer; where that one was a user error, it is printed
        failure = next((f for f in failures if PEER_LOST not in f["error"]), failures[0])
        if failure["user_error"]:
            return None
        log = write_log("".join(self.held), out_dir)
        return f"rank {failure['rank']} failed: {failure['error']}; torchrun's report: {log}"


def parse_failures(report: str) -> list[dict]:
    """The failed ranks in torchrun's report, root cause first: rank, error (from its error file, or its exit code)
    and whether the error was the user's (already printed)."""
    import json

    found = []
    cause = report.find("Root Cause")
    blocks = re.split(r"\n\[\d+\]:\n", report[cause:] + "\n" + report[:cause] if cause >= 0 else report)
    for block in blocks[1:]:
        rank = re.search(r"rank\s*:\s*(\d+)", block)
        if not rank:
            continue
        exitcode = re.search(r"exitcode\s*:\s*(-?\d+)", block)
        error_file = re.search(r"error_file\s*:\s*(\S+)", block)
        error, user_error = f"exit code {exitcode.group(1) if exitcode else '?'}", False
        if exitcode and int(exitcode.group(1)) < 0:
            error = f"killed by {signal_name(-int(exitcode.group(1)))}"
        if error_file and os.path.isfile(error_file.group(1)):
            try:
                with open(error_file.group(1)) as f:
                    message = json.load(f)["message"]
                error = message["message"]
                user_error = bool(message.get("extraInfo", {}).get("user_error"))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        found.append({"rank": int(rank.group(1)), "error": error, "user_error": user_error})
    return found


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def write_log(text: str, out_dir: Path | None) -> Path:
    """text in a new log file: in out_dir where it exists, else in the user cache's logs/."""
    from train.cache import user_cache_dir

    folder = out_dir if out_dir is not None and out_dir.is_dir() else user_cache_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"torchrun-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text(text)
    return path


def restarted_from(args: argparse.Namespace) -> None:
    """Ranks that torchrun restarted (TORCHELASTIC_RESTART_COUNT > 0) with a new run's --out: the run goes on from
    that folder's last.safetensors where one was written (set as args.resume), else starts again there."""
    if not under_torchrun() or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) == 0:
        return
    if args.resume or not args.out or not (last := Path(args.out) / "last.safetensors").exists():
        return
    args.resume = str(last)


def rank_threads(ranks: "Ranks", fixed: int | None) -> None:
    """Threads per rank on the CPU: --threads, else the usable CPUs shared among this node's ranks."""
    import torch

    from train.threads import usable_cpus

    torch.set_num_threads(fixed or max(1, usable_cpus() // ranks.local_world_size))


def check_shards(ranks: "Ranks", batch_size: int, train_images: int) -> None:
    """Every rank gets at least one image of every batch, the ragged last one included."""
    last = train_images % batch_size
    if batch_size < ranks.world_size or 0 < last < ranks.world_size:
        smallest = min(batch_size, last) if last else batch_size
        raise UserError(
            f"--batch-size {batch_size} on {ranks.world_size} processes: a batch of {smallest} image(s) leaves a "
            "rank without any; choose another --batch-size"
        )


class Unlocked:
    """What a rank other than 0 holds instead of the output folder's lock: rank 0 holds it."""

    def tell(self, status: dict) -> None:
        pass

    def release(self) -> None:
        pass


def ranked_start(args: argparse.Namespace, stop: "StopFlag", ranks: "Ranks", start: Callable[[], "Start"]) -> "Start":
    """Rank 0 starts (the folder, its lock, the data and its store) and sends the settings and the folder; the other
    ranks then read the same data (a folder's store from the cache rank 0 filled) and the same checkpoint."""
    from models import load_checkpoint
    from train.data import load_dataset
    from vae_tui.commands.data import folder_data
    from vae_tui.commands.train import Start

    started: list[Start] = []

    def decide() -> tuple:
        started.append(start())
        return started[0].settings, str(started[0].out_dir), args.test_fraction

    settings, out_dir, test_fraction = ranks.decide(decide)
    if ranks.is_main:
        return started[0]
    args.test_fraction = test_fraction
    resume = load_checkpoint(Path(args.resume), with_resume=True) if args.resume else None
    if args.data:
        data = folder_data(args, settings.seed)
    else:
        data = load_dataset(settings.dataset, args.data_dir, args.download)
    return Start(resume, settings, data, Path(out_dir), Unlocked())  # type: ignore[arg-type]


def describe_ranks(ranks: "Ranks", batch_size: int, device: "torch.device") -> str:
    """The line that says how the batch is shared."""
    share = f"{batch_size // ranks.world_size}" + ("" if batch_size % ranks.world_size == 0 else " or so")
    graphs = "; CUDA graphs are off under DDP" if device.type == "cuda" else ""
    n = ranks.world_size
    return f"{n} processes (torch.distributed DDP): each trains {share} of every {batch_size} images{graphs}"
