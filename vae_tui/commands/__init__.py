"""One module per sub-command, each with its sub-parser beside its `run`; the choices and flags they share.

Building the parsers imports nothing heavy: each `run` imports torch and the rest when it runs,
so `vae-tui --help` and every `vae-tui COMMAND --help` stay fast.
"""

import argparse
from collections.abc import Callable

from models.limits import MAX_SEED  # what torch's generators take; train's settings check the same bound

# The names of models.MODEL_KINDS and train.data.DATASET_NAMES, written out because importing
# those modules imports torch; tests/test_cli_parser.py fails if they drift apart.
MODELS = ("vae", "cvae")
DATASETS = ("fashion-mnist", "mnist")
DEVICES = ("auto", "cpu", "cuda", "mps")

Commands = argparse._SubParsersAction  # what `add_parser` of each command module receives


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


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """CKPT, the checkpoint file of the commands that read one."""
    parser.add_argument("checkpoint", metavar="CKPT", help="a .safetensors checkpoint")


def add_device_and_data_flags(parser: argparse.ArgumentParser) -> None:
    """--device, --data-dir and --download, shared by the commands that read a dataset."""
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="where to compute (default: auto: cuda, mps, then cpu)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="folder with the dataset files (searched first)")
    parser.add_argument(
        "--download", action="store_true", help="download the dataset through torchvision if it is not found"
    )
