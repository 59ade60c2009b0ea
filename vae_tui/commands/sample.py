"""`vae-tui sample`: a grid PNG from a checkpoint, for scripts; the explorer's decode and PNG code."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.text import printable
from vae_tui.commands import Commands, add_checkpoint_argument

if TYPE_CHECKING:
    import torch

    from models import Checkpoint


def _class_index(value: str, checkpoint: "Checkpoint") -> int:
    """A class given as its index or its name."""
    names = [n.lower() for n in checkpoint.class_names]
    if value.isdigit() and int(value) < len(names):
        return int(value)
    if value.lower() in names:
        return names.index(value.lower())
    raise UserError(f"unknown class {value!r}: use 0-{len(names) - 1} or one of {', '.join(checkpoint.class_names)}")


def _endpoint(value: str, checkpoint: "Checkpoint", label: int) -> "torch.Tensor":
    """z for one end of --interpolate: seed:N draws from the prior, a class is its centroid."""
    import torch

    latent_dim = checkpoint.config.latent_dim
    if value.startswith("seed:"):
        try:
            seed = int(value.removeprefix("seed:"))
        except ValueError:
            raise UserError(f"--interpolate: {value!r} is not seed:N") from None
        return torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed))
    if checkpoint.model.conditional:
        raise UserError("--interpolate between classes needs a VAE; for a CVAE use seed:A seed:B with --class")
    return checkpoint.class_centroids[_class_index(value, checkpoint)]


def rows(args: argparse.Namespace, checkpoint: "Checkpoint") -> "tuple[torch.Tensor, torch.Tensor, int]":
    """z (N, D), labels (N,) and the number of columns of the requested grid."""
    import torch

    from models import rows_per_class
    from vae_tui.decoding import TRAVERSAL_VALUES

    latent_dim, num_classes = checkpoint.config.latent_dim, checkpoint.config.num_classes
    generator = torch.Generator().manual_seed(args.seed)
    classes = [_class_index(c, checkpoint) for c in args.classes] if args.classes else None
    if args.traverse is not None:
        if not 0 <= args.traverse < latent_dim:
            raise UserError(f"--traverse {args.traverse}: the model has dimensions 0-{latent_dim - 1}")
        base = torch.randn(args.n, latent_dim, generator=generator)
        z = base.repeat(len(TRAVERSAL_VALUES), 1)  # a row per value
        z[:, args.traverse] = torch.tensor(TRAVERSAL_VALUES).repeat_interleave(args.n)
        return z, torch.full((len(z),), classes[0] if classes else 0), args.n
    if args.interpolate:
        label = classes[0] if classes else 0
        start, end = (_endpoint(v, checkpoint, label) for v in args.interpolate)
        t = torch.linspace(0, 1, args.steps)[:, None]
        return (1 - t) * start + t * end, torch.full((args.steps,), label), args.steps
    if checkpoint.model.conditional:
        z = torch.randn(args.n, latent_dim, generator=generator)
        return (*rows_per_class(z, torch.tensor(classes or list(range(num_classes)))), args.n)
    if classes:
        raise UserError("--class picks the condition of a CVAE; this checkpoint is a VAE (try --interpolate)")
    return torch.randn(args.n, latent_dim, generator=generator), torch.zeros(args.n, dtype=torch.long), min(args.n, 8)


def add_parser(commands: Commands) -> None:
    """The `sample` sub-command and its flags."""
    parser = commands.add_parser(
        "sample",
        help="write a grid PNG of decoded samples, traversals or interpolations",
        description="Decode images from a checkpoint into one grid PNG. The same arguments and seed give the same "
        "file, byte for byte.",
    )
    add_checkpoint_argument(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.png", help="where to write the PNG")
    parser.add_argument("--n", type=int, default=8, help="images per row (default: 8)")
    parser.add_argument(
        "--class", dest="classes", action="append", metavar="C", help="CVAE class (index or name); repeat for more rows"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default: 0)")
    parser.add_argument("--traverse", type=int, metavar="DIM", help="a row per value of z[DIM] from -3 to +3 sigma")
    parser.add_argument(
        "--interpolate", nargs=2, metavar=("A", "B"), help="a row from A to B: two classes (VAE) or seed:N seed:M"
    )
    parser.add_argument("--steps", type=int, default=8, help="images in an interpolation (default: 8)")
    parser.add_argument("--scale", type=int, default=4, help="pixels per image pixel (default: 4)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the grid; return the exit status."""
    import torch

    from models import load_checkpoint
    from train.grids import grid, save_png
    from vae_tui.decoding import Decoder

    if args.n <= 0 or args.steps < 2 or args.scale <= 0:
        raise UserError("--n and --scale must be positive and --steps at least 2")
    if args.output.suffix.lower() != ".png":
        raise UserError(f"-o {args.output}: the output must be a .png file")
    torch.set_num_threads(1)  # the same bytes on every run and machine size
    checkpoint = load_checkpoint(args.checkpoint)
    z, labels, columns = rows(args, checkpoint)
    images = Decoder(checkpoint.model).images(z, labels)
    try:
        save_png(args.output, grid(images, columns), scale=args.scale)
    except OSError as e:
        raise UserError(f"cannot write {args.output}: {e.strerror or e}") from None
    print(printable(str(args.output)))
    return 0
