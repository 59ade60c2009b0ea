"""`vae-tui sample`: a grid PNG from a checkpoint, for scripts; the explorer's decode and PNG code."""

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.text import printable
from vae_tui.commands import (
    MAX_SEED,
    Commands,
    add_checkpoint_argument,
    add_seed_flag,
    bounded_int,
    required_checkpoint_path,
)

# Caps that keep a grid a picture, not a memory bomb: 4096 images of 28x28 are 13 MB of floats,
# and 16384 px is the longest side a PNG viewer reliably opens.
MAX_COLUMNS = 256
MAX_IMAGES = 4096
MAX_SCALE = 16
MAX_SIDE_PX = 16384

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
        if not 0 <= seed <= MAX_SEED:
            raise UserError(f"--interpolate: the seed in {value!r} is out of range: use 0 to {MAX_SEED}")
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
    parser.add_argument(
        "--n", type=bounded_int(1, MAX_COLUMNS), default=8, help=f"images per row (default: 8; at most {MAX_COLUMNS})"
    )
    parser.add_argument(
        "--class", dest="classes", action="append", metavar="C", help="CVAE class (index or name); repeat for more rows"
    )
    add_seed_flag(parser, "the prior draws")
    parser.add_argument("--traverse", type=int, metavar="DIM", help="a row per value of z[DIM] from -3 to +3 sigma")
    parser.add_argument(
        "--interpolate", nargs=2, metavar=("A", "B"), help="a row from A to B: two classes (VAE) or seed:N seed:M"
    )
    parser.add_argument(
        "--steps",
        type=bounded_int(2, MAX_COLUMNS),
        default=8,
        help=f"images in an interpolation (default: 8; 2 to {MAX_COLUMNS})",
    )
    parser.add_argument(
        "--scale",
        type=bounded_int(1, MAX_SCALE),
        default=4,
        help=f"pixels per image pixel (default: 4; at most {MAX_SCALE})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the grid; return the exit status."""
    import torch

    from models import load_checkpoint
    from train.data import check_model_fits_data
    from train.grids import grid, save_png
    from vae_tui.decoding import Decoder

    if args.output.suffix.lower() != ".png":
        raise UserError(f"-o {args.output}: the output must be a .png file")
    torch.set_num_threads(1)  # the same bytes on every run and machine size
    checkpoint = load_checkpoint(required_checkpoint_path(args))
    check_model_fits_data(checkpoint)
    if args.classes and len(args.classes) * args.n > MAX_IMAGES:
        raise UserError(f"{len(args.classes)} --class rows of --n {args.n} are more than {MAX_IMAGES} images")
    z, labels, columns = rows(args, checkpoint)
    side = math.isqrt(checkpoint.config.input_dim)
    width, height = (count * (side + 2) + 2 for count in (columns, -(-len(z) // columns)))
    if max(width, height) * args.scale > MAX_SIDE_PX:
        raise UserError(
            f"the grid would be {width * args.scale}x{height * args.scale} px, more than {MAX_SIDE_PX} on a side:"
            " lower --scale or --n"
        )
    images = Decoder(checkpoint.model).images(z, labels)
    try:
        save_png(args.output, grid(images, columns), scale=args.scale)
    except OSError as e:
        raise UserError(f"cannot write {args.output}: {e.strerror or e}") from None
    print(printable(str(args.output)))
    return 0
