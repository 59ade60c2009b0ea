"""`vae-tui sample`: a grid PNG from a checkpoint, for scripts; the explorer's decode and PNG code."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.names import OUTSIDE_ARCH
from models.text import printable
from vae_tui.commands import (
    MAX_SEED,
    Commands,
    add_checkpoint_argument,
    add_seed_flag,
    bounded_int,
    checkpoint_path,
    refuse_to_replace,
    required_checkpoint_path,
)
from vae_tui.outside import add_code_flags

# Caps that keep a grid a picture, not a memory bomb: 4096 images of 28x28 are 13 MB of floats,
# and 16384 px is the longest side a PNG viewer reliably opens.
MAX_COLUMNS = 256
MAX_IMAGES = 4096
MAX_SCALE = 16
MAX_SIDE_PX = 16384
GIF_FRAME_MS = 100
DEFAULTS = {
    "n": 8,
    "classes": None,
    "seed": 0,
    "traverse": None,
    "interpolate": None,
    "steps": 8,
    "scale": 4,
    "no_labels": False,
}

if TYPE_CHECKING:
    import torch

    from models import Checkpoint
    from vae_tui.decoding import Decoder
    from vae_tui.exports import Export


def _class_index(value: str, checkpoint: "Checkpoint") -> int:
    """A class given as its index or its name."""
    names = [n.lower() for n in checkpoint.class_names]
    if value.isdigit() and int(value) < len(names):
        return int(value)
    if value.lower() in names:
        return names.index(value.lower())
    raise UserError(f"unknown class {value!r}: use 0-{len(names) - 1} or one of {', '.join(checkpoint.class_names)}")


def _test_encoding(value: str, checkpoint: "Checkpoint") -> "torch.Tensor":
    """mu of test image N (test:N): stored in the checkpoint's atlas, else encoded from the installed dataset."""
    import torch

    from train.data import load_test_split

    try:
        index = int(value.removeprefix("test:"))
    except ValueError:
        raise UserError(f"--interpolate: {value!r} is not test:N") from None
    atlas = checkpoint.atlas
    if checkpoint.config.arch == OUTSIDE_ARCH:
        raise UserError(f"--interpolate {value}: a model given with --code has no test images here: use seed:N ends")
    if atlas is not None and (stored := (atlas.indices == index).nonzero()).numel():
        return atlas.mu[stored[0, 0]]
    try:
        test = load_test_split(checkpoint.dataset)
    except UserError as e:
        raise UserError(
            f"--interpolate {value}: test image {index} is not among the encodings the checkpoint stores, and the "
            f"test set is not here to encode it ({e})"
        ) from None
    if not 0 <= index < len(test.images):
        raise UserError(f"--interpolate {value}: the test set has images 0-{len(test.images) - 1}")
    pixels = test.images[index].reshape(1, -1).float() / 255
    condition = test.labels[index : index + 1].long() if checkpoint.model.conditional else None
    with torch.no_grad():
        return checkpoint.model.encode(pixels, condition)[0][0]


def _endpoint(value: str, checkpoint: "Checkpoint", label: int) -> "torch.Tensor":
    """z for one end of --interpolate: seed:N draws from the prior, test:N is a test image's encoding, a class is
    its centroid."""
    import torch

    latent_dim = checkpoint.config.latent_dim
    if value.startswith("test:"):
        return _test_encoding(value, checkpoint)
    if value.startswith("seed:"):
        try:
            seed = int(value.removeprefix("seed:"))
        except ValueError:
            raise UserError(f"--interpolate: {value!r} is not seed:N") from None
        if not 0 <= seed <= MAX_SEED:
            raise UserError(f"--interpolate: the seed in {value!r} is out of range: use 0 to {MAX_SEED}")
        return torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed))
    if checkpoint.model.conditional:
        raise UserError("--interpolate between classes needs a VAE; for a CVAE use seed:N or test:N ends with --class")
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


def titles(args: argparse.Namespace, checkpoint: "Checkpoint", labels: list[int]) -> tuple[list[str], str]:
    """The row labels and the caption of the grid rows() draws: what each row and the whole grid hold."""
    from vae_tui.decoding import TRAVERSAL_VALUES
    from vae_tui.exports import class_name

    conditional = checkpoint.model.conditional
    of_class = f", class {class_name(checkpoint, labels[0])}" if conditional else ""
    if args.traverse is not None:
        rows = [f"z{args.traverse} = {value:+g}".replace("+0", "0") for value in TRAVERSAL_VALUES]
        return rows, f"a prior sample a column (seed {args.seed}){of_class}"
    if args.interpolate:
        a, b = args.interpolate
        return [], f"{a} to {b} in {args.steps} steps, left to right{of_class}"
    if conditional:
        names = [class_name(checkpoint, label) for label in labels[:: args.n]]
        return names, f"prior samples (seed {args.seed}): one z a column, a class a row"
    return [], f"prior samples (seed {args.seed})"


