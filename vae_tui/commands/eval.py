"""`vae-tui eval`: test-set numbers of a checkpoint, as a table or as JSON."""

import argparse
import json
import time
from typing import TYPE_CHECKING

from models.errors import UserError
from models.names import DATASET_NAMES, FOLDER_PREFIX
from models.text import printable
from vae_tui.commands import (
    Commands,
    add_checkpoint_argument,
    add_device_and_data_flags,
    add_folder_flags,
    add_seed_flag,
    bounded_int,
    check_folder_flags,
    required_checkpoint_path,
    threads_for_load,
)
from vae_tui.commands.data import folder_data
from vae_tui.outside import add_code_flags

MAX_SAMPLES = 10_000  # K = 1000 takes about 45 s for the 10,000 test images on 2 CPU cores; time grows with K

if TYPE_CHECKING:
    from rich.table import Table

    from train.evaluate import Evaluation
    from train.evaluate_outside import OutsideEvaluation


def table(evaluation: "Evaluation", title: str) -> "list[Table]":
    """The evaluation as rich tables: summary, per class, per dimension; names and paths as Text, never markup."""
    from rich.table import Table
    from rich.text import Text

    summary = Table(title=Text(printable(title)), title_justify="left")
    for column in ("", "total", "reconstruction", "KL"):
        summary.add_column(column, justify="right" if column else "left")
    for name, values in (("-ELBO, z sampled", evaluation.elbo_sampled), ("-ELBO, z = mu", evaluation.elbo_mean)):
        summary.add_row(name, f"{values['total']:.2f}", f"{values['reconstruction']:.2f}", f"{values['kl']:.2f}")
    summary.add_row(f"-log p(x), IWAE bound, K={evaluation.iwae_samples}", f"{evaluation.iwae_nll:.2f}", "", "")
    if bits := evaluation.bce_bits_per_dim:  # labelled: continuous BCE, not the discrete bits/dim of papers
        summary.add_row("  in bits/dim (continuous BCE)", f"{bits['iwae']:.4f}", "", "")
    classes = Table(title="Per class (-ELBO, z sampled)", title_justify="left")
    for column in ("class", "name", "images", "loss"):
        classes.add_column(column, justify="left" if column == "name" else "right")
    for row in evaluation.per_class:
        classes.add_row(str(row["class"]), Text(printable(row["name"])), str(row["images"]), f"{row['loss']:.2f}")
    return [summary, classes, dimensions_table(evaluation.active_units, evaluation.dimensions)]


def dimensions_table(active_units: int, dimensions: list[dict]) -> "Table":
    """The latent dimensions' rows of an evaluation (train.evaluate.dimension_rows) as a rich table."""
    from rich.table import Table

    dims = Table(
        title=f"Latent dimensions: {active_units} of {len(dimensions)} active (Var(mu) > 0.01)", title_justify="left"
    )
    for column in ("dim", "Var(mu)", "mean KL", "active"):
        dims.add_column(column, justify="right")
    for row in dimensions:
        dims.add_row(f"z{row['dim']}", f"{row['variance']:.3f}", f"{row['kl']:.3f}", "yes" if row["active"] else "")
    return dims


