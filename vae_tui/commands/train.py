"""`vae-tui train`: settings from flags or a checkpoint, data, signals, then the training loop."""

import argparse
import signal
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from vae_tui.commands import DATASETS, MODELS, Commands, add_device_and_data_flags

if TYPE_CHECKING:
    from models import Checkpoint
    from train.loop import TrainSettings

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


def _given_settings(args: argparse.Namespace) -> dict:
    """The settings the user typed (argparse leaves the rest None)."""
    from train.loop import TrainSettings

    return {f.name: getattr(args, f.name) for f in fields(TrainSettings) if getattr(args, f.name, None) is not None}


def _resume_settings(args: argparse.Namespace, checkpoint: "Checkpoint") -> "TrainSettings":
    """The checkpoint's settings; flags may only repeat them, except --epochs, which may extend."""
    from train.loop import TrainSettings

    stored = TrainSettings.from_dict(checkpoint.training)
    given = _given_settings(args)
    conflicts = [
        f"--{name.replace('_', '-')} {value} (checkpoint: {getattr(stored, name)})"
        for name, value in given.items()
        if name != "epochs" and value != getattr(stored, name)
    ]
    if conflicts:
        raise UserError(f"--resume: settings contradict the checkpoint: {', '.join(conflicts)}")
    settings = replace(stored, epochs=given.get("epochs", stored.epochs))
    next_epoch, step = checkpoint.resume.progress["epoch"], checkpoint.resume.progress["step"]
    if next_epoch > settings.epochs or (next_epoch == settings.epochs + 1 and step == 0):
        raise UserError(f"{checkpoint.path} has finished all {settings.epochs} epochs: pass a larger --epochs to go on")
    return settings


def add_parser(commands: Commands) -> None:
    """The `train` sub-command and its flags."""
    parser = commands.add_parser(
        "train",
        help="fit a VAE or CVAE; writes checkpoints, PNG grids and metrics",
        description="Fit a VAE or CVAE on FashionMNIST or MNIST. Each epoch writes reconst-N.png, sample-N.png, "
        "a row of metrics.jsonl, last.safetensors (resumable) and best.safetensors (lowest test loss).",
    )
    parser.add_argument("--model", choices=MODELS, help="model kind (default: vae)")
    parser.add_argument("--dataset", choices=DATASETS, help="dataset (default: fashion-mnist)")
    parser.add_argument("--epochs", type=int, help="total epochs (default: 20)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: 128)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--latent-dim", type=int, help="size of z (default: 20)")
    parser.add_argument("--hidden-dim", type=int, help="hidden layer width (default: 400)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    add_device_and_data_flags(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/<model>-<dataset>-<timestamp>)")
    parser.add_argument("--resume", metavar="CKPT", help="continue from a last.safetensors written by an earlier run")
    parser.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="on CUDA, launch each step's kernels eagerly instead of replaying one captured CUDA graph",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train; return the exit status."""
    from rich.console import Console

    from models import load_checkpoint
    from train.data import load_dataset
    from train.device import resolve_device
    from train.loop import StopFlag, Trainer, TrainingInterrupted, TrainSettings
    from train.output import OutputLock
    from train.progress import make_progress

    resume = None
    if args.resume:
        resume = load_checkpoint(args.resume, with_resume=True)
        settings = _resume_settings(args, resume)
        out_dir = Path(args.out) if args.out else Path(args.resume).parent
    else:
        settings = TrainSettings(**_given_settings(args))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out_dir = Path(args.out) if args.out else Path("runs") / f"{settings.model}-{settings.dataset}-{stamp}"
    device = resolve_device(args.device)
    if resume is None and (out_dir / "last.safetensors").exists():
        raise UserError(
            f"{out_dir} already holds a training: resume it with --resume {out_dir / 'last.safetensors'}"
            " or choose another --out"
        )
    data = load_dataset(settings.dataset, args.data_dir, args.download)
    lock = OutputLock(out_dir)
    progress = make_progress(Console())
    stop = StopFlag()
    previous_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: object) -> None:
        if stop.signal_name:  # a second signal: stop now, the last checkpoint on disk stays whole
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(signum).name

    try:
        for sig in previous_handlers:
            signal.signal(sig, request_stop)
        trainer = Trainer(settings, data, out_dir, device, progress, resume, cuda_graphs=args.cuda_graphs)
        where = f"from epoch {trainer.epoch}, batch {trainer.step} " if resume else ""
        progress.message(
            f"Training {settings.model.upper()} on {data.name} {where}({data.source}) on {device}, writing to {out_dir}"
        )
        with progress:
            trainer.run(stop)
    except TrainingInterrupted as e:
        print(f"{e.signal_name}: stopped and saved {e.checkpoint}. Resume with:", file=sys.stderr)
        print(f"  vae-tui train --resume {e.checkpoint}", file=sys.stderr)
        return EXIT_CODES.get(e.signal_name, 1)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        lock.release()
    best = load_checkpoint(out_dir / "best.safetensors")
    progress.message(
        f"Done: best test loss {best.metrics['test_loss']:.2f} at epoch {best.epoch}. Explore it with:\n"
        f"  vae-tui explore {out_dir / 'best.safetensors'}"
    )
    return 0
