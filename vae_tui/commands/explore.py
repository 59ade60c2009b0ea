"""`vae-tui explore`: find the checkpoint, load it, open the explorer."""

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.names import DATASET_NAMES
from models.text import printable
from vae_tui.commands import (
    Commands,
    add_checkpoint_argument,
    checkpoint_path,
    pretrained_path,
    threads_for_load,
)
from vae_tui.outside import add_code_flags, check_code_source

if TYPE_CHECKING:
    from models import Checkpoint


DEFAULT_PRETRAINED = ("cvae-conv", "cvae")  # with no argument and no runs: the first of these that is bundled


def pretrained_label(name: str) -> str:
    """How the header names a bundled model: "cvae-conv" -> "conv CVAE", "vae" -> "VAE"."""
    kind, _, arch = name.partition("-")
    return f"{arch} {kind.upper()}" if arch else kind.upper()


def newest_run_checkpoint(runs: Path = Path("runs")) -> Path | None:
    """The most recently written best.safetensors under runs/, if any."""
    candidates = [p for p in runs.glob("*/best.safetensors") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve(args: argparse.Namespace) -> "tuple[Checkpoint, str]":
    """The checkpoint to open and how to name its source in the header."""
    from models import load_checkpoint

    path = checkpoint_path(args)
    if args.pretrained:
        return load_checkpoint(path), f"bundled pretrained {pretrained_label(args.pretrained)}"
    if path is not None:
        folder = Path(args.checkpoint)
        if folder.is_dir() and not path.exists() and not looks_like_a_run(folder):
            raise UserError(
                f"{printable(str(folder))} is not a run folder (no best.safetensors, and no training writes there): "
                f"give a run folder or a checkpoint file; `vae-tui runs {printable(str(folder))}` lists the runs in it"
            )
        if folder.is_dir() and not getattr(args, "no_follow", False):
            return wait_for_checkpoint(path), str(path)
        return load_checkpoint(path), str(path)
    if newest := newest_run_checkpoint():
        return load_checkpoint(newest), str(newest)
    name = next(name for name in DEFAULT_PRETRAINED if pretrained_path(name).is_file())
    return load_checkpoint(pretrained_path(name), expect_kind="cvae"), f"bundled pretrained {pretrained_label(name)}"


WAIT_SECONDS = 1.0  # how often a run folder without a checkpoint yet is looked at again


def looks_like_a_run(folder: Path) -> bool:
    """Whether folder is a run that will write a best checkpoint: a training holds it, or it has a run's files."""
    from train.runs import lock_held

    return lock_held(folder) or any((folder / name).exists() for name in ("metrics.jsonl", "last.safetensors"))


def wait_for_checkpoint(path: Path) -> "Checkpoint":
    """The run folder's best checkpoint, waiting for it when the run has not written one yet (it does after its
    first epoch): the explorer follows runs, so it may well be started before the training. A file that appears
    while it waits and does not load yet (half written) is tried again each time it changes; one that is there
    from the start and does not load is refused, as any damaged checkpoint is."""
    from models import load_checkpoint
    from train.runs import lock_held
    from vae_tui.screens.follow import signature

    said = False
    failed: tuple[int, int] | None = None
    while True:
        seen = signature(path)
        if seen is not None and seen != failed:
            try:
                return load_checkpoint(path)
            except UserError as e:
                if not said:  # the file existed and did not load on the first look: damaged, not half written
                    raise
                failed = seen  # tried again once it changes: training writes the next one at its next best epoch
                sys.stderr.write(f"vae-tui explore: {e}; trying again when it changes (ctrl+c stops)\n")
        if not said:
            training = "a training is writing there" if lock_held(path.parent) else "no training is writing there yet"
            sys.stderr.write(
                f"vae-tui explore: waiting for {printable(str(path))}, which the run writes after its first epoch "
                f"({training}; ctrl+c stops)\n"
            )
            said = True
        time.sleep(WAIT_SECONDS)


def add_atlas(checkpoint: "Checkpoint") -> None:
    """Give a checkpoint written before the atlas one, computed on its dataset's test set when that is installed
    (the explorer says what is missing otherwise)."""
    from models.atlas import atlas_float_problem
    from train.atlas import atlas_of
    from train.data import load_test_split
    from train.device import unit_pixels

    try:
        test = load_test_split(checkpoint.dataset)
    except UserError:
        return
    sys.stderr.write(
        f"vae-tui explore: no atlas in the checkpoint: computing it on the {len(test.images)} test images\n"
    )
    atlas = atlas_of(checkpoint.model, unit_pixels(test.images), test.labels.long(), test.images)
    if found := atlas_float_problem(atlas):  # held to what a checkpoint may carry, as a loaded atlas is
        sys.stderr.write(f"vae-tui explore: the atlas computed for this model is unusable ({' '.join(found)})\n")
        return
    checkpoint.atlas = atlas


def add_parser(commands: Commands) -> None:
    """The `explore` sub-command and its flags."""
    parser = commands.add_parser(
        "explore",
        help="open the latent explorer (Textual app) on a checkpoint",
        description="Pick a class, nudge latent dimensions and watch the decoded image. With no CKPT: "
        "the newest runs/*/best.safetensors, else the pretrained conv CVAE that ships with vae-tui.",
    )
    add_checkpoint_argument(parser, "a .safetensors file or a run folder")
    parser.add_argument(
        "--exports", metavar="DIR", default="exports", help="where s, g and G save PNGs and GIFs (default: exports)"
    )
    parser.add_argument(
        "--image",
        type=Path,
        metavar="FILE",
        help="start from your own PNG or JPEG: made grey, fitted into 28x28, inverted if its border is lighter",
    )
    parser.add_argument("--no-invert", action="store_true", help="with --image: never invert it")
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="given a run folder: do not reload its best checkpoint when training writes a new one",
    )
    add_code_flags(parser)
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="with --code: an image folder (as train --data reads it) whose test images give the map and picker",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        help="with --code: fashion-mnist or mnist (installed) gives the map and picker",
    )
    parser.set_defaults(run=run)


