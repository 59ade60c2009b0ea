"""One module per sub-command, each with its sub-parser beside its `run`; the choices and flags they share.

Building the parsers imports nothing heavy: each `run` imports torch and the rest when it runs,
so `vae-tui --help` and every `vae-tui COMMAND --help` stay fast.
"""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.limits import MAX_IMAGE_SIZE, MAX_SEED, MIN_IMAGE_SIZE  # MAX_SEED: what torch's generators take
from models.text import printable

if TYPE_CHECKING:
    from train.threads import ThreadFollower

DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N, a GPU by its index
MAX_THREADS = 1024

Commands = argparse._SubParsersAction  # what `add_parser` of each command module receives

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "weights"  # the checkpoints that ship with the package


def bounded_int(low: int, high: int) -> "Callable[[str], int]":
    """An argparse type: an integer from low to high, refused in one line outside them."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low} to {high}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def add_seed_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--seed, bounded to what torch's generators accept."""
    parser.add_argument(
        "--seed", type=bounded_int(0, MAX_SEED), default=0, help=f"seed of {what} (default: 0; 0 to 2**63-1)"
    )


def pretrained_names() -> list[str]:
    """The names of the bundled checkpoints: vae_tui/weights/NAME.safetensors."""
    return sorted(path.stem for path in PRETRAINED_DIR.glob("*.safetensors"))


def pretrained_path(name: str) -> Path:
    """The bundled checkpoint of that name."""
    return PRETRAINED_DIR / f"{name}.safetensors"


def add_checkpoint_argument(parser: argparse.ArgumentParser, what: str = "a .safetensors checkpoint") -> None:
    """CKPT, the checkpoint file of the commands that read one, and --pretrained NAME instead of it."""
    parser.add_argument(
        "checkpoint", nargs="?", metavar="CKPT", help=f"{what}, or a run folder for its best one (or --pretrained NAME)"
    )
    names = pretrained_names()
    parser.add_argument(
        "--pretrained",
        choices=names,
        metavar="NAME",
        help=f"a checkpoint that ships with vae-tui instead of CKPT: {', '.join(names)} (trained on FashionMNIST)",
    )


def checkpoint_path(args: argparse.Namespace) -> Path | None:
    """The file CKPT or --pretrained names; None when neither is given, a UserError when both are."""
    if args.checkpoint and args.pretrained:
        raise UserError(f"give a checkpoint ({printable(args.checkpoint)}) or --pretrained {args.pretrained}, not both")
    if args.pretrained:
        return pretrained_path(args.pretrained)
    if not args.checkpoint:
        return None
    path = Path(args.checkpoint)
    return path / "best.safetensors" if path.is_dir() else path  # a run folder: its best checkpoint


def refuse_to_replace(path: Path, force: bool) -> None:
    """The one overwrite rule of every command's output file: a file that exists is replaced only with --force
    (the explorer's exports take fresh names, and train never writes over another training)."""
    if (path.exists() or path.is_symlink()) and not force:
        raise UserError(f"{printable(str(path))} exists: choose another -o, or add --force to replace it")


def required_checkpoint_path(args: argparse.Namespace) -> Path:
    """checkpoint_path, for a command that cannot go on without one."""
    path = checkpoint_path(args)
    if path is None:
        raise UserError(f"give a checkpoint file (CKPT) or --pretrained {{{','.join(pretrained_names())}}}")
    return path


def device_name(text: str) -> str:
    """An argparse type: auto, cpu, cuda, cuda:N or mps (whether that device exists is checked when it is used)."""
    index = text.removeprefix("cuda:")
    if text in DEVICES or (text.startswith("cuda:") and index.isascii() and index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"invalid device {text!r}: choose {', '.join(DEVICES)} or cuda:N")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """--threads N, torch's CPU threads for the command (every command has it)."""
    parser.add_argument(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        metavar="N",
        help="CPU threads torch may use (default: torch's, one per core); for shared servers",
    )


def add_device_and_data_flags(parser: argparse.ArgumentParser) -> None:
    """--device, --data-dir and --download, shared by the commands that read a dataset."""
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N,mps}",
        help="where to compute (default: auto: cuda, mps, then cpu)",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="folder with the dataset files (searched first)")
    parser.add_argument(
        "--download", action="store_true", help="download the dataset through torchvision if it is not found"
    )


def follower(args: argparse.Namespace) -> "ThreadFollower":
    """The command's thread follower, made by the CLI as it started (a fresh one when a test calls run directly)."""
    from train.threads import ThreadFollower

    if getattr(args, "thread_follower", None) is None:
        args.thread_follower = ThreadFollower(getattr(args, "threads", None))
    return args.thread_follower


def threads_for_load(args: argparse.Namespace) -> str:
    """Set torch's thread count for one long computation (eval, an import, an atlas) from the load now; the note
    that says so when other processes leave fewer CPUs than torch would use ("" otherwise)."""
    chosen = follower(args)
    count = chosen.choose()
    if not chosen.follows or chosen.default is None or count >= chosen.default or chosen.others is None:
        return ""
    return (
        f"other processes keep {chosen.others:.1f} of {chosen.usable} CPUs busy: computing on {count} "
        f"thread{'s' if count > 1 else ''} (--threads N fixes the count)"
    )


def test_fraction(text: str) -> float:
    """An argparse type: a share of each class held out, 0.01 to 0.5."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid fraction: {text!r}") from None
    if not 0.01 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text} is out of range: use 0.01 to 0.5")
    return value


def add_folder_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how an image folder is read: shared by `data` (and `train --data`)."""
    parser.add_argument(
        "--image-size",
        type=bounded_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
        metavar="N",
        help=f"images made NxN ({MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}; default: their own size where they all share "
        f"one of at most {MAX_IMAGE_SIZE}, else 64)",
    )
    parser.add_argument(
        "--resize",
        choices=("crop", "fit"),
        help="a non-square image: its centred square (crop, default: torchvision's Resize+CenterCrop framing) or "
        "the whole image padded with black (fit)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        help="1 (grey) or 3 (RGB); default: 3 where any image has colour, else 1",
    )
    parser.add_argument(
        "--test-fraction",
        type=test_fraction,
        metavar="F",
        help="share of each class held out for testing where the folder has no test/ or val/ (default: 0.1; "
        "a resume or an eval takes the run's own)",
    )
    parser.add_argument(
        "--skip-damaged",
        action="store_true",
        help="leave out damaged images even when they are more than 1%% of the folder",
    )


def check_folder_flags(args: argparse.Namespace) -> None:
    """The flags that read an image folder go with --data, and --data names one: one line otherwise."""
    if args.data is not None and not args.data.strip():
        raise UserError("--data needs an image folder (DIR)")
    if args.data is None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("image_size", "resize", "channels", "test_fraction", "skip_damaged")
            if getattr(args, name) not in (None, False)
        ]
        if given:
            raise UserError(
                f"{', '.join(given)} read{'s' if len(given) == 1 else ''} an image folder: give it with --data DIR"
            )
