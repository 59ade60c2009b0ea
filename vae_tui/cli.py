"""The `vae-tui` command line: argparse sub-commands, each importing torch only when it runs."""

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

MODELS = ("vae", "cvae")
DATASETS = ("fashion-mnist", "mnist")
DEVICES = ("auto", "cpu", "cuda", "mps")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _version() -> str:
    try:
        return version("vae-tui")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> Parser:
    """The full parser; building it imports nothing heavy."""
    parser = Parser(prog="vae-tui", description="Train VAEs and CVAEs and explore their latent space from a terminal.")
    parser.add_argument("--version", action="version", version=f"vae-tui {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    train = commands.add_parser(
        "train",
        help="fit a VAE or CVAE; writes checkpoints, PNG grids and metrics",
        description="Fit a VAE or CVAE on FashionMNIST or MNIST. Each epoch writes reconst-N.png, sample-N.png, "
        "a row of metrics.jsonl, last.safetensors (resumable) and best.safetensors (lowest test loss).",
    )
    train.add_argument("--model", choices=MODELS, help="model kind (default: vae)")
    train.add_argument("--dataset", choices=DATASETS, help="dataset (default: fashion-mnist)")
    train.add_argument("--epochs", type=int, help="total epochs (default: 20)")
    train.add_argument("--batch-size", type=int, help="images per step (default: 128)")
    train.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--latent-dim", type=int, help="size of z (default: 20)")
    train.add_argument("--hidden-dim", type=int, help="hidden layer width (default: 400)")
    train.add_argument("--seed", type=int, help="random seed (default: 0)")
    train.add_argument(
        "--device", choices=DEVICES, default="auto", help="where to train (default: auto: cuda, mps, then cpu)"
    )
    train.add_argument("--out", metavar="DIR", help="output folder (default: runs/<model>-<dataset>-<timestamp>)")
    train.add_argument("--data-dir", metavar="DIR", help="folder with the dataset files (searched first)")
    train.add_argument(
        "--download", action="store_true", help="download the dataset through torchvision if it is not found"
    )
    train.add_argument("--resume", metavar="CKPT", help="continue from a last.safetensors written by an earlier run")
    train.set_defaults(handler="vae_tui.commands.train:run")

    explore = commands.add_parser(
        "explore",
        help="open the latent explorer (Textual app) on a checkpoint",
        description="Pick a class, nudge latent dimensions and watch the decoded image. With no CHECKPOINT: "
        "the newest runs/*/best.safetensors, else the pretrained CVAE that ships with vae-tui.",
    )
    explore.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT", help="a .safetensors file or a run folder")
    explore.add_argument("--pretrained", choices=MODELS, help="open the bundled pretrained VAE or CVAE")
    explore.add_argument(
        "--exports", metavar="DIR", default="exports", help="where s and g save PNGs (default: exports)"
    )
    explore.set_defaults(handler="vae_tui.commands.explore:run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vae-tui` script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        from importlib import import_module

        from models.errors import UserError

        module_name, function_name = args.handler.split(":")
        handler = getattr(import_module(module_name), function_name)
        try:
            return handler(args)
        except UserError as e:
            sys.stderr.write(f"vae-tui {args.command}: error: {e}\n")
            return 1
    except KeyboardInterrupt:
        sys.stderr.write("vae-tui: interrupted\n")
        return 130