def add_parser(commands: Commands) -> None:
    """The `sample` sub-command and its flags."""
    parser = commands.add_parser(
        "sample",
        help="write a grid PNG of decoded samples, traversals or interpolations",
        description="Decode images from a checkpoint (or a model of your own, --code) into one grid PNG. The same "
        "arguments and seed give the same file, byte for byte. The PNG records the checkpoint (path and SHA-256), "
        "each image's class and z: --from-png draws it again.",
    )
    add_checkpoint_argument(parser)
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="where to write the PNG (with --gif: the GIF)"
    )
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument(
        "--gif",
        action="store_true",
        help="with --traverse or --interpolate: an animated GIF, one frame per step (per value: the row of --n "
        "images), instead of the PNG",
    )
    parser.add_argument(
        "--from-png",
        type=Path,
        metavar="FILE.png",
        help="draw again a PNG that vae-tui sample or the explorer saved, from the checkpoint it records (or CKPT)",
    )
    parser.add_argument(
        "--n",
        type=bounded_int(1, MAX_COLUMNS),
        default=DEFAULTS["n"],
        help=f"images per row (default: 8; at most {MAX_COLUMNS})",
    )
    parser.add_argument(
        "--class", dest="classes", action="append", metavar="C", help="CVAE class (index or name); repeat for more rows"
    )
    add_seed_flag(parser, "the prior draws")
    parser.add_argument("--traverse", type=int, metavar="DIM", help="a row per value of z[DIM] from -3 to +3 sigma")
    parser.add_argument(
        "--interpolate",
        nargs=2,
        metavar=("A", "B"),
        help="a row from A to B, each a class (VAE), seed:N (a prior draw) or test:N (test image N's encoding)",
    )
    parser.add_argument(
        "--steps",
        type=bounded_int(2, MAX_COLUMNS),
        default=DEFAULTS["steps"],
        help=f"images in an interpolation (default: 8; 2 to {MAX_COLUMNS})",
    )
    parser.add_argument(
        "--scale",
        type=bounded_int(1, MAX_SCALE),
        default=DEFAULTS["scale"],
        help=f"pixels per image pixel (default: 4; at most {MAX_SCALE})",
    )
    parser.add_argument(
        "--no-labels",
        action="store_true",
        help="the bare grid: without the row labels at its left and the line under it (the weights and the draw)",
    )
    add_code_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the grid; return the exit status."""
    import torch

    from models import load_checkpoint
    from train.data import check_model_fits_data
    from vae_tui.outside import check_code_source, outside_checkpoint, outside_model, user_failure

    wanted = ".gif" if args.gif else ".png"
    if args.output.suffix.lower() != wanted:
        raise UserError(f"-o {args.output}: the output must be a {wanted} file" + (" with --gif" if args.gif else ""))
    if args.gif and (args.from_png or (args.traverse is None and not args.interpolate)):
        raise UserError("--gif animates --traverse or --interpolate: give one of them (and no --from-png)")
    check_code_source(args)
    if args.code and args.from_png:
        raise UserError("--from-png draws from the checkpoint a PNG records: leave out --code")
    refuse_to_replace(args.output, args.force)
    torch.set_num_threads(1)  # the same bytes on every run and machine size
    if args.from_png:
        export, checkpoint = _from_png(args)
        write(args, checkpoint, export)
        print(printable(str(args.output)))
        return 0
    if not args.code:
        checkpoint = load_checkpoint(required_checkpoint_path(args))
        check_model_fits_data(checkpoint)
        draw_grid(args, checkpoint)
        print(printable(str(args.output)))
        return 0
    checkpoint = outside_checkpoint(outside_model(args), args)
    try:
        target, _, name = args.code.rpartition(":")
        draw_grid(args, checkpoint, f"--code {Path(target).name}:{name}")  # the file's name: the caption is short
    except (UserError, OSError):
        raise
    except Exception as e:  # the user's decode raised
        raise user_failure(f"--code {printable(args.code)}: its model's decode(z) raised", e, args.debug) from None
    print(printable(str(args.output)))
    return 0


def draw_grid(args: argparse.Namespace, checkpoint: "Checkpoint", source: str = "") -> None:
    """Write the grid (or GIF) args ask for, decoded by checkpoint's model; source, if given, opens the caption
    (how a model written elsewhere is named, having no checkpoint file)."""
    from vae_tui.exports import export_of

    if args.classes and len(args.classes) * args.n > MAX_IMAGES:
        raise UserError(f"{len(args.classes)} --class rows of --n {args.n} are more than {MAX_IMAGES} images")
    z, labels, columns = rows(args, checkpoint)
    classes = labels.tolist() if checkpoint.model.conditional else [None] * len(z)
    row_titles, caption = ([], "") if args.no_labels else titles(args, checkpoint, labels.tolist())
    if source and not args.no_labels:
        caption = f"{source} · {caption}"
    write(args, checkpoint, export_of(checkpoint, z.tolist(), classes, columns, args.scale, row_titles, caption))


def write(args: argparse.Namespace, checkpoint: "Checkpoint", export: "Export") -> None:
    """Draw export with checkpoint's model into args.output (a PNG, or a GIF with args.gif)."""
    from vae_tui.decoding import Decoder, pixel_shape
    from vae_tui.exports import export_image, save_drawn

    _check_size(export, pixel_shape(checkpoint.config)[-1])
    decoder = Decoder(checkpoint.model)
    if args.gif:
        frames = _gif_frames(export, decoder)  # drawn before the write: the model's errors are not the file's
        write_file = lambda: _save_gif(args.output, export, frames)  # noqa: E731
    else:
        image = export_image(export, decoder)
        write_file = lambda: save_drawn(args.output, export, image)  # noqa: E731
    try:
        write_file()
    except OSError as e:
        raise UserError(f"cannot write {args.output}: {e.strerror or e}") from None