def add_parser(commands: Commands) -> None:
    """The `eval` sub-command and its flags."""
    parser = commands.add_parser(
        "eval",
        help="test-set losses, an importance-weighted NLL bound and the active latent dimensions",
        description="Evaluate a checkpoint on its dataset's test set: negative ELBO with z sampled and with z = mu, "
        "an importance-weighted bound on -log p(x) (Burda et al., 2016), per-class losses and active units. A model "
        "of your own (--code) on --data DIR or --dataset NAME: reconstruction error, KL per dimension and active "
        "units, and the ELBO and bound when its decoder is Bernoulli (--decoder-output probs or logits).",
    )
    add_checkpoint_argument(parser)
    parser.add_argument(
        "--samples",
        type=bounded_int(1, MAX_SAMPLES),
        default=1000,
        help=f"importance samples K (default: 1000; at most {MAX_SAMPLES:,}; time grows with K)",
    )
    add_seed_flag(parser, "the sampled z")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    add_device_and_data_flags(parser)
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="evaluate on an image folder's test split (the one the checkpoint was trained on, or another of the "
        "same shape and classes): DIR/test or val, else the held-out share with the training's seed (with --code: "
        "seed 0)",
    )
    parser.add_argument(
        "--dataset", choices=DATASET_NAMES, help="with --code: evaluate on fashion-mnist's or mnist's test set"
    )
    add_folder_flags(parser)
    add_code_flags(parser, skip=("--device",))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; return the exit status."""
    from rich.console import Console

    from models import load_checkpoint
    from train.data import CLASS_NAMES, check_model_fits_data, load_dataset
    from train.device import resolve_device, unit_pixels
    from train.evaluate import evaluate_model
    from train.folder import recorded_fraction
    from train.progress import make_eval_progress
    from vae_tui.outside import check_code_source

    check_folder_flags(args)
    check_code_source(args)
    if args.code:
        return run_outside(args)
    if args.dataset:
        raise UserError("--dataset goes with --code: a checkpoint is evaluated on its own dataset (or --data DIR)")
    path = required_checkpoint_path(args)
    checkpoint = load_checkpoint(path)
    if args.data:
        given = [flag for flag, value in (("--data-dir", args.data_dir), ("--download", args.download)) if value]
        if given:
            raise UserError(f"--data reads an image folder: leave out {', '.join(given)}")
    elif checkpoint.dataset.startswith(FOLDER_PREFIX):
        folder = checkpoint.dataset.removeprefix(FOLDER_PREFIX)
        raise UserError(f"{path} was trained on the image folder {folder}: give it (or one like it) with --data DIR")
    elif checkpoint.dataset not in CLASS_NAMES:
        raise UserError(f"{path} was trained on {checkpoint.dataset!r}, which vae-tui cannot load")
    check_model_fits_data(checkpoint)
    device = resolve_device(args.device)
    console = Console()
    if args.data:
        seed = checkpoint.training.get("seed", 0) if isinstance(checkpoint.training.get("seed"), int) else 0
        if args.test_fraction is None:  # the held-out share the run was trained with
            args.test_fraction = recorded_fraction(checkpoint.training.get("data"))
        data = folder_data(args, seed)  # the held-out split as training drew it
        if checkpoint.model.conditional and len(data.class_names) != checkpoint.config.num_classes:
            raise UserError(
                f"--data {printable(args.data)} has {len(data.class_names)} classes; the CVAE in {path} was trained on "
                f"{checkpoint.config.num_classes}"
            )
    with make_eval_progress(console, quiet=args.json) as progress:  # on stdout: piped or --json, it stays silent
        progress.stage(f"loading {checkpoint.dataset}")
        if not args.data:
            data = load_dataset(checkpoint.dataset, args.data_dir, args.download)
        x = unit_pixels(data.test.images).to(device)
        y = data.test.labels.to(device)
        note = threads_for_load(args)
        if note:
            progress.message(note)
        progress.stage(f"-ELBO and IWAE, K={args.samples}", len(x))
        started = time.perf_counter()
        evaluation = evaluate_model(
            checkpoint.model.to(device),
            x,
            y,
            data.class_names if args.data else checkpoint.class_names,
            args.samples,
            args.seed,
            on_progress=progress.images_done,
        )
        seconds = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(path),
                    "dataset": data.name,
                    "seconds": seconds,
                    **evaluation.to_dict(),
                },
                indent=2,
            )
        )
        return 0
    kind = checkpoint.config.kind.upper() + (f" ({checkpoint.config.arch})" if checkpoint.config.arch != "mlp" else "")
    title = f"{kind} · {data.name} test set ({evaluation.images} images) · {path}"
    for part in table(evaluation, title):
        console.print(part)
    console.print(f"{seconds:.1f} s on {device}, seed {args.seed}", highlight=False)
    return 0


def run_outside(args: argparse.Namespace) -> int:
    """Evaluate the model --code names on --data or --dataset's test split; return the exit status."""
    from rich.console import Console

    from models.outside import OutsideModelError
    from train.device import resolve_device, unit_pixels
    from train.evaluate_outside import evaluate_outside
    from train.progress import make_eval_progress
    from vae_tui.outside import outside_checkpoint, outside_model, user_failure
    from vae_tui.outside_atlas import dataset_source, fit_to_data, folder_source

    if bool(args.data) == bool(args.dataset):
        raise UserError("eval --code needs its data: give --data DIR or --dataset NAME (one of them)")
    if args.data and (args.data_dir or args.download):
        raise UserError("--data reads an image folder: leave out --data-dir and --download")
    args.device = str(resolve_device(args.device))
    checkpoint = outside_checkpoint(outside_model(args), args)
    model = checkpoint.model
    if not model.has_encoder:
        raise UserError("eval measures how the model encodes and reconstructs: it needs the model's encode(x)")
    if args.data:
        data = folder_source(args, checkpoint.config.image_shape)
    else:
        data = dataset_source(args.dataset, args.data_dir, args.download)
    fit_to_data(checkpoint, data, keep_names=bool(args.class_names))
    console = Console()
    test = data.dataset.test
    with make_eval_progress(console, quiet=args.json) as progress:
        if note := threads_for_load(args):
            progress.message(note)
        started = time.perf_counter()
        try:
            evaluation = evaluate_outside(
                model,
                unit_pixels(test.images),
                test.labels.long(),
                checkpoint.class_names,
                args.samples,
                args.seed,
                stage=progress.stage,
                on_progress=progress.images_done,
            )
        except OutsideModelError:
            raise
        except Exception as e:  # the user's encode or decode raised
            raise user_failure(f"--code {printable(args.code)}: its model raised", e, args.debug) from None
        seconds = time.perf_counter() - started
    if args.json:
        record = {"code": args.code, "dataset": data.dataset.name, "seconds": seconds, **evaluation.to_dict()}
        print(json.dumps(record, indent=2))
        return 0
    title = f"--code {args.code} · {data.dataset.name} test set ({evaluation.images} images)"
    for part in outside_tables(evaluation, title):
        console.print(part)
    console.print(f"{seconds:.1f} s on {args.device}, seed {args.seed}", highlight=False)
    return 0


