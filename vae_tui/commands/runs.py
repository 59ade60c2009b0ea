"""`vae-tui runs`: the runs under a folder, with their model, progress, best test loss and state."""

import argparse
import json
import sys
from pathlib import Path

from models.text import printable
from vae_tui.commands import Commands


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


def run(args: argparse.Namespace) -> int:
    """List the runs; return the exit status."""
    from train.runs import COLUMNS, ordered, row_cells, scan_runs

    runs = ordered(scan_runs(Path(args.folder)), args.sort)
    if args.json:
        # every number in a Run is finite (train.run_values): allow_nan=False keeps the output standard JSON, and
        # ensure_ascii (the default) writes a control character in a name as an escape, never the character
        print(json.dumps([r.as_json() for r in runs], indent=2, allow_nan=False))
        return 0
    if not runs:
        print(f"no runs in {printable(args.folder)}")
        return 0
    if sys.stdout.isatty() and sys.stdin.isatty():
        return browse(Path(args.folder))
    print("\t".join(COLUMNS))  # plain, tab-separated lines for scripts and logs
    for run in runs:
        print("\t".join(row_cells(run)))
    return 0


def browse(root: Path) -> int:
    """The runs browser; `e` opens the explorer on a run as a screen over it, and leaving that comes back."""
    from vae_tui.runs_app import RunsApp

    browser = RunsApp(root)
    browser.run()
    return browser.return_code or 0