def _gif_frames(export: "Export", decoder: "Decoder") -> "torch.Tensor":
    """The export's rows as GIF frames: an interpolation's images one by one, a traversal's values row by row."""
    import torch

    from train.grids import grid

    images = decoder.images(torch.tensor(export.z), torch.tensor([c or 0 for c in export.classes]))
    per_frame = 1 if export.columns == len(export.z) else export.columns  # --interpolate: one row of steps
    return torch.stack([grid(images[i : i + per_frame], per_frame) for i in range(0, len(images), per_frame)])


def _save_gif(path: Path, export: "Export", frames: "torch.Tensor") -> None:
    """The frames as a looping GIF carrying the export's record (the PNG's, as a comment)."""
    from train.grids import save_gif

    save_gif(path, frames, export.scale, GIF_FRAME_MS, comment=export.to_json())


def _from_png(args: argparse.Namespace) -> "tuple[Export, Checkpoint]":
    """The record in --from-png and the checkpoint to draw it: CKPT or --pretrained if given, else the recorded one."""
    from models import load_checkpoint
    from train.data import check_model_fits_data
    from vae_tui.exports import check_drawable, read_export

    changed = [name for name, default in DEFAULTS.items() if getattr(args, name) != default]
    given = ["--class" if name == "classes" else f"--{name.replace('_', '-')}" for name in changed]
    if given:
        raise UserError(f"--from-png draws the grid the PNG records: leave out {', '.join(given)}")
    export = read_export(args.from_png)
    path = checkpoint_path(args)
    if path is None:
        path = Path(export.checkpoint)
        if not path.is_file():
            raise UserError(
                f"{printable(str(args.from_png))} was drawn by {printable(export.checkpoint)}, which is not there:"
                " give that checkpoint as CKPT (or --pretrained NAME)"
            )
    checkpoint = load_checkpoint(path)
    check_model_fits_data(checkpoint)
    check_drawable(export, checkpoint, args.from_png)
    return export, checkpoint


def _check_size(export: "Export", side: int) -> None:
    """Refuse a grid larger than MAX_IMAGES images, MAX_COLUMNS columns, MAX_SCALE or MAX_SIDE_PX on a side."""
    columns = export.columns or 1
    if len(export.z) > MAX_IMAGES or columns > MAX_COLUMNS or export.scale > MAX_SCALE:
        raise UserError(
            f"the PNG records {len(export.z)} images in {columns} columns at scale {export.scale}: more than "
            f"{MAX_IMAGES} images, {MAX_COLUMNS} columns or scale {MAX_SCALE}"
        )
    if export.columns is None:
        width = height = side
    else:
        width, height = (count * (side + 2) + 2 for count in (columns, -(-len(export.z) // columns)))
    if max(width, height) * export.scale > MAX_SIDE_PX:
        raise UserError(
            f"the grid would be {width * export.scale}x{height * export.scale} px, more than {MAX_SIDE_PX} on a side:"
            " lower --scale or --n"
        )