def resolve_outside(args: argparse.Namespace) -> "tuple[Checkpoint, str]":
    """The model --code names as a checkpoint to explore, with an atlas of --data or --dataset's test images when it
    has an encoder."""
    from vae_tui.outside import outside_checkpoint, outside_model

    if args.checkpoint or args.pretrained:
        raise UserError("give a checkpoint or --code FILE.py:FUNC, not both")
    if args.data and args.dataset:
        raise UserError("give --data DIR or --dataset NAME, not both")
    model = outside_model(args)
    checkpoint = outside_checkpoint(model, args)
    if args.data or args.dataset:
        outside_atlas(checkpoint, args)
    return checkpoint, f"--code {args.code}"


def outside_atlas(checkpoint: "Checkpoint", args: argparse.Namespace) -> None:
    """The atlas and class centroids of an outside model on --data or --dataset (its test split for the atlas, its
    training split's first images for the centroids), found in the cache or computed with its stages on stderr; a
    note on stderr when the model has no encoder."""
    from vae_tui.outside_atlas import add_outside_atlas, can_encode, dataset_source, fit_to_data, folder_source

    if not can_encode(checkpoint, "vae-tui explore"):
        return
    data = folder_source(args, checkpoint.config.image_shape) if args.data else dataset_source(args.dataset)
    fit_to_data(checkpoint, data, keep_names=bool(args.class_names))
    add_outside_atlas(checkpoint, data, "vae-tui explore", f"--code {printable(args.code)}", args.debug)


def run(args: argparse.Namespace) -> int:
    """Open the explorer; return the exit status."""
    import torch

    check_code_source(args)
    if args.code is None:
        for flag in ("data", "dataset"):
            if getattr(args, flag):
                raise UserError(f"--{flag} goes with --code (a checkpoint carries its own test images)")
    checkpoint, source = resolve_outside(args) if args.code else resolve(args)
    from train.data import check_model_fits_data
    from vae_tui.app import create_app
    from vae_tui.decoding import pixel_shape

    shape = pixel_shape(checkpoint.config)  # a model the explorer cannot draw stops here, on one line
    check_model_fits_data(checkpoint)
    if checkpoint.atlas is None:
        if args.threads is None:
            note = threads_for_load(args)  # the atlas encodes the whole test set
            if note:
                sys.stderr.write(f"vae-tui explore: {note}\n")
        add_atlas(checkpoint)
    if args.threads is None:
        torch.set_num_threads(1)  # decoding one small batch: threads cost more than they give
    start_image = None
    if args.image is not None:
        from vae_tui.user_image import load_user_image

        if not getattr(checkpoint.model, "has_encoder", True):  # a model written elsewhere with decode(z) alone
            raise UserError(f"--image needs the model's encode(x): --code {printable(args.code)} has decode(z) alone")
        channels = 3 if len(shape) == 3 else 1
        pixels = load_user_image(args.image, invert=not args.no_invert, side=shape[-1], channels=channels)
        start_image = (args.image.name, pixels)
    elif args.no_invert:
        raise UserError("--no-invert goes with --image FILE")
    follow = None
    if args.checkpoint and Path(args.checkpoint).is_dir() and not args.no_follow:
        follow = Path(args.checkpoint) / "best.safetensors"  # a run still training writes a better one each epoch
    app = create_app(checkpoint, source, Path(args.exports), start_image, follow)
    app.run()
    if app.output_log is not None and app.output_log.written:  # said in the explorer too, once
        sys.stderr.write(f"vae-tui explore: {app.output_log.summary()}\n")
    if app.return_code:  # Textual has printed what went wrong; a crash must not look like success
        sys.stderr.write("vae-tui explore: error: the explorer stopped on an internal error (shown above)\n")
        return app.return_code
    return 0
