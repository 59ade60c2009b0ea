"""`vae-tui train` on several processes: `--nproc N` through torchrun's launcher, and a rank's start."""

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from train.stop import STOP_SIGNALS

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
    """The train command's arguments with --nproc N (or --nproc=N) left out."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def launch(args: argparse.Namespace) -> int:
    """Run this training on args.nproc processes of this node with torch.distributed.run (torchrun) and return its
    exit status; SIGINT and SIGTERM are passed on to it, and it passes them on to every rank."""
    import torch

    n = args.nproc
    if n < 1:
        raise UserError(f"--nproc {n}: give 1 or more processes")
    if under_torchrun():
        raise UserError("--nproc inside torchrun: torchrun already started the processes; leave out --nproc")
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if cuda and n > (count := torch.cuda.device_count()):
        raise UserError(f"--nproc {n}: this node has {count} CUDA GPU(s), one a rank: use --nproc {count} at most")
    argv = without_nproc(args.argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"]
    process = subprocess.Popen([*command, "-m", "vae_tui", *argv])

    def pass_on(signum: int, frame: object) -> None:
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in STOP_SIGNALS}
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