def outside_tables(evaluation: "OutsideEvaluation", title: str) -> "list[Table | str]":
    """The outside model's evaluation as rich tables, and a line saying which numbers apply to its decoder."""
    from rich.table import Table
    from rich.text import Text

    summary = Table(title=Text(printable(title)), title_justify="left")
    summary.add_column("")
    summary.add_column("value", justify="right")
    error = evaluation.squared_error
    summary.add_row("squared error per image, z = mu (pixels in [0, 1])", f"{error['per_image']:.2f}")
    summary.add_row("  per pixel (MSE)", f"{error['per_pixel']:.5f}")
    kl_note = "" if evaluation.kl_from_logvar else " (encoder gives mu alone: unit variances)"
    summary.add_row(f"KL per image, nats{kl_note}", f"{evaluation.kl:.2f}")
    likelihood = evaluation.likelihood
    if likelihood is None and not evaluation.kl_from_logvar and evaluation.decoder_output != "tanh":
        applies = Text(
            f"decoder output {evaluation.decoder_output}, but the encoder gives mu alone: q(z|x) is not known, so no"
            " ELBO and no bound on -log p(x)"
        )
    elif likelihood is None:
        applies = Text(
            f"decoder output {evaluation.decoder_output}: its likelihood is not known, so no ELBO and no bound on "
            "-log p(x) (they need a Bernoulli decoder: --decoder-output probs or logits)"
        )
    else:
        applies = Text(
            f"decoder output {evaluation.decoder_output}: a Bernoulli decoder, so the ELBO and the bound apply "
            "(BCE summed over pixels)"
        )
    parts = [summary]
    if likelihood is not None:
        parts += table(likelihood, "Bernoulli likelihood")[:1]
    classes = Table(title="Per class (squared error per image, z = mu)", title_justify="left")
    for column in ("class", "name", "images", "squared error"):
        classes.add_column(column, justify="left" if column == "name" else "right")
    for row in evaluation.per_class:
        name = Text(printable(row["name"]))
        classes.add_row(str(row["class"]), name, str(row["images"]), f"{row['squared_error']:.2f}")
    return [*parts, classes, dimensions_table(evaluation.active_units, evaluation.dimensions), applies]
