"""`vae-tui eval`: test-set numbers of a checkpoint, as a table or as JSON."""

import argparse
import json
import time
from typing import TYPE_CHECKING

from models.errors import UserError
from models.names import FOLDER_PREFIX
from models.text import printable
from vae_tui.commands import (
    Commands,
    add_checkpoint_argument,
    add_device_and_data_flags,
    add_seed_flag,
    bounded_int,
    required_checkpoint_path,
    threads_for_load,
)

MAX_SAMPLES = 10_000  # K = 1000 takes about 45 s for the 10,000 test images on 2 CPU cores; time grows with K

if TYPE_CHECKING:
    from rich.table import Table

    from train.evaluate import Evaluation


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
    classes = Table(title="Per class (-ELBO, z sampled)", title_justify="left")
    for column in ("class", "name", "images", "loss"):
        classes.add_column(column, justify="left" if column == "name" else "right")
    for row in evaluation.per_class:
        classes.add_row(str(row["class"]), Text(printable(row["name"])), str(row["images"]), f"{row['loss']:.2f}")
    dims = Table(
        title=f"Latent dimensions: {evaluation.active_units} of {len(evaluation.dimensions)} active (Var(mu) > 0.01)",
        title_justify="left",
    )
    for column in ("dim", "Var(mu)", "mean KL", "active"):
        dims.add_column(column, justify="right")
    for row in evaluation.dimensions:
        dims.add_row(f"z{row['dim']}", f"{row['variance']:.3f}", f"{row['kl']:.3f}", "yes" if row["active"] else "")
    return [summary, classes, dims]


def add_parser(commands: Commands) -> None:
    """The `eval` sub-command and its flags."""
    parser = commands.add_parser(
        "eval",
        help="test-set losses, an importance-weighted NLL bound and the active latent dimensions",
        description="Evaluate a checkpoint on its dataset's test set: negative ELBO with z sampled and with z = mu, "
        "an importance-weighted bound on -log p(x) (Burda et al., 2016), per-class losses and active units.",
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; return the exit status."""
    from rich.console import Console

    from models import load_checkpoint
    from train.data import CLASS_NAMES, check_model_fits_data, load_dataset
    from train.device import resolve_device, unit_pixels
    from train.evaluate import evaluate_model
    from train.progress import make_eval_progress

    path = required_checkpoint_path(args)
    checkpoint = load_checkpoint(path)
    if checkpoint.dataset.startswith(FOLDER_PREFIX):
        folder = checkpoint.dataset.removeprefix(FOLDER_PREFIX)
        raise UserError(f"{path} was trained on the image folder {folder}: eval on image folders is not there yet")
    if checkpoint.dataset not in CLASS_NAMES:
        raise UserError(f"{path} was trained on {checkpoint.dataset!r}, which vae-tui cannot load")
    check_model_fits_data(checkpoint)
    device = resolve_device(args.device)
    console = Console()
    with make_eval_progress(console, quiet=args.json) as progress:  # on stdout: piped or --json, it stays silent
        progress.stage(f"loading {checkpoint.dataset}")
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
            checkpoint.class_names,
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
                    "dataset": checkpoint.dataset,
                    "seconds": seconds,
                    **evaluation.to_dict(),
                },
                indent=2,
            )
        )
        return 0
    kind = checkpoint.config.kind.upper() + (f" ({checkpoint.config.arch})" if checkpoint.config.arch != "mlp" else "")
    title = f"{kind} · {checkpoint.dataset} test set ({evaluation.images} images) · {path}"
    for part in table(evaluation, title):
        console.print(part)
    console.print(f"{seconds:.1f} s on {device}, seed {args.seed}", highlight=False)
    return 0
