"""`vae-tui train`: settings from flags or a checkpoint, data, signals, then the training loop."""

import argparse
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from models.errors import UserError
from models.names import ARCHS, DATASET_NAMES, FOLDER_PREFIX, LR_SCHEDULES, MODEL_KINDS
from models.text import printable
from train.commands import explore_command, resume_command
from vae_tui.commands import Commands, add_device_and_data_flags, add_folder_flags, check_folder_flags, follower
from vae_tui.commands.data import folder_data

if TYPE_CHECKING:
    from models import Checkpoint
    from train.data import Dataset
    from train.output import OutputLock
    from train.settings import TrainSettings
    from train.stop import StopFlag

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Start(NamedTuple):
    """What training starts from: a checkpoint (None for a new run), settings, data and the locked folder."""

    resume: "Checkpoint | None"
    settings: "TrainSettings"
    data: "Dataset"
    out_dir: Path
    lock: "OutputLock"


def _given_settings(args: argparse.Namespace) -> dict:
    """The settings the user typed (argparse leaves the rest None)."""
    from train.settings import TrainSettings

    return {f.name: getattr(args, f.name) for f in fields(TrainSettings) if getattr(args, f.name, None) is not None}


def _resume_settings(args: argparse.Namespace, checkpoint: "Checkpoint") -> "TrainSettings":
    """The checkpoint's settings; flags may only repeat them, except --epochs, which may extend."""
    from train.settings import TrainSettings

    stored = TrainSettings.from_checkpoint(checkpoint)  # every field checked, and against the model
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
        allow_abbrev=False,  # --npr 2 would otherwise be --nproc 2, which the launched ranks would not recognise
        help="fit a VAE or CVAE; writes checkpoints, PNG grids and metrics",
        description="Fit a VAE or CVAE on FashionMNIST or MNIST. Each epoch writes reconst-N.png, sample-N.png, "
        "a row of metrics.jsonl, best.safetensors (lowest test loss) and, last of all, last.safetensors (resumable).",
    )
    parser.add_argument("--model", choices=MODEL_KINDS, help="model kind (default: vae)")
    parser.add_argument(
        "--arch", choices=ARCHS, help="mlp: the demo's 784-400-20; conv: convolutions, sharper (default: mlp)"
    )
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="dataset (default: fashion-mnist)")
    parser.add_argument("--epochs", type=int, help="total epochs (default: 20)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: 128)")
    parser.add_argument("--lr", type=float, help="Adam learning rate; with cosine, the first one (default: 1e-3)")
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="constant, or cosine decay to 0 over the epochs (default: constant for mlp, cosine for conv)",
    )
    parser.add_argument("--latent-dim", type=int, help="size of z (default: 20)")
    parser.add_argument("--hidden-dim", type=int, help="hidden layer width (default: 400 for mlp, 384 for conv)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    parser.add_argument(
        "--beta", type=float, help="weight of the KL term in the training loss (default: 1, the ELBO; 0 to 1000)"
    )
    parser.add_argument(
        "--kl-warmup",
        type=int,
        metavar="N",
        help="ramp the KL weight linearly from 0 to --beta over the first N epochs, per step (default: 0)",
    )
    add_device_and_data_flags(parser)
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="train on an image folder instead (DIR/train and DIR/test or val, DIR/<class>, or images with no "
        "classes; decoded once into the user cache: see `vae-tui data`); 28x28 grey images so far",
    )
    add_folder_flags(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/<model>-<dataset>-<timestamp>)")
    parser.add_argument("--resume", metavar="CKPT", help="continue from a last.safetensors written by an earlier run")
    parser.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="on CUDA, launch each step's kernels eagerly instead of replaying one captured CUDA graph",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N processes of this node (one GPU each on CUDA) through torchrun: docs/distributed.md",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        metavar="N",
        help="with --nproc: torchrun restarts all ranks up to N times after a failure; they go on from the run's "
        "last.safetensors (default: 0)",
    )
    parser.add_argument(
        "--no-preview",
        action="store_true",
        help="on a terminal, do not draw each epoch's reconstructions and samples under the bars",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train; return the exit status."""
    from train.stop import TrainingInterrupted, stop_on_signals  # torch-free: in place before torch loads
    from vae_tui.commands.train_ranks import is_other_rank, launch, under_torchrun

    if args.nproc is not None:
        return launch(args)
    # under torchrun a second signal is torchrun's own, passed on: it kills ranks that do not stop within 30 s
    with stop_on_signals(escalate=not under_torchrun()) as stop:
        try:
            return _train(args, stop)
        except UserError as e:
            if under_torchrun():
                from train.distributed import record_failure

                record_failure(f"{printable(str(e))}", user_error=True)
            if not is_other_rank():
                raise
            from train.distributed import RankStopped

            if not isinstance(e, RankStopped):  # rank 0 says why it stopped; this rank says its own error
                print(f"vae-tui train: rank {os.environ.get('RANK')}: error: {printable(str(e))}", file=sys.stderr)
            return 1
        except TrainingInterrupted as e:
            if is_other_rank():
                pass
            elif e.checkpoint is None:
                print(f"{e.signal_name} arrived before the first batch: nothing was trained or saved", file=sys.stderr)
            else:
                print(f"{e.signal_name}: stopped and saved. Resume with:", file=sys.stderr)  # the path: its own line
                print(f"  {resume_command(Path(e.checkpoint), unstored_flags(args), lines=True)}", file=sys.stderr)
            return EXIT_CODES.get(e.signal_name, 1)
        except Exception as e:  # after TrainingInterrupted, an Exception too
            if not under_torchrun():
                raise
            return _rank_failed(e)


def _rank_failed(error: Exception) -> int:
    """A rank's unexpected error: its traceback in torchrun's error file, and one line, printed by this rank under
    plain torchrun and by `train --nproc`'s launcher otherwise (it names the rank that failed first)."""
    from train.distributed import failure_line, record_failure
    from vae_tui.commands.train_ranks import LAUNCHER_ENV

    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    line = failure_line(error, rank, world_size)
    record_failure(line, user_error=False)
    if not os.environ.get(LAUNCHER_ENV):
        print(f"vae-tui train: rank {rank}: error: {printable(line)}", file=sys.stderr)
    return 1


def unstored_flags(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The flags of this training that its checkpoint does not store, which its resume command must repeat."""
    flags: list[tuple[str, str | None]] = []
    if args.resume and args.epochs is not None:  # a new total: a checkpoint saved before it holds the old one
        flags.append(("--epochs", str(args.epochs)))
    if args.device != "auto":
        flags.append(("--device", args.device))
    if args.data_dir:
        flags.append(("--data-dir", args.data_dir))
    if args.data:
        flags.append(("--data", args.data))
        for flag, value, default in (
            ("--image-size", args.image_size, None),
            ("--resize", args.resize, None),
            ("--channels", args.channels, None),
            ("--test-fraction", args.test_fraction, None),
        ):
            if value != default:
                flags.append((flag, str(value)))
        if args.skip_damaged:
            flags.append(("--skip-damaged", None))
    if args.threads is not None:
        flags.append(("--threads", str(args.threads)))
    if not args.cuda_graphs:
        flags.append(("--no-cuda-graphs", None))
    if args.no_preview:
        flags.append(("--no-preview", None))
    from vae_tui.commands.train_ranks import LAUNCHER_ENV

    if os.environ.get(LAUNCHER_ENV) and os.environ.get("LOCAL_WORLD_SIZE", "").isdigit():  # a rank of --nproc N
        flags.append(("--nproc", os.environ["LOCAL_WORLD_SIZE"]))
    return flags


def _train(args: argparse.Namespace, stop: "StopFlag") -> int:
    """Start (settings, data, the output folder's lock), train, and say where the result is."""
    from rich.console import Console

    from models import load_checkpoint
    from models.points import reach
    from train.device import describe_device, resolve_device
    from train.distributed import SilentProgress, join
    from train.loop import Trainer
    from train.progress import make_progress
    from train.settings import check_memory
    from vae_tui.commands.train_ranks import check_shards, describe_ranks, rank_threads, ranked_start, restarted_from

    restarted_from(args)  # torchrun restarted the ranks (--max-restarts): the run goes on from its last.safetensors
    ranks, device = join(resolve_device(args.device))
    try:
        if ranks.several:
            rank_threads(ranks, args.threads)
            start = ranked_start(
                args, stop, ranks, lambda: _start_resumed(args) if args.resume else _start_new(args, stop)
            )
        else:
            start = _start_resumed(args) if args.resume else _start_new(args, stop)
        resume, settings, data, out_dir, lock = start
        try:
            images = len(data.train.labels), len(data.test.labels)
            check_memory(settings, device, len(data.class_names), data.image_shape, images)  # one line naming the flags
            if ranks.several:
                check_shards(ranks, settings.batch_size, images[0])
            progress = make_progress(Console(), preview=not args.no_preview) if ranks.is_main else SilentProgress()
            reach("start", "model")
            threads = None if ranks.several else follower(args)  # ranks keep their share of the CPUs
            trainer = Trainer(
                settings,
                data,
                out_dir,
                device,
                progress,
                resume,
                cuda_graphs=args.cuda_graphs,
                threads=threads,
                ranks=ranks,
            )
            trainer.tell = lock.tell  # `vae-tui runs` shows the epoch's progress from the lock file
            where = f", from epoch {trainer.epoch}, batch {trainer.step}" if resume else ""
            # one line each, paths on their own: at 80 columns nothing breaks mid-name
            model = f"{settings.model.upper()} ({settings.arch})"
            progress.message(f"Training {model} on {data.name} on {describe_device(device, trainer.graphed)}{where}")
            if ranks.several:
                progress.message(describe_ranks(ranks, settings.batch_size, device))
            progress.message(f"data: {data.source}")
            progress.message(f"writing to {out_dir}")
            with progress:
                trainer.run(stop)
        finally:
            lock.release()
    finally:
        ranks.close()
    if not ranks.is_main:
        return 0
    if stop.signal_name:  # after the last batch: nothing is left to stop, and the final files are whole
        print(
            f"{stop.signal_name} arrived after the last batch, during the final evaluation and writes:\n"
            "they were completed and the run is finished",
            file=sys.stderr,
        )
    best = load_checkpoint(out_dir / "best.safetensors")
    progress.message(
        f"Done: best test loss {best.metrics['test_loss']:.2f} at epoch {best.epoch}. Explore it with:\n"
        f"  {explore_command(out_dir / 'best.safetensors')}"
    )
    return 0


def _start_new(args: argparse.Namespace, stop: "StopFlag") -> Start:
    """Settings from the flags, the data, then the output folder's lock (nothing is created before)."""
    from models.points import reach
    from train.data import load_dataset
    from train.output import OutputLock
    from train.settings import TrainSettings
    from train.stop import TrainingInterrupted

    settings = TrainSettings(**_given_settings(args))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    check_folder_flags(args)
    if args.data:
        _refuse_dataset_flags_with_data(args)
        out_dir = Path(args.out) if args.out else default_out_dir(args, settings.model, settings.dataset, stamp)
        if out_dir.resolve().is_relative_to(Path(args.data).resolve()):
            raise UserError(
                f"--out {printable(str(out_dir))} is inside the image folder {printable(args.data)}: its grids would "
                "become training images: choose another --out (or start from outside the folder)"
            )
    else:
        out_dir = Path(args.out) if args.out else default_out_dir(args, settings.model, settings.dataset, stamp)
    _refuse_a_training_in(out_dir)  # before the data loads, so that the answer comes at once
    reach("start", "data")
    if args.data:
        data = folder_data(args, settings.seed)
        if settings.model == "cvae" and data.class_names == ["all images"]:
            raise UserError(f"--data {printable(args.data)} has no class folders: --model cvae needs classes")
        settings = replace(settings, dataset=data.name)
    else:
        data = load_dataset(settings.dataset, args.data_dir, args.download)
    if stop.signal_name:
        raise TrainingInterrupted(stop.signal_name, None)
    lock = OutputLock(out_dir)  # removes temp files a killed writer left, before the refusal below too
    try:
        _refuse_a_training_in(out_dir)  # again, under the lock: another training may have started meanwhile
    except UserError:
        lock.release()
        raise
    return Start(None, settings, data, out_dir, lock)


def default_out_dir(args: argparse.Namespace, model: str, dataset: str, stamp: str) -> Path:
    """runs/<model>-<dataset or image folder>-<timestamp>: a new run's folder where --out is not given."""
    if args.data:
        dataset = printable(Path(args.data).resolve().name).replace("/", "_") or "folder"
    return Path("runs") / f"{model}-{dataset}-{stamp}"


def _refuse_dataset_flags_with_data(args: argparse.Namespace) -> None:
    given = [flag for flag, value in (("--dataset", args.dataset), ("--data-dir", args.data_dir)) if value]
    if args.download:
        given.append("--download")
    if given:
        raise UserError(f"--data reads an image folder: leave out {', '.join(given)}")


def _refuse_another_reading(args: argparse.Namespace, recorded: object) -> None:
    """A resumed folder run reads the folder as it started: flags that would read it otherwise are one line."""
    if not isinstance(recorded, dict):
        return
    asked = {
        "--test-fraction": args.test_fraction,
        "--image-size": args.image_size,
        "--channels": args.channels,
        "--resize": args.resize,
    }
    keys = {"--test-fraction": "test_fraction", "--image-size": "size", "--channels": "channels", "--resize": "resize"}
    contradicting = [
        f"{flag} {value} (the run's: {recorded.get(keys[flag])})"
        for flag, value in asked.items()
        if value is not None and recorded.get(keys[flag]) is not None and value != recorded.get(keys[flag])
    ]
    if contradicting:
        raise UserError(f"--resume: flags contradict how the run read its folder: {', '.join(contradicting)}")


def _refuse_a_training_in(out_dir: Path) -> None:
    """A new training never writes over another one's files."""
    if (out_dir / "last.safetensors").exists():
        raise UserError(
            f"{printable(str(out_dir))} already holds a training: resume it with "
            f"{resume_command(out_dir / 'last.safetensors')} or choose another --out"
        )


def _start_resumed(args: argparse.Namespace) -> Start:
    """The checkpoint's folder locked first, then the checkpoint read and its settings checked, then the data."""
    from models import load_checkpoint
    from models.points import reach
    from train.data import load_dataset
    from train.folder import listing_change, recorded_fraction
    from train.output import OutputLock

    check_folder_flags(args)
    path = Path(args.resume)
    out_dir = path.parent
    if args.out and Path(args.out).resolve() != out_dir.resolve():
        raise UserError(
            f"--resume continues the training in {out_dir}, but --out names {args.out}, where it would overwrite "
            "and mix files: leave out --out"
        )
    load_checkpoint(path, with_resume=True)  # a file that cannot resume is refused before its folder is touched
    lock = OutputLock(out_dir)  # removes temp files a killed writer left, before any refusal below too
    try:
        checkpoint = load_checkpoint(path, with_resume=True)  # again: a training that held the lock may have moved on
        settings = _resume_settings(args, checkpoint)
        reach("start", "data")
        if not settings.dataset.startswith(FOLDER_PREFIX):
            if args.data:
                raise UserError(f"--resume: the checkpoint was trained on {settings.dataset}: leave out --data")
            return Start(
                checkpoint, settings, load_dataset(settings.dataset, args.data_dir, args.download), out_dir, lock
            )
        if not args.data:
            name = settings.dataset.removeprefix(FOLDER_PREFIX)
            raise UserError(f"--resume: the checkpoint was trained on the image folder {name}: give it with --data DIR")
        _refuse_dataset_flags_with_data(args)
        recorded = checkpoint.training.get("data")
        _refuse_another_reading(args, recorded)
        if args.test_fraction is None:  # the held-out share the run started with
            args.test_fraction = recorded_fraction(recorded)
        data = folder_data(args, settings.seed)
        if len(data.class_names) != checkpoint.config.num_classes:
            raise UserError(
                f"--data {printable(args.data)} has {len(data.class_names)} classes now; the run was trained on "
                f"{checkpoint.config.num_classes}"
            )
        if change := listing_change(recorded, data.record):
            data.source += f"; {change}"
        if data.name != settings.dataset:
            trained, given = (name.removeprefix(FOLDER_PREFIX) for name in (settings.dataset, data.name))
            raise UserError(f"--resume: the checkpoint was trained on the image folder {trained}, --data names {given}")
        return Start(checkpoint, settings, data, out_dir, lock)
    except BaseException:
        lock.release()
        raise
