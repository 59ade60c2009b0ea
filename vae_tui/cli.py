"""The `vae-tui` command line: argparse sub-commands, each importing torch only when it runs."""

import argparse
import sys
from pathlib import Path

from models.version import package_version

MODELS = ("vae", "cvae")
DATASETS = ("fashion-mnist", "mnist")
DEVICES = ("auto", "cpu", "cuda", "mps")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def add_device_and_data_flags(parser: argparse.ArgumentParser) -> None:
    """--device, --data-dir and --download, shared by the commands that read a dataset."""
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="where to compute (default: auto: cuda, mps, then cpu)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="folder with the dataset files (searched first)")
    parser.add_argument(
        "--download", action="store_true", help="download the dataset through torchvision if it is not found"
    )


def build_parser() -> Parser:
    """The full parser; building it imports nothing heavy."""
    parser = Parser(prog="vae-tui", description="Train VAEs and CVAEs and explore their latent space from a terminal.")
    parser.add_argument("--version", action="version", version=f"vae-tui {package_version()}")
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
    add_device_and_data_flags(train)
    train.add_argument("--out", metavar="DIR", help="output folder (default: runs/<model>-<dataset>-<timestamp>)")
    train.add_argument("--resume", metavar="CKPT", help="continue from a last.safetensors written by an earlier run")
    train.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="on CUDA, launch each step's kernels eagerly instead of replaying one captured CUDA graph",
    )
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

    evaluate = commands.add_parser(
        "eval",
        help="test-set losses, an importance-weighted NLL bound and the active latent dimensions",
        description="Evaluate a checkpoint on its dataset's test set: negative ELBO with z sampled and with z = mu, "
        "an importance-weighted bound on -log p(x) (Burda et al., 2016), per-class losses and active units.",
    )
    evaluate.add_argument("checkpoint", metavar="CKPT", help="a .safetensors checkpoint")
    evaluate.add_argument(  # K = 1000 takes about 45 s for the 10,000 test images on 2 CPU cores
        "--samples", type=int, default=1000, help="importance samples K (default: 1000)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the sampled z (default: 0)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")
    add_device_and_data_flags(evaluate)
    evaluate.set_defaults(handler="vae_tui.commands.eval:run")

    sample = commands.add_parser(
        "sample",
        help="write a grid PNG of decoded samples, traversals or interpolations",
        description="Decode images from a checkpoint into one grid PNG. The same arguments and seed give the same "
        "file, byte for byte.",
    )
    sample.add_argument("checkpoint", metavar="CKPT", help="a .safetensors checkpoint")
    sample.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.png", help="where to write the PNG")
    sample.add_argument("--n", type=int, default=8, help="images per row (default: 8)")
    sample.add_argument(
        "--class", dest="classes", action="append", metavar="C", help="CVAE class (index or name); repeat for more rows"
    )
    sample.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default: 0)")
    sample.add_argument("--traverse", type=int, metavar="DIM", help="a row per value of z[DIM] from -3 to +3 sigma")
    sample.add_argument(
        "--interpolate", nargs=2, metavar=("A", "B"), help="a row from A to B: two classes (VAE) or seed:N seed:M"
    )
    sample.add_argument("--steps", type=int, default=8, help="images in an interpolation (default: 8)")
    sample.add_argument("--scale", type=int, default=4, help="pixels per image pixel (default: 4)")
    sample.set_defaults(handler="vae_tui.commands.sample:run")
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
