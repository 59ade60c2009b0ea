"""`vae-tui runs`: the runs under a folder, with their model, progress, best test loss and state."""

import argparse
import json
import sys
import time
from pathlib import Path

from models.text import printable
from vae_tui.commands import Commands

COLUMNS = ("run", "model", "dataset", "epochs", "best test", "state", "changed")


def add_parser(commands: Commands) -> None:
    """The `runs` sub-command and its flags."""
    parser = commands.add_parser(
        "runs",
        help="list the training runs under a folder, with their state",
        description="Every run folder under DIR: model and arch, dataset, epochs done of planned, the best test "
        "loss and its epoch, the state (finished, interrupted and resumable, running now, empty, damaged: what is "
        "wrong) and the last change. Reads only checkpoint headers and metrics.",
    )
    parser.add_argument("folder", nargs="?", default="runs", metavar="DIR", help="the runs folder (default: runs)")
    parser.add_argument("--json", action="store_true", help="one JSON list of the runs, for scripts")
    parser.add_argument(
        "--sort", choices=("name", "loss", "date"), default="name", help="order: by name, best loss or last change"
    )
    parser.set_defaults(run=run)


def cells(run: "object") -> list[str]:
    """A run's row of the table."""
    model = f"{run.model or '?'} {run.arch or ''}".strip() if run.model or run.arch else "-"
    epochs = "-" if run.epochs_done is None else f"{run.epochs_done}/{run.epochs_planned or '?'}"
    best = "-" if run.best_loss is None else f"{run.best_loss:.2f} @{run.best_epoch}"
    state = f"damaged: {run.problem}" if run.state == "damaged" else run.state
    changed = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.changed))
    return [printable(run.name), model, printable(run.dataset or "-"), epochs, best, state, changed]


def sorted_runs(runs: list, order: str) -> list:
    if order == "loss":  # runs without a loss last
        return sorted(runs, key=lambda r: (r.best_loss is None, r.best_loss or 0.0, r.name))
    if order == "date":  # newest first
        return sorted(runs, key=lambda r: -r.changed)
    return runs


def run(args: argparse.Namespace) -> int:
    """List the runs; return the exit status."""
    from train.runs import scan_runs

    runs = sorted_runs(scan_runs(Path(args.folder)), args.sort)
    if args.json:
        print(json.dumps([r.as_json() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {printable(args.folder)}")
        return 0
    rows = [cells(r) for r in runs]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*COLUMNS, box=None, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    else:  # plain, tab-separated lines for scripts and logs
        print("\t".join(COLUMNS))
        for row in rows:
            print("\t".join(row))
    return 0
